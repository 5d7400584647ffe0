//! DNS over HTTPS (RFC 8484) on HTTP/2 streams seen in cleartext (h2c): a request or response
//! whose `content-type` is `application/dns-message` has its DATA captured (bounded per
//! message by [`crate::l7::dns::doh`], and charged to the connection's stream-state budget),
//! a GET's `:path` `dns` parameter is decoded, and the DNS messages are reported as DNS
//! flows when each side ends its stream (END_STREAM, RFC 9113 §8.1). The stream is reported
//! as ever. Other streams capture nothing.

use super::stream::FieldSummary;
use super::Http2Decoder;
use crate::l7::dns::doh::{self, BodyCapture};
use crate::l7::{L7Context, L7Event, PacketCtx, StreamDir};

/// The DoH state of one stream.
#[derive(Debug, Default)]
pub(crate) struct StreamDoh {
    /// Per role (client, server): the body being captured, when its content type said DNS.
    bodies: [Option<BodyCapture>; 2],
    /// When the stream's DNS query was whole, for the answer's latency.
    query_ns: Option<u64>,
}

impl StreamDoh {
    /// Whether role `role`'s DATA is being captured.
    pub(crate) fn capturing(&self, role: usize) -> bool {
        self.bodies[role].is_some()
    }

    /// Swaps the roles (the connection's client turned out to be the other side).
    pub(crate) fn swap_roles(&mut self) {
        self.bodies.swap(0, 1);
    }
}

/// Which way role `role` (0 client, 1 server) sends.
fn dir_of_role(role: usize) -> StreamDir {
    if role == 0 {
        StreamDir::ToServer
    } else {
        StreamDir::ToClient
    }
}

impl Http2Decoder {
    /// A field block of stream `sid` from role `role` was decoded, its content-type DNS
    /// (`dns_message`, RFC 8484 §4.2.1, see [`doh::is_dns_message`]) or not: starts capturing
    /// that side's DATA when it is. For a client's GET, reports the query in the `dns`
    /// parameter of `path` (RFC 8484 §4.1).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn doh_head(
        &mut self,
        sid: u32,
        role: usize,
        dns_message: bool,
        get_path: Option<&str>,
        fields: &FieldSummary,
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        let Some(s) = self.streams.get_mut(&sid) else {
            return;
        };
        if dns_message {
            s.doh.bodies[role].get_or_insert_with(BodyCapture::new);
            return;
        }
        let Some(path) = get_path.filter(|p| role == 0 && doh::dns_parameter(p).is_some()) else {
            return;
        };
        let accepts_dns = fields
            .value_text("accept")
            .is_some_and(|v| doh::accepts_dns_message(v.as_bytes()));
        if let Some(ev) = doh::get_query_event(path, accepts_dns, at, cx) {
            s.doh.query_ns = Some(at.ts_ns);
            out.push(L7Event::Dns(Box::new(ev)));
        }
    }

    /// DATA bytes of stream `sid` from role `role`: kept when that side is a DNS message.
    /// Over the connection's budget (`h2_max_stream_state_bytes`), the capture is given up.
    pub(super) fn doh_data(&mut self, sid: u32, role: usize, bytes: &[u8]) {
        let over = self.stream_bytes + bytes.len() > self.max_stream_bytes;
        let Some(s) = self.streams.get_mut(&sid) else {
            return;
        };
        let Some(body) = s.doh.bodies[role].as_mut() else {
            return;
        };
        let before = body.buffered();
        if over {
            body.over_memory_cap();
        } else {
            body.push(bytes);
        }
        let after = body.buffered();
        s.bytes = s.bytes + after - before;
        self.stream_bytes = self.stream_bytes + after - before;
    }

    /// Stream `sid` lost bytes of role `role`'s DATA: its DNS message cannot be decoded.
    pub(super) fn doh_gap(&mut self, sid: u32, role: usize) {
        if let Some(s) = self.streams.get_mut(&sid) {
            self.stream_bytes -= s.doh_gap(role);
        }
    }

    /// Direction `role` lost frames (a gap or a search for a frame boundary): every DNS
    /// message it was sending is spoiled.
    pub(super) fn doh_gap_all(&mut self, role: usize) {
        let mut freed = 0;
        for s in self.streams.values_mut() {
            freed += s.doh_gap(role);
        }
        self.stream_bytes -= freed;
    }

    /// Role `role` ended stream `sid` at `at` (END_STREAM): reports its DNS message.
    pub(super) fn doh_side_end(
        &mut self,
        sid: u32,
        role: usize,
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        let Some(s) = self.streams.get_mut(&sid) else {
            return;
        };
        let Some(body) = s.doh.bodies[role].take() else {
            return;
        };
        s.bytes -= body.buffered();
        self.stream_bytes -= body.buffered();
        let query_ns = if role == 0 { None } else { s.doh.query_ns };
        if let Some(ev) = doh::body_event(&body, dir_of_role(role), at, query_ns, cx) {
            if role == 0 {
                s.doh.query_ns = Some(at.ts_ns);
            }
            out.push(L7Event::Dns(Box::new(ev)));
        }
    }
}

impl super::stream::Stream {
    /// Spoils role `role`'s DNS message; returns the bytes freed.
    pub(super) fn doh_gap(&mut self, role: usize) -> usize {
        let Some(body) = self.doh.bodies[role].as_mut() else {
            return 0;
        };
        let freed = body.buffered();
        body.gap();
        self.bytes -= freed;
        freed
    }

    /// The stream is over: a DNS message a side had not ended is counted as cut.
    pub(crate) fn doh_close(&mut self, cx: &mut L7Context<'_>) {
        for body in self.doh.bodies.iter_mut().filter_map(Option::take) {
            let mut body = body;
            body.gap();
            let _ = body.message(cx.counters);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::frame::encode::frame;
    use super::super::hpack::encode as hp;
    use super::super::{Http2Event, StreamEnd, PREFACE};
    use super::*;
    use crate::counters::Counters;
    use crate::l7::dns::message::build;
    use crate::l7::dns::DnsEvent;
    use crate::l7::{L7Config, StreamDecoder};
    use crate::record::L7Type;
    use crate::tcp::StreamEvent;
    use crate::trace::IdGenerator;

    const DATA: u8 = 0;
    const HEADERS: u8 = 1;
    const RST_STREAM: u8 = 3;
    const SETTINGS: u8 = 4;
    const ES: u8 = 0x1;
    const EH: u8 = 0x4;

    struct H {
        dec: Http2Decoder,
        c: Counters,
        cfg: L7Config,
        out: Vec<L7Event>,
        ts: u64,
    }

    impl H {
        fn with(cfg: L7Config) -> Self {
            let mut h = Self {
                dec: Http2Decoder::with_preface(&cfg),
                c: Counters::default(),
                cfg,
                out: Vec::new(),
                ts: 0,
            };
            let mut hello = PREFACE.to_vec();
            hello.extend(frame(SETTINGS, 0, 0, &[]));
            h.client(&hello);
            h
        }
        fn ev(&mut self, dir: StreamDir, ev: StreamEvent<'_>) {
            self.ts += 10;
            let mut ids = IdGenerator::new(1);
            let mut cx = L7Context {
                counters: &mut self.c,
                ids: &mut ids,
                config: &self.cfg,
            };
            let at = PacketCtx {
                ts_ns: self.ts,
                ..Default::default()
            };
            self.dec.on_event(dir, ev, &at, &mut cx, &mut self.out);
        }
        fn client(&mut self, b: &[u8]) {
            self.ev(StreamDir::ToServer, StreamEvent::Data(b));
        }
        fn server(&mut self, b: &[u8]) {
            self.ev(StreamDir::ToClient, StreamEvent::Data(b));
        }
        fn finish(&mut self) {
            let mut ids = IdGenerator::new(1);
            let mut cx = L7Context {
                counters: &mut self.c,
                ids: &mut ids,
                config: &self.cfg,
            };
            self.dec.finish(1_000_000, &mut cx, &mut self.out);
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
        fn streams(&self) -> Vec<(u32, Option<u16>, StreamEnd)> {
            self.out
                .iter()
                .filter_map(|e| match e {
                    L7Event::Http2(Http2Event::Stream(s)) => Some((
                        s.stream_id,
                        s.response.as_ref().and_then(|r| r.status),
                        s.end,
                    )),
                    _ => None,
                })
                .collect()
        }
    }

    fn block(fields: &[(&str, &str)]) -> Vec<u8> {
        let mut b = Vec::new();
        for (n, v) in fields {
            hp::literal(&mut b, n, v, false);
        }
        b
    }

    fn post_head() -> Vec<u8> {
        block(&[
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/dns-query"),
            (":authority", "doh.test"),
            ("content-type", "application/dns-message"),
            ("accept", "application/dns-message"),
        ])
    }

    fn answer_head() -> Vec<u8> {
        block(&[
            (":status", "200"),
            ("content-type", "application/dns-message"),
        ])
    }

    fn query() -> Vec<u8> {
        build::query(0, "h2.doh.example.", 28)
    }

    fn response() -> Vec<u8> {
        build::a_response(0, "h2.doh.example.", 0, &[[198, 51, 100, 7]], 60)
    }

    #[test]
    fn stream_data_carries_the_query_and_its_answer() {
        // RFC 8484 §4.1 POST over h2c, the message split over two DATA frames.
        let mut h = H::with(L7Config::default());
        let q = query();
        h.client(&frame(HEADERS, EH, 1, &post_head()));
        h.client(&frame(DATA, 0, 1, &q[..10]));
        h.client(&frame(DATA, ES, 1, &q[10..]));
        h.server(&frame(HEADERS, EH, 1, &answer_head()));
        h.server(&frame(DATA, ES, 1, &response()));
        let dns = h.dns();
        assert_eq!(dns.len(), 2);
        assert_eq!(
            (dns[0].kind, dns[0].info.query.as_str()),
            (L7Type::Request, "h2.doh.example.")
        );
        assert_eq!(dns[1].latency_ns, Some(dns[1].at.ts_ns - dns[0].at.ts_ns));
        assert_eq!(dns[1].dir, StreamDir::ToClient);
        assert_eq!(h.streams(), [(1, Some(200), StreamEnd::Complete)]);
        assert_eq!(
            h.dec.stream_bytes, 0,
            "captures are released with the stream"
        );
    }

    #[test]
    fn get_paths_carry_the_query() {
        let mut h = H::with(L7Config::default());
        let head = block(&[
            (":method", "GET"),
            (":scheme", "http"),
            (
                ":path",
                "/dns-query?dns=AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB",
            ),
            (":authority", "doh.test"),
        ]);
        h.client(&frame(HEADERS, EH | ES, 3, &head));
        h.server(&frame(HEADERS, EH, 3, &answer_head()));
        let r = build::a_response(0, "www.example.com.", 0, &[[192, 0, 2, 1]], 60);
        h.server(&frame(DATA, ES, 3, &r));
        let dns = h.dns();
        assert_eq!(dns.len(), 2);
        assert_eq!(dns[0].info.query, "www.example.com.");
        assert_eq!(dns[1].latency_ns, Some(20));
    }

    #[test]
    fn cut_and_oversized_messages_are_counted() {
        let mut h = H::with(L7Config {
            h2_max_stream_state_bytes: 2048,
            ..L7Config::default()
        });
        // Reset before the query ended.
        h.client(&frame(HEADERS, EH, 1, &post_head()));
        h.client(&frame(DATA, 0, 1, &query()[..5]));
        h.client(&frame(RST_STREAM, 0, 1, &8u32.to_be_bytes()));
        // Lost in a gap inside DATA.
        h.client(&frame(HEADERS, EH, 3, &post_head()));
        let d = frame(DATA, ES, 3, &query());
        h.client(&d[..12]);
        h.ev(StreamDir::ToServer, StreamEvent::Gap { len: 4 });
        h.client(&d[16..]);
        // Over the connection's stream-state budget.
        h.client(&frame(HEADERS, EH, 5, &post_head()));
        h.client(&frame(DATA, ES, 5, &[0u8; 4000]));
        h.finish();
        assert!(h.dns().is_empty());
        assert_eq!(
            (
                h.c.dns_doh_bodies_incomplete,
                h.c.dns_doh_bodies_over_memory_cap
            ),
            (2, 1)
        );
        assert_eq!(h.streams().len(), 3, "the streams are reported as ever");
        assert_eq!(h.dec.stream_bytes, 0);
    }
}
