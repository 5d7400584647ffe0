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

/// CPU time (user + system, all threads) this process has used, in microseconds: less sensitive
/// to other load on the machine than wall-clock throughput.
fn cpu_us() -> f64 {
    // SAFETY: getrusage fills the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let us = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    us(ru.ru_utime) + us(ru.ru_stime)
}

thread_local! {
    static CPU: std::cell::Cell<f64> = const { std::cell::Cell::new(0.0) };
}

fn round(addr: std::net::SocketAddr, n: usize) -> f64 {
    let cpu0 = cpu_us();
    let start = Instant::now();
    for _ in 0..n {
        let mut s = TcpStream::connect(addr).expect("connect");
        // Wait for the server's close so each iteration is a full connection lifetime.
        let mut b = [0u8; 1];
        let _ = s.read(&mut b);
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    CPU.with(|c| c.set((cpu_us() - cpu0) / n as f64));
    rate
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

    let (mut base, mut with, mut kernel_only) = (Vec::new(), Vec::new(), Vec::new());
    let (mut cpu_base, mut cpu_with, mut cpu_kernel) = (Vec::new(), Vec::new(), Vec::new());
    let mut method = "";
    let mut events = 0u64;
    for _ in 0..rounds {
        base.push(round(addr, n));
        cpu_base.push(CPU.with(|c| c.get()));
        kernel_only.push(with_attribution(addr, n, false).0);
        cpu_kernel.push(CPU.with(|c| c.get()));
        let (rate, m, seen) = with_attribution(addr, n, true);
        with.push(rate);
        cpu_with.push(CPU.with(|c| c.get()));
        method = m;
        events += seen;
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let (b, w, k) = (
        median(&mut base),
        median(&mut with),
        median(&mut kernel_only),
    );
    let (cb, cw, ck) = (
        median(&mut cpu_base),
        median(&mut cpu_with),
        median(&mut cpu_kernel),
    );
    println!("method: {method}");
    println!(
        "CPU per connection (client+server+reader, this process): {cb:.2} us without, {cw:.2} us with (+{:.2} us, ratio {:.3})",
        cw - cb,
        cb / cw
    );
    println!("CPU per connection with the ring only drained (no OwnerCache): {ck:.2} us");
    println!("connections per round: {n}, rounds: {rounds}, events read: {events}");
    println!(
        "without attribution:          {b:.0} conn/s ({:.2} us/conn)",
        1e6 / b
    );
    println!(
        "programs + ring drained only: {k:.0} conn/s ({:.2} us/conn)",
        1e6 / k
    );
    println!(
        "programs + OwnerCache:        {w:.0} conn/s ({:.2} us/conn)",
        1e6 / w
    );
    println!(
        "ratio (with/without): {:.3} (kernel only {:.3}); added cost: {:.2} us per connection",
        w / b,
        k / b,
        1e6 / w - 1e6 / b
    );
}

/// One round with the programs loaded; `apply` feeds the events to an OwnerCache (as the agent
/// does), otherwise they are only drained. Returns (conn/s, method, events read).
fn with_attribution(addr: std::net::SocketAddr, n: usize, apply: bool) -> (f64, &'static str, u64) {
    {
        let wakeup_batch_bytes = std::env::var("WAKEUP_BATCH_BYTES")
            .map_or(0, |v| v.parse().expect("WAKEUP_BATCH_BYTES is a number"));
        let mut a = Attribution::start(&AttributionOptions {
            wakeup_batch_bytes,
            ..Default::default()
        })
        .expect("attribution");
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
                    if apply {
                        cache.apply(&SockEvent::parse(item).expect("record"));
                    }
                    seen += 1;
                }
                if !got {
                    thread::sleep(Duration::from_millis(1));
                }
            }
            seen
        });
        let rate = round(addr, n);
        stop.store(true, Ordering::Relaxed);
        let seen = reader.join().unwrap();
        let lost = a
            .kernel_counters()
            .into_iter()
            .find(|(k, _)| *k == "kernel_sock_ring_full_lost")
            .map_or(0, |x| x.1);
        assert_eq!(lost, 0, "events lost: the reader fell behind");
        if std::env::var_os("BPF_STATS").is_some() {
            // Needs `sysctl kernel.bpf_stats_enabled=1`: run_time_ns per program.
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg("bpftool prog show | grep -A1 ' name fsa_' | grep -o 'name [a-z0-9_]*\\|run_time_ns [0-9]*\\|run_cnt [0-9]*' | paste -sd' ' | sed 's/name /\\n/g'")
                .output()
                .expect("bpftool");
            println!("{}", String::from_utf8_lossy(&out.stdout));
        }
        (rate, a.method(), seen)
    }
}
