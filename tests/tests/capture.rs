//! End-to-end capture tests: the real agent on a real veth in network namespaces, nginx serving
//! and curl fetching, checked packet by packet; and cleanup after clean and unclean exits.

use std::time::Duration;

use flowscope_e2e::*;
use serde_json::Value;

/// What curl reports about one transfer.
struct Transfer {
    local_port: u16,
    request_bytes: u64,
    response_bytes: u64,
}

fn curl(ns: &Netns, url: &str) -> Transfer {
    require_tool("curl");
    let out = ns.exec(&format!(
        "curl -sS -g -o /dev/null --max-time 10 -w '%{{local_port}} %{{size_request}} %{{size_header}} %{{size_download}} %{{http_code}}' '{url}'"
    ));
    let f: Vec<u64> = out.split_whitespace().map(|x| x.parse().unwrap()).collect();
    assert_eq!(f[4], 200, "curl {url}: HTTP {}", f[4]);
    Transfer {
        local_port: f[0] as u16,
        request_bytes: f[1],
        response_bytes: f[2] + f[3],
    }
}

/// What reports the server's accepted socket, as `flowscope status` says and the kernel shows.
/// Without kprobes (this project's machines), on kernels with the socket tracepoints (6.3+):
/// attribution's programs on them, run by tail call from the TLS probes' on the tc and socket
/// paths (one program per socket I/O), with links of their own on afpacket, which starts no
/// TLS probes (a server otherwise found only by a lucky /proc scan: the afpacket failure of
/// 2e507bb); on older kernels the syscall tracepoints; with kprobes, kprobes.
fn check_owner_hook(status: &serde_json::Value, agent_progs: &[u64], source: &str) {
    let attribution = status["attribution"].as_str().unwrap_or_default();
    let method = attribution.split(' ').next().unwrap_or_default();
    if method == "kprobe" {
        assert_eq!(attribution, "kprobe");
        return;
    }
    assert!(method.ends_with("tp_btf"), "attribution: {attribution:?}");
    let btf = std::fs::read("/sys/kernel/btf/vmlinux").expect("kernel BTF");
    let has = |name: &[u8]| btf.windows(name.len()).any(|w| w == name);
    let sock_tps = has(b"btf_trace_sock_send_length");
    let tcp_send = has(b"btf_trace_tcp_sendmsg_locked");
    let chained = sock_tps && source != "afpacket";
    let hook = match (sock_tps, chained, tcp_send) {
        (false, _, _) => "syscall tracepoints",
        (true, false, false) => "socket tracepoints",
        (true, false, true) => "socket tracepoints and tcp_sendmsg_locked",
        (true, true, false) => "socket tracepoints, run from fst_sock_send/fst_sock_recv",
        (true, true, true) => {
            "socket tracepoints, run from fst_sock_send/fst_sock_recv, and tcp_sendmsg_locked"
        }
    };
    assert_eq!(attribution, format!("{method} (accepted sockets: {hook})"));
    if !sock_tps {
        return;
    }
    let loaded = bpf_prog_names(agent_progs);
    let linked = linked_bpf_programs(Some(agent_progs));
    for p in ["fsa_sock_send", "fsa_sock_recv"] {
        assert!(loaded.iter().any(|x| x == p), "{p} not loaded: {loaded:?}");
        assert_eq!(
            linked.iter().any(|x| x == p),
            !chained,
            "{p} has a link of its own: {linked:?}"
        );
    }
    for p in ["fst_sock_send", "fst_sock_recv"] {
        assert_eq!(
            linked.iter().any(|x| x == p),
            chained,
            "{p} (TLS probes) attached: {linked:?}"
        );
    }
    assert_eq!(
        linked.iter().any(|x| x == "fsa_tcp_send"),
        tcp_send,
        "fsa_tcp_send attached: {linked:?}"
    );
}

/// Runs one HTTP fetch through the agent with `agent_args` and checks every packet of it.
fn fetch_and_check(agent_args: &str, v6: bool, source: &str) {
    require_root();
    require_tool("bpftool");
    let link = Link::new();
    let tmp = TempDir::new();
    let body = "flowscope ".repeat(700); // 7000 bytes: several segments each way at MTU 1500
    std::fs::write(tmp.0.join("page.txt"), &body).unwrap();
    let nginx = start_nginx(&link.server, &tmp.0);
    let sock = tmp.0.join("observer.sock").display().to_string();
    let mut agent = start_agent(
        &link.server,
        &format!(
            "-i {} -o json --l4-records every-packet --listen unix://{sock} {agent_args}",
            link.server_if
        ),
    );
    let bpf_ids = bpf_prog_ids_of(agent.pid());
    check_owner_hook(&agent_status(&sock), &bpf_ids, source);

    let (server_ip, client_ip, url) = if v6 {
        (
            SERVER_V6,
            CLIENT_V6,
            format!("http://[{SERVER_V6}]/page.txt"),
        )
    } else {
        (SERVER_V4, CLIENT_V4, format!("http://{SERVER_V4}/page.txt"))
    };
    let t = curl(&link.client, &url);
    // Let the FIN exchange and the ring drain.
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(
        agent.signal_and_wait(libc::SIGTERM, Duration::from_secs(10)),
        Some(0),
        "agent exit status"
    );

    assert!(
        agent
            .stderr()
            .iter()
            .any(|l| l.contains(&format!("capturing (path: {source})"))),
        "capture path {source} not in use: {:?}",
        agent.stderr()
    );
    let events = json_lines(&agent.stdout());
    let port = u64::from(t.local_port);
    let conn: Vec<&Value> = events
        .iter()
        // Captured packets only: the kernel-drop program may also report (DROPPED, with no
        // capture interface) a packet of this port that the kernel freed unprocessed.
        .filter(|e| {
            !flow::is_l7(e)
                && flow::protocol(e) == "TCP"
                && (flow::src_port(e) == port || flow::dst_port(e) == port)
                && e["verdict"] != "DROPPED"
        })
        .collect();
    assert!(
        !conn.is_empty(),
        "no packet of the curl connection (port {port}) seen; got {} events",
        events.len()
    );
    for e in &conn {
        assert_eq!(flow::iface(e), link.server_if.as_str(), "{e}");
        let c2s = flow::src_port(e) == port;
        let (src, dst, dir) = if c2s {
            (client_ip, server_ip, "ingress")
        } else {
            (server_ip, client_ip, "egress")
        };
        assert_eq!(flow::src(e), src, "{e}");
        assert_eq!(flow::dst(e), dst, "{e}");
        assert_eq!(flow::packet_direction(e), dir, "{e}");
        assert_eq!(
            if c2s {
                flow::dst_port(e)
            } else {
                flow::src_port(e)
            },
            80,
            "{e}"
        );
        assert_eq!(e["is_reply"], !c2s, "{e}");
    }
    // The handshake: the client's SYN comes first, then the server's SYN-ACK.
    assert_eq!(
        flow::flags(conn[0]),
        vec!["SYN"],
        "first packet {}",
        conn[0]
    );
    assert_eq!(flow::packet_direction(conn[0]), "ingress");
    assert_eq!(
        flow::flags(conn[1]),
        vec!["ACK", "SYN"],
        "second packet {}",
        conn[1]
    );
    assert_eq!(flow::packet_direction(conn[1]), "egress");
    // Both sides close.
    for dir in ["ingress", "egress"] {
        assert!(
            conn.iter()
                .any(|e| flow::packet_direction(e) == dir
                    && flow::flags(e).contains(&"FIN".to_string())),
            "no FIN {dir}"
        );
    }
    // Payload bytes each way equal what curl sent and received, exactly (no loss on a veth).
    let sum = |dir: &str| {
        conn.iter()
            .filter(|e| flow::packet_direction(e) == dir)
            .map(|e| flow::payload_bytes(e))
            .sum::<u64>()
    };
    assert_eq!(sum("ingress"), t.request_bytes, "request bytes");
    assert_eq!(
        sum("egress"),
        t.response_bytes,
        "response bytes (headers + body)"
    );
    // And the engine paired the exchange: one HTTP request and one response for this connection.
    let l7: Vec<&Value> = events
        .iter()
        .filter(|e| flow::is_l7(e) && (flow::src_port(e) == port || flow::dst_port(e) == port))
        .collect();
    assert_eq!(l7.len(), 2, "L7 flows of the fetch: {l7:?}");
    assert_eq!(l7[0]["l7"]["type"], "REQUEST");
    assert_eq!(l7[0]["l7"]["http"]["method"], "GET");
    assert!(
        l7[0]["l7"]["http"]["url"]
            .as_str()
            .unwrap()
            .ends_with("/page.txt"),
        "{}",
        l7[0]
    );
    assert_eq!(l7[1]["l7"]["type"], "RESPONSE");
    assert_eq!(l7[1]["l7"]["http"]["code"], 200);
    // Both ends are processes on this node: nginx owns the server socket (the local end of
    // this capture), curl the client socket (the peer).
    for e in &l7 {
        assert_eq!(
            e["extensions"]["process"]["pid"],
            nginx.pid(),
            "server owner {e}"
        );
        assert_eq!(e["extensions"]["process"]["comm"], "nginx", "{e}");
    }
    // The peer's owner is looked up when a record is released, which waits only for the
    // local owner: on the request it can still be unknown (a known race, see the issue note),
    // but when known it must be right, and by the response it must be known.
    let peer = |e: &Value| e["extensions"]["peer_process"]["comm"].clone();
    assert!(
        matches!(peer(l7[0]), Value::Null) || peer(l7[0]) == "curl",
        "client owner {}",
        l7[0]
    );
    assert_eq!(peer(l7[1]), "curl", "client owner {}", l7[1]);
    if source != "afpacket" {
        let lost: Vec<String> = agent
            .stderr()
            .into_iter()
            .filter(|l| l.starts_with("kernel_ring_full_lost"))
            .collect();
        assert_eq!(lost, vec!["kernel_ring_full_lost: 0".to_string()]);
    }
    drop(agent);
    assert!(
        !tc_state(&link.server, &link.server_if).contains("clsact"),
        "clsact left behind"
    );
    assert_bpf_released(&bpf_ids);
}

#[test]
fn tc_sees_every_packet_of_an_http_fetch_v4() {
    fetch_and_check("--capture tc", false, "tc");
}

#[test]
fn tc_sees_every_packet_of_an_http_fetch_v6() {
    fetch_and_check("--capture tc", true, "tc");
}

#[test]
fn tc_clsact_attach_sees_the_same_and_removes_its_qdisc() {
    fetch_and_check("--capture tc --tc-attach clsact", false, "tc");
}

#[test]
fn socket_filter_path_sees_the_same() {
    fetch_and_check("--capture socket", false, "socket");
}

#[test]
fn afpacket_path_sees_the_same() {
    fetch_and_check("--capture afpacket", true, "afpacket");
}

/// While running with clsact, SIGKILL leaves the qdisc and filters (nothing can run at
/// SIGKILL); the next start removes them, and its own clean exit leaves nothing.
#[test]
fn next_start_cleans_up_after_sigkill() {
    require_root();
    let link = Link::new();
    let mut agent = start_agent(
        &link.server,
        &format!("-i {} --capture tc --tc-attach clsact", link.server_if),
    );
    let first_ids = bpf_prog_ids_of(agent.pid());
    let state = tc_state(&link.server, &link.server_if);
    assert!(
        state.contains("clsact")
            && state.contains("fs_tc_ingress")
            && state.contains("fs_tc_egress"),
        "{state}"
    );
    assert_eq!(
        agent.signal_and_wait(libc::SIGKILL, Duration::from_secs(5)),
        None
    );
    let left = tc_state(&link.server, &link.server_if);
    assert!(
        left.contains("fs_tc_ingress"),
        "SIGKILL is expected to leave the clsact filters: {left}"
    );

    let mut agent = start_agent(
        &link.server,
        &format!("-i {} --capture tc --tc-attach clsact", link.server_if),
    );
    let bpf_ids = bpf_prog_ids_of(agent.pid());
    assert!(
        agent
            .stderr()
            .iter()
            .any(|l| l.contains("did not exit cleanly") || l.contains("cleaned up after an agent")),
        "the second start did not report the cleanup: {:?}",
        agent.stderr()
    );
    // Exactly one filter each way: the stale ones are gone, the new ones are attached.
    let state = tc_state(&link.server, &link.server_if);
    assert_eq!(
        state
            .lines()
            .filter(|l| l.contains("fs_tc_ingress"))
            .count(),
        1,
        "{state}"
    );
    assert_eq!(
        state.lines().filter(|l| l.contains("fs_tc_egress")).count(),
        1,
        "{state}"
    );
    assert_eq!(
        agent.signal_and_wait(libc::SIGINT, Duration::from_secs(10)),
        Some(0)
    );
    let state = tc_state(&link.server, &link.server_if);
    assert!(
        !state.contains("clsact") && !state.contains("fs_tc"),
        "left after clean exit: {state}"
    );
    assert_bpf_released(&bpf_ids);
    // The killed agent's programs were held by its clsact filters until the second start removed them.
    assert_bpf_released(&first_ids);
}

/// TCX links belong to the process: SIGKILL releases them and the programs with them.
#[test]
fn sigkill_with_tcx_leaves_nothing() {
    require_root();
    let link = Link::new();
    let mut agent = start_agent(
        &link.server,
        &format!("-i {} --capture tc --tc-attach tcx", link.server_if),
    );
    let bpf_ids = bpf_prog_ids_of(agent.pid());
    assert!(
        bpf_ids.len() >= 2,
        "the agent holds its TC programs: {bpf_ids:?}"
    );
    assert_eq!(
        agent.signal_and_wait(libc::SIGKILL, Duration::from_secs(5)),
        None
    );
    assert_bpf_released(&bpf_ids);
    assert!(!tc_state(&link.server, &link.server_if).contains("clsact"));
}

/// With no --iface the agent follows interfaces created after it started.
#[test]
fn attaches_to_interfaces_that_appear_later() {
    require_root();
    let ns = Netns::new("fsw");
    let mut agent = start_agent(&ns, "-o json");
    let bpf_ids = bpf_prog_ids_of(agent.pid());
    let a = unique("va");
    let b = unique("vb");
    let peer = Netns::new("fsp");
    sh(&format!(
        "ip link add {a} netns {} type veth peer name {b} netns {}",
        ns.name, peer.name
    ));
    ns.exec(&format!(
        "ip addr add 198.19.7.1/24 dev {a} && ip link set {a} up"
    ));
    peer.exec(&format!(
        "ip addr add 198.19.7.2/24 dev {b} && ip link set {b} up"
    ));
    agent.wait_stderr("new interface: capturing", Duration::from_secs(10));
    peer.exec("ping -c 2 -i 0.2 -W 2 198.19.7.1");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        agent.signal_and_wait(libc::SIGTERM, Duration::from_secs(10)),
        Some(0)
    );
    let events = json_lines(&agent.stdout());
    let echo: Vec<&Value> = events
        .iter()
        .filter(|e| flow::iface(e) == a.as_str() && flow::protocol(e) == "ICMPv4")
        .collect();
    assert!(
        echo.iter()
            .any(|e| flow::packet_direction(e) == "ingress" && flow::src(e) == "198.19.7.2"),
        "{events:?}"
    );
    assert!(
        echo.iter()
            .any(|e| flow::packet_direction(e) == "egress" && flow::dst(e) == "198.19.7.2"),
        "{events:?}"
    );
    assert_bpf_released(&bpf_ids);
}

#[test]
fn unknown_interface_is_a_clear_error() {
    require_root();
    let out = sh_any(&format!("{} agent -i fs-nope0", flowscope_bin().display()));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("fs-nope0") && err.contains("no network interface"),
        "{err}"
    );
}

#[test]
fn unprivileged_start_is_a_clear_error() {
    require_root();
    require_tool("setpriv");
    let out = sh_any(&format!(
        "setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all {} agent -i lo",
        flowscope_bin().display()
    ));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("run it as root"), "{err}");
}

/// Once attached, the agent keeps only the capabilities running needs.
#[test]
fn agent_drops_capabilities_after_start() {
    require_root();
    let link = Link::new();
    let mut agent = start_agent(&link.server, &format!("-i {}", link.server_if));
    let bpf_ids = bpf_prog_ids_of(agent.pid());
    let status = std::fs::read_to_string(format!("/proc/{}/status", agent.pid())).unwrap();
    let caps = |k: &str| {
        let v = status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap()
            .trim();
        u64::from_str_radix(v, 16).unwrap()
    };
    // NET_ADMIN(12) DAC_READ_SEARCH(2) SYS_PTRACE(19) BPF(39) PERFMON(38).
    let want: u64 = (1 << 12) | (1 << 2) | (1 << 19) | (1 << 39) | (1 << 38);
    assert_eq!(
        caps("CapEff:"),
        want,
        "effective set {:#x}",
        caps("CapEff:")
    );
    assert_eq!(caps("CapPrm:"), want, "permitted set");
    assert_eq!(caps("CapBnd:"), want, "bounding set");
    assert_eq!(caps("CapInh:"), 0);
    // And it still works: a new TC attach would need NET_ADMIN + BPF, reading counters BPF.
    assert_eq!(
        agent.signal_and_wait(libc::SIGTERM, Duration::from_secs(10)),
        Some(0)
    );
    assert!(
        agent
            .stderr()
            .iter()
            .any(|l| l.starts_with("kernel_packets_seen")),
        "{:?}",
        agent.stderr()
    );
    assert_bpf_released(&bpf_ids);
}
