//! End-to-end test of the metric names dashboards read (issue 22): Debian's real Prometheus
//! scrapes the agent, and PromQL over the OpenTelemetry semantic-convention, Hubble and
//! flowscope families gives the number of requests sent and a p99 that matches their
//! durations.
//!
//! A Python server in the server namespace answers 36 fast requests and 4 that it holds for
//! 300 ms, fetched by curl from the client namespace across the veth the agent captures on.
//! Prometheus runs in the server namespace and scrapes the agent over loopback, which the
//! agent does not capture, so the scrapes are not among the counted requests.

use std::time::{Duration, Instant};

use flowscope_e2e::*;
use serde_json::Value;

const FAST: usize = 36;
const SLOW: usize = 4;
const PORT: u16 = 18092;
const METRICS: &str = "127.0.0.1:19973";
const PROMETHEUS: &str = "127.0.0.1:19092";

/// A Python HTTP server on `SERVER_V4:PORT` that holds `/slow` for 300 ms.
fn start_server(ns: &Netns, dir: &std::path::Path) -> Proc {
    let script = dir.join("server.py");
    std::fs::write(
        &script,
        format!(
            r#"import http.server, time
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/slow"):
            time.sleep(0.3)
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("{SERVER_V4}", {PORT}), H).serve_forever()
"#
        ),
    )
    .unwrap();
    let p = ns.spawn(&format!("/usr/bin/python3 {}", script.display()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while ns
        .exec_any(&format!("curl -s -o /dev/null http://{SERVER_V4}:{PORT}/"))
        .status
        .code()
        != Some(0)
    {
        assert!(Instant::now() < deadline, "python server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    p
}

/// Debian's `prometheus` in `ns`, scraping the agent's `/metrics` every second.
fn start_prometheus(ns: &Netns, dir: &std::path::Path) -> Proc {
    require_tool("prometheus");
    let cfg = dir.join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: flowscope\n    static_configs:\n      - targets: ['{METRICS}']\n"
        ),
    )
    .unwrap();
    let mut p = ns.spawn(&format!(
        "prometheus --config.file={} --storage.tsdb.path={} --web.listen-address={PROMETHEUS}",
        cfg.display(),
        dir.join("tsdb").display()
    ));
    p.wait_stderr(
        "Server is ready to receive web requests",
        Duration::from_secs(30),
    );
    p
}

/// One PromQL instant query's scalar result (the sum of the vector), via the HTTP API.
fn query(ns: &Netns, promql: &str) -> Option<f64> {
    let out = ns.exec(&format!(
        "curl -sS --max-time 5 http://{PROMETHEUS}/api/v1/query --data-urlencode 'query={promql}'"
    ));
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["status"], "success", "{promql}: {out}");
    let result = v["data"]["result"].as_array()?;
    let mut sum = None;
    for r in result {
        let x: f64 = r["value"][1].as_str()?.parse().ok()?;
        sum = Some(sum.unwrap_or(0.0) + x);
    }
    sum
}

/// Polls `promql` until it gives `want` (or 30 s pass); returns the last value.
fn query_until(ns: &Netns, promql: &str, want: f64) -> Option<f64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = query(ns, promql);
        if got == Some(want) || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn prometheus_reads_request_counts_and_p99_under_otel_hubble_and_flowscope_names() {
    require_root();
    require_tool("curl");
    let link = Link::new();
    let tmp = TempDir::new();
    let _server = start_server(&link.server, &tmp.0);
    let agent = start_agent(
        &link.server,
        &format!(
            "-i {} -o none --metrics-listen {METRICS} --metrics otel,hubble,flowscope",
            link.server_if
        ),
    );
    let prometheus = start_prometheus(&link.server, &tmp.0);
    for i in 0..FAST + SLOW {
        let path = if i % 10 == 9 { "slow" } else { "fast" };
        let code = link.client.exec(&format!(
            "curl -sS -o /dev/null --max-time 10 -w '%{{http_code}}' http://{SERVER_V4}:{PORT}/{path}"
        ));
        assert_eq!(code.trim(), "200");
    }
    let n = (FAST + SLOW) as f64;
    let diag = || {
        format!(
            "agent stderr: {:#?}\nprometheus stderr tail: {:#?}",
            agent.stderr(),
            prometheus
                .stderr()
                .iter()
                .rev()
                .take(10)
                .collect::<Vec<_>>()
        )
    };
    // Counts: each request once per local end (python3 serves, curl calls).
    for (promql, want) in [
        (
            r#"sum(http_server_request_duration_seconds_count{service_name="python3",http_request_method="GET",http_response_status_code="200"})"#,
            n,
        ),
        (
            r#"sum(http_client_request_duration_seconds_count{service_name="curl",server_address="198.18.0.1"})"#,
            n,
        ),
        (
            r#"sum(hubble_http_requests_total{reporter="server",method="GET",status="200",protocol="HTTP/1.1"})"#,
            n,
        ),
        (r#"sum(hubble_http_requests_total{reporter="client"})"#, n),
        (
            r#"sum(hubble_flows_processed_total{type="L7",subtype="HTTP",protocol="HTTP",verdict="FORWARDED"})"#,
            2.0 * n,
        ),
        (
            r#"sum(hubble_tcp_flags_total{flag="SYN",family="IPv4"})"#,
            n,
        ),
        (
            r#"sum(flowscope_requests_total{kind="server",service="python3"})"#,
            n,
        ),
    ] {
        assert_eq!(
            query_until(&link.server, promql, want),
            Some(want),
            "{promql}\n{}",
            diag()
        );
    }
    // p99: 4 of 40 requests took 300 ms: the 99th percentile lies in the bucket holding
    // 300 ms (0.25, 0.5] in both OTel's and Prometheus's default buckets; the median in the
    // fast ones.
    for family in [
        r#"http_server_request_duration_seconds_bucket{service_name="python3"}"#,
        r#"http_client_request_duration_seconds_bucket{service_name="curl"}"#,
        r#"hubble_http_request_duration_seconds_bucket{reporter="server"}"#,
    ] {
        let p99 = query(
            &link.server,
            &format!("histogram_quantile(0.99, sum by (le) ({family}))"),
        )
        .unwrap_or_else(|| panic!("no p99 of {family}"));
        assert!(
            p99 > 0.25 && p99 <= 0.5,
            "p99 of {family}: {p99}\n{}",
            diag()
        );
        let p50 = query(
            &link.server,
            &format!("histogram_quantile(0.5, sum by (le) ({family}))"),
        )
        .unwrap();
        assert!(p50 < 0.1, "p50 of {family}: {p50}");
        let sum = query(
            &link.server,
            &format!("sum({})", family.replace("_bucket", "_sum")),
        )
        .unwrap();
        assert!(
            sum >= SLOW as f64 * 0.3 && sum < SLOW as f64 * 0.3 + FAST as f64 * 0.1,
            "total time of {family}: {sum}"
        );
    }
}
