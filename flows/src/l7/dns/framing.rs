//! One direction of a DNS-over-TCP stream cut into messages.
//!
//! RFC 1035 §4.2.2: each message is preceded by a two-byte length (network order, not counting
//! itself). RFC 7766 §8: the byte stream, not the segments, frames the messages: a segment
//! may hold several messages (pipelining, §6.2.1.1), or a part of one, down to a single byte
//! of a length prefix. So a [`Framer`] is fed the reassembled stream and yields whole
//! messages, borrowing them from the segment when they are whole in it and buffering only a
//! message that spans segments (at most 2 + 65535 bytes).
//!
//! Framing is lost where the capture is: a stream joined mid-way, or a gap whose end is not
//! inside a message whose length we know. Then the framer searches for a message start: an
//! offset whose length and header are plausible and whose message walks exactly to the length
//! ([`walks_exactly`]); the search is bounded in bytes and candidates, and gives the direction
//! up when neither finds one.
//!
//! At the start of a connection taken for DNS by its port, the first message must have a
//! plausible header: if it does not, the connection is not DNS ([`Framer::is_not_dns`]).

use super::message::{walks_exactly, Header, HEADER_LEN};
use crate::l7::L7Context;

/// The length prefix (RFC 1035 §4.2.2).
const PREFIX_LEN: usize = 2;
/// Largest frame: the prefix and a 65535-byte message.
const MAX_FRAME: usize = PREFIX_LEN + u16::MAX as usize;
/// Most candidate starts checked by a full walk in one search.
const MAX_CANDIDATES: u32 = 64;
/// Most bytes skipped in one search before the direction is given up. A message is at most
/// 64 KiB, so a live stream shows a start well within this.
const MAX_SEARCH_SKIP: u64 = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At a message boundary, or inside a message whose first bytes are in `buf`.
    InStep,
    /// Inside a message a gap cut: this many bytes of it still to pass.
    Skipping(usize),
    /// The boundary is unknown: searching for a message start in `buf`.
    Searching {
        /// Bytes skipped so far in this search.
        skipped: u64,
        /// Candidates walked so far in this search.
        candidates: u32,
    },
    /// Not decoded any more (not DNS, or no message start found).
    Lost,
}

/// What the bytes at a frame start say.
enum Check {
    /// A whole frame of this many bytes (prefix included).
    Complete(usize),
    /// More bytes needed.
    Incomplete,
    /// The connection's first frame has no plausible DNS header.
    NotDns,
}

/// Outcome of one search pass.
#[derive(PartialEq, Eq)]
enum Scan {
    /// `buf` now starts at a message start.
    Found,
    /// Needs more bytes.
    More,
    /// Budget spent.
    GaveUp,
}

/// Frames one direction of a DNS-over-TCP stream into messages.
#[derive(Debug)]
pub struct Framer {
    /// A partial frame (in step) or bytes being searched.
    buf: Vec<u8>,
    state: State,
    /// No frame seen yet and the stream is in step from the connection's first byte: the
    /// first header decides whether this is DNS at all.
    fresh: bool,
    not_dns: bool,
}

impl Default for Framer {
    fn default() -> Self {
        Self::new()
    }
}

impl Framer {
    /// A direction in step from the connection's first byte.
    pub fn new() -> Self {
        Self {
            buf: Vec::new(),
            state: State::InStep,
            fresh: true,
            not_dns: false,
        }
    }

    /// True when the connection's first message had no plausible DNS header.
    pub fn is_not_dns(&self) -> bool {
        self.not_dns
    }

    /// True when this direction is no longer decoded.
    pub fn is_lost(&self) -> bool {
        self.state == State::Lost
    }

    /// Bytes held.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Feeds the next stream bytes; `on_message` gets every whole message (without its
    /// length prefix), in stream order.
    pub fn push(
        &mut self,
        mut data: &[u8],
        cx: &mut L7Context<'_>,
        on_message: &mut impl FnMut(&[u8], &mut L7Context<'_>),
    ) {
        while !data.is_empty() {
            data = match self.state {
                State::InStep => self.in_step(data, cx, on_message),
                State::Skipping(n) => {
                    let k = n.min(data.len());
                    self.state = if k == n {
                        State::InStep
                    } else {
                        State::Skipping(n - k)
                    };
                    &data[k..]
                }
                State::Searching { .. } => self.search(data, cx, on_message),
                State::Lost => return,
            };
        }
    }

    /// `len` bytes will never be seen (`0`: an unknown number, the stream was joined
    /// mid-way). Framing survives a gap that ends inside the message being read, whose
    /// length is known; anything else leaves the boundary unknown.
    pub fn gap(&mut self, len: u64, cx: &mut L7Context<'_>) {
        self.fresh = false;
        let known = (len > 0).then_some(len);
        let next = match self.state {
            State::Lost => return,
            State::Searching { .. } => {
                self.buf.clear();
                return;
            }
            State::Skipping(n) => after_gap_inside(n, known),
            State::InStep if self.buf.is_empty() => None,
            State::InStep => {
                cx.counters.dns_tcp_messages_lost_in_gap += 1;
                let next = (self.buf.len() >= PREFIX_LEN)
                    .then(|| frame_len(&self.buf) - self.buf.len())
                    .and_then(|remaining| after_gap_inside(remaining, known));
                self.buf.clear();
                next
            }
        };
        match next {
            Some(state) => self.state = state,
            None => {
                cx.counters.dns_tcp_resyncs += 1;
                self.state = State::Searching {
                    skipped: 0,
                    candidates: 0,
                };
            }
        }
    }

    /// The direction ended (FIN, reset, connection gone): a partial message is counted.
    pub fn end(&mut self, cx: &mut L7Context<'_>) {
        if self.state == State::InStep && !self.buf.is_empty() {
            cx.counters.dns_tcp_truncated_messages += 1;
        }
        self.buf = Vec::new();
    }

    /// Frames in step: whole frames straight from `data`, a partial one into `buf`. Returns
    /// what is left of `data` when the state changed (to lost), else nothing.
    fn in_step<'d>(
        &mut self,
        mut data: &'d [u8],
        cx: &mut L7Context<'_>,
        on_message: &mut impl FnMut(&[u8], &mut L7Context<'_>),
    ) -> &'d [u8] {
        while !data.is_empty() {
            if self.buf.is_empty() {
                match self.check(data) {
                    Check::Complete(total) => {
                        self.fresh = false;
                        on_message(&data[PREFIX_LEN..total], cx);
                        data = &data[total..];
                    }
                    Check::Incomplete => {
                        if data.len() >= PREFIX_LEN + HEADER_LEN {
                            self.fresh = false;
                        }
                        self.buf.extend_from_slice(data);
                        return &[];
                    }
                    Check::NotDns => return self.not_dns(cx),
                }
            } else {
                let mut need = if self.buf.len() < PREFIX_LEN {
                    PREFIX_LEN
                } else {
                    frame_len(&self.buf)
                };
                if self.fresh {
                    // Judge the header as soon as it is here, not after the whole message.
                    need = need.min(PREFIX_LEN + HEADER_LEN).max(self.buf.len());
                }
                let take = (need - self.buf.len()).min(data.len());
                self.buf.extend_from_slice(&data[..take]);
                data = &data[take..];
                match self.check(&self.buf) {
                    Check::Complete(total) => {
                        self.fresh = false;
                        on_message(&self.buf[PREFIX_LEN..total], cx);
                        self.buf.clear();
                    }
                    Check::Incomplete => {
                        if self.buf.len() >= PREFIX_LEN + HEADER_LEN {
                            self.fresh = false;
                        }
                    }
                    Check::NotDns => return self.not_dns(cx),
                }
            }
        }
        data
    }

    /// What the frame starting at `frame[0]` needs; a fresh direction's first header must be
    /// plausible for its length (RFC 1035 §4.1.1 counts against the message size).
    fn check(&self, frame: &[u8]) -> Check {
        if frame.len() < PREFIX_LEN {
            return Check::Incomplete;
        }
        let total = frame_len(frame);
        if self.fresh {
            if total < PREFIX_LEN + HEADER_LEN {
                return Check::NotDns;
            }
            match Header::read(&frame[PREFIX_LEN..]) {
                None => return Check::Incomplete,
                Some(h) if !h.plausible(total - PREFIX_LEN, false) => return Check::NotDns,
                Some(_) => {}
            }
        }
        if frame.len() >= total {
            Check::Complete(total)
        } else {
            Check::Incomplete
        }
    }

    fn not_dns<'d>(&mut self, cx: &mut L7Context<'_>) -> &'d [u8] {
        cx.counters.dns_tcp_not_dns += 1;
        self.not_dns = true;
        self.state = State::Lost;
        self.buf = Vec::new();
        &[]
    }

    /// Searches `buf` + `data` for a message start, holding at most one frame's worth of
    /// bytes; once found, frames in step from there. Returns the unsearched rest of `data`.
    fn search<'d>(
        &mut self,
        mut data: &'d [u8],
        cx: &mut L7Context<'_>,
        on_message: &mut impl FnMut(&[u8], &mut L7Context<'_>),
    ) -> &'d [u8] {
        while !data.is_empty() {
            let take = (MAX_FRAME - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            match self.scan(cx) {
                Scan::Found => {
                    self.state = State::InStep;
                    let held = std::mem::take(&mut self.buf);
                    // Not fresh, so framing in step cannot turn the state to lost.
                    let rest = self.in_step(&held, cx, on_message);
                    debug_assert!(rest.is_empty());
                    return data;
                }
                Scan::More => {}
                Scan::GaveUp => {
                    cx.counters.dns_tcp_resync_failed += 1;
                    self.state = State::Lost;
                    self.buf = Vec::new();
                    return &[];
                }
            }
        }
        data
    }

    /// One pass over `buf`: drops the bytes before the first offset that could still start
    /// a message. A candidate needs a plausible length and header (strict) and, once whole,
    /// an exact walk. `buf` never exceeds [`MAX_FRAME`] after a pass: a candidate at offset 0
    /// of a full buffer is whole and gets judged.
    fn scan(&mut self, cx: &mut L7Context<'_>) -> Scan {
        let Self { buf, state, .. } = self;
        let State::Searching {
            skipped,
            candidates,
        } = state
        else {
            unreachable!("scan runs while searching");
        };
        let mut i = 0;
        let mut outcome = Scan::More;
        while buf.len() - i >= PREFIX_LEN + HEADER_LEN {
            let len = frame_len(&buf[i..]) - PREFIX_LEN;
            let plausible =
                Header::read(&buf[i + PREFIX_LEN..]).is_some_and(|h| h.plausible(len, true));
            if plausible {
                if buf.len() - i < PREFIX_LEN + len {
                    break;
                }
                *candidates += 1;
                if walks_exactly(&buf[i + PREFIX_LEN..i + PREFIX_LEN + len]) {
                    outcome = Scan::Found;
                    break;
                }
                if *candidates >= MAX_CANDIDATES {
                    outcome = Scan::GaveUp;
                    break;
                }
            }
            i += 1;
        }
        *skipped += i as u64;
        cx.counters.dns_tcp_resync_skipped_bytes += i as u64;
        buf.drain(..i);
        if outcome == Scan::More && *skipped > MAX_SEARCH_SKIP {
            outcome = Scan::GaveUp;
        }
        outcome
    }
}

/// True when `first` (a stream's first bytes) begins with a whole length-prefixed message
/// that walks exactly to its length: strong enough to call a stream DNS by content alone.
pub fn starts_with_message(first: &[u8]) -> bool {
    if first.len() < PREFIX_LEN + HEADER_LEN {
        return false;
    }
    let total = frame_len(first);
    first.len() >= total && walks_exactly(&first[PREFIX_LEN..total])
}

/// Frame length (prefix included) announced by the two bytes at `frame[0]`.
fn frame_len(frame: &[u8]) -> usize {
    PREFIX_LEN + usize::from(u16::from_be_bytes([frame[0], frame[1]]))
}

/// After a gap of `gap` bytes (`None`: unknown) inside a message with `remaining` bytes left:
/// still in step when the gap ends inside it or exactly at its end.
fn after_gap_inside(remaining: usize, gap: Option<u64>) -> Option<State> {
    match gap {
        Some(g) if g < remaining as u64 => Some(State::Skipping(remaining - g as usize)),
        Some(g) if g == remaining as u64 => Some(State::InStep),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::message::build;
    use super::*;
    use crate::counters::Counters;
    use crate::l7::L7Config;
    use crate::trace::IdGenerator;

    /// A length-prefixed frame of `msg`.
    fn frame(msg: &[u8]) -> Vec<u8> {
        let mut f = (msg.len() as u16).to_be_bytes().to_vec();
        f.extend_from_slice(msg);
        f
    }

    /// Feeds `pieces` (data, or a gap of `len` when `Err(len)`) and returns the messages.
    fn run(f: &mut Framer, pieces: &[Result<&[u8], u64>], c: &mut Counters) -> Vec<Vec<u8>> {
        let config = L7Config::default();
        let mut ids = IdGenerator::new(0);
        let mut cx = L7Context {
            counters: c,
            ids: &mut ids,
            config: &config,
        };
        let mut got = Vec::new();
        for p in pieces {
            match p {
                Ok(d) => f.push(d, &mut cx, &mut |m: &[u8], _: &mut L7Context<'_>| {
                    got.push(m.to_vec())
                }),
                Err(len) => f.gap(*len, &mut cx),
            }
        }
        got
    }

    fn msgs() -> Vec<Vec<u8>> {
        vec![
            build::query(1, "a.example.", 1),
            build::a_response(2, "bb.example.", 0, &[[192, 0, 2, 1], [192, 0, 2, 2]], 60),
            build::query(3, "ccc.example.", 28),
        ]
    }

    #[test]
    fn several_messages_in_one_segment() {
        // RFC 7766 §6.2.1.1: pipelined queries share segments.
        let stream: Vec<u8> = msgs().iter().flat_map(|m| frame(m)).collect();
        let mut c = Counters::default();
        assert_eq!(run(&mut Framer::new(), &[Ok(&stream)], &mut c), msgs());
    }

    #[test]
    fn any_segmentation_gives_the_same_messages() {
        // RFC 7766 §8: framing follows the byte stream; down to one byte per segment.
        let stream: Vec<u8> = msgs().iter().flat_map(|m| frame(m)).collect();
        for size in 1..stream.len() {
            let pieces: Vec<_> = stream.chunks(size).map(Ok).collect();
            let mut c = Counters::default();
            let mut f = Framer::new();
            assert_eq!(run(&mut f, &pieces, &mut c), msgs(), "chunks of {size}");
            assert_eq!(f.buffered(), 0);
        }
        // A prefix split 1 | 1 | body, and a message ending with the next prefix's first byte.
        let (a, b) = (frame(&msgs()[0]), frame(&msgs()[1]));
        let mut tail = a[2..].to_vec();
        tail.push(b[0]);
        let pieces = [Ok(&a[..1]), Ok(&a[1..2]), Ok(&tail[..]), Ok(&b[1..])];
        assert_eq!(
            run(&mut Framer::new(), &pieces, &mut Counters::default()),
            msgs()[..2]
        );
    }

    #[test]
    fn a_connection_that_is_not_dns_is_given_up_at_once() {
        for first in [
            &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03abcdef",
            b"\x00\x05hello",
        ] {
            let mut c = Counters::default();
            let mut f = Framer::new();
            assert!(run(&mut f, &[Ok(first)], &mut c).is_empty());
            assert!(f.is_not_dns(), "{first:?}");
            assert_eq!((c.dns_tcp_not_dns, f.buffered()), (1, 0));
        }
        // The header is judged as soon as it is whole, even one byte at a time.
        let mut f = Framer::new();
        let bytes = b"GET / HTTP/1.1\r\n";
        let pieces: Vec<_> = bytes.chunks(1).map(Ok).collect();
        run(&mut f, &pieces, &mut Counters::default());
        assert!(f.is_not_dns());
    }

    #[test]
    fn joined_mid_way_finds_the_next_message_start() {
        let stream: Vec<u8> = msgs().iter().flat_map(|m| frame(m)).collect();
        let second = frame(&msgs()[0]).len();
        // At a boundary: everything from there. Inside the first message: the rest.
        for (cut, want) in [(0, &msgs()[..]), (5, &msgs()[1..]), (second, &msgs()[1..])] {
            let mut c = Counters::default();
            let mut f = Framer::new();
            let got = run(&mut f, &[Err(0), Ok(&stream[cut..])], &mut c);
            assert_eq!(got, want, "cut at {cut}");
            assert_eq!(c.dns_tcp_resyncs, 1);
            assert_eq!(
                c.dns_tcp_resync_skipped_bytes,
                if cut == 5 { (second - 5) as u64 } else { 0 }
            );
        }
    }

    #[test]
    fn a_gap_inside_a_message_keeps_framing() {
        let stream: Vec<u8> = msgs().iter().flat_map(|m| frame(m)).collect();
        let first = frame(&msgs()[0]).len();
        // The gap ends inside message 0, whose length is known: skip to its end.
        let mut c = Counters::default();
        let pieces = [Ok(&stream[..4]), Err(4), Ok(&stream[8..])];
        assert_eq!(run(&mut Framer::new(), &pieces, &mut c), msgs()[1..]);
        assert_eq!((c.dns_tcp_messages_lost_in_gap, c.dns_tcp_resyncs), (1, 0));
        // The gap runs past message 0: the next start is unknown; search.
        let mut c = Counters::default();
        let pieces = [
            Ok(&stream[..4]),
            Err(first as u64),
            Ok(&stream[first + 4..]),
        ];
        assert_eq!(run(&mut Framer::new(), &pieces, &mut c), msgs()[2..]);
        assert_eq!((c.dns_tcp_messages_lost_in_gap, c.dns_tcp_resyncs), (1, 1));
    }

    #[test]
    fn search_is_bounded() {
        // Plausible-looking headers that never walk: at most MAX_CANDIDATES walks (some
        // candidates claim long messages and are judged once a frame's worth is held).
        let mut junk = Vec::new();
        for _ in 0..5000 {
            junk.extend_from_slice(&[0, 14, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
        }
        let mut c = Counters::default();
        let mut f = Framer::new();
        run(&mut f, &[Err(0), Ok(&junk)], &mut c);
        assert!(f.is_lost());
        assert_eq!(c.dns_tcp_resync_failed, 1);
        // Zeros are never a plausible header (length < 12): skipped, bounded, given up.
        let mut c = Counters::default();
        let mut f = Framer::new();
        let zeros = vec![0u8; 300 * 1024];
        run(&mut f, &[Err(0), Ok(&zeros)], &mut c);
        assert!(f.is_lost());
        assert!(f.buffered() <= MAX_FRAME);
    }

    #[test]
    fn end_counts_a_partial_message() {
        let m = frame(&msgs()[1]);
        let mut c = Counters::default();
        let mut f = Framer::new();
        run(&mut f, &[Ok(&m[..10])], &mut c);
        let config = L7Config::default();
        let mut ids = IdGenerator::new(0);
        f.end(&mut L7Context {
            counters: &mut c,
            ids: &mut ids,
            config: &config,
        });
        assert_eq!((c.dns_tcp_truncated_messages, f.buffered()), (1, 0));
    }
}
