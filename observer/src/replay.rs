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
use flows::capture_file::{CaptureFileError, CaptureFileStats, CaptureParser, Step};
use flows::counters::Counters;
use flows::engine::{EngineConfig, L4Records};
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
use crate::workers::{new_engine, FlowEngine};

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
    /// Engine worker threads: connections are spread over them by a hash of their 5-tuple and
    /// the records merged back into capture order (the same records as one engine; generated
    /// trace/span ids differ). 1 decodes on the reading thread.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: u16,
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
    /// Sections, interfaces, packets naming no interface, malformed and other blocks.
    file: CaptureFileStats,
    /// Bytes at the end of the file that do not make a whole record (a capture cut off).
    truncated_tail_bytes: usize,
    /// Where and why reading stopped early at a corrupt record or block.
    corrupt: Option<(u64, CaptureFileError)>,
}

/// Runs the engine over every frame of a capture, calling `emit` for each record.
///
/// The file is streamed through [`CaptureParser`] in `READ_CHUNK` reads; frames borrow the
/// buffer. A last record cut short (a capture stopped mid-write) or a corrupt one ends the
/// file, reported in the summary, not as an error: what came before it is still replayed and
/// flushed. A file that is no capture at all is an error.
fn replay_file(
    path: &Path,
    engine: &mut dyn FlowEngine,
    mut emit: impl FnMut(&Record) -> Result<bool>,
) -> Result<ReplaySummary> {
    let mut file =
        File::open(path).with_context(|| format!("cannot open capture {}", path.display()))?;
    let mut parser = CaptureParser::new();
    let mut summary = ReplaySummary::default();
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let (mut start, mut eof, mut last_ts) = (0usize, false, 0u64);
    // File offset of `buf[0]`, for messages.
    let mut buf_offset = 0u64;
    let stopped = 'frames: loop {
        let step = match parser.parse(&buf[start..]) {
            Ok(step) => step,
            Err(e) if parser.format_name().is_none() => {
                return Err(e).with_context(|| format!("{} is not a capture", path.display()));
            }
            Err(e) => {
                summary.corrupt = Some((buf_offset + start as u64, e));
                break false;
            }
        };
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
                engine.handle_frame(f.ts_ns, f.link, f.data, meta);
                engine.handle_timeout(f.ts_ns);
                last_ts = last_ts.max(f.ts_ns);
                while let Some(r) = engine.poll_record() {
                    if !emit(&r)? {
                        break 'frames true;
                    }
                    engine.recycle(r);
                }
            }
            Step::NeedBytes(need) => {
                if eof {
                    summary.truncated_tail_bytes = buf.len() - start;
                    break false;
                }
                buf.drain(..start);
                buf_offset += start as u64;
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
    counters: &Counters,
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
    let malformed = summary.file.malformed_blocks;
    if malformed > 0 {
        let _ = writeln!(
            err,
            "flowscope: {path}: {malformed} pcapng interface or packet blocks are too short for their fields: skipped"
        );
    }
    if summary.truncated_tail_bytes > 0 {
        let _ = writeln!(
            err,
            "flowscope: {path}: the file ends inside a record; its last {} bytes were ignored",
            summary.truncated_tail_bytes
        );
    }
    let nothing = counters.packets == 0;
    if let Some((offset, e)) = &summary.corrupt {
        if nothing {
            bail!("{path}: stopped at byte {offset}: {e}; nothing before it could be decoded");
        }
        let _ = writeln!(
            err,
            "flowscope: {path}: stopped at byte {offset}: {e}; the frames before it were replayed"
        );
    }
    let skipped = summary.unsupported.values().sum::<u64>() + orphans + malformed;
    if skipped > 0 && nothing {
        bail!(
            "{path}: nothing could be decoded ({skipped} frames skipped) — flowscope reads Ethernet, raw IP, Linux cooked (v1, v2), BSD loopback (NULL, LOOP), NFLOG, PPP, Cisco HDLC, pflog, ipnet, PKTAP, FDDI and 802.11 captures"
        );
    }
    Ok(())
}

/// Runs `flowscope replay`.
pub fn run(args: &ReplayArgs) -> Result<()> {
    let config = EngineConfig {
        l4_records: match args.l4 {
            L4Arg::EveryPacket => L4Records::EveryPacket,
            L4Arg::ControlOnly => L4Records::ControlOnly,
            L4Arg::Off => L4Records::Off,
        },
        id_seed: args.seed,
        spans: args.spans && !args.quiet,
        // A capture file may be of overlay or mirror traffic: the conversations are inside.
        decapsulate_tunnels: true,
        ..EngineConfig::default()
    };
    // A fixed hash seed: a replay is reproducible whatever the worker count.
    let mut engine = new_engine(config, usize::from(args.workers), 0);
    let req = args.view.request(SystemTime::now())?;
    let pred = filter::compile(&req.whitelist, &req.blacklist)?;
    let node = crate::api::default_node_name();
    let stdout = std::io::stdout();
    let (quiet, spans) = (args.quiet, args.spans);
    // The engine runs on its own thread and hands flows over a bounded channel, so the
    // observe window/filter/printer code consumes them as a stream.
    let (tx, rx) = std::sync::mpsc::sync_channel::<GetFlowsResponse>(4096);
    let file = args.file.clone();
    let producer = std::thread::spawn(move || -> Result<(Counters, ReplaySummary)> {
        let mut span_out = BufWriter::with_capacity(1 << 16, std::io::stdout());
        let summary = replay_file(&file, &mut *engine, |r| {
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
        Ok((engine.counters().clone(), summary))
    });
    // Not `stdout.lock()`: the engine thread writes spans to stdout too (then nothing else is
    // printed here), and a lock held here would block it forever.
    let mut printer = Printer::new(
        args.view.printer_options(),
        BufWriter::with_capacity(1 << 16, stdout),
    );
    let printed = print_window(rx.into_iter().map(Ok), &req, &pred, &mut printer)
        .and_then(|()| quiet_pipe(printer.finish()));
    let (counters, summary) = producer
        .join()
        .map_err(|_| anyhow::anyhow!("the replay engine panicked"))??;
    printed?;
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "--- counters ({})", args.file.display());
    for (name, value) in counters.iter().filter(|(_, v)| *v > 0) {
        let _ = writeln!(err, "{name:>34} {value}");
    }
    report_undecodable(&mut err, &args.file, &summary, &counters)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flows::engine::Engine;
    use flows::synth::http_connection;

    /// A little-endian microsecond pcap file.
    fn pcap(linktype: u32, frames: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for v in [0xA1B2_C3D4u32, 0x0004_0002, 0, 0, 65535, linktype] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for (i, f) in frames.iter().enumerate() {
            for v in [1_700_000_000, i as u32, f.len() as u32, f.len() as u32] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(f);
        }
        out
    }

    /// A little-endian pcapng block.
    fn block(out: &mut Vec<u8>, block_type: u32, body: &[u8]) {
        let len = 12 + body.len().next_multiple_of(4) as u32;
        out.extend_from_slice(&block_type.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(body);
        out.resize(out.len().next_multiple_of(4), 0);
        out.extend_from_slice(&len.to_le_bytes());
    }

    /// A pcapng file with one interface per link type and `frames` as `(interface, bytes)`.
    fn pcapng(linktypes: &[u16], frames: &[(u32, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        let shb = [
            0x1A2B_3C4Du32.to_le_bytes(),
            [1, 0, 0, 0],
            [0xff; 4],
            [0xff; 4],
        ]
        .concat();
        block(&mut out, 0x0A0D_0D0A, &shb);
        for &l in linktypes {
            block(&mut out, 1, &[&l.to_le_bytes()[..], &[0; 6]].concat());
        }
        for (i, (iface, f)) in frames.iter().enumerate() {
            let mut body = Vec::new();
            for v in [*iface, 0, i as u32, f.len() as u32, f.len() as u32] {
                body.extend_from_slice(&v.to_le_bytes());
            }
            body.extend_from_slice(f);
            block(&mut out, 6, &body);
        }
        out
    }

    /// Replays `bytes` from a temporary file; returns the summary, the engine, the number of
    /// records, what was reported on stderr and whether the replay counts as failed.
    fn replay(name: &str, bytes: &[u8]) -> (ReplaySummary, Engine, usize, String, bool) {
        let path =
            std::env::temp_dir().join(format!("flowscope-replay-{}-{name}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        let mut engine = Engine::new(EngineConfig::default());
        let mut records = 0;
        let summary = replay_file(&path, &mut engine, |_| {
            records += 1;
            Ok(true)
        })
        .unwrap();
        let mut err = Vec::new();
        let failed = report_undecodable(&mut err, &path, &summary, engine.counters()).is_err();
        std::fs::remove_file(&path).unwrap();
        (
            summary,
            engine,
            records,
            String::from_utf8(err).unwrap(),
            failed,
        )
    }

    fn ethernet_frames() -> Vec<Vec<u8>> {
        http_connection(40000, 2, 10, 0)
            .into_iter()
            .map(|f| f.data)
            .collect()
    }

    #[test]
    fn an_unsupported_link_type_is_named_counted_and_fails_when_nothing_decodes() {
        let frames = vec![vec![0u8; 40]; 3];
        let (summary, engine, _, err, failed) = replay("user0.pcap", &pcap(147, &frames));
        assert_eq!(summary.unsupported, BTreeMap::from([(147, 3)]));
        assert_eq!(engine.counters().decode_unsupported_link_type, 3);
        assert!(
            err.contains("link type 147 (LINKTYPE_USER0) is not decoded: 3 frames skipped"),
            "{err}"
        );
        assert!(failed, "nothing decoded: not an empty success");
    }

    #[test]
    fn an_undecodable_interface_beside_a_decodable_one_is_reported_not_fatal() {
        let mut frames: Vec<(u32, Vec<u8>)> =
            ethernet_frames().into_iter().map(|f| (0, f)).collect();
        frames.push((1, vec![0; 20]));
        frames.push((2, vec![0; 20])); // no IDB 2
        let (summary, engine, records, err, failed) =
            replay("mixed.pcapng", &pcapng(&[1, 147], &frames));
        assert!(!failed);
        assert!(records > 0);
        assert_eq!(summary.unsupported, BTreeMap::from([(147, 1)]));
        assert_eq!(summary.file.packets_without_interface, 1);
        assert_eq!(engine.counters().http1_responses, 2);
        assert!(err.contains("link type 147 (LINKTYPE_USER0)"), "{err}");
        assert!(err.contains("1 packets name a pcapng interface"), "{err}");
    }

    #[test]
    fn a_cut_off_or_corrupt_end_keeps_what_came_before() {
        let mut bytes = pcap(1, &ethernet_frames());
        bytes.truncate(bytes.len() - 5);
        let (summary, engine, _, err, failed) = replay("cut.pcap", &bytes);
        assert!(!failed);
        assert!(summary.truncated_tail_bytes > 0);
        assert!(engine.counters().http1_requests == 2, "{err}");
        assert!(err.contains("the file ends inside a record"), "{err}");

        let frames: Vec<_> = ethernet_frames().into_iter().map(|f| (0, f)).collect();
        let mut bytes = pcapng(&[1], &frames);
        bytes.extend_from_slice(&[6, 0, 0, 0, 7, 0, 0, 0, 7, 0, 0, 0]);
        let (summary, engine, _, err, failed) = replay("corrupt.pcapng", &bytes);
        assert!(!failed);
        assert!(summary.corrupt.is_some());
        assert_eq!(engine.counters().http1_responses, 2);
        assert!(err.contains("stopped at byte"), "{err}");
    }
}
