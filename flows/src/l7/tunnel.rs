//! What an HTTP CONNECT tunnel carries (RFC 9110 §9.3.6: after a 2xx answer the connection
//! is a blind relay to the target, both ways).
//!
//! The relayed bytes are a new stream: a proxy client's plain HTTP/1 (`GET http://...`),
//! HTTP/2 with prior knowledge, or TLS to the target. [`ConnectTunnel`] detects their
//! protocol from their first bytes the way a connection's are detected
//! ([`super::start_stream_decoder`]), then hands the connection to that decoder
//! ([`StreamDecoder::take_upgrade`]), as an `Upgrade: h2c` hands it to HTTP/2. A SOCKS
//! proxy's tunnel, once its handshake is through ([`super::socks`]), is the same.

use super::{L7Context, L7Event, L7Protocol, PacketCtx, StreamDecoder, StreamDir};
use crate::tcp::StreamEvent;

/// A CONNECT tunnel's streams until their first bytes say which protocol they carry.
#[derive(Debug, Default)]
pub struct ConnectTunnel {
    /// Per direction (to server, to client): a gap before the first bytes, replayed to the
    /// decoder once it exists.
    gapped: [bool; 2],
    /// The decoder the first bytes chose, until the caller swaps it in.
    decided: Option<Box<dyn StreamDecoder>>,
    /// The first bytes are no protocol we decode.
    unrecognised: bool,
}

impl ConnectTunnel {
    /// A tunnel that has carried nothing yet.
    pub fn new() -> Self {
        Self::default()
    }
}

impl StreamDecoder for ConnectTunnel {
    fn protocol(&self) -> L7Protocol {
        // Until its bytes say otherwise, the connection is the HTTP/1 one that set it up.
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
        if self.unrecognised {
            return;
        }
        if let Some(d) = self.decided.as_mut() {
            d.on_event(dir, event, at, cx, out);
            return;
        }
        match event {
            StreamEvent::Data(d) if !d.is_empty() => {
                match super::start_stream_decoder(d, self.gapped, at, cx, out) {
                    Some(mut dec) => {
                        dec.on_event(dir, event, at, cx, out);
                        self.decided = Some(dec);
                    }
                    None => self.unrecognised = true,
                }
            }
            StreamEvent::Gap { .. } => {
                self.gapped[match dir {
                    StreamDir::ToServer => 0,
                    StreamDir::ToClient => 1,
                }] = true;
            }
            _ => {}
        }
    }

    fn finish(&mut self, now_ns: u64, cx: &mut L7Context<'_>, out: &mut Vec<L7Event>) {
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

    fn skippable(&self, dir: StreamDir, delivered: u64) -> u64 {
        match &self.decided {
            Some(d) => d.skippable(dir, delivered),
            None if self.unrecognised => super::opaque_skippable(delivered),
            None => 0,
        }
    }

    fn is_dead(&self) -> bool {
        self.unrecognised || self.decided.as_ref().is_some_and(|d| d.is_dead())
    }

    fn stopped_by_protocol_error(&self) -> bool {
        self.decided
            .as_ref()
            .is_some_and(|d| d.stopped_by_protocol_error())
    }

    fn buffered(&self) -> usize {
        self.decided.as_ref().map_or(0, |d| d.buffered())
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
    use crate::counters::Counters;
    use crate::l7::http1::Http1Event;
    use crate::l7::L7Config;
    use crate::trace::IdGenerator;

    #[test]
    fn a_gap_before_the_first_bytes_reaches_the_decoder_they_choose() {
        // The tunnel's first relayed bytes lost: the decoder its next bytes pick searches for
        // a message start, as on a connection joined mid-way.
        let (mut counters, mut ids, config) = (
            Counters::default(),
            IdGenerator::new(1),
            L7Config::default(),
        );
        let mut cx = L7Context {
            counters: &mut counters,
            ids: &mut ids,
            config: &config,
        };
        let (mut t, mut out, at) = (ConnectTunnel::new(), Vec::new(), PacketCtx::default());
        t.on_event(
            StreamDir::ToServer,
            StreamEvent::Gap { len: 100 },
            &at,
            &mut cx,
            &mut out,
        );
        assert!(t.take_upgrade().is_none());
        for (dir, bytes) in [
            (
                StreamDir::ToServer,
                &b"tail of a body\r\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n"[..],
            ),
            (StreamDir::ToClient, b"HTTP/1.1 204 No Content\r\n\r\n"),
        ] {
            t.on_event(dir, StreamEvent::Data(bytes), &at, &mut cx, &mut out);
        }
        assert_eq!(t.protocol(), L7Protocol::Http1);
        let paired: Vec<_> = out
            .iter()
            .filter_map(|e| match e {
                L7Event::Http1(Http1Event::Exchange {
                    request: Some(r),
                    response,
                    ..
                }) => Some((r.target.clone(), response.status)),
                _ => None,
            })
            .collect();
        assert_eq!(paired, vec![("/x".to_string(), Some(204))]);
        assert!(t.take_upgrade().is_some());
    }
}
