//! TLS plaintext ([`ebpf_tls`]): the probes, shared between a watcher task (exec events,
//! rescans) and `flowscope status` (which library each process uses, and
//! whether its plaintext is read).

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use ebpf_kprobe::Attribution;
use ebpf_ring::SingleMapRing;
use ebpf_tls::{SocketLink, TlsEvent, TlsEventKind, TlsProbes, TlsProbesOptions};
use tokio::io::{unix::AsyncFd, Interest};
use tracing::{info, warn};

use crate::api::status::TlsLibraryStatus;
use crate::config::AgentConfig;

/// How long after an exec its maps are read: the dynamic loader maps the libraries right after
/// the exec, in the new process's own time.
const EXEC_SCAN_DELAY: Duration = Duration::from_millis(200);
/// Shortest time between two reads of the exec ring (see [`watch_tls`]).
const EXEC_READ_GAP: Duration = Duration::from_millis(100);
/// Every process is rescanned this often (libraries of processes whose exec event was lost,
/// or that dlopen a TLS library late; library files nobody maps any more are detached).
const FULL_RESCAN: Duration = Duration::from_secs(30);
/// The plaintext ring: records are a 104-byte header and up to 4 KiB of plaintext, so 4 MiB
/// holds at least 1000 calls, ~4000 of a 1 KiB exchange. It is drained with the capture ring
/// (4 MiB) in the same pass, every 20 ms or 64 KiB, and a TLS exchange puts no
/// more bytes in it than its packets put in the capture ring, so it lasts as long through a
/// stall of the reader; 8 MiB cost 4 MiB more RSS for nothing at the soak's and the HTTPS
/// bench's rates (BENCHMARKS.md "Soak memory under 50 MB"). Mapped only once a TLS library
/// is hooked (ebpf_ring::SingleMapRing::deferred).
const TLS_RING_BYTES: u32 = 4 << 20;
/// Most exec events waiting for their scan; beyond it they wait for the full rescan.
const MAX_PENDING_EXECS: usize = 4096;

/// The probes and the processes waiting to be scanned.
#[derive(Default)]
pub struct TlsShared {
    probes: Mutex<Option<TlsProbes>>,
    execs: Mutex<VecDeque<(u32, Instant)>>,
    /// The probes' exec records (read by [`watch_tls`]).
    exec_ring: Mutex<Option<SingleMapRing>>,
    /// Why the probes are not running, when they were wanted.
    unavailable: Mutex<Option<String>>,
    /// Processes at an end of a TLS connection no plaintext came for: comm and count.
    blind: Mutex<BlindSpots>,
}

/// Processes with TLS connections whose plaintext was not seen.
#[derive(Debug, Default)]
struct BlindSpots {
    by_pid: BTreeMap<u32, (String, u64)>,
    /// Connections whose ends no local process was found for (both ends remote, or gone).
    unnamed: u64,
}

/// Most processes remembered as blind spots.
const MAX_BLIND_PROCESSES: usize = 256;

impl std::fmt::Debug for TlsShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsShared").finish_non_exhaustive()
    }
}

/// Shared handle.
pub type SharedTls = Arc<TlsShared>;

/// Starts the TLS probes unless the configuration turns them off; hooks the libraries found
/// now. Failing is not fatal: TLS flows then stay undecoded (and counted), status says why.
pub fn start_tls(cfg: &AgentConfig) -> (SharedTls, Option<SingleMapRing>) {
    let shared = SharedTls::default();
    if !cfg.tls_plaintext {
        info!("TLS plaintext off (tls-plaintext = false)");
        return (shared, None);
    }
    let opts = TlsProbesOptions {
        ring_bytes: TLS_RING_BYTES,
        // The reader drains the ring with the capture ring at every poll anyway.
        wakeup_batch_bytes: 64 << 10,
        proc_root: cfg.proc_root.clone(),
        // FLOWSCOPE_TLS_SOCKET_LINK=fentry|tracepoints forces one link, to test a kernel's
        // fallback on a kernel that has both (tests/tests/tls_plaintext.rs).
        socket_link: match std::env::var("FLOWSCOPE_TLS_SOCKET_LINK") {
            Ok(v) => SocketLink::parse(&v).unwrap_or_else(|| {
                warn!("FLOWSCOPE_TLS_SOCKET_LINK={v}: not auto, tracepoints or fentry; auto");
                SocketLink::Auto
            }),
            Err(_) => SocketLink::Auto,
        },
    };
    match TlsProbes::start(&opts) {
        Ok(mut p) => {
            p.rescan();
            let ring = match p.take_ring() {
                Ok(r) => Some(r),
                Err(e) => {
                    warn!("TLS plaintext: {e}");
                    None
                }
            };
            match p.take_exec_ring() {
                Ok(r) => *shared.exec_ring.lock().unwrap_or_else(|e| e.into_inner()) = Some(r),
                Err(e) => warn!(
                    "TLS plaintext: {e}; new TLS libraries are found by the periodic rescan only"
                ),
            }
            info!(
                libraries = p.hooked_files(),
                exec_events = p.exec_events(),
                socket_link = p.socket_link().map(SocketLink::describe).unwrap_or("none"),
                "TLS plaintext probes"
            );
            if p.hooked_files() == 0 {
                info!(
                    ring_bytes = ring.as_ref().map_or(0, SingleMapRing::size),
                    "no TLS library hooked yet: the plaintext ring is mapped when one is"
                );
            }
            *shared.probes.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
            (shared, ring)
        }
        Err(e) => {
            warn!("TLS plaintext unavailable ({e}); TLS flows are not decoded");
            *shared.unavailable.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
            (shared, None)
        }
    }
}

impl TlsShared {
    /// Process attribution's socket-tracepoint programs taken over by the TLS probes' own
    /// by tail call ([`TlsProbes::chain_sock_io`]), so each socket send or receive on the node
    /// pays one program dispatch for both; attribution keeps its own when that fails.
    pub fn chain_sock_io(&self, a: &mut Attribution) {
        let Some((send, recv)) = a.sock_io_programs() else {
            return;
        };
        let chained = match self
            .probes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            Some(p) => p.chain_sock_io(send, recv),
            None => return,
        };
        match chained {
            Ok(()) => match a.detach_sock_io("fst_sock_send/fst_sock_recv") {
                Ok(()) => info!("attribution's socket programs run from the TLS socket programs: one dispatch per socket send or receive"),
                // Both still run; the per-socket dedup makes the second a no-op.
                Err(e) => warn!("attribution's socket programs run twice per socket I/O: {e}"),
            },
            Err(e) => info!("attribution keeps its own socket tracepoints: {e}"),
        }
    }

    /// A process exec'd: scan it shortly.
    fn note_exec(&self, pid: u32) {
        let mut q = self.execs.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() < MAX_PENDING_EXECS {
            q.push_back((pid, Instant::now() + EXEC_SCAN_DELAY));
        }
    }

    /// Queues a scan of every process the exec ring names.
    fn drain_execs(&self, ring: &mut SingleMapRing) {
        while let Some(item) = ring.next() {
            if let Ok(ev) = TlsEvent::parse(item) {
                if ev.kind == TlsEventKind::Exec {
                    self.note_exec(ev.pid);
                }
            }
        }
    }

    /// When the first exec'd process's delay is over (what [`Self::scan`] would read then).
    fn next_due(&self) -> Option<Instant> {
        let q = self.execs.lock().unwrap_or_else(|e| e.into_inner());
        q.front().map(|(_, at)| *at)
    }

    /// Scans the processes whose delay is over; the whole of /proc when `full`.
    fn scan(&self, full: bool) {
        let now = Instant::now();
        let due: Vec<u32> = {
            let mut q = self.execs.lock().unwrap_or_else(|e| e.into_inner());
            let mut due = Vec::new();
            while q.front().is_some_and(|(_, at)| *at <= now) {
                due.extend(q.pop_front().map(|(pid, _)| pid));
            }
            due
        };
        let mut guard = self.probes.lock().unwrap_or_else(|e| e.into_inner());
        let Some(p) = guard.as_mut() else {
            return;
        };
        if full {
            p.rescan();
        } else {
            for pid in due {
                p.rescan_pid(pid);
            }
        }
    }

    /// A TLS connection of process `pid` ended with no plaintext seen.
    pub fn note_blind_spot(&self, pid: u32, comm: &str) {
        let mut b = self.blind.lock().unwrap_or_else(|e| e.into_inner());
        let room = b.by_pid.len() < MAX_BLIND_PROCESSES;
        match b.by_pid.get_mut(&pid) {
            Some(e) => e.1 += 1,
            None if room => {
                b.by_pid.insert(pid, (comm.to_string(), 1));
            }
            None => b.unnamed += 1,
        }
    }

    /// A TLS connection with no plaintext and no local process found for either end.
    pub fn note_blind_spot_unnamed(&self) {
        self.blind.lock().unwrap_or_else(|e| e.into_inner()).unnamed += 1;
    }

    /// Detaches every probe (the agent is stopping).
    pub fn stop(&self) {
        self.exec_ring
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        self.probes.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// Counters for `flowscope status` and /metrics.
    pub fn counters(&self) -> Vec<(String, u64)> {
        let unavailable = self
            .unavailable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        let mut out = vec![
            (
                "tls_plaintext_unavailable".to_string(),
                u64::from(unavailable),
            ),
            (
                "tls_blind_spot_connections_unnamed".to_string(),
                self.blind.lock().unwrap_or_else(|e| e.into_inner()).unnamed,
            ),
        ];
        if let Some(p) = self
            .probes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            out.extend(p.counters().into_iter().map(|(k, v)| (k.to_string(), v)));
        }
        out
    }

    /// Per process that maps a TLS library: which, and whether its plaintext is read; then
    /// per process with TLS connections whose plaintext was not seen, why (blind spots).
    pub fn status(&self) -> Vec<TlsLibraryStatus> {
        let guard = self.probes.lock().unwrap_or_else(|e| e.into_inner());
        let libraries: Vec<TlsLibraryStatus> = guard
            .as_ref()
            .map(|p| p.status())
            .unwrap_or_default()
            .into_iter()
            .map(|s| TlsLibraryStatus {
                pid: s.pid,
                comm: s.comm,
                library: s.library,
                kind: s.kind,
                hooked: s.hooked,
                detail: s.detail,
            })
            .collect();
        drop(guard);
        let why_off = self
            .unavailable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let blind = self.blind.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = libraries.clone();
        for (&pid, (comm, n)) in &blind.by_pid {
            out.push(TlsLibraryStatus {
                pid,
                comm: comm.clone(),
                library: String::new(),
                kind: BLIND_SPOT.into(),
                hooked: false,
                detail: format!(
                    "{n} TLS connection(s) not decoded: {}",
                    blind_spot_reason(pid, &libraries, why_off.as_deref())
                ),
            });
        }
        out
    }
}

/// The `kind` of a status row for a process with undecoded TLS connections.
pub const BLIND_SPOT: &str = "blind spot";

/// Why the TLS of process `pid` was not read, from what the library scan found for it.
fn blind_spot_reason(pid: u32, libraries: &[TlsLibraryStatus], probes_off: Option<&str>) -> String {
    let mine: Vec<&TlsLibraryStatus> = libraries.iter().filter(|l| l.pid == pid).collect();
    if let Some(off) = probes_off {
        format!("TLS plaintext probes unavailable: {off}")
    } else if mine
        .iter()
        .any(|l| l.hooked && l.kind.starts_with("go crypto/tls"))
    {
        "its crypto/tls is hooked, but this connection's plaintext was not seen (a tls.Conn \
         over something else than a *net.TCPConn, or one that began before the hook)"
            .to_string()
    } else if mine.iter().any(|l| l.hooked) {
        "its libssl is hooked, but this TLS did not go through SSL_read/SSL_write (another TLS \
         stack in the process, or OpenSSL driven through BIO chains)"
            .to_string()
    } else if let Some(l) = mine.first() {
        format!("{} is not hooked: {}", l.kind, l.detail)
    } else {
        "no TLS library mapped: TLS built into a stripped executable (static OpenSSL or \
         BoringSSL without symbols), or rustls, none of which is hooked"
            .to_string()
    }
}

/// Scans exec'd processes as their delay passes, and everything every [`FULL_RESCAN`].
///
/// Sleeps until an exec record comes (the kernel wakes this reader when it has read everything
/// before), the next scan is due or the full rescan is: an idle node costs it no wakeup at all
/// (it polled ten times a second, a tenth of an idle agent's wakeups). After an exec it reads
/// the ring at most every [`EXEC_READ_GAP`], so an exec storm costs ten wakeups a second, as
/// the poll did.
pub async fn watch_tls(shared: SharedTls) {
    let ring = shared
        .exec_ring
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    let mut ring = match ring {
        // SAFETY: the ring owns its map fd and keeps it open, unchanged, for as long as it
        // lives, and the AsyncFd owns the ring.
        Some(r) => match unsafe { AsyncFd::register_with_interest(r, Interest::READABLE) } {
            Ok(r) => Some(r),
            Err(e) => {
                warn!(
                    "TLS exec events: registering their ring with tokio: {}; new TLS \
                     libraries are found by the periodic rescan only",
                    e.into_parts().1
                );
                None
            }
        },
        None => None,
    };
    let mut last_full = Instant::now();
    loop {
        let full_at = last_full + FULL_RESCAN;
        let wake_at = shared.next_due().map_or(full_at, |d| d.min(full_at));
        let exec = async {
            match ring.as_mut() {
                Some(r) => r.readable_mut().await.map(|mut g| g.clear_ready()),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = exec => {
                if let Err(e) = r {
                    warn!("TLS exec events: waiting on their ring: {e}; rescans only");
                    ring = None;
                }
                if let Some(r) = ring.as_mut() {
                    shared.drain_execs(r.get_mut());
                }
                // Pace the reads: what comes meanwhile waits in the ring (64 KiB, ~600 execs).
                tokio::time::sleep(EXEC_READ_GAP).await;
                if let Some(r) = ring.as_mut() {
                    shared.drain_execs(r.get_mut());
                }
            }
            _ = tokio::time::sleep_until(wake_at.into()) => {}
        }
        let now = Instant::now();
        let full = now >= last_full + FULL_RESCAN;
        if full {
            last_full = now;
        }
        if !full && shared.next_due().is_none_or(|d| d > now) {
            continue;
        }
        let s = shared.clone();
        // /proc reads block: off the async threads.
        let _ = tokio::task::spawn_blocking(move || s.scan(full)).await;
    }
}
