//! `flowscope replay FILE`: run the flow engine over a pcap/pcapng capture and print records.
//!
//! The same engine the agent drives, fed from a file: frames in capture order, the capture's
//! timestamps as time, `handle_timeout` after each frame and `flush` at the end.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{bail, Context, Result};
use flows::engine::{Engine, EngineConfig, L4Records};
use flows::packet::{CaptureMeta, Direction, LinkType};
use flows::record::Record;
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketOption;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgReader};

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
    /// Capture to read (pcap or pcapng; Ethernet, raw IP or Linux cooked link types).
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

/// One frame from the capture.
struct Frame {
    ts_ns: u64,
    link: LinkType,
    direction: Direction,
    ifindex: u32,
    orig_len: u32,
}

/// pcapng `if_tsresol` (RFC draft-ietf-opsawg-pcapng §4.2): MSB clear = 10^-n s, set = 2^-n s.
/// Default 10^-6.
fn ts_to_ns(raw: u64, tsresol: u8) -> u64 {
    let n = u32::from(tsresol & 0x7f);
    if tsresol & 0x80 == 0 {
        if n <= 9 {
            raw.saturating_mul(10u64.pow(9 - n))
        } else {
            raw / 10u64.pow((n - 9).min(19))
        }
    } else {
        ((u128::from(raw) * 1_000_000_000) >> n.min(127)) as u64
    }
}

/// Runs the engine over every frame of a capture, calling `emit` for each record.
fn replay_file(
    path: &PathBuf,
    engine: &mut Engine,
    mut emit: impl FnMut(&Record) -> Result<bool>,
) -> Result<()> {
    let file =
        File::open(path).with_context(|| format!("cannot open capture {}", path.display()))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut magic = [0u8; 4];
    reader
        .read_exact(&mut magic)
        .with_context(|| format!("{} is too short to be a capture", path.display()))?;
    let chained = std::io::Cursor::new(magic).chain(reader);
    let mut last_ts = 0u64;
    let mut stop = false;
    let mut feed = |engine: &mut Engine, f: Frame, data: &[u8]| -> Result<bool> {
        let meta = CaptureMeta {
            ts_ns: f.ts_ns,
            ifindex: f.ifindex,
            direction: f.direction,
            orig_len: f.orig_len,
            socket_cookie: None,
        };
        // Decode failures are counted by the engine and shown in the summary.
        let _ = engine.handle_frame(f.ts_ns, f.link, data, meta);
        engine.handle_timeout(f.ts_ns);
        last_ts = last_ts.max(f.ts_ns);
        while let Some(r) = engine.poll_record() {
            if !emit(&r)? {
                return Ok(false);
            }
        }
        Ok(true)
    };
    if magic == [0x0a, 0x0d, 0x0d, 0x0a] {
        let mut ng = PcapNgReader::new(chained)
            .with_context(|| format!("{}: bad pcapng section header", path.display()))?;
        // Per interface: link type and timestamp resolution.
        let mut ifaces: Vec<(Option<LinkType>, u8)> = Vec::new();
        while let Some(block) = ng.next_block() {
            let block =
                block.with_context(|| format!("{}: corrupt pcapng block", path.display()))?;
            match block {
                Block::InterfaceDescription(idb) => {
                    let tsresol = idb
                        .options
                        .iter()
                        .find_map(|o| match o {
                            InterfaceDescriptionOption::IfTsResol(r) => Some(*r),
                            _ => None,
                        })
                        .unwrap_or(6);
                    ifaces.push((
                        LinkType::from_pcap_linktype(u32::from(idb.linktype)),
                        tsresol,
                    ));
                }
                Block::EnhancedPacket(epb) => {
                    let Some(&(Some(link), tsresol)) = ifaces.get(epb.interface_id as usize) else {
                        continue;
                    };
                    // epb_flags bits 0-1: 01 inbound, 10 outbound.
                    let direction = epb
                        .options
                        .iter()
                        .find_map(|o| match o {
                            EnhancedPacketOption::Flags(f) => Some(match f & 3 {
                                1 => Direction::Ingress,
                                2 => Direction::Egress,
                                _ => Direction::Unknown,
                            }),
                            _ => None,
                        })
                        .unwrap_or(Direction::Unknown);
                    // pcap-file hands the raw timestamp units over as "nanoseconds".
                    let raw = epb.timestamp.as_nanos() as u64;
                    let frame = Frame {
                        ts_ns: ts_to_ns(raw, tsresol),
                        link,
                        direction,
                        ifindex: epb.interface_id + 1,
                        orig_len: epb.original_len,
                    };
                    if !feed(engine, frame, &epb.data)? {
                        stop = true;
                        break;
                    }
                }
                _ => {}
            }
        }
    } else {
        let mut pcap = PcapReader::new(chained)
            .with_context(|| format!("{} is neither pcap nor pcapng", path.display()))?;
        let linktype = u32::from(pcap.header().datalink);
        let Some(link) = LinkType::from_pcap_linktype(linktype) else {
            bail!(
                "{}: link type {linktype} is not supported — capture with Ethernet, raw IP or Linux cooked headers (e.g. tcpdump -i any)",
                path.display()
            );
        };
        while let Some(pkt) = pcap.next_packet() {
            let pkt = pkt.with_context(|| format!("{}: corrupt pcap record", path.display()))?;
            let frame = Frame {
                ts_ns: pkt.timestamp.as_nanos() as u64,
                link,
                direction: Direction::Unknown,
                ifindex: 0,
                orig_len: pkt.orig_len,
            };
            if !feed(engine, frame, &pkt.data)? {
                stop = true;
                break;
            }
        }
    }
    if !stop {
        engine.flush(last_ts);
        while let Some(r) = engine.poll_record() {
            if !emit(&r)? {
                break;
            }
        }
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
    let producer = std::thread::spawn(move || -> Result<Engine> {
        let mut span_out = BufWriter::with_capacity(1 << 16, std::io::stdout());
        replay_file(&file, &mut engine, |r| {
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
        Ok(engine)
    });
    // Not `stdout.lock()`: the engine thread writes spans to stdout too (then nothing else is
    // printed here), and a lock held here would block it forever.
    let mut printer = Printer::new(
        args.view.printer_options(),
        BufWriter::with_capacity(1 << 16, stdout),
    );
    let printed = print_window(rx.into_iter().map(Ok), &req, &pred, &mut printer)
        .and_then(|()| quiet_pipe(printer.finish()));
    let engine = producer
        .join()
        .map_err(|_| anyhow::anyhow!("the replay engine panicked"))??;
    printed?;
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "--- counters ({})", args.file.display());
    for (name, value) in engine.counters().iter().filter(|(_, v)| *v > 0) {
        let _ = writeln!(err, "{name:>34} {value}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::ts_to_ns;

    #[test]
    fn pcapng_timestamp_resolutions() {
        assert_eq!(ts_to_ns(1_500_000, 6), 1_500_000_000);
        assert_eq!(ts_to_ns(7, 9), 7);
        assert_eq!(ts_to_ns(1 << 10, 0x80 | 10), 1_000_000_000);
    }
}
