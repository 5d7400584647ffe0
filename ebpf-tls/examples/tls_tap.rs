//! Prints what the TLS probes see for a few seconds (a manual check): `tls_tap [SECONDS]`.

use std::time::{Duration, Instant};

use ebpf_tls::{SocketLink, TlsEvent, TlsProbes, TlsProbesOptions};

fn main() {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    // FLOWSCOPE_TLS_SOCKET_LINK=tracepoints|fentry|kprobe: as the agent.
    let opts = TlsProbesOptions {
        socket_link: std::env::var("FLOWSCOPE_TLS_SOCKET_LINK")
            .ok()
            .and_then(|v| SocketLink::parse(&v))
            .unwrap_or_default(),
        ..TlsProbesOptions::default()
    };
    let mut probes = TlsProbes::start(&opts).expect("start");
    probes.rescan();
    for s in probes.status() {
        println!("{s:?}");
    }
    let mut ring = probes.take_ring().expect("ring");
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        while let Some(item) = ring.next() {
            match TlsEvent::parse(item) {
                Ok(e) => println!(
                    "{:?} pid={} comm={} len={} sock={:?} data={:?}",
                    e.kind,
                    e.pid,
                    e.comm,
                    e.len,
                    e.socket,
                    String::from_utf8_lossy(&e.data[..e.data.len().min(80)])
                ),
                Err(e) => println!("bad record: {e}"),
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("{:?}", probes.counters());
}
