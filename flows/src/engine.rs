//! The engine: frames and timestamps in, [`Record`]s out (sans-IO, like quinn-proto).
//!
//! Drive it with [`Engine::handle_frame`] (or [`Engine::handle_packet`]) for every captured
//! frame, [`Engine::handle_timeout`] as time passes, [`Engine::poll_record`] until it returns
//! `None` after each of those calls, and [`Engine::flush`] at the end of a capture. It never
//! reads a clock: every method takes the current time in nanoseconds.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::counters::Counters;
use crate::key::{Endpoint, FlowKey, Side};
use crate::l7::dns::{self, RData};
use crate::l7::http1::{Http1Event, RequestHead, ResponseHead};
use crate::l7::{L7Config, L7Context, L7Event, PacketCtx, StreamDir};
use crate::packet::{decode, CaptureMeta, DecodeError, LinkType, Packet, TcpFlags, Transport};
use crate::record::{
    attr, ip_string, text, text_owned, AttributeValue, Attributes, DnsAnswer, DnsInfo, Flow,
    FlowType, HttpHeader, HttpInfo, IpInfo, L7Record, L7Type, Layer4, Layer7, Record, Span,
    SpanKind, SpanStatus, StatusCode, TraceContext, Verdict,
};
use crate::table::{
    ConnState, DnsPending, EvictReason, FlowEntry, FlowTable, L7Slot, TcpConn, UdpConn,
};
use crate::tcp::{ReassemblerConfig, Segment, StreamEvent, TcpReassembler};
use crate::trace::IdGenerator;

/// Which packets produce L3/L4 flow records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum L4Records {
    /// One record per packet, like Hubble's per-packet trace events.
    #[default]
    EveryPacket,
    /// Only TCP packets with SYN, FIN or RST; for other protocols the first packet of a flow
    /// each way, then one every [`L4_REPORT_INTERVAL_NS`] each way.
    ControlOnly,
    /// No L3/L4 records; only L7 flows and spans.
    Off,
}

/// Engine limits and options. Defaults suit a node agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EngineConfig {
    /// Most flows tracked at once; new flows beyond it are counted and not tracked.
    pub max_flows: usize,
    /// Most out-of-order bytes held per direction of a TCP flow before holes are skipped.
    pub max_flow_buffer_bytes: usize,
    /// Most bytes held across all flows (reassembly and partial L7 heads).
    pub max_total_buffer_bytes: usize,
    /// A flow with no packets for this long is evicted.
    pub idle_timeout_ns: u64,
    /// A closed TCP flow (FIN both ways or RST) stays this long for late packets.
    pub close_linger_ns: u64,
    /// A hole in a TCP stream older than this is skipped.
    pub gap_timeout_ns: u64,
    /// A hole the peer has acknowledged is skipped once it is this old (the two directions
    /// may reach us slightly out of order, so an ACK can overtake the data it covers).
    pub peer_ack_grace_ns: u64,
    /// A DNS query with no answer for this long is counted unanswered and forgotten.
    pub dns_timeout_ns: u64,
    /// Minimum capture time between two timeout scans of the table.
    pub timeout_scan_interval_ns: u64,
    /// Which packets make L3/L4 records.
    pub l4_records: L4Records,
    /// Most records waiting in `poll_record`; more are counted and dropped.
    pub max_queued_records: usize,
    /// Seed of the span/trace id generator (the binary seeds it randomly).
    pub id_seed: u64,
    /// Build [`Record::Span`]s. When false the engine builds none (no attribute strings, no
    /// formatted addresses: the expensive part of an exchange when nothing consumes spans)
    /// and emits everything else unchanged; counters stay as if the spans had been queued.
    pub spans: bool,
    /// L7 decoder limits.
    pub l7: L7Config,
}

const SECOND: u64 = 1_000_000_000;

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_flows: 65_536,
            max_flow_buffer_bytes: 256 * 1024,
            max_total_buffer_bytes: 64 * 1024 * 1024,
            idle_timeout_ns: 120 * SECOND,
            close_linger_ns: 2 * SECOND,
            gap_timeout_ns: 2 * SECOND,
            peer_ack_grace_ns: 10_000_000,
            dns_timeout_ns: 10 * SECOND,
            timeout_scan_interval_ns: SECOND,
            l4_records: L4Records::EveryPacket,
            max_queued_records: 65_536,
            id_seed: 0x5eed_f10e_5c09_e000,
            spans: true,
            l7: L7Config::default(),
        }
    }
}

/// What a flow's records need to know about it.
#[derive(Debug, Clone, Copy)]
struct FlowView {
    key: FlowKey,
    server: Side,
    socket_cookie: Option<u64>,
}

impl FlowView {
    fn client(&self) -> Endpoint {
        self.key.endpoint(self.server.other())
    }
    fn server(&self) -> Endpoint {
        self.key.endpoint(self.server)
    }
}

/// The flow engine. One per worker thread; see the module docs for how to drive it.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    table: FlowTable,
    counters: Counters,
    ids: IdGenerator,
    queue: VecDeque<Record>,
    total_buffered: usize,
    next_scan_ns: u64,
    events: Vec<L7Event>,
}

impl Engine {
    /// A fresh engine with `config`.
    pub fn new(config: EngineConfig) -> Self {
        Self {
            table: FlowTable::new(config.max_flows),
            ids: IdGenerator::new(config.id_seed),
            config,
            counters: Counters::default(),
            queue: VecDeque::new(),
            total_buffered: 0,
            next_scan_ns: 0,
            events: Vec::new(),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Every counter so far; see [`Counters::iter`] for a generic listing.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Flows currently tracked.
    pub fn flow_count(&self) -> usize {
        self.table.len()
    }

    /// Bytes currently held for reassembly and partial L7 heads, across all flows.
    pub fn buffered_bytes(&self) -> usize {
        self.total_buffered
    }

    /// Decodes and ingests one captured frame. Call for every frame the capture delivers, in
    /// capture order; then drain [`Engine::poll_record`]. Frames that fail to decode are
    /// counted by reason and the error is returned for logging.
    pub fn handle_frame(
        &mut self,
        now_ns: u64,
        link: LinkType,
        frame: &[u8],
        meta: CaptureMeta,
    ) -> Result<(), DecodeError> {
        self.counters.frames += 1;
        match decode(link, frame, meta) {
            Ok(packet) => {
                self.handle_packet(now_ns, &packet);
                Ok(())
            }
            Err(e) => {
                let c = &mut self.counters;
                *match e {
                    DecodeError::Truncated { .. } => &mut c.decode_truncated,
                    DecodeError::NotIp(_) | DecodeError::NotIpFamily(_) => &mut c.decode_not_ip,
                    DecodeError::TooManyVlanTags(_) => &mut c.decode_too_many_vlan_tags,
                    DecodeError::BadIpHeader(_) => &mut c.decode_bad_ip_header,
                    DecodeError::Fragment { .. } => &mut c.decode_ip_fragment,
                    DecodeError::BadTcpHeader(_) => &mut c.decode_bad_tcp_header,
                    DecodeError::UnsupportedLinkType(_) => &mut c.decode_unsupported_link_type,
                    DecodeError::BadNflogTlv => &mut c.decode_bad_nflog_tlv,
                    DecodeError::NflogWithoutPayload => &mut c.decode_nflog_without_payload,
                } += 1;
                Err(e)
            }
        }
    }

    /// Ingests one decoded packet. Call it instead of `handle_frame` when the packet was
    /// decoded elsewhere; then drain [`Engine::poll_record`].
    pub fn handle_packet(&mut self, now_ns: u64, packet: &Packet<'_>) {
        self.counters.packets += 1;
        *match packet.meta.direction {
            crate::packet::Direction::Ingress => &mut self.counters.ip_bytes_ingress,
            crate::packet::Direction::Egress => &mut self.counters.ip_bytes_egress,
            crate::packet::Direction::Unknown => &mut self.counters.ip_bytes_unknown_direction,
        } += u64::from(packet.ip_len);
        let at = PacketCtx {
            ts_ns: if packet.meta.ts_ns != 0 {
                packet.meta.ts_ns
            } else {
                now_ns
            },
            meta: packet.meta,
        };
        let (key, side) = FlowKey::from_packet(packet);
        // A fresh SYN on a tuple whose connection already closed is a new connection (port
        // reuse inside the close linger): retire the old one first.
        let pure_syn = packet
            .tcp()
            .is_some_and(|t| t.flags.contains(TcpFlags::SYN) && !t.flags.contains(TcpFlags::ACK));
        if pure_syn {
            let closed = self.table.get_mut(&key).is_some_and(|e| match &e.state {
                ConnState::Tcp(c) => c.closed_at.is_some() || c.reasm[side.index()].is_closed(),
                _ => false,
            });
            if closed {
                self.evict(key, EvictReason::Closed, now_ns);
            }
        }
        let Self {
            config,
            table,
            counters,
            ids,
            queue,
            total_buffered,
            events,
            ..
        } = self;
        let entry = match table.get_mut(&key) {
            Some(e) => e,
            None => {
                let server = initial_server(&key, side, packet);
                let state = match packet.transport {
                    Transport::Tcp(t) => {
                        if !t.flags.contains(TcpFlags::SYN) {
                            counters.tcp_mid_stream_starts += 1;
                        }
                        ConnState::Tcp(Box::new(TcpConn {
                            reasm: [TcpReassembler::new(), TcpReassembler::new()],
                            l7: L7Slot::Detecting { gapped: [false; 2] },
                            closed_at: None,
                        }))
                    }
                    Transport::Udp { .. } => ConnState::Udp(UdpConn::default()),
                    _ => ConnState::Other,
                };
                let new = FlowEntry {
                    created_ns: now_ns,
                    last_seen_ns: now_ns,
                    server,
                    socket_cookie: None,
                    accounted: 0,
                    l4_reported_ns: [0; 2],
                    state,
                };
                match table.insert(key, new) {
                    Ok(e) => {
                        counters.flows_created += 1;
                        e
                    }
                    Err(_) => {
                        counters.flows_refused_table_full += 1;
                        if wants_l4(config.l4_records, packet) {
                            push(
                                queue,
                                counters,
                                config,
                                Record::Flow(Box::new(l4_flow(packet, &at, None))),
                            );
                        }
                        return;
                    }
                }
            }
        };
        entry.last_seen_ns = entry.last_seen_ns.max(now_ns);
        if entry.socket_cookie.is_none() {
            entry.socket_cookie = packet.meta.socket_cookie;
        }
        let view = FlowView {
            key,
            server: entry.server,
            socket_cookie: entry.socket_cookie,
        };
        let reported = &mut entry.l4_reported_ns[side.index()];
        if wants_l4_in_flow(config.l4_records, packet, reported, now_ns) {
            let is_reply = Some(side == entry.server);
            push(
                queue,
                counters,
                config,
                Record::Flow(Box::new(l4_flow(packet, &at, is_reply))),
            );
        }
        let dir = entry.dir_of(side);
        match (&mut entry.state, packet.transport) {
            (ConnState::Tcp(conn), Transport::Tcp(tcp)) => {
                let rcfg = ReassemblerConfig {
                    max_buffered_bytes: config.max_flow_buffer_bytes,
                };
                let seg = Segment {
                    seq: tcp.seq,
                    flags: tcp.flags,
                    payload: packet.payload,
                    wire_len: packet.payload_wire_len,
                };
                let TcpConn {
                    reasm,
                    l7,
                    closed_at,
                } = &mut **conn;
                let [lo, hi] = reasm;
                let (this, other) = match side {
                    Side::Lo => (lo, hi),
                    Side::Hi => (hi, lo),
                };
                let l7cfg = &config.l7;
                {
                    let mut sink = |ev: StreamEvent<'_>, counters: &mut Counters| {
                        let mut cx = L7Context {
                            counters,
                            ids,
                            config: l7cfg,
                        };
                        l7.on_event(dir, ev, &at, &mut cx, events);
                    };
                    this.push(&seg, now_ns, &rcfg, counters, &mut sink);
                    if tcp.flags.contains(TcpFlags::RST) {
                        // A reset ends both directions; what the other side held is final.
                        let mut sink_other = |ev: StreamEvent<'_>, counters: &mut Counters| {
                            let mut cx = L7Context {
                                counters,
                                ids,
                                config: l7cfg,
                            };
                            l7.on_event(other_dir(dir), ev, &at, &mut cx, events);
                        };
                        other.flush(counters, &mut sink_other);
                    } else if tcp.flags.contains(TcpFlags::ACK) {
                        let mut sink_other = |ev: StreamEvent<'_>, counters: &mut Counters| {
                            let mut cx = L7Context {
                                counters,
                                ids,
                                config: l7cfg,
                            };
                            l7.on_event(other_dir(dir), ev, &at, &mut cx, events);
                        };
                        other.on_peer_ack(
                            tcp.ack,
                            now_ns,
                            config.peer_ack_grace_ns,
                            counters,
                            &mut sink_other,
                        );
                    }
                }
                let rst = tcp.flags.contains(TcpFlags::RST);
                if closed_at.is_none() && (rst || this.is_closed() && other.is_closed()) {
                    *closed_at = Some(now_ns);
                    let mut cx = L7Context {
                        counters,
                        ids,
                        config: l7cfg,
                    };
                    l7.finish(at.ts_ns, &mut cx, events);
                }
                // Memory: charge this flow's growth to the total; over budget, this flow sheds.
                let now_buffered = conn.buffered();
                *total_buffered = *total_buffered - entry.accounted + now_buffered;
                entry.accounted = now_buffered;
                if *total_buffered > config.max_total_buffer_bytes {
                    let TcpConn { reasm, l7, .. } = &mut **conn;
                    for (i, r) in reasm.iter_mut().enumerate() {
                        let d = stream_dir_of_index(i, entry.server);
                        let mut sink = |ev: StreamEvent<'_>, counters: &mut Counters| {
                            let mut cx = L7Context {
                                counters,
                                ids,
                                config: l7cfg,
                            };
                            l7.on_event(d, ev, &at, &mut cx, events);
                        };
                        r.shed(counters, &mut sink);
                    }
                    let now_buffered = conn.buffered();
                    *total_buffered = *total_buffered - entry.accounted + now_buffered;
                    entry.accounted = now_buffered;
                }
            }
            (ConnState::Udp(udp), Transport::Udp { src_port, dst_port })
                if is_dns_port(src_port) || is_dns_port(dst_port) =>
            {
                dns_datagram(udp, packet, &at, side, &view, config, counters, queue);
            }
            _ => {}
        }
        drain_events(events, &view, config, counters, queue);
    }

    /// Runs timers: skips stale TCP holes, evicts idle and closed flows (reporting unanswered
    /// requests as error spans) and forgets stale DNS queries. Call it regularly with the
    /// current time (e.g. every 100 ms in the agent, or with each frame's time in replay); it
    /// only scans the table once per `timeout_scan_interval_ns`.
    pub fn handle_timeout(&mut self, now_ns: u64) {
        if now_ns < self.next_scan_ns {
            return;
        }
        self.next_scan_ns = now_ns.saturating_add(self.config.timeout_scan_interval_ns);
        for key in self.table.keys_in_order() {
            let evict = {
                let Some(entry) = self.table.get_mut(&key) else {
                    continue;
                };
                let view = FlowView {
                    key,
                    server: entry.server,
                    socket_cookie: entry.socket_cookie,
                };
                let idle = now_ns.saturating_sub(entry.last_seen_ns) >= self.config.idle_timeout_ns;
                match &mut entry.state {
                    ConnState::Tcp(conn) => {
                        let server = entry.server;
                        let TcpConn {
                            reasm,
                            l7,
                            closed_at,
                        } = &mut **conn;
                        for (i, r) in reasm.iter_mut().enumerate() {
                            let d = stream_dir_of_index(i, server);
                            let (counters, ids, events, l7cfg) = (
                                &mut self.counters,
                                &mut self.ids,
                                &mut self.events,
                                &self.config.l7,
                            );
                            let at = PacketCtx {
                                ts_ns: now_ns,
                                meta: CaptureMeta::default(),
                            };
                            let mut sink = |ev: StreamEvent<'_>, counters: &mut Counters| {
                                let mut cx = L7Context {
                                    counters,
                                    ids,
                                    config: l7cfg,
                                };
                                l7.on_event(d, ev, &at, &mut cx, events);
                            };
                            r.on_timeout(now_ns, self.config.gap_timeout_ns, counters, &mut sink);
                        }
                        let closed = closed_at.is_some_and(|t| {
                            now_ns.saturating_sub(t) >= self.config.close_linger_ns
                        });
                        let now_buffered = conn.buffered();
                        self.total_buffered = self.total_buffered - entry.accounted + now_buffered;
                        entry.accounted = now_buffered;
                        drain_events(
                            &mut self.events,
                            &view,
                            &self.config,
                            &mut self.counters,
                            &mut self.queue,
                        );
                        if closed {
                            Some(EvictReason::Closed)
                        } else if idle {
                            Some(EvictReason::Idle)
                        } else {
                            None
                        }
                    }
                    ConnState::Udp(udp) => {
                        let timeout = self.config.dns_timeout_ns;
                        while let Some(id) = udp.dns_order.front().copied() {
                            match udp.dns_pending.get(&id) {
                                Some(q) if now_ns.saturating_sub(q.at.ts_ns) < timeout => break,
                                Some(_) => {
                                    udp.dns_pending.remove(&id);
                                    self.counters.dns_unanswered += 1;
                                }
                                None => {}
                            }
                            udp.dns_order.pop_front();
                        }
                        idle.then_some(EvictReason::Idle)
                    }
                    ConnState::Other => idle.then_some(EvictReason::Idle),
                }
            };
            if let Some(reason) = evict {
                self.evict(key, reason, now_ns);
            }
        }
    }

    /// Ends the capture: evicts every flow, reporting pending exchanges (unanswered requests
    /// become error spans, close-delimited responses complete). Call once after the last frame
    /// of a replay, or when the agent stops; then drain [`Engine::poll_record`].
    pub fn flush(&mut self, now_ns: u64) {
        for key in self.table.keys_in_order() {
            self.evict(key, EvictReason::Flush, now_ns);
        }
    }

    /// Next record, oldest first. Call after every `handle_*`/`flush` until it returns `None`.
    pub fn poll_record(&mut self) -> Option<Record> {
        self.queue.pop_front()
    }

    fn evict(&mut self, key: FlowKey, reason: EvictReason, now_ns: u64) {
        let Some(mut entry) = self.table.remove(&key) else {
            return;
        };
        let c = &mut self.counters;
        *match reason {
            EvictReason::Idle => &mut c.flows_evicted_idle,
            EvictReason::Closed => &mut c.flows_evicted_closed,
            EvictReason::Flush => &mut c.flows_evicted_flush,
        } += 1;
        self.total_buffered -= entry.accounted;
        let view = FlowView {
            key,
            server: entry.server,
            socket_cookie: entry.socket_cookie,
        };
        match &mut entry.state {
            ConnState::Tcp(conn) => {
                let server = entry.server;
                let TcpConn { reasm, l7, .. } = &mut **conn;
                let at = PacketCtx {
                    ts_ns: now_ns,
                    meta: CaptureMeta::default(),
                };
                for (i, r) in reasm.iter_mut().enumerate() {
                    let d = stream_dir_of_index(i, server);
                    let (ids, events, l7cfg) = (&mut self.ids, &mut self.events, &self.config.l7);
                    let mut sink = |ev: StreamEvent<'_>, counters: &mut Counters| {
                        let mut cx = L7Context {
                            counters,
                            ids,
                            config: l7cfg,
                        };
                        l7.on_event(d, ev, &at, &mut cx, events);
                    };
                    r.flush(&mut self.counters, &mut sink);
                }
                let mut cx = L7Context {
                    counters: &mut self.counters,
                    ids: &mut self.ids,
                    config: &self.config.l7,
                };
                l7.finish(now_ns, &mut cx, &mut self.events);
            }
            ConnState::Udp(udp) => self.counters.dns_unanswered += udp.dns_pending.len() as u64,
            ConnState::Other => {}
        }
        drain_events(
            &mut self.events,
            &view,
            &self.config,
            &mut self.counters,
            &mut self.queue,
        );
    }
}

fn other_dir(d: StreamDir) -> StreamDir {
    match d {
        StreamDir::ToServer => StreamDir::ToClient,
        StreamDir::ToClient => StreamDir::ToServer,
    }
}

/// Stream direction of the reassembler at `index` (the sending side's [`Side::index`]).
fn stream_dir_of_index(index: usize, server: Side) -> StreamDir {
    if index == server.index() {
        StreamDir::ToClient
    } else {
        StreamDir::ToServer
    }
}

/// Who serves, from the first packet of a flow: the SYN's target, the SYN-ACK's sender,
/// else a port heuristic.
fn initial_server(key: &FlowKey, side: Side, packet: &Packet<'_>) -> Side {
    match packet.transport {
        Transport::Tcp(t) if t.flags.contains(TcpFlags::SYN) => {
            if t.flags.contains(TcpFlags::ACK) {
                side
            } else {
                side.other()
            }
        }
        Transport::Tcp(_) | Transport::Udp { .. } => key.guess_server_side(),
        // ICMP and the rest: the first sender is the "client".
        _ => side.other(),
    }
}

fn is_dns_port(p: u16) -> bool {
    // DNS (RFC 1035), mDNS (RFC 6762), LLMNR (RFC 4795).
    matches!(p, 53 | 5353 | 5355)
}

/// Like [`wants_l4`] for a packet of a tracked flow. Control-only also reports a
/// connectionless flow (UDP, ICMP, ...) on its first packet each way and then at most once
/// per [`L4_REPORT_INTERVAL_NS`] each way, as Cilium's monitor aggregation does (its
/// `CT_REPORT_INTERVAL`): `hubble observe` users still see who pings or queries whom.
fn wants_l4_in_flow(
    mode: L4Records,
    packet: &Packet<'_>,
    last_reported_ns: &mut u64,
    now_ns: u64,
) -> bool {
    let want = match mode {
        L4Records::ControlOnly if packet.tcp().is_none() => {
            *last_reported_ns == 0
                || now_ns.saturating_sub(*last_reported_ns) >= L4_REPORT_INTERVAL_NS
        }
        _ => wants_l4(mode, packet),
    };
    if want {
        *last_reported_ns = now_ns.max(1);
    }
    want
}

/// How often control-only reports a connectionless flow that keeps sending (per direction).
pub const L4_REPORT_INTERVAL_NS: u64 = 5 * SECOND;

fn wants_l4(mode: L4Records, packet: &Packet<'_>) -> bool {
    match mode {
        L4Records::EveryPacket => true,
        L4Records::ControlOnly => packet.tcp().is_some_and(|t| t.flags.is_control()),
        L4Records::Off => false,
    }
}

fn push(
    queue: &mut VecDeque<Record>,
    counters: &mut Counters,
    config: &EngineConfig,
    record: Record,
) {
    if queue.len() >= config.max_queued_records {
        counters.records_dropped_queue_full += 1;
    } else {
        counters.records_emitted += 1;
        queue.push_back(record);
    }
}

/// Queues the span `make` builds, or with [`EngineConfig::spans`] off, only counts it as
/// [`push`] would have (so counters do not depend on whether spans are consumed).
fn push_span(
    queue: &mut VecDeque<Record>,
    counters: &mut Counters,
    config: &EngineConfig,
    make: impl FnOnce() -> Span,
) {
    if config.spans {
        push(queue, counters, config, Record::Span(Box::new(make())));
    } else if queue.len() >= config.max_queued_records {
        counters.records_dropped_queue_full += 1;
    } else {
        counters.records_emitted += 1;
    }
}

fn layer4(packet: &Packet<'_>) -> Layer4 {
    match packet.transport {
        Transport::Tcp(t) => Layer4::Tcp {
            source_port: t.src_port,
            destination_port: t.dst_port,
            flags: t.flags,
        },
        Transport::Udp { src_port, dst_port } => Layer4::Udp {
            source_port: src_port,
            destination_port: dst_port,
        },
        Transport::Icmp {
            v6: false,
            icmp_type,
            code,
        } => Layer4::Icmpv4 {
            r#type: icmp_type,
            code,
        },
        Transport::Icmp {
            v6: true,
            icmp_type,
            code,
        } => Layer4::Icmpv6 {
            r#type: icmp_type,
            code,
        },
        Transport::Other { protocol } => Layer4::Other { protocol },
    }
}

fn l4_flow(packet: &Packet<'_>, at: &PacketCtx, is_reply: Option<bool>) -> Flow {
    Flow {
        time_ns: at.ts_ns,
        verdict: Verdict::Forwarded,
        flow_type: FlowType::L3L4,
        ip: IpInfo::new(packet.src, packet.dst),
        l4: layer4(packet),
        l7: None,
        traffic_direction: packet.meta.direction,
        is_reply,
        ifindex: packet.meta.ifindex,
        socket_cookie: packet.meta.socket_cookie,
        ip_len: packet.ip_len,
        payload_bytes: u64::from(packet.payload_wire_len),
        trace_context: None,
        process: None,
    }
}

#[allow(clippy::too_many_arguments)]
fn dns_datagram(
    udp: &mut UdpConn,
    packet: &Packet<'_>,
    at: &PacketCtx,
    side: Side,
    view: &FlowView,
    config: &EngineConfig,
    counters: &mut Counters,
    queue: &mut VecDeque<Record>,
) {
    let msg = match dns::parse(packet.payload) {
        Ok(m) => m,
        Err(_) => {
            counters.dns_parse_errors += 1;
            return;
        }
    };
    let mut info = DnsInfo {
        id: msg.id,
        query: msg
            .questions
            .first()
            .map(|q| q.name.clone())
            .unwrap_or_default(),
        qtypes: msg
            .questions
            .iter()
            .map(|q| dns::type_name(q.qtype))
            .collect(),
        rcode: None,
        ips: Vec::new(),
        ttl: None,
        cnames: Vec::new(),
        rrtypes: Vec::new(),
        answers: Vec::new(),
    };
    let (kind, latency) = if !msg.is_response {
        counters.dns_queries += 1;
        if udp.dns_pending.len() >= config.l7.max_pending_requests.max(1) {
            counters.dns_pending_overflow += 1;
            while let Some(old) = udp.dns_order.pop_front() {
                if udp.dns_pending.remove(&old).is_some() {
                    break;
                }
            }
        }
        udp.dns_pending.insert(
            msg.id,
            DnsPending {
                info: info.clone(),
                at: *at,
            },
        );
        udp.dns_order.push_back(msg.id);
        (L7Type::Request, None)
    } else {
        counters.dns_responses += 1;
        info.rcode = Some(u16::from(msg.rcode));
        for a in &msg.answers {
            let data = match &a.data {
                RData::Addr(ip) => {
                    info.ips.push(*ip);
                    ip.to_string()
                }
                RData::Name(n) => {
                    if a.rtype == 5 {
                        info.cnames.push(n.clone());
                    }
                    n.clone()
                }
                RData::Other => String::new(),
            };
            let rrtype = dns::type_name(a.rtype);
            if !info.rrtypes.contains(&rrtype) {
                info.rrtypes.push(rrtype.clone());
            }
            info.ttl = Some(info.ttl.map_or(a.ttl, |t| t.min(a.ttl)));
            info.answers.push(DnsAnswer {
                name: a.name.clone(),
                rrtype,
                ttl: a.ttl,
                data,
            });
        }
        let latency = match udp.dns_pending.remove(&msg.id) {
            Some(q) => Some(at.ts_ns.saturating_sub(q.at.ts_ns)),
            None => {
                counters.dns_unmatched_responses += 1;
                None
            }
        };
        (L7Type::Response, latency)
    };
    let flow = Flow {
        time_ns: at.ts_ns,
        verdict: Verdict::Forwarded,
        flow_type: FlowType::L7,
        ip: IpInfo::new(packet.src, packet.dst),
        l4: layer4(packet),
        l7: Some(Layer7 {
            r#type: kind,
            latency_ns: latency,
            record: L7Record::Dns(info),
        }),
        traffic_direction: packet.meta.direction,
        is_reply: Some(side == view.server),
        ifindex: packet.meta.ifindex,
        socket_cookie: packet.meta.socket_cookie.or(view.socket_cookie),
        ip_len: packet.ip_len,
        payload_bytes: u64::from(packet.payload_wire_len),
        trace_context: None,
        process: None,
    };
    push(queue, counters, config, Record::Flow(Box::new(flow)));
}

fn drain_events(
    events: &mut Vec<L7Event>,
    view: &FlowView,
    config: &EngineConfig,
    counters: &mut Counters,
    queue: &mut VecDeque<Record>,
) {
    for ev in events.drain(..) {
        match ev {
            L7Event::Http1(Http1Event::Request(req)) => {
                let flow = http_flow(view, &req, None, None, headers_of(&req.headers));
                push(queue, counters, config, Record::Flow(Box::new(flow)));
            }
            L7Event::Http1(Http1Event::Exchange {
                request,
                request_body_size,
                mut response,
            }) => {
                let latency = request
                    .as_ref()
                    .map(|r| response.start.ts_ns.saturating_sub(r.start.ts_ns));
                // The flow is the only user of the response's headers: move them over.
                let headers = headers_into(std::mem::take(&mut response.headers));
                let flow = match &request {
                    Some(req) => http_flow(view, req, Some(&response), latency, headers),
                    None => orphan_response_flow(view, &response, headers),
                };
                push(queue, counters, config, Record::Flow(Box::new(flow)));
                if let Some(req) = request {
                    push_span(queue, counters, config, || {
                        http_span(
                            view,
                            &req,
                            request_body_size,
                            Some(&response),
                            response.end_ns,
                        )
                    });
                }
            }
            L7Event::Http2(ev) => {
                use crate::l7::http2::{records, Http2Event};
                let peers = records::Peers {
                    client: view.client(),
                    server: view.server(),
                    socket_cookie: view.socket_cookie,
                };
                match ev {
                    Http2Event::Request(req) => {
                        let flow = records::request_flow(&peers, &req);
                        push(queue, counters, config, Record::Flow(Box::new(flow)));
                    }
                    Http2Event::Stream(st) => {
                        if let Some(flow) = records::response_flow(&peers, &st) {
                            push(queue, counters, config, Record::Flow(Box::new(flow)));
                        }
                        if records::has_span(&st) {
                            push_span(queue, counters, config, || {
                                records::span(&peers, &st).expect("has_span checked")
                            });
                        }
                    }
                }
            }
            L7Event::Http1(Http1Event::Unanswered {
                request,
                request_body_size,
                at_ns,
            }) => {
                // Placeholders for requests whose head was over the cap have no method.
                if !request.method.is_empty() {
                    push_span(queue, counters, config, || {
                        http_span(
                            view,
                            &request,
                            request_body_size,
                            None,
                            at_ns.max(request.head_end.ts_ns),
                        )
                    });
                }
            }
        }
    }
}

/// `http://host/target` for origin-form targets with a Host, else the target as sent.
fn full_url(req: &RequestHead) -> String {
    match &req.host {
        Some(host) if req.target.starts_with('/') => {
            let mut url = String::with_capacity(7 + host.len() + req.target.len());
            url.push_str("http://");
            url.push_str(host);
            url.push_str(&req.target);
            url
        }
        _ => req.target.clone(),
    }
}

/// Header pairs as record headers, reusing their strings (and, as the layouts match, the
/// vector's buffer).
fn headers_into(h: Vec<(String, String)>) -> Vec<HttpHeader> {
    h.into_iter()
        .map(|(key, value)| HttpHeader {
            key: text_owned(key),
            value,
        })
        .collect()
}

fn headers_of(h: &[(String, String)]) -> Vec<HttpHeader> {
    h.iter()
        .map(|(k, v)| HttpHeader {
            key: text(k),
            value: v.clone(),
        })
        .collect()
}

/// The request flow (`resp` `None`) or the response flow of an exchange, carrying `headers`
/// (the message's kept headers).
fn http_flow(
    view: &FlowView,
    req: &RequestHead,
    resp: Option<&ResponseHead>,
    latency: Option<u64>,
    headers: Vec<HttpHeader>,
) -> Flow {
    let (client, server) = (view.client(), view.server());
    let (src, dst, at, kind) = match resp {
        None => (client, server, &req.head_end, L7Type::Request),
        Some(r) => (server, client, &r.head_end, L7Type::Response),
    };
    Flow {
        time_ns: at.ts_ns,
        verdict: Verdict::Forwarded,
        flow_type: FlowType::L7,
        ip: IpInfo::new(src.addr, dst.addr),
        l4: Layer4::Tcp {
            source_port: src.port,
            destination_port: dst.port,
            flags: TcpFlags::default(),
        },
        l7: Some(Layer7 {
            r#type: kind,
            latency_ns: latency,
            record: L7Record::Http(HttpInfo {
                code: resp.map(|r| r.status),
                method: req.method.clone(),
                url: full_url(req),
                protocol: Cow::Borrowed(req.protocol()),
                headers,
            }),
        }),
        traffic_direction: at.meta.direction,
        is_reply: Some(resp.is_some()),
        ifindex: at.meta.ifindex,
        socket_cookie: at.meta.socket_cookie.or(view.socket_cookie),
        ip_len: 0,
        payload_bytes: match resp {
            None => req.content_length.unwrap_or(0),
            Some(r) => r.body_size.unwrap_or(0),
        },
        trace_context: Some(TraceContext {
            trace_id: req.trace.trace_id,
            span_id: req.trace.span_id,
            parent_span_id: req.trace.parent_span_id,
        }),
        process: None,
    }
}

fn orphan_response_flow(view: &FlowView, resp: &ResponseHead, headers: Vec<HttpHeader>) -> Flow {
    let (client, server) = (view.client(), view.server());
    Flow {
        time_ns: resp.head_end.ts_ns,
        verdict: Verdict::Forwarded,
        flow_type: FlowType::L7,
        ip: IpInfo::new(server.addr, client.addr),
        l4: Layer4::Tcp {
            source_port: server.port,
            destination_port: client.port,
            flags: TcpFlags::default(),
        },
        l7: Some(Layer7 {
            r#type: L7Type::Response,
            latency_ns: None,
            record: L7Record::Http(HttpInfo {
                code: Some(resp.status),
                method: Cow::Borrowed(""),
                url: String::new(),
                protocol: Cow::Borrowed(if resp.version == 0 {
                    "HTTP/1.0"
                } else {
                    "HTTP/1.1"
                }),
                headers,
            }),
        }),
        traffic_direction: resp.head_end.meta.direction,
        is_reply: Some(true),
        ifindex: resp.head_end.meta.ifindex,
        socket_cookie: resp.head_end.meta.socket_cookie.or(view.socket_cookie),
        ip_len: 0,
        payload_bytes: resp.body_size.unwrap_or(0),
        trace_context: None,
        process: None,
    }
}

/// Methods the HTTP semantic conventions name spans after; others become `HTTP`.
const KNOWN_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// Splits a request target into path and query (RFC 9112 §3.2; absolute-form drops the
/// scheme and authority).
fn path_and_query(target: &str) -> (&str, Option<&str>) {
    let rest = match target.find("://") {
        Some(i) => {
            let after = &target[i + 3..];
            after.find('/').map_or("/", |j| &after[j..])
        }
        None => target,
    };
    match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    }
}

fn http_span(
    view: &FlowView,
    req: &Arc<RequestHead>,
    req_body: Option<u64>,
    resp: Option<&ResponseHead>,
    end_ns: u64,
) -> Span {
    let (client, server) = (view.client(), view.server());
    // A request captured leaving this host was sent by a local client; otherwise a local
    // server received it (the default when the direction is unknown, e.g. pcap files).
    let kind = match req.start.meta.direction {
        crate::packet::Direction::Egress => SpanKind::Client,
        _ => SpanKind::Server,
    };
    let mut a = Attributes::new();
    let mut set = |k: &'static str, v: AttributeValue| a.push_new(k, v);
    let method_known = KNOWN_METHODS.contains(&&*req.method);
    set(
        attr::HTTP_REQUEST_METHOD,
        if method_known { &*req.method } else { "_OTHER" }.into(),
    );
    let (path, query) = path_and_query(&req.target);
    set(attr::URL_PATH, path.into());
    if let Some(q) = query {
        set(attr::URL_QUERY, q.into());
    }
    set(attr::URL_SCHEME, "http".into());
    // server.address/port: the Host header when present (semconv), else the server socket.
    let (host, port) = match req.host.as_deref().map(split_host_port) {
        Some((h, p)) => (h.to_string(), p.unwrap_or(server.port)),
        None => (ip_string(server.addr), server.port),
    };
    set(attr::SERVER_ADDRESS, host.into());
    set(attr::SERVER_PORT, i64::from(port).into());
    let client_addr = ip_string(client.addr);
    let peer = if kind == SpanKind::Server {
        client
    } else {
        server
    };
    let peer_addr = if peer.addr == client.addr {
        client_addr.clone()
    } else {
        ip_string(peer.addr)
    };
    set(attr::CLIENT_ADDRESS, client_addr.into());
    set(attr::CLIENT_PORT, i64::from(client.port).into());
    set(attr::NETWORK_PEER_ADDRESS, peer_addr.into());
    set(attr::NETWORK_PEER_PORT, i64::from(peer.port).into());
    set(attr::NETWORK_PROTOCOL_NAME, "http".into());
    set(
        attr::NETWORK_PROTOCOL_VERSION,
        if req.version == 0 { "1.0" } else { "1.1" }.into(),
    );
    set(attr::NETWORK_TRANSPORT, "tcp".into());
    if let Some(ua) = &req.user_agent {
        set(attr::USER_AGENT_ORIGINAL, ua.as_str().into());
    }
    if let Some(n) = req_body.filter(|n| *n > 0) {
        set(attr::HTTP_REQUEST_BODY_SIZE, (n as i64).into());
    }
    let status = match resp {
        Some(r) => {
            set(attr::HTTP_RESPONSE_STATUS_CODE, i64::from(r.status).into());
            if let Some(n) = r.body_size {
                set(attr::HTTP_RESPONSE_BODY_SIZE, (n as i64).into());
            }
            // HTTP semconv: 5xx is an error for servers; 4xx too for clients.
            let error = r.status >= 500 || kind == SpanKind::Client && r.status >= 400;
            if error {
                set(attr::ERROR_TYPE, r.status.to_string().into());
                SpanStatus {
                    code: StatusCode::Error,
                    message: None,
                }
            } else {
                SpanStatus {
                    code: StatusCode::Unset,
                    message: None,
                }
            }
        }
        None => {
            set(attr::ERROR_TYPE, "no_response".into());
            SpanStatus {
                code: StatusCode::Error,
                message: Some("no response".into()),
            }
        }
    };
    Span {
        trace_id: req.trace.trace_id,
        span_id: req.trace.span_id,
        parent_span_id: req.trace.parent_span_id,
        trace_state: req.trace.trace_state.clone(),
        // HTTP semconv: `{method} {http.route}`, and just `{method}` when no route is known
        // (an observer never knows routes); `HTTP` for methods outside the known set.
        name: if method_known {
            req.method.to_string()
        } else {
            "HTTP".to_string()
        },
        kind,
        start_time_ns: req.start.ts_ns,
        end_time_ns: end_ns.max(req.start.ts_ns),
        status,
        attributes: a,
        socket_cookie: req.start.meta.socket_cookie.or(view.socket_cookie),
        ifindex: req.start.meta.ifindex,
        process: None,
    }
}

/// Splits `host[:port]` / `[v6]:port` from a Host header.
fn split_host_port(host: &str) -> (&str, Option<u16>) {
    if let Some(rest) = host.strip_prefix('[') {
        if let Some((h, tail)) = rest.split_once(']') {
            return (h, tail.strip_prefix(':').and_then(|p| p.parse().ok()));
        }
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, p.parse().ok()),
        _ => (host, None),
    }
}
