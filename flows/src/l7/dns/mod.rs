//! DNS: message parsing, the carriers (UDP datagrams, TCP length-prefixed streams), pairing
//! answers with queries, and the flow records.
//!
//! - [`message`]: the wire format (RFC 1035 §4.1), whatever carries it.
//! - [`udp`]: one message per datagram ([`DnsUdpDecoder`], a [`DatagramDecoder`]).
//! - [`framing`] + [`tcp`]: DNS over TCP (RFC 1035 §4.2.2, RFC 7766 §8): messages behind a
//!   2-byte length, framed by the byte stream, not by segments ([`DnsTcpDecoder`], a
//!   [`StreamDecoder`]).
//! - [`pairing`]: answers matched with queries by ID and question on one conversation
//!   (RFC 7766 §7: pipelined queries may be answered out of order), so UDP and TCP pair alike.
//! - [`records`]: [`DnsEvent`]s as Hubble-style flows (`l7.dns`).
//! - [`doh`]: DNS over HTTPS bodies (RFC 8484), for the HTTP decoders to call.
//!
//! [`DatagramDecoder`]: crate::l7::DatagramDecoder
//! [`StreamDecoder`]: crate::l7::StreamDecoder

pub mod doh;
pub mod framing;
pub mod message;
pub mod pairing;
pub mod records;
pub mod tcp;
pub mod udp;

pub use message::{parse, rcode_name, type_name, Answer, DnsError, DnsMessage, Question, RData};
pub use tcp::DnsTcpDecoder;
pub use udp::DnsUdpDecoder;

use crate::l7::{L7Context, PacketCtx, StreamDir};
use crate::record::{DnsInfo, L7Type};
use pairing::Transactions;

/// Ports where a UDP conversation is DNS: DNS (RFC 1035), mDNS (RFC 6762), LLMNR (RFC 4795).
pub fn is_udp_port(port: u16) -> bool {
    matches!(port, 53 | 5353 | 5355)
}

/// Ports where a TCP connection is taken for DNS before any byte is seen: DNS (RFC 1035
/// §4.2.2, RFC 7766) and LLMNR, which falls back to TCP for truncated answers (RFC 4795
/// §2.4). Content alone says little about DNS (a message is binary with no magic), so the
/// port is the hint; the decoder still gives up when the first bytes are no DNS header.
/// Port 853 is DNS over TLS (RFC 7858): TLS records, not DNS messages.
pub fn is_tcp_port(port: u16) -> bool {
    matches!(port, 53 | 5355)
}

/// What carried a DNS message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsTransport {
    /// One message per UDP datagram (RFC 1035 §4.2.1).
    Udp,
    /// Length-prefixed messages in a TCP stream (RFC 1035 §4.2.2).
    Tcp,
    /// An HTTP message body or GET parameter (RFC 8484), over TCP.
    Https,
}

/// One DNS message, decoded and paired, ready to become a flow record.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsEvent {
    /// Which way it went, in the conversation's client/server roles.
    pub dir: StreamDir,
    /// What carried it.
    pub transport: DnsTransport,
    /// When (the packet that completed the message) and where it was captured.
    pub at: PacketCtx,
    /// Query (QR 0) or response (QR 1); taken from the message, not from the direction.
    pub kind: L7Type,
    /// For a response paired with its query: response time minus query time.
    pub latency_ns: Option<u64>,
    /// The record's DNS fields.
    pub info: DnsInfo,
    /// Bytes of the message (without a TCP length prefix), as on the wire.
    pub message_bytes: u64,
}

/// Pairs `msg` with the conversation's `transactions` and builds its event.
fn to_event(
    transactions: &mut Transactions,
    msg: &DnsMessage,
    dir: StreamDir,
    transport: DnsTransport,
    at: &PacketCtx,
    message_bytes: usize,
    cx: &mut L7Context<'_>,
) -> DnsEvent {
    let mut info = records::info(msg);
    let (kind, latency_ns) = if msg.is_response {
        cx.counters.dns_responses += 1;
        if msg.truncated {
            cx.counters.dns_truncated_responses += 1;
        }
        let latency = transactions.on_response(msg, at.ts_ns, cx.counters);
        info.response_only = latency.is_none();
        (L7Type::Response, latency)
    } else {
        cx.counters.dns_queries += 1;
        transactions.on_query(msg, at.ts_ns, cx.config.max_pending_requests, cx.counters);
        (L7Type::Request, None)
    };
    DnsEvent {
        dir,
        transport,
        at: *at,
        kind,
        latency_ns,
        info,
        message_bytes: message_bytes as u64,
    }
}
