//! From a captured frame to flows: the flows engine decodes and pairs, the agent names the
//! interface, then each flow goes into the store the Observer API serves and, unless `-o none`,
//! to stdout through the same printer `flowscope observe` uses.

use std::{
    collections::HashMap,
    io::Write,
    sync::{Arc, Mutex},
};

use ebpf_tc::wire::{L2Kind, PacketHdr, WireDirection};
use flows::{
    engine::{Engine, EngineConfig},
    packet::{CaptureMeta, Direction, LinkType},
    record::Record,
};
use serde::{Deserialize, Serialize};

use super::clock::MonoToWall;
use crate::{
    api::{convert::flow_to_proto, FlowStore},
    cli::printer::{Format, Printer, PrinterOptions},
};

/// How the agent prints flows on stdout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Output {
    /// One line per flow, like `hubble observe`.
    Compact,
    /// `KEY: value` blocks.
    Dict,
    /// Hubble's flow JSON, one per line.
    Json,
    /// GetFlowsResponse JSON, one per line (what `flowscope observe --input-file` reads).
    Jsonpb,
    /// Nothing: flows are only served over the API (the DaemonSet's choice).
    None,
}

impl Output {
    fn format(self) -> Option<Format> {
        match self {
            Output::Compact => Some(Format::Compact),
            Output::Dict => Some(Format::Dict),
            Output::Json => Some(Format::Json),
            Output::Jsonpb => Some(Format::Jsonpb),
            Output::None => None,
        }
    }
}

/// Engine counters as last published, for `flowscope status` (the engine itself lives on the
/// reader task).
pub type SharedCounters = Arc<Mutex<Vec<(String, u64)>>>;

/// Receives every captured frame of one capture path, in order.
pub struct Pipeline<W: Write> {
    engine: Engine,
    printer: Option<Printer<W>>,
    store: Arc<FlowStore>,
    clock: Option<MonoToWall>,
    names: HashMap<u32, String>,
    published: SharedCounters,
    last_now: u64,
}

impl<W: Write> Pipeline<W> {
    /// `clock` converts kernel monotonic stamps; None when stamps are already wall-clock.
    pub fn new(
        out: W,
        output: Output,
        clock: Option<MonoToWall>,
        store: Arc<FlowStore>,
        published: SharedCounters,
    ) -> Self {
        let engine = Engine::new(EngineConfig {
            id_seed: random_seed(),
            ..EngineConfig::default()
        });
        let printer = output.format().map(|format| {
            Printer::new(
                PrinterOptions {
                    format,
                    color: false,
                    streaming: true,
                    ..PrinterOptions::default()
                },
                out,
            )
        });
        Self {
            engine,
            printer,
            store,
            clock,
            names: HashMap::new(),
            published,
            last_now: 0,
        }
    }

    /// Kernel stamps are CLOCK_MONOTONIC: convert them with `clock`.
    pub fn set_clock(&mut self, clock: MonoToWall) {
        self.clock = Some(clock);
    }

    fn iface_name(&mut self, ifindex: u32) -> String {
        self.names
            .entry(ifindex)
            .or_insert_with(|| {
                ebpf_tc::iface::name_of(ifindex).unwrap_or_else(|| format!("if{ifindex}"))
            })
            .clone()
    }

    /// Handles one captured frame.
    pub fn on_frame(&mut self, hdr: &PacketHdr, data: &[u8]) -> std::io::Result<()> {
        let ts_ns = match self.clock {
            Some(c) => c.wall_ns(hdr.ts_ns),
            None => hdr.ts_ns,
        };
        self.last_now = self.last_now.max(ts_ns);
        let meta = CaptureMeta {
            ts_ns,
            ifindex: hdr.ifindex,
            direction: match hdr.direction {
                WireDirection::Ingress => Direction::Ingress,
                WireDirection::Egress => Direction::Egress,
            },
            orig_len: hdr.orig_len,
            socket_cookie: hdr.cookie(),
        };
        let link = match hdr.l2 {
            L2Kind::Ethernet => LinkType::Ethernet,
            L2Kind::RawIp => LinkType::RawIp,
        };
        // Decode errors are counted inside the engine (and shown by `flowscope status`).
        let _ = self.engine.handle_frame(ts_ns, link, data, meta);
        self.drain()
    }

    /// Runs the engine's timers (idle eviction, unanswered requests) at wall time `now_ns`,
    /// and publishes the counters.
    pub fn tick(&mut self, now_ns: u64) -> std::io::Result<()> {
        self.last_now = self.last_now.max(now_ns);
        self.engine.handle_timeout(self.last_now);
        self.drain()?;
        let counters: Vec<(String, u64)> = self
            .engine
            .counters()
            .iter()
            .map(|(k, v)| (format!("engine_{k}"), v))
            .collect();
        *self.published.lock().unwrap_or_else(|p| p.into_inner()) = counters;
        self.flush()
    }

    /// Emits what is still pending (at exit).
    pub fn finish(&mut self) -> std::io::Result<()> {
        self.engine.flush(self.last_now);
        self.drain()?;
        if let Some(p) = self.printer.as_mut() {
            p.finish()?;
        }
        Ok(())
    }

    fn drain(&mut self) -> std::io::Result<()> {
        while let Some(rec) = self.engine.poll_record() {
            match rec {
                Record::Flow(f) => {
                    let mut pf = flow_to_proto(&f, self.store.node_name());
                    if let Some(i) = pf.interface.as_mut() {
                        i.name = self.iface_name(i.index);
                    }
                    if let Some(p) = self.printer.as_mut() {
                        p.print_flow(&pf)?;
                    }
                    self.store.push(pf);
                }
                // Spans go to OTLP (issue 7); until then they are counted by the engine.
                Record::Span(_) => {}
            }
        }
        Ok(())
    }

    /// Flushes buffered output (after each batch).
    pub fn flush(&mut self) -> std::io::Result<()> {
        match self.printer.as_mut() {
            Some(p) => p.writer().flush(),
            None => Ok(()),
        }
    }
}

/// A seed for span and trace ids that differs between runs and hosts.
fn random_seed() -> u64 {
    let mut b = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_ok()
    {
        u64::from_ne_bytes(b)
    } else {
        std::process::id() as u64 ^ 0x9e37_79b9_7f4a_7c15
    }
}
