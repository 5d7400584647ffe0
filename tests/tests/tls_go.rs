//! End-to-end Go crypto/tls plaintext (issue 19 item 3): a Go HTTPS server and client built
//! here from source (tests/tests/go_tls/main.go, standard library only, with the `go` that
//! `./dev.sh` installs), a CA made with the openssl CLI. The agent hooks
//! `(*tls.Conn).Write`/`Read` in each Go executable (entry and RET probes); the flows must say
//! exactly what was asked and answered, over HTTP/1.1 and HTTP/2, that their L7 came from the
//! Go probes, and which processes made them. Field offsets come from DWARF (the server), or
//! from the Go-version table (a client linked with `-w`); a stripped client (`-s -w`) is named
//! in status as not hooked, its exchanges decoded from the server's end. curl (OpenSSL) talks
//! to the Go server too. Every program is gone once the agent exits.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use flowscope_e2e::*;
use serde_json::Value;

const GO_MAIN: &str = include_str!("go_tls/main.go");

/// Namespaces and a veth pair named for this test only (other tests run beside it).
fn link() -> Link {
    let server = Netns::new("gts");
    let client = Netns::new("gtc");
    let server_if = unique("gvs");
    let client_if = unique("gvc");
    sh(&format!(
        "ip link add {server_if} netns {} type veth peer name {client_if} netns {}",
        server.name, client.name
    ));
    server.exec(&format!(
        "ip addr add {SERVER_V4}/24 dev {server_if} && ip link set {server_if} up"
    ));
    client.exec(&format!(
        "ip addr add {CLIENT_V4}/24 dev {client_if} && ip link set {client_if} up"
    ));
    Link {
        server,
        client,
        server_if,
        client_if,
    }
}

/// Builds main.go into `dir/NAME` with the given linker flags; offline (no module download,
/// no toolchain switch), the build cache under target/ so later runs reuse it.
fn go_build(dir: &Path, name: &str, ldflags: &str) -> PathBuf {
    require_tool("go");
    let src = dir.join("gosrc");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("main.go"), GO_MAIN).unwrap();
    std::fs::write(src.join("go.mod"), "module flowscopetlsgo\n\ngo 1.21\n").unwrap();
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go");
    let out = dir.join(name);
    sh(&format!(
        "cd {s} && GOCACHE={c}/cache GOPATH={c}/path GOTOOLCHAIN=local GOPROXY=off GOFLAGS= CGO_ENABLED=0 \
         go build -ldflags='{ldflags}' -o {o} .",
        s = src.display(),
        c = cache.display(),
        o = out.display()
    ));
    out
}

fn observe(sock: &str, args: &str) -> Vec<Value> {
    let out = sh(&format!(
        "{} observe --server unix://{sock} {args}",
        flowscope_bin().display()
    ));
    json_lines(
        &out.lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect::<Vec<_>>(),
    )
}

/// The L7 flows whose URL is `url`, waiting until there are `n`.
fn l7_of(sock: &str, url: &str, n: usize) -> Vec<Value> {
    l7_where(sock, n, |u| u == url)
}

/// The L7 flows whose URL contains `part`, waiting until there are `n`.
fn l7_matching(sock: &str, part: &str, n: usize) -> Vec<Value> {
    l7_where(sock, n, |u| u.contains(part))
}

/// The L7 flows whose URL passes `want`, waiting (10 s) until there are `n`. Short of them,
/// prints the agent's counters (where a lost exchange is counted) before returning.
fn l7_where(sock: &str, n: usize, want: impl Fn(&str) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got: Vec<Value> = observe(sock, "--last 1000 -o json --type l7")
            .into_iter()
            .filter(|f| f["l7"]["http"]["url"].as_str().is_some_and(&want))
            .collect();
        if got.len() >= n {
            return got;
        }
        if Instant::now() > deadline {
            eprintln!(
                "{n} flows wanted, {} seen; status: {:#}",
                got.len(),
                agent_status(sock)
            );
            return got;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The status row of process `pid`'s TLS, waiting for it.
fn tls_row(sock: &str, pid: i32) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let st = agent_status(sock);
        let row = st["tls_libraries"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["pid"] == pid && l["kind"] != "blind spot")
            .cloned();
        match row {
            Some(r) => return r,
            None if Instant::now() > deadline => panic!("no TLS row for pid {pid}: {st:#}"),
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// A process at one end: pid, comm, and the `l7_source` its plaintext carries.
type End<'a> = (u64, &'a str, &'a str);

const GO: &str = "go_tls_uprobe";

/// Checks one exchange's two flows: method, URL, status, protocol, where the L7 came from, and
/// the processes. When both ends are hooked, whichever wrote first feeds the decoders, so the
/// flows are about `client` (with the server at the other end) or about `server`; only `ends`
/// may be the flows' process.
fn check_exchange(
    flows: &[Value],
    url: &str,
    code: u64,
    protocol: &str,
    client: End<'_>,
    server: End<'_>,
    ends: &[&str],
) {
    assert_eq!(flows.len(), 2, "one request and one response: {flows:#?}");
    let server_view = flows[0]["extensions"]["process"]["comm"] == server.1;
    let (me, peer, direction) = if server_view {
        (server, client, "INGRESS")
    } else {
        (client, server, "EGRESS")
    };
    assert!(ends.contains(&me.1), "flows about {}: {flows:#?}", me.1);
    for (f, ty) in flows.iter().zip(["REQUEST", "RESPONSE"]) {
        assert_eq!(f["l7"]["type"], ty, "{f}");
        assert_eq!(f["l7"]["http"]["method"], "GET", "{f}");
        assert_eq!(f["l7"]["http"]["url"], url, "{f}");
        assert_eq!(f["l7"]["http"]["protocol"], protocol, "{f}");
        assert_eq!(f["extensions"]["l7_source"], me.2, "{f}");
        assert_eq!(f["extensions"]["process"]["pid"], me.0, "{f}");
        assert_eq!(f["extensions"]["process"]["comm"], me.1, "{f}");
        let p = &f["extensions"]["peer_process"];
        assert!(
            p.is_null() || (p["pid"] == peer.0 && p["comm"] == peer.1),
            "peer {f}"
        );
        assert_eq!(f["traffic_direction"], direction, "{f}");
    }
    assert_eq!(flows[1]["l7"]["http"]["code"], code, "{}", flows[1]);
    assert_eq!(flows[0]["IP"]["source"], CLIENT_V4);
    assert_eq!(flows[0]["IP"]["destination"], SERVER_V4);
    assert_eq!(flow::dst_port(&flows[0]), 443);
}

/// Runs a Go client (`get`) in `ns` after `delay_ms`; meanwhile reads its status row (the
/// agent hooks it when its exec is reported). Returns (pid, its row, "PORT CODE PROTO").
fn go_get(
    ns: &Netns,
    sock: &str,
    bin: &Path,
    ca: &str,
    url: &str,
    proto: &str,
) -> (u64, Value, String) {
    let mut p = ns.spawn(&format!("{} get {ca} {url} {proto} 2500", bin.display()));
    let row = tls_row(sock, p.pid());
    let deadline = Instant::now() + Duration::from_secs(15);
    let out = loop {
        if let Some(l) = p.stdout().first() {
            break l.clone();
        }
        assert!(
            Instant::now() < deadline,
            "{} {url}: no answer: {:?}",
            bin.display(),
            p.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let pid = p.pid() as u64;
    p.signal_and_wait(libc::SIGTERM, Duration::from_secs(5));
    (pid, row, out)
}

#[test]
fn go_https_server_and_clients_are_decoded_from_go_tls_plaintext() {
    require_root();
    require_tool("bpftool");
    require_tool("curl");
    let link = link();
    let tmp = TempDir::new();
    make_ca(&tmp.0);
    let server_bin = go_build(&tmp.0, "goserver", "");
    let client_bin = go_build(&tmp.0, "goclient", "-w");
    let stripped_bin = go_build(&tmp.0, "gostripped", "-s -w");
    let d = tmp.0.display();
    let server = link.server.spawn(&format!(
        "{} serve {SERVER_V4}:443 {d}/server.pem {d}/server.key",
        server_bin.display()
    ));
    link.server.wait_listening(443, "the Go server");
    let sock = tmp.0.join("run/observer.sock").display().to_string();
    let mut agent = start_agent(
        &link.server,
        &format!("-i {} --listen unix://{sock} -o none", link.server_if),
    );
    let bpf_ids = bpf_prog_ids_of(agent.pid());
    let ca = tmp.0.join("ca.pem").display().to_string();
    let srv: End<'_> = (server.pid() as u64, "goserver", GO);

    // The server, running before the agent: hooked at start, offsets from its DWARF.
    let row = tls_row(&sock, server.pid());
    assert_eq!(row["comm"], "goserver", "{row}");
    assert_eq!(row["hooked"], true, "{row}");
    assert!(
        row["kind"]
            .as_str()
            .unwrap()
            .starts_with("go crypto/tls (go1."),
        "{row}"
    );
    assert_eq!(row["detail"], "offsets from DWARF", "{row}");

    // A Go client without DWARF (-w), HTTP/1.1: its offsets come from the version table.
    let url = format!("https://{SERVER_V4}/go?client=h1");
    let (pid, row, out) = go_get(&link.client, &sock, &client_bin, &ca, &url, "h1");
    assert!(out.ends_with(" 200 HTTP/1.1"), "{out}");
    assert_eq!(row["hooked"], true, "{row}");
    assert_eq!(
        row["detail"], "offsets from the go1.17+ table (no DWARF)",
        "{row}"
    );
    let flows = l7_of(&sock, &url, 2);
    let cli: End<'_> = (pid, "goclient", GO);
    check_exchange(
        &flows,
        &url,
        200,
        "HTTP/1.1",
        cli,
        srv,
        &["goclient", "goserver"],
    );

    // The same client over HTTP/2 (ALPN h2), answered 418.
    let url = format!("https://{SERVER_V4}/teapot?client=h2");
    let (pid, _, out) = go_get(&link.client, &sock, &client_bin, &ca, &url, "h2");
    assert!(out.ends_with(" 418 HTTP/2.0"), "{out}");
    let flows = l7_of(&sock, &url, 2);
    let cli: End<'_> = (pid, "goclient", GO);
    check_exchange(
        &flows,
        &url,
        418,
        "HTTP/2",
        cli,
        srv,
        &["goclient", "goserver"],
    );

    // A stripped client: named, not hooked; the server's end alone decodes the exchange.
    let url = format!("https://{SERVER_V4}/go?client=stripped");
    let (pid, row, out) = go_get(&link.client, &sock, &stripped_bin, &ca, &url, "h2");
    assert!(out.ends_with(" 200 HTTP/2.0"), "{out}");
    assert_eq!(row["hooked"], false, "{row}");
    assert!(
        row["detail"]
            .as_str()
            .unwrap()
            .starts_with("stripped Go executable"),
        "{row}"
    );
    let flows = l7_of(&sock, &url, 2);
    let cli: End<'_> = (pid, "gostripped", GO);
    check_exchange(&flows, &url, 200, "HTTP/2", cli, srv, &["goserver"]);

    // curl (OpenSSL, hooked too) against the Go server, HTTP/1.1 and HTTP/2.
    for (flag, path, code, protocol) in [
        ("--http1.1", "/go?client=curl1", 200, "HTTP/1.1"),
        ("--http2", "/teapot?client=curl2", 418, "HTTP/2"),
    ] {
        let url = format!("https://{SERVER_V4}{path}");
        let out = link.client.exec(&format!(
            "echo $$; exec curl -sS {flag} --cacert {ca} -o /dev/null -w \"%{{http_code}}\" '{url}'"
        ));
        let (pid, got) = out.split_once('\n').unwrap();
        assert_eq!(got.trim(), code.to_string(), "curl {flag}: {out}");
        let flows = l7_of(&sock, &url, 2);
        let cli: End<'_> = (pid.trim().parse().unwrap(), "curl", "openssl_uprobe");
        check_exchange(
            &flows,
            &url,
            code,
            protocol,
            cli,
            srv,
            &["curl", "goserver"],
        );
    }

    // Clients that close as soon as their response is read, one connection each: the Go
    // server's last Write returns while the peer is already closing, and another goroutine
    // may close the descriptor before the writing goroutine reaches its RET. Every response
    // must still be seen (the probes look the socket up at the call's entry; found at the RET
    // it lost such a response about once in 15 runs of this test under load).
    const BURST: usize = 30;
    link.client.exec(&format!(
        "for i in $(seq 1 {BURST}); do curl -sS --http2 --cacert {ca} -o /dev/null \
         \"https://{SERVER_V4}/teapot?client=burst$i\" || exit 1; done"
    ));
    let burst = l7_matching(&sock, "client=burst", 2 * BURST);
    for i in 1..=BURST {
        let url = format!("https://{SERVER_V4}/teapot?client=burst{i}");
        let types: Vec<&Value> = burst
            .iter()
            .filter(|f| f["l7"]["http"]["url"] == url)
            .map(|f| &f["l7"]["type"])
            .collect();
        assert_eq!(types, ["REQUEST", "RESPONSE"], "{url}: {burst:#?}");
    }

    // The engine's counters reach status with its periodic snapshot, after the flows: wait
    // for the last connection's to be in it.
    let st = status_when(&sock, "engine_tls_plaintext_flows", 5);
    let c = &st["counters"];
    assert!(
        c["engine_tls_plaintext_flows"].as_u64().unwrap() >= 5,
        "{c}"
    );
    assert_eq!(c["tls_kernel_ring_full_lost"], 0, "{c}");
    assert_eq!(c["tls_plaintext_unavailable"], 0, "{c}");
    // Every Conn was over a *net.TCPConn and its socket found.
    assert_eq!(c["tls_kernel_go_conns_not_tcp"], 0, "{c}");

    // Ctrl-C: every program (the Go uprobes included) goes with the agent.
    agent.signal_and_wait(libc::SIGINT, Duration::from_secs(10));
    assert_bpf_released(&bpf_ids);
    drop(server);
}
