//! Connections through a SOCKS proxy (RFC 1928, RFC 1929, SOCKS4/4a): the handshake is read
//! past and the tunnelled HTTP exchanges are decoded whole; a refused or unparsable handshake
//! leaves the connection unrecognised, as before.

mod support;

use flows::record::{attr, AttributeValue};
use flows::synth::TcpConversation;
use support::*;

const GET: &[u8] = b"GET /a HTTP/1.1\r\nHost: example.test\r\n\r\n";
const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/// One message of the conversation: (from the client, bytes).
type Step<'a> = (bool, &'a [u8]);

/// `(url.path, status)` of each span, and the engine's unrecognised-flow count, for a
/// connection to a proxy on port 1080 carrying `steps`.
fn through_proxy(steps: &[Step<'_>]) -> (Vec<(String, i64)>, u64) {
    let mut c = TcpConversation::new(
        "198.18.0.2:40000".parse().unwrap(),
        "198.18.0.1:1080".parse().unwrap(),
        1_000,
        5_000,
        1_000_000,
    );
    c.handshake();
    for (from_client, bytes) in steps {
        if *from_client {
            c.client_send(bytes, 1448);
        } else {
            c.server_send(bytes, 1448);
        }
    }
    c.close();
    let mut e = l7_engine();
    let records = run(&mut e, c.frames());
    let got = spans(&records)
        .iter()
        .map(|s| {
            let path = match &s.attributes[attr::URL_PATH] {
                AttributeValue::String(p) => p.to_string(),
                v => panic!("url.path {v:?}"),
            };
            let status = match s.attributes.get(attr::HTTP_RESPONSE_STATUS_CODE) {
                Some(AttributeValue::Int(v)) => *v,
                _ => 0,
            };
            (path, status)
        })
        .collect();
    (got, e.counters().l7_unrecognised_flows)
}

fn one_exchange() -> Vec<(String, i64)> {
    vec![("/a".to_string(), 200)]
}

/// RFC 1928 §6 reply: succeeded, bound to 198.18.0.1:1080.
const REPLY5_OK: &[u8] = &[5, 0, 0, 1, 198, 18, 0, 1, 0x04, 0x38];
/// RFC 1928 §4 CONNECT to example.test:80 by name (ATYP 3).
const REQUEST5_NAME: &[u8] = b"\x05\x01\x00\x03\x0cexample.test\x00\x50";
/// CONNECT to 198.18.0.9:80 (ATYP 1).
const REQUEST5_V4: &[u8] = &[5, 1, 0, 1, 198, 18, 0, 9, 0, 80];

#[test]
fn socks5_without_authentication() {
    let steps: &[Step] = &[
        (true, &[5, 1, 0]),
        (false, &[5, 0]),
        (true, REQUEST5_NAME),
        (false, REPLY5_OK),
        (true, GET),
        (false, OK),
        (true, GET),
        (false, OK),
    ];
    let (got, unrecognised) = through_proxy(steps);
    assert_eq!(got, [one_exchange(), one_exchange()].concat());
    assert_eq!(unrecognised, 0);
}

#[test]
fn socks5_with_username_and_password() {
    // RFC 1929: VER 1, ULEN, UNAME, PLEN, PASSWD; the status VER 1, STATUS 0.
    let steps: &[Step] = &[
        (true, &[5, 2, 0, 2]),
        (false, &[5, 2]),
        (true, b"\x01\x04user\x06secret"),
        (false, &[1, 0]),
        (true, REQUEST5_V4),
        (false, REPLY5_OK),
        (true, GET),
        (false, OK),
    ];
    assert_eq!(through_proxy(steps), (one_exchange(), 0));
}

#[test]
fn socks5_client_sending_ahead_in_one_segment() {
    // A client that does not wait for the method choice (no authentication offered), and an
    // IPv6 reply: greeting, request and HTTP request in one write.
    let ahead = [&[5u8, 1, 0][..], REQUEST5_V4, GET].concat();
    let mut reply6 = vec![5, 0, 0, 4];
    reply6.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    reply6.extend_from_slice(&[0; 11]);
    reply6.extend_from_slice(&[1, 0x04, 0x38]);
    let answer = [&[5u8, 0][..], &reply6, OK].concat();
    let steps: &[Step] = &[(true, &ahead), (false, &answer)];
    assert_eq!(through_proxy(steps), (one_exchange(), 0));
}

#[test]
fn socks4_and_socks4a() {
    // SOCKS4: VN 4, CD 1, DSTPORT 80, DSTIP 198.18.0.9, USERID "u" NUL; reply VN 0, CD 90.
    let reply = &[0, 90, 0, 80, 198, 18, 0, 9];
    let v4: &[Step] = &[
        (true, &[4, 1, 0, 80, 198, 18, 0, 9, b'u', 0]),
        (false, reply),
        (true, GET),
        (false, OK),
    ];
    assert_eq!(through_proxy(v4), (one_exchange(), 0));
    // SOCKS4a: DSTIP 0.0.0.1, an empty USERID, then the name NUL.
    let v4a: &[Step] = &[
        (
            true,
            b"\x04\x01\x00\x50\x00\x00\x00\x01\x00example.test\x00",
        ),
        (false, reply),
        (true, GET),
        (false, OK),
    ];
    assert_eq!(through_proxy(v4a), (one_exchange(), 0));
}

#[test]
fn a_refused_request_or_a_foreign_protocol_stays_unrecognised() {
    // REP 5: connection refused by the target; the proxy then closes.
    let refused: &[Step] = &[
        (true, &[5, 1, 0]),
        (false, &[5, 0]),
        (true, REQUEST5_V4),
        (false, &[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]),
    ];
    assert_eq!(through_proxy(refused), (vec![], 1));
    // No acceptable method.
    let no_method: &[Step] = &[(true, &[5, 1, 2]), (false, &[5, 0xff])];
    assert_eq!(through_proxy(no_method), (vec![], 1));
    // A binary protocol whose first byte is 5 but whose "methods" are not methods: not taken
    // for SOCKS (the HTTP/1 decoder then gives up on it, as on any foreign protocol).
    let other: &[Step] = &[(true, &[5, 3, 0x20, 0x30, 0x40]), (false, &[1, 2, 3])];
    assert_eq!(through_proxy(other).0, vec![]);
}

#[test]
fn detection_leaves_other_protocols_alone() {
    use flows::l7::{detect, socks::starts_handshake, Detection, L7Protocol};
    assert!(starts_handshake(&[5, 1, 0]));
    assert!(starts_handshake(&[5, 2, 0, 2]));
    assert!(!starts_handshake(&[5, 2, 0]), "a method missing");
    assert!(!starts_handshake(&[5, 0]), "no method");
    assert!(starts_handshake(b"\x04\x01\x00\x50\xc6\x12\x00\x09\x00"));
    assert!(
        !starts_handshake(b"\x04\x01\x00\x50\xc6\x12\x00\x09u"),
        "no NUL"
    );
    assert_eq!(detect(GET), Detection::Protocol(L7Protocol::Http1));
    assert_eq!(detect(&[5, 1, 0]), Detection::Protocol(L7Protocol::Socks));
}
