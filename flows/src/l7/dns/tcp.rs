//! DNS over TCP (RFC 1035 §4.2.2, RFC 7766): each direction framed by a [`Framer`], every
//! message paired on the connection by ID and question (RFC 7766 §7: a server may answer
//! pipelined queries in any order). A connection seen mid-way yields its responses alone,
//! marked response-only, without latency.

use super::framing::Framer;
use super::pairing::Transactions;
use super::{parse, to_event, DnsTransport};
use crate::l7::{L7Context, L7Event, L7Protocol, PacketCtx, StreamDecoder, StreamDir};
use crate::tcp::StreamEvent;

/// The DNS decoder of one TCP connection.
#[derive(Debug, Default)]
pub struct DnsTcpDecoder {
    /// Framing per direction: `[to server, to client]`.
    halves: [Framer; 2],
    transactions: Transactions,
}

impl DnsTcpDecoder {
    /// A decoder for a connection seen from its first byte (a mid-way start arrives as a
    /// gap event and is handled then).
    pub fn new() -> Self {
        Self::default()
    }
}

fn index(dir: StreamDir) -> usize {
    match dir {
        StreamDir::ToServer => 0,
        StreamDir::ToClient => 1,
    }
}

impl StreamDecoder for DnsTcpDecoder {
    fn protocol(&self) -> L7Protocol {
        L7Protocol::Dns
    }

    fn on_event(
        &mut self,
        dir: StreamDir,
        event: StreamEvent<'_>,
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        let Self {
            halves,
            transactions,
        } = self;
        let half = &mut halves[index(dir)];
        match event {
            StreamEvent::Data(data) => {
                half.push(data, cx, &mut |msg: &[u8], cx: &mut L7Context<'_>| {
                    match parse(msg) {
                        Ok(m) => out.push(L7Event::Dns(Box::new(to_event(
                            transactions,
                            &m,
                            dir,
                            DnsTransport::Tcp,
                            at,
                            msg.len(),
                            cx,
                        )))),
                        // Framing does not depend on the content: the next message is intact.
                        Err(_) => cx.counters.dns_parse_errors += 1,
                    }
                });
            }
            StreamEvent::Gap { len } => half.gap(len, cx),
            StreamEvent::Fin | StreamEvent::Reset => half.end(cx),
        }
    }

    /// RFC 7766 §6.2.3 has servers answer pipelined queries in any order but not never: a
    /// query unanswered for `request_timeout_ns` is given up, as over UDP, and a late answer
    /// is then reported response-only.
    fn on_timeout(
        &mut self,
        now_ns: u64,
        request_timeout_ns: u64,
        cx: &mut L7Context<'_>,
        _out: &mut Vec<L7Event>,
    ) {
        if self.transactions.is_empty() {
            return;
        }
        let expired = self
            .transactions
            .expire(now_ns, request_timeout_ns, cx.counters);
        cx.counters.dns_tcp_queries_timed_out += expired;
    }

    fn finish(&mut self, _now_ns: u64, cx: &mut L7Context<'_>, _out: &mut Vec<L7Event>) {
        for half in &mut self.halves {
            half.end(cx);
        }
        self.transactions.finish(cx.counters);
    }

    fn is_dead(&self) -> bool {
        self.halves.iter().any(Framer::is_not_dns) || self.halves.iter().all(Framer::is_lost)
    }

    fn buffered(&self) -> usize {
        self.halves.iter().map(Framer::buffered).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::super::message::build;
    use super::*;
    use crate::counters::Counters;
    use crate::l7::dns::DnsEvent;
    use crate::l7::L7Config;
    use crate::record::L7Type;
    use crate::trace::IdGenerator;

    fn frame(msg: &[u8]) -> Vec<u8> {
        let mut f = (msg.len() as u16).to_be_bytes().to_vec();
        f.extend_from_slice(msg);
        f
    }

    struct Conn {
        dec: DnsTcpDecoder,
        counters: Counters,
        events: Vec<DnsEvent>,
    }

    impl Conn {
        fn new() -> Self {
            Self {
                dec: DnsTcpDecoder::new(),
                counters: Counters::default(),
                events: Vec::new(),
            }
        }
        fn feed(&mut self, dir: StreamDir, ev: StreamEvent<'_>, ts_ns: u64) {
            let config = L7Config::default();
            let mut ids = IdGenerator::new(0);
            let mut cx = L7Context {
                counters: &mut self.counters,
                ids: &mut ids,
                config: &config,
            };
            let mut out = Vec::new();
            let at = PacketCtx {
                ts_ns,
                ..Default::default()
            };
            self.dec.on_event(dir, ev, &at, &mut cx, &mut out);
            self.events.extend(out.into_iter().map(|e| match e {
                L7Event::Dns(d) => *d,
                e => panic!("{e:?}"),
            }));
        }
        /// `(kind, query, latency, response_only)` per event.
        fn summary(&self) -> Vec<(L7Type, String, Option<u64>, bool)> {
            self.events
                .iter()
                .map(|e| {
                    (
                        e.kind,
                        e.info.query.clone(),
                        e.latency_ns,
                        e.info.response_only,
                    )
                })
                .collect()
        }
    }

    #[test]
    fn pipelined_queries_answered_out_of_order_pair_by_id() {
        let mut c = Conn::new();
        let mut qs = Vec::new();
        for (id, name) in [(1, "a.test."), (2, "b.test."), (3, "nx.test.")] {
            qs.extend(frame(&build::query(id, name, 1)));
        }
        c.feed(StreamDir::ToServer, StreamEvent::Data(&qs), 1000);
        let r3 = frame(&build::a_response(3, "nx.test.", 3, &[], 60));
        let r1 = frame(&build::a_response(1, "a.test.", 0, &[[192, 0, 2, 1]], 60));
        let r2 = frame(&build::a_response(2, "b.test.", 0, &[[192, 0, 2, 2]], 60));
        c.feed(StreamDir::ToClient, StreamEvent::Data(&r3), 1800);
        let mut both = r1.clone();
        both.extend(&r2[..1]);
        c.feed(StreamDir::ToClient, StreamEvent::Data(&both), 4000);
        c.feed(StreamDir::ToClient, StreamEvent::Data(&r2[1..]), 5900);
        let got = c.summary();
        assert_eq!(got.len(), 6);
        assert_eq!(
            got[3],
            (L7Type::Response, "nx.test.".into(), Some(800), false)
        );
        assert_eq!(
            got[4],
            (L7Type::Response, "a.test.".into(), Some(3000), false)
        );
        assert_eq!(
            got[5],
            (L7Type::Response, "b.test.".into(), Some(4900), false)
        );
        assert_eq!(c.events[3].info.rcode, Some(3));
        assert_eq!(c.events[3].transport, DnsTransport::Tcp);
        assert_eq!(c.events[4].dir, StreamDir::ToClient);
        assert_eq!(c.counters.dns_unmatched_responses, 0);
    }

    #[test]
    fn responses_alone_are_response_only() {
        let mut c = Conn::new();
        c.feed(StreamDir::ToClient, StreamEvent::Gap { len: 0 }, 0);
        let mut rs = frame(&build::a_response(
            9,
            "late.test.",
            0,
            &[[192, 0, 2, 9]],
            60,
        ));
        rs.extend(frame(&build::a_response(10, "late2.test.", 3, &[], 60)));
        c.feed(StreamDir::ToClient, StreamEvent::Data(&rs), 10);
        c.feed(StreamDir::ToClient, StreamEvent::Fin, 20);
        let got = c.summary();
        assert_eq!(
            got,
            vec![
                (L7Type::Response, "late.test.".into(), None, true),
                (L7Type::Response, "late2.test.".into(), None, true),
            ]
        );
        assert_eq!(c.counters.dns_unmatched_responses, 2);
        assert!(!c.dec.is_dead());
    }

    #[test]
    fn queries_unanswered_past_the_timeout_are_given_up() {
        // RFC 7766 §6.2.3: answers may come in any order, but a query the server never
        // answers is forgotten at the timeout, not held until the connection ends.
        let mut c = Conn::new();
        let mut qs = frame(&build::query(1, "slow.test.", 1));
        qs.extend(frame(&build::query(2, "fast.test.", 1)));
        c.feed(StreamDir::ToServer, StreamEvent::Data(&qs), 1_000);
        let r2 = frame(&build::a_response(
            2,
            "fast.test.",
            0,
            &[[192, 0, 2, 2]],
            60,
        ));
        c.feed(StreamDir::ToClient, StreamEvent::Data(&r2), 2_000);
        let config = L7Config::default();
        let mut ids = IdGenerator::new(0);
        let mut cx = L7Context {
            counters: &mut c.counters,
            ids: &mut ids,
            config: &config,
        };
        let mut out = Vec::new();
        c.dec.on_timeout(10_999, 10_000, &mut cx, &mut out);
        assert_eq!(cx.counters.dns_tcp_queries_timed_out, 0);
        c.dec.on_timeout(11_000, 10_000, &mut cx, &mut out);
        assert!(out.is_empty(), "the query was reported when seen");
        assert_eq!(
            (
                c.counters.dns_tcp_queries_timed_out,
                c.counters.dns_unanswered
            ),
            (1, 1)
        );
        // A late answer has no query left: response-only; the end counts nothing twice.
        let r1 = frame(&build::a_response(
            1,
            "slow.test.",
            0,
            &[[192, 0, 2, 1]],
            60,
        ));
        c.feed(StreamDir::ToClient, StreamEvent::Data(&r1), 12_000);
        assert!(c.events.last().unwrap().info.response_only);
        let mut cx = L7Context {
            counters: &mut c.counters,
            ids: &mut ids,
            config: &config,
        };
        c.dec.finish(13_000, &mut cx, &mut out);
        assert_eq!(c.counters.dns_unanswered, 1);
    }

    #[test]
    fn not_dns_on_port_53_gives_up_without_guessing() {
        let mut c = Conn::new();
        c.feed(
            StreamDir::ToServer,
            StreamEvent::Data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            0,
        );
        assert!(c.dec.is_dead());
        assert!(c.events.is_empty());
        assert_eq!(c.counters.dns_tcp_not_dns, 1);
    }

    #[test]
    fn bad_messages_cost_only_themselves() {
        let mut c = Conn::new();
        let mut s = frame(&build::query(1, "a.test.", 1));
        // A well-framed message whose name runs off its end.
        s.extend(frame(&[0, 2, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 9, b'x']));
        s.extend(frame(&build::query(3, "c.test.", 1)));
        c.feed(StreamDir::ToServer, StreamEvent::Data(&s), 0);
        assert_eq!(c.events.len(), 2);
        assert_eq!(c.counters.dns_parse_errors, 1);
        let config = L7Config::default();
        let mut ids = IdGenerator::new(0);
        let mut cx = L7Context {
            counters: &mut c.counters,
            ids: &mut ids,
            config: &config,
        };
        c.dec.finish(1, &mut cx, &mut Vec::new());
        assert_eq!(c.counters.dns_unanswered, 2);
    }
}
