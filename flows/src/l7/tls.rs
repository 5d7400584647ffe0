//! TLS: recognised on the wire, decoded from the plaintext the TLS library saw.
//!
//! A TCP stream that starts with a TLS handshake record is ciphertext: [`TlsRecords`] takes
//! it so that no HTTP decoder chews on it, and counts it. When the agent reads the same
//! connection's plaintext at the TLS library (uprobes on OpenSSL's `SSL_read`/`SSL_write`),
//! the engine ([`crate::engine::Engine::handle_plaintext`]) swaps the connection's decoder
//! for a [`PlaintextSlot`]: the plaintext goes through the usual detection and the HTTP/1,
//! HTTP/2 and gRPC decoders, unchanged, and the packets' bytes go nowhere. A TLS connection
//! that ends with no plaintext source is a blind spot, counted
//! (`tls_flows_without_plaintext`).

use crate::key::Side;
use crate::l7::{L7Context, L7Event, L7Protocol, PacketCtx, StreamDecoder, StreamDir};
use crate::record::L7Source;
use crate::table::L7Slot;
use crate::tcp::StreamEvent;

/// TLS ContentType `handshake` (RFC 8446 §5.1).
const CONTENT_HANDSHAKE: u8 = 22;
/// HandshakeType `client_hello` and `server_hello` (RFC 8446 §4).
const CLIENT_HELLO: u8 = 1;
const SERVER_HELLO: u8 = 2;
/// Largest TLSPlaintext length: 2^14 (RFC 8446 §5.1); TLS 1.2 allows 2^14 + 2048 for
/// TLSCiphertext (RFC 5246 §6.2.3), which bounds every record a peer may send.
const MAX_RECORD_LEN: u16 = (1 << 14) + 2048;

/// True when `first` starts a TLS connection: a handshake record (RFC 8446 §5.1: type 22,
/// legacy_record_version 0x0301..=0x0303, a length a record may have) holding a ClientHello
/// or ServerHello (RFC 8446 §4), so that a stream joined mid-way is not taken for TLS by
/// chance. SSLv3 (0x0300) is out of scope (RFC 7568 forbids it).
pub fn starts_tls_handshake(first: &[u8]) -> bool {
    let [ty, major, minor, len_hi, len_lo, hs, ..] = *first else {
        return false;
    };
    let len = u16::from_be_bytes([len_hi, len_lo]);
    ty == CONTENT_HANDSHAKE
        && major == 3
        && (1..=3).contains(&minor)
        && (4..=MAX_RECORD_LEN).contains(&len)
        && (hs == CLIENT_HELLO || hs == SERVER_HELLO)
}

/// A TLS connection seen on the wire: its records are opaque, so the decoder only counts it,
/// and at its end counts it again if no plaintext source took it over.
#[derive(Debug, Default)]
pub struct TlsRecords {
    counted: bool,
}

impl TlsRecords {
    /// A decoder for a stream that started with a TLS handshake record.
    pub fn new() -> Self {
        Self::default()
    }
}

impl StreamDecoder for TlsRecords {
    fn protocol(&self) -> L7Protocol {
        L7Protocol::Tls
    }

    fn on_event(
        &mut self,
        _dir: StreamDir,
        _event: StreamEvent<'_>,
        _at: &PacketCtx,
        cx: &mut L7Context<'_>,
        _out: &mut Vec<L7Event>,
    ) {
        if !self.counted {
            self.counted = true;
            cx.counters.tls_flows_on_wire += 1;
        }
    }

    fn finish(&mut self, _now_ns: u64, cx: &mut L7Context<'_>, _out: &mut Vec<L7Event>) {
        // A connection whose plaintext was read is no longer ours (the engine dropped us).
        cx.counters.tls_flows_without_plaintext += 1;
    }

    fn is_dead(&self) -> bool {
        false
    }

    fn skippable(&self, _dir: StreamDir, delivered: u64) -> u64 {
        // The handshake that told it TLS is long past; the plaintext, when read, comes from
        // the TLS library, not the packets.
        crate::l7::opaque_skippable(delivered)
    }

    fn buffered(&self) -> usize {
        0
    }
}

/// A TCP connection decoded from the plaintext its TLS library saw at one of its ends.
#[derive(Debug)]
pub struct PlaintextSlot {
    /// The end whose library reported the plaintext. When both ends are on this node, both
    /// report the same bytes; the first one to do so feeds the decoders.
    pub from: Side,
    /// How the plaintext was read (marked on the flows it makes).
    pub source: L7Source,
    /// The decoder of the plaintext stream (detection as for packets).
    pub inner: L7Slot,
    /// Per direction (0 to server, 1 to client): the packets' FIN or RST, held until the
    /// connection leaves the table. The application reads the last bytes after the FIN that
    /// followed them was captured, so ending the plaintext stream at the FIN would cut them;
    /// a close-delimited body (RFC 9112 §6.3) still needs its end.
    pub ended: [Option<(bool, PacketCtx)>; 2],
}

impl PlaintextSlot {
    /// A slot fed by the end on `from`, with nothing detected yet.
    pub fn new(from: Side, source: L7Source) -> Self {
        Self {
            from,
            source,
            inner: L7Slot::Detecting { gapped: [false; 2] },
            ended: [None; 2],
        }
    }

    /// Notes a packet stream event of direction `dir`: a FIN or RST is held for
    /// [`PlaintextSlot::finish`]; ciphertext bytes and gaps go nowhere.
    pub fn on_packet_event(&mut self, dir: StreamDir, event: &StreamEvent<'_>, at: &PacketCtx) {
        let i = match dir {
            StreamDir::ToServer => 0,
            StreamDir::ToClient => 1,
        };
        let reset = match event {
            StreamEvent::Fin => false,
            StreamEvent::Reset => true,
            _ => return,
        };
        self.ended[i].get_or_insert((reset, *at));
    }

    /// The connection leaves the table: the held FINs and RSTs reach the decoder, then it
    /// reports what is pending.
    pub fn finish(&mut self, now_ns: u64, cx: &mut L7Context<'_>, out: &mut Vec<L7Event>) {
        for (i, dir) in [StreamDir::ToServer, StreamDir::ToClient]
            .into_iter()
            .enumerate()
        {
            if let Some((reset, at)) = self.ended[i].take() {
                let ev = if reset {
                    StreamEvent::Reset
                } else {
                    StreamEvent::Fin
                };
                self.inner.on_event(dir, ev, &at, cx, out);
            }
        }
        self.inner.finish(now_ns, cx, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_hello_record_starts_tls() {
        // TLS 1.2 record layer (0x0301 in a first ClientHello, RFC 8446 §5.1), 512 bytes,
        // handshake type 1.
        assert!(starts_tls_handshake(&[22, 3, 1, 2, 0, 1, 0, 1, 252]));
        assert!(starts_tls_handshake(&[22, 3, 3, 0, 122, 2, 0, 0, 118]));
    }

    #[test]
    fn other_bytes_do_not() {
        assert!(!starts_tls_handshake(b"GET / HTTP/1.1\r\n"));
        assert!(!starts_tls_handshake(b"PRI * HTTP/2.0"));
        // Application data (23) mid-way: not a start.
        assert!(!starts_tls_handshake(&[23, 3, 3, 0, 40, 1]));
        // SSLv3, a zero length, an oversized record, a Finished message (20).
        assert!(!starts_tls_handshake(&[22, 3, 0, 0, 50, 1]));
        assert!(!starts_tls_handshake(&[22, 3, 3, 0, 0, 1]));
        assert!(!starts_tls_handshake(&[22, 3, 3, 0xff, 0xff, 1]));
        assert!(!starts_tls_handshake(&[22, 3, 3, 0, 40, 20]));
        assert!(!starts_tls_handshake(&[22, 3, 3, 0]));
    }
}
