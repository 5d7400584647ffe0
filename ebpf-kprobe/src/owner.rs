//! The userspace side of attribution: socket cookie / tuple -> owning process, bounded.
//!
//! [`OwnerCache::apply`] feeds it the kernel's [`SockEvent`]s; [`OwnerCache::lookup_cookie`]
//! and [`OwnerCache::lookup_tuple`] answer "whose packet is this". Tuples the kernel never
//! reported (sockets older than the agent) are resolved once through /proc and cached, misses
//! included. Closed sockets stay for a grace period: their last packets still need an owner.
//!
//! Time is a parameter (the events' CLOCK_MONOTONIC `ts_ns`, and [`OwnerCache::expire`]'s
//! `now_ns`), never read here.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    hash::Hash,
    net::SocketAddr,
    path::PathBuf,
    sync::Arc,
    time::Instant,
};

use crate::{
    cgroup::{self, CgroupResolver},
    procfs::{self, ProcSnapshot},
    wire::{SockEvent, SockEventKind, SocketTuple, Transport},
};

/// The process that owns a socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Thread group id (what `ps` calls the pid).
    pub pid: u32,
    /// The thread that acted (equal to `pid` when resolved through /proc).
    pub tid: u32,
    /// The process's name (at most 15 bytes): the thread group leader's comm, what `ps`
    /// shows. The kernel event carries the acting thread's comm; for another thread the
    /// leader's is read from `/proc/PID/comm` once per thread (the thread's when the process
    /// is already gone). Shared (`Arc<str>`) with every record attributed to the process: a
    /// copy is a reference count, not an allocation.
    pub comm: Arc<str>,
    /// The acting thread's comm when it differs from [`ProcessInfo::comm`] (a runtime's
    /// worker, e.g. `tokio-rt-worker`).
    pub thread_name: Option<Arc<str>>,
    /// cgroup v2 id (the inode of the cgroup directory); 0 when unknown.
    pub cgroup_id: u64,
    /// cgroup v2 path, e.g. `/system.slice/docker-<id>.scope`.
    pub cgroup_path: Option<String>,
    /// Container id parsed from the cgroup path.
    pub container_id: Option<Arc<str>>,
    /// Container runtime that named the cgroup ("docker", "containerd", "crio", "podman").
    pub container_runtime: Option<&'static str>,
    /// Kubernetes pod UID parsed from the cgroup path.
    pub pod_uid: Option<String>,
    /// Network namespace inode; 0 when unknown.
    pub netns: u32,
    /// Where this answer came from.
    pub source: OwnerSource,
}

/// How an owner was learned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerSource {
    /// A kernel event at connect/accept/send time.
    Kernel,
    /// A /proc scan (the socket predates the agent, or its events were lost).
    Proc,
}

/// Limits of the cache.
#[derive(Clone, Debug)]
pub struct OwnerCacheOptions {
    /// Most sockets remembered per index (cookie, tuple); older ones are forgotten first.
    pub capacity: usize,
    /// How long a closed socket keeps its owner, in nanoseconds.
    pub close_grace_ns: u64,
    /// How long an unresolvable tuple is not looked up again, in nanoseconds.
    pub negative_ttl_ns: u64,
    /// Shortest time between two /proc scans, in milliseconds (a scan answers every tuple
    /// present at that moment).
    pub proc_rescan_ms: u64,
    /// Resolve unknown tuples through /proc.
    pub proc_fallback: bool,
    /// Scan /proc on a thread of its own and answer from the last finished scan. A scan of a
    /// busy host (thousands of sockets, TIME_WAIT included, listed by the kernel's
    /// /proc/net/tcp) takes tens to hundreds of milliseconds; run inline it stalled the
    /// capture reader until the kernel ring overflowed. Callers then retry a miss (the agent
    /// holds a record up to 250 ms for its owner).
    pub background_scans: bool,
    /// /proc (tests point it elsewhere).
    pub proc_root: PathBuf,
    /// Mount point of the cgroup v2 hierarchy (None: found in /proc/self/mountinfo).
    pub cgroup_root: Option<PathBuf>,
}

impl Default for OwnerCacheOptions {
    fn default() -> Self {
        Self {
            capacity: 65_536,
            close_grace_ns: 5_000_000_000,
            negative_ttl_ns: 30_000_000_000,
            proc_rescan_ms: 250,
            proc_fallback: true,
            background_scans: false,
            proc_root: PathBuf::from("/proc"),
            cgroup_root: None,
        }
    }
}

/// A map that keeps at most `cap` entries by holding two generations: inserts go to the young
/// one; when it is full, the old one is dropped and the young one becomes old. A hit in the old
/// generation is moved back to the young one, so entries in use survive (LRU-ish, O(1)).
/// The generations' map: foldhash with a per-map random seed. SipHash was a tenth of the
/// agent's time in owner lookups; keys (ports, addresses) are partly remote-chosen, so the
/// hasher stays seeded.
type Gen<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Debug)]
struct TwoGen<K, V> {
    young: Gen<K, V>,
    old: Gen<K, V>,
    half: usize,
    evicted: u64,
}

impl<K: Hash + Eq + Clone, V> TwoGen<K, V> {
    fn new(cap: usize) -> Self {
        Self {
            young: Gen::default(),
            old: Gen::default(),
            half: (cap / 2).max(1),
            evicted: 0,
        }
    }

    fn insert(&mut self, k: K, v: V) {
        self.old.remove(&k);
        if self.young.len() >= self.half && !self.young.contains_key(&k) {
            self.evicted += self.old.len() as u64;
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(k, v);
    }

    fn get(&mut self, k: &K) -> Option<&V> {
        if let Some(v) = self.old.remove(k) {
            self.insert(k.clone(), v);
        }
        self.young.get(k)
    }

    fn peek(&self, k: &K) -> Option<&V> {
        self.young.get(k).or_else(|| self.old.get(k))
    }

    fn remove(&mut self, k: &K) -> Option<V> {
        self.young.remove(k).or_else(|| self.old.remove(k))
    }

    fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }
}

#[derive(Clone, Debug)]
struct Owner {
    info: Arc<ProcessInfo>,
    /// Set when the socket closed: the ts_ns of the close.
    closed_at: Option<u64>,
    /// The tuple this socket was last seen with (so a close by cookie also retires the tuple).
    tuple: Option<SocketTuple>,
}

/// Keys queued for removal once their grace period ends.
#[derive(Debug)]
enum Closing {
    Cookie(u64),
    Tuple(SocketTuple),
}

#[derive(Debug, Default)]
struct Counters {
    events: u64,
    cookie_hits: u64,
    cookie_misses: u64,
    tuple_hits: u64,
    tuple_misses: u64,
    proc_scans: u64,
    proc_lookups: u64,
    proc_resolved: u64,
    negative_hits: u64,
    close_evictions: u64,
}

/// Bounded socket -> owner maps fed by kernel events, with a /proc fallback.
#[derive(Debug)]
pub struct OwnerCache {
    opts: OwnerCacheOptions,
    by_cookie: TwoGen<u64, Owner>,
    by_tuple: TwoGen<SocketTuple, Owner>,
    /// UDP sockets reported with an unspecified local address: (local port, peer) -> owner.
    by_udp_port: TwoGen<(u16, std::net::SocketAddr), Owner>,
    negative: TwoGen<SocketTuple, u64>,
    /// (pid, tid, cgroup id, netns) -> the ProcessInfo last built for it.
    processes: TwoGen<(u32, u32, u64, u32), Arc<ProcessInfo>>,
    closing: VecDeque<(u64, Closing)>,
    cgroups: CgroupResolver,
    snapshot: Option<(Instant, ProcSnapshot)>,
    /// A background scan in flight.
    scanning: Option<std::sync::mpsc::Receiver<(Instant, ProcSnapshot)>>,
    now_ns: u64,
    counters: Counters,
    /// Local ends of the TCP connections this node accepted (passive opens, any network
    /// namespace): its servers' endpoints (see [`OwnerCache::is_local_server`]). At most
    /// [`MAX_LOCAL_SERVERS`].
    local_servers: HashSet<SocketAddr, foldhash::fast::RandomState>,
    /// Tuples that kernel events named without an owner (passive opens), by socket cookie:
    /// an owner that comes with the cookie alone (a socket's release) is joined to them.
    unowned: TwoGen<u64, SocketTuple>,
}

/// Most endpoints [`OwnerCache::is_local_server`] remembers; past it, new ones are not added.
const MAX_LOCAL_SERVERS: usize = 16_384;

/// TCP_SYN_RECV and TCP_ESTABLISHED (include/net/tcp_states.h): a passive open's change.
const PASSIVE_OPEN: (u8, u8) = (3, 1);

impl OwnerCache {
    /// An empty cache.
    pub fn new(opts: OwnerCacheOptions) -> Self {
        let cap = opts.capacity;
        let root = opts.cgroup_root.clone().or_else(cgroup::cgroup2_mount);
        Self {
            by_cookie: TwoGen::new(cap),
            by_tuple: TwoGen::new(cap),
            by_udp_port: TwoGen::new(cap),
            negative: TwoGen::new(cap),
            processes: TwoGen::new(4096),
            closing: VecDeque::new(),
            cgroups: CgroupResolver::new(root),
            snapshot: None,
            scanning: None,
            now_ns: 0,
            counters: Counters::default(),
            local_servers: HashSet::default(),
            unowned: TwoGen::new(cap),
            opts,
        }
    }

    /// Sockets currently remembered (by cookie, by tuple).
    pub fn len(&self) -> (usize, usize) {
        (self.by_cookie.len(), self.by_tuple.len())
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.by_cookie.len() == 0 && self.by_tuple.len() == 0
    }

    /// Learns from one kernel event. Call for every record read from the ring, in order.
    pub fn apply(&mut self, ev: &SockEvent) {
        self.counters.events += 1;
        self.now_ns = self.now_ns.max(ev.ts_ns);
        match ev.kind {
            SockEventKind::Close => {
                let until = ev.ts_ns + self.opts.close_grace_ns;
                // The close record rarely has the local port (it is released first): the tuple
                // comes from what the cookie was joined to.
                let mut tuple = ev.tuple;
                if let Some(c) = ev.cookie {
                    if let Some(o) = self.by_cookie.get(&c).cloned() {
                        tuple = tuple.or(o.tuple);
                        self.by_cookie.insert(
                            c,
                            Owner {
                                closed_at: Some(ev.ts_ns),
                                ..o
                            },
                        );
                        self.closing.push_back((until, Closing::Cookie(c)));
                    }
                }
                if let Some(t) = tuple {
                    if let Some(o) = self.by_tuple.get(&t).cloned() {
                        self.by_tuple.insert(
                            t,
                            Owner {
                                closed_at: Some(ev.ts_ns),
                                ..o
                            },
                        );
                        self.closing.push_back((until, Closing::Tuple(t)));
                    }
                }
            }
            _ => {
                // A passive open names a server of this node before its owner is known.
                if let (Some(t), SockEventKind::StateChange, PASSIVE_OPEN) =
                    (ev.tuple, ev.kind, ev.tcp_states)
                {
                    if self.local_servers.len() < MAX_LOCAL_SERVERS {
                        self.local_servers.insert(t.local);
                    }
                    if let Some(c) = ev.cookie {
                        self.unowned.insert(c, t);
                    }
                }
                // A release names a socket no other event did; one already named keeps the
                // owner it has (the release carries no netns, and may be another process).
                if ev.kind == SockEventKind::Io && ev.tuple.is_none() {
                    if let Some(c) = ev.cookie {
                        if self
                            .by_cookie
                            .peek(&c)
                            .is_some_and(|o| o.closed_at.is_none())
                        {
                            return;
                        }
                    }
                }
                let owner = match &ev.process {
                    Some(p) => Some(Owner {
                        info: self.process_info(ev, p),
                        closed_at: None,
                        tuple: None,
                    }),
                    // A state change joins a cookie the connect hook saw to the tuple.
                    None => ev
                        .cookie
                        .and_then(|c| self.by_cookie.peek(&c).cloned())
                        .filter(|o| o.closed_at.is_none()),
                };
                let Some(mut owner) = owner else {
                    return;
                };
                // An owner with the cookie alone: the tuple its passive open named.
                let tuple = ev
                    .tuple
                    .or_else(|| ev.cookie.and_then(|c| self.unowned.remove(&c)));
                owner.tuple = tuple.or(owner.tuple);
                if let Some(c) = ev.cookie {
                    self.by_cookie.insert(c, owner.clone());
                }
                if let Some(t) = tuple {
                    self.negative.remove(&t);
                    if t.proto == Transport::Udp && t.local.ip().is_unspecified() {
                        self.by_udp_port
                            .insert((t.local.port(), t.remote), owner.clone());
                    }
                    self.by_tuple.insert(t, owner);
                }
            }
        }
        self.expire(self.now_ns);
    }

    /// Whether `endpoint` accepted a TCP connection on this node (any network namespace)
    /// since the agent started: a flow whose far end it is has its peer's owner coming in a
    /// kernel event (an accepted socket is named at accept or at its first send or receive,
    /// after the request's first packets may have been captured on the client's side). An
    /// address translated on the way (a NodePort, a ClusterIP) is not one.
    pub fn is_local_server(&self, endpoint: &SocketAddr) -> bool {
        self.local_servers.contains(endpoint)
    }

    /// Stops [`OwnerCache::is_local_server`] answering yes for `endpoint` until it accepts
    /// again (a wait for its owner ran out: a server gone, or its port reused otherwise).
    pub fn forget_local_server(&mut self, endpoint: &SocketAddr) {
        self.local_servers.remove(endpoint);
    }

    /// Joins a socket's 4-tuple to the owner its cookie has, even while it closes: a kernel
    /// event that named both (a RST received in SYN-SENT) for a socket whose attribution
    /// events never did (a connect refused before ESTABLISHED joins no tuple). A closed
    /// socket's tuple is forgotten after the same grace period. Returns whether it joined.
    pub fn join_tuple(&mut self, cookie: u64, tuple: SocketTuple) -> bool {
        let Some(o) = self.by_cookie.peek(&cookie).cloned() else {
            return false;
        };
        if let Some(closed) = o.closed_at {
            let until = closed + self.opts.close_grace_ns;
            self.closing.push_back((until, Closing::Tuple(tuple)));
        }
        let o = Owner {
            tuple: Some(tuple),
            ..o
        };
        self.negative.remove(&tuple);
        // Its close, if not yet applied, retires the tuple with the cookie.
        self.by_cookie.insert(cookie, o.clone());
        self.by_tuple.insert(tuple, o);
        true
    }

    /// The shared ProcessInfo for this (thread, comm, cgroup, netns): one process's many sockets
    /// share one allocation, and the cgroup path and container id are worked out once.
    fn process_info(&mut self, ev: &SockEvent, p: &crate::wire::WireProcess) -> Arc<ProcessInfo> {
        let netns = ev.netns.unwrap_or(0);
        let key = (p.pid, p.tid, p.cgroup_id, netns);
        if let Some(info) = self.processes.get(&key) {
            if *info.thread_name.as_deref().unwrap_or(&info.comm) == *p.comm {
                return info.clone();
            }
        }
        // The event's comm is the acting thread's; the process is named by its leader.
        let leader = (p.tid != 0 && p.tid != p.pid)
            .then(|| procfs::read_comm(&self.opts.proc_root, p.pid))
            .flatten();
        let (comm, thread_name) = match leader {
            Some(l) if l != p.comm => (l.into(), Some(p.comm.as_str().into())),
            _ => (p.comm.as_str().into(), None),
        };
        let cgroup_path = (p.cgroup_id != 0)
            .then(|| self.cgroups.path_of(p.cgroup_id))
            .flatten();
        let container = cgroup_path.as_deref().and_then(cgroup::parse_container);
        let info = ProcessInfo {
            pid: p.pid,
            tid: p.tid,
            comm,
            thread_name,
            cgroup_id: p.cgroup_id,
            cgroup_path,
            container_id: container.as_ref().map(|c| c.id.as_str().into()),
            container_runtime: container.as_ref().map(|c| c.runtime),
            pod_uid: container.and_then(|c| c.pod_uid),
            netns,
            source: OwnerSource::Kernel,
        };
        let info = Arc::new(info);
        self.processes.insert(key, info.clone());
        info
    }

    /// Forgets closed sockets whose grace period ended before `now_ns` (CLOCK_MONOTONIC).
    /// [`Self::apply`] calls it too; call it from a timer when no events arrive.
    pub fn expire(&mut self, now_ns: u64) {
        self.now_ns = self.now_ns.max(now_ns);
        while let Some((until, _)) = self.closing.front() {
            if *until > self.now_ns {
                break;
            }
            let (_, key) = self.closing.pop_front().expect("front exists");
            // Only remove if still the closed entry (a reused cookie/tuple has closed_at None).
            let removed = match key {
                Closing::Cookie(c) => match self.by_cookie.peek(&c) {
                    Some(o) if o.closed_at.is_some() => self.by_cookie.remove(&c).is_some(),
                    _ => false,
                },
                Closing::Tuple(t) => match self.by_tuple.peek(&t) {
                    Some(o) if o.closed_at.is_some() => self.by_tuple.remove(&t).is_some(),
                    _ => false,
                },
            };
            self.counters.close_evictions += u64::from(removed);
        }
    }

    /// The owner of the socket with this cookie (as TC egress records carry it).
    pub fn lookup_cookie(&mut self, cookie: u64) -> Option<&ProcessInfo> {
        if self.by_cookie.get(&cookie).is_some() {
            self.counters.cookie_hits += 1;
            self.by_cookie.peek(&cookie).map(|o| &*o.info)
        } else {
            self.counters.cookie_misses += 1;
            None
        }
    }

    /// The owner of the socket whose local end is `t.local`, or failing that the one whose
    /// local end is `t.remote`: for callers that do not know which end of a packet is local.
    /// When both ends are on this host (namespaces, loopback) and only one end is known yet,
    /// this answers with that end's owner; callers that know the direction should use
    /// [`Self::lookup_local`]. Unknown tuples are resolved once through /proc; a miss is
    /// remembered for `negative_ttl_ns`.
    pub fn lookup_tuple(&mut self, t: &SocketTuple) -> Option<&ProcessInfo> {
        self.lookup(t, true, true)
    }

    /// The owner of the socket whose local end is exactly `t.local` and peer `t.remote`
    /// (egress packet: `local` = source; ingress packet: `local` = destination). Unknown tuples
    /// are resolved once through /proc; a miss is remembered for `negative_ttl_ns`.
    pub fn lookup_local(&mut self, t: &SocketTuple) -> Option<&ProcessInfo> {
        self.lookup(t, false, true)
    }

    /// Like [`OwnerCache::lookup_local`], but never starts a /proc scan: for the far end of a
    /// flow, which is usually on another host, so a scan could only miss (one per new peer).
    /// Sockets of this host are still found from kernel events and from the last scan.
    pub fn lookup_local_no_scan(&mut self, t: &SocketTuple) -> Option<&ProcessInfo> {
        self.lookup(t, false, false)
    }

    /// Known owner of `t` (or, with `either`, of its reverse); else what /proc says, starting a
    /// scan only when `may_scan`.
    fn lookup(&mut self, t: &SocketTuple, either: bool, may_scan: bool) -> Option<&ProcessInfo> {
        let t = t.canonical();
        let find = |me: &mut Self| {
            me.find_known(&t)
                .or_else(|| either.then(|| me.find_known(&t.reversed())).flatten())
        };
        if let Some(k) = find(self) {
            self.counters.tuple_hits += 1;
            return self.owner_at(&k);
        }
        if !self.opts.proc_fallback {
            self.counters.tuple_misses += 1;
            return None;
        }
        if let Some(&until) = self.negative.peek(&t) {
            if until > self.now_ns {
                self.counters.negative_hits += 1;
                self.counters.tuple_misses += 1;
                return None;
            }
        }
        let settled = if may_scan {
            self.resolve_proc(&t)
        } else {
            self.take_finished_scan();
            self.resolve_from_snapshot(&t);
            false
        };
        match find(self) {
            Some(k) => self.owner_at(&k),
            None => {
                // A scan still running may find it: no negative entry yet.
                if settled {
                    self.negative
                        .insert(t, self.now_ns + self.opts.negative_ttl_ns);
                }
                self.counters.tuple_misses += 1;
                None
            }
        }
    }

    /// Adopts a background scan that has finished.
    fn take_finished_scan(&mut self) {
        if let Some(rx) = &self.scanning {
            match rx.try_recv() {
                Ok(done) => {
                    self.snapshot = Some(done);
                    self.scanning = None;
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => {}
                Err(std::sync::mpsc::TryRecvError::Disconnected) => self.scanning = None,
            }
        }
    }

    fn owner_at(&self, k: &TupleKey) -> Option<&ProcessInfo> {
        match k {
            TupleKey::Exact(t) => self.by_tuple.peek(t).map(|o| &*o.info),
            TupleKey::UdpPort(p) => self.by_udp_port.peek(p).map(|o| &*o.info),
        }
    }

    fn find_known(&mut self, t: &SocketTuple) -> Option<TupleKey> {
        if self.by_tuple.get(t).is_some() {
            return Some(TupleKey::Exact(*t));
        }
        if t.proto == Transport::Udp {
            let k = (t.local.port(), t.remote);
            if self.by_udp_port.get(&k).is_some() {
                return Some(TupleKey::UdpPort(k));
            }
        }
        None
    }

    /// Scans /proc (at most once per `proc_rescan_ms`) and caches the owners of `t` and of its
    /// reverse, where the scan found them. False while a background scan that may still find
    /// them runs.
    fn resolve_proc(&mut self, t: &SocketTuple) -> bool {
        self.counters.proc_lookups += 1;
        self.take_finished_scan();
        let fresh = self
            .snapshot
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed().as_millis() < u128::from(self.opts.proc_rescan_ms));
        if !fresh && self.scanning.is_none() {
            self.counters.proc_scans += 1;
            if self.opts.background_scans {
                let (tx, rx) = std::sync::mpsc::channel();
                let root = self.opts.proc_root.clone();
                let spawned =
                    std::thread::Builder::new()
                        .name("proc-scan".into())
                        .spawn(move || {
                            let started = Instant::now();
                            let _ = tx.send((started, ProcSnapshot::scan(&root)));
                        });
                if spawned.is_ok() {
                    self.scanning = Some(rx);
                }
            } else {
                self.snapshot = Some((Instant::now(), ProcSnapshot::scan(&self.opts.proc_root)));
            }
        }
        self.resolve_from_snapshot(t);
        self.scanning.is_none()
    }

    /// Caches what the last scan knows of `t` and its reverse.
    fn resolve_from_snapshot(&mut self, t: &SocketTuple) {
        let Some((_, snap)) = self.snapshot.as_ref() else {
            return;
        };
        // Cache every orientation the scan knows: when both ends are on this host (namespaces,
        // loopback), each end is a different socket with a different owner, and caching only
        // one would let the other orientation's lookup fall back to it.
        let found: Vec<(SocketTuple, (u32, u32))> = [*t, t.reversed()]
            .into_iter()
            .filter_map(|k| snap.owner_of(&k).map(|o| (k, o)))
            .collect();
        for (key, (pid, netns)) in found {
            let Some(p) = procfs::read_process(&self.opts.proc_root, pid) else {
                continue;
            };
            let cgroup_id = p
                .cgroup_path
                .as_deref()
                .and_then(|path| self.cgroups.id_of(path))
                .unwrap_or(0);
            let container = p.cgroup_path.as_deref().and_then(cgroup::parse_container);
            let info = ProcessInfo {
                pid,
                tid: pid,
                comm: p.comm.into(),
                thread_name: None,
                cgroup_id,
                cgroup_path: p.cgroup_path,
                container_id: container.as_ref().map(|c| c.id.as_str().into()),
                container_runtime: container.as_ref().map(|c| c.runtime),
                pod_uid: container.and_then(|c| c.pod_uid),
                netns: if p.netns != 0 { p.netns } else { netns },
                source: OwnerSource::Proc,
            };
            self.counters.proc_resolved += 1;
            self.by_tuple.insert(
                key,
                Owner {
                    info: Arc::new(info),
                    closed_at: None,
                    tuple: Some(key),
                },
            );
        }
    }

    /// Counters by name: events applied, hits and misses per index, /proc scans and lookups,
    /// evictions (capacity and close).
    pub fn counters(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        let c = &self.counters;
        [
            ("owner_events_applied", c.events),
            ("owner_cookie_hits", c.cookie_hits),
            ("owner_cookie_misses", c.cookie_misses),
            ("owner_tuple_hits", c.tuple_hits),
            ("owner_tuple_misses", c.tuple_misses),
            ("owner_negative_cache_hits", c.negative_hits),
            ("owner_proc_scans", c.proc_scans),
            ("owner_proc_lookups", c.proc_lookups),
            ("owner_proc_resolved", c.proc_resolved),
            ("owner_close_evictions", c.close_evictions),
            (
                "owner_capacity_evictions",
                self.by_cookie.evicted + self.by_tuple.evicted + self.by_udp_port.evicted,
            ),
        ]
        .into_iter()
    }
}

enum TupleKey {
    Exact(SocketTuple),
    UdpPort((u16, std::net::SocketAddr)),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tests::record;

    fn opts() -> OwnerCacheOptions {
        OwnerCacheOptions {
            proc_fallback: false,
            capacity: 8,
            close_grace_ns: 100,
            // No leader names from the test host's /proc.
            proc_root: PathBuf::from("/nonexistent/proc"),
            ..Default::default()
        }
    }

    #[test]
    fn a_worker_threads_socket_is_named_after_its_process() {
        let root = std::env::temp_dir().join(format!("fs-leader-{}", std::process::id()));
        std::fs::create_dir_all(root.join("100")).unwrap();
        std::fs::write(root.join("100/comm"), "flowscope\n").unwrap();
        let mut c = OwnerCache::new(OwnerCacheOptions {
            proc_root: root.clone(),
            ..opts()
        });
        // The test record's tid is pid + 1: a thread other than the leader.
        c.apply(&ev(1, 7, None, 100, "tokio-rt-worker", 1));
        let p = c.lookup_cookie(7).unwrap().clone();
        assert_eq!(&*p.comm, "flowscope");
        assert_eq!(p.thread_name.as_deref(), Some("tokio-rt-worker"));
        // Gone from /proc: the thread's name is all there is.
        c.apply(&ev(1, 8, None, 200, "worker", 2));
        let p = c.lookup_cookie(8).unwrap();
        assert_eq!((&*p.comm, p.thread_name.as_deref()), ("worker", None));
        std::fs::remove_dir_all(root).unwrap();
    }

    fn ev(
        kind: u8,
        cookie: u64,
        ports: Option<(u16, u16)>,
        pid: u32,
        comm: &str,
        ts: u64,
    ) -> SockEvent {
        let mut r = record(
            kind,
            cookie,
            ports.map(|(s, d)| ([10, 0, 0, 1], s, [10, 0, 0, 2], d)),
            pid,
            comm,
        );
        r[0..8].copy_from_slice(&ts.to_ne_bytes());
        SockEvent::parse(&r).unwrap()
    }

    fn tuple(s: u16, d: u16) -> SocketTuple {
        SocketTuple {
            proto: Transport::Tcp,
            local: format!("10.0.0.1:{s}").parse().unwrap(),
            remote: format!("10.0.0.2:{d}").parse().unwrap(),
        }
    }

    #[test]
    fn a_passive_open_names_a_local_server_and_its_tuple_joins_a_later_owner() {
        let mut c = OwnerCache::new(opts());
        let ep = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(!c.is_local_server(&ep("10.0.0.1:80")));
        // inet_sock_set_state SYN_RECV -> ESTABLISHED: a tuple, no process, a new cookie.
        let mut open = ev(3, 9, Some((80, 40000)), 0, "", 1);
        open.tcp_states = PASSIVE_OPEN;
        c.apply(&open);
        assert!(c.is_local_server(&ep("10.0.0.1:80")), "the local end");
        assert!(!c.is_local_server(&ep("10.0.0.2:40000")), "not the peer");
        assert!(
            c.lookup_local_no_scan(&tuple(80, 40000)).is_none(),
            "no owner yet"
        );
        // Another state change (an active open's) names no server.
        c.apply(&ev(3, 10, Some((41000, 443)), 0, "", 2));
        assert!(!c.is_local_server(&ep("10.0.0.1:41000")));
        // The socket's release: cookie and owner, no local end.
        c.apply(&ev(7, 9, None, 300, "server", 3));
        let p = c
            .lookup_local_no_scan(&tuple(80, 40000))
            .expect("joined by cookie");
        assert_eq!(&*p.comm, "server");
        // A second release (another process holding it) leaves the named owner alone.
        c.apply(&ev(7, 9, None, 400, "other", 4));
        assert_eq!(&*c.lookup_cookie(9).unwrap().comm, "server");
        c.forget_local_server(&ep("10.0.0.1:80"));
        assert!(!c.is_local_server(&ep("10.0.0.1:80")));
    }

    #[test]
    fn joins_connect_cookie_to_state_tuple() {
        let mut c = OwnerCache::new(opts());
        c.apply(&ev(1, 7, None, 100, "curl", 1)); // cgroup/connect4: cookie + owner
        c.apply(&ev(3, 7, Some((40000, 80)), 0, "", 2)); // ESTABLISHED: cookie + tuple
        assert_eq!(c.lookup_cookie(7).unwrap().pid, 100);
        let p = c.lookup_tuple(&tuple(40000, 80)).unwrap();
        assert_eq!((p.pid, &*p.comm), (100, "curl"));
        // the reverse orientation finds the same socket
        assert_eq!(
            c.lookup_tuple(&tuple(40000, 80).reversed()).unwrap().pid,
            100
        );
        assert!(
            c.lookup_local(&tuple(40000, 80).reversed()).is_none(),
            "exact only"
        );
        assert_eq!(c.lookup_tuple(&tuple(1, 2)), None);
    }

    #[test]
    fn a_refused_connects_tuple_joins_its_cookie_while_closing() {
        let mut c = OwnerCache::new(opts());
        c.apply(&ev(1, 7, None, 100, "curl", 1)); // connect: cookie + owner, no port yet
        c.apply(&ev(4, 7, None, 0, "", 2)); // refused: closed before ESTABLISHED
        assert!(c.lookup_local_no_scan(&tuple(40000, 80)).is_none());
        // A kernel TCP event named the socket by cookie and tuple (the RST it received).
        assert!(c.join_tuple(7, tuple(40000, 80)));
        assert_eq!(c.lookup_local_no_scan(&tuple(40000, 80)).unwrap().pid, 100);
        assert!(!c.join_tuple(8, tuple(40001, 80)), "an unknown cookie");
        // Forgotten with the socket, after the grace period.
        c.expire(1000);
        assert!(c.lookup_local_no_scan(&tuple(40000, 80)).is_none());
    }

    #[test]
    fn exact_orientation_wins_when_both_ends_are_local() {
        let mut c = OwnerCache::new(opts());
        c.apply(&ev(1, 1, Some((40000, 80)), 100, "curl", 1));
        let mut server = tuple(40000, 80).reversed();
        server.proto = Transport::Tcp;
        let mut r = record(
            2,
            2,
            Some(([10, 0, 0, 2], 80, [10, 0, 0, 1], 40000)),
            200,
            "nginx",
        );
        r[0..8].copy_from_slice(&2u64.to_ne_bytes());
        c.apply(&SockEvent::parse(&r).unwrap());
        assert_eq!(&*c.lookup_tuple(&tuple(40000, 80)).unwrap().comm, "curl");
        assert_eq!(&*c.lookup_tuple(&server).unwrap().comm, "nginx");
    }

    #[test]
    fn close_keeps_owner_for_grace_period() {
        let mut c = OwnerCache::new(opts());
        c.apply(&ev(2, 9, Some((80, 5000)), 5, "nginx", 10));
        c.apply(&ev(4, 9, Some((80, 5000)), 0, "", 20));
        assert_eq!(
            c.lookup_cookie(9).unwrap().pid,
            5,
            "still there in the grace period"
        );
        c.expire(119);
        assert!(c.lookup_tuple(&tuple(80, 5000)).is_some());
        c.expire(121);
        assert!(c.lookup_cookie(9).is_none());
        assert!(c.lookup_tuple(&tuple(80, 5000)).is_none());
        let counters: HashMap<_, _> = c.counters().collect();
        assert_eq!(counters["owner_close_evictions"], 2);
    }

    #[test]
    fn close_by_cookie_retires_the_joined_tuple() {
        let mut c = OwnerCache::new(opts());
        c.apply(&ev(1, 7, None, 100, "curl", 1));
        c.apply(&ev(3, 7, Some((40000, 80)), 0, "", 2));
        c.apply(&ev(4, 7, None, 0, "", 3)); // TCP_CLOSE: port already released
        c.expire(1000);
        assert!(c.lookup_cookie(7).is_none());
        assert!(c.lookup_tuple(&tuple(40000, 80)).is_none());
    }

    #[test]
    fn a_reused_tuple_is_not_evicted_by_the_old_close() {
        let mut c = OwnerCache::new(opts());
        c.apply(&ev(2, 0, Some((80, 5000)), 5, "old", 10));
        c.apply(&ev(4, 0, Some((80, 5000)), 0, "", 20));
        c.apply(&ev(2, 0, Some((80, 5000)), 6, "new", 30));
        c.expire(1000);
        assert_eq!(&*c.lookup_tuple(&tuple(80, 5000)).unwrap().comm, "new");
    }

    #[test]
    fn stays_bounded_and_keeps_what_is_used() {
        let mut c = OwnerCache::new(opts()); // capacity 8
        c.apply(&ev(1, 1, None, 1, "hot", 1));
        for i in 2..100u64 {
            c.apply(&ev(1, i, None, i as u32, "x", i));
            assert!(c.lookup_cookie(1).is_some(), "entry in use survives ({i})");
        }
        assert!(c.len().0 <= 8);
        assert!(c.lookup_cookie(2).is_none());
        let counters: HashMap<_, _> = c.counters().collect();
        assert!(counters["owner_capacity_evictions"] > 80);
    }

    #[test]
    fn unknown_tuple_goes_to_proc_once() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let s = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (_a, _) = l.accept().unwrap();
        let mut c = OwnerCache::new(OwnerCacheOptions::default());
        let t = SocketTuple {
            proto: Transport::Tcp,
            local: s.local_addr().unwrap(),
            remote: s.peer_addr().unwrap(),
        };
        let p = c.lookup_tuple(&t).expect("found through /proc").clone();
        assert_eq!(p.pid, std::process::id());
        assert_eq!(p.source, OwnerSource::Proc);
        assert!(p.netns != 0);
        assert!(c.lookup_tuple(&t).is_some());
        let gone = SocketTuple {
            proto: Transport::Tcp,
            local: "127.0.0.1:1".parse().unwrap(),
            remote: "127.0.0.1:2".parse().unwrap(),
        };
        assert!(c.lookup_tuple(&gone).is_none());
        assert!(c.lookup_tuple(&gone).is_none());
        let counters: HashMap<_, _> = c.counters().collect();
        assert_eq!(counters["owner_proc_lookups"], 2, "{counters:?}");
        assert_eq!(counters["owner_negative_cache_hits"], 1);
    }

    /// With background scans a miss does not wait for /proc: the first lookup starts a scan,
    /// and a retry after it finished finds the owner. Peers looked up without scans never
    /// start one.
    #[test]
    fn background_scan_answers_a_retry_and_peer_lookups_never_scan() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let s = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (_a, _) = l.accept().unwrap();
        let t = SocketTuple {
            proto: Transport::Tcp,
            local: s.local_addr().unwrap(),
            remote: s.peer_addr().unwrap(),
        };
        let mut c = OwnerCache::new(OwnerCacheOptions {
            background_scans: true,
            ..OwnerCacheOptions::default()
        });
        assert!(c.lookup_local_no_scan(&t).is_none());
        let counters: HashMap<_, _> = c.counters().collect();
        assert_eq!(counters["owner_proc_scans"], 0, "{counters:?}");
        let deadline = Instant::now() + std::time::Duration::from_secs(20);
        let found = loop {
            if let Some(p) = c.lookup_local(&t) {
                break p.clone();
            }
            assert!(
                Instant::now() < deadline,
                "the background scan never answered"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert_eq!(found.pid, std::process::id());
        assert_eq!(found.source, OwnerSource::Proc);
        let counters: HashMap<_, _> = c.counters().collect();
        assert_eq!(counters["owner_proc_scans"], 1, "{counters:?}");
        // A miss while the scan ran left no negative entry behind.
        assert_eq!(counters["owner_negative_cache_hits"], 0, "{counters:?}");
        // The other end is in the finished scan: found without starting another one.
        let back = SocketTuple {
            proto: Transport::Tcp,
            local: t.remote,
            remote: t.local,
        };
        assert_eq!(
            c.lookup_local_no_scan(&back).map(|p| p.pid),
            Some(std::process::id())
        );
        let counters: HashMap<_, _> = c.counters().collect();
        assert_eq!(counters["owner_proc_scans"], 1, "{counters:?}");
    }
}
