//! DNS over UDP: one message per datagram (RFC 1035 §4.2.1), paired on the 5-tuple.

use super::pairing::Transactions;
use super::{parse, to_event, DnsTransport};
use crate::l7::{DatagramDecoder, L7Context, L7Event, L7Protocol, PacketCtx, StreamDir};

/// The DNS state of one UDP conversation: its outstanding queries.
#[derive(Debug, Default)]
pub struct DnsUdpDecoder {
    transactions: Transactions,
}

impl DnsUdpDecoder {
    /// A conversation with nothing pending.
    pub fn new() -> Self {
        Self::default()
    }
}

impl DatagramDecoder for DnsUdpDecoder {
    fn protocol(&self) -> L7Protocol {
        L7Protocol::Dns
    }

    fn on_datagram(
        &mut self,
        dir: StreamDir,
        payload: &[u8],
        wire_len: usize,
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        match parse(payload) {
            Ok(msg) => out.push(L7Event::Dns(Box::new(to_event(
                &mut self.transactions,
                &msg,
                dir,
                DnsTransport::Udp,
                at,
                wire_len,
                cx,
            )))),
            Err(_) => cx.counters.dns_parse_errors += 1,
        }
    }

    fn on_timeout(&mut self, now_ns: u64, request_timeout_ns: u64, cx: &mut L7Context<'_>) {
        self.transactions
            .expire(now_ns, request_timeout_ns, cx.counters);
    }

    fn finish(&mut self, _now_ns: u64, cx: &mut L7Context<'_>, _out: &mut Vec<L7Event>) {
        self.transactions.finish(cx.counters);
    }
}
