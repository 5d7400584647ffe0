//! End-to-end tests of the Observer API and `flowscope observe` / `flowscope status`: the real
//! agent in a namespace with nginx, curl traffic from another namespace, and the CLI (a tonic
//! client of the Hubble `observer.Observer` service) reading the agent's unix socket.
//!
//! A direct tonic-client test of ServerStatus/GetFlows/GetAgentStatus over a unix socket lives
//! beside the server (observer/src/api/mod.rs), where the generated client is.

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use flowscope_e2e::*;
use serde_json::Value;

/// Fetches `url` from `ns` with curl; returns curl's local port.
fn curl(ns: &Netns, url: &str) -> u16 {
    require_tool("curl");
    let out = ns.exec(&format!(
        "curl -sS -g -o /dev/null --max-time 10 -w '%{{local_port}} %{{http_code}}' '{url}'"
    ));
    let f: Vec<u64> = out.split_whitespace().map(|x| x.parse().unwrap()).collect();
    assert_eq!(f[1], 200, "curl {url}: HTTP {}", f[1]);
    f[0] as u16
}

/// `flowscope observe --server unix://SOCK ARGS`; panics unless it succeeds.
fn observe(sock: &str, args: &str) -> String {
    sh(&format!(
        "{} observe --server unix://{sock} {args}",
        flowscope_bin().display()
    ))
}

fn lines(out: &str) -> Vec<Value> {
    json_lines(
        &out.lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect::<Vec<_>>(),
    )
}

fn ports(flow: &Value) -> (u64, u64) {
    let l4 = &flow["l4"];
    let p = if l4["TCP"].is_object() {
        &l4["TCP"]
    } else {
        &l4["UDP"]
    };
    (
        p["source_port"].as_u64().unwrap_or(0),
        p["destination_port"].as_u64().unwrap_or(0),
    )
}

/// Polls `observe ARGS` until `done(flows)` or the deadline; returns the last result.
fn observe_until(sock: &str, args: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = lines(&observe(sock, args));
        if done(&got) || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn observe_filters_follows_and_pipes_like_hubble() {
    require_root();
    let link = Link::new();
    let tmp = TempDir::new();
    std::fs::write(tmp.0.join("page.txt"), "flowscope\n").unwrap();
    let sock = tmp.0.join("run/observer.sock").display().to_string();
    let _nginx = start_nginx(&link.server, &tmp.0);
    let _agent = start_agent(
        &link.server,
        &format!("-i {} --listen unix://{sock}", link.server_if),
    );
    let url = format!("http://{SERVER_V4}/page.txt");
    let clients: BTreeSet<u64> = (0..3)
        .map(|_| u64::from(curl(&link.client, &url)))
        .collect();

    // --http-status 200: exactly the three responses, each to one of curl's ports.
    let ok = observe_until(&sock, "--last 100 -o json --http-status 200", |f| {
        f.len() >= clients.len()
    });
    assert_eq!(ok.len(), clients.len(), "responses: {ok:#?}");
    let mut seen = BTreeSet::new();
    for f in &ok {
        assert_eq!(f["Type"], "L7");
        assert_eq!(f["l7"]["type"], "RESPONSE");
        assert_eq!(f["l7"]["http"]["code"], 200);
        assert_eq!(f["l7"]["http"]["method"], "GET");
        assert!(f["l7"]["http"]["url"]
            .as_str()
            .unwrap()
            .ends_with("/page.txt"));
        assert_eq!(f["IP"]["source"], SERVER_V4);
        assert_eq!(f["is_reply"], true);
        assert_eq!(f["traffic_direction"], "INGRESS");
        seen.insert(ports(f).1);
    }
    assert_eq!(seen, clients);

    // --not --port 80 leaves out every flow with port 80 on either side; without --not
    // there are such flows.
    let all = lines(&observe(&sock, "--all -o json"));
    assert!(all.iter().any(|f| ports(f).0 == 80 || ports(f).1 == 80));
    for f in lines(&observe(&sock, "--all -o json --not --port 80")) {
        let (s, d) = ports(&f);
        assert!(s != 80 && d != 80, "--not --port 80 kept {f}");
    }

    // jsonpb through a pipe into --input-file - gives what the server-side filter gives.
    let direct = observe(&sock, "--last 100 -o json --http-method GET");
    let piped = sh(&format!(
        "{bin} observe --server unix://{sock} --last 100 -o jsonpb | {bin} observe --input-file - -o json --http-method GET",
        bin = flowscope_bin().display()
    ));
    assert!(!direct.is_empty());
    assert_eq!(piped, direct);

    // --follow prints flows that happen after it started.
    let mut follow = link.server.spawn(&format!(
        "{} observe --server unix://{sock} --follow -o json --http-path ^/page.txt$ --http-status 200",
        flowscope_bin().display()
    ));
    std::thread::sleep(Duration::from_millis(500));
    let port = u64::from(curl(&link.client, &url));
    let deadline = Instant::now() + Duration::from_secs(10);
    let followed = loop {
        let got = lines(&follow.stdout().join("\n"));
        if got.iter().any(|f| ports(f).1 == port) || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        followed.iter().any(|f| ports(f).1 == port),
        "--follow did not show the response to port {port}: {followed:#?}\nstderr: {:?}",
        follow.stderr()
    );
    // Only new flows: none of the three earlier exchanges.
    assert!(followed.iter().all(|f| !clients.contains(&ports(f).1)));
    follow.signal_and_wait(libc::SIGTERM, Duration::from_secs(5));

    // status: Hubble's ServerStatus plus the agent's own.
    let st: Value = serde_json::from_str(&sh(&format!(
        "{} status --server unix://{sock} -o json",
        flowscope_bin().display()
    )))
    .unwrap();
    assert!(
        st["seen_flows"].as_u64().unwrap() >= all.len() as u64,
        "{st}"
    );
    assert_eq!(st["max_flows"], 4095, "{st}");
    assert!(st["counters"].is_object(), "{st}");
}

#[test]
fn observe_without_an_agent_fails_clearly() {
    let out = sh_any(&format!(
        "{} observe --server unix:///nonexistent/flowscope/observer.sock --last 5",
        flowscope_bin().display()
    ));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach the flowscope agent at unix:///nonexistent/flowscope/observer.sock: No such file or directory")
            && err.contains("is `flowscope agent` running?"),
        "{err}"
    );
    let out = sh_any(&format!(
        "{} status --server unix:///nonexistent/flowscope/observer.sock",
        flowscope_bin().display()
    ));
    assert!(!out.status.success());
}
