//! Per-direction TCP stream reassembly.
//!
//! A [`TcpReassembler`] turns the segments of one direction of a connection, in whatever order
//! the capture delivered them, into an ordered stream of [`StreamEvent`]s: data, gaps, end.
//!
//! Rules:
//! - Positions are sequence numbers mapped onto a 64-bit stream offset, so wrap-around
//!   (RFC 9293 §3.4) is handled once, at the edge.
//! - In-order data with nothing buffered is handed out without copying.
//! - Out-of-order data is copied into a map of non-overlapping pieces. On overlap the first
//!   copy wins (the bytes already held are kept; differing bytes are counted as conflicts).
//!   Bytes already delivered cannot be compared (they are not kept); such segments are counted
//!   as retransmits.
//! - A hole never stalls the stream forever: it is skipped (a `Gap` event, so the L7 parser
//!   resyncs) when the flow's buffered bytes pass the cap, when the engine's total budget is
//!   exceeded, when the hole is older than the gap timeout, when the peer acknowledged past it
//!   (the capture lost those bytes), or when the flow closes.
//! - Bytes the capture snapped off a segment (`wire_len > payload.len()`) become a gap too.
//! - A direction joined mid-way whose first segment is a keep-alive probe (zero or one byte at
//!   SND.NXT - 1, RFC 9293 §3.8.4, RFC 1122 §4.2.3.6) starts after the probe: its byte is
//!   garbage the receiver already had, and delivered it would put the stream one byte off
//!   every message start. A first segment of at most one byte is held until the sender's next
//!   segment says which it was: starting right after it, a probe; anything else, data. (A
//!   one-byte data segment followed by more data reads the same; at a mid-way join its byte
//!   is one the L7 search for a message start would almost always skip anyway.)

use std::collections::BTreeMap;

use crate::counters::Counters;
use crate::packet::TcpFlags;
use crate::tcp::seq::seq_diff;

/// Bookkeeping cost charged per buffered piece on top of its bytes, so that a flood of tiny
/// out-of-order segments is bounded by the byte budget too (BTreeMap node + Vec header).
pub const PIECE_OVERHEAD: usize = 64;

/// One TCP segment of the direction being reassembled.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    /// Sequence number from the header.
    pub seq: u32,
    /// Control bits.
    pub flags: TcpFlags,
    /// Captured payload.
    pub payload: &'a [u8],
    /// Payload length on the wire (`>= payload.len()` when the capture snapped it).
    pub wire_len: u32,
}

/// What the reassembler hands to the L7 layer, in stream order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEvent<'a> {
    /// The next bytes of the stream.
    Data(&'a [u8]),
    /// Bytes that will never be seen. `len == 0` means an unknown amount: the stream was
    /// joined mid-way. Either way the parser must resync.
    Gap {
        /// Bytes skipped.
        len: u64,
    },
    /// The sender's FIN was reached in order: no more data in this direction.
    Fin,
    /// The connection was reset.
    Reset,
}

/// Limits for one direction's reassembly.
#[derive(Debug, Clone, Copy)]
pub struct ReassemblerConfig {
    /// Most bytes (plus [`PIECE_OVERHEAD`] per piece) held out of order before skipping holes.
    pub max_buffered_bytes: usize,
}

#[derive(Debug)]
enum Piece {
    Bytes(Vec<u8>),
    /// Bytes the capture did not keep (snapped); delivered as a gap.
    Lost(u64),
}

impl Piece {
    fn len(&self) -> u64 {
        match self {
            Piece::Bytes(b) => b.len() as u64,
            Piece::Lost(n) => *n,
        }
    }

    fn cost(&self) -> usize {
        PIECE_OVERHEAD
            + match self {
                Piece::Bytes(b) => b.len(),
                Piece::Lost(_) => 0,
            }
    }
}

/// Which counter a skipped hole is charged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapReason {
    /// The flow's buffer passed its cap.
    FlowCap,
    /// The engine's total buffer budget was exceeded.
    TotalBudget,
    /// The hole was older than the gap timeout.
    Timeout,
    /// The peer acknowledged past the hole.
    PeerAcked,
    /// The flow closed or was flushed.
    Close,
}

impl GapReason {
    fn counter(self, c: &mut Counters) -> &mut u64 {
        match self {
            GapReason::FlowCap => &mut c.tcp_gaps_flow_cap,
            GapReason::TotalBudget => &mut c.tcp_gaps_total_budget,
            GapReason::Timeout => &mut c.tcp_gaps_timeout,
            GapReason::PeerAcked => &mut c.tcp_gaps_peer_acked,
            GapReason::Close => &mut c.tcp_gaps_on_close,
        }
    }
}

/// Reassembles one direction of a TCP connection.
#[derive(Debug, Default)]
pub struct TcpReassembler {
    /// Whether the stream position is known (from a SYN or the first segment seen).
    synced: bool,
    /// Whether the stream started before the capture did.
    mid_stream: bool,
    /// FIN reached or RST seen: nothing more is delivered.
    closed: bool,
    /// Sequence number of the next byte to deliver.
    next_seq: u32,
    /// Stream offset of `next_seq` (bytes delivered or skipped so far).
    offset: u64,
    /// Out-of-order pieces by stream offset; never overlapping.
    pending: BTreeMap<u64, Piece>,
    /// Cost of `pending` (bytes + per-piece overhead).
    buffered: usize,
    /// Stream offset of the FIN, once seen.
    fin_at: Option<u64>,
    /// When the current oldest hole appeared.
    hole_since_ns: u64,
    /// Stream offset one past the highest sequence number seen (a FIN counts as one), for
    /// [`TcpReassembler::send_position`].
    highest_end: u64,
    /// Joined mid-way on a segment that may be a keep-alive probe, not delivered until the
    /// sender's next segment tells.
    probe: Option<JoinProbe>,
}

/// The first segment of a direction joined mid-way, while it may be a keep-alive probe
/// (RFC 9293 §3.8.4: SEG.SEQ = SND.NXT - 1, zero or one byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JoinProbe {
    /// No payload.
    Empty,
    /// One byte, as captured (`None`: the capture snapped it off).
    Byte(Option<u8>),
}

/// Where one direction's sequence space stands, as far as the capture showed it: what a RST
/// or a later segment of the same sender is judged against (RFC 9293 §3.10.7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendPosition {
    /// Sequence number of the next byte to deliver (the receiver's RCV.NXT when the capture
    /// saw all it received).
    pub next: u32,
    /// One past the highest sequence number seen, FIN included (the sender's SND.NXT as far
    /// as the capture knows).
    pub highest: u32,
    /// Sequence number of the sender's FIN, once seen.
    pub fin: Option<u32>,
}

impl TcpReassembler {
    /// A reassembler that has seen nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes currently held out of order, including per-piece overhead.
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Whether this direction was joined after its start (no SYN seen).
    pub fn mid_stream(&self) -> bool {
        self.mid_stream
    }

    /// Whether the FIN was delivered or the stream reset.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether this direction began with a SYN whose sequence number is not `seq` and has
    /// carried nothing after it (no byte, no FIN): a SYN with another ISN is then a new attempt
    /// at the connection, not a retransmission of the first (which repeats its ISN, RFC 9293
    /// §3.4, §3.8.1).
    pub fn opened_by_another_syn(&self, seq: u32) -> bool {
        self.synced
            && !self.mid_stream
            && self.carried_nothing()
            && self.next_seq != seq.wrapping_add(1)
    }

    /// Whether nothing past a SYN has come in this direction: no byte and no FIN (also true
    /// before its first segment).
    pub fn carried_nothing(&self) -> bool {
        self.offset == 0
            && self.highest_end == 0
            && self.pending.is_empty()
            && self.fin_at.is_none()
    }

    /// Whether a FIN has been seen (delivered or still behind a hole).
    pub fn fin_seen(&self) -> bool {
        self.fin_at.is_some() || self.closed
    }

    /// Stream offset of the next byte to deliver.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// When the oldest hole appeared, if anything is buffered.
    pub fn hole_since(&self) -> Option<u64> {
        (!self.pending.is_empty()).then_some(self.hole_since_ns)
    }

    /// Where the sender's sequence space stands; `None` before its first segment.
    pub fn send_position(&self) -> Option<SendPosition> {
        if !self.synced {
            return None;
        }
        let seq_at = |o: u64| {
            self.next_seq
                .wrapping_add((o as i64 - self.offset as i64) as u32)
        };
        Some(SendPosition {
            next: self.next_seq,
            highest: seq_at(self.highest_end.max(self.offset)),
            fin: self.fin_at.map(seq_at),
        })
    }

    fn advance(&mut self, n: u64) {
        self.offset += n;
        self.next_seq = self.next_seq.wrapping_add(n as u32);
    }

    /// Feeds one segment; events for newly contiguous data go to `sink`.
    pub fn push<F: FnMut(StreamEvent<'_>, &mut Counters)>(
        &mut self,
        seg: &Segment<'_>,
        now_ns: u64,
        cfg: &ReassemblerConfig,
        counters: &mut Counters,
        sink: &mut F,
    ) {
        let syn = seg.flags.contains(TcpFlags::SYN);
        if !self.synced {
            self.synced = true;
            if syn {
                // The SYN occupies one sequence number (RFC 9293 §3.4); data starts after it.
                self.next_seq = seg.seq.wrapping_add(1);
            } else {
                self.next_seq = seg.seq;
                self.mid_stream = true;
                sink(StreamEvent::Gap { len: 0 }, counters);
                if seg.wire_len <= 1 && !seg.flags.is_control() {
                    // Perhaps a keep-alive probe (RFC 9293 §3.8.4, RFC 1122 §4.2.3.6): held
                    // until the sender's next segment tells.
                    self.probe = Some(match seg.wire_len {
                        0 => JoinProbe::Empty,
                        _ => JoinProbe::Byte(seg.payload.first().copied()),
                    });
                    self.highest_end = u64::from(seg.wire_len);
                    return;
                }
            }
        } else if let Some(probe) = self.probe {
            let diff = seq_diff(seg.seq, self.next_seq);
            let again = diff == 0 && seg.wire_len <= 1 && !seg.flags.is_control();
            if again {
                // The same probe sent again (unanswered), or a bare ACK from before it: no
                // word yet.
                return;
            }
            if diff == 1 && !syn {
                // The sender goes on from one past it: SND.NXT was one past its sequence
                // number, so it was a probe and its byte (if any) is no stream data. The
                // stream starts here; nothing was delivered yet to shift.
                self.probe = None;
                counters.tcp_keepalives_at_join += 1;
                self.next_seq = seg.seq;
                self.highest_end = self.highest_end.saturating_sub(1);
            } else if probe == JoinProbe::Empty {
                self.probe = None;
            } else {
                self.settle_probe_as_data(counters, sink);
            }
        }
        if self.closed {
            if seg.wire_len > 0 && seq_diff(seg.seq, self.next_seq) >= 0 {
                counters.tcp_out_of_window_segments += 1;
            }
            return;
        }
        if seg.flags.contains(TcpFlags::RST) {
            self.reset(counters, sink);
            return;
        }
        let data_seq = if syn {
            seg.seq.wrapping_add(1)
        } else {
            seg.seq
        };
        let start = self.offset as i64 + i64::from(seq_diff(data_seq, self.next_seq));
        let wire_len = u64::from(seg.wire_len);
        let end = start + wire_len as i64;
        if seg.flags.contains(TcpFlags::FIN) && end >= self.offset as i64 && self.fin_at.is_none() {
            self.fin_at = Some(end as u64);
        }
        // The FIN occupies one sequence number (RFC 9293 §3.4).
        let seq_end = end + i64::from(seg.flags.contains(TcpFlags::FIN));
        if seq_end > self.highest_end as i64 {
            self.highest_end = seq_end as u64;
        }
        if wire_len > 0 {
            if end <= self.offset as i64 {
                counters.tcp_retransmit_segments += 1;
            } else {
                let end = end as u64;
                // Trim what was already delivered (a partial retransmit).
                let skip = (self.offset as i64 - start).max(0) as u64;
                let (start, captured) = if skip > 0 {
                    let s = (skip as usize).min(seg.payload.len());
                    (self.offset, &seg.payload[s..])
                } else {
                    (start as u64, seg.payload)
                };
                let data_end = start + captured.len() as u64;
                if start == self.offset && self.pending.is_empty() {
                    // Fast path: in order with nothing buffered — no copy.
                    if !captured.is_empty() {
                        self.advance(captured.len() as u64);
                        sink(StreamEvent::Data(captured), counters);
                    }
                    if data_end < end {
                        let lost = end - data_end;
                        counters.tcp_snapped_bytes += lost;
                        counters.tcp_gap_bytes += lost;
                        self.advance(lost);
                        sink(StreamEvent::Gap { len: lost }, counters);
                    }
                } else {
                    if start > self.offset {
                        counters.tcp_out_of_order_segments += 1;
                        if self.pending.is_empty() {
                            self.hole_since_ns = now_ns;
                        }
                    }
                    if !captured.is_empty() {
                        self.insert(start, Some(captured), data_end, counters);
                    }
                    if data_end < end {
                        counters.tcp_snapped_bytes += end - data_end;
                        self.insert(data_end, None, end, counters);
                    }
                    self.drain(now_ns, counters, sink);
                    while self.buffered > cfg.max_buffered_bytes && !self.pending.is_empty() {
                        self.skip_hole(GapReason::FlowCap, now_ns, counters, sink);
                    }
                }
            }
        }
        self.check_fin(counters, sink);
    }

    /// A held one-byte first segment was no keep-alive probe (or nothing more will tell):
    /// its byte is the stream's first.
    fn settle_probe_as_data<F: FnMut(StreamEvent<'_>, &mut Counters)>(
        &mut self,
        counters: &mut Counters,
        sink: &mut F,
    ) {
        match self.probe.take() {
            Some(JoinProbe::Byte(Some(b))) => {
                self.advance(1);
                sink(StreamEvent::Data(&[b]), counters);
            }
            Some(JoinProbe::Byte(None)) => {
                counters.tcp_snapped_bytes += 1;
                counters.tcp_gap_bytes += 1;
                self.advance(1);
                sink(StreamEvent::Gap { len: 1 }, counters);
            }
            Some(JoinProbe::Empty) | None => {}
        }
    }

    /// Inserts `[start, end)` (bytes from `data`, or a lost marker) into the pending map,
    /// filling only what is not already held: the first copy wins.
    fn insert(&mut self, start: u64, data: Option<&[u8]>, end: u64, counters: &mut Counters) {
        let mut overlaps: Vec<(u64, u64)> = Vec::new();
        if let Some((&k, p)) = self.pending.range(..=start).next_back() {
            if k + p.len() > start {
                overlaps.push((k, k + p.len()));
            }
        }
        for (&k, p) in self.pending.range(start + 1..end) {
            overlaps.push((k, k + p.len()));
        }
        let mut cur = start;
        for (os, oe) in overlaps {
            if os > cur {
                self.put(cur, os, start, data);
            }
            let (a, b) = (cur.max(os), end.min(oe));
            if let (Some(new), Some(Piece::Bytes(old))) = (data, self.pending.get(&os)) {
                if a < b {
                    let n = &new[(a - start) as usize..(b - start) as usize];
                    let o = &old[(a - os) as usize..(b - os) as usize];
                    counters.tcp_overlap_conflict_bytes +=
                        n.iter().zip(o).filter(|(x, y)| x != y).count() as u64;
                }
            }
            cur = cur.max(oe);
            if cur >= end {
                break;
            }
        }
        if cur < end {
            self.put(cur, end, start, data);
        }
    }

    fn put(&mut self, from: u64, to: u64, base: u64, data: Option<&[u8]>) {
        let piece = match data {
            Some(d) => Piece::Bytes(d[(from - base) as usize..(to - base) as usize].to_vec()),
            None => Piece::Lost(to - from),
        };
        self.buffered += piece.cost();
        self.pending.insert(from, piece);
    }

    /// Delivers every pending piece that starts at or before the current offset.
    fn drain<F: FnMut(StreamEvent<'_>, &mut Counters)>(
        &mut self,
        now_ns: u64,
        counters: &mut Counters,
        sink: &mut F,
    ) {
        let mut progressed = false;
        while let Some(entry) = self.pending.first_entry() {
            let k = *entry.key();
            if k > self.offset {
                break;
            }
            let piece = entry.remove();
            self.buffered -= piece.cost();
            let pend = k + piece.len();
            if pend <= self.offset {
                continue;
            }
            let trim = self.offset - k;
            match &piece {
                Piece::Bytes(b) => {
                    self.advance(pend - self.offset);
                    sink(StreamEvent::Data(&b[trim as usize..]), counters);
                }
                Piece::Lost(n) => {
                    let len = n - trim;
                    counters.tcp_gap_bytes += len;
                    self.advance(len);
                    sink(StreamEvent::Gap { len }, counters);
                }
            }
            progressed = true;
        }
        if progressed && !self.pending.is_empty() {
            // A new hole is now the oldest one.
            self.hole_since_ns = now_ns;
        }
    }

    /// Skips the hole before the first pending piece and delivers what follows it.
    fn skip_hole<F: FnMut(StreamEvent<'_>, &mut Counters)>(
        &mut self,
        reason: GapReason,
        now_ns: u64,
        counters: &mut Counters,
        sink: &mut F,
    ) {
        let Some((&k, _)) = self.pending.first_key_value() else {
            return;
        };
        if k > self.offset {
            let len = k - self.offset;
            *reason.counter(counters) += 1;
            counters.tcp_gap_bytes += len;
            self.advance(len);
            sink(StreamEvent::Gap { len }, counters);
        }
        self.drain(now_ns, counters, sink);
    }

    /// The connection was reset: holes are skipped, what is held is delivered, then `Reset`;
    /// nothing more is accepted.
    pub fn reset<F: FnMut(StreamEvent<'_>, &mut Counters)>(
        &mut self,
        counters: &mut Counters,
        sink: &mut F,
    ) {
        if self.closed {
            return;
        }
        self.settle_probe_as_data(counters, sink);
        self.skip_all(GapReason::Close, counters, sink);
        self.closed = true;
        sink(StreamEvent::Reset, counters);
    }

    fn skip_all<F: FnMut(StreamEvent<'_>, &mut Counters)>(
        &mut self,
        reason: GapReason,
        counters: &mut Counters,
        sink: &mut F,
    ) {
        while !self.pending.is_empty() {
            self.skip_hole(reason, 0, counters, sink);
        }
    }

    fn check_fin<F: FnMut(StreamEvent<'_>, &mut Counters)>(
        &mut self,
        counters: &mut Counters,
        sink: &mut F,
    ) {
        if !self.closed && self.fin_at.is_some_and(|f| f <= self.offset) {
            self.closed = true;
            sink(StreamEvent::Fin, counters);
        }
    }

    /// Skips every hole older than `gap_timeout_ns`. Call from the engine's timeout pass.
    pub fn on_timeout<F: FnMut(StreamEvent<'_>, &mut Counters)>(
        &mut self,
        now_ns: u64,
        gap_timeout_ns: u64,
        counters: &mut Counters,
        sink: &mut F,
    ) {
        if !self.pending.is_empty() && now_ns.saturating_sub(self.hole_since_ns) >= gap_timeout_ns {
            self.skip_all(GapReason::Timeout, counters, sink);
            self.check_fin(counters, sink);
        }
    }

    /// The other direction acknowledged up to `ack`: holes entirely below it were received by
    /// the peer, so the capture lost them and waiting is pointless. Holes younger than
    /// `grace_ns` are left alone: the capture may deliver the two directions slightly out of
    /// order (per-CPU queues), so the missing bytes can still be on their way to us.
    pub fn on_peer_ack<F: FnMut(StreamEvent<'_>, &mut Counters)>(
        &mut self,
        ack: u32,
        now_ns: u64,
        grace_ns: u64,
        counters: &mut Counters,
        sink: &mut F,
    ) {
        if !self.synced || self.closed || self.pending.is_empty() {
            return;
        }
        if now_ns.saturating_sub(self.hole_since_ns) < grace_ns {
            return;
        }
        let diff = seq_diff(ack, self.next_seq);
        if diff <= 0 {
            return;
        }
        let acked_to = self.offset + diff as u64;
        while let Some((&k, _)) = self.pending.first_key_value() {
            if k > acked_to {
                break;
            }
            self.skip_hole(GapReason::PeerAcked, now_ns, counters, sink);
        }
        self.check_fin(counters, sink);
    }

    /// Gives up on the total budget: skips every hole now (the engine calls this on the flow
    /// that pushed the total over `max_total_buffer_bytes`).
    pub fn shed<F: FnMut(StreamEvent<'_>, &mut Counters)>(
        &mut self,
        counters: &mut Counters,
        sink: &mut F,
    ) {
        self.skip_all(GapReason::TotalBudget, counters, sink);
        self.check_fin(counters, sink);
    }

    /// Delivers everything held, skipping holes; used when the flow ends or is evicted.
    pub fn flush<F: FnMut(StreamEvent<'_>, &mut Counters)>(
        &mut self,
        counters: &mut Counters,
        sink: &mut F,
    ) {
        self.settle_probe_as_data(counters, sink);
        self.skip_all(GapReason::Close, counters, sink);
        self.check_fin(counters, sink);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq, Clone)]
    enum Ev {
        Data(Vec<u8>),
        Gap(u64),
        Fin,
        Reset,
    }

    struct Harness {
        r: TcpReassembler,
        cfg: ReassemblerConfig,
        c: Counters,
        out: Vec<Ev>,
    }

    impl Harness {
        fn new() -> Self {
            Self {
                r: TcpReassembler::new(),
                cfg: ReassemblerConfig {
                    max_buffered_bytes: 1 << 20,
                },
                c: Counters::default(),
                out: Vec::new(),
            }
        }
        fn seg(&mut self, seq: u32, flags: TcpFlags, data: &[u8]) {
            self.seg_snapped(seq, flags, data, data.len() as u32);
        }
        fn seg_snapped(&mut self, seq: u32, flags: TcpFlags, data: &[u8], wire: u32) {
            let out = &mut self.out;
            self.r.push(
                &Segment {
                    seq,
                    flags,
                    payload: data,
                    wire_len: wire,
                },
                0,
                &self.cfg,
                &mut self.c,
                &mut |e, _| out.push(ev(e)),
            );
        }
        /// Data events merged, as a parser would see them.
        fn stream(&self) -> Vec<Ev> {
            let mut merged: Vec<Ev> = Vec::new();
            for e in &self.out {
                match (merged.last_mut(), e) {
                    (Some(Ev::Data(a)), Ev::Data(b)) => a.extend_from_slice(b),
                    _ => merged.push(e.clone()),
                }
            }
            merged
        }
    }

    fn ev(e: StreamEvent<'_>) -> Ev {
        match e {
            StreamEvent::Data(d) => Ev::Data(d.to_vec()),
            StreamEvent::Gap { len } => Ev::Gap(len),
            StreamEvent::Fin => Ev::Fin,
            StreamEvent::Reset => Ev::Reset,
        }
    }

    const A: TcpFlags = TcpFlags::ACK;

    #[test]
    fn in_order_after_syn() {
        let mut h = Harness::new();
        h.seg(100, TcpFlags::SYN, b"");
        h.seg(101, A, b"hello ");
        h.seg(107, A, b"world");
        h.seg(112, TcpFlags::FIN | A, b"");
        assert_eq!(h.stream(), vec![Ev::Data(b"hello world".to_vec()), Ev::Fin]);
    }

    #[test]
    fn sequence_wrap_around() {
        let mut h = Harness::new();
        let isn = u32::MAX - 3;
        h.seg(isn, TcpFlags::SYN, b"");
        // Second segment first: it sits past the wrap.
        h.seg(isn.wrapping_add(6), A, b"fgh");
        h.seg(isn.wrapping_add(1), A, b"abcde");
        assert_eq!(h.stream(), vec![Ev::Data(b"abcdefgh".to_vec())]);
        assert_eq!(h.c.tcp_out_of_order_segments, 1);
    }

    #[test]
    fn retransmits_are_dropped_and_counted() {
        let mut h = Harness::new();
        h.seg(0, TcpFlags::SYN, b"");
        h.seg(1, A, b"abc");
        h.seg(1, A, b"abc");
        h.seg(2, A, b"bcdef"); // partial retransmit: only "def" is new
        assert_eq!(h.stream(), vec![Ev::Data(b"abcdef".to_vec())]);
        assert_eq!(h.c.tcp_retransmit_segments, 1);
    }

    #[test]
    fn overlap_first_copy_wins_and_conflicts_are_counted() {
        let mut h = Harness::new();
        h.seg(0, TcpFlags::SYN, b"");
        h.seg(4, A, b"DEF"); // buffered first
        h.seg(5, A, b"xyZW"); // overlaps "EF" with "xy": conflict of 2 bytes, "ZW" is new
        h.seg(1, A, b"abcQ"); // fills the hole; 'Q' overlaps 'D' → 1 conflict, 'D' kept
        assert_eq!(h.stream(), vec![Ev::Data(b"abcDEFZW".to_vec())]);
        assert_eq!(h.c.tcp_overlap_conflict_bytes, 3);
        assert_eq!(h.r.buffered(), 0);
    }

    #[test]
    fn mid_stream_start_reports_unknown_gap() {
        let mut h = Harness::new();
        h.seg(5000, A, b"GET / HTTP/1.1\r\n");
        assert_eq!(h.stream()[0], Ev::Gap(0));
        assert!(h.r.mid_stream());
    }

    #[test]
    fn a_stream_joined_on_a_keepalive_probe_starts_after_it() {
        // RFC 9293 §3.8.4, RFC 1122 §4.2.3.6: one garbage byte at SND.NXT - 1, sent again
        // while unanswered; the data that follows starts at SND.NXT.
        let mut h = Harness::new();
        h.seg(999, A, b"\0");
        h.seg(999, A, b"\0");
        h.seg(1000, A | TcpFlags::PSH, b"GET / HTTP/1.1\r\n");
        assert_eq!(
            h.stream(),
            vec![Ev::Gap(0), Ev::Data(b"GET / HTTP/1.1\r\n".to_vec())]
        );
        assert_eq!(h.c.tcp_keepalives_at_join, 1);
        assert_eq!(h.c.tcp_retransmit_segments, 0);
        assert_eq!(h.r.send_position().map(|p| p.highest), Some(1016));
        // A probe without its byte: no one-byte hole waits before the data.
        let mut h = Harness::new();
        h.seg(999, A, b"");
        h.seg(1000, A | TcpFlags::PSH, b"GET /");
        assert_eq!(h.stream(), vec![Ev::Gap(0), Ev::Data(b"GET /".to_vec())]);
        assert_eq!(h.r.buffered(), 0);
        assert_eq!(h.c.tcp_keepalives_at_join, 1);
    }

    #[test]
    fn a_first_byte_not_followed_as_a_probe_would_be_is_data() {
        // The next segment starts elsewhere: the byte was stream data after all.
        let mut h = Harness::new();
        h.seg(5000, A, b"x");
        h.seg(5002, A, b"z");
        h.seg(5001, A, b"y");
        assert_eq!(h.stream(), vec![Ev::Gap(0), Ev::Data(b"xyz".to_vec())]);
        // The flow ends before anything tells: delivered too.
        let mut h = Harness::new();
        h.seg(5000, A, b"x");
        let out = &mut h.out;
        h.r.flush(&mut h.c, &mut |e, _| out.push(ev(e)));
        assert_eq!(h.stream(), vec![Ev::Gap(0), Ev::Data(b"x".to_vec())]);
        // A bare ACK first, data at its sequence number: nothing held, nothing skipped.
        let mut h = Harness::new();
        h.seg(5000, A, b"");
        h.seg(5000, A, b"GET");
        assert_eq!(h.stream(), vec![Ev::Gap(0), Ev::Data(b"GET".to_vec())]);
        assert_eq!(h.c.tcp_keepalives_at_join, 0);
    }

    #[test]
    fn flow_cap_skips_the_hole() {
        let mut h = Harness::new();
        h.cfg.max_buffered_bytes = 2 * PIECE_OVERHEAD + 10;
        h.seg(0, TcpFlags::SYN, b"");
        h.seg(11, A, b"12345"); // hole [1, 11)
        h.seg(16, A, b"67890"); // still within cap (2 pieces + 10 bytes)
        assert_eq!(h.stream(), vec![]);
        h.seg(21, A, b"x"); // over the cap: skip the hole, deliver everything
        assert_eq!(
            h.stream(),
            vec![Ev::Gap(10), Ev::Data(b"1234567890x".to_vec())]
        );
        assert_eq!(h.c.tcp_gaps_flow_cap, 1);
        assert_eq!(h.r.buffered(), 0);
        // The late bytes for the skipped hole are now old.
        h.seg(1, A, b"late");
        assert_eq!(h.c.tcp_retransmit_segments, 1);
    }

    #[test]
    fn timeout_and_peer_ack_skip_holes() {
        let mut h = Harness::new();
        h.seg(0, TcpFlags::SYN, b"");
        h.seg(4, A, b"def");
        let out = &mut h.out;
        h.r.on_timeout(5, 10, &mut h.c, &mut |e, _| out.push(ev(e)));
        assert!(out.is_empty());
        h.r.on_timeout(10, 10, &mut h.c, &mut |e, _| out.push(ev(e)));
        assert_eq!(h.stream(), vec![Ev::Gap(3), Ev::Data(b"def".to_vec())]);
        assert_eq!(h.c.tcp_gaps_timeout, 1);

        let mut h = Harness::new();
        h.seg(0, TcpFlags::SYN, b"");
        h.seg(4, A, b"def");
        let out = &mut h.out;
        h.r.on_peer_ack(3, 0, 0, &mut h.c, &mut |e, _| out.push(ev(e)));
        assert!(out.is_empty(), "ack inside the hole proves nothing");
        h.r.on_peer_ack(7, 0, 0, &mut h.c, &mut |e, _| out.push(ev(e)));
        assert_eq!(h.stream(), vec![Ev::Gap(3), Ev::Data(b"def".to_vec())]);
        assert_eq!(h.c.tcp_gaps_peer_acked, 1);
    }

    #[test]
    fn snapped_segments_become_gaps() {
        let mut h = Harness::new();
        h.seg(0, TcpFlags::SYN, b"");
        h.seg_snapped(1, A, b"ab", 5);
        h.seg(6, A, b"fg");
        assert_eq!(
            h.stream(),
            vec![
                Ev::Data(b"ab".to_vec()),
                Ev::Gap(3),
                Ev::Data(b"fg".to_vec())
            ]
        );
        // Out of order snapped segment: the lost tail is held as a marker.
        let mut h = Harness::new();
        h.seg(0, TcpFlags::SYN, b"");
        h.seg_snapped(3, A, b"c", 3);
        h.seg(1, A, b"ab");
        h.seg(6, A, b"f");
        assert_eq!(
            h.stream(),
            vec![
                Ev::Data(b"abc".to_vec()),
                Ev::Gap(2),
                Ev::Data(b"f".to_vec())
            ]
        );
        assert_eq!(h.c.tcp_snapped_bytes, 2);
    }

    #[test]
    fn fin_waits_for_holes_and_rst_flushes() {
        let mut h = Harness::new();
        h.seg(0, TcpFlags::SYN, b"");
        h.seg(3, TcpFlags::FIN | A, b"c");
        assert_eq!(h.stream(), vec![]);
        h.seg(1, A, b"ab");
        assert_eq!(h.stream(), vec![Ev::Data(b"abc".to_vec()), Ev::Fin]);
        assert!(h.r.is_closed());

        let mut h = Harness::new();
        h.seg(0, TcpFlags::SYN, b"");
        h.seg(3, A, b"c");
        h.seg(4, TcpFlags::RST, b"");
        assert_eq!(
            h.stream(),
            vec![Ev::Gap(2), Ev::Data(b"c".to_vec()), Ev::Reset]
        );
    }

    #[test]
    fn a_million_tiny_out_of_order_segments_stay_bounded() {
        let mut h = Harness::new();
        h.cfg.max_buffered_bytes = 64 * 1024;
        h.seg(0, TcpFlags::SYN, b"");
        let mut max_seen = 0;
        // Every other byte, never filling the holes: worst case for piece count.
        for i in 0..1_000_000u32 {
            h.seg(2 + i * 2, A, b"x");
            max_seen = max_seen.max(h.r.buffered());
            h.out.clear();
        }
        assert!(max_seen <= h.cfg.max_buffered_bytes);
        assert!(h.c.tcp_gaps_flow_cap > 0);
    }

    proptest::proptest! {
        /// Mirrors the `reassembly` fuzz target: arbitrary segments never panic, the buffer
        /// stays under its cap, and no more is delivered than the stream offset.
        #[test]
        fn arbitrary_segments_never_panic(
            segs in proptest::collection::vec(
                (proptest::num::u32::ANY, proptest::num::u8::ANY, proptest::collection::vec(proptest::num::u8::ANY, 0..40), 0u32..8),
                0..60,
            ),
            base in proptest::num::u32::ANY,
        ) {
            let mut h = Harness::new();
            h.cfg.max_buffered_bytes = 512;
            for (i, (seq, flags, payload, extra)) in segs.iter().enumerate() {
                // Half the segments land near the stream, half anywhere.
                let seq = if i % 2 == 0 { base.wrapping_add(seq % 200) } else { *seq };
                h.seg_snapped(seq, TcpFlags(*flags), payload, payload.len() as u32 + extra);
                proptest::prop_assert!(h.r.buffered() <= 512);
            }
            let out = &mut h.out;
            h.r.flush(&mut h.c, &mut |e, _| out.push(ev(e)));
            let delivered: u64 = h.out.iter().map(|e| match e { Ev::Data(d) => d.len() as u64, Ev::Gap(n) => *n, _ => 0 }).sum();
            proptest::prop_assert_eq!(delivered, h.r.offset());
        }
    }
}
