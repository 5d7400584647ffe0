//! End-to-end: the agent with `--workers 2` (issue 18) decodes and attributes what it does with
//! one engine. nginx in one namespace, 16 curl connections (IPv4 and IPv6, a new client port
//! each, so the flow hash spreads them over both workers) from another over a veth pair; the
//! agent captures the server's veth. With 1 and with 2 workers, every connection must give its
//! request and its 200 response, whole (method, path, code), owned by nginx with curl as the
//! peer; and the two runs must report the same exchanges. With 2 workers the agent runs the
//! threads `engine-0` and `engine-1`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use flowscope_e2e::*;
use serde_json::Value;

const CONNECTIONS: usize = 16;

/// One exchange as printed: `(client port, type, method, url path, code, owner, peer owner)`.
type Exchange = (u64, String, String, String, u64, String, String);

/// Every HTTP flow the agent printed (a duplicate would show as one more).
fn exchanges(agent: &Proc) -> Vec<Exchange> {
    json_lines(&agent.stdout())
        .into_iter()
        .map(|v| v["flow"].clone())
        .filter(|f| f["Type"] == "L7" && f["l7"]["http"].is_object())
        .map(|f| {
            let tcp = &f["l4"]["TCP"];
            let (sp, dp) = (
                tcp["source_port"].as_u64().unwrap_or(0),
                tcp["destination_port"].as_u64().unwrap_or(0),
            );
            let http = &f["l7"]["http"];
            let url = http["url"].as_str().unwrap_or("");
            let path = url.find("/page").map_or(url, |i| &url[i..]).to_string();
            let ext = &f["extensions"];
            let comm = |p: &Value| p["comm"].as_str().unwrap_or("").to_string();
            (
                if sp == 80 { dp } else { sp },
                f["l7"]["type"].as_str().unwrap_or("").to_string(),
                http["method"].as_str().unwrap_or("").to_string(),
                path,
                http["code"].as_u64().unwrap_or(0),
                comm(&ext["process"]),
                comm(&ext["peer_process"]),
            )
        })
        .collect()
}

/// Thread names of process `pid`.
fn threads(pid: i32) -> BTreeSet<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(|t| {
                std::fs::read_to_string(t.ok()?.path().join("comm"))
                    .ok()
                    .map(|c| c.trim().to_string())
            })
            .collect()
        })
        .unwrap_or_default()
}

/// Runs nginx, an agent with `workers` engine threads and the curls; returns what the agent
/// printed and curl's client ports.
fn run(workers: usize) -> (Vec<Exchange>, BTreeSet<u64>) {
    let link = Link::new();
    let tmp = TempDir::new();
    std::fs::write(tmp.0.join("page.txt"), "sharded\n").unwrap();
    let _nginx = start_nginx(&link.server, &tmp.0);
    let sock = tmp.0.join("run/observer.sock").display().to_string();
    let agent = start_agent(
        &link.server,
        &format!(
            "-i {} -o jsonpb --listen unix://{sock} --workers {workers}",
            link.server_if
        ),
    );
    assert!(
        agent
            .stderr()
            .iter()
            .any(|l| l.contains(&format!("decoding on {workers} engine worker thread"))),
        "{:?}",
        agent.stderr()
    );
    // A spawned thread names itself when it first runs (std sets the name from inside the
    // new thread), which may be after the agent logged its line: wait up to 5 s for it.
    let expected = |i: usize| workers > 1 && i < workers;
    let mut names = threads(agent.pid());
    for _ in 0..50 {
        if (0..workers.max(2)).all(|i| names.contains(&format!("engine-{i}")) == expected(i)) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        names = threads(agent.pid());
    }
    for i in 0..workers.max(2) {
        let name = format!("engine-{i}");
        assert_eq!(names.contains(&name), expected(i), "{name} among {names:?}");
    }
    require_tool("curl");
    let mut ports = BTreeSet::new();
    for i in 0..CONNECTIONS {
        let host = if i % 2 == 0 {
            SERVER_V4.to_string()
        } else {
            format!("[{SERVER_V6}]")
        };
        let out = link.client.exec(&format!(
            "curl -sS -g -o /dev/null --max-time 10 -w '%{{local_port}} %{{http_code}}' 'http://{host}/page.txt?i={i}'"
        ));
        let f: Vec<u64> = out.split_whitespace().map(|x| x.parse().unwrap()).collect();
        assert_eq!(f[1], 200, "curl {i}: {out}");
        ports.insert(f[0]);
    }
    assert_eq!(ports.len(), CONNECTIONS, "a new client port per connection");
    // Records wait (at most 250 ms) for their owner and leave on the agent's next batch.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = exchanges(&agent);
        if got.len() >= 2 * CONNECTIONS || Instant::now() > deadline {
            return (got, ports);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn check(workers: usize, got: &[Exchange], ports: &BTreeSet<u64>) {
    assert_eq!(got.len(), 2 * CONNECTIONS, "{workers} workers: {got:#?}");
    for port in ports {
        let of: Vec<&Exchange> = got.iter().filter(|e| e.0 == *port).collect();
        let kinds: BTreeSet<&str> = of.iter().map(|e| e.1.as_str()).collect();
        assert_eq!(
            kinds,
            BTreeSet::from(["REQUEST", "RESPONSE"]),
            "{workers} workers, port {port}: {of:#?}"
        );
        for e in of {
            assert_eq!(e.2, "GET", "{e:?}");
            assert!(e.3.starts_with("/page.txt?i="), "{e:?}");
            if e.1 == "RESPONSE" {
                assert_eq!(e.4, 200, "{e:?}");
            }
            assert_eq!((e.5.as_str(), e.6.as_str()), ("nginx", "curl"), "{e:?}");
        }
    }
}

/// Ports and ids differ between runs: compare what each exchange was.
fn shape(got: &[Exchange]) -> Vec<(String, String, String, u64, String, String)> {
    let mut v: Vec<_> = got
        .iter()
        .map(|e| {
            (
                e.1.clone(),
                e.2.clone(),
                e.3.clone(),
                e.4,
                e.5.clone(),
                e.6.clone(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn two_engine_workers_decode_and_attribute_like_one() {
    require_root();
    let (one, one_ports) = run(1);
    check(1, &one, &one_ports);
    let (two, two_ports) = run(2);
    check(2, &two, &two_ports);
    assert_eq!(shape(&two), shape(&one));
}
