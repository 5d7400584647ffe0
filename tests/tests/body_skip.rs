//! Body skipping end to end: nginx sends an 8 MiB file over a real veth to curl, read at a
//! network's pace (`--limit-rate`), then a small page on the same connection. The agent's
//! engine names the file's body to the TC program, which sends most of its segments as
//! headers only; every exchange must still come out whole (status, body size), the next one
//! on the connection too, and the range must be gone from the kernel's table afterwards.
//! With `--body-skip-min-bytes 0` nothing is cut. Over HTTPS (the exchange read from
//! OpenSSL's plaintext), the ciphertext goes as headers after its first 64 KiB.
//! And the programs' own rule for a range's end, on exact segments run through them once each.

use std::time::Duration;

use flowscope_e2e::*;
use serde_json::Value;

const BIG: usize = 8 << 20;

/// One agent run: `(spans printed, status at the end)`.
fn fetch(agent_args: &str) -> (Vec<Value>, Value) {
    require_root();
    require_tool("curl");
    let link = Link::new();
    let tmp = TempDir::new();
    std::fs::write(tmp.0.join("big.bin"), vec![b'x'; BIG]).unwrap();
    std::fs::write(tmp.0.join("small.txt"), "after the big one\n").unwrap();
    let _nginx = start_nginx(&link.server, &tmp.0);
    let sock = tmp.0.join("observer.sock").display().to_string();
    let mut agent = start_agent(
        &link.server,
        &format!(
            "-i {} -o none --print-spans --listen unix://{sock} {agent_args}",
            link.server_if
        ),
    );
    // One connection, two requests (curl reuses it); 4 MB/s, as over a real network: the
    // idle agent is woken by the connection's first packet (`reader_idle`) and reads the
    // body's first records early in the 2 s the body takes, while the rest is still coming.
    let out = link.client.exec(&format!(
        "curl -sS --max-time 30 --limit-rate 4M -o /dev/null -o /dev/null \
         -w '%{{http_code}} %{{size_download}} %{{num_connects}}\\n' \
         http://{SERVER_V4}/big.bin http://{SERVER_V4}/small.txt"
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [format!("200 {BIG} 1").as_str(), "200 18 0"],
        "curl: both over one connection"
    );
    // The small response passes the range's end: the range is withdrawn then, and the
    // table's counters published at a tick after it.
    status_when(&sock, "engine_http1_responses", 2);
    std::thread::sleep(Duration::from_millis(500));
    let status = agent_status(&sock);
    assert_eq!(
        agent.signal_and_wait(libc::SIGTERM, Duration::from_secs(10)),
        Some(0),
        "agent exit status"
    );
    (json_lines(&agent.stdout()), status)
}

/// `(url.path, http.response.status_code, http.response.body.size)` of the SERVER spans.
fn exchanges(spans: &[Value]) -> Vec<(String, u64, u64)> {
    spans
        .iter()
        .filter(|s| s["kind"] == "SERVER" || s["kind"] == "Server")
        .map(|s| {
            let a = &s["attributes"];
            (
                a["url.path"].as_str().unwrap_or_default().to_string(),
                a["http.response.status_code"].as_u64().unwrap_or(0),
                a["http.response.body.size"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

#[test]
fn a_long_body_goes_as_headers_and_every_exchange_stays_whole() {
    let (spans, status) = fetch("");
    let want = vec![
        ("/big.bin".to_string(), 200, BIG as u64),
        ("/small.txt".to_string(), 200, 18),
    ];
    assert_eq!(exchanges(&spans), want, "spans: {spans:#?}");
    // TC sees the stack's GSO/GRO packets (up to 64 KiB each), not wire segments: about half
    // of the packets seen carry the body, the other half are curl's ACKs. The first records
    // arrive before the range is set; most of the body comes after.
    let seen = status_counter(&status, "kernel_packets_seen");
    let cut = status_counter(&status, "kernel_body_packets_cut");
    assert!(
        cut * 4 > seen,
        "{cut} of {seen} packets cut (about half carry the body): {status:#}"
    );
    assert_eq!(status_counter(&status, "engine_capture_hints"), 1);
    assert_eq!(status_counter(&status, "body_skip_ranges_set"), 1);
    assert_eq!(status_counter(&status, "body_skip_ranges_cleared"), 1);
    assert_eq!(status_counter(&status, "body_skip_ranges_held"), 0);
    assert_eq!(status_counter(&status, "body_skip_table_full"), 0);
    assert_eq!(status_counter(&status, "body_skip_update_errors"), 0);
    // The cut bytes are counted as snapped, not lost: no resync, no gap of another kind.
    assert!(status_counter(&status, "engine_tcp_snapped_bytes") > cut * 1000);
    assert_eq!(status_counter(&status, "engine_http1_resyncs"), 0);
    assert_eq!(status_counter(&status, "kernel_ring_full_lost"), 0);
}

#[test]
fn a_zero_minimum_cuts_nothing() {
    let (spans, status) = fetch("--body-skip-min-bytes 0");
    assert_eq!(exchanges(&spans).len(), 2, "spans: {spans:#?}");
    assert_eq!(status_counter(&status, "kernel_body_packets_cut"), 0);
    assert_eq!(status_counter(&status, "engine_capture_hints"), 0);
    assert!(
        status["counters"].get("body_skip_ranges_set").is_none(),
        "no table without body skipping: {status:#}"
    );
}

#[test]
fn tls_ciphertext_goes_as_headers_after_its_first_64_kib() {
    // HTTPS: the exchange comes from OpenSSL's plaintext (uprobes), so no decoder reads the
    // packets' ciphertext; past the first 64 KiB each way it goes as headers.
    require_root();
    require_tool("curl");
    let link = Link::new();
    let tmp = TempDir::new();
    make_ca(&tmp.0);
    std::fs::write(tmp.0.join("big.bin"), vec![b'x'; BIG]).unwrap();
    let _nginx = start_https_nginx(&link.server, &tmp.0);
    let sock = tmp.0.join("observer.sock").display().to_string();
    let mut agent = start_agent(
        &link.server,
        &format!(
            "-i {} -o none --print-spans --listen unix://{sock}",
            link.server_if
        ),
    );
    let out = link.client.exec(&format!(
        "curl -sS --http1.1 --max-time 30 --limit-rate 4M --cacert {}/ca.pem -o /dev/null \
         -w '%{{http_code}} %{{size_download}}' https://{SERVER_V4}/big.bin",
        tmp.0.display()
    ));
    assert_eq!(out, format!("200 {BIG}"), "curl");
    let status = status_when(&sock, "engine_http1_responses", 1);
    assert_eq!(
        agent.signal_and_wait(libc::SIGTERM, Duration::from_secs(10)),
        Some(0),
        "agent exit status"
    );
    let spans = json_lines(&agent.stdout());
    assert_eq!(
        exchanges(&spans),
        [("/big.bin".to_string(), 200, BIG as u64)],
        "the exchange whole, from the plaintext: {spans:#?}"
    );
    let seen = status_counter(&status, "kernel_packets_seen");
    let cut = status_counter(&status, "kernel_body_packets_cut");
    assert!(
        cut * 4 > seen,
        "{cut} of {seen} packets cut (about half carry the ciphertext): {status:#}"
    );
    assert!(status_counter(&status, "engine_capture_hints") >= 1);
    assert_eq!(status_counter(&status, "body_skip_update_errors"), 0);
    assert_eq!(status_counter(&status, "kernel_ring_full_lost"), 0);
}

/// The capture programs' own rule for a range's end, on exact segments run through the loaded
/// programs once each (`BPF_PROG_TEST_RUN`, no interface): a data segment of the sender inside
/// its range is cut to its headers; the receiver's RST leaves the range alone; the sender's RST,
/// and on a reused tuple its SYN, delete the range in the kernel at once, before the agent
/// would withdraw it (RFC 9293 §3.4: a new connection's bytes must not fall in the old one's
/// range). IPv4 and IPv6.
#[test]
fn a_senders_syn_or_rst_ends_its_range_in_the_kernel() {
    use flows::{packet::TcpFlags, synth::TcpConversation};
    require_root();
    let (ack, rst, syn) = (TcpFlags::ACK, TcpFlags::RST, TcpFlags::SYN);
    let mut cap = ebpf_tc::KernelCapture::load(&ebpf_tc::LoadOptions::default())
        .expect("loading the capture programs");
    let mut skip = cap.take_body_skip().expect("the body_skip table");
    let cut = |cap: &ebpf_tc::KernelCapture| {
        cap.counters()
            .into_iter()
            .find(|(n, _)| *n == "kernel_body_packets_cut")
            .map(|(_, v)| v)
            .expect("kernel_body_packets_cut counter")
    };
    let pairs = [
        ("198.18.0.1:80", "198.18.0.2:40000"),
        ("[2001:db8::1]:443", "[2001:db8::2]:40001"),
    ];
    for (server, client) in pairs {
        let (server, client) = (server.parse().unwrap(), client.parse().unwrap());
        let conn = TcpConversation::new(client, server, 0, 0, 0);
        // A segment of the server's (the range's sender) or, `from_client`, of the client's.
        let seg = |from_client: bool, seq: u32, flags: TcpFlags, payload: &[u8]| {
            conn.frame(from_client, seq, 1, flags, payload)
        };
        let body = [b'x'; 100];
        for ending in [rst, syn] {
            skip.skip(server, client, 1_000, 1_000_000);
            assert!(skip.kernel_holds(server, client).unwrap(), "range set");
            // The sender's segment inside the range: cut; one past its end: kept whole.
            let before = cut(&cap);
            cap.run_tc_once(false, &seg(false, 5_000, ack, &body))
                .unwrap();
            assert_eq!(
                cut(&cap),
                before + 1,
                "{server}: a segment inside its range"
            );
            cap.run_tc_once(false, &seg(false, 999_950, ack, &body))
                .unwrap();
            assert_eq!(cut(&cap), before + 1, "{server}: a segment past its end");
            // The receiver's RST (arriving at the server): not the sender's.
            cap.run_tc_once(true, &seg(true, 1, rst, &[])).unwrap();
            assert!(
                skip.kernel_holds(server, client).unwrap(),
                "{server}: the receiver's RST left the range"
            );
            // The sender's RST (or SYN): the kernel deletes the range itself.
            cap.run_tc_once(false, &seg(false, 5_100, ending, &[]))
                .unwrap();
            assert!(
                !skip.kernel_holds(server, client).unwrap(),
                "{server}: flags {:#x} from the sender end its range",
                ending.0
            );
            let after = cut(&cap);
            cap.run_tc_once(false, &seg(false, 5_200, ack, &body))
                .unwrap();
            assert_eq!(
                cut(&cap),
                after,
                "{server}: nothing cut once the range is gone"
            );
            // Userspace's withdrawal later finds it gone and counts it as cleared all the same.
            skip.clear(server, client);
        }
    }
}
