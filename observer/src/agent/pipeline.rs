//! From a captured frame to flows: the flows engine decodes and pairs, the agent names the
//! interface, then each flow goes into the store the Observer API serves and, unless `-o none`,
//! to stdout through the same printer `flowscope observe` uses.

use std::{
    collections::{HashMap, VecDeque},
    io::Write,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
};

use ebpf_kprobe::{OwnerCache, SockEvent, SocketTuple, Transport};
use ebpf_tc::wire::{L2Kind, PacketHdr, WireDirection};
use flows::{
    engine::{CaptureHint, EngineConfig},
    key::Endpoint,
    packet::{CaptureMeta, Direction, LinkType, TcpFlags},
    record::{Flow, Layer4, ProcessInfo, Record, Span},
    roles::{spans_for_owners, EndOwners},
    trace::SpanId,
};
use serde::{Deserialize, Serialize};

use super::{
    clock::{monotonic_now_ns, wall_now_ns, MonoToWall},
    syscall_spans::{SyscallSpanConfig, SyscallSpans},
};
use crate::{
    api::{store::EngineFlow, FlowStore},
    cli::printer::{Format, Printer, PrinterOptions},
    workers::{new_engine, FlowEngine},
};
use ebpf_kprobe::syscalls::SyscallEvent;

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

/// Writes counters into the published list in place, ten times a second: a counter already at
/// its position keeps its name's `String` (the set and order of counters change only when a
/// module starts), where rebuilding every name each time was about a fifth of an idle agent's
/// CPU (BENCHMARKS.md, "The agent's wakeups").
struct CounterWriter<'a> {
    out: &'a mut Vec<(String, u64)>,
    at: usize,
}

impl<'a> CounterWriter<'a> {
    fn new(out: &'a mut Vec<(String, u64)>) -> Self {
        Self { out, at: 0 }
    }

    /// The next counter, named `prefix` then `name`.
    fn put(&mut self, prefix: &str, name: &str, value: u64) {
        match self.out.get_mut(self.at) {
            Some((n, v))
                if n.len() == prefix.len() + name.len()
                    && n.starts_with(prefix)
                    && n.ends_with(name) =>
            {
                *v = value
            }
            _ => {
                self.out.truncate(self.at);
                self.out.push((format!("{prefix}{name}"), value));
            }
        }
        self.at += 1;
    }

    /// Drops the counters of the previous list past the last one written.
    fn finish(self) {
        self.out.truncate(self.at);
    }
}

/// Receives every captured frame of one capture path, in order.
pub struct Pipeline<W: Write> {
    /// One engine, or the engine sharded over `--workers` threads.
    engine: Box<dyn FlowEngine>,
    printer: Option<Printer<W>>,
    store: Arc<FlowStore>,
    clock: Option<MonoToWall>,
    /// Interface names by index: looked up once per flow, so hashed with foldhash (the
    /// standard SipHash cost more than the rest of the lookup).
    names: HashMap<u32, Arc<str>, foldhash::fast::RandomState>,
    published: SharedCounters,
    last_now: u64,
    owners: OwnerCache,
    /// Owners of the two ends (client, server) of each L7 exchange in flight, keyed by its
    /// span id: the span comes at the response, after the exchange's flows told us who the
    /// ends are.
    span_owner: HashMap<SpanId, EndOwners, foldhash::fast::RandomState>,
    /// Records waiting for their owner, with the wall time after which they go out anyway.
    pending: VecDeque<(u64, Record)>,
    /// Attribution events applied so far.
    sock_events: u64,
    /// The engine's IP byte counters (ingress, egress, unknown) as last given to the metrics.
    bytes_reported: [u64; 3],
    /// `(sock_events, wall time)` when the head of `pending` last found no owner.
    blocked: Option<(u64, u64)>,
    exports: crate::export::ExportHandles,
    /// stdout when no flow printer owns it (for `--print-spans` with `-o none`).
    raw_out: Option<W>,
    /// Leave out flows and spans with this agent at either end.
    exclude_self: bool,
    /// Syscall spans (`--syscall-spans`), when on.
    syscalls: Option<SyscallSpans>,
    /// TLS plaintext chunks whose socket the probes could not tell (not joinable to a flow).
    tls_without_socket: u64,
    /// TLS plaintext chunks tied to their thread's last socket (memory BIOs): a guess.
    tls_thread_guesses: u64,
    /// Where TLS connections without plaintext are reported, by process (for status).
    tls: Option<super::tls::SharedTls>,
    /// The process each TLS socket's plaintext came from, by (local, remote): its flows'
    /// owner when the attribution events no longer know the socket (a close-delimited
    /// response completes when the connection leaves the engine, after its socket closed).
    tls_owners: HashMap<(SocketAddr, SocketAddr), ProcessInfo, foldhash::fast::RandomState>,
    /// Insertion order of `tls_owners`, to bound it.
    tls_owner_order: VecDeque<(SocketAddr, SocketAddr)>,
    /// Kernel drops of a connect's SYN with no owner yet, waiting (up to
    /// [`ATTRIBUTION_HOLD_NS`]) for a kernel TCP event to name the sending socket's 4-tuple.
    pending_drops: VecDeque<PendingDrop>,
    /// The owners [`Pipeline::owners_of`] found for a connection's flows, while the owner
    /// cache cannot have changed (see [`OwnersMemo`]).
    owners_memo: OwnersMemo,
    /// The capture's table of body ranges to cut to headers (kernel capture paths only).
    body_skip: Option<ebpf_tc::BodySkip>,
    /// Times the ring reader gave up its CPU between two slices of a batch (see
    /// `agent::pace`), as it last said.
    reader_yields: u64,
}

/// What [`Pipeline::owners_of`] answered for a connection's flows, by everything the answer
/// depends on: `(local, remote, transport, socket cookie)` (TLS plaintext's flows are not kept). The owner
/// cache's lookups hash and compare the tuple three times per flow and rebuild both
/// [`ProcessInfo`]s (11% of the agent's instructions per HTTP/1 exchange); a connection's
/// flows come in runs between kernel socket events. Only answers with both ends known are
/// kept, and all are forgotten whenever the owner cache may have changed (an attribution
/// event, its expiry on a tick, a /proc scan a miss may start, a join by a kernel TCP event),
/// so an answer from the memo is the one the owner cache would give.
#[derive(Debug, Default)]
struct OwnersMemo {
    map: HashMap<OwnersKey, (ProcessInfo, ProcessInfo), foldhash::fast::RandomState>,
}

/// [`OwnersMemo`]'s key: `(local, remote, transport, socket cookie)` as plain integers, so
/// hashing it takes a few word writes instead of `SocketAddr`'s field-by-field `Hash` (the
/// variant, every octet, the port: two dozen writes per key, a third of `owners_of`). One
/// key per pair of socket addresses built by [`endpoints`] (no IPv6 flow label or scope).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct OwnersKey {
    local: u128,
    remote: u128,
    /// Both ports, which of the addresses are IPv6, and the transport.
    ports_kinds: u64,
    cookie: Option<u64>,
}

impl OwnersKey {
    fn new(local: SocketAddr, remote: SocketAddr, proto: Transport, cookie: Option<u64>) -> Self {
        // IPv4 as its 32 bits with the family in `ports_kinds`: never equal to an IPv6 key.
        let bits = |a: &SocketAddr| match a.ip() {
            IpAddr::V4(v4) => (u128::from(v4.to_bits()), 0),
            IpAddr::V6(v6) => (v6.to_bits(), 1),
        };
        let ((l, l6), (r, r6)) = (bits(&local), bits(&remote));
        let transport = match proto {
            Transport::Tcp => 0,
            Transport::Udp => 1,
        };
        Self {
            local: l,
            remote: r,
            ports_kinds: u64::from(local.port()) << 48
                | u64::from(remote.port()) << 32
                | l6 << 2
                | r6 << 1
                | transport,
            cookie,
        }
    }
}

/// Most connections in [`OwnersMemo`]; beyond it, it starts over.
const MAX_OWNERS_MEMO: usize = 4096;

impl OwnersMemo {
    /// The owner cache may have changed: forget everything.
    fn clear(&mut self) {
        if !self.map.is_empty() {
            self.map.clear();
        }
    }
}

/// Most TLS sockets whose plaintext's process is remembered.
const MAX_TLS_OWNERS: usize = 16_384;

/// A drop waiting for its owner: the flow and the kernel's reason, and the sockets to ask.
#[derive(Debug)]
struct PendingDrop {
    flow: Flow,
    kernel: crate::api::proto::flowscope::KernelDrop,
    candidates: [SocketTuple; 2],
}

/// Most drops waiting for their owner; beyond it they go out unattributed.
const MAX_PENDING_DROPS: usize = 256;

/// How long a record may wait for the kernel event naming its local process.
const ATTRIBUTION_HOLD_NS: u64 = 250_000_000;
/// A head waiting for its owner is looked up again after this long even without new events.
const RETRY_BLOCKED_NS: u64 = 5_000_000;
/// Most records waiting; beyond it the oldest go out unattributed.
const MAX_PENDING: usize = 65_536;

/// Most exchanges in flight whose owner is remembered for their span.
const MAX_SPAN_OWNERS: usize = 16_384;

fn process_info(p: &ebpf_kprobe::ProcessInfo) -> ProcessInfo {
    ProcessInfo {
        pid: p.pid,
        tid: Some(p.tid).filter(|t| *t != 0),
        comm: Some(p.comm.clone()).filter(|c| !c.is_empty()),
        cgroup_id: Some(p.cgroup_id).filter(|c| *c != 0),
        container_id: p.container_id.clone(),
        thread_name: p.thread_name.clone(),
        // The kernel reports pids of the initial pid namespace; the agent runs in it (on the
        // host, or with hostPID as the DaemonSet does), so its own pid is comparable.
        agent: p.pid == own_pid(),
    }
}

/// This agent's pid, read once: `std::process::id()` is a getpid(2) system call each time
/// (glibc no longer caches it), and every attributed record asks (5% of the agent's CPU).
fn own_pid() -> u32 {
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *PID.get_or_init(std::process::id)
}

/// `(source, destination, transport)` of a flow, when it has ports.
fn endpoints(f: &Flow) -> Option<(SocketAddr, SocketAddr, Transport)> {
    let (sp, dp, t) = match f.l4 {
        Layer4::Tcp {
            source_port,
            destination_port,
            ..
        } => (source_port, destination_port, Transport::Tcp),
        Layer4::Udp {
            source_port,
            destination_port,
        } => (source_port, destination_port, Transport::Udp),
        _ => return None,
    };
    let (s, d): (IpAddr, IpAddr) = (f.ip.source, f.ip.destination);
    Some((SocketAddr::new(s, sp), SocketAddr::new(d, dp), t))
}

impl<W: Write> Pipeline<W> {
    /// Stamps are taken as wall-clock until [`Pipeline::set_clock`]. `workers` engine threads
    /// (1: the engine runs on the caller's thread).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        out: W,
        output: Output,
        store: Arc<FlowStore>,
        published: SharedCounters,
        owners: OwnerCache,
        l4_records: flows::engine::L4Records,
        exports: crate::export::ExportHandles,
        workers: usize,
        body_skip: Option<ebpf_tc::BodySkip>,
        body_skip_min_bytes: u64,
    ) -> Self {
        let config = EngineConfig {
            id_seed: random_seed(),
            l4_records,
            // Hints only where a capture takes them.
            capture_hint_min_bytes: if body_skip.is_some() {
                body_skip_min_bytes
            } else {
                0
            },
            spans: exports.wants_spans(),
            // Which ends are local processes is known only here, from the owners.
            span_both_ends: exports.wants_spans(),
            ..EngineConfig::default()
        };
        // A random hash seed: no one outside can aim their connections at one worker.
        let engine = new_engine(config, workers, random_seed());
        let (printer, raw_out) = match output.format() {
            Some(format) => (
                Some(Printer::new(
                    PrinterOptions {
                        format,
                        color: false,
                        streaming: true,
                        ..PrinterOptions::default()
                    },
                    out,
                )),
                None,
            ),
            None => (None, Some(out)),
        };
        Self {
            engine,
            printer,
            store,
            clock: None,
            names: HashMap::default(),
            published,
            last_now: 0,
            owners,
            span_owner: HashMap::default(),
            pending: VecDeque::new(),
            sock_events: 0,
            bytes_reported: [0; 3],
            blocked: None,
            exports,
            raw_out,
            exclude_self: false,
            tls_without_socket: 0,
            tls_thread_guesses: 0,
            tls: None,
            tls_owners: HashMap::default(),
            tls_owner_order: VecDeque::new(),
            syscalls: None,
            pending_drops: VecDeque::new(),
            owners_memo: OwnersMemo::default(),
            body_skip,
            reader_yields: 0,
        }
    }

    /// Turns on syscall spans: the syscalls given to [`Pipeline::on_syscall`] become child
    /// spans of the requests they served.
    pub fn enable_syscall_spans(&mut self, cfg: SyscallSpanConfig) {
        self.syscalls = Some(SyscallSpans::new(cfg, random_seed()));
    }

    /// Takes one finished syscall of a traced process.
    pub fn on_syscall(&mut self, ev: &SyscallEvent) {
        let clock = self.clock;
        if let Some(s) = self.syscalls.as_mut() {
            s.on_event(ev, |t| clock.map_or(t, |c| c.wall_ns(t)));
        }
    }

    /// The ring reader's yields so far, published with the counters at the next tick.
    pub fn note_reader_yields(&mut self, yields: u64) {
        self.reader_yields = yields;
    }

    /// Leaves out every flow and span with this agent at either end (`exclude_self`).
    pub fn set_exclude_self(&mut self, exclude: bool) {
        self.exclude_self = exclude;
    }

    /// Reports the processes at the ends of TLS connections no plaintext came for to `tls`.
    pub fn set_tls(&mut self, tls: super::tls::SharedTls) {
        self.tls = Some(tls);
    }

    /// Names the local processes at the ends of the TLS connections that ended without
    /// plaintext (now, while their sockets' owners are still remembered).
    fn name_tls_blind_spots(&mut self) {
        self.owners_memo.clear();
        let spots = self.engine.take_tls_blind_spots();
        let Some(tls) = self.tls.clone() else {
            return;
        };
        for b in spots {
            let client = SocketAddr::new(b.client.addr, b.client.port);
            let server = SocketAddr::new(b.server.addr, b.server.port);
            let mut named = false;
            for (local, remote) in [(client, server), (server, client)] {
                let t = SocketTuple {
                    proto: Transport::Tcp,
                    local,
                    remote,
                };
                if let Some(p) = self.owners.lookup_local_no_scan(&t) {
                    tls.note_blind_spot(p.pid, &p.comm);
                    named = true;
                }
            }
            if !named {
                tls.note_blind_spot_unnamed();
            }
        }
    }

    /// Kernel stamps are CLOCK_MONOTONIC: convert them with `clock`.
    pub fn set_clock(&mut self, clock: MonoToWall) {
        self.clock = Some(clock);
    }

    /// Learns a socket's owner from the attribution programs. Drain these before the packets
    /// read after them, so a connection's first packet already finds its owner.
    pub fn on_sock_event(&mut self, ev: &SockEvent) {
        self.sock_events += 1;
        self.owners_memo.clear();
        self.owners.apply(ev);
    }

    /// `(local owner, peer owner)` of a flow: the local socket sends egress packets and
    /// receives ingress ones; the peer is the other end when it lives on this node too.
    /// Kept out of line so `bench/exchange_cost.sh` can tell its cost.
    #[inline(never)]
    fn owners_of(&mut self, f: &Flow) -> (Option<ProcessInfo>, Option<ProcessInfo>) {
        let Some((src, dst, proto)) = endpoints(f) else {
            return (None, None);
        };
        let (local, remote) = match f.traffic_direction {
            Direction::Ingress => (dst, src),
            _ => (src, dst),
        };
        let cookie = match f.traffic_direction {
            Direction::Egress => f.socket_cookie,
            _ => None,
        };
        let key = OwnersKey::new(local, remote, proto, cookie);
        if let Some((mine, peer)) = self.owners_memo.map.get(&key) {
            return (Some(mine.clone()), Some(peer.clone()));
        }
        let (mine, peer) = self.lookup_owners(f, local, remote, proto);
        match (&mine, &peer) {
            // Plaintext's flows may be owned through `tls_owners`, which the memo does not
            // follow: never kept.
            (Some(m), Some(p)) if f.l7_source.is_none() => {
                if self.owners_memo.map.len() >= MAX_OWNERS_MEMO {
                    self.owners_memo.clear();
                }
                self.owners_memo.map.insert(key, (m.clone(), p.clone()));
            }
            // A miss may have started a /proc scan that changes later answers.
            _ => self.owners_memo.clear(),
        }
        (mine, peer)
    }

    /// [`Pipeline::owners_of`] from the owner cache.
    fn lookup_owners(
        &mut self,
        f: &Flow,
        local: SocketAddr,
        remote: SocketAddr,
        proto: Transport,
    ) -> (Option<ProcessInfo>, Option<ProcessInfo>) {
        let by_cookie = match (f.traffic_direction, f.socket_cookie) {
            (Direction::Egress, Some(c)) => self.owners.lookup_cookie(c).map(process_info),
            _ => None,
        };
        // Plaintext came from a known process: the TLS probes said which (the attribution
        // events may have forgotten the socket by the time its last flow comes out).
        let from_tls = f
            .l7_source
            .and_then(|_| self.tls_owners.get(&(local, remote)).cloned());
        let mine = by_cookie.or_else(|| {
            self.owners
                .lookup_local(&SocketTuple {
                    proto,
                    local,
                    remote,
                })
                .map(process_info)
                .or(from_tls)
        });
        // The far end is usually another host: never scan /proc for it.
        let peer = self
            .owners
            .lookup_local_no_scan(&SocketTuple {
                proto,
                local: remote,
                remote: local,
            })
            .map(process_info);
        (mine, peer)
    }

    fn iface_name(&mut self, ifindex: u32) -> Arc<str> {
        self.names
            .entry(ifindex)
            .or_insert_with(|| {
                ebpf_tc::iface::name_of(ifindex)
                    .unwrap_or_else(|| format!("if{ifindex}"))
                    .into()
            })
            .clone()
    }

    /// The engine's counters as of now (the exchange-cost harness counts the exchanges its
    /// measured feed decoded with them).
    #[cfg(test)]
    pub fn engine_counters(&self) -> &flows::counters::Counters {
        self.engine.counters()
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
        self.engine.handle_frame(ts_ns, link, data, meta);
        self.drain()
    }

    /// Handles one chunk of TLS plaintext from the probes (a `SSL_read`/`SSL_write`): the
    /// engine decodes it as the connection's bytes, joined to the flow its packets made. Call
    /// it in kernel-time order with the frames (see `source::drain_ring`).
    pub fn on_tls(&mut self, ev: &ebpf_tls::TlsEvent<'_>) -> std::io::Result<()> {
        let Some(sock) = ev.socket else {
            self.tls_without_socket += 1;
            return Ok(());
        };
        self.tls_thread_guesses += u64::from(sock.thread_guess);
        let ts_ns = match self.clock {
            Some(c) => c.wall_ns(ev.ts_ns),
            None => ev.ts_ns,
        };
        self.last_now = self.last_now.max(ts_ns);
        let key = (sock.local, sock.remote);
        if !self.tls_owners.contains_key(&key) {
            if self.tls_owner_order.len() >= MAX_TLS_OWNERS {
                if let Some(old) = self.tls_owner_order.pop_front() {
                    self.tls_owners.remove(&old);
                }
            }
            self.tls_owner_order.push_back(key);
            self.tls_owners.insert(
                key,
                ProcessInfo {
                    pid: ev.pid,
                    tid: Some(ev.tid).filter(|t| *t != 0),
                    comm: Some(ev.comm.as_str().into()).filter(|c: &Arc<str>| !c.is_empty()),
                    agent: ev.pid == own_pid(),
                    ..ProcessInfo::default()
                },
            );
        }
        let endpoint = |a: SocketAddr| flows::key::Endpoint {
            addr: a.ip(),
            port: a.port(),
        };
        let chunk = flows::engine::PlaintextChunk {
            ts_ns,
            local: endpoint(sock.local),
            remote: endpoint(sock.remote),
            sent: ev.kind == ebpf_tls::TlsEventKind::Write,
            data: ev.data,
            missing: ev.missing(),
            source: match ev.stack {
                ebpf_tls::TlsStack::OpenSsl => flows::record::L7Source::OpensslUprobe,
                ebpf_tls::TlsStack::Go => flows::record::L7Source::GoTlsUprobe,
            },
            socket_cookie: (sock.cookie != 0).then_some(sock.cookie),
        };
        self.engine.handle_plaintext(ts_ns, &chunk);
        self.drain()
    }

    /// Whether anything waits in the agent for a later call: records held for their owner,
    /// drops held for theirs, frames out at engine workers, or syscall spans (on: always
    /// counted as waiting). The reader polls often while this holds
    /// (`agent::source::RING_POLL_HOLDING`).
    pub fn holds_records(&self) -> bool {
        !self.pending.is_empty()
            || !self.pending_drops.is_empty()
            || self.syscalls.is_some()
            || !self.engine.is_settled()
    }

    /// Runs the engine's timers (idle eviction, unanswered requests) at wall time `now_ns`,
    /// and publishes the counters.
    pub fn tick(&mut self, now_ns: u64) -> std::io::Result<()> {
        self.last_now = self.last_now.max(now_ns);
        self.engine.handle_timeout(self.last_now);
        self.drain()?;
        self.owners_memo.clear();
        self.owners.expire(monotonic_now_ns());
        if let Some(s) = self.syscalls.as_mut() {
            s.expire(self.last_now);
            let now = wall_now_ns();
            let mut due = s.settled(now);
            due.extend(s.unclaimed(now));
            self.emit_spans(due)?;
        }
        self.release_drops(Some(self.last_now))?;
        self.report_bytes();
        // Read before the lock: the endpoint resolver takes locks of its own, and status
        // readers wait on this one.
        let endpoints = self.store.endpoints().counters();
        let mut published = self.published.lock().unwrap_or_else(|p| p.into_inner());
        let mut w = CounterWriter::new(&mut published);
        for (k, v) in self.engine.counters().iter() {
            w.put("engine_", k, v);
        }
        for (k, v) in self.owners.counters() {
            w.put("attribution_", k, v);
        }
        if let Some(s) = &self.syscalls {
            for (k, v) in s.counters().iter() {
                w.put("", k, v);
            }
        }
        w.put("", "tls_plaintext_without_socket", self.tls_without_socket);
        w.put(
            "",
            "tls_plaintext_socket_thread_guesses",
            self.tls_thread_guesses,
        );
        for (k, v) in endpoints {
            w.put("endpoints_", k, v);
        }
        if let Some(skip) = &self.body_skip {
            for (k, v) in skip.counter_pairs() {
                w.put("", k, v);
            }
        }
        w.put("", "ring_reader_yields", self.reader_yields);
        w.finish();
        drop(published);
        self.flush()
    }

    /// Adds the IP bytes the engine counted since the last call to the metrics.
    fn report_bytes(&mut self) {
        let c = self.engine.counters();
        let now = [
            (Direction::Ingress, c.ip_bytes_ingress),
            (Direction::Egress, c.ip_bytes_egress),
            (Direction::Unknown, c.ip_bytes_unknown_direction),
        ];
        for ((direction, total), reported) in now.into_iter().zip(&mut self.bytes_reported) {
            self.exports.add_bytes(direction, total - *reported);
            *reported = total;
        }
    }

    /// Emits what is still pending (at exit).
    // Never inlined: `bench/exchange_cost.sh` cuts callgrind's dump at this call, and an
    // inlined copy has no symbol to cut at.
    #[inline(never)]
    pub fn finish(&mut self) -> std::io::Result<()> {
        self.engine.flush(self.last_now);
        self.drain()?;
        self.release(true)?;
        if let Some(s) = self.syscalls.as_mut() {
            let held = s.release_all();
            self.emit_spans(held)?;
        }
        self.release_drops(None)?;
        if let Some(p) = self.printer.as_mut() {
            p.finish()?;
        }
        Ok(())
    }

    /// Moves the engine's records into the attribution queue, then emits what is ready.
    fn drain(&mut self) -> std::io::Result<()> {
        if self.engine.has_tls_blind_spots() {
            self.name_tls_blind_spots();
        }
        if let Some(skip) = self.body_skip.as_mut() {
            for h in self.engine.take_capture_hints() {
                apply_hint(skip, h);
            }
        }
        // Most packets make no record (L3/L4 records are control-only by default).
        let Some(first) = self.engine.poll_record() else {
            return self.release(false);
        };
        let deadline = wall_now_ns() + ATTRIBUTION_HOLD_NS;
        self.pending.push_back((deadline, first));
        while let Some(rec) = self.engine.poll_record() {
            self.pending.push_back((deadline, rec));
        }
        self.release(false)
    }

    /// Emits queued records in order. The head waits (up to [`ATTRIBUTION_HOLD_NS`]) until its
    /// local socket has an owner, and its far end's when that is on this node
    /// ([`Pipeline::waits_for_owner`]): a server's accepted socket is reported at accept's
    /// return or at its first send or receive, after the first request bytes may already be
    /// captured.
    fn release(&mut self, force: bool) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let now = wall_now_ns();
        // The head waits for its owner: look again only when an attribution event came in
        // or a little time passed (a /proc scan may find it), not on every packet.
        if let Some((events, at)) = self.blocked {
            if !force
                && events == self.sock_events
                && now < at + RETRY_BLOCKED_NS
                && self.pending.front().is_some_and(|(d, _)| *d > now)
                && self.pending.len() < MAX_PENDING
            {
                return Ok(());
            }
        }
        self.blocked = None;
        while let Some((deadline, rec)) = self.pending.pop_front() {
            let overdue = force || deadline <= now || self.pending.len() >= MAX_PENDING;
            let owners = match &rec {
                Record::Flow(f) => {
                    let o = self.owners_of(f);
                    if self.waits_for_owner(f, &o, overdue) {
                        // Not yet known; everything behind waits too, to keep the order.
                        self.pending.push_front((deadline, rec));
                        self.blocked = Some((self.sock_events, now));
                        return Ok(());
                    }
                    o
                }
                Record::Span(_) => (None, None),
            };
            match rec {
                Record::Flow(f) => self.emit_flow(f, owners)?,
                Record::Span(span) => {
                    let owners = self.span_owner.remove(&span.span_id).unwrap_or_default();
                    let agents = is_agent(&owners.client) || is_agent(&owners.server);
                    if self.exclude_self && agents {
                        continue;
                    }
                    let spans = spans_for_owners(span, owners);
                    match self.syscalls.as_mut() {
                        Some(s) => {
                            let ready = s.admit(spans.collect(), now);
                            self.emit_spans(ready)?;
                        }
                        // No collecting, no queue: the common case, once per exchange.
                        None => {
                            for span in spans {
                                self.emit_span(span)?;
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether `f` (with owners `o`, local then peer) waits for an owner a kernel event may
    /// still name: its local socket's, or its far end's when that is a server of this node
    /// ([`OwnerCache::is_local_server`]: an accepted socket is named at accept or at its
    /// first send or receive, after the request's first packets may have been captured on the
    /// client's side). A wait for a far end that runs out (`overdue`) forgets that server
    /// until it accepts again, so a gone or translated endpoint holds no more records.
    fn waits_for_owner(
        &mut self,
        f: &Flow,
        o: &(Option<ProcessInfo>, Option<ProcessInfo>),
        overdue: bool,
    ) -> bool {
        match o {
            (None, _) => return !overdue && endpoints(f).is_some(),
            (_, Some(_)) => return false,
            _ => {}
        }
        let Some((src, dst, Transport::Tcp)) = endpoints(f) else {
            return false;
        };
        let remote = match f.traffic_direction {
            Direction::Ingress => src,
            _ => dst,
        };
        if !self.owners.is_local_server(&remote) {
            return false;
        }
        if overdue {
            self.owners.forget_local_server(&remote);
            return false;
        }
        true
    }

    /// Emits spans; with syscall spans on, a SERVER span is followed by its syscall children
    /// and the calls made while serving it.
    #[allow(clippy::vec_box)] // boxed from the engine to the exporter, see syscall_spans
    fn emit_spans(&mut self, spans: Vec<Box<Span>>) -> std::io::Result<()> {
        let mut queue = VecDeque::from(spans);
        while let Some(mut span) = queue.pop_front() {
            // The calls released here may be SERVER spans of traced processes too.
            if let Some(s) = self.syscalls.as_mut() {
                for child in s.complete(&mut span).into_iter().rev() {
                    queue.push_front(child);
                }
            }
            self.emit_span(span)?;
        }
        Ok(())
    }

    /// Prints (with `--print-spans`), counts and exports one span. Kept out of line so
    /// `bench/exchange_cost.sh` can tell its cost.
    #[inline(never)]
    fn emit_span(&mut self, span: Box<Span>) -> std::io::Result<()> {
        let out = match self.printer.as_mut() {
            Some(p) => Some(p.writer()),
            None => self.raw_out.as_mut(),
        };
        self.exports.emit_span(span, out)
    }

    /// Attributes, counts, stores and prints one flow. Kept out of line so
    /// `bench/exchange_cost.sh` can tell its cost.
    #[inline(never)]
    fn emit_flow(
        &mut self,
        mut f: Box<Flow>,
        (mine, peer): (Option<ProcessInfo>, Option<ProcessInfo>),
    ) -> std::io::Result<()> {
        if let (Some(tc), Some(reply)) = (f.trace_context, f.is_reply) {
            if f.l7.is_some() && (mine.is_some() || peer.is_some()) {
                let ends = EndOwners::of_flow(f.traffic_direction, reply, &mine, &peer);
                let room = self.span_owner.len() < MAX_SPAN_OWNERS;
                match self.span_owner.get_mut(&tc.span_id) {
                    Some(known) => known.fill_from(ends),
                    None if room => {
                        self.span_owner.insert(tc.span_id, ends);
                    }
                    None => {}
                }
            }
        }
        if self.exclude_self && (is_agent(&mine) || is_agent(&peer)) {
            return Ok(());
        }
        // The record is about the packet's local end (the sender of an egress packet, the
        // receiver of an ingress one); the other end's owner, when it is local too, beside it.
        (f.process, f.peer_process) = (mine, peer);
        self.exports.observe_flow(&f);
        let iface = (f.ifindex != 0).then(|| self.iface_name(f.ifindex));
        // A DNS answer names its addresses for the flows that follow it (and for itself).
        let resolver = self.store.endpoints();
        resolver.observe(&f);
        let endpoints = resolver.resolve(&f, f.peer_process.as_ref());
        // Stored compact; the wire message is built only for the printer and for clients.
        let stored = self.store.push_engine(EngineFlow {
            flow: f,
            iface,
            endpoints,
        });
        if let Some(p) = self.printer.as_mut() {
            p.print_flow(&stored.to_wire(self.store.node_name(), true).flow)?;
        }
        Ok(())
    }

    /// Ends a batch of frames: hands them to the engine workers (if any) and takes the records
    /// they have ready, then flushes buffered output.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.engine.sync();
        self.drain()?;
        match self.printer.as_mut() {
            Some(p) => p.writer().flush(),
            None => self.raw_out.as_mut().map_or(Ok(()), |w| w.flush()),
        }
    }
}

/// Gives the capture one of the engine's hints.
fn apply_hint(skip: &mut ebpf_tc::BodySkip, hint: CaptureHint) {
    let addr = |e: Endpoint| SocketAddr::new(e.addr, e.port);
    match hint {
        CaptureHint::Skip {
            src,
            dst,
            from_seq,
            until_seq,
        } => skip.skip(addr(src), addr(dst), from_seq, until_seq),
        CaptureHint::Clear { src, dst } => skip.clear(addr(src), addr(dst)),
    }
}

/// Whether `p` is this agent's own process.
fn is_agent(p: &Option<ProcessInfo>) -> bool {
    p.as_ref().is_some_and(|p| p.agent)
}

impl<W: Write> Pipeline<W> {
    /// Handles one kernel drop report: a DROPPED flow with Hubble's drop reason where one
    /// matches and the kernel's reason name in the extension, owned by the socket's process
    /// (by cookie, else the sender's socket, else the addressee's).
    pub fn on_drop(
        &mut self,
        ev: &ebpf_kprobe::drops::DropEvent,
        reasons: &ebpf_kprobe::drops::DropReasons,
    ) -> std::io::Result<()> {
        // Its lookups may start a /proc scan; a kernel TCP event may join a tuple.
        self.owners_memo.clear();
        let ts_ns = match self.clock {
            Some(c) => c.wall_ns(ev.ts_ns),
            None => ev.ts_ns,
        };
        if let Some((flow, event)) = super::drops::tcp_event_flow(ev, ts_ns) {
            return self.on_kernel_tcp_event(ev, flow, event);
        }
        let (mut flow, kernel) = super::drops::drop_flow(ev, reasons, ts_ns);
        let candidates = super::drops::candidate_tuples(ev);
        let by_cookie = ev
            .cookie
            .and_then(|c| self.owners.lookup_cookie(c))
            .map(process_info);
        flow.process = by_cookie.or_else(|| self.drop_owner(&candidates));
        // A connect's SYN dropped where it has no socket (NO_SOCKET at the server, a
        // netfilter rule): the sending socket's 4-tuple is joined to its owner only once a
        // kernel TCP event names both (the RST it receives right after), so it waits a little.
        let first_syn = TcpFlags(ev.tcp_flags).contains(TcpFlags::SYN)
            && !TcpFlags(ev.tcp_flags).contains(TcpFlags::ACK);
        if flow.process.is_none()
            && ev.cookie.is_none()
            && first_syn
            && self.pending_drops.len() < MAX_PENDING_DROPS
        {
            self.pending_drops.push_back(PendingDrop {
                flow,
                kernel,
                candidates,
            });
            return Ok(());
        }
        self.emit_drop(flow, kernel)
    }

    /// The owner of a drop's sender's socket, else of its addressee's.
    fn drop_owner(&mut self, candidates: &[SocketTuple; 2]) -> Option<ProcessInfo> {
        let [sender, addressee] = candidates;
        self.owners
            .lookup_local(sender)
            .map(process_info)
            .or_else(|| self.owners.lookup_local(addressee).map(process_info))
    }

    /// Emits the waiting drops whose owner is known now, and those older than
    /// [`ATTRIBUTION_HOLD_NS`] at wall time `now` (all when `None`).
    fn release_drops(&mut self, now: Option<u64>) -> std::io::Result<()> {
        if self.pending_drops.is_empty() {
            return Ok(());
        }
        self.owners_memo.clear();
        let mut waiting = VecDeque::with_capacity(self.pending_drops.len());
        while let Some(mut d) = self.pending_drops.pop_front() {
            let [sender, _] = &d.candidates;
            d.flow.process = self.owners.lookup_local_no_scan(sender).map(process_info);
            let expired =
                now.is_none_or(|n| n.saturating_sub(d.flow.time_ns) > ATTRIBUTION_HOLD_NS);
            if d.flow.process.is_some() || expired {
                if d.flow.process.is_none() {
                    d.flow.process = self.drop_owner(&d.candidates);
                }
                self.emit_drop(d.flow, d.kernel)?;
            } else {
                waiting.push_back(d);
            }
        }
        self.pending_drops = waiting;
        Ok(())
    }

    /// Publishes a drop's flow.
    fn emit_drop(
        &mut self,
        flow: Flow,
        kernel: crate::api::proto::flowscope::KernelDrop,
    ) -> std::io::Result<()> {
        let hubble_reason = crate::api::drop_reason::hubble_drop_reason(&kernel.reason_name);
        self.exports
            .observe_drop(&kernel.reason_name, &flow, hubble_reason.as_str_name());
        let (mut wire, mut ext) = crate::api::convert::flow_to_wire(&flow, self.store.node_name());
        let hubble = hubble_reason as i32;
        wire.drop_reason = hubble as u32;
        wire.drop_reason_desc = hubble;
        // Cilium's drop notifications carry the reason as the event's sub-type.
        if let Some(e) = wire.event_type.as_mut() {
            e.sub_type = hubble;
        }
        // Named like every other flow: identities, pods, and names from DNS answers (a drop
        // has no capture direction, so its ends are named by their addresses).
        let ends = self.store.endpoints().resolve(&flow, None);
        wire.source = ends.source.to_proto();
        wire.destination = ends.destination.to_proto();
        wire.source_names = ends.source.names_proto();
        wire.destination_names = ends.destination.names_proto();
        // The interface index is the drop's own namespace's: no name from ours.
        ext.kernel_drop = Some(kernel);
        wire.extensions = Some(ext.to_any());
        let stored = self.store.push(wire);
        if let Some(p) = self.printer.as_mut() {
            p.print_flow(&stored.to_wire(self.store.node_name(), true).flow)?;
        }
        Ok(())
    }
}

impl<W: Write> Pipeline<W> {
    /// A kernel TCP event (retransmission, reset): its flow owned by the socket's process (by
    /// cookie, else by the socket's 4-tuple: `source` is the local end except for a received
    /// RST) and named like every other flow.
    fn on_kernel_tcp_event(
        &mut self,
        ev: &ebpf_kprobe::drops::DropEvent,
        mut flow: Flow,
        event: crate::api::proto::flowscope::KernelTcpEvent,
    ) -> std::io::Result<()> {
        let [source_end, destination_end] = super::drops::candidate_tuples(ev);
        let local = if ev.kind == ebpf_kprobe::drops::EventKind::ResetReceived {
            destination_end
        } else {
            source_end
        };
        // The event names the socket by cookie and 4-tuple: what a drop of its SYN waits for.
        if let Some(c) = ev.cookie {
            if self.owners.join_tuple(c, local) && !self.pending_drops.is_empty() {
                self.release_drops(Some(0))?;
            }
        }
        let by_cookie = ev
            .cookie
            .and_then(|c| self.owners.lookup_cookie(c))
            .map(process_info);
        flow.process = by_cookie.or_else(|| self.owners.lookup_local(&local).map(process_info));
        let (mut wire, mut ext) = crate::api::convert::flow_to_wire(&flow, self.store.node_name());
        let ends = self.store.endpoints().resolve(&flow, None);
        wire.source = ends.source.to_proto();
        wire.destination = ends.destination.to_proto();
        wire.source_names = ends.source.names_proto();
        wire.destination_names = ends.destination.names_proto();
        ext.kernel_tcp_event = Some(event);
        wire.extensions = Some(ext.to_any());
        let stored = self.store.push(wire);
        if let Some(p) = self.printer.as_mut() {
            p.print_flow(&stored.to_wire(self.store.node_name(), true).flow)?;
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(comm: &str) -> Option<ProcessInfo> {
        Some(ProcessInfo {
            pid: 1,
            comm: Some(comm.into()),
            ..ProcessInfo::default()
        })
    }

    #[test]
    fn counters_are_written_in_place_and_follow_a_changed_set() {
        let write = |out: &mut Vec<(String, u64)>, names: &[(&str, &str)], base: u64| {
            let mut w = CounterWriter::new(out);
            for (i, (p, n)) in names.iter().enumerate() {
                w.put(p, n, base + i as u64);
            }
            w.finish();
        };
        let fresh = |names: &[(&str, &str)], base: u64| -> Vec<(String, u64)> {
            names
                .iter()
                .enumerate()
                .map(|(i, (p, n))| (format!("{p}{n}"), base + i as u64))
                .collect()
        };
        let a = [
            ("engine_", "packets"),
            ("", "tls_x"),
            ("endpoints_", "pods"),
        ];
        let mut out = Vec::new();
        write(&mut out, &a, 1);
        assert_eq!(out, fresh(&a, 1));
        let names_at = out[0].0.as_ptr();
        write(&mut out, &a, 10);
        assert_eq!(out, fresh(&a, 10));
        assert_eq!(out[0].0.as_ptr(), names_at, "the name kept its buffer");
        // A name that only shares the prefix and suffix's lengths is not the same counter.
        let b = [("engine_", "packetz"), ("", "tls_x")];
        write(&mut out, &b, 5);
        assert_eq!(out, fresh(&b, 5));
        // Split differently between prefix and name: the same text, the same counter.
        let c = [("engine", "_packetz"), ("", "tls_x"), ("x_", "new")];
        write(&mut out, &c, 7);
        assert_eq!(out, fresh(&c, 7));
    }

    #[test]
    fn end_owners_follow_roles_not_capture_direction() {
        // http_request(): a request (client 198.18.0.2 -> server 198.18.0.1) seen arriving.
        let mut f = crate::api::convert::tests::http_request();
        let (curl, nginx) = (owner("curl"), owner("nginx"));
        let cases = [
            // (direction, reply, owner of the packet's local end, of its other end)
            (Direction::Ingress, false, &nginx, &curl),
            (Direction::Egress, false, &curl, &nginx),
            (Direction::Ingress, true, &curl, &nginx),
            (Direction::Egress, true, &nginx, &curl),
        ];
        for (direction, reply, mine, peer) in cases {
            f.traffic_direction = direction;
            let ends = EndOwners::of_flow(f.traffic_direction, reply, mine, peer);
            let name = |p: &Option<ProcessInfo>| p.as_ref().and_then(|p| p.comm.clone());
            assert_eq!(
                (name(&ends.client), name(&ends.server)),
                (Some("curl".into()), Some("nginx".into())),
                "{direction:?} reply={reply}"
            );
        }
    }

    /// Two owner-memo keys are equal exactly when their `(local, remote, transport, cookie)`
    /// are: IPv4 never meets IPv6 (not even v4-mapped), ports and ends don't swap.
    #[test]
    fn owners_keys_equal_exactly_when_their_tuples_do() {
        let addrs: Vec<SocketAddr> = [
            "198.18.0.1:80",
            "198.18.0.1:81",
            "198.18.0.2:80",
            "0.0.0.80:0",
            "[::ffff:198.18.0.1]:80",
            "[2001:db8::1]:80",
            "[2001:db8::1]:443",
            "[::]:80",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        let mut tuples = Vec::new();
        for l in &addrs {
            for r in &addrs {
                for t in [Transport::Tcp, Transport::Udp] {
                    for c in [None, Some(0), Some(7)] {
                        tuples.push((*l, *r, t, c));
                    }
                }
            }
        }
        for a in &tuples {
            for b in &tuples {
                let (ka, kb) = (
                    OwnersKey::new(a.0, a.1, a.2, a.3),
                    OwnersKey::new(b.0, b.1, b.2, b.3),
                );
                assert_eq!(ka == kb, a == b, "{a:?} {b:?}");
            }
        }
    }
}
