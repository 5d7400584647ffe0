//! IP datagram reassembly: fragments in any order in, whole datagrams out (RFC 791 §3.2,
//! RFC 8200 §4.5).
//!
//! Only a whole datagram has a transport header, so the engine hands every fragment to an
//! [`IpReassembler`] and decodes what comes back like an unfragmented packet. Sans-IO like the
//! rest of the engine: time is a parameter, expiry runs from [`IpReassembler::on_timeout`].
//!
//! What it holds is bounded three ways ([`ReassemblyLimits`]): a per-datagram timeout from its
//! first fragment, a cap on the bytes held across datagrams and a cap on datagrams in flight.
//! Every datagram dropped is counted once, by reason, in [`Counters`] (`ip_frag_dropped_*`).

use std::collections::{BTreeMap, HashMap};

use super::fragment::{DatagramKey, Fragment};
use crate::counters::Counters;
use crate::packet::Direction;

/// Bookkeeping charged per held fragment on top of its data, so that a flood of tiny
/// fragments meets the bytes cap too (the BTreeMap node, the Vec header, the allocation).
pub const FRAGMENT_OVERHEAD_BYTES: usize = 64;

/// Largest IP datagram: the 16-bit IPv4 Total Length (RFC 791 §3.1) and IPv6 Payload Length
/// (RFC 8200 §3, §4.5) fields.
const MAX_LEN: u32 = 65_535;

/// Where a fragment was captured. Datagrams are reassembled per capture point: the same
/// datagram seen on two interfaces (or leaving after it arrived, refragmented by a router
/// with other boundaries) is two datagrams, as an unfragmented packet seen twice is two
/// packets; mixing the copies would read their differing boundaries as overlaps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CapturePoint {
    /// Interface index (0 when unknown).
    pub ifindex: u32,
    /// Ingress or egress on it.
    pub direction: Direction,
}

/// A datagram's key in the reassembler: the RFC key at one capture point.
type Key = (CapturePoint, DatagramKey);

/// How long and how much the reassembler may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyLimits {
    /// A datagram still incomplete this long after its first fragment arrived is dropped.
    pub timeout_ns: u64,
    /// Most bytes held across datagrams (data plus [`FRAGMENT_OVERHEAD_BYTES`] per fragment).
    pub max_bytes: usize,
    /// Most datagrams being reassembled at once.
    pub max_datagrams: usize,
}

/// A datagram put back together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassembled {
    /// The datagram as one unfragmented IP packet: the first fragment's headers with the
    /// length fields set for the whole datagram (and, for IPv6, the Fragment header removed),
    /// then the data. When the capture cut a fragment short, the data stops at that cut; the
    /// length fields still give the full length, so decoders see a snapped packet.
    pub packet: Vec<u8>,
    /// True when some fragment was cut short by the capture.
    pub snapped: bool,
}

/// Why a datagram was dropped before it was whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DropReason {
    Overlap,
    InconsistentLength,
    TooBig,
    Timeout,
    BytesCap,
    DatagramsCap,
    IncompleteAtFlush,
}

fn count_drop(counters: &mut Counters, reason: DropReason) {
    *match reason {
        DropReason::Overlap => &mut counters.ip_frag_dropped_overlap,
        DropReason::InconsistentLength => &mut counters.ip_frag_dropped_inconsistent_length,
        DropReason::TooBig => &mut counters.ip_frag_dropped_too_big,
        DropReason::Timeout => &mut counters.ip_frag_dropped_timeout,
        DropReason::BytesCap => &mut counters.ip_frag_dropped_bytes_cap,
        DropReason::DatagramsCap => &mut counters.ip_frag_dropped_datagrams_cap,
        DropReason::IncompleteAtFlush => &mut counters.ip_frag_dropped_incomplete_at_flush,
    } += 1;
}

/// One fragment's data, keyed by its offset in [`Parts::pieces`].
#[derive(Debug)]
struct Piece {
    /// One past its last byte on the wire.
    end: u32,
    /// What the capture holds of it (a prefix when snapped).
    data: Vec<u8>,
}

/// What has arrived of a datagram.
#[derive(Debug, Default)]
struct Parts {
    /// The first fragment's headers (empty until the fragment at offset 0 arrives).
    header: Vec<u8>,
    /// Where in `header` the Next Header / Protocol field to rewrite is.
    next_header_at: usize,
    /// The first fragment's Next Header (IPv6) or Protocol (IPv4).
    next_header: u8,
    /// Non-overlapping fragments by offset.
    pieces: BTreeMap<u32, Piece>,
    /// Length of the fragmentable part, once the last fragment (MF/M clear) arrived.
    total: Option<u32>,
    /// Wire bytes the pieces cover; with no overlaps, `received == total` means whole.
    received: u32,
    /// Bytes charged to the reassembler's total.
    held: usize,
}

#[derive(Debug)]
struct Datagram {
    /// Arrival order, the key of [`IpReassembler::by_age`].
    serial: u64,
    first_seen_ns: u64,
    /// `None` once abandoned: its fragments still arriving are dropped (and counted) until it
    /// times out, instead of starting a datagram that can never complete.
    parts: Option<Parts>,
}

/// Datagrams being reassembled, keyed as RFC 791 §3.2 and RFC 8200 §4.5 say.
#[derive(Debug, Default)]
pub struct IpReassembler {
    datagrams: HashMap<Key, Datagram>,
    /// Datagrams by arrival of their first fragment: the timeout and eviction order.
    by_age: BTreeMap<u64, Key>,
    next_serial: u64,
    held: usize,
}

impl IpReassembler {
    /// An empty reassembler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes held in fragments waiting for the rest of their datagram.
    pub fn held_bytes(&self) -> usize {
        self.held
    }

    /// Datagrams being reassembled (abandoned ones waiting out their timeout included).
    pub fn datagrams(&self) -> usize {
        self.datagrams.len()
    }

    /// Adds one fragment seen at `now_ns` at capture point `at`; returns the datagram when
    /// this fragment completed it. Fragments that cannot be used are dropped and counted.
    pub fn push(
        &mut self,
        now_ns: u64,
        at: CapturePoint,
        frag: &Fragment<'_>,
        limits: &ReassemblyLimits,
        counters: &mut Counters,
    ) -> Option<Reassembled> {
        let key = (at, frag.key);
        if !self.datagrams.contains_key(&key) {
            if limits.max_datagrams == 0 {
                return None;
            }
            while self.datagrams.len() >= limits.max_datagrams {
                self.drop_oldest(DropReason::DatagramsCap, counters);
            }
            let serial = self.next_serial;
            self.next_serial += 1;
            self.by_age.insert(serial, key);
            self.datagrams.insert(
                key,
                Datagram {
                    serial,
                    first_seen_ns: now_ns,
                    parts: Some(Parts::default()),
                },
            );
        }
        let dgram = self.datagrams.get(&key)?;
        let Some(parts) = &dgram.parts else {
            counters.ip_frag_late_fragments += 1;
            return None;
        };
        let (serial, held) = (dgram.serial, parts.held);
        match check(parts, frag) {
            Check::Fits => {}
            Check::Duplicate => {
                counters.ip_frag_duplicates += 1;
                return None;
            }
            Check::Drop(reason) => {
                self.abandon(&key, reason, counters);
                return None;
            }
        }
        let cost = frag.data.len()
            + FRAGMENT_OVERHEAD_BYTES
            + if frag.offset == 0 {
                frag.header.len()
            } else {
                0
            };
        if held + cost > limits.max_bytes {
            // It could never fit, whatever else is dropped.
            self.abandon(&key, DropReason::BytesCap, counters);
            return None;
        }
        // Over the cap, the oldest datagrams go first: the longer a datagram has waited, the
        // less likely it completes, and an observer that refused every new datagram after a
        // burst of orphans (as Linux does over ipfrag_high_thresh) would miss the live ones.
        while self.held + cost > limits.max_bytes {
            if self.by_age.keys().next() == Some(&serial) {
                self.abandon(&key, DropReason::BytesCap, counters);
                return None;
            }
            self.drop_oldest(DropReason::BytesCap, counters);
        }
        let dgram = self.datagrams.get_mut(&key)?;
        let parts = dgram.parts.as_mut()?;
        if frag.offset == 0 {
            parts.header = frag.header.to_vec();
            parts.next_header_at = frag.next_header_at;
            parts.next_header = frag.next_header;
        }
        if !frag.more {
            parts.total = Some(frag.end());
        }
        parts.pieces.insert(
            frag.offset,
            Piece {
                end: frag.end(),
                data: frag.data.to_vec(),
            },
        );
        parts.received += frag.len;
        parts.held += cost;
        self.held += cost;
        if parts.total != Some(parts.received) {
            return None;
        }
        let dgram = self.remove(&key)?;
        let parts = dgram.parts?;
        match build(frag.key, parts) {
            Some(r) => {
                counters.ip_frag_reassembled += 1;
                if r.snapped {
                    counters.ip_frag_reassembled_snapped += 1;
                }
                Some(r)
            }
            None => {
                count_drop(counters, DropReason::TooBig);
                None
            }
        }
    }

    /// Drops datagrams still incomplete `limits.timeout_ns` after their first fragment
    /// (RFC 791 §3.2's reassembly timer; RFC 8200 §4.5: "abandoned"). Call it as time passes.
    pub fn on_timeout(&mut self, now_ns: u64, limits: &ReassemblyLimits, counters: &mut Counters) {
        while let Some((&serial, &key)) = self.by_age.first_key_value() {
            let Some(d) = self.datagrams.get(&key) else {
                self.by_age.remove(&serial);
                continue;
            };
            if now_ns.saturating_sub(d.first_seen_ns) < limits.timeout_ns {
                break;
            }
            if let Some(d) = self.remove(&key) {
                if d.parts.is_some() {
                    count_drop(counters, DropReason::Timeout);
                }
            }
        }
    }

    /// Drops every datagram still incomplete (the capture ended), counting each.
    pub fn flush(&mut self, counters: &mut Counters) {
        for (_, d) in self.datagrams.drain() {
            if d.parts.is_some() {
                count_drop(counters, DropReason::IncompleteAtFlush);
            }
        }
        self.by_age.clear();
        self.held = 0;
    }

    fn remove(&mut self, key: &Key) -> Option<Datagram> {
        let d = self.datagrams.remove(key)?;
        self.by_age.remove(&d.serial);
        if let Some(p) = &d.parts {
            self.held -= p.held;
        }
        Some(d)
    }

    /// Drops the oldest datagram; abandoned ones were counted when abandoned.
    fn drop_oldest(&mut self, reason: DropReason, counters: &mut Counters) {
        let Some((_, key)) = self.by_age.pop_first() else {
            return;
        };
        if let Some(d) = self.datagrams.remove(&key) {
            if let Some(p) = d.parts {
                self.held -= p.held;
                count_drop(counters, reason);
            }
        }
    }

    /// Frees what a datagram holds and remembers it as abandoned until it times out.
    fn abandon(&mut self, key: &Key, reason: DropReason, counters: &mut Counters) {
        let Some(d) = self.datagrams.get_mut(key) else {
            return;
        };
        if let Some(p) = d.parts.take() {
            self.held -= p.held;
            count_drop(counters, reason);
        }
    }
}

/// The outcome of checking a fragment against what its datagram already holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Hold it.
    Fits,
    /// The same bytes range as a fragment held: drop this copy only.
    Duplicate,
    /// Abandon the datagram.
    Drop(DropReason),
}

/// Whether `frag` fits in with the fragments `parts` holds.
fn check(parts: &Parts, frag: &Fragment<'_>) -> Check {
    let (offset, end) = (frag.offset, frag.end());
    // RFC 8200 §4.5: Fragment Offset plus the fragment's length over 65,535 -> discard. For
    // IPv4 the header counts too (RFC 791 §3.1 Total Length; the "ping of death").
    let limit = match frag.key {
        DatagramKey::V4 { .. } => MAX_LEN.saturating_sub(frag.header.len() as u32),
        DatagramKey::V6 { .. } => MAX_LEN,
    };
    if end > limit {
        return Check::Drop(DropReason::TooBig);
    }
    // Fragments must agree on where the datagram ends; Linux drops the whole datagram when
    // they do not (net/ipv4/ip_fragment.c and net/ipv6/reassembly.c, "corrupted").
    let max_end = parts.pieces.values().next_back().map_or(0, |p| p.end);
    match (frag.more, parts.total) {
        (false, Some(total)) if total != end => return Check::Drop(DropReason::InconsistentLength),
        (false, _) if max_end > end => return Check::Drop(DropReason::InconsistentLength),
        (true, Some(total)) if end > total => return Check::Drop(DropReason::InconsistentLength),
        _ => {}
    }
    // RFC 5722 §4 (and RFC 8200 §4.5): overlapping fragments abandon the whole datagram, but
    // exact duplicates (the network or a capture on two interfaces repeats them) may be
    // dropped alone. Linux applies the same rule to IPv4 since 4.19 (inet_frag_queue_insert:
    // IPFRAG_DUP vs IPFRAG_OVERLAP), so we do too.
    if let Some((&o, p)) = parts.pieces.range(..=offset).next_back() {
        if o == offset && p.end == end {
            return Check::Duplicate;
        }
        if p.end > offset {
            return Check::Drop(DropReason::Overlap);
        }
    }
    if let Some((&o, _)) = parts.pieces.range(offset + 1..).next() {
        if o < end {
            return Check::Drop(DropReason::Overlap);
        }
    }
    Check::Fits
}

/// The whole datagram as an unfragmented packet; `None` when it would pass 65,535 bytes.
fn build(key: DatagramKey, parts: Parts) -> Option<Reassembled> {
    let total = parts.total?;
    let header_len = parts.header.len();
    let captured: usize = parts.pieces.values().map(|p| p.data.len()).sum();
    let mut packet = Vec::with_capacity(header_len + captured);
    packet.extend_from_slice(&parts.header);
    let mut snapped = false;
    for (offset, piece) in &parts.pieces {
        packet.extend_from_slice(&piece.data);
        if piece.data.len() < (piece.end - offset) as usize {
            // Data past a cut is not contiguous with what precedes it; a Packet's payload is
            // a prefix, and its wire length says how much is missing.
            snapped = true;
            break;
        }
    }
    // The reassembled packet ends with the Next Header / Protocol the first fragment named.
    packet[parts.next_header_at] = parts.next_header;
    match key {
        DatagramKey::V4 { .. } => {
            // RFC 791 §3.2: the first fragment's header, Total Length for the whole datagram,
            // MF and Fragment Offset cleared (DF kept), checksum recomputed.
            let len = u32::try_from(header_len).ok()? + total;
            if len > MAX_LEN {
                return None;
            }
            packet[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            packet[6] &= 0x40;
            packet[7] = 0;
            packet[10..12].copy_from_slice(&[0, 0]);
            let sum = checksum(&packet[..header_len]);
            packet[10..12].copy_from_slice(&sum.to_be_bytes());
        }
        DatagramKey::V6 { .. } => {
            // RFC 8200 §4.5: Payload Length = Unfragmentable Part (less the IPv6 header) plus
            // the fragmentable part; the header before the Fragment header now names what
            // the Fragment header named.
            let len = u32::try_from(header_len - 40).ok()? + total;
            if len > MAX_LEN {
                return None;
            }
            packet[4..6].copy_from_slice(&(len as u16).to_be_bytes());
        }
    }
    Some(Reassembled { packet, snapped })
}

/// The Internet checksum of an IPv4 header whose checksum field is zero (RFC 791 §3.1).
fn checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::super::fragment::build::{v4, v6, v6_with};
    use super::*;

    const SECOND: u64 = 1_000_000_000;
    const PT: CapturePoint = CapturePoint {
        ifindex: 0,
        direction: Direction::Unknown,
    };

    fn limits() -> ReassemblyLimits {
        ReassemblyLimits {
            timeout_ns: 30 * SECOND,
            max_bytes: 1 << 20,
            max_datagrams: 16,
        }
    }

    /// 24 bytes of a UDP datagram: header (length 24) then 16 bytes of payload.
    fn udp24() -> Vec<u8> {
        let mut d = vec![0, 53, 0xa4, 0x11, 0, 24, 0, 0];
        d.extend(1..=16u8);
        d
    }

    fn push(r: &mut IpReassembler, c: &mut Counters, now: u64, pkt: &[u8]) -> Option<Reassembled> {
        let f = Fragment::parse(pkt).unwrap();
        r.push(now, CapturePoint::default(), &f, &limits(), c)
    }

    fn v4_parts(id: u16, data: &[u8]) -> Vec<Vec<u8>> {
        data.chunks(8)
            .enumerate()
            .map(|(i, c)| v4(id, i as u32 * 8, (i + 1) * 8 < data.len(), c))
            .collect()
    }

    #[test]
    fn ipv4_any_order_gives_the_same_datagram() {
        let d = udp24();
        let parts = v4_parts(7, &d);
        for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0], [2, 0, 1]] {
            let (mut r, mut c) = (IpReassembler::new(), Counters::default());
            let mut out = None;
            for (n, &i) in order.iter().enumerate() {
                let got = push(&mut r, &mut c, n as u64, &parts[i]);
                assert_eq!(got.is_some(), n == 2, "{order:?}");
                out = out.or(got);
            }
            let out = out.unwrap();
            assert!(!out.snapped);
            assert_eq!(&out.packet[20..], &d[..]);
            // Total Length 44, MF and offset clear, valid header checksum.
            assert_eq!(&out.packet[2..4], &44u16.to_be_bytes());
            assert_eq!(&out.packet[6..8], &[0, 0]);
            assert_eq!(checksum(&out.packet[..20]), 0);
            assert_eq!((r.held_bytes(), r.datagrams()), (0, 0));
            assert_eq!(c.ip_frag_reassembled, 1);
        }
    }

    #[test]
    fn ipv6_reassembly_uses_the_first_fragments_unfragmentable_part() {
        let d = udp24();
        // Hop-by-Hop before the Fragment header: it stays, and now names UDP.
        let hbh = [44, 0, 1, 4, 0, 0, 0, 0];
        let first = v6_with(0, &hbh, 0xa6201, 0, true, &d[..16]);
        let last = v6(0xa6201, 16, false, &d[16..]);
        let (mut r, mut c) = (IpReassembler::new(), Counters::default());
        assert!(push(&mut r, &mut c, 0, &last).is_none());
        let out = push(&mut r, &mut c, 1, &first).unwrap();
        assert_eq!(out.packet.len(), 48 + 24);
        assert_eq!(&out.packet[4..6], &32u16.to_be_bytes(), "8 (HbH) + 24");
        assert_eq!(out.packet[6], 0, "the IPv6 header still names Hop-by-Hop");
        assert_eq!(out.packet[40], 17, "Hop-by-Hop now names UDP");
        assert_eq!(&out.packet[48..], &d[..]);
    }

    #[test]
    fn datagrams_are_keyed_by_source_destination_protocol_and_id() {
        let d = udp24();
        let (mut r, mut c) = (IpReassembler::new(), Counters::default());
        let a = v4_parts(1, &d);
        let mut b = v4_parts(1, &d);
        for p in &mut b {
            p[9] = 6; // same id, other protocol: another datagram (RFC 791 §3.2)
        }
        assert!(push(&mut r, &mut c, 0, &a[0]).is_none());
        assert!(push(&mut r, &mut c, 0, &b[1]).is_none());
        assert!(push(&mut r, &mut c, 0, &a[1]).is_none());
        assert_eq!(r.datagrams(), 2);
        assert!(push(&mut r, &mut c, 0, &a[2]).is_some());
        assert_eq!(c.ip_frag_dropped_overlap, 0);
    }

    #[test]
    fn each_capture_point_reassembles_its_own_copy() {
        // In on eth0 as 0..16 + 16..24; out on eth1 refragmented as 0..8 + 8..24. Interleaved,
        // the copies would overlap; per capture point both complete.
        let d = udp24();
        let (mut r, mut c) = (IpReassembler::new(), Counters::default());
        let eth0 = CapturePoint {
            ifindex: 2,
            direction: Direction::Ingress,
        };
        let eth1 = CapturePoint {
            ifindex: 3,
            direction: Direction::Egress,
        };
        let mut got = 0;
        for (at, pkt) in [
            (eth0, v4(1, 0, true, &d[..16])),
            (eth1, v4(1, 0, true, &d[..8])),
            (eth0, v4(1, 16, false, &d[16..])),
            (eth1, v4(1, 8, false, &d[8..])),
        ] {
            let f = Fragment::parse(&pkt).unwrap();
            if let Some(out) = r.push(0, at, &f, &limits(), &mut c) {
                assert_eq!(&out.packet[20..], &d[..]);
                got += 1;
            }
        }
        assert_eq!((got, c.ip_frag_dropped_overlap), (2, 0));
    }

    #[test]
    fn overlap_drops_the_whole_datagram_and_its_late_fragments() {
        let d = udp24();
        let parts = v4_parts(3, &d);
        let (mut r, mut c) = (IpReassembler::new(), Counters::default());
        assert!(push(&mut r, &mut c, 0, &parts[0]).is_none());
        // 16 bytes at offset 0: overlaps the held 0..8 without duplicating it (RFC 5722).
        assert!(push(&mut r, &mut c, 0, &v4(3, 0, true, &d[..16])).is_none());
        assert_eq!(c.ip_frag_dropped_overlap, 1);
        assert_eq!(r.held_bytes(), 0);
        assert!(push(&mut r, &mut c, 0, &parts[1]).is_none());
        assert!(push(&mut r, &mut c, 0, &parts[2]).is_none());
        assert_eq!(c.ip_frag_late_fragments, 2);
        assert_eq!(c.ip_frag_reassembled, 0);
        // Once the abandoned datagram times out, the identification is free again.
        r.on_timeout(30 * SECOND, &limits(), &mut c);
        assert_eq!(c.ip_frag_dropped_timeout, 0, "already counted as overlap");
        assert_eq!(r.datagrams(), 0);
    }

    #[test]
    fn overlap_with_the_next_fragment_and_in_ipv6() {
        let d = udp24();
        let (mut r, mut c) = (IpReassembler::new(), Counters::default());
        assert!(push(&mut r, &mut c, 0, &v6(9, 8, true, &d[8..16])).is_none());
        assert!(push(&mut r, &mut c, 0, &v6(9, 0, true, &d[..16])).is_none());
        assert_eq!(c.ip_frag_dropped_overlap, 1);
    }

    #[test]
    fn exact_duplicates_are_dropped_alone() {
        let d = udp24();
        let parts = v4_parts(4, &d);
        let (mut r, mut c) = (IpReassembler::new(), Counters::default());
        assert!(push(&mut r, &mut c, 0, &parts[2]).is_none());
        assert!(push(&mut r, &mut c, 0, &parts[2]).is_none());
        assert!(push(&mut r, &mut c, 0, &parts[0]).is_none());
        assert!(push(&mut r, &mut c, 0, &parts[0]).is_none());
        assert!(push(&mut r, &mut c, 0, &parts[1]).is_some());
        assert_eq!((c.ip_frag_duplicates, c.ip_frag_dropped_overlap), (2, 0));
    }

    #[test]
    fn fragments_disagreeing_on_the_end_drop_the_datagram() {
        let d = udp24();
        let (mut r, mut c) = (IpReassembler::new(), Counters::default());
        assert!(push(&mut r, &mut c, 0, &v4(5, 16, false, &d[16..])).is_none());
        // Data past the known end.
        assert!(push(&mut r, &mut c, 0, &v4(5, 24, true, &[0; 8])).is_none());
        assert_eq!(c.ip_frag_dropped_inconsistent_length, 1);
        // A second "last" fragment before data already held.
        assert!(push(&mut r, &mut c, 0, &v4(6, 16, true, &[0; 8])).is_none());
        assert!(push(&mut r, &mut c, 0, &v4(6, 8, false, &[0; 4])).is_none());
        assert_eq!(c.ip_frag_dropped_inconsistent_length, 2);
    }

    #[test]
    fn datagrams_over_65535_bytes_are_dropped() {
        let (mut r, mut c) = (IpReassembler::new(), Counters::default());
        // IPv4: 20-byte header + offset 65512 + 8 bytes = 65540.
        assert!(push(&mut r, &mut c, 0, &v4(1, 65512, false, &[0; 8])).is_none());
        assert_eq!(c.ip_frag_dropped_too_big, 1);
        // IPv6: offset 65528 + 16 bytes > 65535 (RFC 8200 §4.5).
        assert!(push(&mut r, &mut c, 0, &v6(1, 65528, false, &[0; 16])).is_none());
        assert_eq!(c.ip_frag_dropped_too_big, 2);
        // IPv6: fits alone, but with the first fragment's Hop-by-Hop header the Payload
        // Length would pass 65535.
        let hbh = [44, 0, 1, 4, 0, 0, 0, 0];
        assert!(push(&mut r, &mut c, 0, &v6(2, 65520, false, &[0; 8])).is_none());
        let mut pos = 0;
        while pos < 65520 {
            let n = (65520 - pos).min(1232);
            let f = v6_with(0, &hbh, 2, pos, true, &vec![0; n as usize]);
            assert!(push(&mut r, &mut c, 0, &f).is_none());
            pos += n;
        }
        assert_eq!(c.ip_frag_dropped_too_big, 3);
        assert_eq!(r.held_bytes(), 0);
    }

    #[test]
    fn incomplete_datagrams_time_out_from_their_first_fragment() {
        let d = udp24();
        let parts = v4_parts(8, &d);
        let (mut r, mut c) = (IpReassembler::new(), Counters::default());
        assert!(push(&mut r, &mut c, 0, &parts[0]).is_none());
        assert!(push(&mut r, &mut c, 29 * SECOND, &parts[1]).is_none());
        r.on_timeout(29 * SECOND, &limits(), &mut c);
        assert_eq!(r.datagrams(), 1);
        // A fragment arriving late does not restart the timer (RFC 8200 §4.5: "within 60
        // seconds of the reception of the first-arriving fragment").
        r.on_timeout(30 * SECOND, &limits(), &mut c);
        assert_eq!((r.datagrams(), r.held_bytes()), (0, 0));
        assert_eq!(c.ip_frag_dropped_timeout, 1);
        // The last fragment after the timeout is an orphan, dropped at flush.
        assert!(push(&mut r, &mut c, 31 * SECOND, &parts[2]).is_none());
        r.flush(&mut c);
        assert_eq!(c.ip_frag_dropped_incomplete_at_flush, 1);
        assert_eq!((r.datagrams(), r.held_bytes()), (0, 0));
    }

    #[test]
    fn the_bytes_cap_drops_the_oldest_datagrams_first() {
        let lim = ReassemblyLimits {
            max_bytes: 3 * (8 + FRAGMENT_OVERHEAD_BYTES) + 20,
            ..limits()
        };
        let (mut r, mut c) = (IpReassembler::new(), Counters::default());
        for id in 1..=3u16 {
            let f = v4(id, 8, true, &[0; 8]);
            assert!(r
                .push(0, PT, &Fragment::parse(&f).unwrap(), &lim, &mut c)
                .is_none());
        }
        assert_eq!(c.ip_frag_dropped_bytes_cap, 0);
        // A fourth fragment needs room: datagram 1 (the oldest) goes.
        let f = v4(4, 8, true, &[0; 8]);
        assert!(r
            .push(1, PT, &Fragment::parse(&f).unwrap(), &lim, &mut c)
            .is_none());
        assert_eq!(c.ip_frag_dropped_bytes_cap, 1);
        assert_eq!(r.datagrams(), 3);
        assert!(r.held_bytes() <= lim.max_bytes);
        // A fragment bigger than the whole cap is dropped with its datagram.
        let f = v4(9, 0, true, &vec![0; 512]);
        assert!(r
            .push(2, PT, &Fragment::parse(&f).unwrap(), &lim, &mut c)
            .is_none());
        assert_eq!(c.ip_frag_dropped_bytes_cap, 2);
    }

    #[test]
    fn the_datagram_cap_drops_the_oldest_datagram() {
        let lim = ReassemblyLimits {
            max_datagrams: 2,
            ..limits()
        };
        let (mut r, mut c) = (IpReassembler::new(), Counters::default());
        for id in 1..=3u16 {
            let f = v4(id, 8, true, &[0; 8]);
            assert!(r
                .push(
                    u64::from(id),
                    PT,
                    &Fragment::parse(&f).unwrap(),
                    &lim,
                    &mut c
                )
                .is_none());
        }
        assert_eq!(r.datagrams(), 2);
        assert_eq!(c.ip_frag_dropped_datagrams_cap, 1);
        // Datagram 1 is gone; 2 and 3 remain and complete.
        let f = v4(2, 0, true, &[0; 8]);
        let last = v4(2, 16, false, &[0; 8]);
        assert!(r
            .push(4, PT, &Fragment::parse(&f).unwrap(), &lim, &mut c)
            .is_none());
        assert!(r
            .push(5, PT, &Fragment::parse(&last).unwrap(), &lim, &mut c)
            .is_some());
    }

    #[test]
    fn a_snapped_fragment_ends_the_captured_data_but_not_the_datagram() {
        let mut d = vec![0, 53, 0xa4, 0x11, 0, 48, 0, 0];
        d.extend([7u8; 40]);
        let first = v4(2, 0, true, &d[..24]);
        let last = v4(2, 24, false, &d[24..]);
        let (mut r, mut c) = (IpReassembler::new(), Counters::default());
        // The capture kept 16 of the first fragment's 24 data bytes.
        assert!(push(&mut r, &mut c, 0, &first[..36]).is_none());
        let out = push(&mut r, &mut c, 1, &last).unwrap();
        assert!(out.snapped);
        assert_eq!(&out.packet[20..], &d[..16]);
        assert_eq!(&out.packet[2..4], &68u16.to_be_bytes(), "the wire length");
        assert_eq!(c.ip_frag_reassembled_snapped, 1);
    }
}
