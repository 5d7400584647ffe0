//! Choosing, starting and stopping the capture path, and the loops that read from it.
//!
//! Whatever ends the agent — Ctrl-C, SIGTERM, an error, a panic in a reader task — control comes
//! back to [`run`], which detaches everything before returning. A SIGKILL can't be caught: TCX
//! links die with the process by themselves, and clsact filters are removed by the next start
//! ([`ebpf_tc::cleanup_stale`]).

use std::{
    io::{self, BufWriter},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use anyhow::{anyhow, bail, Context, Result};
use ebpf_tc::{
    afpacket::AfPacketCapture,
    iface::{self, Interface},
    linkwatch::{LinkEvent, LinkWatcher},
    wire::PacketHdr,
    KernelCapture, LoadOptions, TcMode,
};
use tokio::{
    io::{unix::AsyncFd, Interest},
    signal::unix::SignalKind,
    task::JoinHandle,
    time::Instant,
};
use tracing::{info, warn};

use super::{
    clock::{monotonic_now_ns, wall_now_ns, MonoToWall},
    kernel_filters,
    pace::Pacer,
    pipeline::{Pipeline, SharedCounters},
    syscall_spans::SyscallSpanConfig,
    CaptureKind, TcAttach,
};
use crate::api::{self, AgentStatus, ApiConfig, LostSource, StatusHandle};
use crate::config::AgentConfig;
use ebpf_kprobe::{
    drops::{DropEvent, DropReasons},
    syscalls::SyscallEvent,
    Attribution, AttributionOptions, OwnerCache, OwnerCacheOptions, SockEvent, SocketOwnerHook,
};
use ebpf_ring::SingleMapRing;
use ebpf_tls::TlsEvent;
use std::collections::VecDeque;

type SharedCapture = Arc<Mutex<KernelCapture>>;

fn tc_mode(a: TcAttach) -> TcMode {
    match a {
        TcAttach::Auto => TcMode::Auto,
        TcAttach::Tcx => TcMode::Tcx,
        TcAttach::Clsact => TcMode::Clsact,
    }
}

/// Interfaces to attach to at start: the named ones, or every interface that is up.
fn initial_ifaces(args: &AgentConfig) -> Result<Vec<Interface>> {
    if args.interfaces.is_empty() {
        Ok(iface::all()
            .context("listing network interfaces in /sys/class/net")?
            .into_iter()
            .filter(|i| i.up)
            .collect())
    } else {
        args.interfaces
            .iter()
            .map(|n| iface::by_name(n).with_context(|| format!("--iface {n}")))
            .collect()
    }
}

/// Attaches TC to each interface; Ok when at least one worked.
fn attach_tc_all(cap: &mut KernelCapture, ifaces: &[Interface], mode: TcMode) -> Result<()> {
    let mut errors = Vec::new();
    for i in ifaces {
        match cap.attach_tc(i, mode) {
            Ok(m) => info!(iface = %i.name, method = m.as_str(), "capturing"),
            Err(e) => {
                warn!("{e}");
                errors.push(e.to_string());
            }
        }
    }
    if cap.attached().is_empty() {
        bail!("TC attach failed on every interface: {}", errors.join("; "));
    }
    Ok(())
}

/// Which path runs.
enum Running {
    Kernel {
        cap: SharedCapture,
        path: CaptureKind,
    },
    AfPacket,
}

/// Sets up capture per `--capture`, falling back when it wasn't given.
fn start(args: &AgentConfig, ifaces: &[Interface]) -> Result<Running> {
    let opts = LoadOptions {
        snaplen: args.snaplen,
        ring_bytes: args.ring_size,
        wakeup_bytes: RING_WAKEUP_BYTES,
    };
    let load = || -> Result<KernelCapture> {
        let cleaned = ebpf_tc::cleanup_stale();
        if !cleaned.filters.is_empty() || !cleaned.qdiscs.is_empty() {
            info!(?cleaned, "cleaned up after an agent that was killed");
        }
        let mut cap = KernelCapture::load(&opts)?;
        cap.set_filters(&kernel_filters(args))?;
        Ok(cap)
    };
    let socket = |mut cap: KernelCapture| -> Result<Running> {
        if args.interfaces.is_empty() {
            cap.attach_socket(None)?;
        } else {
            for i in ifaces {
                cap.attach_socket(Some(i))?;
            }
        }
        Ok(Running::Kernel {
            cap: Arc::new(Mutex::new(cap)),
            path: CaptureKind::Socket,
        })
    };
    match args.capture {
        Some(CaptureKind::Tc) => {
            let mut cap = load()?;
            attach_tc_all(&mut cap, ifaces, tc_mode(args.tc_attach))?;
            Ok(Running::Kernel {
                cap: Arc::new(Mutex::new(cap)),
                path: CaptureKind::Tc,
            })
        }
        Some(CaptureKind::Socket) => socket(load()?),
        Some(CaptureKind::Afpacket) => Ok(Running::AfPacket),
        None => {
            let mut cap = match load() {
                Ok(c) => c,
                Err(e) => {
                    warn!("eBPF capture unavailable ({e:#}); using the plain AF_PACKET path (every packet is copied to userspace)");
                    return Ok(Running::AfPacket);
                }
            };
            match attach_tc_all(&mut cap, ifaces, tc_mode(args.tc_attach)) {
                Ok(()) => {
                    info!("capture path: tc (default)");
                    Ok(Running::Kernel {
                        cap: Arc::new(Mutex::new(cap)),
                        path: CaptureKind::Tc,
                    })
                }
                Err(e) => {
                    warn!("{e:#}; falling back to the socket-filter path");
                    cap.detach_all();
                    socket(cap)
                }
            }
        }
    }
}

/// Runs until a signal or an error; always detaches before returning.
pub async fn run(args: AgentConfig) -> Result<()> {
    // A TLS file that does not load is a start-up error, before anything is attached (the API
    // task would only report it when the agent stops).
    if let (Some(addr), Some(files)) = (&args.listen_tcp, args.tls_files()) {
        api::tls::server_config(&files).with_context(|| format!("TLS on --listen-tcp {addr}"))?;
    }
    let ifaces = initial_ifaces(&args)?;
    let running = start(&args, &ifaces)?;
    let (attribution, owners) = start_attribution(&args);
    let mut attribution = attribution;
    let attr_ring = match attribution.as_mut().map(|a| a.take_ring()) {
        Some(Ok(r)) => Some(r),
        Some(Err(e)) => {
            info!("attribution has no event ring ({e}); owners come from /proc");
            None
        }
        None => None,
    };
    // Every kernel program loads before the capture ring is mapped (its pages count in RSS
    // from the mmap on): each loader parses the kernel BTF (~16 MiB while it lives), and the
    // peak is lowest when that happens over the smallest resident set (issue 18; the drop
    // and syscall programs loaded after the rings made a 66 MiB peak for a 35 MiB agent).
    let kernel_path = matches!(running, Running::Kernel { .. });
    let (drops, drop_ring, drops_unavailable) = if kernel_path {
        start_drop_reports(&args)
    } else {
        (Arc::default(), None, false)
    };
    let (syscalls, syscall_ring, syscalls_unavailable) = if kernel_path {
        start_syscall_tracer(&args)
    } else {
        (Arc::default(), None, false)
    };
    // The afpacket path reads no TLS plaintext; it must not start the probes either: once
    // attribution's socket programs run by tail call from theirs, stopping them would
    // silently stop attribution's too.
    let (tls, tls_ring) = if matches!(running, Running::AfPacket) {
        if args.tls_plaintext {
            warn!("TLS plaintext is read on the tc and socket capture paths only, not afpacket");
        }
        (super::tls::SharedTls::default(), None)
    } else {
        super::tls::start_tls(&args)
    };
    // Both modules have programs on every socket send and receive: one dispatch for both.
    if let Some(a) = attribution.as_mut() {
        tls.chain_sock_io(a);
    }
    // For `flowscope status`: the method, and on the tp_btf methods what reports the owners
    // of accepted and connected-UDP sockets (as chained just above).
    let attribution_method = match attribution.as_ref() {
        Some(a) => match a.owner_hook() {
            Some(hook) => format!("{} (accepted sockets: {hook})", a.method()),
            None => a.method().to_string(),
        },
        None if args.attribution == "off" => "off".to_string(),
        None => "proc-only".to_string(),
    };
    // The loaders' parsed BTF is freed now; give its pages back before the rings are mapped.
    trim_now();
    super::privileges::drop_unneeded(matches!(running, Running::AfPacket));
    let mut sigterm = tokio::signal::unix::signal(SignalKind::terminate())
        .context("installing the SIGTERM handler")?;

    let api_cfg = ApiConfig {
        unix_socket: args.unix_socket()?,
        tcp: args
            .listen_tcp
            .as_deref()
            .map(str::parse)
            .transpose()
            .context("listen-tcp")?,
        tls: args.tls_files(),
        tls_server_name: args.tls_server_name.clone(),
        max_flows: args.max_flows,
        node_name: args.node_name(),
        peer_service: args.peer_service.clone(),
        endpoints: args.endpoints_config(),
    };
    let store = api_cfg.new_store();
    let engine_counters: SharedCounters = Arc::default();
    let status = StatusHandle::default();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let api_stop = {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let api = tokio::spawn(api::serve(
        api_cfg.clone(),
        store.clone(),
        status.clone(),
        api_stop,
    ));
    info!(socket = %api_cfg.unix_socket.display(), tcp = ?api_cfg.tcp, "serving the Observer API");
    let exports = {
        let status = status.clone();
        crate::export::ExportRuntime::start(&args.export, &api_cfg.node_name, move || {
            status.get().counters
        })
        .await
        .context("starting span export and metrics")?
    };
    // Long bodies no decoder reads go as their segments' headers (kernel capture paths).
    let body_skip = match &running {
        Running::Kernel { cap, .. } if args.body_skip_min_bytes > 0 => {
            match cap.lock().expect("capture lock").take_body_skip() {
                Ok(s) => Some(s),
                Err(e) => {
                    warn!(error = %e, "capturing long bodies whole: the skip table is missing");
                    None
                }
            }
        }
        _ => None,
    };
    let mut pipeline = Pipeline::new(
        BufWriter::new(io::stdout()),
        args.output,
        store.clone(),
        engine_counters.clone(),
        owners,
        args.l4_records.engine(),
        exports.handles(),
        args.engine_workers(),
        body_skip,
        args.body_skip_min_bytes,
    );
    pipeline.set_exclude_self(args.exclude_self);
    let workers = args.engine_workers();
    info!(workers, "decoding on {workers} engine worker thread(s)");
    pipeline.set_tls(tls.clone());

    let outcome = match running {
        Running::Kernel { cap, path } => {
            let ring = {
                let mut c = cap.lock().expect("capture lock");
                let idle = c
                    .take_reader_idle()
                    .inspect_err(|e| {
                        warn!(error = %e, "the first records after a quiet spell will wait for the idle poll")
                    })
                    .ok();
                CaptureRing {
                    ring: c.take_ring()?,
                    idle,
                }
            };
            if syscall_ring.is_some() {
                pipeline.enable_syscall_spans(SyscallSpanConfig {
                    max_children: args.syscall_span_children,
                    ..SyscallSpanConfig::default()
                });
            }
            let path_name = match path {
                CaptureKind::Tc => "tc",
                CaptureKind::Socket => "socket",
                CaptureKind::Afpacket => "afpacket",
            };
            {
                let cap = cap.clone();
                let engine_counters = engine_counters.clone();
                let drops = drops.clone();
                let syscalls = syscalls.clone();
                let tls = tls.clone();
                status.set_provider(move || {
                    let c = cap.lock().unwrap_or_else(|p| p.into_inner());
                    let mut counters: Vec<(String, u64)> = c
                        .counters()
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect();
                    counters.extend(
                        engine_counters
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .iter()
                            .cloned(),
                    );
                    counters.extend(super::drops::drop_counters(&drops, drops_unavailable));
                    if syscalls_unavailable || syscalls.lock().is_ok_and(|s| s.is_some()) {
                        counters.extend(super::syscalls::syscall_counters(
                            &syscalls,
                            syscalls_unavailable,
                        ));
                    }
                    counters.extend(tls.counters());
                    counters.extend(super::listen_drops::listen_drop_counters());
                    AgentStatus {
                        capture_path: path_name.into(),
                        attachments: c
                            .attached()
                            .into_iter()
                            .map(|(i, m)| (i, m.as_str().to_string()))
                            .collect(),
                        attribution: attribution_method.clone(),
                        counters,
                        tls_libraries: tls.status(),
                    }
                });
            }
            info!("capturing (path: {path_name}); Ctrl-C to stop");
            let mut pipeline = pipeline;
            pipeline.set_clock(MonoToWall::sample());
            let reader = tokio::spawn(read_ring(
                ring,
                attr_ring,
                drop_ring,
                syscall_ring,
                tls_ring,
                pipeline,
                stop_rx.clone(),
            ));
            let tls_watch = tokio::spawn(super::tls::watch_tls(tls.clone()));
            let watcher: JoinHandle<Result<()>> =
                tokio::spawn(watch_links(cap.clone(), args.clone(), path));
            let chores = tokio::spawn(housekeeping(cap.clone(), store.clone()));
            let mut reader = reader;
            let outcome: Result<()> = tokio::select! {
                _ = tokio::signal::ctrl_c() => { info!("interrupted; detaching"); Ok(()) }
                _ = sigterm.recv() => { info!("terminated; detaching"); Ok(()) }
                r = &mut reader => Err(match r { Ok(Err(e)) => e, Ok(Ok(_)) => anyhow!("the ring reader stopped"), Err(e) => anyhow!("the ring reader panicked: {e}") }),
                r = flatten(watcher) => r.and(Err(anyhow!("the interface watcher stopped"))),
            };
            let _ = stop_tx.send(true);
            chores.abort();
            tls_watch.abort();
            // Let the reader emit what the engine still holds, unless it is what failed.
            if !reader.is_finished() {
                match tokio::time::timeout(Duration::from_secs(5), reader).await {
                    Ok(Ok(Err(e))) => warn!("ring reader: {e:#}"),
                    Ok(Err(e)) => warn!("ring reader: {e}"),
                    _ => {}
                }
            }
            let mut c = cap.lock().unwrap_or_else(|p| p.into_inner());
            for (name, v) in c.counters() {
                eprintln!("{name}: {v}");
            }
            c.detach_all();
            // Detach the kfree_skb and syscall programs and the TLS uprobes too.
            drops.lock().unwrap_or_else(|p| p.into_inner()).take();
            syscalls.lock().unwrap_or_else(|p| p.into_inner()).take();
            tls.stop();
            outcome
        }
        Running::AfPacket => {
            drop((tls, tls_ring));
            let ifindex = match ifaces.as_slice() {
                [one] if !args.interfaces.is_empty() => Some(one.index),
                _ if args.interfaces.is_empty() => None,
                _ => bail!("the afpacket path takes one --iface, or none for all interfaces"),
            };
            let mut sock = AfPacketCapture::open(ifindex, args.snaplen as usize + 128, l2_of)?;
            sock.set_timeout(200)?;
            {
                let engine_counters = engine_counters.clone();
                status.set_provider(move || AgentStatus {
                    capture_path: "afpacket".into(),
                    attribution: attribution_method.clone(),
                    counters: engine_counters
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone(),
                    ..AgentStatus::default()
                });
            }
            let mut attr_ring = attr_ring;
            info!("capturing (path: afpacket); Ctrl-C to stop");
            let stop = Arc::new(AtomicBool::new(false));
            let s2 = stop.clone();
            let mut p = pipeline;
            let thread = std::thread::Builder::new().name("afpacket".into()).spawn(
                move || -> Result<()> {
                    let mut last_tick = wall_now_ns();
                    while !s2.load(Ordering::Relaxed) {
                        if let Some(r) = attr_ring.as_mut() {
                            drain_sock_events(r, &mut p);
                        }
                        if let Some((hdr, data)) = sock.recv()? {
                            p.on_frame(&hdr, data)?;
                        }
                        let now = wall_now_ns();
                        if now - last_tick > 100_000_000 {
                            p.tick(now)?;
                            last_tick = now;
                        }
                        p.flush()?;
                    }
                    p.finish()?;
                    p.flush()?;
                    Ok(())
                },
            )?;
            tokio::select! {
                _ = tokio::signal::ctrl_c() => info!("interrupted"),
                _ = sigterm.recv() => info!("terminated"),
            }
            stop.store(true, Ordering::Relaxed);
            let _ = stop_tx.send(true);
            thread
                .join()
                .map_err(|_| anyhow!("the afpacket reader panicked"))?
        }
    };
    // The pipeline has emitted its last spans: send them.
    exports.shutdown().await;
    // The API removes its socket when it stops.
    match tokio::time::timeout(Duration::from_secs(5), api).await {
        Ok(Ok(Err(e))) => warn!("observer API: {e:#}"),
        Ok(Err(e)) => warn!("observer API task: {e}"),
        Err(_) => warn!("observer API did not stop within 5 s"),
        Ok(Ok(Ok(()))) => {}
    }
    outcome
}

/// Loads the attribution programs as configured. Failing to is not fatal: flows stay visible,
/// with owners from /proc where it can tell.
fn start_attribution(args: &AgentConfig) -> (Option<Attribution>, OwnerCache) {
    let owners = |kernel_events: bool| {
        OwnerCache::new(OwnerCacheOptions {
            proc_fallback: args.attribution != "off",
            proc_root: args.proc_root.clone(),
            background_scans: true,
            // Long enough for a closed socket's last records (held up to 250 ms for their
            // owner); every connection of the last grace period is remembered, so on a node
            // opening thousands per second the default 5 s held several MiB more.
            close_grace_ns: 2_000_000_000,
            // With kernel events nearly every socket opened after start is reported (at its
            // connect, accept, first send or receive, or release; not one that only splices
            // from the socket or zero-copy-receives until long before its close); /proc is for
            // those and the ones that predate the agent (or whose events were lost), so scan
            // rarely.
            proc_rescan_ms: if kernel_events {
                PROC_RESCAN_WITH_EVENTS_MS
            } else {
                OwnerCacheOptions::default().proc_rescan_ms
            },
            ..OwnerCacheOptions::default()
        })
    };
    let method = match args.attribution_method() {
        Ok(Some(m)) => m,
        _ => return (None, owners(false)),
    };
    match Attribution::start(&AttributionOptions {
        method,
        // ~100-byte events: 1 MiB holds seconds of a connection-heavy node, and it counts in
        // RSS from the start (its pages are mapped once, see ebpf_ring). The reader drains it before
        // every capture batch and every poll, so it needs no wakeup per event.
        ring_bytes: 1 << 20,
        wakeup_batch_bytes: 32 << 10,
        // FLOWSCOPE_ATTRIBUTION_OWNER_HOOK=syscalls|sock forces one way to accepted sockets'
        // owners, to test the syscall-tracepoint path on a kernel that has both
        // (tests/tests/attribution.rs, tests/tests/agent_*).
        owner_hook: match std::env::var("FLOWSCOPE_ATTRIBUTION_OWNER_HOOK") {
            Ok(v) => SocketOwnerHook::parse(&v).unwrap_or_else(|| {
                warn!("FLOWSCOPE_ATTRIBUTION_OWNER_HOOK={v}: not auto, sock or syscalls; auto");
                SocketOwnerHook::Auto
            }),
            Err(_) => SocketOwnerHook::Auto,
        },
        ..AttributionOptions::default()
    }) {
        Ok(a) => {
            info!(
                method = a.method(),
                reason = a.reason(),
                "process attribution"
            );
            (Some(a), owners(true))
        }
        Err(e) => {
            warn!(
                "process attribution programs unavailable ({e}); owners come from /proc scans only"
            );
            (None, owners(false))
        }
    }
}

/// Shortest time between /proc scans when kernel events name new sockets.
const PROC_RESCAN_WITH_EVENTS_MS: u64 = 10_000;

/// Applies every pending attribution event.
fn drain_sock_events<W: std::io::Write>(ring: &mut SingleMapRing, p: &mut Pipeline<W>) -> u64 {
    let mut bad = 0;
    while let Some(item) = ring.next() {
        match SockEvent::parse(item) {
            Ok(ev) => p.on_sock_event(&ev),
            Err(_) => bad += 1,
        }
    }
    bad
}

/// How often [`housekeeping`] runs. Heap trimming every 5 s let a burst's freed pages stay
/// resident for seconds (the soak's RssAnon saw-toothed by ~6 MiB); every second cut its mean
/// by 2 MiB and its peaks by 5 MiB, for a walk of one arena's free lists and the page faults
/// of memory used again (BENCHMARKS.md "Soak memory under 50 MB").
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(1);

/// Once every [`HOUSEKEEPING_EVERY`], on one timer (one wakeup, not one per chore):
/// - tells the store (and so `flowscope observe`, as LostEvents) when the kernel ring
///   overflowed;
/// - gives the allocator's free pages back to the kernel ([`trim_now`]; the first call, at
///   once, returns what the kernel programs' loaders have just freed: tens of MiB of parsed
///   kernel BTF). glibc keeps memory a thread freed in that thread's arena and returns it
///   only from the top of a heap; the ring reader task moves between tokio's worker threads,
///   so under load the arenas came to hold megabytes of free pages (RssAnon 14-40 MiB from
///   run to run at 10k req/s, 11-20 MiB idle; BENCHMARKS.md "Agent CPU and memory per
///   request"). `malloc_trim` releases the free pages inside every arena (MADV_DONTNEED), not
///   only at the top; it walks the free lists, well under a millisecond here.
async fn housekeeping(cap: SharedCapture, store: Arc<crate::api::FlowStore>) {
    let mut last = 0u64;
    let mut tick = tokio::time::interval(HOUSEKEEPING_EVERY);
    loop {
        tick.tick().await;
        let lost = cap
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .counters()
            .into_iter()
            .find(|(k, _)| *k == "kernel_ring_full_lost")
            .map(|(_, v)| v)
            .unwrap_or(0);
        if lost > last {
            store.note_lost(LostSource::KernelRing, lost - last);
            last = lost;
        }
        trim_now();
    }
}

/// Returns the free pages of every malloc arena to the kernel (see [`housekeeping`]).
fn trim_now() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim has no preconditions; other threads may allocate meanwhile
    // (it takes each arena's lock).
    unsafe {
        libc::malloc_trim(0);
    }
}

fn l2_of(ifindex: u32) -> ebpf_tc::wire::L2Kind {
    iface::name_of(ifindex)
        .and_then(|n| iface::by_name(&n).ok())
        .map(|i| i.l2)
        .unwrap_or(ebpf_tc::wire::L2Kind::Ethernet)
}

async fn flatten<T>(h: JoinHandle<Result<T>>) -> Result<T> {
    match h.await {
        Ok(r) => r,
        Err(e) if e.is_panic() => Err(anyhow!("a capture task panicked: {e}")),
        Err(e) => Err(anyhow!("a capture task was cancelled: {e}")),
    }
}

/// The kernel wakes the reader each time this much more waits unread in the capture ring
/// (once per multiple crossed, not per record: BENCHMARKS.md, "Where the service's CPU goes
/// under the agent")... A batch is the
/// agent's longest stretch of work: at 10k HTTP/1 req/s, 128 KiB was ~170 exchanges, over a
/// millisecond on a core the observed service shares; 64 KiB halved the added p99 at +2–13%
/// CPU per request, while 32 and 16 KiB cost +20–35% CPU for no further p99 gain (each batch
/// starts on caches the service has just used; BENCHMARKS.md, "Ring wakeup batch size").
const RING_WAKEUP_BYTES: u32 = 64 << 10;
/// ...and the reader looks anyway after the time the kernel takes to write [`RING_WAKEUP_BYTES`]
/// at the rate records came in since its last look, within these bounds, while records come
/// in. Waking for every few packets (the kernel's default) cost a context switch per handful
/// of packets and preempted the observed service; batching trades at most this much delay for
/// far fewer wakeups. Each look runs on caches the service has just used: at 1k HTTP/1 req/s
/// a 20 ms poll cost 19-20 µs of agent CPU per request and 64 KiB batches 12-14 (the batch,
/// not the exchange, pays most of the cold start; BENCHMARKS.md, "The agent's wakeups"). At
/// high rates the kernel's wakeup comes first and the poll stays at 20 ms: a longer one lets a
/// batch grow past 64 KiB when a kernel wakeup is missed (two CPUs' records racing past the
/// same multiple), and a fixed 100 ms poll at 10k req/s gave multi-millisecond added p99s in
/// 3 runs of 11 against none of 17 with 20 ms (suggestive only: the spreads are wide).
const RING_POLL: (Duration, Duration) = (Duration::from_millis(20), Duration::from_millis(100));
/// ...this often while anything waits in the agent (a record or drop held for its owner, an
/// engine round out, syscall spans on), so that what waits is released promptly once its
/// owner is known.
const RING_POLL_HOLDING: Duration = Duration::from_millis(20);
/// ...and this often when its last look found nothing and nothing waits: an idle agent's
/// wakeups were ~90 a second (a 20 ms poll, the 100 ms timers and the TLS watcher's,
/// unaligned), each ~100 µs of CPU on a VM, ~1% of a core doing nothing (BENCHMARKS.md, "The
/// agent's wakeups"). Going to sleep for this long, the reader sets the kernel's
/// `reader_idle` flag ([`ebpf_tc::ReaderIdle`]), so that the first record after the quiet
/// spell wakes it at once instead of waiting up to this long in the ring.
const RING_POLL_IDLE: Duration = Duration::from_millis(200);
/// How often the engine's timers run and the counters are published: at the first poll this
/// long after the last (within one [`RING_POLL_HOLDING`]), not on a timer of their own.
const TICK: Duration = Duration::from_millis(100);

/// How long the reader sleeps before its next poll, when `read` bytes of records came in over
/// the `over` since its last poll and `holding` says whether anything waits in the agent
/// ([`Pipeline::holds_records`]; [`RING_POLL`], [`RING_POLL_HOLDING`], [`RING_POLL_IDLE`]).
fn poll_after(holding: bool, read: usize, over: Duration) -> Duration {
    if holding {
        RING_POLL_HOLDING
    } else if goes_idle(holding, read) {
        RING_POLL_IDLE
    } else {
        over.mul_f64(f64::from(RING_WAKEUP_BYTES) / read as f64)
            .clamp(RING_POLL.0, RING_POLL.1)
    }
}

/// Whether the reader sleeps its idle poll ([`RING_POLL_IDLE`]): its last look found nothing
/// and nothing waits in the agent.
fn goes_idle(holding: bool, read: usize) -> bool {
    !holding && read == 0
}

/// How soon the reader looks again after the kernel woke it: [`RING_POLL`]'s longest, unless
/// the wakeup ended a quiet spell (`armed`: [`arm_idle_wakeup`]), which only the first record
/// of a new burst makes; the rest of it (a lone request's exchange is a handful of packets, far
/// under a batch) then comes within [`RING_POLL`]'s shortest, not its longest.
fn after_wakeup(armed: &mut bool) -> Duration {
    if std::mem::take(armed) {
        RING_POLL.0
    } else {
        RING_POLL.1
    }
}

/// Asks the capture programs to wake the reader with their next record (the reader is about
/// to sleep its idle poll); true when they will. A flag that can't be set is logged and given
/// up: the first records after a quiet spell then wait for the idle poll, as without it.
fn arm_idle_wakeup(idle: &mut Option<ebpf_tc::ReaderIdle>) -> bool {
    let Some(flag) = idle.as_mut() else {
        return false;
    };
    match flag.set() {
        Ok(()) => true,
        Err(e) => {
            warn!(error = %e, "the first records after a quiet spell will wait for the idle poll");
            *idle = None;
            false
        }
    }
}

/// Reads every record in the capture ring, after the attribution events that came before
/// them, with the TLS plaintext merged in by kernel time. Returns the bytes of records read.
fn drain_ring<W: std::io::Write>(
    rb: &mut SingleMapRing,
    attr: Option<&mut SingleMapRing>,
    tls: Option<&mut SingleMapRing>,
    pipeline: &mut Pipeline<W>,
    bad_records: &mut u64,
    pacer: &mut Pacer,
) -> Result<usize> {
    pacer.restart();
    pipeline.note_reader_yields(pacer.yields);
    let ring_size = rb.size();
    // A plaintext chunk goes in after the packets captured before it (its TLS records were
    // sent, or received, before the SSL call returned) and before the later ones (the FIN
    // after a connection's last response), so it is merged by kernel time. The chunks are
    // taken first, up to now (`cut`); a packet captured after `cut` may have chunks before it
    // that were not in the ring yet: it is set aside, the clock read and the chunks taken
    // again, then it goes in. (Without this, a short connection's FINs could be decoded
    // before all its plaintext, seen on a slow VM, making it a blind spot too.)
    let mut plain: VecDeque<(u64, Vec<u8>)> = VecDeque::new();
    let on_tls = |pipeline: &mut Pipeline<W>, raw: &[u8]| -> Result<()> {
        if let Ok(ev) = TlsEvent::parse(raw) {
            pipeline.on_tls(&ev)?;
        }
        Ok(())
    };
    let on_frame = |pipeline: &mut Pipeline<W>,
                    plain: &mut VecDeque<(u64, Vec<u8>)>,
                    hdr: &PacketHdr,
                    data: &[u8]|
     -> Result<()> {
        while plain.front().is_some_and(|(ts, _)| *ts <= hdr.ts_ns) {
            let (_, raw) = plain.pop_front().expect("front checked");
            on_tls(pipeline, &raw)?;
        }
        Ok(pipeline.on_frame(hdr, data)?)
    };
    let (mut attr, mut tls) = (attr, tls);
    let mut later: Option<Vec<u8>> = None;
    // Bytes of records read (capture and plaintext), for the reader's poll period.
    let mut read = 0usize;
    loop {
        let cut = if tls.is_some() {
            monotonic_now_ns()
        } else {
            u64::MAX
        };
        // Owners first: an event written before a packet must be known when the packet is
        // decoded (again on each round: a packet set aside came later than those drained).
        if let Some(a) = attr.as_mut() {
            *bad_records += drain_sock_events(a, pipeline);
        }
        if let Some(ring) = tls.as_mut() {
            // Plaintext records only: exec events have a ring of their own, read by
            // watch_tls (ebpf-tls/bpf/openssl.bpf.c writes only READ and WRITE records here).
            while let Some(item) = ring.next() {
                read += item.len();
                match TlsEvent::parse(item) {
                    Ok(ev) => plain.push_back((ev.ts_ns, item.to_vec())),
                    Err(e) => {
                        *bad_records += 1;
                        if bad_records.is_power_of_two() {
                            warn!(bad_records = *bad_records, "unreadable TLS record: {e}");
                        }
                    }
                }
            }
        }
        if let Some(raw) = later.take() {
            if let Ok((hdr, data)) = PacketHdr::parse(&raw) {
                on_frame(pipeline, &mut plain, &hdr, data)?;
            }
        }
        while let Some(item) = rb.next() {
            read += item.len();
            match PacketHdr::parse(item) {
                Ok((hdr, _)) if hdr.ts_ns > cut => {
                    later = Some(item.to_vec());
                    break;
                }
                Ok((hdr, data)) => on_frame(pipeline, &mut plain, &hdr, data)?,
                Err(e) => {
                    *bad_records += 1;
                    if bad_records.is_power_of_two() {
                        warn!(bad_records = *bad_records, "unreadable ring record: {e}");
                    }
                }
            }
            pacer.after_record(ring_size, || rb.backlog());
        }
        if later.is_none() {
            break;
        }
    }
    for (_, raw) in plain {
        on_tls(pipeline, &raw)?;
    }
    pipeline.flush()?;
    Ok(read)
}

/// The capture ring and, when the programs have it, their `reader_idle` flag.
struct CaptureRing {
    ring: SingleMapRing,
    idle: Option<ebpf_tc::ReaderIdle>,
}

/// Drains the ring when the kernel signals a batch (see [`RING_WAKEUP_BYTES`]) and every
/// poll ([`RING_POLL`], [`RING_POLL_HOLDING`], [`RING_POLL_IDLE`]); runs the engine's timers
/// every [`TICK`]; on `stop`, emits what is pending and returns.
async fn read_ring(
    CaptureRing { ring, mut idle }: CaptureRing,
    attr_ring: Option<SingleMapRing>,
    drop_ring: Option<DropRing>,
    syscall_ring: Option<SingleMapRing>,
    tls_ring: Option<SingleMapRing>,
    mut pipeline: Pipeline<BufWriter<io::Stdout>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    // SAFETY: the ring owns its map fd and keeps it open, unchanged, for as long as it lives,
    // and the AsyncFd owns the ring.
    let mut afd =
        unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }.map_err(|e| {
            anyhow!(
                "registering the ring buffer with tokio: {}",
                e.into_parts().1
            )
        })?;
    let mut attr = match attr_ring {
        // SAFETY: as above: the ring owns its fd for its whole life and the AsyncFd owns it.
        Some(r) => Some(
            unsafe { AsyncFd::register_with_interest(r, Interest::READABLE) }.map_err(|e| {
                anyhow!(
                    "registering the attribution ring with tokio: {}",
                    e.into_parts().1
                )
            })?,
        ),
        None => None,
    };
    let (mut drop_ring, drop_reasons) = match drop_ring {
        // SAFETY: as above: the ring owns its fd for its whole life and the AsyncFd owns it.
        Some((r, reasons)) => (
            Some(
                unsafe { AsyncFd::register_with_interest(r, Interest::READABLE) }.map_err(|e| {
                    anyhow!("registering the drop ring with tokio: {}", e.into_parts().1)
                })?,
            ),
            reasons,
        ),
        None => (None, DropReasons::default()),
    };
    let mut syscall_ring = match syscall_ring {
        // SAFETY: as above: the ring owns its fd for its whole life and the AsyncFd owns it.
        Some(r) => Some(
            unsafe { AsyncFd::register_with_interest(r, Interest::READABLE) }.map_err(|e| {
                anyhow!(
                    "registering the syscall ring with tokio: {}",
                    e.into_parts().1
                )
            })?,
        ),
        None => None,
    };
    let mut tls = match tls_ring {
        // SAFETY: as above: the ring owns its fd for its whole life and the AsyncFd owns it.
        Some(r) => Some(
            unsafe { AsyncFd::register_with_interest(r, Interest::READABLE) }.map_err(|e| {
                anyhow!("registering the TLS ring with tokio: {}", e.into_parts().1)
            })?,
        ),
        None => None,
    };
    let mut bad_records = 0u64;
    let mut pacer = Pacer::new();
    // Whether the reader asked the kernel for a wakeup on the next record (it went idle).
    let mut armed = false;
    // One timer: the poll, which runs the tick when it is due.
    let mut next_poll = Instant::now() + RING_POLL_HOLDING;
    let mut last_tick = Instant::now();
    // Bytes of records read since the last poll, and when that was (for [`poll_after`]).
    let (mut read_since, mut last_poll) = (0usize, Instant::now());
    loop {
        tokio::select! {
            guard = async { attr.as_mut().expect("guarded").readable_mut().await }, if attr.is_some() => {
                let mut guard = guard.context("waiting on the attribution ring")?;
                bad_records += drain_sock_events(guard.get_inner_mut(), &mut pipeline);
                guard.clear_ready();
            }
            guard = afd.readable_mut() => {
                let mut guard = guard.context("waiting on the ring buffer")?;
                let (rb, attr) = (guard.get_inner_mut(), attr.as_mut().map(|a| a.get_mut()));
                let t = tls.as_mut().map(|r| r.get_mut());
                read_since += drain_ring(rb, attr, t, &mut pipeline, &mut bad_records, &mut pacer)?;
                guard.clear_ready();
                next_poll = next_poll.min(Instant::now() + after_wakeup(&mut armed));
            }
            guard = async { tls.as_mut().expect("guarded").readable_mut().await }, if tls.is_some() => {
                let mut guard = guard.context("waiting on the TLS ring")?;
                guard.clear_ready();
                drop(guard);
                let attr = attr.as_mut().map(|a| a.get_mut());
                let t = tls.as_mut().map(|r| r.get_mut());
                read_since += drain_ring(afd.get_mut(), attr, t, &mut pipeline, &mut bad_records, &mut pacer)?;
                next_poll = next_poll.min(Instant::now() + RING_POLL.1);
            }
            guard = async { drop_ring.as_mut().expect("guarded").readable_mut().await }, if drop_ring.is_some() => {
                let mut guard = guard.context("waiting on the drop ring")?;
                // The packets captured before a drop first: a drop is named from what they
                // taught the agent (the DNS answer for the address it was dropped on its way
                // to, the owner of its socket). The capture ring waits for its poll, the drop
                // ring wakes its reader at once.
                let (a, t) = (attr.as_mut().map(|a| a.get_mut()), tls.as_mut().map(|r| r.get_mut()));
                read_since += drain_ring(afd.get_mut(), a, t, &mut pipeline, &mut bad_records, &mut pacer)?;
                let a = attr.as_mut().map(|a| a.get_mut());
                drain_drops(guard.get_inner_mut(), a, &drop_reasons, &mut pipeline, &mut bad_records)?;
                guard.clear_ready();
                next_poll = next_poll.min(Instant::now() + RING_POLL_HOLDING);
            }
            guard = async { syscall_ring.as_mut().expect("guarded").readable_mut().await }, if syscall_ring.is_some() => {
                let mut guard = guard.context("waiting on the syscall ring")?;
                drain_syscalls(guard.get_inner_mut(), &mut pipeline, &mut bad_records);
                guard.clear_ready();
                next_poll = next_poll.min(Instant::now() + RING_POLL_HOLDING);
            }
            _ = tokio::time::sleep_until(next_poll) => {
                read_since += {
                    let attr = attr.as_mut().map(|a| a.get_mut());
                    let t = tls.as_mut().map(|r| r.get_mut());
                    drain_ring(afd.get_mut(), attr, t, &mut pipeline, &mut bad_records, &mut pacer)?
                };
                let now = Instant::now();
                if now + RING_POLL_HOLDING >= last_tick + TICK {
                    // The attribution ring was drained just above (owners first: the tick
                    // releases records whose hold ran out, and that ring wakes no one per
                    // event).
                    last_tick = now;
                    pipeline.tick(wall_now_ns())?;
                }
                let holding = pipeline.holds_records();
                let mut wait = poll_after(holding, read_since, now - last_poll);
                armed = goes_idle(holding, read_since) && arm_idle_wakeup(&mut idle);
                if armed {
                    // From here the next record wakes this reader; one written since the
                    // drain above woke no one: look once more.
                    let attr = attr.as_mut().map(|a| a.get_mut());
                    let t = tls.as_mut().map(|r| r.get_mut());
                    if drain_ring(afd.get_mut(), attr, t, &mut pipeline, &mut bad_records, &mut pacer)? > 0 {
                        wait = RING_POLL.0;
                    }
                }
                (read_since, last_poll) = (0, now);
                next_poll = now + wait;
            }
            _ = stop.wait_for(|s| *s) => {
                // Drain what is already in the rings, then flush the engine.
                let attr = attr.as_mut().map(|a| a.get_mut());
                let t = tls.as_mut().map(|r| r.get_mut());
                drain_ring(afd.get_mut(), attr, t, &mut pipeline, &mut bad_records, &mut pacer)?;
                if let Some(d) = drop_ring.as_mut() {
                    drain_drops(d.get_mut(), None, &drop_reasons, &mut pipeline, &mut bad_records)?;
                }
                if let Some(r) = syscall_ring.as_mut() {
                    drain_syscalls(r.get_mut(), &mut pipeline, &mut bad_records);
                }
                pipeline.finish()?;
                pipeline.flush()?;
                return Ok(());
            }
        }
    }
}

/// The kernel drop ring and the names of its reasons.
type DropRing = (SingleMapRing, DropReasons);

/// Starts kernel drop reports (unless off): the program, shared for its counters; its ring;
/// and whether it was wanted but could not load.
fn start_drop_reports(args: &AgentConfig) -> (super::drops::SharedDrops, Option<DropRing>, bool) {
    let (mut drops, unavailable) = match super::drops::start_drops(args) {
        Some(Ok(d)) => (Some(d), false),
        Some(Err(_)) => (None, true),
        None => (None, false),
    };
    let ring = drops.as_mut().and_then(|d| match d.take_ring() {
        Ok(r) => Some((r, d.reasons().clone())),
        Err(e) => {
            warn!("kernel drop reports: {e}");
            None
        }
    });
    (Arc::new(Mutex::new(drops)), ring, unavailable)
}

/// Starts syscall spans (when processes are selected): the programs, shared for their
/// counters; their ring; and whether they were wanted but could not load.
fn start_syscall_tracer(
    args: &AgentConfig,
) -> (super::syscalls::SharedSyscalls, Option<SingleMapRing>, bool) {
    let (mut tracer, unavailable) = match super::syscalls::start_syscall_spans(args) {
        Some(Ok(t)) => (Some(t), false),
        Some(Err(_)) => (None, true),
        None => (None, false),
    };
    let ring = tracer.as_mut().and_then(|t| match t.take_ring() {
        Ok(r) => Some(r),
        Err(e) => {
            warn!("syscall spans: {e}");
            None
        }
    });
    (Arc::new(Mutex::new(tracer)), ring, unavailable)
}

/// Hands every pending syscall record to the pipeline.
fn drain_syscalls<W: std::io::Write>(
    ring: &mut SingleMapRing,
    pipeline: &mut Pipeline<W>,
    bad_records: &mut u64,
) {
    while let Some(item) = ring.next() {
        match SyscallEvent::parse(item) {
            Ok(ev) => pipeline.on_syscall(&ev),
            Err(e) => {
                *bad_records += 1;
                if bad_records.is_power_of_two() {
                    warn!(bad_records = *bad_records, "unreadable syscall record: {e}");
                }
            }
        }
    }
}

/// Turns every pending drop record into a flow.
fn drain_drops<W: std::io::Write>(
    ring: &mut SingleMapRing,
    attr: Option<&mut SingleMapRing>,
    reasons: &DropReasons,
    pipeline: &mut Pipeline<W>,
    bad_records: &mut u64,
) -> Result<()> {
    // Owners first, as for packets: a socket's connect event is written before its first
    // SYN leaves, so before any report of that SYN's drop. A drop with no socket of its own
    // (NO_SOCKET at the server) is owned by the sending socket by 4-tuple, which a SYN's drop
    // reaches before the ring wakes for the connect event otherwise.
    if let Some(a) = attr {
        *bad_records += drain_sock_events(a, pipeline);
    }
    while let Some(item) = ring.next() {
        match DropEvent::parse(item) {
            Ok(ev) => pipeline.on_drop(&ev, reasons)?,
            Err(e) => {
                *bad_records += 1;
                if bad_records.is_power_of_two() {
                    warn!(bad_records = *bad_records, "unreadable drop record: {e}");
                }
            }
        }
    }
    pipeline.flush()?;
    Ok(())
}

/// Follows interfaces that appear or go away (only when no --iface was given, or to tell the
/// socket path about a raw-IP device).
async fn watch_links(cap: SharedCapture, args: AgentConfig, path: CaptureKind) -> Result<()> {
    let watcher = LinkWatcher::open().context("opening rtnetlink to follow new interfaces")?;
    // SAFETY: the watcher owns its socket for its whole life, and the AsyncFd owns the watcher.
    let afd =
        unsafe { AsyncFd::register_with_interest(watcher, Interest::READABLE) }.map_err(|e| {
            anyhow!(
                "registering the netlink socket with tokio: {}",
                e.into_parts().1
            )
        })?;
    let all = args.interfaces.is_empty();
    let mode = tc_mode(args.tc_attach);
    loop {
        let mut guard = afd.readable().await?;
        let events = match guard.get_inner().poll_events() {
            Ok(ev) => ev,
            Err(e) => {
                // Lost notifications (ENOBUFS): rescan everything.
                warn!("interface notifications lost ({e}); rescanning");
                iface::all()?
                    .into_iter()
                    .map(|i| LinkEvent::New {
                        index: i.index,
                        up: i.up,
                    })
                    .collect()
            }
        };
        guard.clear_ready();
        for ev in events {
            match ev {
                LinkEvent::New { index, up } => {
                    let Some(i) = iface::name_of(index).and_then(|n| iface::by_name(&n).ok())
                    else {
                        continue;
                    };
                    let wanted = all || args.interfaces.contains(&i.name);
                    let mut c = cap.lock().expect("capture lock");
                    match path {
                        CaptureKind::Tc if wanted && up && !c.is_attached(index) => {
                            match c.attach_tc(&i, mode) {
                                Ok(m) => {
                                    info!(iface = %i.name, method = m.as_str(), "new interface: capturing")
                                }
                                Err(e) => warn!("new interface {}: {e}", i.name),
                            }
                        }
                        CaptureKind::Socket => {
                            if let Err(e) = c.note_interface(&i) {
                                warn!("new interface {}: {e}", i.name);
                            }
                        }
                        _ => {}
                    }
                }
                LinkEvent::Deleted { index } => {
                    let mut c = cap.lock().expect("capture lock");
                    if c.is_attached(index) {
                        info!(ifindex = index, "interface removed");
                        c.detach_tc(index);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_poll_follows_the_rate_within_its_bounds() {
        let batch = RING_WAKEUP_BYTES as usize;
        // What waits is released promptly, whatever came in.
        assert_eq!(poll_after(true, 0, 200 * MS), RING_POLL_HOLDING);
        assert_eq!(poll_after(true, 10 * batch, 20 * MS), RING_POLL_HOLDING);
        // Nothing came and nothing waits: the idle poll.
        assert_eq!(poll_after(false, 0, 20 * MS), RING_POLL_IDLE);
        // A batch's worth in 40 ms: look again in 40 ms.
        assert_eq!(poll_after(false, batch, 40 * MS), 40 * MS);
        // Half a batch in 20 ms (1k HTTP/1 req/s or so): 40 ms.
        assert_eq!(poll_after(false, batch / 2, 20 * MS), 40 * MS);
        // Faster than a batch per 20 ms: the kernel's wakeups come first; 20 ms.
        assert_eq!(poll_after(false, 4 * batch, 20 * MS), RING_POLL.0);
        // A trickle: no longer than the upper bound.
        assert_eq!(poll_after(false, 100, 200 * MS), RING_POLL.1);
    }
}
