//! A TCP connection's health from its packets: handshake time, RTT per direction (RFC 6298),
//! retransmissions, reordering, duplicate ACKs, zero windows, keep-alives and who ended it.
//!
//! Bounded per connection: a few counters per direction and at most [`TIMED_SEGMENTS`] data
//! segments remembered for RTT samples; nothing allocates per segment. Everything is judged at
//! the capture point, which may sit anywhere between the peers:
//! - An RTT sample is the time from a segment to the first ACK covering it, so it measures the
//!   leg from the capture point to the receiver and back (plus the receiver's delayed-ACK
//!   wait). Karn's rule (RFC 6298 §3): no sample from a segment sent more than once, unless
//!   the ACK's timestamp echo (RFC 7323 §3, §4) names the transmission it answers.
//! - A segment starting before the sender's highest sequence number is a retransmission when
//!   its bytes were seen (or acknowledged) before; bytes never seen that arrive within the
//!   reordering window after later ones are out of order (reordered before the capture
//!   point), later ones are retransmissions of a copy the capture missed (like Wireshark's
//!   `tcp.analysis` heuristics, whose 3 ms default window this uses).

use crate::counters::Counters;
use crate::packet::{TcpFlags, TcpInfo};
use crate::record::{ConnectionRole, TcpClose, TcpDirectionHealth, TcpHealth};
use crate::tcp::seq::{seq_diff, seq_lt};

/// Data segments per direction remembered until acknowledged, for RTT samples. More in flight
/// are not timed (later ones are, once these are acknowledged): a bound, not a loss of
/// accuracy, as one sample per window is what RFC 6298 §3 asks for.
pub const TIMED_SEGMENTS: usize = 8;

/// Bytes never seen before that arrive at most this long after the highest ones count as
/// reordered rather than retransmitted (Wireshark's default; a smaller srtt replaces it).
pub const REORDER_WINDOW_NS: u64 = 3_000_000;

/// Smoothed RTT per RFC 6298 §2, in nanoseconds, with min/max.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RttEstimator {
    srtt_ns: u64,
    rttvar_ns: u64,
    min_ns: u64,
    max_ns: u64,
    samples: u32,
}

impl RttEstimator {
    /// Takes one measurement R.
    pub fn sample(&mut self, r: u64) {
        if self.samples == 0 {
            // RFC 6298 §2.2: SRTT <- R, RTTVAR <- R/2.
            self.srtt_ns = r;
            self.rttvar_ns = r / 2;
            self.min_ns = r;
            self.max_ns = r;
        } else {
            // RFC 6298 §2.3 (alpha = 1/8, beta = 1/4), RTTVAR first, from the old SRTT:
            // RTTVAR <- 3/4 RTTVAR + 1/4 |SRTT - R'|; SRTT <- 7/8 SRTT + 1/8 R'.
            self.rttvar_ns = (3 * self.rttvar_ns + self.srtt_ns.abs_diff(r)) / 4;
            self.srtt_ns = (7 * self.srtt_ns + r) / 8;
            self.min_ns = self.min_ns.min(r);
            self.max_ns = self.max_ns.max(r);
        }
        self.samples = self.samples.saturating_add(1);
    }

    /// Smoothed RTT, once sampled.
    pub fn srtt_ns(&self) -> Option<u64> {
        (self.samples > 0).then_some(self.srtt_ns)
    }
}

/// A segment waiting for its ACK. 24 bytes, not the 32 an `Option<u32>` TSval would make it:
/// every segment writes or reads a slot of the ring, so a smaller ring is fewer cache lines
/// per connection (with many connections interleaved, each one is cold when its next segment
/// comes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Timed {
    sent_ns: u64,
    start: u32,
    end: u32,
    /// TSval of its last transmission, when `has_tsval` (it had the option).
    tsval: u32,
    has_tsval: bool,
    /// Sent more than once: ambiguous for RTT (Karn).
    retransmitted: bool,
}

impl Timed {
    fn new(start: u32, end: u32, sent_ns: u64, tsval: Option<u32>) -> Self {
        let mut t = Self {
            sent_ns,
            start,
            end,
            ..Self::default()
        };
        t.set_tsval(tsval);
        t
    }

    fn tsval(&self) -> Option<u32> {
        self.has_tsval.then_some(self.tsval)
    }

    fn set_tsval(&mut self, tsval: Option<u32>) {
        self.has_tsval = tsval.is_some();
        self.tsval = tsval.unwrap_or(0);
    }
}

/// What every segment of either direction reads or writes of one side, packed (presence as
/// bits, not `Option`s: 30 bytes, not 48) so that both sides' together fill one 64-byte
/// line. With many connections interleaved each one is cold when its next segment comes, so
/// every line a segment touches is a miss.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
struct Hot {
    /// When `next` last advanced.
    advanced_ns: u64,
    /// One past its highest sequence number sent (SYN and FIN count one), when [`NEXT`].
    next: u32,
    /// Its last acknowledgment number (with `last_window`, its last window): what it has
    /// received of the other side, when [`LAST_ACK`].
    last_ack: u32,
    /// The highest acknowledgment the other side sent for its data, when [`ACK_BY_PEER`].
    last_ack_by_peer: u32,
    /// Set by a retransmission (when [`RECOVERY_END`]): one past the highest sequence number
    /// sent then. Until an ACK reaches it, cumulative ACKs were held back by the hole, so they
    /// time the recovery, not the path: only a timestamp echo naming a retransmission gives a
    /// sample.
    recovery_end: u32,
    last_window: u16,
    /// Its SYN's window scale shift (RFC 7323 §2.2), when [`WSCALE`].
    wscale: u8,
    /// Which of the fields above hold a value, and the flags below.
    flags: u8,
    /// Segments waiting for their ACK, oldest first: a ring of `timed_len` from `timed_head`
    /// (both below [`TIMED_SEGMENTS`]).
    timed_head: u8,
    timed_len: u8,
}

const NEXT: u8 = 1;
const LAST_ACK: u8 = 1 << 1;
const ACK_BY_PEER: u8 = 1 << 2;
const RECOVERY_END: u8 = 1 << 3;
const WSCALE: u8 = 1 << 4;
/// Its SYN was seen (with the window scale, if any, in `wscale`).
const SYN_SEEN: u8 = 1 << 5;
/// `last_window` came in a SYN (never scaled).
const WINDOW_IN_SYN: u8 = 1 << 6;
/// The client's ACK of the SYN/ACK was seen (the connection's `ack_ns` is set); only the
/// client's side uses it.
const HANDSHAKE_ACKED: u8 = 1 << 7;

impl Hot {
    fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    fn set(&mut self, flag: u8, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }

    fn next(&self) -> Option<u32> {
        self.has(NEXT).then_some(self.next)
    }

    fn set_next(&mut self, v: u32) {
        self.next = v;
        self.flags |= NEXT;
    }

    fn last_ack(&self) -> Option<u32> {
        self.has(LAST_ACK).then_some(self.last_ack)
    }

    fn last_ack_by_peer(&self) -> Option<u32> {
        self.has(ACK_BY_PEER).then_some(self.last_ack_by_peer)
    }

    fn recovery_end(&self) -> Option<u32> {
        self.has(RECOVERY_END).then_some(self.recovery_end)
    }

    fn set_recovery_end(&mut self, v: Option<u32>) {
        self.recovery_end = v.unwrap_or(0);
        self.set(RECOVERY_END, v.is_some());
    }

    fn wscale(&self) -> Option<u8> {
        self.has(WSCALE).then_some(self.wscale)
    }

    fn syn_seen(&self) -> bool {
        self.has(SYN_SEEN)
    }

    fn timed_len(&self) -> usize {
        usize::from(self.timed_len)
    }

    /// Index in the ring of the `i`th segment waiting.
    fn slot(&self, i: usize) -> usize {
        (usize::from(self.timed_head) + i) % TIMED_SEGMENTS
    }

    /// Forgets the `n` oldest segments (acknowledged).
    fn forget(&mut self, n: usize) {
        // Both stay below TIMED_SEGMENTS (8): the casts cannot truncate.
        self.timed_head = ((usize::from(self.timed_head) + n) % TIMED_SEGMENTS) as u8;
        self.timed_len -= n as u8;
    }

    /// The receive window it last advertised, in bytes, when the scale is known. RFC 7323
    /// §2.2: a SYN's window is never scaled, and scaling is in use only if both SYNs offered
    /// it (§2.3: shifts above 14 are taken as 14); with a SYN unseen the scale is unknown.
    fn advertised_window(&self, other: &Hot) -> Option<u32> {
        let window = u32::from(self.last_window);
        if self.has(WINDOW_IN_SYN)
            || (self.syn_seen() && self.wscale().is_none())
            || (other.syn_seen() && other.wscale().is_none())
        {
            return Some(window);
        }
        match (self.syn_seen() && other.syn_seen(), self.wscale()) {
            (true, Some(shift)) => Some(window << shift.min(14)),
            _ => None,
        }
    }
}

/// The rest of one side: the segments waiting for their ACK (an in-order segment writes one
/// slot and reads one of the other side's), then the counters that only odd segments touch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[repr(C)]
struct SideState {
    timed: [Timed; TIMED_SEGMENTS],
    retransmitted_bytes: u64,
    retransmitted_segments: u32,
    out_of_order: u32,
    keepalives: u32,
    /// Duplicate ACKs and zero windows it sent.
    dup_acks: u32,
    zero_windows: u32,
    /// Data segments that reached the edge of the other side's window, and zero-window probes
    /// it sent.
    window_full: u32,
    zero_window_probes: u32,
}

/// One side, all its parts.
struct Side<'a> {
    hot: &'a mut Hot,
    rtt: &'a mut RttEstimator,
    cold: &'a mut SideState,
}

impl Side<'_> {
    /// The `i`th segment waiting, oldest first.
    fn timed_at(&self, i: usize) -> &Timed {
        &self.cold.timed[self.hot.slot(i)]
    }

    fn time(&mut self, t: Timed) {
        if self.hot.timed_len() < TIMED_SEGMENTS {
            self.cold.timed[self.hot.slot(self.hot.timed_len())] = t;
            self.hot.timed_len += 1;
        }
    }

    /// Marks the timed segments overlapping `[start, end)` as sent again at `now_ns`.
    fn mark_retransmitted(
        &mut self,
        start: u32,
        end: u32,
        now_ns: u64,
        tsval: Option<u32>,
    ) -> bool {
        let mut any = false;
        for i in 0..self.hot.timed_len() {
            let t = &mut self.cold.timed[self.hot.slot(i)];
            if seq_lt(start, t.end) && seq_lt(t.start, end) {
                t.retransmitted = true;
                t.sent_ns = now_ns;
                t.set_tsval(tsval);
                any = true;
            }
        }
        any
    }
}

impl SideState {
    fn direction(&self, r: &RttEstimator, receiver: &SideState) -> TcpDirectionHealth {
        let some = |v: u64| (r.samples > 0).then_some(v);
        TcpDirectionHealth {
            srtt_ns: r.srtt_ns(),
            rttvar_ns: some(r.rttvar_ns),
            min_rtt_ns: some(r.min_ns),
            max_rtt_ns: some(r.max_ns),
            rtt_samples: r.samples,
            retransmitted_segments: self.retransmitted_segments,
            retransmitted_bytes: self.retransmitted_bytes,
            out_of_order_segments: self.out_of_order,
            duplicate_acks: receiver.dup_acks,
            zero_window_advertisements: receiver.zero_windows,
            keepalives: self.keepalives,
            window_full_segments: self.window_full,
            zero_window_probes: self.zero_window_probes,
        }
    }
}

/// Per-connection health state; see the module docs.
///
/// Laid out for the per-segment path (`repr(C)`): both sides' [`Hot`] fields first (64
/// bytes), then their RTT estimators (a segment acknowledging data updates the other side's),
/// then the handshake and close times (read only by handshake, FIN and RST segments), then
/// each side's timed segments and counters (see [`SideState`]). Not `align(64)`:
/// the connection's box would then come from an aligned allocation, and glibc's memalign
/// splits chunks so that every other allocation gets slower (cachegrind: +4% instructions in
/// malloc on the HTTP/1 replay).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[repr(C)]
pub struct ConnectionHealth {
    /// Indexed by who sends: 0 client, 1 server (as `sides`).
    hot: [Hot; 2],
    rtt: [RttEstimator; 2],
    ack_ns: Option<u64>,
    syn_ack_ns: Option<u64>,
    closed_by: Option<TcpClose>,
    syn_ns: Option<u64>,
    /// Indexed by who sends: 0 client, 1 server.
    sides: [SideState; 2],
    syn_retransmits: u32,
    refused: bool,
}

impl ConnectionHealth {
    /// Takes one segment (RST included) sent by the client (`from_client`) or the server,
    /// with `payload_len` payload bytes on the wire, seen at `now_ns`. `captured_to` is where
    /// reassembly of the sender's bytes stands before this segment (its next byte to deliver):
    /// every byte before it was captured, so a segment starting there is sent again.
    pub fn on_segment(
        &mut self,
        from_client: bool,
        tcp: &TcpInfo,
        payload_len: u32,
        captured_to: Option<u32>,
        now_ns: u64,
        counters: &mut Counters,
    ) {
        let f = tcp.flags;
        let ack = f.contains(TcpFlags::ACK);
        if (f.contains(TcpFlags::FIN) || f.contains(TcpFlags::RST))
            && self.on_close(from_client, tcp, now_ns, counters)
        {
            return;
        }
        if f.contains(TcpFlags::SYN) {
            self.handshake(from_client, tcp, now_ns, counters);
        } else if ack
            && from_client
            && !self.hot[0].has(HANDSHAKE_ACKED)
            // Only after a SYN/ACK is there a handshake to complete (its time needs the
            // server's SYN): a connection joined mid-way reads no further.
            && self.hot[1].syn_seen()
        {
            self.handshake_ack(tcp, now_ns, counters);
        }
        let [client_hot, server_hot] = &mut self.hot;
        let [client_rtt, server_rtt] = &mut self.rtt;
        let [client, server] = &mut self.sides;
        let client = Side {
            hot: client_hot,
            rtt: client_rtt,
            cold: client,
        };
        let server = Side {
            hot: server_hot,
            rtt: server_rtt,
            cold: server,
        };
        let (mut me, mut peer) = if from_client {
            (client, server)
        } else {
            (server, client)
        };
        // RFC 9293 §3.8.6.1: a closed window is probed; the probe is not data.
        let probe = peer.hot.last_window == 0
            && zero_window_probe(&mut me, &peer, tcp, payload_len, counters);
        if !probe {
            on_sent(&mut me, tcp, payload_len, captured_to, now_ns, counters);
        }
        if payload_len > 0 {
            window_full(&mut me, &peer, tcp, payload_len, counters);
        }
        if ack {
            on_ack(&mut me, &mut peer, tcp, payload_len, now_ns, counters);
        }
    }

    /// A FIN or RST: who ended the connection. True for a RST, which has nothing else to
    /// learn from. Out of line (`#[cold]`): at most a few per connection, so the per-segment
    /// path stays small enough for the instruction cache.
    #[cold]
    #[inline(never)]
    fn on_close(
        &mut self,
        from_client: bool,
        tcp: &TcpInfo,
        now_ns: u64,
        counters: &mut Counters,
    ) -> bool {
        let rst = tcp.flags.contains(TcpFlags::RST);
        if self.closed_by.is_none() {
            self.closed_by = Some(TcpClose {
                by: if from_client {
                    ConnectionRole::Client
                } else {
                    ConnectionRole::Server
                },
                reset: rst,
                time_ns: now_ns,
            });
        }
        if rst {
            // A RST answering a SYN: refused (RFC 9293 §3.10.7.3, SYN-SENT). Its sequence
            // number and window are not the sender's (§3.5.2): nothing else to learn.
            if !from_client && self.syn_ns.is_some() && self.syn_ack_ns.is_none() && !self.refused {
                self.refused = true;
                counters.tcp_connections_refused += 1;
            }
        }
        rst
    }

    /// The client's ACK of the SYN/ACK, for a segment without SYN (the caller checked it is
    /// the client's, with ACK, and the handshake is not complete yet).
    fn handshake_ack(&mut self, tcp: &TcpInfo, now_ns: u64, c: &mut Counters) {
        // It acknowledges the server's ISN + 1.
        if self.syn_ack_ns.is_some() && self.hot[1].next() == Some(tcp.ack) {
            self.ack_ns = Some(now_ns);
            self.hot[0].set(HANDSHAKE_ACKED, true);
            c.tcp_handshakes += 1;
        }
    }

    /// SYN -> SYN/ACK -> ACK times (RFC 9293 §3.5, figure 6), for a segment with SYN (out of
    /// line like [`ConnectionHealth::on_close`]).
    #[cold]
    #[inline(never)]
    fn handshake(&mut self, from_client: bool, tcp: &TcpInfo, now_ns: u64, c: &mut Counters) {
        let f = tcp.flags;
        let syn = f.contains(TcpFlags::SYN);
        let ack = f.contains(TcpFlags::ACK);
        if syn {
            let me = &mut self.hot[usize::from(!from_client)];
            me.set(SYN_SEEN, true);
            me.wscale = tcp.window_scale.unwrap_or(0);
            me.set(WSCALE, tcp.window_scale.is_some());
        }
        if syn && !ack && from_client {
            if self.syn_ns.is_none() {
                self.syn_ns = Some(now_ns);
            } else if self.syn_ack_ns.is_none() {
                self.syn_retransmits += 1;
                c.tcp_syn_retransmits += 1;
            }
        } else if syn && ack && !from_client {
            if self.syn_ack_ns.is_none() && self.syn_ns.is_some() {
                self.syn_ack_ns = Some(now_ns);
            }
        } else if ack && from_client && self.ack_ns.is_none() {
            self.handshake_ack(tcp, now_ns, c);
        }
    }

    /// The connection ends (evicted): counts a SYN never answered.
    pub fn on_end(&self, counters: &mut Counters) {
        if self.syn_ns.is_some() && self.syn_ack_ns.is_none() && !self.refused {
            counters.tcp_syns_unanswered += 1;
        }
    }

    /// Anything to report yet: a SYN, a FIN or RST, an RTT sample or a segment sent again (a
    /// connection joined mid-way has nothing until one of them).
    pub fn has_any(&self) -> bool {
        self.syn_ns.is_some()
            || self.closed_by.is_some()
            || self.rtt.iter().any(|r| r.samples > 0)
            || self
                .sides
                .iter()
                .any(|s| s.retransmitted_segments > 0 || s.window_full > 0)
    }

    /// Both legs' smoothed RTT so far (see [`TcpHealth::path_srtt_ns`]), without a snapshot.
    pub fn path_srtt_ns(&self) -> Option<u64> {
        match (self.rtt[0].srtt_ns(), self.rtt[1].srtt_ns()) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        }
    }

    /// The values so far, as carried on records.
    pub fn snapshot(&self) -> TcpHealth {
        let [client, server] = &self.sides;
        let since = |a: Option<u64>, b: Option<u64>| Some(b?.saturating_sub(a?));
        TcpHealth {
            handshake_ns: since(self.syn_ns, self.ack_ns),
            syn_to_syn_ack_ns: since(self.syn_ns, self.syn_ack_ns),
            syn_ack_to_ack_ns: since(self.syn_ack_ns, self.ack_ns),
            syn_retransmits: self.syn_retransmits,
            refused: self.refused,
            syn_unanswered: self.syn_ns.is_some() && self.syn_ack_ns.is_none() && !self.refused,
            to_server: client.direction(&self.rtt[0], server),
            to_client: server.direction(&self.rtt[1], client),
            closed_by: self.closed_by,
        }
    }
}

/// The sender's side of a segment: new data, a retransmission, reordering or a keep-alive.
fn on_sent(
    me: &mut Side<'_>,
    tcp: &TcpInfo,
    payload_len: u32,
    captured_to: Option<u32>,
    now_ns: u64,
    c: &mut Counters,
) {
    let f = tcp.flags;
    let (syn, fin) = (f.contains(TcpFlags::SYN), f.contains(TcpFlags::FIN));
    let len = payload_len + u32::from(syn) + u32::from(fin);
    // Keep-alive: SEG.SEQ = SND.NXT - 1 with zero or one byte (RFC 9293 §3.8.4, RFC 1122
    // §4.2.3.6); not data, not a retransmission.
    if let Some(next) = me.hot.next() {
        if payload_len <= 1 && !syn && !fin && tcp.seq == next.wrapping_sub(1) {
            me.cold.keepalives += 1;
            c.tcp_keepalives += 1;
            return;
        }
    }
    if len == 0 {
        return;
    }
    let start = tcp.seq;
    let end = start.wrapping_add(len);
    match me.hot.next() {
        // RFC 9293 §3.4: ordering modulo 2^32.
        Some(next) if seq_lt(start, next) => {
            sent_again(me, tcp, payload_len, captured_to, now_ns, next, end, c);
        }
        _ => {
            me.hot.set_next(end);
            me.hot.advanced_ns = now_ns;
            me.time(Timed::new(
                start,
                end,
                now_ns,
                tcp.timestamps.map(|(v, _)| v),
            ));
        }
    }
}

/// A segment starting before the sender's highest sequence number (`next`): a retransmission
/// or reordered. Out of line (`#[cold]`): rare, and the in-order path stays small.
#[cold]
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn sent_again(
    me: &mut Side<'_>,
    tcp: &TcpInfo,
    payload_len: u32,
    captured_to: Option<u32>,
    now_ns: u64,
    next: u32,
    end: u32,
    c: &mut Counters,
) {
    let start = tcp.seq;
    let tsval = tcp.timestamps.map(|(v, _)| v);
    let seen = me.mark_retransmitted(start, end, now_ns, tsval)
        | captured_to.is_some_and(|d| seq_lt(start, d));
    let acked = me.hot.last_ack_by_peer().is_some_and(|a| !seq_lt(a, end));
    let window = me
        .rtt
        .srtt_ns()
        .map_or(REORDER_WINDOW_NS, |s| s.min(REORDER_WINDOW_NS));
    if !seen && !acked && now_ns.saturating_sub(me.hot.advanced_ns) < window {
        me.cold.out_of_order += 1;
        c.tcp_health_reordered_segments += 1;
    } else {
        me.cold.retransmitted_segments += 1;
        me.cold.retransmitted_bytes += u64::from(payload_len);
        c.tcp_health_retransmissions += 1;
        c.tcp_health_retransmitted_bytes += u64::from(payload_len);
        let high = if seq_lt(next, end) { end } else { next };
        me.hot.set_recovery_end(Some(match me.hot.recovery_end() {
            Some(r) if seq_lt(high, r) => r,
            _ => high,
        }));
    }
    if seq_lt(next, end) {
        me.hot.set_next(end);
        me.hot.advanced_ns = now_ns;
    }
}

/// The receiver's side of a segment with ACK: an RTT sample when it acknowledges new data,
/// a duplicate ACK, a zero window.
fn on_ack(
    me: &mut Side<'_>,
    peer: &mut Side<'_>,
    tcp: &TcpInfo,
    payload_len: u32,
    now_ns: u64,
    c: &mut Counters,
) {
    let f = tcp.flags;
    let plain = payload_len == 0 && !f.contains(TcpFlags::SYN) && !f.contains(TcpFlags::FIN);
    // RFC 9293 §3.8.6.2: a zero window stops the sender (SYN windows aside: never scaled,
    // and a SYN's zero is no stall).
    if tcp.window == 0 && !f.contains(TcpFlags::SYN) {
        me.cold.zero_windows += 1;
        c.tcp_zero_window_advertisements += 1;
    }
    let ack = tcp.ack;
    // It acknowledges new data (the first ACK seen counts as new).
    let new = me.hot.last_ack().is_none_or(|last| seq_diff(ack, last) > 0);
    if new {
        sample(peer, ack, tcp.timestamps, now_ns, c);
    } else if me.hot.last_ack() == Some(ack) {
        // RFC 5681 §2 "duplicate acknowledgment": data outstanding, no data, no SYN/FIN,
        // same ACK number and same window.
        let outstanding = peer.hot.next().is_some_and(|n| seq_lt(ack, n));
        if plain && outstanding && tcp.window == me.hot.last_window {
            me.cold.dup_acks += 1;
            c.tcp_duplicate_acks += 1;
        }
    }
    if new {
        me.hot.last_ack = ack;
        me.hot.flags |= LAST_ACK;
        peer.hot.last_ack_by_peer = ack;
        peer.hot.flags |= ACK_BY_PEER;
    }
    me.hot.last_window = tcp.window;
    me.hot.set(WINDOW_IN_SYN, f.contains(TcpFlags::SYN));
}

/// A segment sent while the receiver's window is zero (the caller checks): a zero-window
/// probe when it is one byte at SND.NXT (RFC 9293 §3.8.6.1, RFC 1122 §4.2.2.17; BSD and
/// Windows) or zero or one byte at SND.NXT - 1 (Linux's `tcp_xmit_probe_skb`, which looks like
/// a keep-alive, RFC 9293 §3.8.4, but answers a closed window, not an idle connection).
/// Wireshark flags the first kind only (`tcp.analysis.zero_window_probe`) and calls the second a
/// keep-alive. A probe is not data: the byte goes again once the window opens. Out of line: a
/// closed window is rare.
#[cold]
#[inline(never)]
fn zero_window_probe(
    me: &mut Side<'_>,
    peer: &Side<'_>,
    tcp: &TcpInfo,
    payload_len: u32,
    c: &mut Counters,
) -> bool {
    let (Some(next), Some(_)) = (me.hot.next(), peer.hot.last_ack()) else {
        return false;
    };
    let probe = !tcp.flags.is_control()
        && ((payload_len == 1 && tcp.seq == next)
            || (payload_len <= 1 && tcp.seq == next.wrapping_sub(1)));
    if probe {
        me.cold.zero_window_probes += 1;
        c.tcp_zero_window_probes += 1;
    }
    probe
}

/// A data segment ending exactly at the receiver's window edge, its last ACK plus its window
/// (RFC 9293 §3.8.6: the sender may send no more until the window moves; Wireshark's
/// `tcp.analysis.window_full`). Only when the window's scale is known.
fn window_full(
    me: &mut Side<'_>,
    peer: &Side<'_>,
    tcp: &TcpInfo,
    payload_len: u32,
    c: &mut Counters,
) {
    let (Some(ack), Some(window)) = (peer.hot.last_ack(), peer.hot.advertised_window(me.hot))
    else {
        return;
    };
    if !tcp.flags.is_control() && tcp.seq.wrapping_add(payload_len) == ack.wrapping_add(window) {
        me.cold.window_full += 1;
        c.tcp_window_full_segments += 1;
    }
}

/// An ACK covering new data of `sender`: samples the RTT from the segment it ends at (as
/// Wireshark's `ack_rtt`) and forgets the covered ones. Karn's rule (RFC 6298 §3): a segment sent more than
/// once gives no sample, nor does an ACK during loss recovery (it was held back by the hole),
/// unless the ACK's TSecr equals the TSval of a retransmission it covers (RFC 7323 §4: the
/// echo says which copy is answered; §4.3: a hole filled echoes the segment that filled it).
fn sample(
    sender: &mut Side<'_>,
    ack: u32,
    timestamps: Option<(u32, u32)>,
    now_ns: u64,
    c: &mut Counters,
) {
    let covered = (0..sender.hot.timed_len())
        .take_while(|&i| !seq_lt(ack, sender.timed_at(i).end))
        .count();
    let recovering = sender.hot.has(RECOVERY_END);
    if sender.hot.recovery_end().is_some_and(|r| !seq_lt(ack, r)) {
        sender.hot.set_recovery_end(None);
    }
    if covered == 0 {
        return;
    }
    let latest = *sender.timed_at(covered - 1);
    // The ACK must end at that segment: past it lie segments not timed (the ring was full),
    // and the time since this one would overstate the RTT.
    let from = if latest.end != ack {
        None
    } else if !recovering && !latest.retransmitted {
        Some(latest.sent_ns)
    } else {
        echoed_sent_ns(sender, covered, timestamps)
    };
    if let Some(sent_ns) = from {
        sender.rtt.sample(now_ns.saturating_sub(sent_ns));
        c.tcp_rtt_samples += 1;
    }
    sender.hot.forget(covered);
}

/// When the newest covered segment was sent again or the sender is recovering: the send time
/// of the latest of the `covered` segments whose retransmission the ACK's TSecr names (RFC
/// 7323 §4), if any. Out of line: only after a loss.
#[cold]
#[inline(never)]
fn echoed_sent_ns(
    sender: &Side<'_>,
    covered: usize,
    timestamps: Option<(u32, u32)>,
) -> Option<u64> {
    let echoed = |t: &Timed| {
        t.retransmitted && matches!((t.tsval(), timestamps), (Some(v), Some((_, ecr))) if v == ecr)
    };
    (0..covered)
        .rev()
        .map(|i| sender.timed_at(i))
        .find(|t| echoed(t))
        .map(|t| t.sent_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const S: TcpFlags = TcpFlags::SYN;
    const A: TcpFlags = TcpFlags::ACK;

    /// The sizes the per-segment path was laid out for (see [`SideState`]): a field added in
    /// the wrong place costs a cache line per segment on a busy node, so it should show here.
    #[test]
    fn state_stays_within_its_cache_lines() {
        use std::mem::{offset_of, size_of};
        assert_eq!(size_of::<Timed>(), 24);
        // Both sides' per-segment fields in the first 64 bytes.
        assert_eq!(size_of::<Hot>(), 32);
        assert_eq!(offset_of!(ConnectionHealth, hot), 0);
        assert_eq!(offset_of!(ConnectionHealth, rtt), 64);
        assert_eq!(size_of::<SideState>(), 232);
        assert_eq!(size_of::<ConnectionHealth>(), 680);
    }

    fn seg(flags: TcpFlags, seq: u32, ack: u32, window: u16) -> TcpInfo {
        TcpInfo {
            src_port: 1,
            dst_port: 2,
            seq,
            ack,
            flags,
            window,
            window_scale: None,
            timestamps: None,
        }
    }

    struct Conn {
        h: ConnectionHealth,
        c: Counters,
    }

    impl Conn {
        /// A connection whose handshake is done: client ISN `cisn`, server ISN `sisn`.
        fn open(cisn: u32, sisn: u32) -> Self {
            let mut s = Self {
                h: ConnectionHealth::default(),
                c: Counters::default(),
            };
            s.client(seg(S, cisn, 0, 64240), 0, 0);
            s.server(seg(S | A, sisn, cisn.wrapping_add(1), 65160), 0, 10 * MS);
            s.client(
                seg(A, cisn.wrapping_add(1), sisn.wrapping_add(1), 502),
                0,
                11 * MS,
            );
            s
        }
        fn client(&mut self, t: TcpInfo, len: u32, at: u64) {
            self.h.on_segment(true, &t, len, None, at, &mut self.c);
        }
        fn server(&mut self, t: TcpInfo, len: u32, at: u64) {
            self.h.on_segment(false, &t, len, None, at, &mut self.c);
        }
    }

    #[test]
    fn rfc6298_arithmetic() {
        let mut r = RttEstimator::default();
        assert_eq!(r.srtt_ns(), None);
        r.sample(100);
        // §2.2: SRTT = R, RTTVAR = R/2.
        assert_eq!((r.srtt_ns, r.rttvar_ns), (100, 50));
        r.sample(200);
        // §2.3: RTTVAR = 3/4*50 + 1/4*|100-200| = 62.5; SRTT = 7/8*100 + 1/8*200 = 112.5.
        assert_eq!((r.srtt_ns, r.rttvar_ns), (112, 62));
        assert_eq!((r.min_ns, r.max_ns, r.samples), (100, 200, 2));
    }

    #[test]
    fn handshake_halves_and_syn_retransmission() {
        let mut c = Conn {
            h: ConnectionHealth::default(),
            c: Counters::default(),
        };
        c.client(seg(S, 100, 0, 64240), 0, 0);
        c.client(seg(S, 100, 0, 64240), 0, 1000 * MS);
        c.server(seg(S | A, 900, 101, 65160), 0, 1010 * MS);
        c.client(seg(A, 101, 901, 502), 0, 1012 * MS);
        let h = c.h.snapshot();
        assert_eq!(h.syn_retransmits, 1);
        assert_eq!(h.syn_to_syn_ack_ns, Some(1010 * MS), "from the first SYN");
        assert_eq!(h.syn_ack_to_ack_ns, Some(2 * MS));
        assert_eq!(h.handshake_ns, Some(1012 * MS));
        assert!(!h.syn_unanswered && !h.refused);
        assert_eq!(c.c.tcp_handshakes, 1);
    }

    #[test]
    fn rst_answering_a_syn_is_refused() {
        let mut c = Conn {
            h: ConnectionHealth::default(),
            c: Counters::default(),
        };
        c.client(seg(S, 100, 0, 64240), 0, 0);
        c.server(seg(TcpFlags::RST | A, 0, 101, 0), 0, MS);
        let h = c.h.snapshot();
        assert!(h.refused && !h.syn_unanswered && h.reset());
        assert_eq!(h.closed_by.unwrap().by, ConnectionRole::Server);
        assert_eq!(c.c.tcp_connections_refused, 1);
        c.h.on_end(&mut c.c);
        assert_eq!(c.c.tcp_syns_unanswered, 0);
    }

    #[test]
    fn unanswered_syn_counted_at_end() {
        let mut c = Conn {
            h: ConnectionHealth::default(),
            c: Counters::default(),
        };
        c.client(seg(S, 100, 0, 64240), 0, 0);
        assert!(c.h.snapshot().syn_unanswered);
        c.h.on_end(&mut c.c);
        assert_eq!(c.c.tcp_syns_unanswered, 1);
    }

    #[test]
    fn rtt_from_data_to_covering_ack() {
        let mut c = Conn::open(1000, 5000);
        let h = c.h.snapshot();
        // SYN -> SYN/ACK and SYN/ACK -> ACK are the first samples of each direction.
        assert_eq!(h.to_server.srtt_ns, Some(10 * MS));
        assert_eq!(h.to_client.srtt_ns, Some(MS));
        c.client(seg(A, 1001, 5001, 502), 100, 20 * MS);
        c.client(seg(A, 1101, 5001, 502), 100, 21 * MS);
        // One ACK covers both: sampled from the latest covered segment (21 ms).
        c.server(seg(A, 5001, 1201, 509), 0, 31 * MS);
        let d = c.h.snapshot().to_server;
        assert_eq!(d.rtt_samples, 2);
        assert_eq!(d.min_rtt_ns, Some(10 * MS));
        assert_eq!(d.srtt_ns, Some(10 * MS));
        // A partial ACK covering no whole segment takes no sample.
        c.client(seg(A, 1201, 5001, 502), 100, 40 * MS);
        c.server(seg(A, 5001, 1250, 509), 0, 45 * MS);
        assert_eq!(c.h.snapshot().to_server.rtt_samples, 2);
    }

    #[test]
    fn karn_no_sample_from_retransmitted_segment() {
        let mut c = Conn::open(1000, 5000);
        c.client(seg(A, 1001, 5001, 502), 100, 20 * MS);
        c.client(seg(A, 1001, 5001, 502), 100, 220 * MS);
        c.server(seg(A, 5001, 1101, 509), 0, 230 * MS);
        let d = c.h.snapshot().to_server;
        assert_eq!(d.retransmitted_segments, 1);
        assert_eq!(d.retransmitted_bytes, 100);
        assert_eq!(d.rtt_samples, 1, "only the handshake's");
        assert_eq!(c.c.tcp_health_retransmissions, 1);
    }

    #[test]
    fn timestamp_echo_disambiguates_a_retransmission() {
        let mut c = Conn::open(1000, 5000);
        let ts = |mut t: TcpInfo, val, ecr| {
            t.timestamps = Some((val, ecr));
            t
        };
        c.client(ts(seg(A, 1001, 5001, 502), 7, 0), 100, 20 * MS);
        c.client(ts(seg(A, 1001, 5001, 502), 9, 0), 100, 220 * MS);
        // TSecr 9 names the retransmission (RFC 7323 §4): a sample of 10 ms.
        c.server(ts(seg(A, 5001, 1101, 509), 50, 9), 0, 230 * MS);
        let d = c.h.snapshot().to_server;
        assert_eq!((d.rtt_samples, d.max_rtt_ns), (2, Some(10 * MS)));
        // Echoing the first transmission's TSval: ambiguous, no sample.
        let mut c = Conn::open(1000, 5000);
        c.client(ts(seg(A, 1001, 5001, 502), 7, 0), 100, 20 * MS);
        c.client(ts(seg(A, 1001, 5001, 502), 9, 0), 100, 220 * MS);
        c.server(ts(seg(A, 5001, 1101, 509), 50, 7), 0, 230 * MS);
        assert_eq!(c.h.snapshot().to_server.rtt_samples, 1);
    }

    #[test]
    fn retransmission_across_sequence_wrap() {
        // RFC 9293 §3.4: the ISN just below 2^32; data wraps through zero.
        let isn = u32::MAX - 50;
        let mut c = Conn::open(isn, 5000);
        let s1 = isn.wrapping_add(1);
        let s2 = s1.wrapping_add(100);
        assert!(s2 < s1, "wrapped");
        c.client(seg(A, s1, 5001, 502), 100, 20 * MS);
        c.client(seg(A, s2, 5001, 502), 100, 21 * MS);
        c.client(seg(A, s1, 5001, 502), 100, 300 * MS);
        // A segment after the wrap starting at s2 again, partly new: still a retransmission.
        c.client(seg(A, s2, 5001, 502), 150, 301 * MS);
        let d = c.h.snapshot().to_server;
        assert_eq!((d.retransmitted_segments, d.out_of_order_segments), (2, 0));
        // New data beyond the highest sent is not a retransmission.
        c.client(seg(A, s2.wrapping_add(150), 5001, 502), 10, 302 * MS);
        assert_eq!(c.h.snapshot().to_server.retransmitted_segments, 2);
    }

    #[test]
    fn hole_filled_soon_is_out_of_order_late_is_retransmission() {
        let mut c = Conn::open(1000, 5000);
        // 1101.. arrives before 1001..; 1001 follows within the reordering window.
        c.client(seg(A, 1101, 5001, 502), 100, 20 * MS);
        c.client(seg(A, 1001, 5001, 502), 100, 20 * MS + 500_000);
        let d = c.h.snapshot().to_server;
        assert_eq!((d.out_of_order_segments, d.retransmitted_segments), (1, 0));
        // A hole filled long after: the capture missed the first copy.
        c.client(seg(A, 1301, 5001, 502), 100, 30 * MS);
        c.client(seg(A, 1201, 5001, 502), 100, 300 * MS);
        let d = c.h.snapshot().to_server;
        assert_eq!((d.out_of_order_segments, d.retransmitted_segments), (1, 1));
    }

    #[test]
    fn zero_window_dup_ack_keepalive() {
        let mut c = Conn::open(1000, 5000);
        c.client(seg(A, 1001, 5001, 502), 100, 20 * MS);
        c.server(seg(A, 5001, 1101, 0), 0, 30 * MS);
        // RFC 9293 §3.8.6.2: each zero-window advertisement counts.
        c.server(seg(A, 5001, 1101, 0), 0, 40 * MS);
        assert_eq!(c.h.snapshot().to_server.zero_window_advertisements, 2);
        // No data outstanding: the same ACK again is no duplicate (RFC 5681 §2).
        assert_eq!(c.h.snapshot().to_server.duplicate_acks, 0);
        c.server(seg(A, 5001, 1101, 509), 0, 50 * MS);
        c.client(seg(A, 1201, 5001, 502), 100, 60 * MS);
        c.server(seg(A, 5001, 1101, 509), 0, 61 * MS);
        c.server(seg(A, 5001, 1101, 509), 0, 62 * MS);
        // A window change is a window update, not a duplicate.
        c.server(seg(A, 5001, 1101, 600), 0, 63 * MS);
        let d = c.h.snapshot().to_server;
        assert_eq!(d.duplicate_acks, 2);
        assert_eq!(c.c.tcp_duplicate_acks, 2);
        // Keep-alive: SND.NXT - 1 with one byte (RFC 9293 §3.8.4).
        let mut k = Conn::open(1000, 5000);
        k.client(seg(A, 1000, 5001, 502), 1, 10_000 * MS);
        k.client(seg(A, 1000, 5001, 502), 0, 20_000 * MS);
        let d = k.h.snapshot().to_server;
        assert_eq!((d.keepalives, d.retransmitted_segments), (2, 0));
    }

    #[test]
    fn window_full_at_the_scaled_edge_only() {
        let syn = |flags, seq, ack, window, scale| TcpInfo {
            window_scale: scale,
            ..seg(flags, seq, ack, window)
        };
        let mut c = Conn {
            h: ConnectionHealth::default(),
            c: Counters::default(),
        };
        // Both SYNs offer scaling (RFC 7323 §2.2): the server's shift is 2.
        c.client(syn(S, 1000, 0, 64240, Some(7)), 0, 0);
        c.server(syn(S | A, 5000, 1001, 2000, Some(2)), 0, MS);
        // The SYN/ACK's window is not scaled: 2000 bytes from 1001.
        c.client(seg(A, 1001, 5001, 502), 1000, 2 * MS);
        c.client(seg(A, 2001, 5001, 502), 1000, 3 * MS);
        assert_eq!(c.h.snapshot().to_server.window_full_segments, 1);
        // Now 100 << 2 = 400 bytes from 3001: a segment short of the edge, then one at it.
        c.server(seg(A, 5001, 3001, 100), 0, 4 * MS);
        c.client(seg(A, 3001, 5001, 502), 300, 5 * MS);
        c.client(seg(A, 3301, 5001, 502), 100, 6 * MS);
        let d = c.h.snapshot().to_server;
        assert_eq!((d.window_full_segments, d.zero_window_probes), (2, 0));
        assert_eq!(c.c.tcp_window_full_segments, 2);
        assert_eq!(c.h.snapshot().to_client.window_full_segments, 0);
    }

    #[test]
    fn window_scale_unknown_or_unused() {
        // Joined mid-way: no SYN seen, the scale is unknown, nothing is judged.
        let mut c = Conn {
            h: ConnectionHealth::default(),
            c: Counters::default(),
        };
        c.server(seg(A, 5001, 3001, 100), 0, 0);
        c.client(seg(A, 3001, 5001, 502), 100, MS);
        assert_eq!(c.h.snapshot().to_server.window_full_segments, 0);
        // The client's SYN without the option: no scaling either way (RFC 7323 §2.2), so the
        // server's window counts in bytes even though its SYN/ACK offered a shift.
        let mut c = Conn {
            h: ConnectionHealth::default(),
            c: Counters::default(),
        };
        c.client(seg(S, 1000, 0, 64240), 0, 0);
        c.server(
            TcpInfo {
                window_scale: Some(7),
                ..seg(S | A, 5000, 1001, 65160)
            },
            0,
            MS,
        );
        c.server(seg(A, 5001, 1001, 100), 0, 2 * MS);
        c.client(seg(A, 1001, 5001, 502), 100, 3 * MS);
        assert_eq!(c.h.snapshot().to_server.window_full_segments, 1);
    }

    #[test]
    fn zero_window_probes_are_not_keepalives() {
        let mut c = Conn::open(1000, 5000);
        c.client(seg(A, 1001, 5001, 502), 100, 20 * MS);
        c.server(seg(A, 5001, 1101, 0), 0, 30 * MS);
        // Linux probes a closed window with SND.UNA - 1 and no data (tcp_xmit_probe_skb).
        c.client(seg(A, 1100, 5001, 502), 0, 230 * MS);
        // BSD and Windows send one new byte at SND.NXT (RFC 9293 §3.8.6.1).
        c.client(seg(A, 1101, 5001, 502), 1, 630 * MS);
        let d = c.h.snapshot().to_server;
        assert_eq!((d.zero_window_probes, d.keepalives), (2, 0));
        // The probe's byte is not data: sent again with more once the window opens, it is new.
        c.server(seg(A, 5001, 1101, 509), 0, 640 * MS);
        c.client(seg(A, 1101, 5001, 502), 100, 641 * MS);
        let d = c.h.snapshot().to_server;
        assert_eq!((d.retransmitted_segments, d.zero_window_probes), (0, 2));
        // The window is open: the same shape is a keep-alive again (RFC 9293 §3.8.4).
        c.server(seg(A, 5001, 1201, 509), 0, 650 * MS);
        c.client(seg(A, 1200, 5001, 502), 0, 10_000 * MS);
        let d = c.h.snapshot().to_server;
        assert_eq!((d.zero_window_probes, d.keepalives), (2, 1));
        assert_eq!((c.c.tcp_zero_window_probes, c.c.tcp_keepalives), (2, 1));
    }

    #[test]
    fn first_fin_names_the_closer() {
        let mut c = Conn::open(1000, 5000);
        c.server(seg(TcpFlags::FIN | A, 5001, 1001, 509), 0, 50 * MS);
        c.client(seg(TcpFlags::FIN | A, 1001, 5002, 502), 0, 51 * MS);
        let close = c.h.snapshot().closed_by.unwrap();
        assert_eq!(close.by, ConnectionRole::Server);
        assert!(!close.reset);
        assert_eq!(close.time_ns, 50 * MS);
    }
}
