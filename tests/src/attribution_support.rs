//! Support for the attribution tests: a collector that runs [`ebpf_kprobe::Attribution`],
//! drains its ring on a thread into an [`OwnerCache`], and keeps every event for assertions.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, MutexGuard,
    },
    thread,
    time::{Duration, Instant},
};

use ebpf_kprobe::{
    Attribution, AttributionOptions, OwnerCache, OwnerCacheOptions, ProcessInfo, SockEvent,
    SocketTuple,
};

/// Attribution tests attach host-wide programs and one of them checks that none are left after
/// drop: they run one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running [`Attribution`] whose events feed an [`OwnerCache`].
pub struct Collector {
    /// The loaded programs (dropped by [`Collector::stop`]).
    pub attribution: Option<Attribution>,
    /// The cache the events go into.
    pub cache: Arc<Mutex<OwnerCache>>,
    /// Every event read, in order.
    pub events: Arc<Mutex<Vec<SockEvent>>>,
    stop: Arc<AtomicBool>,
    reader: Option<thread::JoinHandle<()>>,
}

impl Collector {
    /// Starts attribution with the kernel's best method and a cache that keeps closed sockets
    /// for a minute (the tests look them up after the clients exit).
    pub fn start() -> Self {
        Self::start_with(&AttributionOptions::default())
    }

    /// [`Collector::start`] with explicit options (e.g. a forced method).
    pub fn start_with(opts: &AttributionOptions) -> Self {
        let mut attribution =
            Attribution::start(opts).unwrap_or_else(|e| panic!("Attribution::start failed: {e}"));
        let cache = Arc::new(Mutex::new(OwnerCache::new(OwnerCacheOptions {
            close_grace_ns: 60_000_000_000,
            ..Default::default()
        })));
        let events = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut ring = attribution
            .take_ring()
            .unwrap_or_else(|e| panic!("take_ring: {e}"));
        let (c, ev, st) = (cache.clone(), events.clone(), stop.clone());
        let reader = thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                let mut got = false;
                while let Some(item) = ring.next() {
                    got = true;
                    let e = SockEvent::parse(item)
                        .unwrap_or_else(|e| panic!("bad attribution record: {e}"));
                    c.lock().unwrap_or_else(|p| p.into_inner()).apply(&e);
                    ev.lock().unwrap_or_else(|p| p.into_inner()).push(e);
                }
                if !got {
                    thread::sleep(Duration::from_millis(2));
                }
            }
        });
        Collector {
            attribution: Some(attribution),
            cache,
            events,
            stop,
            reader: Some(reader),
        }
    }

    /// The method the kernel probe chose.
    pub fn method(&self) -> &'static str {
        self.attribution.as_ref().expect("running").method()
    }

    /// Waits (up to `timeout`) until the kernel has told the owner of the socket whose local end
    /// is `t.local`, and returns it (or what /proc says at the deadline).
    pub fn owner_of(&self, t: &SocketTuple, timeout: Duration) -> Option<ProcessInfo> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(p) = self.cache.lock().unwrap().lookup_local(t) {
                if p.source == ebpf_kprobe::OwnerSource::Kernel || Instant::now() >= deadline {
                    return Some(p.clone());
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the reader and unloads the programs.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.reader.take() {
            let res = r.join();
            if !thread::panicking() {
                res.expect("ring reader panicked");
            }
        }
        self.attribution = None;
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Names of loaded BPF programs with the attribution prefix (`fsa_`), from bpftool.
pub fn attribution_programs() -> Vec<String> {
    let out = crate::sh("bpftool -j prog show");
    let v: serde_json::Value = serde_json::from_str(&out).expect("bpftool json");
    v.as_array()
        .expect("array")
        .iter()
        .filter_map(|p| p.get("name").and_then(|n| n.as_str()))
        .filter(|n| n.starts_with(ebpf_kprobe::PROGRAM_PREFIX))
        .map(str::to_string)
        .collect()
}

/// Runs `cmd` in `ns` to completion and returns its pid (the `ip netns exec` process execs the
/// command, so it is the command's pid) and its stdout; panics if it fails.
pub fn run_in_ns(ns: &crate::Netns, cmd: &str) -> (u32, String) {
    let child = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            "sh",
            "-c",
            &format!("exec {cmd}"),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd}: {e}"));
    let pid = child.id();
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "`{cmd}` in {} failed ({}): {}",
        ns.name,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (pid, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The python3 interpreter's real path (not a pyenv shim), so the process we start is python.
pub fn python3() -> String {
    crate::require_tool("python3");
    crate::sh("python3 -c 'import os,sys; print(os.path.realpath(sys.executable))'")
        .trim()
        .to_string()
}

/// A TCP echo server that keeps every connection open until the peer closes:
/// `python3 SCRIPT HOST PORT`; prints "listening" on stderr.
pub const PY_TCP_SERVER: &str = r#"
import socket, sys, threading
host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port)); s.listen(128)
print("listening", file=sys.stderr, flush=True)
def serve(c):
    while True:
        d = c.recv(4096)
        if not d: break
        c.sendall(d)
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

/// A TCP client: `python3 SCRIPT HOST PORT HOLD_SECONDS`; prints its local port on stdout,
/// exchanges one message, then holds the connection for HOLD_SECONDS.
pub const PY_TCP_CLIENT: &str = r#"
import socket, sys, time
c = socket.create_connection((sys.argv[1], int(sys.argv[2])))
print(c.getsockname()[1], flush=True)
c.sendall(b"ping"); assert c.recv(100) == b"ping"
time.sleep(float(sys.argv[3]))
c.close()
"#;

/// A UDP echo server: `python3 SCRIPT HOST PORT`; prints "listening" on stderr.
pub const PY_UDP_SERVER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print("listening", file=sys.stderr, flush=True)
while True:
    d, a = s.recvfrom(4096)
    s.sendto(d, a)
"#;

/// A UDP client on an unconnected socket: `python3 SCRIPT HOST PORT`; prints its local port.
pub const PY_UDP_CLIENT: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(b"ping", (sys.argv[1], int(sys.argv[2])))
d, _ = s.recvfrom(100)
assert d == b"ping"
print(s.getsockname()[1], flush=True)
"#;
