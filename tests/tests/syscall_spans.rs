//! End-to-end test of syscall spans (issue 20): the real agent with `--syscall-spans python3`
//! exporting to a real OTLP receiver (`otlp_receiver`), a Python ThreadingHTTPServer whose
//! handler reads a file, writes and fsyncs a temp file and calls a second local service (a
//! `python3 -m http.server`), and curl as the client, all on loopback in a namespace.
//!
//! The span tree must come out whole, in one trace: curl's CLIENT span → the handler's SERVER
//! span → its syscalls as INTERNAL children (paths, byte counts, nested in time within it)
//! and its call to the second service as a CLIENT child → that service's SERVER span → its own
//! syscalls. The SERVER span's latency breakdown must add up to its duration.

use std::time::{Duration, Instant};

use flowscope_e2e::*;
use serde_json::Value;

/// The handler: read a file, write and fsync a temp file, call the second service, answer.
const HANDLER: &str = r#"
import http.server, os, sys, urllib.request
data, scratch, inner = sys.argv[2], sys.argv[3], sys.argv[4]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.path == "/ready":
            body = b"ok"
        else:
            with open(data, "rb") as f:
                content = f.read()
            fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.write(fd, b"scratch-bytes\n")
            os.fsync(fd)
            os.close(fd)
            inner_body = urllib.request.urlopen(inner, timeout=5).read()
            body = content + inner_body
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;

fn receiver_bin() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_otlp_receiver"))
}

/// Waits until `url` answers 200 from `ns`.
fn wait_http(ns: &Netns, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while ns
        .exec_any(&format!("curl -sf -o /dev/null --max-time 2 {url}"))
        .status
        .code()
        != Some(0)
    {
        assert!(Instant::now() < deadline, "{url} did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn attr<'a>(s: &'a Value, k: &str) -> &'a Value {
    &s["attributes"][k]
}

fn int(s: &Value, k: &str) -> i64 {
    attr(s, k)
        .as_i64()
        .unwrap_or_else(|| panic!("{k} of {s:#}"))
}

fn path(s: &Value) -> &str {
    attr(s, "url.path").as_str().unwrap_or("")
}

#[test]
fn a_request_gives_a_span_tree_of_syscalls_and_the_call_it_made() {
    require_root();
    require_tool("python3");
    require_tool("curl");
    let ns = Netns::new("fssy");
    let tmp = TempDir::new();
    let data = tmp.0.join("data.txt");
    std::fs::write(&data, "seventeen bytes!\n").unwrap();
    std::fs::write(tmp.0.join("inner.txt"), "inner\n").unwrap();
    std::fs::write(tmp.0.join("handler.py"), HANDLER).unwrap();
    let scratch = tmp.0.join("scratch.out");

    let mut receiver = ns.spawn(&format!(
        "{} --grpc 127.0.0.1:14327",
        receiver_bin().display()
    ));
    receiver.wait_stderr("listening", Duration::from_secs(10));
    // Started before the services: processes named python3 are traced from their start.
    let mut agent = start_agent(
        &ns,
        "-i lo -o none --metrics-listen 127.0.0.1:19981 --otlp-endpoint http://127.0.0.1:14327 \
         --syscall-spans python3",
    );
    let _inner = ns.spawn(&format!(
        "/usr/bin/python3 -m http.server 18091 --bind 127.0.0.1 --directory {}",
        tmp.0.display()
    ));
    let _outer = ns.spawn(&format!(
        "/usr/bin/python3 {} 18090 {} {} http://127.0.0.1:18091/inner.txt",
        tmp.0.join("handler.py").display(),
        data.display(),
        scratch.display()
    ));
    wait_http(&ns, "http://127.0.0.1:18091/");
    wait_http(&ns, "http://127.0.0.1:18090/ready");

    // The syscall programs are the agent's, and go with it (checked at the end).
    let ids = bpf_prog_ids_of(agent.pid());
    let progs: serde_json::Value =
        serde_json::from_str(&sh("bpftool -j prog show")).expect("bpftool json");
    let names: Vec<&str> = progs
        .as_array()
        .expect("array")
        .iter()
        .filter(|p| p["id"].as_u64().is_some_and(|i| ids.contains(&i)))
        .filter_map(|p| p["name"].as_str())
        .collect();
    for want in ["fss_enter", "fss_enter1", "fss_exit"] {
        assert!(
            names.contains(&want),
            "{want} not loaded by the agent: {names:?}"
        );
    }

    let body = ns.exec("curl -sS --max-time 10 http://127.0.0.1:18090/work");
    assert_eq!(body, "seventeen bytes!\ninner\n");

    // Wait for the whole tree: curl's CLIENT span is the last to complete.
    let deadline = Instant::now() + Duration::from_secs(30);
    let spans = loop {
        let spans = json_lines(&receiver.stdout());
        let done = spans
            .iter()
            .any(|s| s["kind"] == "CLIENT" && path(s) == "/work");
        let inner_done = spans
            .iter()
            .any(|s| s["kind"] == "SERVER" && path(s) == "/inner.txt");
        if done && inner_done {
            // The children come right after their parent; give the exporter a batch more.
            std::thread::sleep(Duration::from_secs(2));
            break json_lines(&receiver.stdout());
        }
        assert!(
            Instant::now() < deadline,
            "span tree incomplete: {spans:#?}\nagent: {:#?}",
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let one = |kind: &str, p: &str| -> &Value {
        let found: Vec<&Value> = spans
            .iter()
            .filter(|s| s["kind"] == kind && path(s) == p)
            .collect();
        assert_eq!(found.len(), 1, "{kind} {p}: {spans:#?}");
        found[0]
    };
    let curl = one("CLIENT", "/work");
    let outer = one("SERVER", "/work");
    let call = one("CLIENT", "/inner.txt");
    let inner = one("SERVER", "/inner.txt");
    let trace = &curl["trace_id"];
    for s in [outer, call, inner] {
        assert_eq!(&s["trace_id"], trace, "one trace: {s:#}");
    }
    assert_eq!(outer["parent_span_id"], curl["span_id"]);
    assert_eq!(
        call["parent_span_id"], outer["span_id"],
        "the call is the request's child"
    );
    assert_eq!(inner["parent_span_id"], call["span_id"]);

    // The handler's syscalls, children of its SERVER span, nested within it and in order.
    let children: Vec<&Value> = spans
        .iter()
        .filter(|s| s["kind"] == "INTERNAL" && s["parent_span_id"] == outer["span_id"])
        .collect();
    let (start, end) = (
        outer["start"].as_u64().unwrap(),
        outer["end"].as_u64().unwrap(),
    );
    let mut last = 0;
    for c in &children {
        assert_eq!(&c["trace_id"], trace);
        let (s, e) = (c["start"].as_u64().unwrap(), c["end"].as_u64().unwrap());
        assert!(
            start <= s && s <= e && e <= end,
            "nested: {c:#}\nin {outer:#}"
        );
        assert!(s >= last, "in order: {children:#?}");
        last = s;
    }
    let named = |name: &str, file: &std::path::Path| -> Vec<&Value> {
        children
            .iter()
            .copied()
            .filter(|c| c["name"] == name && attr(c, "file.path") == file.to_str().unwrap())
            .collect()
    };
    assert_eq!(named("openat", &data).len(), 1, "{children:#?}");
    let reads = named("read", &data);
    assert!(
        reads
            .iter()
            .any(|r| int(r, "flowscope.syscall.bytes") == 17),
        "the file's 17 bytes read: {children:#?}"
    );
    assert_eq!(named("openat", &scratch).len(), 1, "{children:#?}");
    let writes = named("write", &scratch);
    assert_eq!(writes.len(), 1, "{children:#?}");
    assert_eq!(int(writes[0], "flowscope.syscall.bytes"), 14);
    assert_eq!(named("fsync", &scratch).len(), 1, "{children:#?}");
    let connects: Vec<&&Value> = children.iter().filter(|c| c["name"] == "connect").collect();
    assert_eq!(connects.len(), 1, "{children:#?}");
    assert_eq!(attr(connects[0], "network.peer.port"), 18091);
    assert!(
        connects[0]["start"].as_u64() <= call["start"].as_u64(),
        "connected before the call's first byte"
    );

    // The breakdown adds up to the span's duration.
    let parts: i64 = [
        "flowscope.latency.request_in_ns",
        "flowscope.latency.server_ns",
        "flowscope.latency.response_out_ns",
    ]
    .iter()
    .map(|k| int(outer, k))
    .sum();
    assert_eq!(parts as u64, end - start, "{outer:#}");
    // ... and its points are span events, in order, from the span's start to its end.
    let events: Vec<(&str, u64)> = outer["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events: {outer:#}"))
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["time"].as_u64().unwrap()))
        .collect();
    let names: Vec<&str> = events.iter().map(|e| e.0).collect();
    assert_eq!(
        names,
        [
            "request.first_byte.wire",
            "request.read",
            "response.write",
            "response.last_byte.wire"
        ],
        "{outer:#}"
    );
    assert_eq!((events[0].1, events[3].1), (start, end));
    assert!(events.windows(2).all(|w| w[0].1 <= w[1].1), "{events:?}");
    assert!(
        int(outer, "flowscope.latency.server_ns") >= int(outer, "flowscope.syscalls.duration_ns"),
        "the server's time holds its syscalls: {outer:#}"
    );
    assert_eq!(
        attr(outer, "thread.id"),
        &children[0]["attributes"]["thread.id"]
    );

    // The second service's own work: the file it served.
    let inner_children: Vec<&Value> = spans
        .iter()
        .filter(|s| s["kind"] == "INTERNAL" && s["parent_span_id"] == inner["span_id"])
        .collect();
    assert!(
        inner_children.iter().any(|c| c["name"] == "openat"
            && attr(c, "file.path")
                .as_str()
                .is_some_and(|p| p.ends_with("inner.txt"))),
        "{inner_children:#?}"
    );

    assert_eq!(
        agent.signal_and_wait(libc::SIGINT, Duration::from_secs(10)),
        Some(0),
        "{:#?}",
        agent.stderr()
    );
    assert_bpf_released(&ids);
}
