//! Capture hints: what the engine tells the capture about bytes it will not read.
//!
//! A decoder that knows a message body's length (an HTTP/1 `Content-Length` body, the data
//! of a chunk) passes over its bytes without looking at them
//! ([`crate::l7::StreamDecoder::skippable`]). The capture still copies up to `--snaplen` of
//! every one of its segments to userspace, and on a bulk transfer that is most of what the
//! capture costs. A [`CaptureHint::Skip`] names a sender and a range of its sequence space; a
//! capture that honours it keeps only the headers of segments that lie wholly inside the
//! range (the agent's TC program, `ebpf-tc`). The engine sees such a segment as a snapped one:
//! its bytes are a gap of known length (RFC 9293 §3.4 sequence space), which leaves the
//! decoder's framing as it was, and its TCP header still feeds reassembly and the connection's
//! health.
//!
//! The engine asks only for bodies of at least [`super::EngineConfig::capture_hint_min_bytes`]
//! (a hint costs the agent a map update and the kernel a lookup per segment while it stands),
//! and withdraws a hint ([`CaptureHint::Clear`]) once the stream has passed its end or the
//! connection is gone, so the capture's table holds only live ranges.

use crate::key::Endpoint;
use crate::tcp::reassembler::TcpReassembler;

/// One instruction to the capture about one sender's segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureHint {
    /// Segments from `src` to `dst` whose sequence numbers lie wholly in
    /// `[from_seq, until_seq)` (modulo 2^32) carry bytes no decoder reads: their headers are
    /// enough. Replaces any earlier hint for the same pair.
    Skip {
        /// The sender.
        src: Endpoint,
        /// The receiver.
        dst: Endpoint,
        /// Sequence number of the first byte to skip.
        from_seq: u32,
        /// Sequence number one past the last byte to skip.
        until_seq: u32,
    },
    /// The earlier hint for `src` → `dst` no longer applies: capture its segments whole.
    Clear {
        /// The sender.
        src: Endpoint,
        /// The receiver.
        dst: Endpoint,
    },
}

impl CaptureHint {
    /// The sender and receiver the hint is about.
    pub fn ends(&self) -> (Endpoint, Endpoint) {
        match *self {
            CaptureHint::Skip { src, dst, .. } | CaptureHint::Clear { src, dst } => (src, dst),
        }
    }
}

/// After a segment from `src` to `dst` went through `reasm` and the decoder, which now says
/// `skippable` bytes follow that it will not read: the hint to give, if any. `hinted` is the
/// end (`until_seq`) of the hint standing for this sender, kept up to date here.
///
/// - A hint is given when at least `min_bytes` are skippable and none stands, or the standing
///   one covers less than half of what is skippable now (a decoder that skips everything, as
///   for ciphertext, moves its end with every segment: it is renewed once per half range, not
///   per segment).
/// - The standing hint is withdrawn once the stream's next byte is at or past its end, when
///   the stream is closed, or as soon as the decoder wants a byte before its end (it lost the
///   body's framing): no byte a decoder reads is ever cut.
pub(super) fn after_segment(
    reasm: &TcpReassembler,
    skippable: u64,
    min_bytes: u64,
    hinted: &mut Option<u32>,
    src: Endpoint,
    dst: Endpoint,
) -> Option<CaptureHint> {
    // The common case on every data segment: nothing to hint, none standing.
    if hinted.is_none() && (min_bytes == 0 || skippable < min_bytes) {
        return None;
    }
    let pos = reasm.send_position()?;
    let closed = reasm.is_closed();
    // Sequence numbers are 32 bits: a range of 2 GiB or more could not be told from one that
    // wrapped (RFC 9293 §3.4), so it is cut there.
    let len = skippable.min(i32::MAX as u64) as u32;
    let end = pos.next.wrapping_add(len);
    let standing = hinted.filter(|&until| {
        !closed && !seq_at_or_after(pos.next, until) && seq_at_or_after(end, until)
    });
    if min_bytes > 0 && skippable >= min_bytes && !closed {
        let renew = standing.is_none_or(|until| until.wrapping_sub(pos.next) < len / 2);
        if renew {
            *hinted = Some(end);
            return Some(CaptureHint::Skip {
                src,
                dst,
                from_seq: pos.next,
                until_seq: end,
            });
        }
        return None;
    }
    if hinted.is_some() && standing.is_none() {
        *hinted = None;
        return Some(CaptureHint::Clear { src, dst });
    }
    None
}

/// `a >= b` in sequence space (RFC 9293 §3.4: comparisons are modulo 2^32).
fn seq_at_or_after(a: u32, b: u32) -> bool {
    a.wrapping_sub(b) as i32 >= 0
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::counters::Counters;
    use crate::packet::TcpFlags;
    use crate::tcp::reassembler::{ReassemblerConfig, Segment};

    fn ep(port: u16) -> Endpoint {
        Endpoint {
            addr: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
            port,
        }
    }

    /// A reassembler past a SYN at `isn` and `data` bytes.
    fn stream(isn: u32, data: u32) -> TcpReassembler {
        let mut r = TcpReassembler::new();
        let cfg = ReassemblerConfig {
            max_buffered_bytes: 1 << 20,
        };
        let mut c = Counters::default();
        let mut sink = |_: crate::tcp::reassembler::StreamEvent<'_>, _: &mut Counters| {};
        let syn = Segment {
            seq: isn,
            flags: TcpFlags::SYN,
            payload: &[],
            wire_len: 0,
        };
        r.push(&syn, 0, &cfg, &mut c, &mut sink);
        let seg = Segment {
            seq: isn.wrapping_add(1),
            flags: TcpFlags::ACK,
            payload: &[],
            wire_len: data,
        };
        r.push(&seg, 0, &cfg, &mut c, &mut sink);
        r
    }

    #[test]
    fn a_long_body_is_hinted_once_then_withdrawn_past_its_end() {
        let isn = u32::MAX - 10; // the range wraps
        let r = stream(isn, 100);
        let next = isn.wrapping_add(101);
        let mut hinted = None;
        let h = after_segment(&r, 1 << 20, 65_536, &mut hinted, ep(80), ep(5000));
        assert_eq!(
            h,
            Some(CaptureHint::Skip {
                src: ep(80),
                dst: ep(5000),
                from_seq: next,
                until_seq: next.wrapping_add(1 << 20),
            })
        );
        // The next segment of the same body: the same end, no new hint.
        let r2 = stream(isn, 100 + 1448);
        assert_eq!(
            after_segment(&r2, (1 << 20) - 1448, 65_536, &mut hinted, ep(80), ep(5000)),
            None
        );
        // Near the end, fewer than the minimum remain: the hint stands until the stream is
        // past it.
        let r3 = stream(isn, 100 + (1 << 20) - 10);
        assert_eq!(
            after_segment(&r3, 10, 65_536, &mut hinted, ep(80), ep(5000)),
            None
        );
        let r4 = stream(isn, 100 + (1 << 20) + 200);
        assert_eq!(
            after_segment(&r4, 0, 65_536, &mut hinted, ep(80), ep(5000)),
            Some(CaptureHint::Clear {
                src: ep(80),
                dst: ep(5000)
            })
        );
        assert_eq!(hinted, None);
    }

    #[test]
    fn short_bodies_and_a_zero_minimum_give_no_hint() {
        let r = stream(1000, 100);
        let mut hinted = None;
        assert_eq!(
            after_segment(&r, 65_535, 65_536, &mut hinted, ep(80), ep(1)),
            None
        );
        assert_eq!(
            after_segment(&r, 1 << 30, 0, &mut hinted, ep(80), ep(1)),
            None
        );
        assert_eq!(hinted, None);
    }

    #[test]
    fn a_new_body_replaces_the_standing_hint() {
        let r = stream(1000, 100);
        let mut hinted = Some(5);
        let h = after_segment(&r, 1 << 17, 65_536, &mut hinted, ep(80), ep(1));
        assert!(
            matches!(h, Some(CaptureHint::Skip { until_seq, .. }) if until_seq == 1101 + (1 << 17))
        );
    }

    #[test]
    fn a_decoder_that_wants_bytes_before_the_end_withdraws_the_hint() {
        let r = stream(1000, 100);
        let mut hinted = None;
        assert!(after_segment(&r, 1 << 20, 65_536, &mut hinted, ep(80), ep(1)).is_some());
        // The framing was lost: the decoder reads from the next byte on.
        assert_eq!(
            after_segment(&r, 0, 65_536, &mut hinted, ep(80), ep(1)),
            Some(CaptureHint::Clear {
                src: ep(80),
                dst: ep(1)
            })
        );
        assert_eq!(hinted, None);
    }

    #[test]
    fn an_endless_skip_is_renewed_once_per_half_range() {
        let mut hinted = None;
        let mut hints = 0;
        // 3 GiB in 64 KiB packets, a decoder that reads nothing (ciphertext).
        for i in 0..(3u64 << 14) {
            let r = stream(7, (i * 65_536) as u32);
            if let Some(h) = after_segment(&r, u64::MAX, 65_536, &mut hinted, ep(443), ep(1)) {
                assert!(matches!(h, CaptureHint::Skip { .. }), "{h:?}");
                hints += 1;
            }
        }
        // Once at the start, then every ~1 GiB.
        assert_eq!(hints, 3);
    }

    #[test]
    fn ranges_stop_short_of_half_the_sequence_space() {
        let r = stream(0, 0);
        let mut hinted = None;
        let Some(CaptureHint::Skip {
            from_seq,
            until_seq,
            ..
        }) = after_segment(&r, 1 << 40, 65_536, &mut hinted, ep(80), ep(1))
        else {
            panic!("a hint");
        };
        assert_eq!(until_seq.wrapping_sub(from_seq), i32::MAX as u32);
    }
}
