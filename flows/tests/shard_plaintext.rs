//! TLS plaintext in a sharded run ([`flows::shard`]): each chunk goes to the worker holding its
//! connection's packets ([`Dispatcher::route_plaintext`]), in order with them, so 2 and 3
//! workers (several hash seeds) report what one engine reports for interleaved TLS
//! connections whose plaintext comes from both local ends: the same records in the same order
//! (generated ids aside: each worker has its own id stream) and the same counters.

mod support;

use flows::counters::Counters;
use flows::engine::{Engine, EngineConfig, L4Records, PlaintextChunk};
use flows::key::Endpoint;
use flows::packet::LinkType;
use flows::record::L7Source;
use flows::shard::{worker_config, Dispatcher, Merger, Route};
use flows::synth::{SynthFrame, TcpConversation};
use serde_json::Value;
use support::masked;

const SERVER: &str = "10.9.0.2:443";

/// A TLS record of `ty` (RFC 8446 §5.1) with `body` as its fragment.
fn record(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut r = vec![ty, 3, 3];
    r.extend((body.len() as u16).to_be_bytes());
    r.extend(body);
    r
}

/// What the engine is fed: a captured frame, or a chunk of plaintext (local end, remote end,
/// sent, bytes) at a time.
enum Input {
    Frame(SynthFrame),
    Plain {
        ts_ns: u64,
        local: Endpoint,
        remote: Endpoint,
        sent: bool,
        data: Vec<u8>,
    },
}

impl Input {
    fn ts(&self) -> u64 {
        match self {
            Input::Frame(f) => f.ts_ns,
            Input::Plain { ts_ns, .. } => *ts_ns,
        }
    }

    fn chunk(&self) -> Option<PlaintextChunk<'_>> {
        match self {
            Input::Plain {
                ts_ns,
                local,
                remote,
                sent,
                data,
            } => Some(PlaintextChunk {
                ts_ns: *ts_ns,
                local: *local,
                remote: *remote,
                sent: *sent,
                data,
                missing: 0,
                source: L7Source::OpensslUprobe,
                socket_cookie: None,
            }),
            Input::Frame(_) => None,
        }
    }
}

fn ep(s: &str) -> Endpoint {
    let a: std::net::SocketAddr = s.parse().unwrap();
    Endpoint {
        addr: a.ip(),
        port: a.port(),
    }
}

/// `n` TLS connections started 30 µs apart (so they interleave), each: handshake, hellos, one
/// encrypted request and response, close. The client's plaintext of each comes right after
/// its record; on every other connection the server's too (the other local end: counted,
/// not decoded).
fn inputs(n: u16) -> Vec<Input> {
    let mut all = Vec::new();
    for i in 0..n {
        let client = format!("10.9.0.1:{}", 40000 + i);
        let mut c = TcpConversation::new(
            client.parse().unwrap(),
            SERVER.parse().unwrap(),
            1000 + u32::from(i),
            9000,
            1_000_000 + u64::from(i) * 30_000,
        );
        let last = |c: &TcpConversation| c.frames().last().map_or(0, |f| f.ts_ns);
        let mut plain = Vec::new();
        c.handshake();
        c.client_send(&record(22, &[1, 0, 0, 60, 3, 3, 7, 7]), 1400);
        c.server_send(&record(22, &[2, 0, 0, 60, 3, 3, 8, 8]), 1400);
        let request = format!("GET /item/{i} HTTP/1.1\r\nHost: shop.test\r\n\r\n");
        c.client_send(&record(23, b"\x9a\x12 encrypted request"), 1400);
        // (time, the client's end (else the server's), sent (else received), bytes)
        plain.push((last(&c) + 1, true, true, request.clone().into_bytes()));
        if i % 2 == 0 {
            plain.push((last(&c) + 2, false, false, request.into_bytes()));
        }
        let response = format!("HTTP/1.1 {} OK\r\nContent-Length: 2\r\n\r\nok", 200 + i % 3);
        c.server_send(&record(23, b"\x33\x44 encrypted response"), 1400);
        plain.push((last(&c) + 1, true, false, response.into_bytes()));
        c.close();
        for (ts_ns, client_end, sent, data) in plain {
            let (local, remote) = if client_end {
                (ep(&client), ep(SERVER))
            } else {
                (ep(SERVER), ep(&client))
            };
            all.push(Input::Plain {
                ts_ns,
                local,
                remote,
                sent,
                data,
            });
        }
        all.extend(c.into_frames().into_iter().map(Input::Frame));
    }
    all.sort_by_key(Input::ts);
    all
}

fn config() -> EngineConfig {
    EngineConfig {
        l4_records: L4Records::EveryPacket,
        id_seed: 1,
        spans: true,
        ..EngineConfig::default()
    }
}

fn single(inputs: &[Input]) -> (Vec<Value>, Counters) {
    let mut e = Engine::new(config());
    let mut out = Vec::new();
    let mut last = 0;
    for input in inputs {
        match input {
            Input::Frame(f) => {
                let _ = e.handle_frame(f.ts_ns, LinkType::Ethernet, &f.data, f.capture_meta());
            }
            Input::Plain { ts_ns, .. } => e.handle_plaintext(*ts_ns, &input.chunk().unwrap()),
        }
        out.extend(std::iter::from_fn(|| e.poll_record()).map(|r| masked(&r)));
        last = input.ts();
    }
    e.flush(last);
    out.extend(std::iter::from_fn(|| e.poll_record()).map(|r| masked(&r)));
    (out, e.counters().clone())
}

/// The same inputs through `n` workers in one thread (the agent runs these steps on worker
/// threads, observer/src/workers.rs). Also returns each worker's counters.
fn sharded(inputs: &[Input], n: usize, seed: u64) -> (Vec<Value>, Counters, Vec<Counters>) {
    let base = config();
    let mut d = Dispatcher::new(n, &base, seed);
    let mut engines: Vec<Engine> = (0..n)
        .map(|i| Engine::new(worker_config(&base, n, i)))
        .collect();
    let mut merger = Merger::new(n);
    let (mut seq, mut last) = (0u64, 0);
    let mut out = Vec::new();
    for input in inputs {
        seq += 1;
        let w = match input {
            Input::Frame(f) => {
                match d.route(f.ts_ns, LinkType::Ethernet, &f.data, f.capture_meta()) {
                    Route::Frame(w) => {
                        let _ = engines[w].handle_frame(
                            f.ts_ns,
                            LinkType::Ethernet,
                            &f.data,
                            f.capture_meta(),
                        );
                        w
                    }
                    other => panic!("no fragments here: {other:?}"),
                }
            }
            Input::Plain { ts_ns, .. } => {
                let chunk = input.chunk().unwrap();
                let w = d.route_plaintext(&chunk);
                engines[w].handle_plaintext(*ts_ns, &chunk);
                w
            }
        };
        while let Some(r) = engines[w].poll_record() {
            merger.push(w, seq, masked(&r));
        }
        for w in 0..n {
            merger.advance(w, seq);
        }
        out.extend(std::iter::from_fn(|| merger.pop()));
        last = input.ts();
    }
    seq += 1;
    d.flush();
    for (w, e) in engines.iter_mut().enumerate() {
        e.flush(last);
        while let Some(r) = e.poll_record() {
            merger.push(w, seq, masked(&r));
        }
        merger.advance(w, seq);
    }
    out.extend(std::iter::from_fn(|| merger.pop()));
    let mut counters = d.counters().clone();
    for e in &engines {
        counters.add(e.counters());
    }
    let each = engines.iter().map(|e| e.counters().clone()).collect();
    (out, counters, each)
}

#[test]
fn workers_decode_tls_plaintext_as_one_engine_does() {
    let inputs = inputs(24);
    let (expected, one) = single(&inputs);
    // The plaintext was decoded, joined to its connections: 24 requests and responses.
    let http = |v: &[Value]| {
        v.iter()
            .map(|r| &r["flow"]["l7"]["http"])
            .filter(|h| h.is_object())
            .map(|h| {
                (
                    h["url"].as_str().unwrap_or("").to_string(),
                    h["code"].as_u64().unwrap_or(0),
                )
            })
            .collect::<Vec<_>>()
    };
    let got_one = http(&expected);
    assert_eq!(got_one.len(), 48, "{got_one:?}");
    assert!(got_one.contains(&("https://shop.test/item/7".to_string(), 201)));
    assert_eq!(one.tls_plaintext_no_flow, 0);
    assert_eq!(one.tls_plaintext_other_end, 12);
    assert_eq!(one.tls_plaintext_flows, 24);
    for n in [2, 3] {
        for seed in [1, 7, 99] {
            let (got, counters, each) = sharded(&inputs, n, seed);
            assert_eq!(got, expected, "{n} workers, seed {seed}");
            assert_eq!(counters, one, "{n} workers, seed {seed}");
            assert!(
                each.iter().all(|c| c.tls_plaintext_chunks > 0),
                "every worker decoded plaintext: {n} workers, seed {seed}"
            );
        }
    }
}
