//! End-to-end tests of span export and metrics: the real agent in the server namespace with
//! nginx, a real OTLP receiver (`otlp_receiver`, gRPC and HTTP/protobuf) in the same
//! namespace, curl requests carrying `traceparent` from the client namespace. The spans must
//! arrive with the caller's trace id and parent span id as SERVER spans of nginx, and
//! `/metrics` must count exactly the requests sent, by status.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    time::{Duration, Instant},
};

use flowscope_e2e::*;
use serde_json::Value;

/// The `otlp_receiver` test binary (built with this test crate).
fn receiver_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_otlp_receiver"))
}

/// `curl` from `ns` with a traceparent; returns the HTTP status.
fn curl_traced(ns: &Netns, url: &str, traceparent: &str) -> u16 {
    require_tool("curl");
    let out = ns.exec(&format!(
        "curl -sS -g -o /dev/null --max-time 10 -H 'traceparent: {traceparent}' -w '%{{http_code}}' '{url}'"
    ));
    out.trim().parse().unwrap()
}

/// Polls the receiver's stdout until `n` SERVER spans arrived (or 20 s passed).
fn server_spans(receiver: &Proc, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let spans: Vec<Value> = json_lines(&receiver.stdout())
            .into_iter()
            .filter(|s| s["kind"] == "SERVER")
            .collect();
        if spans.len() >= n || Instant::now() > deadline {
            return spans;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Parses `name{k="v",...} value` lines of the Prometheus text format.
fn samples(text: &str, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (head, value) = l.rsplit_once(' ')?;
            let (n, labels) = match head.split_once('{') {
                Some((n, rest)) => (n, rest.strip_suffix('}')?),
                None => (head, ""),
            };
            if n != name {
                return None;
            }
            let mut m = BTreeMap::new();
            for kv in labels.split("\",").filter(|s| !s.is_empty()) {
                let (k, v) = kv.split_once("=\"")?;
                m.insert(k.to_string(), v.trim_end_matches('"').to_string());
            }
            Some((m, value.parse().ok()?))
        })
        .collect()
}

/// Sum of `name` samples whose labels include all of `want`.
fn sum(text: &str, name: &str, want: &[(&str, &str)]) -> f64 {
    samples(text, name)
        .iter()
        .filter(|(l, _)| {
            want.iter()
                .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, v)| v)
        .sum()
}

struct Setup {
    link: Link,
    _tmp: TempDir,
    nginx: Proc,
    receiver: Proc,
    agent: Proc,
}

/// nginx + receiver + agent in the server namespace; `agent_args` says where to export.
fn setup(agent_args: &str) -> Setup {
    require_root();
    let link = Link::new();
    let tmp = TempDir::new();
    std::fs::write(tmp.0.join("page.txt"), "flowscope\n").unwrap();
    let sock = tmp.0.join("run/observer.sock").display().to_string();
    let nginx = start_nginx(&link.server, &tmp.0);
    let mut receiver = link.server.spawn(&format!(
        "{} --grpc 127.0.0.1:14317 --http 127.0.0.1:14318",
        receiver_bin().display()
    ));
    receiver.wait_stderr("listening", Duration::from_secs(10));
    let agent = start_agent(
        &link.server,
        &format!(
            "-i {} -o none --listen unix://{sock} --metrics-listen 127.0.0.1:19965 \
             --service-name-map nginx=web {agent_args}",
            link.server_if
        ),
    );
    Setup {
        link,
        _tmp: tmp,
        nginx,
        receiver,
        agent,
    }
}

#[test]
fn spans_reach_an_otlp_grpc_collector_and_metrics_count_requests() {
    let s = setup("--otlp-endpoint http://127.0.0.1:14317 --print-spans");
    let base = format!("http://{SERVER_V4}");
    // Three 200s and two 404s, each with its own trace and caller span.
    let mut sent = Vec::new();
    for (i, path) in [
        "/page.txt",
        "/page.txt",
        "/missing",
        "/page.txt",
        "/missing",
    ]
    .iter()
    .enumerate()
    {
        let trace = format!("4bf92f3577b34da6a3ce929d0e0e47{i:02x}");
        let parent = format!("00f067aa0ba902{i:02x}");
        let code = curl_traced(
            &s.link.client,
            &format!("{base}{path}"),
            &format!("00-{trace}-{parent}-01"),
        );
        assert_eq!(code, if *path == "/page.txt" { 200 } else { 404 });
        sent.push((trace, parent, *path, code));
    }

    let spans = server_spans(&s.receiver, sent.len());
    assert_eq!(
        spans.len(),
        sent.len(),
        "one SERVER span per request: {spans:#?}\nagent stderr: {:#?}",
        s.agent.stderr()
    );
    for (trace, parent, path, code) in &sent {
        let sp = spans
            .iter()
            .find(|x| x["trace_id"] == trace.as_str())
            .unwrap_or_else(|| panic!("no span of trace {trace}: {spans:#?}"));
        assert_eq!(sp["parent_span_id"], parent.as_str(), "{sp}");
        assert_eq!(sp["transport"], "grpc");
        assert_eq!(sp["kind"], "SERVER");
        assert_eq!(sp["name"], "GET");
        assert_eq!(sp["service"], "web", "--service-name-map nginx=web: {sp}");
        assert_eq!(sp["resource"]["process.pid"], s.nginx.pid(), "{sp}");
        assert_eq!(sp["resource"]["process.executable.name"], "nginx");
        assert!(sp["resource"]["host.name"].is_string());
        assert_eq!(sp["attributes"]["url.path"], *path);
        assert_eq!(sp["attributes"]["http.request.method"], "GET");
        assert_eq!(sp["attributes"]["http.response.status_code"], *code);
        assert_ne!(sp["span_id"], parent.as_str());
        let (start, end) = (sp["start"].as_u64().unwrap(), sp["end"].as_u64().unwrap());
        assert!(start > 1_600_000_000_000_000_000 && end >= start, "{sp}");
    }

    // --print-spans: the same spans as JSON lines on the agent's stdout.
    let printed: Vec<Value> = json_lines(&s.agent.stdout());
    for (trace, ..) in &sent {
        assert!(
            printed.iter().any(|p| p["trace_id"] == trace.as_str()),
            "--print-spans lacks trace {trace}: {printed:#?}"
        );
    }

    // /metrics counts exactly what was sent, by status.
    let scrape = || {
        s.link
            .server
            .exec("curl -sS --max-time 5 http://127.0.0.1:19965/metrics")
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let t = scrape();
        if sum(&t, "flowscope_requests_total", &[]) >= 10.0 || Instant::now() > deadline {
            break t;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let server = [("service", "web"), ("kind", "server"), ("method", "GET")];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut v = server.to_vec();
        v.extend_from_slice(extra);
        v
    };
    assert_eq!(
        sum(
            &text,
            "flowscope_requests_total",
            &with(&[("status", "200"), ("route", "/page.txt")])
        ),
        3.0,
        "{text}"
    );
    assert_eq!(
        sum(
            &text,
            "flowscope_requests_total",
            &with(&[("status", "404"), ("route", "/missing")])
        ),
        2.0,
        "{text}"
    );
    // curl, in the client namespace of this node, is a local process too: each request is
    // also a CLIENT span of curl (issue 22), counted under its own kind and service.
    assert_eq!(sum(&text, "flowscope_requests_total", &[]), 10.0, "{text}");
    assert_eq!(
        sum(
            &text,
            "flowscope_requests_total",
            &[("kind", "client"), ("service", "curl")]
        ),
        5.0,
        "{text}"
    );
    // A 404 is not a server error, but it is the client's (HTTP semconv "Status").
    assert_eq!(
        sum(
            &text,
            "flowscope_request_errors_total",
            &[("kind", "server")]
        ),
        0.0,
        "{text}"
    );
    assert_eq!(
        sum(
            &text,
            "flowscope_request_errors_total",
            &[("kind", "client")]
        ),
        2.0,
        "{text}"
    );
    assert_eq!(
        sum(
            &text,
            "flowscope_request_duration_seconds_count",
            &with(&[("status", "200")])
        ),
        3.0,
        "{text}"
    );
    assert!(
        sum(&text, "flowscope_tcp_flows_total", &[]) >= 5.0,
        "{text}"
    );
    assert!(
        sum(&text, "flowscope_bytes_total", &[("direction", "ingress")]) > 0.0,
        "{text}"
    );
    // The agent's own counters and the exporter's.
    assert!(
        samples(&text, "flowscope_agent_engine_packets_total").len() == 1
            || text.contains("flowscope_agent_engine_"),
        "{text}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let t = scrape();
        if sum(&t, "flowscope_otlp_spans_exported_total", &[]) >= 5.0 {
            assert_eq!(
                sum(&t, "flowscope_otlp_spans_dropped_queue_full_total", &[]),
                0.0
            );
            break;
        }
        assert!(Instant::now() < deadline, "exporter counters: {t}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        s.link
            .server
            .exec("curl -sS --max-time 5 http://127.0.0.1:19965/healthz")
            .trim(),
        "ok"
    );
}

#[test]
fn spans_reach_an_otlp_http_collector_with_gzip() {
    let s = setup(
        "--otlp-endpoint http://127.0.0.1:14318/v1/traces --otlp-compression gzip \
         --otlp-header x-tenant=e2e",
    );
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let parent = "b7ad6b7169203331";
    let code = curl_traced(
        &s.link.client,
        &format!("http://{SERVER_V4}/page.txt"),
        &format!("00-{trace}-{parent}-01"),
    );
    assert_eq!(code, 200);
    let spans = server_spans(&s.receiver, 1);
    let sp = spans
        .iter()
        .find(|x| x["trace_id"] == trace)
        .unwrap_or_else(|| {
            panic!(
                "no span of trace {trace}: {spans:#?}\nagent stderr: {:#?}",
                s.agent.stderr()
            )
        });
    assert_eq!(sp["transport"], "http");
    assert_eq!(sp["parent_span_id"], parent);
    assert_eq!(sp["kind"], "SERVER");
    assert_eq!(sp["service"], "web");
}
