//! DNS over HTTPS (RFC 8484) in HTTP/1 exchanges seen in cleartext: a request or response of
//! type `application/dns-message` has its body captured (bounded, see
//! [`crate::l7::dns::doh`]) and a GET request's `dns` parameter decoded, and the DNS messages
//! are reported as DNS flows besides the HTTP exchange, which stays as it is. The answer is
//! paired with the query by the exchange: its latency runs from when the query was whole.
//!
//! Other messages cost one flag test per body chunk: nothing is captured unless the content
//! type says DNS (RFC 8484 §6).

use std::sync::Arc;

use super::connection::Http1Decoder;
use super::pairing::Pending;
use super::ResponseHead;
use crate::l7::dns::doh::{self, BodyCapture};
use crate::l7::exchange::RequestHead;
use crate::l7::{L7Context, L7Event, PacketCtx, StreamDir};

/// The DoH bodies of one connection being captured.
#[derive(Debug, Default)]
pub(super) struct DohBodies {
    /// The request whose body is a DNS query (its content type said so), and the body so far.
    request: Option<(Arc<RequestHead>, BodyCapture)>,
    /// The response body being captured (the in-flight response's content type said DNS).
    response: Option<BodyCapture>,
    /// A whole DNS answer whose query (the request body) is still passing: the server
    /// answered early or the capture delivered the answer first. Reported once the query is.
    /// Boxed: rare, and unboxed it would double the size of this struct, which every
    /// [`Http1Decoder::buffered`] call reads.
    answer_waiting: Option<Box<(BodyCapture, PacketCtx)>>,
}

impl DohBodies {
    /// Bytes held.
    pub(super) fn buffered(&self) -> usize {
        self.request.as_ref().map_or(0, |(_, c)| c.buffered())
            + self.response.as_ref().map_or(0, BodyCapture::buffered)
            + self.answer_waiting.as_ref().map_or(0, |w| w.0.buffered())
    }

    /// Whether direction `dir`'s message body is being captured.
    pub(super) fn capturing(&self, dir: StreamDir) -> bool {
        match dir {
            StreamDir::ToServer => self.request.is_some(),
            StreamDir::ToClient => self.response.is_some(),
        }
    }

    /// The capture of direction `dir`'s message body, when its content type said DNS.
    pub(super) fn capture(&mut self, dir: StreamDir) -> Option<&mut BodyCapture> {
        match dir {
            StreamDir::ToServer => self.request.as_mut().map(|(_, c)| c),
            StreamDir::ToClient => self.response.as_mut(),
        }
    }
}

impl Http1Decoder {
    /// A request head was parsed (`head`, now pending or paired): starts capturing its body
    /// when `dns_body` (RFC 8484 §4.1 POST), or reports the query of a GET's `dns` parameter
    /// (§4.1 GET). Returns when the GET's query was seen, for its answer's latency.
    pub(super) fn doh_request(
        &mut self,
        head: &Arc<RequestHead>,
        dns_body: bool,
        accepts_dns: bool,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) -> Option<u64> {
        // A new request means the body before it ended (or never will).
        if self.doh.request.is_some() {
            self.doh_settle(cx, out);
        }
        if dns_body {
            self.doh.request = Some((head.clone(), BodyCapture::new()));
            return None;
        }
        if &*head.method != "GET" || doh::dns_parameter(&head.target).is_none() {
            return None;
        }
        let ev = doh::get_query_event(&head.target, accepts_dns, &head.head_end, cx)?;
        out.push(L7Event::Dns(Box::new(ev)));
        Some(head.head_end.ts_ns)
    }

    /// The captured request body ended whole at `at`: reports the query, and the answer that
    /// waited for it.
    pub(super) fn doh_query_done(
        &mut self,
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        let Some((head, body)) = self.doh.request.take() else {
            return;
        };
        let Some(ev) = doh::body_event(&body, StreamDir::ToServer, at, None, cx) else {
            self.doh_flush_answer(None, cx, out);
            return;
        };
        out.push(L7Event::Dns(Box::new(ev)));
        let in_flight = self.in_flight.as_mut().and_then(|f| f.request.as_mut());
        if let Some(p) = self
            .pending
            .iter_mut()
            .chain(in_flight)
            .find(|p| Arc::ptr_eq(&p.head, &head))
        {
            p.doh_query_ns = Some(at.ts_ns);
        }
        self.doh_flush_answer(Some(at.ts_ns), cx, out);
    }

    /// A captured request body that is no longer passing without having ended whole (a gap,
    /// a close, a broken framing, a tunnel): counted, and its waiting answer reported alone.
    #[cold]
    #[inline(never)]
    fn doh_settle(&mut self, cx: &mut L7Context<'_>, out: &mut Vec<L7Event>) {
        if let Some((_, mut body)) = self.doh.request.take() {
            body.gap();
            let _ = body.message(cx.counters);
        }
        self.doh_flush_answer(None, cx, out);
    }

    /// After each stream event: settles a request capture whose body stopped passing.
    pub(super) fn doh_after_event(&mut self, cx: &mut L7Context<'_>, out: &mut Vec<L7Event>) {
        let passing = match &self.doh.request {
            None => return,
            Some((head, _)) => self.body_passing(head),
        };
        if !passing {
            self.doh_settle(cx, out);
        }
    }

    fn doh_flush_answer(
        &mut self,
        query_ns: Option<u64>,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        if let Some((body, at)) = self.doh.answer_waiting.take().map(|w| *w) {
            if let Some(ev) = doh::body_event(&body, StreamDir::ToClient, &at, query_ns, cx) {
                out.push(L7Event::Dns(Box::new(ev)));
            }
        }
    }

    /// The response about to be reported ended at `end_ns` (`whole` or cut): reports its
    /// captured DNS answer, paired with `request`'s query.
    pub(super) fn doh_response_done(
        &mut self,
        request: Option<&Pending>,
        response: &ResponseHead,
        end_ns: u64,
        whole: bool,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        let Some(mut body) = self.doh.response.take() else {
            return;
        };
        if !whole {
            body.gap();
        }
        let at = PacketCtx {
            ts_ns: end_ns,
            meta: response.head_end.meta,
        };
        let query_ns = request.and_then(|p| p.doh_query_ns);
        let query_passing = request.is_some_and(|p| {
            self.doh
                .request
                .as_ref()
                .is_some_and(|(h, _)| Arc::ptr_eq(h, &p.head))
        });
        if query_ns.is_none() && query_passing {
            self.doh.answer_waiting = Some(Box::new((body, at)));
            return;
        }
        if let Some(ev) = doh::body_event(&body, StreamDir::ToClient, &at, query_ns, cx) {
            out.push(L7Event::Dns(Box::new(ev)));
        }
    }

    /// The final response now in flight has a body of type `application/dns-message`.
    pub(super) fn doh_response_body(&mut self) {
        self.doh.response = Some(BodyCapture::new());
    }

    /// The connection is over: what was captured and not whole is counted.
    #[cold]
    #[inline(never)]
    pub(super) fn doh_finish(&mut self, cx: &mut L7Context<'_>, out: &mut Vec<L7Event>) {
        if let Some(mut body) = self.doh.response.take() {
            body.gap();
            let _ = body.message(cx.counters);
        }
        self.doh_settle(cx, out);
    }
}

#[cfg(test)]
mod tests {
    use super::super::Http1Event;
    use super::*;
    use crate::counters::Counters;
    use crate::l7::dns::message::build;
    use crate::l7::dns::DnsEvent;
    use crate::l7::{L7Config, StreamDecoder};
    use crate::record::L7Type;
    use crate::tcp::StreamEvent;
    use crate::trace::IdGenerator;

    struct H {
        dec: Http1Decoder,
        c: Counters,
        out: Vec<L7Event>,
    }

    impl H {
        fn new() -> Self {
            Self {
                dec: Http1Decoder::new(),
                c: Counters::default(),
                out: Vec::new(),
            }
        }
        fn ev(&mut self, dir: StreamDir, ev: StreamEvent<'_>, ts_ns: u64) {
            let cfg = L7Config::default();
            let mut ids = IdGenerator::new(1);
            let mut cx = L7Context {
                counters: &mut self.c,
                ids: &mut ids,
                config: &cfg,
            };
            let at = PacketCtx {
                ts_ns,
                ..Default::default()
            };
            self.dec.on_event(dir, ev, &at, &mut cx, &mut self.out);
        }
        fn req(&mut self, b: &[u8], ts: u64) {
            self.ev(StreamDir::ToServer, StreamEvent::Data(b), ts);
        }
        fn resp(&mut self, b: &[u8], ts: u64) {
            self.ev(StreamDir::ToClient, StreamEvent::Data(b), ts);
        }
        fn finish(&mut self) {
            let cfg = L7Config::default();
            let mut ids = IdGenerator::new(1);
            let mut cx = L7Context {
                counters: &mut self.c,
                ids: &mut ids,
                config: &cfg,
            };
            self.dec.finish(10_000, &mut cx, &mut self.out);
        }
        fn dns(&self) -> Vec<&DnsEvent> {
            self.out
                .iter()
                .filter_map(|e| match e {
                    L7Event::Dns(d) => Some(&**d),
                    _ => None,
                })
                .collect()
        }
        /// `(status, request body size)` of every HTTP exchange.
        fn exchanges(&self) -> Vec<(Option<u16>, Option<u64>)> {
            self.out
                .iter()
                .filter_map(|e| match e {
                    L7Event::Http1(Http1Event::Exchange {
                        response,
                        request_body,
                        ..
                    }) => Some((response.status, request_body.size)),
                    _ => None,
                })
                .collect()
        }
    }

    fn post(body: &[u8]) -> Vec<u8> {
        let mut m = format!(
            "POST /dns-query HTTP/1.1\r\nHost: doh.test\r\nContent-Type: application/dns-message\r\n\
             Accept: application/dns-message\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        m.extend_from_slice(body);
        m
    }

    fn answer(body: &[u8]) -> Vec<u8> {
        let mut m = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/dns-message\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        m.extend_from_slice(body);
        m
    }

    fn query() -> Vec<u8> {
        build::query(0, "doh.example.", 1)
    }

    fn response() -> Vec<u8> {
        build::a_response(0, "doh.example.", 0, &[[192, 0, 2, 53]], 300)
    }

    #[test]
    fn post_bodies_are_a_dns_query_and_its_answer() {
        // RFC 8484 §4.1 (POST, ID 0) and §4.2 (the answer in a 200 of the same type).
        let mut h = H::new();
        let req = post(&query());
        h.req(&req[..req.len() - 5], 100);
        h.req(&req[req.len() - 5..], 150);
        h.resp(&answer(&response()), 400);
        let dns = h.dns();
        assert_eq!(dns.len(), 2);
        assert_eq!((dns[0].kind, dns[0].at.ts_ns), (L7Type::Request, 150));
        assert_eq!(dns[0].info.query, "doh.example.");
        assert_eq!(
            (dns[1].kind, dns[1].latency_ns),
            (L7Type::Response, Some(250))
        );
        assert_eq!(
            dns[1].info.ips,
            vec!["192.0.2.53".parse::<std::net::IpAddr>().unwrap()]
        );
        assert_eq!(dns[1].dir, StreamDir::ToClient);
        // The HTTP exchange is reported as ever.
        assert_eq!(h.exchanges(), vec![(Some(200), Some(query().len() as u64))]);
        assert_eq!((h.c.dns_doh_messages, h.dec.buffered()), (2, 0));
    }

    #[test]
    fn pipelined_exchanges_pair_by_order_not_by_id() {
        // RFC 9112 §9.3: answers come in request order; every DoH ID is 0 (RFC 8484 §4.1).
        let mut h = H::new();
        let mut reqs = post(&build::query(0, "a.example.", 1));
        reqs.extend(post(&build::query(0, "b.example.", 1)));
        h.req(&reqs, 100);
        let mut resps = answer(&build::a_response(
            0,
            "a.example.",
            0,
            &[[192, 0, 2, 1]],
            60,
        ));
        resps.extend(answer(&build::a_response(0, "b.example.", 3, &[], 60)));
        h.resp(&resps[..resps.len() - 7], 300);
        h.resp(&resps[resps.len() - 7..], 500);
        let got: Vec<_> = h
            .dns()
            .iter()
            .map(|d| (d.kind, d.info.query.clone(), d.info.rcode, d.latency_ns))
            .collect();
        assert_eq!(
            got,
            vec![
                (L7Type::Request, "a.example.".into(), None, None),
                (L7Type::Request, "b.example.".into(), None, None),
                (L7Type::Response, "a.example.".into(), Some(0), Some(200)),
                (L7Type::Response, "b.example.".into(), Some(3), Some(400)),
            ]
        );
    }

    #[test]
    fn chunked_bodies_are_decoded_before_capture() {
        // RFC 9112 §7.1: the DNS message is the chunk-data, not the framing around it.
        let mut h = H::new();
        let q = query();
        let mut req =
            b"POST /dns-query HTTP/1.1\r\nHost: d\r\nContent-Type: application/dns-message\r\n\
                        Transfer-Encoding: chunked\r\n\r\n"
                .to_vec();
        req.extend(format!("{:x}\r\n", 5).bytes());
        req.extend(&q[..5]);
        req.extend(format!("\r\n{:x}\r\n", q.len() - 5).bytes());
        req.extend(&q[5..]);
        req.extend(b"\r\n0\r\n\r\n");
        for (i, part) in req.chunks(7).enumerate() {
            h.req(part, i as u64);
        }
        h.resp(&answer(&response()), 1000);
        assert_eq!(h.dns().len(), 2);
        assert!(h.dns()[1].latency_ns.is_some());
        assert_eq!(h.c.dns_doh_malformed_messages, 0);
    }

    #[test]
    fn get_queries_come_from_the_dns_parameter() {
        // RFC 8484 §4.1.1's GET example.
        let mut h = H::new();
        h.req(
            b"GET /dns-query?dns=AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB HTTP/1.1\r\n\
              Host: doh.test\r\nAccept: application/dns-message\r\n\r\n",
            10,
        );
        let r = build::a_response(0, "www.example.com.", 0, &[[192, 0, 2, 80]], 60);
        h.resp(&answer(&r), 30);
        let dns = h.dns();
        assert_eq!(dns.len(), 2);
        assert_eq!(dns[0].info.query, "www.example.com.");
        assert_eq!(dns[1].latency_ns, Some(20));
        assert_eq!(h.exchanges(), vec![(Some(200), Some(0))]);
    }

    #[test]
    fn an_answer_before_its_query_body_ends_waits_for_it() {
        // The capture may deliver the response first (directions on different CPUs).
        let mut h = H::new();
        let req = post(&query());
        let split = req.len() - 3;
        h.req(&req[..split], 10);
        h.resp(&answer(&response()), 20);
        assert!(h.dns().is_empty());
        h.req(&req[split..], 15);
        let dns = h.dns();
        assert_eq!(dns.len(), 2);
        assert_eq!((dns[0].kind, dns[1].latency_ns), (L7Type::Request, Some(5)));
        assert!(!dns[1].info.response_only);
    }

    #[test]
    fn bad_bodies_are_counted_and_the_exchanges_go_on() {
        let mut h = H::new();
        // Not a DNS message.
        h.req(&post(b"not dns at all"), 1);
        h.resp(&answer(&response()), 2);
        // Longer than a DNS message can be (RFC 1035 §4.2.2: 16-bit length).
        let big = vec![0u8; 70_000];
        h.req(&post(&big), 3);
        h.resp(&answer(b""), 4);
        // Cut by a capture gap.
        let req = post(&query());
        h.req(&req[..req.len() - 4], 5);
        h.ev(StreamDir::ToServer, StreamEvent::Gap { len: 4 }, 6);
        h.resp(&answer(&response()), 7);
        h.finish();
        assert_eq!(h.exchanges().len(), 3);
        assert_eq!(
            (
                h.c.dns_doh_malformed_messages,
                h.c.dns_doh_bodies_too_long,
                h.c.dns_doh_bodies_incomplete
            ),
            (1, 1, 1),
            "the bad query (an empty answer is no body to decode); the big body; the gap"
        );
        // Answers whose query was lost are still DNS, without latency.
        assert!(h
            .dns()
            .iter()
            .all(|d| d.kind == L7Type::Response && d.info.response_only));
        assert_eq!(h.dns().len(), 2);
    }

    #[test]
    fn other_bodies_are_not_captured() {
        let mut h = H::new();
        h.req(
            b"POST /api HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n",
            1,
        );
        h.req(&[b'{'; 200], 2);
        assert_eq!(h.dec.buffered(), 0);
        h.req(&[b'}'; 200], 3);
        h.req(
            b"GET /lookup?dns=example.com HTTP/1.1\r\nHost: h\r\n\r\n",
            4,
        );
        assert!(h.dns().is_empty());
        assert_eq!(h.c.dns_doh_malformed_messages, 0);
    }
}
