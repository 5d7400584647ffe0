//! End-to-end: the kernel's own TCP events (issue 17) — tcp:tcp_retransmit_skb,
//! tcp:tcp_send_reset and tcp:tcp_receive_reset — come out of `flowscope observe` as flows
//! with the socket's process and state.
//!
//! Retransmissions are checked against the kernel's own count: a server namespace sends 3 MB
//! to a client namespace whose nftables input rule drops every 15th data segment (no netem on
//! this kernel), so the server's TCP retransmits; the RETRANSMIT flows of that connection must
//! add up to the server namespace's `nstat -az TcpRetransSegs` delta. Exactly: both count
//! `tcp_skb_pcount` of each retransmitted skb. The kernel adds to TcpRetransSegs before it
//! transmits and fires the tracepoint after, on success only, so a transmit that fails
//! (counted in TcpExtTCPRetransFail) would make them differ: the test requires none. SYN/ACK
//! retransmissions (tcp_retransmit_synack) count in TcpRetransSegs but are another tracepoint:
//! the rule drops data segments only, and nothing else in the namespace sends TCP.

use std::time::{Duration, Instant};

use flowscope_e2e::*;
use serde_json::Value;

const SENDER: &str = r#"
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1)
print("listening", flush=True)
c, _ = s.accept()
c.sendall(b"x" * 3_000_000)
c.shutdown(socket.SHUT_WR)
c.recv(1)
c.close()
print("sent", flush=True)
"#;

const RECEIVER: &str = r#"
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
print("port", s.getsockname()[1], flush=True)
while s.recv(65536):
    pass
s.close()
"#;

/// A server that accepts, does not read what the client sent, and closes: the kernel resets
/// the connection (RFC 9293 §3.10.4: data unread at close) from the server's socket.
const RESETTER: &str = r#"
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1)
print("listening", flush=True)
c, _ = s.accept()
time.sleep(0.5)
c.close()
time.sleep(5)
"#;

fn nstat(ns: &Netns, name: &str) -> u64 {
    let out = ns.exec(&format!("nstat -az {name}"));
    out.lines()
        .find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(name)).then(|| w.next().unwrap().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no {name} in nstat output {out:?}"))
}

fn observe(sock: &str) -> Vec<Value> {
    let out = sh(&format!(
        "{} observe --server unix://{sock} --last 100000 -o json",
        flowscope_bin().display()
    ));
    json_lines(
        &out.lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect::<Vec<_>>(),
    )
}

fn event(f: &Value) -> (&str, &str, u64) {
    let k = &f["extensions"]["kernel_tcp_event"];
    (
        k["kind"].as_str().unwrap_or(""),
        k["state"].as_str().unwrap_or(""),
        k["segments"].as_u64().unwrap_or(0),
    )
}

fn tcp_ports(f: &Value) -> (u64, u64) {
    let t = &f["l4"]["TCP"];
    (
        t["source_port"].as_u64().unwrap_or(0),
        t["destination_port"].as_u64().unwrap_or(0),
    )
}

fn wait_line(p: &Proc, prefix: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(l) = p.stdout().iter().find(|l| l.starts_with(prefix)) {
            return l.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no {prefix:?} line: {:?}",
            p.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn kernel_retransmits_match_nstat_and_resets_name_their_socket() {
    require_root();
    for tool in ["nft", "python3", "nstat"] {
        require_tool(tool);
    }
    let link = Link::new();
    let tmp = TempDir::new();
    let sock = tmp.0.join("run/observer.sock").display().to_string();
    let base = 40_000 + (std::process::id() % 5_000) as u16 * 2;
    let (data_port, reset_port) = (base, base + 1);
    // Room for every flow of the transfer (the capture's too), so none of the RETRANSMIT
    // flows is evicted before the test reads them.
    let cfg = tmp.0.join("agent.toml");
    std::fs::write(&cfg, "max-flows = 200000\n").unwrap();
    let _agent = start_agent(
        &link.server,
        &format!(
            "--config {} -i {} --listen unix://{sock} -o none --metrics-listen ''",
            cfg.display(),
            link.server_if
        ),
    );
    // Every 15th data segment from the sender dies on its way into the receiver's TCP.
    link.client.exec(&format!(
        "nft add table inet fsrtx && nft add chain inet fsrtx input {{ type filter hook input priority 0 \\; }} && nft add rule inet fsrtx input tcp sport {data_port} ip length '>' 100 numgen inc mod 15 == 0 drop"
    ));

    let before = (
        nstat(&link.server, "TcpRetransSegs"),
        nstat(&link.server, "TcpExtTCPRetransFail"),
    );
    let sender = link
        .server
        .spawn(&format!("python3 -c '{SENDER}' {SERVER_V4} {data_port}"));
    wait_line(&sender, "listening");
    let receiver = link
        .client
        .spawn(&format!("python3 -c '{RECEIVER}' {SERVER_V4} {data_port}"));
    let client_port: u64 = wait_line(&receiver, "port ")[5..].trim().parse().unwrap();
    let mut sender = sender;
    let sender_pid = sender.pid() as u64;
    wait_line(&sender, "sent");
    sender.signal_and_wait(libc::SIGTERM, Duration::from_secs(5));
    let after = (
        nstat(&link.server, "TcpRetransSegs"),
        nstat(&link.server, "TcpExtTCPRetransFail"),
    );
    let kernel = after.0 - before.0;
    assert_eq!(after.1, before.1, "a retransmission failed to transmit");
    assert!(
        kernel > 5,
        "the lossy path made few retransmissions: {kernel}"
    );

    let deadline = Instant::now() + Duration::from_secs(15);
    let (ours, flows) = loop {
        let flows: Vec<Value> = observe(&sock)
            .into_iter()
            .filter(|f| {
                event(f).0 == "RETRANSMIT" && tcp_ports(f) == (data_port as u64, client_port)
            })
            .collect();
        let ours: u64 = flows.iter().map(|f| event(f).2).sum();
        if ours >= kernel || Instant::now() > deadline {
            break (ours, flows);
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    if ours != kernel {
        let all = observe(&sock);
        let events: Vec<String> = all
            .iter()
            .filter(|f| !event(f).0.is_empty())
            .map(Value::to_string)
            .take(5)
            .collect();
        let status: Value = serde_json::from_str(&sh(&format!(
            "{} status --server unix://{sock} -o json",
            flowscope_bin().display()
        )))
        .unwrap();
        let status: Vec<String> = status["counters"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with("kernel_"))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        panic!(
            "RETRANSMIT segments {ours} vs the namespace's TcpRetransSegs delta {kernel} (client port {client_port}); {} flows stored, kernel TCP events among them:\n{}\nstatus: {status:?}",
            all.len(),
            events.join("\n")
        );
    }
    let f = &flows[0];
    assert_eq!(f["IP"]["source"], SERVER_V4, "{f}");
    assert_eq!(f["verdict"], "FORWARDED", "{f}");
    assert_eq!(
        f["extensions"]["process"]["pid"].as_u64(),
        Some(sender_pid),
        "the sending socket's owner: {f}"
    );

    // A reset: the server closes with the client's bytes unread.
    let resetter = link
        .server
        .spawn(&format!("python3 -c '{RESETTER}' {SERVER_V4} {reset_port}"));
    wait_line(&resetter, "listening");
    link.client.exec_any(&format!(
        "python3 -c 'import socket,time; s=socket.create_connection((\"{SERVER_V4}\", {reset_port})); s.sendall(b\"unread\"); time.sleep(2)'"
    ));
    let deadline = Instant::now() + Duration::from_secs(15);
    let (sent, received) = loop {
        let flows = observe(&sock);
        let find = |kind: &str| {
            flows
                .iter()
                .find(|f| {
                    let (s, d) = tcp_ports(f);
                    event(f).0 == kind && (s == reset_port as u64 || d == reset_port as u64)
                })
                .cloned()
        };
        match (find("RESET_SENT"), find("RESET_RECEIVED")) {
            (Some(s), Some(r)) => break (s, r),
            other => assert!(Instant::now() < deadline, "resets not reported: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(sent["IP"]["source"], SERVER_V4, "{sent}");
    assert_eq!(tcp_ports(&sent).0, reset_port as u64, "{sent}");
    assert_eq!(
        sent["extensions"]["process"]["pid"].as_u64(),
        Some(resetter.pid() as u64),
        "the resetting socket's owner: {sent}"
    );
    // The client's socket got it, from the server: still open on its side.
    assert_eq!(received["IP"]["source"], SERVER_V4, "{received}");
    assert_eq!(tcp_ports(&received).0, reset_port as u64, "{received}");
    eprintln!("reset sent: {sent}\nreset received: {received}");
    let st: Value = serde_json::from_str(&sh(&format!(
        "{} status --server unix://{sock} -o json",
        flowscope_bin().display()
    )))
    .unwrap();
    assert_eq!(st["counters"]["kernel_tcp_tracepoints_missing"], 0, "{st}");
    assert!(
        st["counters"]["kernel_tcp_retransmitted_segments"]
            .as_u64()
            .unwrap_or(0)
            >= kernel,
        "{st}"
    );
}
