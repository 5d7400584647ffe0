//! End-to-end tests of who called whom (issue 22): the real agent with `--print-spans`, a
//! Python HTTP server and curl, on loopback and across a veth pair. Every exchange between two
//! local processes must give a CLIENT span owned by curl and a SERVER span owned by python3
//! (the SERVER span the CLIENT span's child), and its flows must name both ends; the agent's
//! own `/metrics`, served by a tokio worker thread, must be the process `flowscope`'s.

use std::time::{Duration, Instant};

use flowscope_e2e::*;
use serde_json::Value;

/// `python3 -m http.server PORT --bind ADDR` in `ns`, serving `root`.
fn start_python(ns: &Netns, addr: &str, port: u16, root: &std::path::Path) -> Proc {
    require_tool("python3");
    let mut p = ns.spawn(&format!(
        "/usr/bin/python3 -u -m http.server {port} --bind {addr} --directory {}",
        root.display()
    ));
    // http.server prints its banner on stdout; wait for the port instead.
    let deadline = Instant::now() + Duration::from_secs(10);
    while ns
        .exec_any(&format!("curl -s -o /dev/null http://{addr}:{port}/ready"))
        .status
        .code()
        != Some(0)
    {
        assert!(
            Instant::now() < deadline,
            "python http.server did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = &mut p;
    p
}

/// GETs `url` from `ns` `n` times with one curl process each.
fn curl_n(ns: &Netns, url: &str, n: usize) {
    require_tool("curl");
    for _ in 0..n {
        let code = ns.exec(&format!(
            "curl -sS -g -o /dev/null --max-time 10 -w '%{{http_code}}' '{url}'"
        ));
        assert_eq!(code.trim(), "200", "curl {url}");
    }
}

/// The spans (`--print-spans` lines) and flows (`-o json` lines) the agent printed.
fn printed(agent: &Proc) -> (Vec<Value>, Vec<Value>) {
    json_lines(&agent.stdout())
        .into_iter()
        .partition(|v| v.get("flow").is_none())
}

fn comm(v: &Value) -> &str {
    v["comm"].as_str().unwrap_or("")
}

/// Spans of `path` until `want` of them arrived (or 20 s passed).
fn spans_of(agent: &Proc, path: &str, want: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let spans: Vec<Value> = printed(agent)
            .0
            .into_iter()
            .filter(|s| s["attributes"]["url.path"] == path)
            .collect();
        if spans.len() >= want || Instant::now() > deadline {
            return spans;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Each of `n` requests gave a CLIENT span of curl and a SERVER span of python3, the server's
/// the child of the client's, with each side's peer; and the HTTP flows name both processes.
fn check_both_ends(agent: &Proc, n: usize, server_port: u16) {
    let spans = spans_of(agent, "/page.txt", 2 * n);
    let stderr = agent.stderr();
    assert_eq!(
        spans.len(),
        2 * n,
        "two spans per request: {spans:#?}\n{stderr:#?}"
    );
    let clients: Vec<&Value> = spans.iter().filter(|s| s["kind"] == "CLIENT").collect();
    let servers: Vec<&Value> = spans.iter().filter(|s| s["kind"] == "SERVER").collect();
    assert_eq!((clients.len(), servers.len()), (n, n), "{spans:#?}");
    for c in &clients {
        assert_eq!(comm(&c["process"]), "curl", "CLIENT span owner: {c:#}");
        assert_eq!(c["attributes"]["network.peer.port"], server_port, "{c:#}");
        let s = servers
            .iter()
            .find(|s| s["parent_span_id"] == c["span_id"])
            .unwrap_or_else(|| panic!("no SERVER child of {c:#}"));
        assert_eq!(comm(&s["process"]), "python3", "SERVER span owner: {s:#}");
        assert_eq!(s["trace_id"], c["trace_id"]);
        assert_eq!(
            s["attributes"]["network.peer.port"], c["attributes"]["client.port"],
            "the server's peer is the client: {s:#}"
        );
    }
    // The flows: the request's local end and its peer are curl and python3.
    let flows: Vec<Value> = printed(agent)
        .1
        .into_iter()
        .map(|f| f["flow"].clone())
        .filter(|f| {
            f["l7"]["http"]["url"]
                .as_str()
                .is_some_and(|u| u.ends_with("/page.txt"))
        })
        .collect();
    assert!(!flows.is_empty(), "no HTTP flows printed");
    for f in &flows {
        let ext = &f["extensions"];
        let mut ends = [comm(&ext["process"]), comm(&ext["peer_process"])];
        ends.sort();
        assert_eq!(ends, ["curl", "python3"], "both ends of {f:#}");
    }
}

#[test]
fn loopback_exchanges_give_a_client_span_of_curl_and_a_server_span_of_python() {
    require_root();
    let ns = Netns::new("fsrl");
    let tmp = TempDir::new();
    std::fs::write(tmp.0.join("page.txt"), "roles\n").unwrap();
    let _py = start_python(&ns, "127.0.0.1", 18080, &tmp.0);
    let agent = start_agent(
        &ns,
        "-i lo -o jsonpb --print-spans --metrics-listen 127.0.0.1:19971",
    );
    curl_n(&ns, "http://127.0.0.1:18080/page.txt", 3);
    check_both_ends(&agent, 3, 18080);

    // The agent's own /metrics: served by a tokio worker thread of the process `flowscope`.
    curl_n(&ns, "http://127.0.0.1:19971/metrics", 1);
    let spans = spans_of(&agent, "/metrics", 2);
    let server = spans
        .iter()
        .find(|s| s["kind"] == "SERVER")
        .unwrap_or_else(|| panic!("no SERVER span of /metrics: {spans:#?}"));
    let p = &server["process"];
    assert_eq!(
        comm(p),
        "flowscope",
        "the process, not its thread: {server:#}"
    );
    assert_eq!(p["agent"], true, "marked as the agent's own: {server:#}");
    // The thread that accepted is a tokio worker (unknown when only /proc could tell).
    assert!(
        p["thread_name"].is_null() || p["thread_name"] == "tokio-rt-worker",
        "{server:#}"
    );
    let client = spans
        .iter()
        .find(|s| s["kind"] == "CLIENT")
        .expect("CLIENT span of curl");
    assert_eq!(comm(&client["process"]), "curl");
    // ... and labelled as the agent's in the metrics.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = ns.exec("curl -sS --max-time 5 http://127.0.0.1:19971/metrics");
        let own = text.lines().any(|l| {
            l.starts_with("flowscope_requests_total{")
                && l.contains(r#"service="flowscope""#)
                && l.contains(r#"kind="server""#)
                && l.contains(r#"agent="true""#)
        });
        if own {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no agent=\"true\" series:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn exclude_self_leaves_the_agents_own_traffic_out() {
    require_root();
    let ns = Netns::new("fsrx");
    let tmp = TempDir::new();
    std::fs::write(tmp.0.join("page.txt"), "roles\n").unwrap();
    let _py = start_python(&ns, "127.0.0.1", 18082, &tmp.0);
    let agent = start_agent(
        &ns,
        "-i lo -o jsonpb --print-spans --metrics-listen 127.0.0.1:19974 --exclude-self",
    );
    curl_n(&ns, "http://127.0.0.1:19974/metrics", 2);
    curl_n(&ns, "http://127.0.0.1:18082/page.txt", 2);
    // The python exchanges come after the /metrics ones: once they are out, so would those be.
    assert_eq!(spans_of(&agent, "/page.txt", 4).len(), 4);
    std::thread::sleep(Duration::from_millis(500));
    let (spans, flows) = printed(&agent);
    let own: Vec<&Value> = spans
        .iter()
        .filter(|s| s["attributes"]["url.path"] == "/metrics")
        .collect();
    assert!(own.is_empty(), "the agent's own exchanges: {own:#?}");
    for f in &flows {
        let ext = &f["flow"]["extensions"];
        assert!(
            ext["process"]["agent"] != true && ext["peer_process"]["agent"] != true,
            "a flow of the agent: {f:#}"
        );
    }
}

#[test]
fn veth_exchanges_give_a_client_span_of_curl_and_a_server_span_of_python() {
    require_root();
    let link = Link::new();
    let tmp = TempDir::new();
    std::fs::write(tmp.0.join("page.txt"), "roles\n").unwrap();
    let _py = start_python(&link.server, SERVER_V4, 18081, &tmp.0);
    let agent = start_agent(
        &link.server,
        &format!("-i {} -o jsonpb --print-spans", link.server_if),
    );
    curl_n(
        &link.client,
        &format!("http://{SERVER_V4}:18081/page.txt"),
        3,
    );
    check_both_ends(&agent, 3, 18081);
}
