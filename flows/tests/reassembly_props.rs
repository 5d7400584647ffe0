//! Property: any re-segmentation, reordering and duplication of the same TCP byte streams
//! yields the same HTTP records as in-order delivery.

mod support;

use flows::packet::{Direction, TcpFlags};
use flows::record::{attr, Record};
use flows::synth::{SynthFrame, TcpConversation};
use proptest::prelude::*;
use support::*;

#[derive(Debug, Clone)]
struct Exchange {
    method: &'static str,
    path: String,
    req_body: usize,
    status: u16,
    chunked: bool,
    resp_body: usize,
}

fn exchange() -> impl Strategy<Value = Exchange> {
    (
        prop::sample::select(vec!["GET", "POST", "PUT", "HEAD", "DELETE"]),
        "/[a-z]{1,8}",
        0usize..300,
        prop::sample::select(vec![200u16, 201, 204, 301, 404, 500]),
        any::<bool>(),
        0usize..2000,
    )
        .prop_map(
            |(method, path, req_body, status, chunked, resp_body)| Exchange {
                method,
                path,
                req_body: if method == "POST" || method == "PUT" {
                    req_body
                } else {
                    0
                },
                status,
                chunked,
                resp_body: if method == "HEAD" || status == 204 {
                    0
                } else {
                    resp_body
                },
            },
        )
}

fn client_stream(ex: &[Exchange]) -> Vec<u8> {
    let mut s = Vec::new();
    for e in ex {
        s.extend_from_slice(
            format!("{} {} HTTP/1.1\r\nHost: prop.test\r\n", e.method, e.path).as_bytes(),
        );
        if e.req_body > 0 {
            s.extend_from_slice(format!("Content-Length: {}\r\n", e.req_body).as_bytes());
        }
        s.extend_from_slice(b"\r\n");
        s.extend(std::iter::repeat_n(b'q', e.req_body));
    }
    s
}

fn server_stream(ex: &[Exchange]) -> Vec<u8> {
    let mut s = Vec::new();
    for e in ex {
        s.extend_from_slice(format!("HTTP/1.1 {} X\r\n", e.status).as_bytes());
        let body: Vec<u8> = (0..e.resp_body).map(|i| b'a' + (i % 26) as u8).collect();
        if e.chunked && e.resp_body > 0 {
            s.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            for c in body.chunks(97) {
                s.extend_from_slice(format!("{:x};ext=1\r\n", c.len()).as_bytes());
                s.extend_from_slice(c);
                s.extend_from_slice(b"\r\n");
            }
            s.extend_from_slice(b"0\r\nX-Trailer: t\r\n\r\n");
        } else if e.status == 204 {
            s.extend_from_slice(b"\r\n");
        } else {
            s.extend_from_slice(format!("Content-Length: {}\r\n\r\n", e.resp_body).as_bytes());
            if e.method != "HEAD" {
                s.extend_from_slice(&body);
            }
        }
    }
    s
}

/// How one direction's bytes are cut and delivered.
#[derive(Debug, Clone)]
struct Delivery {
    cuts: Vec<usize>,
    order_seed: Vec<usize>,
    dups: Vec<(usize, usize)>,
}

fn delivery() -> impl Strategy<Value = Delivery> {
    (
        prop::collection::vec(0usize..100_000, 0..30),
        prop::collection::vec(0usize..1000, 0..40),
        prop::collection::vec((0usize..100_000, 1usize..400), 0..6),
    )
        .prop_map(|(cuts, order_seed, dups)| Delivery {
            cuts,
            order_seed,
            dups,
        })
}

/// Segments `data` per `d`: random cuts, a permutation, and extra overlapping copies.
fn segments(data: &[u8], d: &Delivery) -> Vec<(usize, Vec<u8>)> {
    if data.is_empty() {
        return Vec::new();
    }
    let mut cuts: Vec<usize> = d
        .cuts
        .iter()
        .map(|c| c % data.len())
        .filter(|c| *c > 0)
        .collect();
    cuts.push(0);
    cuts.push(data.len());
    cuts.sort_unstable();
    cuts.dedup();
    let mut segs: Vec<(usize, Vec<u8>)> = cuts
        .windows(2)
        .map(|w| (w[0], data[w[0]..w[1]].to_vec()))
        .collect();
    for (start, len) in &d.dups {
        let s = start % data.len();
        let e = (s + len).min(data.len());
        segs.push((s, data[s..e].to_vec()));
    }
    // Fisher-Yates driven by the generated numbers.
    for (i, r) in d.order_seed.iter().enumerate() {
        let n = segs.len();
        let a = i % n;
        let b = r % n;
        segs.swap(a, b);
    }
    segs
}

fn frames(
    ex: &[Exchange],
    isn_c: u32,
    isn_s: u32,
    cd: Option<&Delivery>,
    sd: Option<&Delivery>,
) -> Vec<SynthFrame> {
    let mut c = TcpConversation::new(
        "198.18.0.2:40000".parse().unwrap(),
        "198.18.0.1:80".parse().unwrap(),
        isn_c,
        isn_s,
        1_000,
    );
    c.handshake();
    let (cs, ss) = (client_stream(ex), server_stream(ex));
    let (c0, s0) = (c.client_next(), c.server_next());
    let whole = [(0usize, cs.clone())];
    let csegs = cd
        .map(|d| segments(&cs, d))
        .unwrap_or_else(|| whole.to_vec());
    for (off, bytes) in csegs {
        let f = c.frame(
            true,
            c0.wrapping_add(off as u32),
            s0,
            TcpFlags::ACK | TcpFlags::PSH,
            &bytes,
        );
        c.push_raw(f, Direction::Ingress);
    }
    let c_end = c0.wrapping_add(cs.len() as u32);
    let whole = [(0usize, ss.clone())];
    let ssegs = sd
        .map(|d| segments(&ss, d))
        .unwrap_or_else(|| whole.to_vec());
    for (off, bytes) in ssegs {
        let f = c.frame(
            false,
            s0.wrapping_add(off as u32),
            c_end,
            TcpFlags::ACK | TcpFlags::PSH,
            &bytes,
        );
        c.push_raw(f, Direction::Egress);
    }
    let s_end = s0.wrapping_add(ss.len() as u32);
    let fin_c = c.frame(true, c_end, s_end, TcpFlags::FIN | TcpFlags::ACK, b"");
    c.push_raw(fin_c, Direction::Ingress);
    let fin_s = c.frame(
        false,
        s_end,
        c_end.wrapping_add(1),
        TcpFlags::FIN | TcpFlags::ACK,
        b"",
    );
    c.push_raw(fin_s, Direction::Egress);
    c.into_frames()
}

/// What must not depend on segmentation: every L7 flow and span, minus timestamps.
fn projection(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Flow(f) => {
                let l7 = f.l7.as_ref()?;
                Some(format!(
                    "{:?} {:?} {:?} bytes={}",
                    l7.r#type, l7.record, f.trace_context, f.payload_bytes
                ))
            }
            Record::Span(s) => Some(format!(
                "span {} {} {:?} {:?} {:?} {:?} {:?}",
                s.name,
                s.trace_id,
                s.status,
                s.attributes.get(attr::HTTP_RESPONSE_STATUS_CODE),
                s.attributes.get(attr::HTTP_REQUEST_BODY_SIZE),
                s.attributes.get(attr::HTTP_RESPONSE_BODY_SIZE),
                s.attributes.get(attr::URL_PATH),
            )),
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn segmentation_and_order_do_not_change_records(
        ex in prop::collection::vec(exchange(), 1..5),
        isn_c in prop::sample::select(vec![0u32, 1000, u32::MAX - 50, u32::MAX - 3000]),
        isn_s in prop::sample::select(vec![7u32, u32::MAX - 100, u32::MAX - 1]),
        cd in delivery(),
        sd in delivery(),
    ) {
        let expected = projection(&run(&mut l7_engine(), &frames(&ex, isn_c, isn_s, None, None)));
        // In-order delivery decodes every exchange.
        let spans = expected.iter().filter(|l| l.starts_with("span")).count();
        prop_assert_eq!(spans, ex.len());
        let mut e = l7_engine();
        let got = projection(&run(&mut e, &frames(&ex, isn_c, isn_s, Some(&cd), Some(&sd))));
        prop_assert_eq!(got, expected);
        prop_assert_eq!(e.counters().tcp_gap_bytes, 0);
        prop_assert_eq!(e.counters().tcp_overlap_conflict_bytes, 0);
    }
}

/// Frames for the same exchanges where the two directions reach the engine interleaved in any
/// order (per-CPU capture queues), each frame keeping its true send time.
fn interleaved_frames(
    ex: &[Exchange],
    cd: &Delivery,
    sd: &Delivery,
    pattern: &[bool],
) -> Vec<SynthFrame> {
    let mut c = TcpConversation::new(
        "198.18.0.2:40000".parse().unwrap(),
        "198.18.0.1:80".parse().unwrap(),
        10,
        20,
        1_000,
    );
    c.handshake();
    let (cs, ss) = (client_stream(ex), server_stream(ex));
    let (c0, s0) = (c.client_next(), c.server_next());
    let c_end = c0.wrapping_add(cs.len() as u32);
    // True send times: requests first (by stream offset), responses after all of them.
    let client: Vec<SynthFrame> = segments(&cs, cd)
        .into_iter()
        .map(|(off, bytes)| SynthFrame {
            ts_ns: 1_000_000 + off as u64,
            data: c.frame(
                true,
                c0.wrapping_add(off as u32),
                s0,
                TcpFlags::ACK | TcpFlags::PSH,
                &bytes,
            ),
            direction: Direction::Ingress,
        })
        .collect();
    let server: Vec<SynthFrame> = segments(&ss, sd)
        .into_iter()
        .map(|(off, bytes)| SynthFrame {
            ts_ns: 5_000_000 + off as u64,
            data: c.frame(
                false,
                s0.wrapping_add(off as u32),
                c_end,
                TcpFlags::ACK | TcpFlags::PSH,
                &bytes,
            ),
            direction: Direction::Egress,
        })
        .collect();
    let mut frames = c.frames().to_vec();
    let (mut ci, mut si) = (client.into_iter().peekable(), server.into_iter().peekable());
    for take_client in pattern.iter().cycle() {
        match (ci.peek().is_some(), si.peek().is_some()) {
            (false, false) => break,
            (true, false) => frames.push(ci.next().unwrap()),
            (false, true) => frames.push(si.next().unwrap()),
            (true, true) => frames.push(if *take_client {
                ci.next().unwrap()
            } else {
                si.next().unwrap()
            }),
        }
    }
    let s_end = s0.wrapping_add(ss.len() as u32);
    for (from_client, seq, ack) in [(true, c_end, s_end), (false, s_end, c_end.wrapping_add(1))] {
        frames.push(SynthFrame {
            ts_ns: 9_000_000,
            data: c.frame(from_client, seq, ack, TcpFlags::FIN | TcpFlags::ACK, b""),
            direction: if from_client {
                Direction::Ingress
            } else {
                Direction::Egress
            },
        });
    }
    frames
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Responses that reach us before their requests still pair with them (by capture time);
    /// records may come out in another order, so they are compared as a multiset.
    #[test]
    fn cross_direction_interleaving_pairs_the_same(
        ex in prop::collection::vec(exchange(), 1..5),
        cd in delivery(),
        sd in delivery(),
        pattern in prop::collection::vec(any::<bool>(), 1..16),
    ) {
        let mut expected = projection(&run(&mut l7_engine(), &frames(&ex, 10, 20, None, None)));
        let mut e = l7_engine();
        let mut got = projection(&run(&mut e, &interleaved_frames(&ex, &cd, &sd, &pattern)));
        // Span/trace ids follow request order, which interleaving does not change.
        expected.sort();
        got.sort();
        prop_assert_eq!(got, expected, "{:?}", e.counters());
        prop_assert_eq!(e.counters().http1_unpaired_responses, 0);
    }
}

/// The persisted case that once lost `http.request.body.size`: the second response was decoded
/// before the second request's body ended, and its span was finalised without the size.
#[test]
fn response_decoded_before_request_body_end_keeps_body_size() {
    let ex = [
        Exchange {
            method: "POST",
            path: "/aaaaa".into(),
            req_body: 124,
            status: 200,
            chunked: false,
            resp_body: 0,
        },
        Exchange {
            method: "PUT",
            path: "/aaaaaaa".into(),
            req_body: 106,
            status: 301,
            chunked: false,
            resp_body: 940,
        },
    ];
    let cd = Delivery {
        cuts: vec![
            1127, 24557, 1, 418, 44084, 4325, 6456, 3972, 68, 16044, 38410, 1136, 72, 9658, 5399,
            75, 76,
        ],
        order_seed: vec![
            56, 101, 0, 0, 0, 0, 146, 110, 0, 0, 0, 58, 146, 47, 202, 0, 5, 115, 49, 5, 0, 5, 12,
        ],
        dups: vec![(0, 1), (0, 1), (0, 1), (0, 6), (4273, 289)],
    };
    let sd = Delivery {
        cuts: vec![
            67166, 86889, 5186, 2784, 42192, 29944, 80783, 90656, 83575, 29272, 59520, 88598,
            94678, 51599, 67710, 12180, 59213,
        ],
        order_seed: vec![
            237, 829, 209, 571, 232, 894, 911, 501, 91, 817, 408, 821, 267, 675, 425, 180, 551,
            681, 51, 704, 877,
        ],
        dups: vec![(69086, 306)],
    };
    let pattern = [false, true, true, false, false];
    let mut expected = projection(&run(&mut l7_engine(), &frames(&ex, 10, 20, None, None)));
    let mut e = l7_engine();
    let mut got = projection(&run(&mut e, &interleaved_frames(&ex, &cd, &sd, &pattern)));
    expected.sort();
    got.sort();
    assert!(
        got.iter()
            .any(|l| l.starts_with("span PUT") && l.contains("Some(Int(106))")),
        "{got:#?}"
    );
    assert_eq!(got, expected, "{:?}", e.counters());
}
