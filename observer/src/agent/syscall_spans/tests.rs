use super::*;
use ebpf_kprobe::Transport;
use flows::trace::{SpanId, TraceId};

const PID: u32 = 100;
const TID: u32 = 101;
const CLIENT: &str = "198.18.0.2:40000";
const SERVER: &str = "198.18.0.1:8080";

fn tcp(local: &str, remote: &str) -> FdTarget {
    FdTarget::Socket(SocketTuple {
        proto: Transport::Tcp,
        local: local.parse().unwrap(),
        remote: remote.parse().unwrap(),
    })
}

fn ev(tid: u32, s: Syscall, at: (u64, u64), ret: i64, fd: u64, target: FdTarget) -> SyscallEvent {
    SyscallEvent {
        enter_ns: at.0,
        exit_ns: at.1,
        ret,
        args: [fd, 0, 0],
        pid: PID,
        tid,
        syscall: Some(s),
        fd: target,
        path: None,
    }
}

fn open(tid: u32, path: &str, at: (u64, u64), ret: i64) -> SyscallEvent {
    SyscallEvent {
        path: Some(path.into()),
        ..ev(tid, Syscall::Openat, at, ret, u64::MAX - 99, FdTarget::None)
    }
}

/// A SERVER (or CLIENT) span of the exchange whose client end is `client`.
fn span(kind: SpanKind, client: &str, start: u64, end: u64, id: u8) -> Span {
    let client: SocketAddr = client.parse().unwrap();
    let mut a = Attributes::new();
    a.insert(attr::CLIENT_ADDRESS, client.ip().to_string().into());
    a.insert(attr::CLIENT_PORT, i64::from(client.port()).into());
    Span {
        trace_id: TraceId([id; 16]),
        span_id: SpanId([id; 8]),
        parent_span_id: None,
        trace_state: None,
        name: "GET".into(),
        kind,
        start_time_ns: start,
        end_time_ns: end,
        status: SpanStatus {
            code: StatusCode::Unset,
            message: None,
        },
        attributes: a,
        socket_cookie: None,
        ifindex: 0,
        process: None,
        counterpart: None,
        events: Vec::new(),
    }
}

fn feed(s: &mut SyscallSpans, events: &[SyscallEvent]) {
    for e in events {
        s.on_event(e, |t| t);
    }
}

fn int(span: &Span, key: &str) -> Option<i64> {
    match span.attributes.get(key)? {
        AttributeValue::Int(i) => Some(*i),
        other => panic!("{key}: {other:?}"),
    }
}

fn string<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    match span.attributes.get(key)? {
        AttributeValue::String(s) => Some(s),
        other => panic!("{key}: {other:?}"),
    }
}

/// A thread-per-request handler: reads the request, opens and reads a file, writes and
/// fsyncs another, calls a second service on 198.18.0.1:9090, and answers.
fn handler() -> Vec<SyscallEvent> {
    let out = "198.18.0.1:50000";
    vec![
        ev(
            TID,
            Syscall::Recvfrom,
            (900, 1100),
            80,
            4,
            tcp(SERVER, CLIENT),
        ),
        open(TID, "/srv/data.txt", (1200, 1250), 5),
        ev(TID, Syscall::Read, (1300, 1350), 100, 5, FdTarget::File),
        ev(TID, Syscall::Close, (1360, 1370), 0, 5, FdTarget::File),
        open(TID, "/tmp/out", (1400, 1450), 6),
        ev(TID, Syscall::Write, (1460, 1490), 3, 6, FdTarget::File),
        ev(TID, Syscall::Fsync, (1500, 1900), 0, 6, FdTarget::File),
        ev(
            TID,
            Syscall::Connect,
            (1950, 1990),
            0,
            7,
            tcp(out, "198.18.0.1:9090"),
        ),
        ev(
            TID,
            Syscall::Sendto,
            (2000, 2010),
            50,
            7,
            tcp(out, "198.18.0.1:9090"),
        ),
        ev(
            TID,
            Syscall::Recvfrom,
            (2020, 2300),
            60,
            7,
            tcp(out, "198.18.0.1:9090"),
        ),
        ev(
            TID,
            Syscall::Sendto,
            (2500, 2520),
            200,
            4,
            tcp(SERVER, CLIENT),
        ),
    ]
}

#[test]
fn a_request_gets_its_syscalls_as_children_and_a_breakdown() {
    let mut s = SyscallSpans::new(SyscallSpanConfig::default(), 1);
    feed(&mut s, &handler());
    let mut server = span(SpanKind::Server, CLIENT, 1000, 2600, 1);
    let children = s.complete(&mut server);
    let names: Vec<&str> = children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["openat", "read", "openat", "write", "fsync", "connect", "sendto", "recvfrom"],
        "the handler's syscalls in order, without the request's own reads and writes or close"
    );
    for c in &children {
        assert_eq!(c.kind, SpanKind::Internal);
        assert_eq!(c.trace_id, server.trace_id);
        assert_eq!(c.parent_span_id, Some(server.span_id));
        assert!(c.start_time_ns >= 1100 && c.end_time_ns <= 2500, "{c:?}");
        assert_eq!(int(c, keys::THREAD_ID), Some(i64::from(TID)));
    }
    assert_eq!(string(&children[0], keys::FILE_PATH), Some("/srv/data.txt"));
    assert_eq!(
        string(&children[1], keys::FILE_PATH),
        Some("/srv/data.txt"),
        "read names the file it read"
    );
    assert_eq!(int(&children[1], keys::BYTES), Some(100));
    assert_eq!(string(&children[4], keys::FILE_PATH), Some("/tmp/out"));
    assert_eq!(children[4].end_time_ns - children[4].start_time_ns, 400);
    assert_eq!(
        string(&children[5], attr::NETWORK_PEER_ADDRESS),
        Some("198.18.0.1")
    );
    assert_eq!(int(&children[5], attr::NETWORK_PEER_PORT), Some(9090));
    // 1000 → read returned 1100 → response write 2500 → last byte 2600.
    assert_eq!(int(&server, keys::REQUEST_IN), Some(100));
    assert_eq!(int(&server, keys::SERVER), Some(1400));
    assert_eq!(int(&server, keys::RESPONSE_OUT), Some(100));
    let sum: i64 = [keys::REQUEST_IN, keys::SERVER, keys::RESPONSE_OUT]
        .iter()
        .map(|k| int(&server, k).unwrap())
        .sum();
    assert_eq!(sum as u64, server.end_time_ns - server.start_time_ns);
    assert_eq!(int(&server, keys::COUNT), Some(8));
    assert_eq!(server.attributes.get(keys::APPROXIMATE), None);
    let ev: Vec<(&str, u64)> = server
        .events
        .iter()
        .map(|e| (&*e.name, e.time_ns))
        .collect();
    assert_eq!(
        ev,
        [
            (events::REQUEST_FIRST_BYTE, 1000),
            (events::REQUEST_READ, 1100),
            (events::RESPONSE_WRITE, 2500),
            (events::RESPONSE_LAST_BYTE, 2600)
        ]
    );
    assert_eq!(s.counters().requests_matched, 1);
}

#[test]
fn children_beyond_the_cap_are_folded_into_counts() {
    let mut s = SyscallSpans::new(
        SyscallSpanConfig {
            max_children: 2,
            ..SyscallSpanConfig::default()
        },
        1,
    );
    feed(&mut s, &handler());
    let mut server = span(SpanKind::Server, CLIENT, 1000, 2600, 1);
    assert_eq!(s.complete(&mut server).len(), 2);
    assert_eq!(
        int(&server, "flowscope.syscalls.folded.fsync.count"),
        Some(1)
    );
    assert_eq!(
        int(&server, "flowscope.syscalls.folded.fsync.duration_ns"),
        Some(400)
    );
    assert_eq!(
        int(&server, "flowscope.syscalls.folded.openat.count"),
        Some(1)
    );
    assert_eq!(
        int(&server, keys::COUNT),
        Some(8),
        "the total counts every syscall"
    );
    assert_eq!(s.counters().folded, 6);
}

#[test]
fn an_event_loop_serving_another_client_is_marked_approximate() {
    let mut s = SyscallSpans::new(SyscallSpanConfig::default(), 1);
    let other = "198.18.0.3:41000";
    feed(
        &mut s,
        &[
            ev(TID, Syscall::Read, (900, 1100), 80, 4, tcp(SERVER, CLIENT)),
            ev(TID, Syscall::Read, (1200, 1300), 80, 9, tcp(SERVER, other)),
            open(TID, "/srv/a", (1310, 1320), 5),
            ev(
                TID,
                Syscall::Writev,
                (1400, 1420),
                200,
                4,
                tcp(SERVER, CLIENT),
            ),
        ],
    );
    let mut server = span(SpanKind::Server, CLIENT, 1000, 1500, 1);
    let children = s.complete(&mut server);
    assert_eq!(children.len(), 2);
    assert_eq!(
        server.attributes.get(keys::APPROXIMATE),
        Some(&AttributeValue::Bool(true))
    );
}

#[test]
fn a_call_made_while_serving_joins_the_request_trace() {
    let mut s = SyscallSpans::new(SyscallSpanConfig::default(), 1);
    feed(&mut s, &handler());
    // The outgoing call's CLIENT span (and the callee's SERVER span, local too), trace 7.
    let call = span(SpanKind::Client, "198.18.0.1:50000", 2005, 2290, 7);
    let mut callee = span(SpanKind::Server, "198.18.0.1:50000", 2006, 2289, 8);
    callee.trace_id = call.trace_id;
    callee.parent_span_id = Some(call.span_id);
    let held = s.hold(vec![Box::new(call), Box::new(callee)], 3000);
    assert!(
        held.is_empty(),
        "held until the request it was made for is complete"
    );
    let mut server = span(SpanKind::Server, CLIENT, 1000, 2600, 1);
    let out = s.complete(&mut server);
    let joined: Vec<&Box<Span>> = out
        .iter()
        .filter(|c| c.kind != SpanKind::Internal)
        .collect();
    assert_eq!(joined.len(), 2);
    assert!(
        joined.iter().all(|c| c.trace_id == server.trace_id),
        "one trace"
    );
    assert_eq!(
        joined[0].parent_span_id,
        Some(server.span_id),
        "the call is the request's child"
    );
    assert_eq!(
        joined[1].parent_span_id,
        Some(SpanId([7; 8])),
        "the callee stays the call's child"
    );
    assert_eq!(s.counters().calls_parented, 1);
}

#[test]
fn calls_with_their_own_context_or_unclaimed_go_out_unchanged() {
    let mut s = SyscallSpans::new(SyscallSpanConfig::default(), 1);
    feed(&mut s, &handler());
    let mut propagated = span(SpanKind::Client, "198.18.0.1:50000", 2005, 2290, 7);
    propagated.parent_span_id = Some(SpanId([3; 8]));
    assert_eq!(
        s.hold(vec![Box::new(propagated)], 0).len(),
        1,
        "traceparent sent: not held"
    );
    let call = span(SpanKind::Client, "198.18.0.1:50000", 2005, 2290, 7);
    assert!(s.hold(vec![Box::new(call)], 0).is_empty());
    assert!(s.unclaimed(1_000).is_empty());
    let out = s.unclaimed(SyscallSpanConfig::default().hold_ns);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].trace_id, TraceId([7; 16]), "unchanged");
    assert_eq!(s.counters().calls_unclaimed, 1);
    let stranger = span(SpanKind::Client, "198.18.0.9:1234", 2005, 2290, 7);
    assert_eq!(
        s.hold(vec![Box::new(stranger)], 0).len(),
        1,
        "no traced thread wrote it"
    );
}

#[test]
fn failed_syscalls_are_errors_and_unread_requests_get_nothing() {
    let mut s = SyscallSpans::new(SyscallSpanConfig::default(), 1);
    feed(
        &mut s,
        &[
            ev(TID, Syscall::Read, (900, 1100), 80, 4, tcp(SERVER, CLIENT)),
            open(TID, "/missing", (1200, 1210), -2),
            ev(
                TID,
                Syscall::Write,
                (1300, 1310),
                10,
                4,
                tcp(SERVER, CLIENT),
            ),
        ],
    );
    let mut server = span(SpanKind::Server, CLIENT, 1000, 1400, 1);
    let c = s.complete(&mut server);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].status.code, StatusCode::Error);
    assert_eq!(string(&c[0], attr::ERROR_TYPE), Some("ENOENT"));
    assert_eq!(int(&c[0], keys::RETURN), Some(-2));
    let mut other = span(SpanKind::Server, "198.18.0.7:1", 1000, 1400, 2);
    assert!(s.complete(&mut other).is_empty());
    assert_eq!(other.attributes.get(keys::REQUEST_IN), None);
    let mut client = span(SpanKind::Client, CLIENT, 1000, 1400, 3);
    assert!(s.complete(&mut client).is_empty(), "only SERVER spans");
}

#[test]
fn history_is_bounded_and_expires() {
    let mut s = SyscallSpans::new(
        SyscallSpanConfig {
            max_calls_per_thread: 3,
            max_threads: 2,
            window_ns: 1000,
            ..SyscallSpanConfig::default()
        },
        1,
    );
    for i in 0..5 {
        feed(&mut s, &[open(TID, "/a", (i * 10, i * 10 + 1), 3)]);
    }
    assert_eq!(s.threads[&TID].calls.len(), 3);
    feed(
        &mut s,
        &[
            open(TID + 1, "/b", (100, 101), 3),
            open(TID + 2, "/c", (200, 201), 3),
        ],
    );
    assert_eq!(s.threads.len(), 2, "the quietest thread was forgotten");
    assert!(!s.threads.contains_key(&TID));
    assert_eq!(s.counters().calls_evicted, 2 + 3);
    s.expire(1150);
    assert_eq!(s.threads.len(), 1);
    s.expire(5000);
    assert!(s.threads.is_empty());
}

#[test]
fn a_traced_servers_span_settles_before_it_is_completed() {
    let mut s = SyscallSpans::new(SyscallSpanConfig::default(), 1);
    // The response write's record comes after the span (a race between the two rings).
    let mut events = handler();
    let write = events.pop().unwrap();
    feed(&mut s, &events);
    let mut server = span(SpanKind::Server, CLIENT, 1000, 2600, 1);
    server.process = Some(flows::record::ProcessInfo {
        pid: PID,
        ..Default::default()
    });
    assert!(
        s.admit(vec![Box::new(server)], 5_000).is_empty(),
        "settling"
    );
    assert!(s.settled(5_000 + 99_999_999).is_empty());
    feed(&mut s, &[write]);
    let mut out = s.settled(5_000 + 100_000_000);
    assert_eq!(out.len(), 1);
    let children = s.complete(&mut out[0]);
    assert_eq!(children.len(), 8);
    assert_eq!(
        int(&out[0], keys::SERVER),
        Some(1400),
        "the late write was found"
    );
    let untraced = span(SpanKind::Server, "198.18.0.9:9", 1000, 2600, 2);
    assert_eq!(
        s.admit(vec![Box::new(untraced)], 0).len(),
        1,
        "not traced: at once"
    );
}
