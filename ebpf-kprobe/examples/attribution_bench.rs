//! Added cost of attribution per TCP connection: connect+accept+close loops on loopback with
//! and without the attribution programs loaded (and their ring drained into an OwnerCache, as the
//! agent would). Run as root through bench/attribution/run.sh; not a test.
//!
//! Usage: attribution_bench [CONNECTIONS_PER_ROUND] [ROUNDS]

use std::{
    io::Read,
    net::{TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use ebpf_kprobe::{Attribution, AttributionOptions, OwnerCache, OwnerCacheOptions, SockEvent};

fn round(addr: std::net::SocketAddr, n: usize) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        let mut s = TcpStream::connect(addr).expect("connect");
        // Wait for the server's close so each iteration is a full connection lifetime.
        let mut b = [0u8; 1];
        let _ = s.read(&mut b);
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(20_000, |a| a.parse().expect("count"));
    let rounds: usize = args.next().map_or(5, |a| a.parse().expect("rounds"));
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for s in listener.incoming() {
            drop(s);
        }
    });
    round(addr, 2_000); // warm up

    let (mut base, mut with) = (Vec::new(), Vec::new());
    let mut method = "";
    let mut events = 0u64;
    for _ in 0..rounds {
        base.push(round(addr, n));
        let mut a = Attribution::start(&AttributionOptions::default()).expect("attribution");
        method = a.method();
        let mut ring = a.take_ring().expect("ring");
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let reader = thread::spawn(move || {
            let mut cache = OwnerCache::new(OwnerCacheOptions::default());
            let mut seen = 0u64;
            while !st.load(Ordering::Relaxed) {
                let mut got = false;
                while let Some(item) = ring.next() {
                    got = true;
                    cache.apply(&SockEvent::parse(&item).expect("record"));
                    seen += 1;
                }
                if !got {
                    thread::sleep(Duration::from_millis(1));
                }
            }
            seen
        });
        with.push(round(addr, n));
        stop.store(true, Ordering::Relaxed);
        events += reader.join().unwrap();
        let lost = a
            .kernel_counters()
            .into_iter()
            .find(|(k, _)| *k == "kernel_sock_ring_full_lost")
            .map_or(0, |x| x.1);
        assert_eq!(lost, 0, "events lost: the reader fell behind");
        drop(a);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let (b, w) = (median(&mut base), median(&mut with));
    println!("method: {method}");
    println!("connections per round: {n}, rounds: {rounds}, events read: {events}");
    println!(
        "without attribution: {b:.0} conn/s ({:.2} us/conn)",
        1e6 / b
    );
    println!(
        "with attribution:    {w:.0} conn/s ({:.2} us/conn)",
        1e6 / w
    );
    println!(
        "ratio (with/without): {:.3}; added cost: {:.2} us per connection",
        w / b,
        1e6 / w - 1e6 / b
    );
}
