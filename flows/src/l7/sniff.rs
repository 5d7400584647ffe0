//! Deciding between HTTP/1 and HTTP/2 when the first bytes do not say.
//!
//! A stream joined mid-way may start anywhere: inside an HTTP/1 body, inside an HTTP/2 DATA
//! frame, or with a segment too short to judge (one byte). [`Sniffer`] holds the events
//! (bounded) until one direction is decisive — a run of plausible HTTP/2 frame headers
//! (RFC 9113 §4.1), an HTTP/1 message start, or, at a stream's true start, anything else —
//! then creates that decoder and replays the events to it in order, so the result is what
//! the decoder would have produced had it been chosen at once.

use super::http2::{self, frame};
use super::{L7Context, L7Event, L7Protocol, PacketCtx, StreamDecoder, StreamDir};
use crate::tcp::StreamEvent;

/// Held events beyond which consecutive data chunks are merged.
const MAX_HELD_EVENTS: usize = 64;

/// Most bytes held while undecided: two maximum-size frames and a header, enough for the
/// frame-run test to see two headers.
const SNIFF_LIMIT: usize = 2 * (frame::DEFAULT_MAX_FRAME_SIZE as usize + frame::HEADER_LEN) + 64;

#[derive(Debug)]
enum Held {
    Data(Vec<u8>),
    Gap(u64),
    Fin,
    Reset,
}

/// Holds a connection's first events until its protocol is clear.
#[derive(Debug)]
pub struct Sniffer {
    held: Vec<(StreamDir, Held, PacketCtx)>,
    /// Bytes per direction since its last gap.
    bufs: [Vec<u8>; 2],
    gapped: [bool; 2],
    /// Whether `bufs[i][0]` begins a line (true after a gap; false once trimmed mid-line).
    line_start: [bool; 2],
    held_bytes: usize,
    /// Bytes seen while undecided (held or folded into gaps).
    scanned: usize,
    decided: Option<Box<dyn StreamDecoder>>,
}

/// What one direction's bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Http1,
    Http2Preface,
    Http2Frames,
    Unsure,
}

/// Whether `b` starts like an HTTP/1 message: a token of uppercase letters and a space, or a
/// status line.
pub(crate) fn looks_http1(b: &[u8]) -> bool {
    b.starts_with(b"HTTP/1.")
        || b.iter()
            .take(8)
            .position(|&c| c == b' ')
            .is_some_and(|i| i > 0 && b[..i].iter().all(u8::is_ascii_uppercase))
}

fn judge(buf: &[u8], gapped: bool, line_start: bool) -> Verdict {
    if !gapped {
        let p = http2::PREFACE;
        if p.starts_with(&buf[..buf.len().min(p.len())]) {
            return if buf.len() >= 3 {
                Verdict::Http2Preface
            } else {
                Verdict::Unsure
            };
        }
        return match frame::find_frame_start(buf, true) {
            Ok(0) => Verdict::Http2Frames,
            // A plausible header at 0 whose frame is still arriving: wait for it.
            Err(keep) if keep == buf.len() && buf.len() < SNIFF_LIMIT => Verdict::Unsure,
            _ if buf.len() < 8 && !looks_http1(buf) && buf.iter().all(u8::is_ascii_uppercase) => {
                Verdict::Unsure
            }
            _ => Verdict::Http1,
        };
    }
    // Joined mid-way, segment ends say nothing: insist on two chained headers.
    if frame::find_frame_start(buf, false).is_ok() {
        return Verdict::Http2Frames;
    }
    // What the HTTP/1 decoder's search for a message start would find.
    if super::http1::message_start_at_line(buf, line_start) {
        return Verdict::Http1;
    }
    Verdict::Unsure
}

impl Sniffer {
    /// An undecided decoder.
    pub fn new() -> Self {
        Self {
            held: Vec::new(),
            bufs: [Vec::new(), Vec::new()],
            gapped: [false; 2],
            line_start: [true; 2],
            held_bytes: 0,
            scanned: 0,
            decided: None,
        }
    }

    fn decide(&mut self, protocol: Verdict, cx: &mut L7Context<'_>, out: &mut Vec<L7Event>) {
        let mut dec: Box<dyn StreamDecoder> = match protocol {
            Verdict::Http2Preface => Box::new(http2::Http2Decoder::with_preface(cx.config)),
            Verdict::Http2Frames => Box::new(http2::Http2Decoder::mid_stream(cx.config)),
            _ => Box::new(super::http1::Http1Decoder::new()),
        };
        for (dir, ev, at) in std::mem::take(&mut self.held) {
            let ev = match &ev {
                Held::Data(d) => StreamEvent::Data(d),
                Held::Gap(len) => StreamEvent::Gap { len: *len },
                Held::Fin => StreamEvent::Fin,
                Held::Reset => StreamEvent::Reset,
            };
            dec.on_event(dir, ev, &at, cx, out);
            if let Some(next) = dec.take_upgrade() {
                dec = next;
            }
        }
        self.bufs = [Vec::new(), Vec::new()];
        self.held_bytes = 0;
        self.decided = Some(dec);
    }
}

impl Sniffer {
    /// A new gap in direction `dir`: nothing held since its previous gap can matter (both
    /// decoders resync), so that data and this gap join the previous gap. False when there
    /// is no previous gap.
    fn fold_into_last_gap(&mut self, dir: StreamDir, len: u64) -> bool {
        let Some(at) = self
            .held
            .iter()
            .rposition(|(d, h, _)| *d == dir && matches!(h, Held::Gap(_)))
        else {
            return false;
        };
        let mut folded = len;
        let mut j = at + 1;
        while j < self.held.len() {
            match &self.held[j] {
                (d, Held::Data(data), _) if *d == dir => {
                    folded += data.len() as u64;
                    self.held_bytes -= data.len();
                    self.held.remove(j);
                }
                _ => j += 1,
            }
        }
        if let Held::Gap(prev) = &mut self.held[at].1 {
            if *prev > 0 && len > 0 {
                *prev += folded;
            } else {
                *prev = 0;
            }
        }
        true
    }

    /// In a direction joined mid-way, bytes before the earliest place either protocol could
    /// start are skipped by both decoders anyway: fold them into the gap that began the
    /// direction, so junk costs no memory while we wait.
    fn trim(&mut self, i: usize, dir: StreamDir) {
        let buf = &self.bufs[i];
        let keep_h2 = match frame::find_frame_start(buf, false) {
            Ok(_) => return,
            Err(keep) => keep,
        };
        // HTTP/1 starts are checked at every line start as bytes arrive; a partial one is
        // the last line, when it is short enough to be a start line.
        let last_line = buf
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(buf.len(), |lf| buf.len() - lf - 1);
        let keep_h1 = if last_line <= super::http1::MAX_START_LINE {
            last_line
        } else {
            16
        };
        let keep = keep_h2.max(keep_h1).max(16).min(buf.len());
        let mut trim = buf.len() - keep;
        if trim == 0 {
            return;
        }
        self.line_start[i] = buf[trim - 1] == b'\n';
        self.bufs[i].drain(..trim);
        if self.bufs[i].capacity() > 2 * self.bufs[i].len() + 1024 {
            self.bufs[i].shrink_to_fit();
        }
        self.held_bytes -= trim;
        let Some(gap_at) = self
            .held
            .iter()
            .rposition(|(d, h, _)| *d == dir && matches!(h, Held::Gap(_)))
        else {
            return;
        };
        let mut j = gap_at + 1;
        let mut folded = 0u64;
        while trim > 0 && j < self.held.len() {
            if self.held[j].0 != dir {
                j += 1;
                continue;
            }
            match &mut self.held[j].1 {
                Held::Data(d) if d.len() <= trim => {
                    trim -= d.len();
                    folded += d.len() as u64;
                    self.held.remove(j);
                }
                Held::Data(d) => {
                    d.drain(..trim);
                    folded += trim as u64;
                    trim = 0;
                }
                _ => j += 1,
            }
        }
        if let Held::Gap(len) = &mut self.held[gap_at].1 {
            // An unknown amount (0) plus more is still unknown.
            if *len > 0 {
                *len += folded;
            }
        }
    }
}

impl Default for Sniffer {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamDecoder for Sniffer {
    fn protocol(&self) -> L7Protocol {
        self.decided
            .as_ref()
            .map_or(L7Protocol::Http1, |d| d.protocol())
    }

    fn on_event(
        &mut self,
        dir: StreamDir,
        event: StreamEvent<'_>,
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        if let Some(d) = self.decided.as_mut() {
            d.on_event(dir, event, at, cx, out);
            return;
        }
        let i = match dir {
            StreamDir::ToServer => 0,
            StreamDir::ToClient => 1,
        };
        let held = match event {
            StreamEvent::Data(d) => {
                self.bufs[i].extend_from_slice(d);
                self.held_bytes += d.len();
                self.scanned += d.len();
                Held::Data(d.to_vec())
            }
            StreamEvent::Gap { len } => {
                self.gapped[i] = true;
                self.line_start[i] = true;
                self.bufs[i].clear();
                if self.fold_into_last_gap(dir, len) {
                    return;
                }
                Held::Gap(len)
            }
            StreamEvent::Fin => Held::Fin,
            StreamEvent::Reset => Held::Reset,
        };
        // Many tiny segments: merge into the previous chunk (its packet's time stands for
        // all), so held events stay few.
        let crowded = self.held.len() >= MAX_HELD_EVENTS;
        match (self.held.last_mut(), held) {
            (Some((d, Held::Data(prev), _)), Held::Data(more)) if *d == dir && crowded => {
                prev.extend_from_slice(&more)
            }
            (_, held) => self.held.push((dir, held, *at)),
        }
        // Judged before trimming: a start line that just arrived whole is in the buffer.
        let verdict = match judge(&self.bufs[i], self.gapped[i], self.line_start[i]) {
            Verdict::Unsure if self.scanned > SNIFF_LIMIT => Verdict::Http1,
            Verdict::Unsure if matches!(event, StreamEvent::Fin | StreamEvent::Reset) => {
                Verdict::Unsure
            }
            v => v,
        };
        if verdict != Verdict::Unsure && !self.bufs[i].is_empty() || self.scanned > SNIFF_LIMIT {
            self.decide(verdict, cx, out);
        } else if self.gapped[i] {
            self.trim(i, dir);
        }
    }

    fn finish(&mut self, now_ns: u64, cx: &mut L7Context<'_>, out: &mut Vec<L7Event>) {
        if self.decided.is_none() {
            // Never decisive: HTTP/1, as before sniffing existed (its decoder judges itself).
            self.decide(Verdict::Http1, cx, out);
        }
        if let Some(d) = self.decided.as_mut() {
            d.finish(now_ns, cx, out);
        }
    }

    fn on_timeout(
        &mut self,
        now_ns: u64,
        request_timeout_ns: u64,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        if let Some(d) = self.decided.as_mut() {
            d.on_timeout(now_ns, request_timeout_ns, cx, out);
        }
    }

    fn is_dead(&self) -> bool {
        self.decided.as_ref().is_some_and(|d| d.is_dead())
    }

    fn stopped_by_protocol_error(&self) -> bool {
        self.decided
            .as_ref()
            .is_some_and(|d| d.stopped_by_protocol_error())
    }

    fn buffered(&self) -> usize {
        match &self.decided {
            Some(d) => d.buffered(),
            // Each held event costs its bytes plus its slot.
            None => {
                self.held_bytes
                    + self.held.capacity() * std::mem::size_of::<(StreamDir, Held, PacketCtx)>()
                    + self.bufs.iter().map(Vec::capacity).sum::<usize>()
            }
        }
    }

    fn take_upgrade(&mut self) -> Option<Box<dyn StreamDecoder>> {
        // Once decided, the decided decoder itself takes over (no more indirection).
        let d = self.decided.as_mut()?;
        if let Some(next) = d.take_upgrade() {
            return Some(next);
        }
        self.decided.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::l7::http2::frame::encode::frame;

    #[test]
    fn judges() {
        assert_eq!(judge(b"P", false, true), Verdict::Unsure);
        assert_eq!(judge(b"PRI * HT", false, true), Verdict::Http2Preface);
        assert_eq!(judge(b"GET / HTTP/1.1\r\n", false, true), Verdict::Http1);
        assert_eq!(judge(b"GE", false, true), Verdict::Unsure);
        assert_eq!(
            judge(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", false, true),
            Verdict::Http1
        );
        let settings = frame(4, 0, 0, &[0, 3, 0, 0, 0, 100]);
        assert_eq!(judge(&settings[..5], false, true), Verdict::Unsure);
        assert_eq!(judge(&settings, false, true), Verdict::Http2Frames);
        let mut mid = b"tail of a data frame".to_vec();
        mid.extend(frame(8, 0, 0, &[0, 0, 1, 0]));
        mid.extend(frame(1, 4, 3, b"\x82\x86"));
        assert_eq!(judge(&mid, true, true), Verdict::Http2Frames);
        assert_eq!(
            judge(b"ody bytes\r\n\r\nHTTP/1.1 200 OK\r\n", true, true),
            Verdict::Http1
        );
        assert_eq!(judge(b"ody bytes", true, true), Verdict::Unsure);
    }

    #[test]
    fn a_request_line_arriving_with_junk_is_judged_before_the_junk_is_trimmed() {
        // Joined mid-way: one segment holds the end of a body and a whole request.
        let (mut c, mut ids, cfg) = (
            crate::counters::Counters::default(),
            crate::trace::IdGenerator::new(1),
            crate::l7::L7Config::default(),
        );
        let mut cx = L7Context {
            counters: &mut c,
            ids: &mut ids,
            config: &cfg,
        };
        let (mut s, mut out) = (Sniffer::new(), Vec::new());
        let at = PacketCtx::default();
        let dir = StreamDir::ToServer;
        s.on_event(dir, StreamEvent::Gap { len: 0 }, &at, &mut cx, &mut out);
        let mut seg = vec![b'x'; 600];
        seg.extend_from_slice(b"\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n");
        s.on_event(dir, StreamEvent::Data(&seg), &at, &mut cx, &mut out);
        assert!(
            matches!(&out[..], [L7Event::Http1(_)]),
            "decided and decoded at once: {out:?}"
        );
    }
}
