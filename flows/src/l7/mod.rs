//! Application protocols: detection and decoders.
//!
//! A TCP connection's reassembled streams go to one [`StreamDecoder`], picked by [`detect`]
//! from the first bytes (content, not ports), or by [`sniff::Sniffer`] when those do not say;
//! a protocol whose content says little (DNS) may claim its ports up front
//! ([`stream_decoder_for_ports`]). A UDP conversation's datagrams go to one
//! [`DatagramDecoder`] ([`datagram_decoder_for_ports`]). A protocol plugs in by adding an
//! [`L7Protocol`] variant, a branch in [`detect`] and a `StreamDecoder` (or
//! `DatagramDecoder`) impl; its events get an [`L7Event`] variant that the engine turns into
//! records. A decoder hands the connection to another after a protocol switch
//! ([`StreamDecoder::take_upgrade`]: HTTP/1.1 `Upgrade: h2c` -> [`http2`]; a CONNECT tunnel
//! -> [`tunnel`], which detects the relayed protocol afresh).

pub mod dns;
pub mod exchange;
pub mod http1;
pub mod http2;
pub mod sniff;
pub mod socks;
pub mod tls;
pub mod tunnel;

use serde::{Deserialize, Serialize};

use crate::counters::Counters;
use crate::packet::CaptureMeta;
use crate::tcp::StreamEvent;
use crate::trace::IdGenerator;

/// Application protocols the engine knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum L7Protocol {
    /// HTTP/1.0 and HTTP/1.1 (RFC 9112).
    Http1,
    /// DNS over UDP or TCP (RFC 1035 §4.2).
    Dns,
    /// HTTP/2 (RFC 9113), including gRPC.
    Http2,
    /// TLS (RFC 8446) seen on the wire: not decoded; its plaintext may come from the TLS
    /// library instead ([`tls`]).
    Tls,
    /// A SOCKS proxy handshake (RFC 1928, SOCKS4/4a), then the tunnelled protocol, decoded
    /// as its own ([`socks`]).
    Socks,
}

/// Which way stream bytes flow, in connection roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamDir {
    /// Client to server (requests).
    ToServer,
    /// Server to client (responses).
    ToClient,
}

/// Where and when the bytes being decoded were captured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PacketCtx {
    /// Capture time of the packet that carried them.
    pub ts_ns: u64,
    /// Its capture metadata.
    pub meta: CaptureMeta,
}

/// Limits and options for the L7 decoders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct L7Config {
    /// Most bytes of an HTTP/1 message head (start line + fields) we hold while it arrives.
    pub max_header_bytes: usize,
    /// Most header fields in one HTTP/1 message.
    pub max_headers: usize,
    /// Most requests (or DNS queries) per flow waiting for a response.
    pub max_pending_requests: usize,
    /// Header names (case-insensitive) copied onto flow records. Sensitive ones are redacted
    /// even when listed.
    pub header_allow_list: Vec<String>,
    /// Bytes of a stream joined mid-way to search for an HTTP message start, while neither
    /// direction has shown an HTTP message yet, before calling it not-HTTP.
    pub max_detect_bytes: usize,
    /// Largest HTTP/2 non-DATA frame payload buffered; bigger ones are skipped and counted.
    pub h2_max_frame_bytes: usize,
    /// Most bytes of one HTTP/2 field block (HEADERS + CONTINUATION) held.
    pub h2_max_header_block_bytes: usize,
    /// Most CONTINUATION frames in one field block.
    pub h2_max_continuation_frames: usize,
    /// Most decoded bytes kept from one field block (RFC 7541 §4.1 sizes); bounds HPACK bombs.
    pub h2_max_header_list_bytes: usize,
    /// Most bytes of one direction's HPACK dynamic table held.
    pub h2_max_hpack_table_bytes: usize,
    /// Most HTTP/2 streams tracked at once per connection.
    pub h2_max_streams: usize,
    /// Most bytes of field values kept by one connection's open HTTP/2 streams; new streams
    /// past it are not tracked (counted with `h2_streams_over_cap`).
    pub h2_max_stream_state_bytes: usize,
}

impl Default for L7Config {
    fn default() -> Self {
        Self {
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            max_pending_requests: 64,
            header_allow_list: [
                "host",
                "user-agent",
                "content-type",
                "content-length",
                "traceparent",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            max_detect_bytes: 256 * 1024,
            h2_max_frame_bytes: 64 * 1024,
            h2_max_header_block_bytes: 64 * 1024,
            h2_max_continuation_frames: 64,
            h2_max_header_list_bytes: 64 * 1024,
            h2_max_hpack_table_bytes: 64 * 1024,
            h2_max_streams: 256,
            h2_max_stream_state_bytes: 1024 * 1024,
        }
    }
}

/// Headers whose values never leave the engine (RFC 9110 §11.6.2, §11.7.2; RFC 6265 §4).
pub const SENSITIVE_HEADERS: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// The value recorded in place of a sensitive header's value.
pub const REDACTED: &str = "[REDACTED]";

/// Everything a decoder may touch besides its own state.
#[derive(Debug)]
pub struct L7Context<'a> {
    /// Engine counters.
    pub counters: &'a mut Counters,
    /// Span/trace id source.
    pub ids: &'a mut IdGenerator,
    /// Limits.
    pub config: &'a L7Config,
}

/// What decoders report to the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum L7Event {
    /// HTTP/1 request/response progress.
    Http1(http1::Http1Event),
    /// HTTP/2 requests and finished streams.
    Http2(http2::Http2Event),
    /// A DNS query or response (any transport), paired.
    Dns(Box<dns::DnsEvent>),
}

/// Bytes a stream that no decoder reads (TLS ciphertext, a protocol not decoded) carries in a
/// direction before the rest of it is named skippable ([`StreamDecoder::skippable`]): a
/// connection this long, or a bulk one, is worth a capture hint's two map updates; a short
/// one is captured as before.
pub const OPAQUE_SKIP_AFTER: u64 = 64 * 1024;

/// What of an unread stream's bytes the decoders pass over, `delivered` bytes in: nothing
/// before [`OPAQUE_SKIP_AFTER`], everything after.
pub fn opaque_skippable(delivered: u64) -> u64 {
    if delivered >= OPAQUE_SKIP_AFTER {
        u64::MAX
    } else {
        0
    }
}

/// A per-connection, bidirectional stream decoder.
pub trait StreamDecoder: Send + std::fmt::Debug {
    /// Which protocol this decodes.
    fn protocol(&self) -> L7Protocol;

    /// Feeds one reassembled stream event of direction `dir`, captured as `at`.
    fn on_event(
        &mut self,
        dir: StreamDir,
        event: StreamEvent<'_>,
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    );

    /// The connection is gone (closed, evicted or flushed) at `now_ns`: report what is still
    /// pending (e.g. unanswered requests).
    fn finish(&mut self, now_ns: u64, cx: &mut L7Context<'_>, out: &mut Vec<L7Event>);

    /// Time is `now_ns` (the engine's timeout scan, whether or not packets come): report what
    /// waits only for the connection's own packets — DNS queries unanswered for
    /// `request_timeout_ns` are forgotten (counted), HTTP/2 streams the client cancelled are
    /// reported once their wait is over — so that a connection gone quiet does not hold them
    /// until it closes or is evicted. Pending HTTP/1 requests stay: responses pair with them by
    /// order (RFC 9112 §9.3), so one given up on would misalign the rest; they are reported
    /// unanswered when the connection ends or idles out. Default: nothing waits.
    fn on_timeout(
        &mut self,
        _now_ns: u64,
        _request_timeout_ns: u64,
        _cx: &mut L7Context<'_>,
        _out: &mut Vec<L7Event>,
    ) {
    }

    /// Bytes of direction `dir` right after the `delivered` ones (events so far) that the
    /// decoder will pass over without reading them: the rest of a message body whose framing
    /// it knows (an HTTP/1 `Content-Length` body, RFC 9112 §6.2, or the current chunk's data,
    /// §7.1), or `u64::MAX` for a stream it never reads (TLS ciphertext). The capture may then
    /// keep only those segments' headers (the engine's [`crate::engine::CaptureHint`]); their
    /// bytes arrive as a gap of known length, which must leave the decoder's state as it is.
    /// Default: 0, every byte is read.
    fn skippable(&self, _dir: StreamDir, _delivered: u64) -> u64 {
        0
    }

    /// True once the decoder has given up (not this protocol, or see
    /// [`Self::stopped_by_protocol_error`]) and wants no more bytes.
    fn is_dead(&self) -> bool;

    /// True when a dead decoder stopped at a connection error of its own protocol (an HTTP/2
    /// connection error, RFC 9113 §5.4.1): the bytes were this protocol, so the flow is not
    /// counted unrecognised.
    fn stopped_by_protocol_error(&self) -> bool {
        false
    }

    /// Bytes held (partial message heads and the like).
    fn buffered(&self) -> usize;

    /// The decoder that takes over the connection after a protocol switch (HTTP/1.1
    /// `Upgrade: h2c`), once; the caller swaps it in.
    fn take_upgrade(&mut self) -> Option<Box<dyn StreamDecoder>> {
        None
    }
}

/// A per-conversation decoder of datagrams (UDP), each one whole message.
pub trait DatagramDecoder: Send + std::fmt::Debug {
    /// Which protocol this decodes.
    fn protocol(&self) -> L7Protocol;

    /// Feeds one datagram's payload sent in direction `dir`, captured as `at`; `wire_len` is
    /// its length on the wire (the capture may have cut `payload`).
    fn on_datagram(
        &mut self,
        dir: StreamDir,
        payload: &[u8],
        wire_len: usize,
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    );

    /// Time is `now_ns`: forget requests unanswered for `request_timeout_ns` (counted).
    fn on_timeout(&mut self, now_ns: u64, request_timeout_ns: u64, cx: &mut L7Context<'_>);

    /// The conversation is gone at `now_ns`: report or count what is still pending.
    fn finish(&mut self, now_ns: u64, cx: &mut L7Context<'_>, out: &mut Vec<L7Event>);
}

/// The decoder for a UDP conversation between `ports`, if a protocol we decode uses them
/// (datagrams carry no preamble to detect, and every datagram stands alone).
pub fn datagram_decoder_for_ports(ports: [u16; 2]) -> Option<Box<dyn DatagramDecoder>> {
    ports
        .into_iter()
        .any(dns::is_udp_port)
        .then(|| Box::new(dns::DnsUdpDecoder::new()) as Box<dyn DatagramDecoder>)
}

/// The decoder for a TCP connection between `ports` before any byte is seen, for protocols
/// whose content is too weak a sign to detect (DNS: binary, no magic). `None`: detect from
/// content ([`detect`]).
pub fn stream_decoder_for_ports(ports: [u16; 2]) -> Option<Box<dyn StreamDecoder>> {
    ports
        .into_iter()
        .any(dns::is_tcp_port)
        .then(|| Box::new(dns::DnsTcpDecoder::new()) as Box<dyn StreamDecoder>)
}

/// Outcome of looking at a stream's first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detection {
    /// This protocol; create its decoder.
    Protocol(L7Protocol),
    /// A protocol we recognise but do not decode yet (e.g. the HTTP/2 preface).
    Unsupported(&'static str),
}

/// Picks the decoder for a TCP stream from its first bytes (either direction).
///
/// A TLS handshake record (RFC 8446 §5.1) means TLS: ciphertext, never given to the HTTP
/// decoders (its plaintext may come from the TLS library instead, see [`tls`]).
/// The HTTP/2 client preface (RFC 9113 §3.4) means HTTP/2. HTTP/1 messages start with a
/// method or `HTTP/1.`. A stream joined mid-way (or a server that speaks first) that starts
/// with a run of plausible HTTP/2 frame headers is HTTP/2. A whole length-prefixed DNS
/// message that parses exactly to its length (RFC 1035 §4.2.2) is DNS over TCP on a port
/// [`stream_decoder_for_ports`] does not know. Anything else goes to HTTP/1: its
/// decoder validates the bytes itself and gives up on garbage, and after a mid-stream start
/// it searches for a message start, which a prefix test cannot do. (When the first bytes are
/// not an HTTP/1 start either, [`new_stream_decoder`] holds them in a [`sniff::Sniffer`]
/// until the stream says which.)
pub fn detect(first: &[u8]) -> Detection {
    if tls::starts_tls_handshake(first) {
        return Detection::Protocol(L7Protocol::Tls);
    }
    let preface = http2::PREFACE;
    if first.len() >= 3 && preface.starts_with(&first[..first.len().min(preface.len())]) {
        return Detection::Protocol(L7Protocol::Http2);
    }
    if !sniff::looks_http1(first) && http2::frame::find_frame_start(first, true) == Ok(0) {
        return Detection::Protocol(L7Protocol::Http2);
    }
    if !sniff::looks_http1(first) && dns::framing::starts_with_message(first) {
        return Detection::Protocol(L7Protocol::Dns);
    }
    if socks::starts_handshake(first) {
        return Detection::Protocol(L7Protocol::Socks);
    }
    Detection::Protocol(L7Protocol::Http1)
}

/// Creates the decoder for a detected stream protocol; `first` are the bytes it was detected
/// on (an HTTP/2 decoder needs to know whether it starts at the preface).
pub fn new_stream_decoder(
    protocol: L7Protocol,
    first: &[u8],
    config: &L7Config,
) -> Option<Box<dyn StreamDecoder>> {
    match protocol {
        L7Protocol::Http1 if sniff::looks_http1(first) => {
            Some(Box::new(http1::Http1Decoder::new()))
        }
        L7Protocol::Http1 => Some(Box::new(sniff::Sniffer::new())),
        L7Protocol::Http2 if first.starts_with(&http2::PREFACE[..3]) => {
            Some(Box::new(http2::Http2Decoder::with_preface(config)))
        }
        L7Protocol::Http2 => Some(Box::new(http2::Http2Decoder::mid_stream(config))),
        L7Protocol::Dns => Some(Box::new(dns::DnsTcpDecoder::new())),
        L7Protocol::Tls => Some(Box::new(tls::TlsRecords::new())),
        L7Protocol::Socks => Some(Box::new(socks::Socks::new(first))),
    }
}

/// The decoder for a stream whose first bytes are `first` ([`detect`], [`new_stream_decoder`]),
/// told of the gaps (mid-way starts) seen before them in each direction (`gapped`: to server,
/// to client), or `None` when it is no protocol we decode. The caller then feeds it the event
/// that carried `first`.
pub fn start_stream_decoder(
    first: &[u8],
    gapped: [bool; 2],
    at: &PacketCtx,
    cx: &mut L7Context<'_>,
    out: &mut Vec<L7Event>,
) -> Option<Box<dyn StreamDecoder>> {
    let Detection::Protocol(p) = detect(first) else {
        return None;
    };
    let mut dec = new_stream_decoder(p, first, cx.config)?;
    for (dir, gapped) in [StreamDir::ToServer, StreamDir::ToClient]
        .into_iter()
        .zip(gapped)
    {
        if gapped {
            dec.on_event(dir, StreamEvent::Gap { len: 0 }, at, cx, out);
        }
    }
    Some(dec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_http2_by_preface_or_frames() {
        let h2 = Detection::Protocol(L7Protocol::Http2);
        assert_eq!(detect(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), h2);
        assert_eq!(detect(b"PRI"), h2);
        assert_eq!(
            detect(b"GET / HTTP/1.1\r\n"),
            Detection::Protocol(L7Protocol::Http1)
        );
        // A server SETTINGS frame then a SETTINGS ACK.
        let mut f = http2::frame::encode::frame(4, 0, 0, &[0, 3, 0, 0, 0, 100]);
        f.extend(http2::frame::encode::frame(4, 1, 0, &[]));
        assert_eq!(detect(&f), h2);
        assert_eq!(
            detect(b"\x00\x01garbage"),
            Detection::Protocol(L7Protocol::Http1)
        );
    }

    #[test]
    fn detects_dns_over_tcp_by_a_whole_message_or_by_port() {
        let q = dns::message::build::query(7, "www.example.test.", 1);
        let mut framed = (q.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&q);
        let dns = Detection::Protocol(L7Protocol::Dns);
        assert_eq!(detect(&framed), dns);
        // Part of a message, or a length that does not end where the message does: not
        // enough to call it DNS without the port.
        assert_ne!(detect(&framed[..framed.len() - 1]), dns);
        let mut long = framed.clone();
        long[1] += 1;
        long.push(0);
        assert_ne!(detect(&long), dns);
        assert!(stream_decoder_for_ports([40000, 53]).is_some());
        assert!(
            stream_decoder_for_ports([40000, 853]).is_none(),
            "DoT is TLS"
        );
        assert!(datagram_decoder_for_ports([5353, 5353]).is_some());
        assert!(datagram_decoder_for_ports([40000, 443]).is_none());
    }
}
