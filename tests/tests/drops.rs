//! End-to-end tests of kernel drop reports: the real agent in a server namespace, a client in
//! another, and the kernel dropping their packets for real reasons — an nftables DROP rule
//! (NETFILTER_DROP), a TCP SYN and a UDP datagram to closed ports (NO_SOCKET). Each drop must
//! come out of `flowscope observe --verdict DROPPED` with the kernel's reason name, the
//! client's pid where the client's socket still exists, in `flowscope status` and in
//! /metrics; and the kfree_skb program must be gone once the agent exits.

use std::time::{Duration, Instant};

use flowscope_e2e::*;
use serde_json::Value;

fn observe_drops(sock: &str) -> Vec<Value> {
    let out = sh(&format!(
        "{} observe --server unix://{sock} --last 10000 -o json --verdict DROPPED",
        flowscope_bin().display()
    ));
    json_lines(
        &out.lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect::<Vec<_>>(),
    )
}

/// `(protocol, source port, destination port)` of a flow.
fn ports(f: &Value) -> (&'static str, u64, u64) {
    let (proto, p) = if f["l4"]["TCP"].is_object() {
        ("TCP", &f["l4"]["TCP"])
    } else {
        ("UDP", &f["l4"]["UDP"])
    };
    (
        proto,
        p["source_port"].as_u64().unwrap_or(0),
        p["destination_port"].as_u64().unwrap_or(0),
    )
}

fn reason(f: &Value) -> &str {
    f["extensions"]["kernel_drop"]["reason_name"]
        .as_str()
        .unwrap_or("")
}

/// Polls the agent until a DROPPED flow satisfies `want`; panics listing what came instead.
fn wait_for_drop(sock: &str, what: &str, want: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let flows = observe_drops(sock);
        if let Some(f) = flows.iter().find(|f| want(f)) {
            return f.clone();
        }
        if Instant::now() > deadline {
            panic!(
                "no DROPPED flow {what}; got:\n{}",
                flows
                    .iter()
                    .map(Value::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Names of the loaded BPF programs among `ids`.
fn prog_names(ids: &[u64]) -> Vec<String> {
    let v: Value = serde_json::from_str(&sh("bpftool -j prog show")).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter(|p| ids.contains(&p["id"].as_u64().unwrap_or(0)))
        .filter_map(|p| p["name"].as_str().map(String::from))
        .collect()
}

#[test]
fn kernel_drops_are_dropped_flows_with_the_kernels_reason() {
    require_root();
    require_tool("nft");
    require_tool("python3");
    require_tool("bpftool");
    let link = Link::new();
    let tmp = TempDir::new();
    let sock = tmp.0.join("run/observer.sock").display().to_string();
    // Ports of this run only: the kfree_skb program sees the whole host, other tests included.
    let base = 20_000 + (std::process::id() % 10_000) as u16 * 4;
    let (filtered, closed_tcp, closed_udp, full_udp) = (base, base + 1, base + 2, base + 3);

    let mut agent = start_agent(
        &link.server,
        &format!("-i {} --listen unix://{sock} -o none", link.server_if),
    );
    let ids = bpf_prog_ids_of(agent.pid());
    assert!(
        prog_names(&ids)
            .iter()
            .any(|n| n.starts_with("fsd_kfree_skb")),
        "the agent holds no kfree_skb program: {:?}",
        prog_names(&ids)
    );

    // A listener behind a DROP rule: its SYNs die in netfilter, not for lack of a socket.
    let _listener = link.server.spawn(&format!(
        "python3 -c 'import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((\"0.0.0.0\", {filtered})); s.listen(); time.sleep(60)'"
    ));
    link.server.exec(&format!(
        "nft add table inet fsdrops && nft add chain inet fsdrops input {{ type filter hook input priority 0 \\; }} && nft add rule inet fsdrops input tcp dport {filtered} drop"
    ));

    // The client connects without waiting and prints its port; the kernel retransmits the
    // SYN (1 s, 3 s) while the socket lives.
    let client = link.client.spawn(&format!(
        "python3 -u -c 'import socket,time; s=socket.socket(); s.setblocking(False); s.connect_ex((\"{SERVER_V4}\", {filtered})); print(s.getsockname()[1]); time.sleep(8)'"
    ));
    let deadline = Instant::now() + Duration::from_secs(5);
    let client_port: u64 = loop {
        if let Some(l) = client.stdout().first() {
            break l.trim().parse().unwrap();
        }
        assert!(Instant::now() < deadline, "the client printed no port");
        std::thread::sleep(Duration::from_millis(50));
    };
    let syn = wait_for_drop(
        &sock,
        &format!(
            "NETFILTER_DROP of the client's SYN with its pid {}",
            client.pid()
        ),
        |f| {
            ports(f) == ("TCP", client_port, filtered as u64)
                && reason(f) == "NETFILTER_DROP"
                && f["extensions"]["process"]["pid"].as_u64() == Some(client.pid() as u64)
        },
    );
    assert_eq!(syn["IP"]["source"], CLIENT_V4, "{syn}");
    assert_eq!(syn["IP"]["destination"], SERVER_V4, "{syn}");
    assert_eq!(syn["l4"]["TCP"]["flags"]["SYN"], true, "{syn}");
    assert_eq!(syn["verdict"], "DROPPED", "{syn}");
    // Hubble's own reason: a firewall rule's verdict is a policy denial.
    assert_eq!(syn["drop_reason_desc"], "POLICY_DENIED", "{syn}");
    assert_eq!(syn["drop_reason"], 133, "{syn}");

    // A TCP SYN to a closed port: answered with RST, dropped as NO_SOCKET. The server's
    // kernel has no socket for it; the sender is local (another namespace of this node), so
    // the drop is owned by the client's socket by 4-tuple: its pid, once and not retried
    // (the RST ends the connect at once).
    let refused_client = link.client.spawn(&format!(
        "python3 -c 'import socket,time\ntry: socket.create_connection((\"{SERVER_V4}\", {closed_tcp}), timeout=2)\nexcept OSError: pass\ntime.sleep(3)'"
    ));
    let refused = wait_for_drop(
        &sock,
        &format!(
            "NO_SOCKET of a TCP SYN with the client's pid {}",
            refused_client.pid()
        ),
        |f| {
            ports(f).0 == "TCP"
                && ports(f).2 == closed_tcp as u64
                && reason(f) == "NO_SOCKET"
                && f["extensions"]["process"]["pid"].as_u64() == Some(refused_client.pid() as u64)
        },
    );
    assert_eq!(refused["l4"]["TCP"]["flags"]["SYN"], true, "{refused}");

    // A UDP datagram to a closed port (IPv6 this time).
    link.client.exec(&format!(
        "python3 -c 'import socket; socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).sendto(b\"x\", (\"{SERVER_V6}\", {closed_udp}))'"
    ));
    let udp = wait_for_drop(&sock, "NO_SOCKET of a UDP datagram", |f| {
        ports(f).0 == "UDP" && ports(f).2 == closed_udp as u64 && reason(f) == "NO_SOCKET"
    });
    assert_eq!(udp["IP"]["source"], CLIENT_V6, "{udp}");

    // A receiver that never reads, with the smallest buffer: the kernel drops what does not
    // fit (SOCKET_RCVBUFF), on the receiving socket, so the receiver owns the drop.
    let receiver = link.server.spawn(&format!(
        "python3 -u -c 'import socket,time; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1); s.bind((\"0.0.0.0\", {full_udp})); print(\"bound\"); time.sleep(30)'"
    ));
    let deadline = Instant::now() + Duration::from_secs(5);
    while receiver.stdout().is_empty() {
        assert!(Instant::now() < deadline, "the receiver did not bind");
        std::thread::sleep(Duration::from_millis(50));
    }
    link.client.exec(&format!(
        "python3 -c 'import socket; u=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); [u.sendto(b\"x\" * 1000, (\"{SERVER_V4}\", {full_udp})) for _ in range(50)]'"
    ));
    let full = wait_for_drop(&sock, "SOCKET_RCVBUFF of a full UDP socket", |f| {
        ports(f).0 == "UDP" && ports(f).2 == full_udp as u64 && reason(f) == "SOCKET_RCVBUFF"
    });
    eprintln!("SOCKET_RCVBUFF drop: {full}");

    // `flowscope status` counts them; /metrics has them by reason.
    let st: Value = serde_json::from_str(&sh(&format!(
        "{} status --server unix://{sock} -o json",
        flowscope_bin().display()
    )))
    .unwrap();
    assert!(
        st["counters"]["kernel_drops_reported"]
            .as_u64()
            .unwrap_or(0)
            >= 3,
        "{st}"
    );
    assert_eq!(st["counters"]["kernel_drops_unavailable"], 0, "{st}");
    let metrics = link
        .server
        .exec("curl -sS --max-time 5 http://127.0.0.1:9965/metrics");
    for r in ["NETFILTER_DROP", "NO_SOCKET"] {
        assert!(
            metrics.contains(&format!("flowscope_drops_total{{reason=\"{r}\"}}")),
            "no {r} in /metrics:\n{metrics}"
        );
    }

    // Gone with the agent.
    agent.signal_and_wait(libc::SIGINT, Duration::from_secs(10));
    assert_bpf_released(&ids);
}

#[test]
fn drops_false_attaches_no_kfree_skb_program() {
    require_root();
    let ns = Netns::new("fsdr");
    let tmp = TempDir::new();
    let sock = tmp.0.join("run/observer.sock").display().to_string();
    let agent = start_agent(
        &ns,
        &format!("-i lo --listen unix://{sock} -o none --drops false"),
    );
    let names = prog_names(&bpf_prog_ids_of(agent.pid()));
    assert!(!names.is_empty());
    assert!(
        !names.iter().any(|n| n.starts_with("fsd_")),
        "drops = false still loaded {names:?}"
    );
}

#[test]
fn drops_over_the_per_cpu_rate_are_counted_not_reported() {
    require_root();
    require_tool("python3");
    let link = Link::new();
    let tmp = TempDir::new();
    let sock = tmp.0.join("run/observer.sock").display().to_string();
    let cfg = tmp.0.join("agent.toml");
    std::fs::write(&cfg, "drops-rate-per-cpu = 20\n").unwrap();
    let port = 30_000 + (std::process::id() % 10_000) as u16;
    let _agent = start_agent(
        &link.server,
        &format!(
            "--config {} -i {} --listen unix://{sock} -o none --metrics-listen ''",
            cfg.display(),
            link.server_if
        ),
    );
    // 300 datagrams to a closed port within a few ms: far over 20 per second per CPU.
    link.client.exec(&format!(
        "python3 -c 'import socket; u=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); [u.sendto(b\"x\", (\"{SERVER_V4}\", {port})) for _ in range(300)]'"
    ));
    std::thread::sleep(Duration::from_millis(500));
    let reported = observe_drops(&sock)
        .iter()
        .filter(|f| ports(f).2 == port as u64)
        .count();
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert!(reported >= 1, "no drop reported at all");
    // Each CPU's bucket holds at most its burst (20) plus what refilled meanwhile.
    assert!(
        reported <= cpus * 40,
        "{reported} drops reported with a rate of 20/s on {cpus} CPUs"
    );
    let st: Value = serde_json::from_str(&sh(&format!(
        "{} status --server unix://{sock} -o json",
        flowscope_bin().display()
    )))
    .unwrap();
    assert!(
        st["counters"]["kernel_drops_rate_limited"]
            .as_u64()
            .unwrap_or(0)
            >= (300 - reported) as u64,
        "{st}"
    );
}

/// A listener with a backlog of 1 that never accepts: once its accept queue is full the kernel
/// drops each new SYN (and its retransmissions) as consumed, which kfree_skb never shows.
/// Every kernel counts them on the listener (sk_drops, read through sock_diag): status has
/// `tcp_listen_drops_port_<port>`, equal to the namespace's TcpExtListenDrops delta (the only
/// listener there). Where the kernel allows the fentry program on tcp_conn_request (BPF
/// trampolines need ftrace, which this test machine's kernel lacks; Debian's has it), each
/// dropped SYN is also a DROPPED flow, TCP_LISTEN_OVERFLOW, with the client's pid.
#[test]
fn syns_to_a_full_accept_queue_are_counted_per_listener() {
    require_root();
    require_tool("python3");
    require_tool("nstat");
    let link = Link::new();
    let tmp = TempDir::new();
    let sock = tmp.0.join("run/observer.sock").display().to_string();
    let port = 50_000 + (std::process::id() % 10_000) as u16;
    let _agent = start_agent(
        &link.server,
        &format!(
            "-i {} --listen unix://{sock} -o none --metrics-listen ''",
            link.server_if
        ),
    );
    let nstat = |name: &str| -> u64 {
        link.server
            .exec(&format!("nstat -az {name}"))
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("nstat {name}"))
    };
    let before = nstat("TcpExtListenDrops");
    let listener = link.server.spawn(&format!(
        "python3 -u -c 'import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((\"0.0.0.0\", {port})); s.listen(1); print(\"listening\"); time.sleep(60)'"
    ));
    let deadline = Instant::now() + Duration::from_secs(5);
    while listener.stdout().is_empty() {
        assert!(Instant::now() < deadline, "the listener did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Four connects without waiting: two fill the queue (backlog 1 holds two), the others'
    // SYNs are dropped, then sent again after 1 s.
    let clients = link.client.spawn(&format!(
        "python3 -c 'import socket,time\nss=[socket.socket() for _ in range(4)]\nfor s in ss: s.setblocking(False); s.connect_ex((\"{SERVER_V4}\", {port})); time.sleep(0.1)\ntime.sleep(2.5)'"
    ));
    std::thread::sleep(Duration::from_millis(2_000));
    let delta = nstat("TcpExtListenDrops") - before;
    assert!(delta >= 2, "the full queue dropped {delta} SYNs");
    let st: Value = serde_json::from_str(&sh(&format!(
        "{} status --server unix://{sock} -o json",
        flowscope_bin().display()
    )))
    .unwrap();
    let c = &st["counters"];
    assert_eq!(c[format!("tcp_listen_drops_port_{port}")], delta, "{c}");
    assert_eq!(c["tcp_listen_drops"], delta, "{c}");
    if c["kernel_listen_overflow_hook_missing"] != 0 {
        eprintln!("no fentry on tcp_conn_request here: the per-listener counter only");
        return;
    }
    let first = wait_for_drop(&sock, "TCP_LISTEN_OVERFLOW of a SYN", |f| {
        ports(f).2 == port as u64 && reason(f) == "TCP_LISTEN_OVERFLOW"
    });
    assert_eq!(first["l4"]["TCP"]["flags"]["SYN"], true, "{first}");
    assert_eq!(first["IP"]["destination"], SERVER_V4, "{first}");
    assert_eq!(first["verdict"], "DROPPED", "{first}");
    // The SYN's sender is local: the client's pid (by its socket's 4-tuple).
    assert_eq!(
        first["extensions"]["process"]["pid"].as_u64(),
        Some(clients.pid() as u64),
        "{first}"
    );
    let reported = observe_drops(&sock)
        .iter()
        .filter(|f| ports(f).2 == port as u64 && reason(f) == "TCP_LISTEN_OVERFLOW")
        .count() as u64;
    assert!(
        reported >= 2 && reported <= delta,
        "{reported} reported, {delta} dropped"
    );
}
