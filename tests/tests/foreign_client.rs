//! End-to-end tests of the Observer API as a foreign client sees it: a Python grpcio client
//! (tests/python/hubble_client.py) whose stubs grpcio-tools generates at run time from
//! observer/proto, connecting with `grpc.insecure_channel("unix:///SOCK")` the way Python users
//! of Hubble do, against the real agent in a namespace with nginx and curl traffic.
//!
//! The interpreter is $FLOWSCOPE_PYTHON, else Debian's /usr/bin/python3 with the
//! python3-grpcio and python3-grpc-tools packages (./dev.sh installs them). A missing module
//! fails the tests; they never skip.

use std::{
    collections::BTreeSet,
    path::PathBuf,
    process::Command,
    thread,
    time::{Duration, Instant},
};

use flowscope_e2e::*;
use serde_json::{json, Value};

/// The Python interpreter that has grpc and grpc_tools.
fn python() -> String {
    std::env::var("FLOWSCOPE_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".to_string())
}

/// tests/python/hubble_client.py.
fn client_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/hubble_client.py")
}

/// `PYTHON hubble_client.py ARGS` as one shell command line.
fn py_cmd(args: &str) -> String {
    format!("{} {} {args}", python(), client_script().display())
}

/// Panics (never skips) unless the interpreter can import grpc and grpc_tools and compile our
/// protos with them.
fn require_python_grpc() {
    let out = sh_any(&py_cmd("check"));
    assert!(
        out.status.success(),
        "the Python gRPC client cannot run with {} (exit {:?}): {}{}\n\
         install Debian's python3-grpcio and python3-grpc-tools (./dev.sh test does), or point \
         $FLOWSCOPE_PYTHON at an interpreter that has grpcio and grpcio-tools",
        python(),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
}

/// Runs the client to completion; its JSON lines.
fn py(args: &str) -> Vec<Value> {
    parse_lines(&sh(&py_cmd(args)))
}

fn parse_lines(out: &str) -> Vec<Value> {
    json_lines(
        &out.lines()
            .filter(|l| !l.trim().is_empty())
            .map(String::from)
            .collect::<Vec<_>>(),
    )
}

/// A FlowFilter as the client's `--whitelist` takes it (proto3 JSON, shell-quoted).
fn filter_arg(flag: &str, f: &Value) -> String {
    format!("{flag} '{f}'")
}

/// Fetches `url` from `ns` with curl; returns curl's local port.
fn curl(ns: &Netns, url: &str) -> u64 {
    require_tool("curl");
    let out = ns.exec(&format!(
        "curl -sS -g -o /dev/null --max-time 10 -w '%{{local_port}} %{{http_code}}' '{url}'"
    ));
    let f: Vec<u64> = out.split_whitespace().map(|x| x.parse().unwrap()).collect();
    assert_eq!(f[1], 200, "curl {url}: HTTP {}", f[1]);
    f[0]
}

/// The flows of a `get` answer (Hubble JSON), after checking the stream ended with OK.
fn flows_of(lines: &[Value]) -> Vec<&Value> {
    let end = lines.last().expect("no output");
    assert_eq!(end["end"], "OK", "GetFlows did not end cleanly: {lines:#?}");
    lines.iter().filter(|l| l.get("flow").is_some()).collect()
}

/// (source port, destination port) of a flow line's TCP layer.
fn tcp_ports(line: &Value) -> (u64, u64) {
    let tcp = &line["flow"]["l4"]["TCP"];
    (
        tcp["source_port"].as_u64().unwrap_or(0),
        tcp["destination_port"].as_u64().unwrap_or(0),
    )
}

/// Polls the stdout of `p` until a JSON line satisfies `pred`; panics after `timeout`.
fn wait_line(p: &Proc, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let lines = parse_lines(&p.stdout().join("\n"));
        if let Some(l) = lines.iter().find(|l| pred(l)) {
            return l.clone();
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not seen in {timeout:?}; stdout:\n{}\nstderr:\n{}",
            p.stdout().join("\n"),
            p.stderr().join("\n")
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// VmRSS of `pid` in KiB.
fn vm_rss_kib(pid: i32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("agent status");
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// Requests: TCP to :80 with the L7 protocol http. Responses: from :80 with status 200.
fn curl_exchange_filters() -> String {
    [
        filter_arg(
            "--whitelist",
            &json!({"destination_port": ["80"], "protocol": ["http"]}),
        ),
        filter_arg(
            "--whitelist",
            &json!({"source_port": ["80"], "http_status_code": ["200"]}),
        ),
    ]
    .join(" ")
}

/// nginx and the agent in the server namespace of a [`Link`] (fields drop in this order).
struct Setup {
    agent: Proc,
    _nginx: Proc,
    sock: String,
    link: Link,
    _tmp: TempDir,
}

impl Setup {
    fn new(agent_args: &str) -> Self {
        require_root();
        require_python_grpc();
        let link = Link::new();
        let tmp = TempDir::new();
        std::fs::write(tmp.0.join("page.txt"), "flowscope\n").unwrap();
        let sock = tmp.0.join("run/observer.sock").display().to_string();
        let nginx = start_nginx(&link.server, &tmp.0);
        let agent = start_agent(
            &link.server,
            &format!("-i {} --listen unix://{sock} {agent_args}", link.server_if),
        );
        Setup {
            agent,
            _nginx: nginx,
            sock,
            link,
            _tmp: tmp,
        }
    }

    fn server(&self) -> String {
        format!("--server unix://{}", self.sock)
    }

    fn url(&self) -> String {
        format!("http://{SERVER_V4}/page.txt")
    }
}

/// ServerStatus and GetFlows (number, whitelist filters, the extension opt-in) through stubs
/// generated from our protos: exactly curl's exchanges, and no `extensions` for a client that
/// did not ask for them.
#[test]
fn python_grpc_client_reads_flows_like_a_hubble_client() {
    let s = Setup::new("--max-flows 1234 -o none");
    let clients: BTreeSet<u64> = (0..3).map(|_| curl(&s.link.client, &s.url())).collect();
    assert_eq!(clients.len(), 3);

    // The six L7 flows (3 requests, 3 responses) show up once the responses are paired.
    let get = format!(
        "get {} --number 100 {}",
        s.server(),
        curl_exchange_filters()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let lines = py(&get);
        if flows_of(&lines).len() >= 6 || Instant::now() > deadline {
            break lines;
        }
        thread::sleep(Duration::from_millis(200));
    };
    let flows = flows_of(&lines);
    assert_eq!(
        flows.len(),
        6,
        "expected curl's 3 requests + 3 responses: {lines:#?}"
    );
    let (mut req_ports, mut resp_ports) = (BTreeSet::new(), BTreeSet::new());
    for l in &flows {
        let f = &l["flow"];
        assert_eq!(f["Type"], "L7", "{l}");
        assert_eq!(f["l7"]["http"]["method"], "GET", "{l}");
        assert!(
            f["l7"]["http"]["url"]
                .as_str()
                .unwrap_or("")
                .ends_with("/page.txt"),
            "{l}"
        );
        let (sp, dp) = tcp_ports(l);
        match f["l7"]["type"].as_str() {
            Some("REQUEST") => {
                assert_eq!(f["IP"]["source"], CLIENT_V4, "{l}");
                assert_eq!(dp, 80, "{l}");
                assert!(
                    f["l7"]["http"].get("code").is_none(),
                    "request with a code: {l}"
                );
                req_ports.insert(sp);
            }
            Some("RESPONSE") => {
                assert_eq!(f["IP"]["source"], SERVER_V4, "{l}");
                assert_eq!(sp, 80, "{l}");
                assert_eq!(f["l7"]["http"]["code"], 200, "{l}");
                resp_ports.insert(dp);
            }
            other => panic!("unexpected l7 type {other:?}: {l}"),
        }
        // No opt-in: a Hubble client must never get an Any it cannot decode.
        assert_eq!(l["has_extensions"], false, "extensions without opt-in: {l}");
    }
    assert_eq!(req_ports, clients, "requests are curl's");
    assert_eq!(resp_ports, clients, "responses go to curl");

    // number=N: the last N matching flows, oldest first, the same as the tail of the full list.
    let last4 = py(&format!(
        "get {} --number 4 {}",
        s.server(),
        curl_exchange_filters()
    ));
    let last4: Vec<&Value> = flows_of(&last4);
    let uuids = |v: &[&Value]| -> Vec<String> {
        v.iter()
            .map(|l| l["flow"]["uuid"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(
        uuids(&last4),
        uuids(&flows[2..]),
        "number=4 is the last four"
    );

    // ServerStatus: flows in the ring, the capacity given with --max-flows.
    let st = py(&format!("status {}", s.server()));
    let st = &st[0];
    assert!(st["num_flows"].as_u64().unwrap() > 0, "{st}");
    assert_eq!(st["max_flows"], 1234, "{st}");
    assert!(
        st["seen_flows"].as_u64().unwrap() >= st["num_flows"].as_u64().unwrap(),
        "{st}"
    );
    assert!(
        st["version"].as_str().unwrap().starts_with("flowscope"),
        "{st}"
    );

    // Every flow of the ring, L3/L4 included, comes without `extensions` when not asked for.
    let all = py(&format!("get {}", s.server()));
    let all = flows_of(&all);
    assert!(all.len() > 6, "L3/L4 flows too: {all:#?}");
    let with_ext: Vec<_> = all
        .iter()
        .filter(|l| l["has_extensions"] != false)
        .collect();
    assert!(
        with_ext.is_empty(),
        "extensions without opt-in: {with_ext:#?}"
    );

    // With the flowscope opt-in the same flows carry a flowscope.FlowExtension that Python can
    // unpack with the generated class.
    let ext = py(&format!(
        "get {} --number 100 --ext {}",
        s.server(),
        curl_exchange_filters()
    ));
    let ext = flows_of(&ext);
    assert_eq!(uuids(&ext), uuids(&flows), "the same flows with --ext");
    for l in &ext {
        assert_eq!(l["has_extensions"], true, "{l}");
        assert_eq!(
            l["extension_type"], "type.googleapis.com/flowscope.FlowExtension",
            "{l}"
        );
        assert_eq!(l["extension_unpacked"], true, "{l}");
        assert!(
            l["extension"]["span_id"]
                .as_str()
                .is_some_and(|s| s.len() == 16),
            "{l}"
        );
    }
}

/// A Python `follow` stream gets flows as they happen and ends with status OK, promptly, when
/// the agent is stopped with SIGINT.
#[test]
fn python_follow_streams_new_flows_and_ends_cleanly_on_sigint() {
    let mut s = Setup::new("-o none");
    let before = curl(&s.link.client, &s.url());
    let responses = filter_arg(
        "--whitelist",
        &json!({"source_port": ["80"], "http_status_code": ["200"]}),
    );
    let follower = s.link.server.spawn(&py_cmd(&format!(
        "follow {} {responses} --timeout 60",
        s.server()
    )));
    wait_line(&follower, "follower ready", Duration::from_secs(15), |l| {
        l["ready"] == true
    });

    let mut expected = BTreeSet::new();
    for round in 0..2 {
        let ports: BTreeSet<u64> = (0..2).map(|_| curl(&s.link.client, &s.url())).collect();
        for &p in &ports {
            wait_line(
                &follower,
                &format!("round {round}: response to port {p}"),
                Duration::from_secs(10),
                |l| l.get("flow").is_some() && tcp_ports(l).1 == p,
            );
        }
        expected.extend(ports);
    }

    // SIGINT: the agent exits 0 and the stream ends with OK, not an error or a hang.
    let stop = Instant::now();
    assert_eq!(
        s.agent
            .signal_and_wait(libc::SIGINT, Duration::from_secs(10)),
        Some(0),
        "agent exit on SIGINT"
    );
    let end = wait_line(
        &follower,
        "end of the follow stream",
        Duration::from_secs(10),
        |l| l.get("end").is_some(),
    );
    assert_eq!(end["end"], "OK", "follow stream status after SIGINT: {end}");
    assert!(
        stop.elapsed() < Duration::from_secs(10),
        "stream took {:?} to end",
        stop.elapsed()
    );
    let mut follower = follower;
    // Signal 0 only checks the process: this waits for the client's own exit.
    assert_eq!(
        follower.signal_and_wait(0, Duration::from_secs(10)),
        Some(0),
        "python follower exit; stderr:\n{}",
        follower.stderr().join("\n")
    );

    // Exactly the responses of the curls made while following: none from before.
    let lines = parse_lines(&follower.stdout().join("\n"));
    let got: BTreeSet<u64> = lines
        .iter()
        .filter(|l| l.get("flow").is_some())
        .map(|l| {
            assert_eq!(l["flow"]["l7"]["http"]["code"], 200, "{l}");
            assert_eq!(l["has_extensions"], false, "{l}");
            tcp_ports(l).1
        })
        .collect();
    assert_eq!(
        got, expected,
        "followed responses (curl before following: {before})"
    );
    assert!(!got.contains(&before));
}

/// A follower that reads one message a second while a burst of traffic goes by: the agent
/// keeps serving others promptly, its memory stays bounded, and the slow follower is told
/// with OBSERVER_EVENTS_QUEUE lost events exactly how many flows it missed.
#[test]
fn slow_python_follower_gets_lost_events_and_does_not_hold_the_agent() {
    // 4000 requests at 500/s: traffic flows for 8 s of the follower's 12 slow seconds.
    const REQUESTS: u64 = 4000;
    const RATE: u64 = 500;
    const RSS_LIMIT_KIB: u64 = 100 * 1024;
    let started = Instant::now();
    // A small ring, full within the first second of the burst: after that, memory can only
    // grow through what is kept for the follower.
    let mut s = Setup::new("--max-flows 2048 -o none");
    let agent_pid = s.agent.pid();
    let rss_before = vm_rss_kib(agent_pid);

    let slow = s.link.server.spawn(&py_cmd(&format!(
        "slow-follow {} --slow-seconds 12 --idle 3 --timeout 55 --small-window",
        s.server()
    )));
    wait_line(&slow, "slow follower ready", Duration::from_secs(15), |l| {
        l["ready"] == true
    });

    let load = s.link.client.spawn(&py_cmd(&format!(
        "load --url {} --requests {REQUESTS} --rate {RATE}",
        s.url()
    )));

    // While the burst runs and the slow follower dawdles: RSS samples, and a fast client.
    let mut rss_max = rss_before;
    let mut observe_max = Duration::ZERO;
    let mut observe_runs = 0;
    let bin = flowscope_bin();
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut observe_nonempty = 0u32;
    let summary = loop {
        rss_max = rss_max.max(vm_rss_kib(agent_pid));
        let t = Instant::now();
        let out = Command::new(&bin)
            .args(["observe", "--server", &format!("unix://{}", s.sock)])
            .args(["--last", "20", "-o", "json"])
            .output()
            .expect("run flowscope observe");
        let took = t.elapsed();
        assert!(
            out.status.success(),
            "observe --last failed during the burst: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The first runs may come before the burst's first flows reach the ring (records wait
        // for their owner up to 250 ms): count the answers that had flows, check at the end.
        if String::from_utf8_lossy(&out.stdout).lines().count() > 0 {
            observe_nonempty += 1;
        }
        observe_max = observe_max.max(took);
        observe_runs += 1;
        let lines = parse_lines(&slow.stdout().join("\n"));
        if let Some(sum) = lines.iter().find(|l| l["summary"] == true) {
            break sum.clone();
        }
        assert!(
            Instant::now() < deadline,
            "slow follower did not finish; stdout:\n{}\nstderr:\n{}",
            slow.stdout().join("\n"),
            slow.stderr().join("\n")
        );
        thread::sleep(Duration::from_millis(500));
    };
    let load_out = wait_line(&load, "load finished", Duration::from_secs(5), |l| {
        l.get("requests").is_some()
    });
    rss_max = rss_max.max(vm_rss_kib(agent_pid));
    let status: Value = serde_json::from_str(&sh(&format!(
        "{} status --server unix://{} -o json",
        bin.display(),
        s.sock
    )))
    .expect("status json");
    eprintln!(
        "load: {load_out}\nslow follower: {summary}\nagent VmRSS: {rss_before} KiB before, \
         {rss_max} KiB max\nobserve --last 20: {observe_runs} runs, slowest {observe_max:?}\n\
         counters: {}",
        status["counters"]
    );

    assert_eq!(
        load_out["ok"], REQUESTS,
        "every request answered: {load_out}"
    );
    assert!(
        observe_nonempty * 2 >= observe_runs,
        "observe --last 20 answered with flows in only {observe_nonempty} of {observe_runs} runs during the burst"
    );
    assert_eq!(
        summary["end"], "CANCELLED",
        "the client ended the stream: {summary}"
    );
    assert!(
        summary["slow_reads"].as_u64().unwrap() >= 5,
        "slow phase: {summary}"
    );
    let lost = summary["lost"]["OBSERVER_EVENTS_QUEUE"]
        .as_u64()
        .unwrap_or(0);
    assert!(lost > 0, "no OBSERVER_EVENTS_QUEUE lost event: {summary}");
    assert_eq!(
        summary["lost"].as_object().unwrap().len(),
        1,
        "lost events of another source: {summary}"
    );
    // Every flow pushed while it followed either reached the follower or was reported lost:
    // at least those counted once the stream had gone idle (`seen_settled`), at most those
    // counted after it cancelled (`seen_after`; a late flow may come in between).
    let before = summary["seen_before"].as_u64().unwrap();
    let settled = summary["seen_settled"].as_u64().unwrap() - before;
    let seen = summary["seen_after"].as_u64().unwrap() - before;
    // At least the L7 request and response of each (L3/L4 records are control-only).
    assert!(settled >= REQUESTS * 2, "flows during the burst: {summary}");
    let accounted = summary["flows"].as_u64().unwrap() + lost;
    assert!(
        (settled..=seen).contains(&accounted),
        "received + lost within the flows seen while following (settled..after): {summary}"
    );
    // The agent counts them too (and nothing was lost in the kernel: it kept up).
    assert!(
        status["counters"]["lost_events_observer_queue"]
            .as_u64()
            .unwrap()
            >= lost,
        "{status}"
    );
    assert_eq!(status["counters"]["lost_events_kernel_ring"], 0, "{status}");
    assert!(
        rss_max < RSS_LIMIT_KIB,
        "agent VmRSS grew to {rss_max} KiB (before: {rss_before} KiB)"
    );
    assert!(
        observe_max < Duration::from_secs(3),
        "observe --last took {observe_max:?} while a slow follower lagged"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        s.agent
            .signal_and_wait(libc::SIGINT, Duration::from_secs(10)),
        Some(0)
    );
}
