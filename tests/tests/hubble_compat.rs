//! End-to-end: what the upstream `hubble` CLI and Hubble Relay call, as a foreign gRPC client
//! sees it against the real agent — the standard health service, `peer.Peer/Notify`,
//! `GetFlows` summaries in Cilium's wording for every kind of flow, `GetNamespaces`, and a
//! clear UNIMPLEMENTED for agent and debug events.
//!
//! The client is tests/python/hubble_client.py (grpcio stubs generated at run time from
//! observer/proto, as in foreign_client.rs). The traffic is real: curl to nginx (TCP, HTTP),
//! ping and ping -6 (ICMPv4, ICMPv6), UDP DNS queries to a small DNS server, and a gRPC call
//! (grpcio client and server), all between two network namespaces, with the agent capturing
//! in the server's. The interpreter is $FLOWSCOPE_PYTHON, else /usr/bin/python3 with
//! python3-grpcio and python3-grpc-tools; a missing module fails the test, never skips it.

use std::{
    path::PathBuf,
    thread,
    time::{Duration, Instant},
};

use flowscope_e2e::*;
use serde_json::Value;

/// The node name the agent is given (as the DaemonSet does, through FLOWSCOPE_NODE_NAME).
const NODE: &str = "hubble-e2e-node";
/// The agent's TCP listener: Hubble's port, on the server's address.
const API_PORT: u16 = 4244;
/// The gRPC server the traffic goes to.
const GRPC_PORT: u16 = 50051;

fn python() -> String {
    std::env::var("FLOWSCOPE_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".to_string())
}

fn py_cmd(args: &str) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/hubble_client.py");
    format!("{} {} {args}", python(), script.display())
}

fn lines(out: &str) -> Vec<Value> {
    json_lines(
        &out.lines()
            .filter(|l| !l.trim().is_empty())
            .map(String::from)
            .collect::<Vec<_>>(),
    )
}

/// Runs the client in the host namespace (unix socket) to completion; its JSON lines.
fn py(args: &str) -> Vec<Value> {
    lines(&sh(&py_cmd(args)))
}

fn require_python_grpc() {
    let out = sh_any(&py_cmd("check"));
    assert!(
        out.status.success(),
        "the Python gRPC client cannot run with {}: {}{}\ninstall Debian's python3-grpcio and \
         python3-grpc-tools (./dev.sh test does), or set $FLOWSCOPE_PYTHON",
        python(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
}

/// Waits for a `{"ready": true}` line from a Python server.
fn wait_ready(p: &Proc, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !lines(&p.stdout().join("\n"))
        .iter()
        .any(|l| l["ready"] == true)
    {
        assert!(
            Instant::now() < deadline,
            "{what} did not start: {}",
            p.stderr().join("\n")
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Every flow in the agent's ring, as Hubble JSON.
fn all_flows(server: &str) -> Vec<Value> {
    let out = py(&format!("get --server {server}"));
    assert_eq!(
        out.last().map(|l| l["end"].clone()),
        Some(Value::from("OK")),
        "{out:#?}"
    );
    out.into_iter()
        .filter_map(|l| l.get("flow").cloned())
        .collect()
}

fn summary(f: &Value) -> &str {
    f["Summary"].as_str().unwrap_or("")
}

/// The expected summary of an HTTP flow, from its own fields, in Cilium's format
/// (`httpSummary`): `PROTO METHOD URL` / `PROTO CODE Nms (METHOD URL)`.
fn http_summary(f: &Value) -> String {
    let h = &f["l7"]["http"];
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let (proto, method, url) = (s(&h["protocol"]), s(&h["method"]), s(&h["url"]));
    if f["l7"]["type"] == "RESPONSE" {
        let latency_ns: u64 = match &f["l7"]["latency_ns"] {
            Value::String(s) => s.parse().unwrap(),
            v => v.as_u64().unwrap_or(0),
        };
        format!(
            "{proto} {} {}ms ({method} {url})",
            h["code"].as_u64().unwrap_or(0),
            latency_ns / 1_000_000
        )
    } else {
        format!("{proto} {method} {url}")
    }
}

#[test]
fn hubble_clients_get_health_peers_summaries_and_namespaces() {
    require_root();
    require_python_grpc();
    require_tool("ping");
    let link = Link::new();
    let tmp = TempDir::new();
    std::fs::write(tmp.0.join("page.txt"), "flowscope\n").unwrap();
    let sock = tmp.0.join("run/observer.sock").display().to_string();
    let unix = format!("unix://{sock}");
    let _nginx = start_nginx(&link.server, &tmp.0);
    let dns = link
        .server
        .spawn(&py_cmd(&format!("dns-serve --listen {SERVER_V4}")));
    wait_ready(&dns, "the DNS server");
    let grpc = link.server.spawn(&py_cmd(&format!(
        "grpc-serve --listen {SERVER_V4}:{GRPC_PORT}"
    )));
    wait_ready(&grpc, "the gRPC server");
    let mut agent = link.server.spawn(&format!(
        "env FLOWSCOPE_NODE_NAME={NODE} {} agent -i {} --listen {unix} \
         --listen-tcp {SERVER_V4}:{API_PORT} --disable-tls --l4-records every-packet -o none",
        flowscope_bin().display(),
        link.server_if
    ));
    agent.wait_stderr("Ctrl-C to stop", Duration::from_secs(30));
    let tcp = format!("{SERVER_V4}:{API_PORT}");

    // `hubble status` checks health first: SERVING for the names Hubble and gRPC use, on the
    // unix socket and on the TCP listener (from the other namespace, as Relay would).
    let names = [
        "",
        "observer.Observer",
        "hubble.server.Observer",
        "peer.Peer",
    ];
    let svc_args: String = names.iter().map(|n| format!(" --service '{n}'")).collect();
    for out in [
        py(&format!(
            "health --server {unix}{svc_args} --service nope.Nope"
        )),
        lines(
            &link
                .client
                .exec(&py_cmd(&format!("health --server {tcp}{svc_args}"))),
        ),
    ] {
        for (i, name) in names.iter().enumerate() {
            assert_eq!(out[i]["service"], *name, "{out:#?}");
            assert_eq!(out[i]["status"], "SERVING", "{name:?}: {out:#?}");
        }
        if out.len() > names.len() {
            assert_eq!(out[names.len()]["error"], "NOT_FOUND", "{out:#?}");
        }
    }

    // `hubble watch peers` / Relay: this node, where its TCP listener is, plaintext.
    for out in [
        py(&format!("peers --server {unix}")),
        lines(&link.client.exec(&py_cmd(&format!("peers --server {tcp}")))),
    ] {
        let p = &out[0];
        assert_eq!(p["type"], "PEER_ADDED", "{p}");
        assert_eq!(p["name"], NODE, "{p}");
        assert_eq!(p["address"], tcp.as_str(), "{p}");
        assert_eq!(p["has_tls"], false, "{p}");
    }

    // Traffic of every kind.
    let curl = link.client.exec(&format!(
        "curl -sS -o /dev/null -w '%{{http_code}}' --max-time 10 http://{SERVER_V4}/page.txt"
    ));
    assert_eq!(curl.trim(), "200");
    link.client
        .exec(&format!("ping -c 1 -W 5 {SERVER_V4} >/dev/null"));
    link.client
        .exec(&format!("ping -6 -c 1 -W 5 {SERVER_V6} >/dev/null"));
    for (name, rcode) in [("example.com", 0), ("nope.example", 3)] {
        let out = lines(&link.client.exec(&py_cmd(&format!(
            "dns-query --server {SERVER_V4} --name {name}"
        ))));
        assert_eq!(out[0]["rcode"], rcode, "{name}: {out:#?}");
    }
    let out = lines(&link.client.exec(&py_cmd(&format!(
        "grpc-check --target {SERVER_V4}:{GRPC_PORT}"
    ))));
    assert_eq!(out[0]["status"], "SERVING");

    // Each kind of flow and the exact summary Cilium gives it.
    let is_l7 = |f: &Value, t: &str| f["l7"]["type"] == t;
    let http = |f: &Value| f["l7"].get("http").is_some();
    let dns = |f: &Value| f["l7"].get("dns").is_some();
    let grpc_path = "/grpc.health.v1.Health/Check";
    type Pick = Box<dyn Fn(&Value) -> bool>;
    let table: Vec<(&str, Pick, Option<&str>)> = vec![
        (
            "TCP SYN to nginx",
            Box::new(|f| flow::dst_port(f) == 80 && flow::flags(f) == ["SYN"]),
            Some("TCP Flags: SYN"),
        ),
        (
            "TCP SYN-ACK from nginx",
            Box::new(|f| flow::src_port(f) == 80 && flow::flags(f) == ["ACK", "SYN"]),
            Some("TCP Flags: SYN, ACK"),
        ),
        (
            "HTTP request",
            Box::new(move |f| http(f) && is_l7(f, "REQUEST") && flow::dst_port(f) == 80),
            None,
        ),
        (
            "HTTP response",
            Box::new(move |f| http(f) && is_l7(f, "RESPONSE") && flow::src_port(f) == 80),
            None,
        ),
        (
            "gRPC request",
            Box::new(move |f| {
                http(f)
                    && is_l7(f, "REQUEST")
                    && f["l7"]["http"]["url"]
                        .as_str()
                        .unwrap_or("")
                        .ends_with(grpc_path)
            }),
            None,
        ),
        (
            "gRPC response",
            Box::new(move |f| {
                http(f)
                    && is_l7(f, "RESPONSE")
                    && f["l7"]["http"]["url"]
                        .as_str()
                        .unwrap_or("")
                        .ends_with(grpc_path)
            }),
            None,
        ),
        (
            "UDP packet of a DNS query",
            Box::new(|f| f["Type"] == "L3_L4" && flow::dst_port(f) == 53),
            Some("UDP"),
        ),
        (
            "DNS query",
            Box::new(move |f| {
                dns(f) && is_l7(f, "REQUEST") && f["l7"]["dns"]["query"] == "example.com."
            }),
            Some("DNS Query example.com. A"),
        ),
        (
            "DNS answer",
            Box::new(move |f| {
                dns(f) && is_l7(f, "RESPONSE") && f["l7"]["dns"]["query"] == "example.com."
            }),
            Some("DNS Answer \"192.0.2.1\" TTL: 30 (Query example.com. A)"),
        ),
        (
            "DNS NXDOMAIN",
            Box::new(move |f| {
                dns(f) && is_l7(f, "RESPONSE") && f["l7"]["dns"]["query"] == "nope.example."
            }),
            Some("DNS Answer RCode: Non-Existent Domain TTL: 0 (Query nope.example. A)"),
        ),
        (
            "ICMPv4 echo request",
            Box::new(|f| f["l4"]["ICMPv4"]["type"] == 8),
            Some("ICMPv4 EchoRequest"),
        ),
        (
            "ICMPv4 echo reply",
            Box::new(|f| f["l4"]["ICMPv4"].is_object() && f["l4"]["ICMPv4"].get("type").is_none()),
            Some("ICMPv4 EchoReply"),
        ),
        (
            "ICMPv6 echo request",
            Box::new(|f| f["l4"]["ICMPv6"]["type"] == 128),
            Some("ICMPv6 EchoRequest"),
        ),
        (
            "ICMPv6 echo reply",
            Box::new(|f| f["l4"]["ICMPv6"]["type"] == 129),
            Some("ICMPv6 EchoReply"),
        ),
    ];
    // L7 flows appear once their exchange is decoded: poll until every kind is there.
    let deadline = Instant::now() + Duration::from_secs(15);
    let flows = loop {
        let flows = all_flows(&unix);
        let missing: Vec<&str> = table
            .iter()
            .filter(|(_, pick, _)| !flows.iter().any(pick))
            .map(|(what, _, _)| *what)
            .collect();
        if missing.is_empty() {
            break flows;
        }
        assert!(
            Instant::now() < deadline,
            "no flow of these kinds: {missing:?}; flows:\n{}",
            flows
                .iter()
                .map(|f| format!("{} {f}", summary(f)))
                .collect::<Vec<_>>()
                .join("\n")
        );
        thread::sleep(Duration::from_millis(300));
    };
    for (what, pick, want) in &table {
        for f in flows.iter().filter(|f| pick(f)) {
            let want = want.map(String::from).unwrap_or_else(|| http_summary(f));
            assert_eq!(summary(f), want, "{what}: {f}");
        }
    }
    let grpc_req = flows
        .iter()
        .find(|f| table[4].1(f))
        .expect("a gRPC request");
    assert!(
        summary(grpc_req).starts_with("HTTP/2 POST "),
        "gRPC is HTTP/2 POST with the method path: {grpc_req}"
    );
    // Every flow has one.
    let empty: Vec<&Value> = flows.iter().filter(|f| summary(f).is_empty()).collect();
    assert!(empty.is_empty(), "flows without a summary: {empty:#?}");

    // `hubble list namespaces`: no pod metadata on this node, so none; agent and debug events
    // are not flowscope's to give, and the error says so.
    let ns = py(&format!("namespaces --server {unix}"));
    assert_eq!(ns[0]["namespaces"], serde_json::json!([]), "{ns:#?}");
    for kind in ["agent", "debug"] {
        let ev = py(&format!("events --server {unix} --kind {kind}"));
        assert_eq!(ev[0]["code"], "UNIMPLEMENTED", "{ev:#?}");
        assert!(
            ev[0]["details"]
                .as_str()
                .unwrap_or("")
                .contains("without Cilium"),
            "{ev:#?}"
        );
    }

    // ServerStatus as a Cilium agent fills it: a flow rate over the last minute, no node counts.
    let st = &py(&format!("status --server {unix}"))[0];
    assert!(st["flows_rate"].as_f64().unwrap() > 0.0, "{st}");
    assert_eq!(st["has_num_connected_nodes"], false, "{st}");
    assert_eq!(st["has_num_unavailable_nodes"], false, "{st}");
    assert!(
        st["version"].as_str().unwrap().starts_with("flowscope v"),
        "{st}"
    );

    assert_eq!(
        agent.signal_and_wait(libc::SIGINT, Duration::from_secs(10)),
        Some(0),
        "agent exit on SIGINT"
    );
}
