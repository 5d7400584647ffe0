//! The engine: frames and timestamps in, [`Record`]s out (sans-IO, like quinn-proto).
//!
//! Drive it with [`Engine::handle_frame`] (or [`Engine::handle_packet`]) for every captured
//! frame, [`Engine::handle_timeout`] as time passes, [`Engine::poll_record`] until it returns
//! `None` after each of those calls, and [`Engine::flush`] at the end of a capture. It never
//! reads a clock: every method takes the current time in nanoseconds.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::counters::Counters;
use crate::ip::{CapturePoint, Fragment, IpReassembler, ReassemblyLimits};
use crate::key::{Endpoint, FlowKey, Side};
use crate::l7::http1::{self, Http1Event};
use crate::l7::{L7Config, L7Context, L7Event, PacketCtx, StreamDir};
use crate::packet::{
    decode, decode_ip, ip_layer, CaptureMeta, DecodeError, Direction, LinkType, Packet, TcpFlags,
    Transport,
};
use crate::record::{Flow, FlowType, IpInfo, Layer4, Record, Span, SpanKind, Verdict};
use crate::table::{ConnState, EvictReason, FlowEntry, FlowTable, L7Slot, TcpConn, UdpConn};
use crate::tcp::{
    AfterReset, ConnectionHealth, ReassemblerConfig, ResetTracker, RstVerdict, Segment,
    StreamEvent, TcpReassembler,
};
use crate::trace::IdGenerator;

mod capture_hint;
mod plaintext;
pub use capture_hint::CaptureHint;
pub use plaintext::{PlaintextChunk, TlsBlindSpot};

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
    /// Build each exchange's span for both of its ends: the one the capture direction points
    /// at, and in [`Span::counterpart`] the other (other kind, own span id). For callers that
    /// learn which ends are local processes after the records are out (the agent, from kernel
    /// socket events): [`crate::roles::spans_for_owners`] keeps the owned ones. Off, one
    /// span per exchange as before, at half the cost.
    pub span_both_ends: bool,
    /// L7 decoder limits.
    pub l7: L7Config,
    /// An IP datagram still missing fragments this long after its first fragment arrived is
    /// dropped. 30 s is Linux's `ipfrag_time` for IPv4 and IPv6, what the hosts we watch do
    /// (RFC 791 §3.2 suggests a 15 s lower bound, RFC 8200 §4.5 allows up to 60 s).
    pub ip_fragment_timeout_ns: u64,
    /// Most bytes held in IP fragments waiting for the rest of their datagram (data plus a
    /// small fixed charge per fragment). 4 MiB is Linux's `ipfrag_high_thresh`; over it the
    /// oldest datagrams are dropped.
    pub max_ip_fragment_bytes: usize,
    /// Most IP datagrams being reassembled at once; beyond it the oldest is dropped. 0 turns
    /// reassembly off: fragments are counted (`decode_ip_fragment`) and dropped.
    pub max_ip_fragmented_datagrams: usize,
    /// Decode the packets inside tunnels (GRE, ERSPAN, IP-in-IP, VXLAN, Geneve; see
    /// [`crate::packet::tunnel`]) as conversations of their own, besides the outer packet.
    /// For captures of overlay or mirror traffic (`replay`); off where the same traffic is
    /// also captured decapsulated (the agent on a node's interfaces), which would count it
    /// twice.
    pub decapsulate_tunnels: bool,
    /// Bodies of at least this many bytes that the decoder will pass over unread are named
    /// to the capture ([`CaptureHint`], taken with [`Engine::take_capture_hints`]), which
    /// may then keep only their segments' headers. 0 (the default, and `replay`'s: a file
    /// holds what it holds) gives none.
    pub capture_hint_min_bytes: u64,
}

const SECOND: u64 = 1_000_000_000;

/// Most tunnel headers peeled off one captured frame (an overlay inside a GRE link inside a
/// mirror session is three); deeper nesting is counted, not decoded.
pub const MAX_TUNNEL_DEPTH: usize = 4;

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
            span_both_ends: false,
            l7: L7Config::default(),
            ip_fragment_timeout_ns: 30 * SECOND,
            max_ip_fragment_bytes: 4 * 1024 * 1024,
            max_ip_fragmented_datagrams: 4096,
            decapsulate_tunnels: false,
            capture_hint_min_bytes: 0,
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
    fragments: IpReassembler,
    /// TLS connections that ended with no plaintext source, until the caller takes them.
    tls_blind_spots: Vec<plaintext::TlsBlindSpot>,
    /// Capture hints, until the caller takes them.
    capture_hints: Vec<CaptureHint>,
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
            fragments: IpReassembler::new(),
            tls_blind_spots: Vec::new(),
            capture_hints: Vec::new(),
        }
    }

    /// The capture hints given since the last call, oldest first (see [`CaptureHint`]).
    pub fn take_capture_hints(&mut self) -> Vec<CaptureHint> {
        std::mem::take(&mut self.capture_hints)
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
                if self.config.decapsulate_tunnels {
                    if let Some((link, inner)) = crate::packet::tunnel::inner(&packet) {
                        self.handle_tunnelled(now_ns, link, inner, meta);
                    }
                }
                Ok(())
            }
            Err(DecodeError::Fragment { .. }) if self.config.max_ip_fragmented_datagrams > 0 => {
                self.handle_fragment(now_ns, link, frame, meta);
                Ok(())
            }
            Err(e) => {
                self.count_decode_error(&e);
                Err(e)
            }
        }
    }

    /// Decodes the frame a tunnel packet carried (and the frames inside it, to
    /// [`MAX_TUNNEL_DEPTH`]) like a captured frame with the outer one's capture metadata.
    /// Off the fast path: only tunnel packets of a decapsulating engine get here.
    #[cold]
    #[inline(never)]
    fn handle_tunnelled(
        &mut self,
        now_ns: u64,
        mut link: LinkType,
        mut frame: &[u8],
        meta: CaptureMeta,
    ) {
        for _ in 0..MAX_TUNNEL_DEPTH {
            self.counters.tunnel_inner_frames += 1;
            match decode(link, frame, meta) {
                Ok(packet) => {
                    self.handle_packet(now_ns, &packet);
                    match crate::packet::tunnel::inner(&packet) {
                        Some((l, f)) => (link, frame) = (l, f),
                        None => return,
                    }
                }
                Err(DecodeError::Fragment { .. })
                    if self.config.max_ip_fragmented_datagrams > 0 =>
                {
                    return self.handle_fragment(now_ns, link, frame, meta);
                }
                Err(e) => return self.count_decode_error(&e),
            }
        }
        self.counters.tunnel_too_deep += 1;
    }

    fn count_decode_error(&mut self, e: &DecodeError) {
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
            DecodeError::NotIpProtocol { .. } => &mut c.decode_not_ip,
            DecodeError::WlanNotData(_) => &mut c.decode_wlan_not_data,
            DecodeError::WlanProtected => &mut c.decode_wlan_protected,
            DecodeError::WlanAggregate => &mut c.decode_wlan_aggregate,
            DecodeError::TooManyMplsLabels(_) => &mut c.decode_too_many_mpls_labels,
        } += 1;
    }

    /// Holds one IP fragment; when it completes its datagram, decodes the datagram and
    /// ingests it like an unfragmented packet (only the whole datagram has a transport
    /// header: RFC 791 §3.2, RFC 8200 §4.5). The datagram carries the completing fragment's
    /// capture metadata (its time is when the receiver could have it). Fragments are off the
    /// fast path: an unfragmented packet never gets here (cold and out of line, so that
    /// `handle_frame` stays as lean as before). Every outcome is counted, none is an error
    /// of the frame: a reassembled datagram that fails to decode is counted by reason.
    #[cold]
    #[inline(never)]
    fn handle_fragment(&mut self, now_ns: u64, link: LinkType, frame: &[u8], meta: CaptureMeta) {
        self.counters.decode_ip_fragment += 1;
        let (ip, meta) = match ip_layer(link, frame, meta) {
            Ok(v) => v,
            Err(e) => return self.count_decode_error(&e),
        };
        let Ok(fragment) = Fragment::parse(ip) else {
            self.counters.ip_frag_malformed += 1;
            return;
        };
        // The bytes crossed the interface whether or not the datagram ever completes.
        self.count_ip_bytes(meta.direction, fragment.ip_len);
        let limits = self.fragment_limits();
        let at = CapturePoint {
            ifindex: meta.ifindex,
            direction: meta.direction,
        };
        let Some(datagram) =
            self.fragments
                .push(now_ns, at, &fragment, &limits, &mut self.counters)
        else {
            return;
        };
        self.handle_reassembled(now_ns, &datagram.packet, meta);
    }

    /// Ingests an IP datagram reassembled from fragments elsewhere (a sharded dispatcher,
    /// [`crate::shard::Dispatcher`], reassembles before it knows the flow's worker): decoded
    /// and tracked like an unfragmented packet; its frames and IP bytes were counted where
    /// the fragments arrived, so neither is counted again here.
    pub fn handle_reassembled(&mut self, now_ns: u64, datagram: &[u8], meta: CaptureMeta) {
        match decode_ip(datagram, meta) {
            Ok(packet) => self.ingest(now_ns, &packet),
            // A second Fragment header inside the datagram: never reassemble twice.
            Err(DecodeError::Fragment { .. }) => self.counters.ip_frag_malformed += 1,
            Err(e) => self.count_decode_error(&e),
        }
    }

    fn fragment_limits(&self) -> ReassemblyLimits {
        ReassemblyLimits {
            timeout_ns: self.config.ip_fragment_timeout_ns,
            max_bytes: self.config.max_ip_fragment_bytes,
            max_datagrams: self.config.max_ip_fragmented_datagrams,
        }
    }

    /// Bytes held in IP fragments waiting for the rest of their datagram.
    pub fn ip_fragment_bytes(&self) -> usize {
        self.fragments.held_bytes()
    }

    fn count_ip_bytes(&mut self, direction: Direction, ip_len: u32) {
        *match direction {
            Direction::Ingress => &mut self.counters.ip_bytes_ingress,
            Direction::Egress => &mut self.counters.ip_bytes_egress,
            Direction::Unknown => &mut self.counters.ip_bytes_unknown_direction,
        } += u64::from(ip_len);
    }

    /// Ingests one decoded packet. Call it instead of `handle_frame` when the packet was
    /// decoded elsewhere; then drain [`Engine::poll_record`].
    pub fn handle_packet(&mut self, now_ns: u64, packet: &Packet<'_>) {
        self.count_ip_bytes(packet.meta.direction, packet.ip_len);
        self.ingest(now_ns, packet);
    }

    /// Tracks a decoded packet whose IP bytes were already counted.
    fn ingest(&mut self, now_ns: u64, packet: &Packet<'_>) {
        self.counters.packets += 1;
        self.route(now_ns, packet, true);
    }

    /// Routes a counted packet to its flow. `report_l4` is false when the packet goes in a
    /// second time, after retiring the connection it first reached.
    fn route(&mut self, now_ns: u64, packet: &Packet<'_>, report_l4: bool) {
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
        // reuse inside the close linger): retire the old one first. So is a SYN with another
        // ISN while the first attempt carried nothing either way (its SYN unanswered or
        // abandoned: the client tried again from the same port); a retransmitted SYN repeats
        // its ISN (RFC 9293 §3.4). Taken for a retransmission, the new attempt's data fell
        // outside the old sequence space and was lost.
        let pure_syn = packet
            .tcp()
            .filter(|t| t.flags.contains(TcpFlags::SYN) && !t.flags.contains(TcpFlags::ACK));
        if let Some(syn) = pure_syn {
            let (closed, new_attempt) = match self.table.get_mut(&key).map(|e| &e.state) {
                Some(ConnState::Tcp(c)) => {
                    let (this, other) = (&c.reasm[side.index()], &c.reasm[side.other().index()]);
                    (
                        c.closed_at.is_some() || this.is_closed(),
                        this.opened_by_another_syn(syn.seq) && other.carried_nothing(),
                    )
                }
                _ => (false, false),
            };
            if new_attempt {
                self.counters.tcp_syn_new_attempts += 1;
            }
            if closed || new_attempt {
                self.evict(key, EvictReason::Closed, now_ns);
            }
        }
        // Set when the packet turns out to start a new connection on this tuple.
        let mut retire = false;
        let Self {
            config,
            table,
            counters,
            ids,
            queue,
            total_buffered,
            events,
            tls_blind_spots,
            capture_hints,
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
                        // A protocol content cannot tell (DNS) is known by its port.
                        let ports = [t.src_port, t.dst_port];
                        let l7 = match crate::l7::stream_decoder_for_ports(ports) {
                            Some(dec) => L7Slot::Active(dec),
                            None => L7Slot::Detecting { gapped: [false; 2] },
                        };
                        ConnState::Tcp(Box::new(TcpConn {
                            reasm: [TcpReassembler::new(), TcpReassembler::new()],
                            l7,
                            closed_at: None,
                            rst: ResetTracker::default(),
                            health: ConnectionHealth::default(),
                            sightings: Default::default(),
                            hinted: [None; 2],
                        }))
                    }
                    Transport::Udp { src_port, dst_port } => ConnState::Udp(UdpConn {
                        l7: crate::l7::datagram_decoder_for_ports([src_port, dst_port]),
                    }),
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
                        if report_l4 && wants_l4(config.l4_records, packet) {
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
        // Pushed after the connection's state took the packet, so that the health it carries
        // counts this segment (a FIN or RST record shows the connection as it ended).
        let mut l4_record = (report_l4
            && wants_l4_in_flow(config.l4_records, packet, reported, now_ns))
        .then(|| {
            // ICMP says by its type which way a message goes; the flow's first sender may be
            // a neighbour-discovery exchange in the other direction.
            let is_reply = Some(icmp_is_reply(packet).unwrap_or(side == entry.server));
            Box::new(l4_flow(packet, &at, is_reply))
        });
        let queued_before = queue.len();
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
                    rst,
                    health,
                    sightings,
                    hinted,
                } = &mut **conn;
                let [lo, hi] = reasm;
                let (this, other) = match side {
                    Side::Lo => (lo, hi),
                    Side::Hi => (hi, lo),
                };
                let l7cfg = &config.l7;
                if rst.pending().is_some() && !tcp.flags.contains(TcpFlags::RST) {
                    // After a reset: the RST's sender carrying on in its sequence space
                    // withdraws it; a segment outside it is a new connection (see tcp::rst).
                    match rst.judge_after_reset(side, &tcp, this.send_position()) {
                        AfterReset::Continued => {
                            counters.tcp_rst_peers_continued += 1;
                            rst.withdraw();
                            *closed_at = None;
                        }
                        AfterReset::NewConnection => {
                            counters.tcp_rst_new_connections += 1;
                            retire = true;
                        }
                        AfterReset::Undecided => {}
                    }
                }
                if !retire {
                    let from_client = side != entry.server;
                    let captured_to = this.send_position().map(|p| p.next);
                    // A packet seen again at another capture point (lo's egress and ingress,
                    // a forwarded packet's interfaces) is not sent again.
                    let again = sightings.is_again(
                        side.index(),
                        &tcp,
                        packet.payload_wire_len,
                        (at.meta.ifindex, at.meta.direction),
                        at.ts_ns,
                    );
                    if again {
                        counters.tcp_second_sightings += 1;
                    } else {
                        health.on_segment(
                            from_client,
                            &tcp,
                            packet.payload_wire_len,
                            captured_to,
                            at.ts_ns,
                            counters,
                        );
                    }
                    // Health rides on the records that exist: TCP control segments' L3/L4
                    // records (never a record of its own per packet).
                    if let Some(flow) = &mut l4_record {
                        if tcp.flags.is_control() && health.has_any() {
                            let snapshot = health.snapshot();
                            flow.tcp_srtt_ns = snapshot.path_srtt_ns();
                            flow.tcp_health = Some(Box::new(snapshot));
                        }
                    }
                }
                if retire {
                    // Not this connection's segment: it goes to the new one below.
                } else if tcp.flags.contains(TcpFlags::RST) {
                    // Judged as the receiver would (RFC 9293 §3.10.7.4, RFC 5961 §3.2; see
                    // tcp::rst); a RST carries no stream data. A reset stays pending until the
                    // flow is evicted (close linger, a new connection, the end): then it
                    // takes effect as of the RST's time.
                    if closed_at.is_none() {
                        match rst.judge_rst(side, &tcp, this.send_position(), other.send_position())
                        {
                            RstVerdict::OutOfWindow => counters.tcp_rst_out_of_window += 1,
                            RstVerdict::Challenge => counters.tcp_rst_challenged += 1,
                            RstVerdict::Reset => {
                                counters.tcp_resets += 1;
                                rst.begin_reset(side, &tcp, at.ts_ns);
                                *closed_at = Some(now_ns);
                            }
                        }
                    }
                } else {
                    rst.on_segment(side, &tcp);
                    let mut sink = |ev: StreamEvent<'_>, counters: &mut Counters| {
                        let mut cx = L7Context {
                            counters,
                            ids,
                            config: l7cfg,
                        };
                        l7.on_event(dir, ev, &at, &mut cx, events);
                    };
                    this.push(&seg, now_ns, &rcfg, counters, &mut sink);
                    if tcp.flags.contains(TcpFlags::ACK) {
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
                    let min = config.capture_hint_min_bytes;
                    let hint = &mut hinted[side.index()];
                    if min > 0 && (hint.is_some() || !packet.payload.is_empty()) {
                        let skippable = l7.skippable(dir, this.offset());
                        let (src, dst) = (key.endpoint(side), key.endpoint(side.other()));
                        if let Some(h) =
                            capture_hint::after_segment(this, skippable, min, hint, src, dst)
                        {
                            if matches!(h, CaptureHint::Skip { .. }) {
                                counters.capture_hints += 1;
                            }
                            capture_hints.push(h);
                        }
                    }
                }
                if closed_at.is_none() && this.is_closed() && other.is_closed() {
                    *closed_at = Some(now_ns);
                    let mut cx = L7Context {
                        counters,
                        ids,
                        config: l7cfg,
                    };
                    plaintext::note_blind_spot(tls_blind_spots, &view, l7, cx.counters);
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
            (ConnState::Udp(UdpConn { l7: Some(dec) }), Transport::Udp { .. }) => {
                let mut cx = L7Context {
                    counters,
                    ids,
                    config: &config.l7,
                };
                let wire_len = packet.payload_wire_len as usize;
                dec.on_datagram(dir, packet.payload, wire_len, &at, &mut cx, events);
            }
            _ => {}
        }
        if let Some(flow) = l4_record {
            push(queue, counters, config, Record::Flow(flow));
        }
        drain_events(events, &view, config, counters, queue, ids);
        if let (ConnState::Tcp(conn), true) = (&entry.state, queue.len() > queued_before) {
            attach_health(queue, queued_before, &conn.health);
        }
        if retire {
            // The old connection's reset takes effect; this packet starts the new one,
            // picked up mid-way.
            self.evict(key, EvictReason::Closed, now_ns);
            self.route(now_ns, packet, false);
        }
    }

    /// Runs timers: skips stale TCP holes, evicts idle and closed flows (reporting unanswered
    /// requests as error spans), forgets stale DNS queries (UDP and TCP), reports HTTP/2
    /// streams the client cancelled once their wait is over, and drops IP datagrams whose
    /// fragments did not all arrive within `ip_fragment_timeout_ns`. Call it regularly with the
    /// current time (e.g. every 100 ms in the agent, or with each frame's time in replay); it
    /// only scans the table once per `timeout_scan_interval_ns`.
    pub fn handle_timeout(&mut self, now_ns: u64) {
        if now_ns < self.next_scan_ns {
            return;
        }
        self.next_scan_ns = now_ns.saturating_add(self.config.timeout_scan_interval_ns);
        let limits = self.fragment_limits();
        self.fragments
            .on_timeout(now_ns, &limits, &mut self.counters);
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
                            ..
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
                        // What waits only for time (queries unanswered, cancelled streams) is
                        // reported now, not when the connection next sends or ends.
                        let mut cx = L7Context {
                            counters: &mut self.counters,
                            ids: &mut self.ids,
                            config: &self.config.l7,
                        };
                        l7.on_timeout(
                            now_ns,
                            self.config.dns_timeout_ns,
                            &mut cx,
                            &mut self.events,
                        );
                        let closed = closed_at.is_some_and(|t| {
                            now_ns.saturating_sub(t) >= self.config.close_linger_ns
                        });
                        let now_buffered = conn.buffered();
                        self.total_buffered = self.total_buffered - entry.accounted + now_buffered;
                        entry.accounted = now_buffered;
                        let queued_before = self.queue.len();
                        drain_events(
                            &mut self.events,
                            &view,
                            &self.config,
                            &mut self.counters,
                            &mut self.queue,
                            &mut self.ids,
                        );
                        attach_health(&mut self.queue, queued_before, &conn.health);
                        plaintext::mark_source(&mut self.queue, queued_before, &conn.l7);
                        if closed {
                            Some(EvictReason::Closed)
                        } else if idle {
                            Some(EvictReason::Idle)
                        } else {
                            None
                        }
                    }
                    ConnState::Udp(udp) => {
                        if let Some(dec) = &mut udp.l7 {
                            let mut cx = L7Context {
                                counters: &mut self.counters,
                                ids: &mut self.ids,
                                config: &self.config.l7,
                            };
                            dec.on_timeout(now_ns, self.config.dns_timeout_ns, &mut cx);
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
        // Datagrams still missing fragments never reach a decoder: a lone first fragment is
        // not a datagram, a later one has no transport header.
        self.fragments.flush(&mut self.counters);
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
                let TcpConn {
                    reasm,
                    l7,
                    rst,
                    hinted,
                    ..
                } = &mut **conn;
                // The connection is gone: so are its hints.
                for side in [Side::Lo, Side::Hi] {
                    if hinted[side.index()].take().is_some() {
                        self.capture_hints.push(CaptureHint::Clear {
                            src: key.endpoint(side),
                            dst: key.endpoint(side.other()),
                        });
                    }
                }
                // A pending reset takes effect now, as of the RST's time: its sender's
                // direction ends with `Reset`, what the other held is final.
                let reset = rst.pending().copied();
                let end_ns = reset.map_or(now_ns, |p| p.at_ns);
                let at = PacketCtx {
                    ts_ns: end_ns,
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
                    if reset.is_some_and(|p| p.sender.index() == i) {
                        r.reset(&mut self.counters, &mut sink);
                    } else {
                        r.flush(&mut self.counters, &mut sink);
                    }
                }
                let mut cx = L7Context {
                    counters: &mut self.counters,
                    ids: &mut self.ids,
                    config: &self.config.l7,
                };
                plaintext::note_blind_spot(&mut self.tls_blind_spots, &view, l7, cx.counters);
                l7.finish_evicted(end_ns, &mut cx, &mut self.events);
                conn.health.on_end(&mut self.counters);
            }
            ConnState::Udp(udp) => {
                if let Some(dec) = &mut udp.l7 {
                    let mut cx = L7Context {
                        counters: &mut self.counters,
                        ids: &mut self.ids,
                        config: &self.config.l7,
                    };
                    dec.finish(now_ns, &mut cx, &mut self.events);
                }
            }
            ConnState::Other => {}
        }
        let queued_before = self.queue.len();
        drain_events(
            &mut self.events,
            &view,
            &self.config,
            &mut self.counters,
            &mut self.queue,
            &mut self.ids,
        );
        if let ConnState::Tcp(conn) = &entry.state {
            attach_health(&mut self.queue, queued_before, &conn.health);
            plaintext::mark_source(&mut self.queue, queued_before, &conn.l7);
        }
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
        // A reply type's sender answers: it is the "server".
        _ if icmp_is_reply(packet) == Some(true) => side,
        // ICMP and the rest: the first sender is the "client".
        _ => side.other(),
    }
}

/// Whether an ICMP message is the answer of a request/answer pair, by its type: `Some(false)`
/// for a request, `Some(true)` for its answer, `None` for the rest (errors, unsolicited
/// messages), whose direction is the flow's. An ICMPv6 flow between two hosts usually opens
/// with Neighbour Discovery in either direction before the first echo, so the flow's first
/// sender says nothing about who pings whom.
fn icmp_is_reply(packet: &Packet<'_>) -> Option<bool> {
    let Transport::Icmp { v6, icmp_type, .. } = packet.transport else {
        return None;
    };
    match (v6, icmp_type) {
        // RFC 792: echo (8) / echo reply (0), timestamp (13/14), information (15/16);
        // RFC 950: address mask (17/18).
        (false, 8 | 13 | 15 | 17) => Some(false),
        (false, 0 | 14 | 16 | 18) => Some(true),
        // RFC 4443 §4.1, §4.2: echo request (128) / reply (129); RFC 4861 §4: router
        // solicitation (133) / advertisement (134), neighbour solicitation (135) /
        // advertisement (136).
        (true, 128 | 133 | 135) => Some(false),
        (true, 129 | 134 | 136) => Some(true),
        _ => None,
    }
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

/// Queues the span `make` builds for the `end` the capture points at (with
/// [`EngineConfig::span_both_ends`], the other end's as its counterpart, with a span id of its
/// own from `ids`), or with [`EngineConfig::spans`] off, only counts it as [`push`] would have
/// (so counters do not depend on whether spans are consumed).
fn push_span(
    queue: &mut VecDeque<Record>,
    counters: &mut Counters,
    config: &EngineConfig,
    ids: &mut IdGenerator,
    end: SpanKind,
    twin: Twin,
    make: impl Fn(SpanKind) -> Span,
) {
    if config.spans {
        let mut span = make(end);
        // Every test build checks the patched copy against the builder, on every span.
        #[cfg(debug_assertions)]
        if let Twin::Patch { server } = twin {
            let patched = counterpart_of(&mut span, server);
            debug_assert_eq!(patched, make(end.other()), "counterpart patch differs");
        }
        if config.span_both_ends {
            let mut other = match twin {
                Twin::Patch { server } => counterpart_of(&mut span, server),
                Twin::Build => make(end.other()),
            };
            other.span_id = ids.span_id();
            span.counterpart = Some(Box::new(other));
        }
        push(queue, counters, config, Record::Span(Box::new(span)));
    } else if queue.len() >= config.max_queued_records {
        counters.records_dropped_queue_full += 1;
    } else {
        counters.records_emitted += 1;
    }
}

/// How [`push_span`] makes the span of an exchange's other end.
#[derive(Clone, Copy)]
enum Twin {
    /// Built again by the protocol's builder: its status depends on the span's kind (HTTP
    /// semconv: a 4xx is an error for clients only; RPC semconv: servers fail only on the
    /// server-fault gRPC codes).
    Build,
    /// A copy of the first span with the kind and the peer swapped ([`counterpart_of`]): the
    /// status is the same from both ends. `server` is the exchange's server socket (after any
    /// role swap), the CLIENT span's `network.peer.*`.
    Patch { server: Endpoint },
}

/// The span of the same exchange as its other end sees it, made from `span` (a builder's,
/// whose status does not depend on its kind): the other kind, and `network.peer.*` naming the
/// other side (OTel semconv: the peer of a SERVER span is the client, of a CLIENT span the
/// server's socket, which `server.address` may not be when a Host/:authority names it). The
/// attribute list is shared with `span`'s (see [`crate::record::Attributes`]): no attribute is
/// built or copied, nor, for a SERVER counterpart, any address text. Attributes not built
/// yet ([`crate::record::Attributes::lazy`]) stay so: the same exchange, seen from the other
/// end.
fn counterpart_of(span: &mut Span, server: Endpoint) -> Span {
    use crate::record::{attr, AttributeValue};
    let kind = span.kind.other();
    let a = &mut span.attributes;
    let attributes = match a.lazy_for(kind) {
        Some(lazy) => lazy,
        None => {
            let (address, port) = if kind == SpanKind::Server {
                (
                    a.get(attr::CLIENT_ADDRESS).cloned(),
                    a.get(attr::CLIENT_PORT).cloned(),
                )
            } else {
                (None, None)
            };
            let address = address
                .unwrap_or_else(|| AttributeValue::String(crate::record::ip_string(server.addr)));
            let port = port.unwrap_or(AttributeValue::Int(i64::from(server.port)));
            a.share_with_peer(address, port)
        }
    };
    Span {
        trace_id: span.trace_id,
        span_id: span.span_id,
        parent_span_id: span.parent_span_id,
        trace_state: span.trace_state.clone(),
        name: span.name.clone(),
        kind,
        start_time_ns: span.start_time_ns,
        end_time_ns: span.end_time_ns,
        status: span.status.clone(),
        attributes,
        socket_cookie: span.socket_cookie,
        ifindex: span.ifindex,
        process: span.process.clone(),
        counterpart: None,
        events: span.events.clone(),
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
        peer_process: None,
        tcp_health: None,
        tcp_srtt_ns: None,
        l7_source: None,
    }
}

/// Puts the connection's smoothed RTT so far on the L7 flows queued from `from` on, so that
/// an exchange's latency splits into network round trips and server time. (Only the RTT: the
/// whole health is on the connection's SYN/FIN/RST records, and copying it onto every L7 flow
/// cost 3-4% of replay time.)
fn attach_health(queue: &mut VecDeque<Record>, from: usize, health: &ConnectionHealth) {
    if queue.len() <= from {
        return;
    }
    let Some(srtt) = health.path_srtt_ns() else {
        return;
    };
    for record in queue.range_mut(from..) {
        if let Record::Flow(flow) = record {
            if flow.l7.is_some() {
                flow.tcp_srtt_ns = Some(srtt);
            }
        }
    }
}

fn drain_events(
    events: &mut Vec<L7Event>,
    view: &FlowView,
    config: &EngineConfig,
    counters: &mut Counters,
    queue: &mut VecDeque<Record>,
    ids: &mut IdGenerator,
) {
    for ev in events.drain(..) {
        match ev {
            L7Event::Http1(ev) => http1_records(ev, view, config, counters, queue, ids),
            L7Event::Dns(ev) => {
                let flow = crate::l7::dns::records::flow(
                    *ev,
                    view.client(),
                    view.server(),
                    view.socket_cookie,
                );
                push(queue, counters, config, Record::Flow(Box::new(flow)));
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
                        if let Some(end) = records::captured_end(&st) {
                            let twin = if records::status_by_kind(&st) {
                                Twin::Build
                            } else {
                                Twin::Patch {
                                    server: records::span_server(&peers, &st),
                                }
                            };
                            push_span(queue, counters, config, ids, end, twin, |kind| {
                                records::span(&peers, &st, kind).expect("request seen")
                            });
                        }
                    }
                }
            }
        }
    }
}

/// Turns an HTTP/1 decoder event into its flow and span records.
fn http1_records(
    ev: Http1Event,
    view: &FlowView,
    config: &EngineConfig,
    counters: &mut Counters,
    queue: &mut VecDeque<Record>,
    ids: &mut IdGenerator,
) {
    let peers = http1::records::Peers {
        client: view.client(),
        server: view.server(),
        socket_cookie: view.socket_cookie,
    };
    match ev {
        Http1Event::Request(req) => {
            let flow = http1::records::request_flow(&peers, &req);
            push(queue, counters, config, Record::Flow(Box::new(flow)));
        }
        Http1Event::Exchange {
            request,
            request_body,
            mut response,
        } => {
            // The flow is the only user of the response's headers: move them over.
            let headers = std::mem::take(&mut response.headers);
            let flow =
                http1::records::response_flow(&peers, request.as_deref(), &response, headers);
            push(queue, counters, config, Record::Flow(Box::new(flow)));
            if let Some(req) = request {
                let end = http1::records::captured_end(&req);
                let twin = if http1::records::status_by_kind(Some(&response)) {
                    Twin::Build
                } else {
                    Twin::Patch {
                        server: peers.server,
                    }
                };
                push_span(queue, counters, config, ids, end, twin, |kind| {
                    http1::records::span(
                        &peers,
                        &req,
                        request_body,
                        Some(&response),
                        response.end_ns,
                        kind,
                    )
                });
            }
        }
        Http1Event::Unanswered {
            request,
            request_body,
            at_ns,
        } => {
            // Placeholders for requests whose head was over the cap have no method.
            if !request.method.is_empty() {
                let end = http1::records::captured_end(&request);
                let twin = Twin::Patch {
                    server: peers.server,
                };
                push_span(queue, counters, config, ids, end, twin, |kind| {
                    let end_ns = at_ns.max(request.head_end.ts_ns);
                    http1::records::span(&peers, &request, request_body, None, end_ns, kind)
                });
            }
        }
    }
}
