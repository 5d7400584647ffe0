//! `flowscope replay FILE`: run the flow engine over a pcap/pcapng capture and print records.
//!
//! The same engine the agent drives, fed from a file: frames in capture order, the capture's
//! timestamps as time, `handle_timeout` after each frame and `flush` at the end.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{bail, Context, Result};
use flows::capture_file::{CaptureFileStats, CaptureParser, Step};
use flows::engine::{Engine, EngineConfig, L4Records};
use flows::packet::{CaptureMeta, LinkType};
use flows::record::Record;

use crate::api::{
    convert::flow_to_proto,
    filter,
    proto::observer::{get_flows_response::ResponseTypes, GetFlowsResponse},
};
use crate::cli::{
    observe::{print_window, quiet_pipe, ObserveArgs},
    printer::Printer,
};

/// Which packets print as L3/L4 records.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4Arg {
    /// Every packet.
    EveryPacket,
    /// SYN/FIN/RST only.
    ControlOnly,
    /// None: L7 flows and spans only.
    Off,
}

/// Arguments of `flowscope replay`: the capture, engine options, and every filter and output
/// flag of `flowscope observe` (so `replay -o jsonpb x.pcap | observe --input-file -` and
/// `replay --http-status 5+ x.pcap` agree).
#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    /// Capture to read: pcap or pcapng; Ethernet (802.1Q/QinQ), raw IP, Linux cooked v1/v2,
    /// BSD loopback (NULL, LOOP) or NFLOG link types, per pcapng interface.
    pub file: PathBuf,
    /// Which packets make L3/L4 records.
    #[arg(long, value_enum, default_value = "every-packet")]
    pub l4: L4Arg,
    /// Seed for generated trace/span ids (fixed by default so replays are reproducible).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Do not print records, only the counter summary (for timing the engine).
    #[arg(long)]
    pub quiet: bool,
    /// Print the spans (one JSON object per line) instead of the flows.
    #[arg(long)]
    pub spans: bool,
    /// Filters and output, as for `flowscope observe`.
    #[command(flatten)]
    pub view: ObserveArgs,
}

/// Bytes read from the capture per read call.
const READ_CHUNK: usize = 1 << 20;

/// What a replay saw besides records: frames the engine could not decode for want of a link
/// type decoder, and what the file held that is not frames.
#[derive(Debug, Default)]
struct ReplaySummary {
    /// Frames of each link type we do not decode, by LINKTYPE number.
    unsupported: BTreeMap<u32, u64>,
    /// Sections, interfaces, packets naming no interface, other blocks.
    file: CaptureFileStats,
    /// Bytes at the end of the file that do not make a whole record (a capture cut off).
    truncated_tail_bytes: usize,
}

/// Runs the engine over every frame of a capture, calling `emit` for each record.
///
/// The file is streamed through [`CaptureParser`] in `READ_CHUNK` reads; frames borrow the
/// buffer. A last record cut short (a capture stopped mid-write) ends the file, reported in
/// the summary, not as an error: what came before it is still replayed and flushed.
fn replay_file(
    path: &Path,
    engine: &mut Engine,
    mut emit: impl FnMut(&Record) -> Result<bool>,
) -> Result<ReplaySummary> {
    let mut file =
        File::open(path).with_context(|| format!("cannot open capture {}", path.display()))?;
    let mut parser = CaptureParser::new();
    let mut summary = ReplaySummary::default();
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let (mut start, mut eof, mut last_ts) = (0usize, false, 0u64);
    let stopped = 'frames: loop {
        let step = parser
            .parse(&buf[start..])
            .with_context(|| format!("{}: cannot read the capture", path.display()))?;
        match step {
            Step::Read { consumed, frame } => {
                start += consumed;
                let Some(f) = frame else { continue };
                if let LinkType::Unsupported(n) = f.link {
                    *summary.unsupported.entry(n).or_default() += 1;
                }
                let meta = CaptureMeta {
                    ts_ns: f.ts_ns,
                    ifindex: f.interface,
                    direction: f.direction,
                    orig_len: f.orig_len,
                    socket_cookie: None,
                };
                // Decode failures (unsupported link types among them) are counted by the
                // engine and shown in the summary.
                let _ = engine.handle_frame(f.ts_ns, f.link, f.data, meta);
                engine.handle_timeout(f.ts_ns);
                last_ts = last_ts.max(f.ts_ns);
                while let Some(r) = engine.poll_record() {
                    if !emit(&r)? {
                        break 'frames true;
                    }
                }
            }
            Step::NeedBytes(need) => {
                if eof {
                    summary.truncated_tail_bytes = buf.len() - start;
                    break false;
                }
                buf.drain(..start);
                start = 0;
                let want = need.saturating_sub(buf.len()).max(READ_CHUNK);
                Read::by_ref(&mut file)
                    .take(want as u64)
                    .read_to_end(&mut buf)
                    .with_context(|| format!("cannot read capture {}", path.display()))?;
                eof = buf.len() < need;
                if eof && buf.is_empty() {
                    if parser.format_name().is_none() {
                        bail!("{} is empty, not a pcap or pcapng capture", path.display());
                    }
                    break false;
                }
            }
        }
    };
    if !stopped {
        engine.flush(last_ts);
        while let Some(r) = engine.poll_record() {
            if !emit(&r)? {
                break;
            }
        }
    }
    summary.file = parser.stats().clone();
    Ok(summary)
}

/// Tells on stderr what could not be decoded and why: every link type skipped with its frame
/// count, packets of undescribed interfaces, a cut-off end. Errors when frames were skipped
/// for those reasons and nothing at all could be decoded (an unsupported capture is never
/// reported as an empty one).
fn report_undecodable(
    err: &mut impl Write,
    path: &Path,
    summary: &ReplaySummary,
    engine: &Engine,
) -> Result<()> {
    let path = path.display();
    for (&linktype, &frames) in &summary.unsupported {
        let name = LinkType::registry_name(linktype)
            .map(|n| format!(" (LINKTYPE_{n})"))
            .unwrap_or_default();
        let _ = writeln!(
            err,
            "flowscope: {path}: link type {linktype}{name} is not decoded: {frames} frames skipped"
        );
    }
    let orphans = summary.file.packets_without_interface;
    if orphans > 0 {
        let _ = writeln!(
            err,
            "flowscope: {path}: {orphans} packets name a pcapng interface their section does not describe: skipped"
        );
    }
    if summary.truncated_tail_bytes > 0 {
        let _ = writeln!(
            err,
            "flowscope: {path}: the file ends inside a record; its last {} bytes were ignored",
            summary.truncated_tail_bytes
        );
    }
    let skipped = summary.unsupported.values().sum::<u64>() + orphans;
    if skipped > 0 && engine.counters().packets == 0 {
        bail!(
            "{path}: nothing could be decoded ({skipped} frames skipped) — flowscope reads Ethernet, raw IP, Linux cooked (v1, v2), BSD loopback (NULL, LOOP) and NFLOG captures"
        );
    }
    Ok(())
}

/// Runs `flowscope replay`.
pub fn run(args: &ReplayArgs) -> Result<()> {
    let mut engine = Engine::new(EngineConfig {
        l4_records: match args.l4 {
            L4Arg::EveryPacket => L4Records::EveryPacket,
            L4Arg::ControlOnly => L4Records::ControlOnly,
            L4Arg::Off => L4Records::Off,
        },
        id_seed: args.seed,
        spans: args.spans && !args.quiet,
        ..EngineConfig::default()
    });
    let req = args.view.request(SystemTime::now())?;
    let pred = filter::compile(&req.whitelist, &req.blacklist)?;
    let node = crate::api::default_node_name();
    let stdout = std::io::stdout();
    let (quiet, spans) = (args.quiet, args.spans);
    // The engine runs on its own thread and hands flows over a bounded channel, so the
    // observe window/filter/printer code consumes them as a stream.
    let (tx, rx) = std::sync::mpsc::sync_channel::<GetFlowsResponse>(4096);
    let file = args.file.clone();
    let producer = std::thread::spawn(move || -> Result<(Engine, ReplaySummary)> {
        let mut span_out = BufWriter::with_capacity(1 << 16, std::io::stdout());
        let summary = replay_file(&file, &mut engine, |r| {
            if quiet {
                return Ok(true);
            }
            match r {
                Record::Flow(f) if !spans => {
                    let flow = flow_to_proto(f, &node);
                    let resp = GetFlowsResponse {
                        node_name: flow.node_name.clone(),
                        time: flow.time,
                        response_types: Some(ResponseTypes::Flow(flow)),
                    };
                    // The reader stopped (e.g. `--first N` reached, or a closed pipe).
                    Ok(tx.send(resp).is_ok())
                }
                Record::Span(s) if spans => {
                    let written = serde_json::to_writer(&mut span_out, s)
                        .map_err(std::io::Error::from)
                        .and_then(|()| span_out.write_all(b"\n"));
                    match written {
                        Ok(()) => Ok(true),
                        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
                        Err(e) => Err(e).context("cannot write to stdout"),
                    }
                }
                _ => Ok(true),
            }
        })?;
        match span_out.flush() {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                Err(e).context("cannot write to stdout")?
            }
            _ => {}
        }
        Ok((engine, summary))
    });
    // Not `stdout.lock()`: the engine thread writes spans to stdout too (then nothing else is
    // printed here), and a lock held here would block it forever.
    let mut printer = Printer::new(
        args.view.printer_options(),
        BufWriter::with_capacity(1 << 16, stdout),
    );
    let printed = print_window(rx.into_iter().map(Ok), &req, &pred, &mut printer)
        .and_then(|()| quiet_pipe(printer.finish()));
    let (engine, summary) = producer
        .join()
        .map_err(|_| anyhow::anyhow!("the replay engine panicked"))??;
    printed?;
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "--- counters ({})", args.file.display());
    for (name, value) in engine.counters().iter().filter(|(_, v)| *v > 0) {
        let _ = writeln!(err, "{name:>34} {value}");
    }
    report_undecodable(&mut err, &args.file, &summary, &engine)
}
