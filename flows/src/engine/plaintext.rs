//! The engine's second input: TLS plaintext, as a process handed it to its TLS library or
//! got it back (the agent reads it with uprobes on OpenSSL, see the `ebpf-tls` crate).
//!
//! A chunk names its TCP socket by its two ends, which finds the connection the captured
//! packets made. From the first chunk on, the connection's decoder is a
//! [`PlaintextSlot`](crate::l7::tls::PlaintextSlot): the plaintext goes through the same
//! detection and HTTP/1, HTTP/2 and gRPC decoders as cleartext packets do, while the packets
//! keep driving reassembly, health and L3/L4 records, their TLS records decoded no further.
//! The flows it makes say so ([`Flow::l7_source`](crate::record::Flow::l7_source)).

use std::collections::VecDeque;

use super::{attach_health, drain_events, Engine, FlowView};
use crate::key::{Endpoint, FlowKey};
use crate::l7::tls::PlaintextSlot;
use crate::l7::{L7Context, L7Protocol, PacketCtx};
use crate::packet::{CaptureMeta, Direction};
use crate::record::{L7Record, L7Source, Record};
use crate::table::{ConnState, L7Slot};
use crate::tcp::StreamEvent;

/// IP protocol number of TCP: TLS plaintext is always a TCP connection's here.
const TCP: u8 = 6;

/// One call's worth of plaintext a process sent or received through its TLS library.
#[derive(Debug, Clone, Copy)]
pub struct PlaintextChunk<'a> {
    /// When the call returned (same clock as the packets' capture times).
    pub ts_ns: u64,
    /// The process's end of the TCP connection.
    pub local: Endpoint,
    /// The other end.
    pub remote: Endpoint,
    /// True when the process sent the bytes (`SSL_write`), false when it received them.
    pub sent: bool,
    /// The bytes copied (the first ones the call moved).
    pub data: &'a [u8],
    /// Bytes the call moved beyond `data` (over the per-call copy cap): a gap of known length.
    pub missing: u64,
    /// How the plaintext was read.
    pub source: L7Source,
    /// The local socket's cookie, when known.
    pub socket_cookie: Option<u64>,
}

impl Engine {
    /// Ingests one chunk of TLS plaintext. Call it after the packets captured before the
    /// chunk's time (its TLS records travel in them), then drain [`Engine::poll_record`].
    /// A chunk for a connection the table does not hold is counted (`tls_plaintext_no_flow`)
    /// and dropped; one from the other local end of a connection already fed by its first end
    /// is counted (`tls_plaintext_other_end`) and dropped.
    pub fn handle_plaintext(&mut self, now_ns: u64, chunk: &PlaintextChunk<'_>) {
        let (sender, receiver) = if chunk.sent {
            (chunk.local, chunk.remote)
        } else {
            (chunk.remote, chunk.local)
        };
        let (key, side) = FlowKey::new(TCP, sender, receiver);
        let (_, local_side) = FlowKey::new(TCP, chunk.local, chunk.remote);
        let Self {
            config,
            table,
            counters,
            ids,
            queue,
            total_buffered,
            events,
            ..
        } = self;
        let Some(entry) = table.get_mut(&key) else {
            counters.tls_plaintext_no_flow += 1;
            return;
        };
        let dir = entry.dir_of(side);
        let ConnState::Tcp(conn) = &mut entry.state else {
            counters.tls_plaintext_no_flow += 1;
            return;
        };
        let slot = match &mut conn.l7 {
            L7Slot::Plaintext(p) if p.from != local_side => {
                counters.tls_plaintext_other_end += 1;
                return;
            }
            L7Slot::Plaintext(p) => p,
            other => {
                // Whatever the ciphertext was given to (TLS recognised, or nothing yet) is
                // dropped unfinished: it made no records, and this connection is no blind spot.
                counters.tls_plaintext_flows += 1;
                *other = L7Slot::Plaintext(Box::new(PlaintextSlot::new(local_side, chunk.source)));
                let L7Slot::Plaintext(p) = other else {
                    unreachable!("just set");
                };
                p
            }
        };
        counters.tls_plaintext_chunks += 1;
        entry.last_seen_ns = entry.last_seen_ns.max(now_ns);
        let len = chunk.data.len() as u64 + chunk.missing;
        let at = PacketCtx {
            ts_ns: chunk.ts_ns,
            meta: CaptureMeta {
                ts_ns: chunk.ts_ns,
                ifindex: 0,
                direction: if chunk.sent {
                    Direction::Egress
                } else {
                    Direction::Ingress
                },
                orig_len: u32::try_from(len).unwrap_or(u32::MAX),
                socket_cookie: chunk.socket_cookie,
            },
        };
        let mut cx = L7Context {
            counters,
            ids,
            config: &config.l7,
        };
        if !chunk.data.is_empty() {
            slot.inner
                .on_event(dir, StreamEvent::Data(chunk.data), &at, &mut cx, events);
        }
        if chunk.missing > 0 {
            cx.counters.tls_plaintext_truncated_bytes += chunk.missing;
            let gap = StreamEvent::Gap { len: chunk.missing };
            slot.inner.on_event(dir, gap, &at, &mut cx, events);
        }
        let now_buffered = conn.buffered();
        *total_buffered = *total_buffered - entry.accounted + now_buffered;
        entry.accounted = now_buffered;
        let view = FlowView {
            key,
            server: entry.server,
            socket_cookie: entry.socket_cookie,
        };
        let queued_before = queue.len();
        drain_events(events, &view, config, counters, queue, ids);
        attach_health(queue, queued_before, &conn.health);
        mark_source(queue, queued_before, &conn.l7);
    }
}

/// A TLS connection that ended with no plaintext source: its ends, for the caller to name
/// their processes (a blind spot to show in `flowscope status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsBlindSpot {
    /// The end that opened the connection.
    pub client: Endpoint,
    /// The end that accepted it.
    pub server: Endpoint,
    /// The socket cookie its packets carried, if any.
    pub socket_cookie: Option<u64>,
}

/// Most blind spots held for [`Engine::take_tls_blind_spots`]; more are only counted
/// (`tls_flows_without_plaintext` counts them all).
const MAX_BLIND_SPOTS: usize = 1024;

impl Engine {
    /// The TLS connections that ended with no plaintext source since the last call (at most
    /// [`MAX_BLIND_SPOTS`]). Call after the `handle_*` calls, while the connections' owners
    /// are still known.
    pub fn take_tls_blind_spots(&mut self) -> Vec<TlsBlindSpot> {
        std::mem::take(&mut self.tls_blind_spots)
    }

    /// Whether [`Engine::take_tls_blind_spots`] has something.
    pub fn has_tls_blind_spots(&self) -> bool {
        !self.tls_blind_spots.is_empty()
    }
}

/// Notes the connection as a blind spot when its decoder is still the ciphertext's (no
/// plaintext took it over) as it ends; called just before its decoder is finished.
pub(super) fn note_blind_spot(
    out: &mut Vec<TlsBlindSpot>,
    view: &FlowView,
    l7: &L7Slot,
    counters: &mut crate::counters::Counters,
) {
    let L7Slot::Active(dec) = l7 else {
        return;
    };
    if dec.protocol() != L7Protocol::Tls {
        return;
    }
    if out.len() >= MAX_BLIND_SPOTS {
        counters.tls_blind_spots_not_named += 1;
        return;
    }
    out.push(TlsBlindSpot {
        client: view.client(),
        server: view.server(),
        socket_cookie: view.socket_cookie,
    });
}

/// Marks the L7 flows queued from `from` on with the plaintext source of `l7`, when it has
/// one. Their HTTP URLs get the `https` scheme: the HTTP/1 decoder writes `http://` for a
/// Host it saw in cleartext, but these bytes travelled inside TLS (RFC 9110 §4.2.2).
pub(super) fn mark_source(queue: &mut VecDeque<Record>, from: usize, l7: &L7Slot) {
    let L7Slot::Plaintext(p) = l7 else {
        return;
    };
    for record in queue.iter_mut().skip(from) {
        let Record::Flow(flow) = record else {
            continue;
        };
        let Some(l7) = flow.l7.as_mut() else {
            continue;
        };
        flow.l7_source = Some(p.source);
        if let L7Record::Http(http) = &mut l7.record {
            if let Some(rest) = http.url.strip_prefix("http://") {
                http.url = crate::l7::exchange::shared_concat(&["https://", rest]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::engine::{EngineConfig, L4Records};
    use crate::packet::LinkType;
    use crate::record::{Flow, L7Record, L7Type};
    use crate::synth::{SynthFrame, TcpConversation};

    const CLIENT: &str = "198.18.0.2:40000";
    const SERVER: &str = "198.18.0.1:443";

    fn ep(s: &str) -> Endpoint {
        let a: SocketAddr = s.parse().unwrap();
        Endpoint {
            addr: a.ip(),
            port: a.port(),
        }
    }

    /// A TLS record of `ty` (RFC 8446 §5.1) with `body` as its fragment.
    fn record(ty: u8, body: &[u8]) -> Vec<u8> {
        let mut r = vec![ty, 3, 3];
        r.extend((body.len() as u16).to_be_bytes());
        r.extend(body);
        r
    }

    /// Handshake, a ClientHello and ServerHello, one application-data record each way.
    fn tls_conversation() -> TcpConversation {
        let mut c = TcpConversation::new(
            CLIENT.parse().unwrap(),
            SERVER.parse().unwrap(),
            1000,
            9000,
            1_000_000,
        );
        c.handshake();
        c.client_send(&record(22, &[1, 0, 0, 60, 3, 3, 7, 7, 7, 7]), 1400);
        c.server_send(&record(22, &[2, 0, 0, 60, 3, 3, 8, 8, 8, 8]), 1400);
        c.client_send(&record(23, b"\x9a\x12 not http, encrypted"), 1400);
        c.server_send(&record(23, b"\x33\x44 also encrypted bytes"), 1400);
        c
    }

    fn feed(engine: &mut Engine, frames: &[SynthFrame], out: &mut Vec<Record>) {
        for f in frames {
            let meta = CaptureMeta {
                ts_ns: f.ts_ns,
                ifindex: 2,
                direction: f.direction,
                orig_len: f.data.len() as u32,
                socket_cookie: None,
            };
            engine
                .handle_frame(f.ts_ns, LinkType::Ethernet, &f.data, meta)
                .unwrap();
            out.extend(std::iter::from_fn(|| engine.poll_record()));
        }
    }

    fn chunk<'a>(
        ts_ns: u64,
        local: &str,
        remote: &str,
        sent: bool,
        data: &'a [u8],
    ) -> PlaintextChunk<'a> {
        PlaintextChunk {
            ts_ns,
            local: ep(local),
            remote: ep(remote),
            sent,
            data,
            missing: 0,
            source: L7Source::OpensslUprobe,
            socket_cookie: Some(77),
        }
    }

    fn engine() -> Engine {
        Engine::new(EngineConfig {
            l4_records: L4Records::Off,
            ..EngineConfig::default()
        })
    }

    fn http(records: &[Record]) -> Vec<(&Flow, L7Type, String, String, Option<u16>)> {
        records
            .iter()
            .filter_map(|r| match r {
                Record::Flow(f) => match &f.l7 {
                    Some(l7) => match &l7.record {
                        L7Record::Http(h) => Some((
                            &**f,
                            l7.r#type,
                            h.method.to_string(),
                            h.url.to_string(),
                            h.code,
                        )),
                        _ => None,
                    },
                    None => None,
                },
                _ => None,
            })
            .collect()
    }

    const REQUEST: &[u8] = b"GET /secret?q=1 HTTP/1.1\r\nHost: shop.test\r\n\r\n";
    const RESPONSE: &[u8] = b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";

    #[test]
    fn client_plaintext_decodes_the_tls_connection_even_after_its_fins() {
        let mut e = engine();
        let mut out = Vec::new();
        let mut conv = tls_conversation();
        feed(&mut e, conv.frames(), &mut out);
        let t = conv.frames().last().unwrap().ts_ns;
        e.handle_plaintext(t + 1, &chunk(t + 1, CLIENT, SERVER, true, REQUEST));
        out.extend(std::iter::from_fn(|| e.poll_record()));
        // The connection closes before the agent reads the response's plaintext.
        let before = conv.frames().len();
        conv.close();
        feed(&mut e, &conv.frames()[before..], &mut out);
        let t = conv.frames().last().unwrap().ts_ns;
        e.handle_plaintext(t + 1, &chunk(t + 1, CLIENT, SERVER, false, RESPONSE));
        e.flush(t + 10);
        out.extend(std::iter::from_fn(|| e.poll_record()));

        let flows = http(&out);
        let got: Vec<_> = flows
            .iter()
            .map(|(f, ty, m, u, c)| {
                (
                    f.traffic_direction,
                    *ty,
                    m.as_str(),
                    u.as_str(),
                    *c,
                    f.l7_source,
                )
            })
            .collect();
        let url = "https://shop.test/secret?q=1";
        let src = Some(L7Source::OpensslUprobe);
        assert_eq!(
            got,
            [
                (Direction::Egress, L7Type::Request, "GET", url, None, src),
                (
                    Direction::Ingress,
                    L7Type::Response,
                    "GET",
                    url,
                    Some(201),
                    src
                ),
            ]
        );
        // Roles come from the packets: the client sent the request.
        assert_eq!(flows[0].0.ip.source, ep(CLIENT).addr);
        assert_eq!(flows[0].0.socket_cookie, Some(77));
        let c = e.counters();
        assert!(!e.has_tls_blind_spots());
        assert_eq!(
            (
                c.tls_flows_on_wire,
                c.tls_plaintext_flows,
                c.tls_plaintext_chunks,
                c.tls_flows_without_plaintext,
                c.l7_unrecognised_flows
            ),
            (1, 1, 2, 0, 0)
        );
    }

    #[test]
    fn a_tls_connection_without_plaintext_is_a_counted_blind_spot() {
        let mut e = engine();
        let mut out = Vec::new();
        let mut conv = tls_conversation();
        conv.close();
        feed(&mut e, conv.frames(), &mut out);
        e.flush(conv.frames().last().unwrap().ts_ns + 10);
        out.extend(std::iter::from_fn(|| e.poll_record()));
        assert!(http(&out).is_empty(), "ciphertext decoded: {out:?}");
        assert_eq!(
            e.take_tls_blind_spots(),
            [TlsBlindSpot {
                client: ep(CLIENT),
                server: ep(SERVER),
                socket_cookie: None
            }]
        );
        assert!(!e.has_tls_blind_spots());
        let c = e.counters();
        assert_eq!(
            (
                c.tls_flows_on_wire,
                c.tls_flows_without_plaintext,
                c.l7_unrecognised_flows
            ),
            (1, 1, 0)
        );
    }

    #[test]
    fn the_second_local_end_is_not_decoded_twice() {
        let mut e = engine();
        let mut out = Vec::new();
        let conv = tls_conversation();
        feed(&mut e, conv.frames(), &mut out);
        let t = conv.frames().last().unwrap().ts_ns;
        // Both ends on this node: the client's write, then the server's read of it.
        e.handle_plaintext(t + 1, &chunk(t + 1, CLIENT, SERVER, true, REQUEST));
        e.handle_plaintext(t + 2, &chunk(t + 2, SERVER, CLIENT, false, REQUEST));
        e.handle_plaintext(t + 3, &chunk(t + 3, SERVER, CLIENT, true, RESPONSE));
        e.handle_plaintext(t + 4, &chunk(t + 4, CLIENT, SERVER, false, RESPONSE));
        e.flush(t + 10);
        out.extend(std::iter::from_fn(|| e.poll_record()));
        let kinds: Vec<_> = http(&out).iter().map(|x| (x.1, x.4)).collect();
        assert_eq!(
            kinds,
            [(L7Type::Request, None), (L7Type::Response, Some(201))]
        );
        assert_eq!(e.counters().tls_plaintext_other_end, 2);
    }

    #[test]
    fn a_truncated_call_is_a_gap_of_known_length() {
        let mut e = engine();
        let mut out = Vec::new();
        let conv = tls_conversation();
        feed(&mut e, conv.frames(), &mut out);
        let t = conv.frames().last().unwrap().ts_ns;
        e.handle_plaintext(t + 1, &chunk(t + 1, CLIENT, SERVER, true, REQUEST));
        // The response body was longer than the copy cap: 10 bytes were not copied.
        let mut resp = chunk(
            t + 2,
            CLIENT,
            SERVER,
            false,
            b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nok",
        );
        resp.missing = 10;
        e.handle_plaintext(t + 2, &resp);
        // The next exchange on the connection is found where the gap ends.
        e.handle_plaintext(t + 3, &chunk(t + 3, CLIENT, SERVER, true, REQUEST));
        e.handle_plaintext(t + 4, &chunk(t + 4, CLIENT, SERVER, false, RESPONSE));
        e.flush(t + 10);
        out.extend(std::iter::from_fn(|| e.poll_record()));
        let codes: Vec<_> = http(&out)
            .iter()
            .filter(|x| x.1 == L7Type::Response)
            .map(|x| x.4)
            .collect();
        assert_eq!(codes, [Some(200), Some(201)]);
        assert_eq!(e.counters().tls_plaintext_truncated_bytes, 10);
    }

    #[test]
    fn a_close_delimited_response_ends_at_the_fin_held_until_eviction() {
        let mut e = engine();
        let mut out = Vec::new();
        let mut conv = tls_conversation();
        feed(&mut e, conv.frames(), &mut out);
        let t = conv.frames().last().unwrap().ts_ns;
        e.handle_plaintext(t + 1, &chunk(t + 1, CLIENT, SERVER, true, REQUEST));
        // The FINs are captured before the client reads the response (RFC 9112 §6.3: an
        // HTTP/1.0 body without a length ends when the connection closes).
        let before = conv.frames().len();
        conv.close();
        feed(&mut e, &conv.frames()[before..], &mut out);
        let t = conv.frames().last().unwrap().ts_ns;
        let resp = b"HTTP/1.0 200 ok\r\nContent-type: text/html\r\n\r\n<html>body</html>";
        e.handle_plaintext(t + 1, &chunk(t + 1, CLIENT, SERVER, false, resp));
        e.flush(t + 10);
        out.extend(std::iter::from_fn(|| e.poll_record()));
        let got: Vec<_> = http(&out)
            .iter()
            .map(|x| (x.1, x.4, x.0.l7_source))
            .collect();
        let src = Some(L7Source::OpensslUprobe);
        assert_eq!(
            got,
            [
                (L7Type::Request, None, src),
                (L7Type::Response, Some(200), src)
            ]
        );
    }

    #[test]
    fn plaintext_for_an_unknown_connection_is_counted() {
        let mut e = engine();
        e.handle_plaintext(5, &chunk(5, CLIENT, SERVER, true, REQUEST));
        assert!(e.poll_record().is_none());
        assert_eq!(e.counters().tls_plaintext_no_flow, 1);
    }
}
