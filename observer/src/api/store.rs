//! The ring of recent flows behind the Observer API, and the follow stream of new ones.
//!
//! Producers (the agent's workers) call [`FlowStore::push`] from any thread; it never blocks
//! on readers: followers get flows through a bounded broadcast channel, and a follower that
//! falls more than its buffer behind loses the oldest flows, which are counted as
//! `OBSERVER_EVENTS_QUEUE` lost events (Hubble's name for the same thing).

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use tokio::sync::broadcast;

use super::endpoints::EndpointResolver;
use super::namespaces::NamespaceTracker;
use super::proto::{
    flow::{self, LostEventSource},
    flowscope::FlowExtension,
};

mod prefetch;
#[cfg(test)]
pub(crate) use prefetch::{Mode as PrefetchMode, MODE as PREFETCH_MODE};

/// Default ring capacity: Hubble's default (`hubble-event-buffer-capacity` 4095). At ~0.5 KiB
/// per stored engine flow that is ~2 MiB.
pub const DEFAULT_MAX_FLOWS: usize = 4_095;
/// Default per-follower buffer: how far a `--follow` reader may fall behind before it loses flows.
pub const DEFAULT_FOLLOW_BUFFER: usize = 4_096;

/// Where events were lost, as Hubble's `LostEventSource` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LostSource {
    /// The kernel ring buffer was full (the agent did not read fast enough).
    KernelRing,
    /// A follower's queue was full (the client did not read fast enough).
    ObserverQueue,
    /// Overwritten in the flow ring before it could be read.
    FlowRing,
}

impl LostSource {
    const ALL: [LostSource; 3] = [Self::KernelRing, Self::ObserverQueue, Self::FlowRing];

    fn index(self) -> usize {
        match self {
            Self::KernelRing => 0,
            Self::ObserverQueue => 1,
            Self::FlowRing => 2,
        }
    }

    /// The wire enum value.
    pub fn to_proto(self) -> LostEventSource {
        match self {
            Self::KernelRing => LostEventSource::PerfEventRingBuffer,
            Self::ObserverQueue => LostEventSource::ObserverEventsQueue,
            Self::FlowRing => LostEventSource::HubbleRingBuffer,
        }
    }

    /// Counter name as `flowscope status` prints it.
    pub fn counter_name(self) -> &'static str {
        match self {
            Self::KernelRing => "lost_events_kernel_ring",
            Self::ObserverQueue => "lost_events_observer_queue",
            Self::FlowRing => "lost_events_flow_ring",
        }
    }
}

/// One flow in the ring.
///
/// Flows from the engine stay in the engine's compact form and become Hubble's wire message
/// only when a client reads them: building and keeping a protobuf `Flow` (strings for every
/// address, a packed `Any`, a formatted UUID) per record was most of the agent's CPU and
/// memory, and most stored flows are overwritten without ever being read.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFlow {
    /// Position in the stream of all flows ever pushed (starts at 1).
    pub seq: u64,
    /// Flow time, ns since the Unix epoch.
    pub time_ns: u64,
    /// The flow's id, formatted as an RFC 9562 UUID on the wire.
    pub uuid: Uuid,
    body: FlowBody,
}

// Engine flows are nearly all of them and live in an `Arc` already: boxing them would only
// add an allocation per flow.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
enum FlowBody {
    Engine(EngineFlow),
    Wire(Box<WireFlow>),
}

/// An engine flow plus what the agent knows about it.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineFlow {
    /// The flow, with its local owner in `process` and the other end's in `peer_process`.
    /// In the engine's box: the flow is large, and moving it into the store would copy it.
    pub flow: Box<flows::record::Flow>,
    /// Name of the capture interface, when known.
    pub iface: Option<Arc<str>>,
    /// Identities, pods and DNS names of both ends, as resolved when the flow came in.
    pub endpoints: super::endpoints::FlowEndpoints,
}

/// A flow as clients see it: the wire message and its flowscope extension, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct WireFlow {
    /// The wire message; `extensions` is set only when asked for.
    pub flow: flow::Flow,
    /// The flowscope extension (for filters), whether or not it is packed into `flow`.
    pub ext: Option<FlowExtension>,
}

impl StoredFlow {
    /// The wire form of the flow, stamped with `node_name` when it has none; with the
    /// extension packed into `flow.extensions` when `include_ext`.
    pub fn to_wire(&self, node_name: &str, include_ext: bool) -> WireFlow {
        let (mut flow, ext) = match &self.body {
            FlowBody::Engine(e) => {
                let (mut flow, ext) = super::convert::flow_to_wire(&e.flow, node_name);
                if let (Some(i), Some(name)) = (flow.interface.as_mut(), e.iface.as_ref()) {
                    i.name = name.to_string();
                }
                let ends = &e.endpoints;
                flow.source = ends.source.to_proto();
                flow.destination = ends.destination.to_proto();
                flow.source_names = ends.source.names_proto();
                flow.destination_names = ends.destination.names_proto();
                let ext = (ext != FlowExtension::default()).then_some(ext);
                if include_ext {
                    flow.extensions = ext.as_ref().map(FlowExtension::to_any);
                }
                (flow, ext)
            }
            FlowBody::Wire(w) => {
                let mut flow = w.flow.clone();
                if !include_ext {
                    flow.extensions = None;
                }
                if flow.summary.is_empty() {
                    flow.summary = super::summary::summary(&flow);
                }
                (flow, w.ext.clone())
            }
        };
        if flow.node_name.is_empty() {
            flow.node_name = node_name.to_string();
        }
        if flow.uuid.is_empty() {
            flow.uuid = self.uuid.to_string();
        }
        WireFlow { flow, ext }
    }
}

/// What a follower receives.
#[derive(Debug, Clone)]
pub enum FollowEvent {
    /// A new flow.
    Flow(Arc<StoredFlow>),
    /// `count` events were lost at `source`.
    Lost {
        /// Where.
        source: LostSource,
        /// How many.
        count: u64,
    },
}

struct Ring {
    flows: VecDeque<Arc<StoredFlow>>,
    next_seq: u64,
    ids: UuidGenerator,
}

/// The bounded ring of recent flows plus the broadcast of new ones. Thread-safe; share it in
/// an `Arc`.
pub struct FlowStore {
    ring: Mutex<Ring>,
    max_flows: usize,
    node_name: String,
    seen: AtomicU64,
    lost: [AtomicU64; 3],
    tx: broadcast::Sender<FollowEvent>,
    /// Live [`Follower`]s: with none, a flow is not sent at all (the send would take the
    /// channel's lock and an `Arc` clone per flow only to find no receiver).
    followers: AtomicUsize,
    started: Instant,
    started_wall: SystemTime,
    namespaces: NamespaceTracker,
    endpoints: Arc<EndpointResolver>,
}

impl std::fmt::Debug for FlowStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowStore")
            .field("num_flows", &self.num_flows())
            .field("max_flows", &self.max_flows)
            .field("seen_flows", &self.seen_flows())
            .finish()
    }
}

impl FlowStore {
    /// A store keeping the last `max_flows` flows (at least 1) observed on `node_name`.
    pub fn new(max_flows: usize, node_name: impl Into<String>) -> Self {
        Self::with_follow_buffer(max_flows, node_name, DEFAULT_FOLLOW_BUFFER)
    }

    /// Like [`FlowStore::new`], with `follow_buffer` events of slack per follower.
    pub fn with_follow_buffer(
        max_flows: usize,
        node_name: impl Into<String>,
        follow_buffer: usize,
    ) -> Self {
        let max_flows = max_flows.max(1);
        let (tx, _) = broadcast::channel(follow_buffer.max(1));
        let started_wall = SystemTime::now();
        let seed = started_wall
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ (u64::from(std::process::id()) << 32);
        Self {
            ring: Mutex::new(Ring {
                flows: VecDeque::with_capacity(max_flows.min(65_536)),
                next_seq: 1,
                ids: UuidGenerator(seed),
            }),
            max_flows,
            node_name: node_name.into(),
            seen: AtomicU64::new(0),
            lost: Default::default(),
            tx,
            followers: AtomicUsize::new(0),
            started: Instant::now(),
            started_wall,
            namespaces: NamespaceTracker::new(super::CLUSTER_NAME),
            endpoints: Arc::default(),
        }
    }

    /// This store with `endpoints` resolving the ends of the agent's flows.
    pub fn with_endpoints(mut self, endpoints: Arc<EndpointResolver>) -> Self {
        self.endpoints = endpoints;
        self
    }

    /// What resolves the ends of flows before [`FlowStore::push_engine`].
    pub fn endpoints(&self) -> &Arc<EndpointResolver> {
        &self.endpoints
    }

    /// Adds a wire flow (e.g. one read back from JSON), evicting the oldest when full.
    /// `uuid` and `node_name` are filled on the way out when empty. Never blocks on readers.
    pub fn push(&self, flow: flow::Flow) -> Arc<StoredFlow> {
        let time_ns = flow
            .time
            .as_ref()
            .map(super::convert::timestamp_ns)
            .unwrap_or(0);
        let ext = FlowExtension::from_flow(&flow);
        for ep in [&flow.source, &flow.destination].into_iter().flatten() {
            if !ep.pod_name.is_empty() {
                self.note_namespace(&ep.namespace);
            }
        }
        self.insert(time_ns, FlowBody::Wire(Box::new(WireFlow { flow, ext })))
    }

    /// Adds an engine flow, kept compact until a client reads it. Never blocks on readers.
    pub fn push_engine(&self, flow: EngineFlow) -> Arc<StoredFlow> {
        for ns in flow.endpoints.namespaces() {
            self.note_namespace(ns);
        }
        self.insert(flow.flow.time_ns, FlowBody::Engine(flow))
    }

    /// Adds a copy of an engine flow with no interface name or peer.
    pub fn push_record(&self, flow: &flows::record::Flow) -> Arc<StoredFlow> {
        self.push_engine(EngineFlow {
            flow: Box::new(flow.clone()),
            iface: None,
            endpoints: Default::default(),
        })
    }

    /// Numbers the flow of `body` and adds it. With the ring full, the evicted flow's `Arc`
    /// is reused for it when nobody else holds it (no reader's snapshot or follower): an
    /// insert then allocates nothing and frees only what the evicted body owned, instead of
    /// a free and a malloc of the `Arc` per flow (BENCHMARKS.md, "HTTP/1 per-exchange cost,
    /// second pass"). While the ring fills, or when the evicted flow is still shared, a new
    /// `Arc` is made.
    fn insert(&self, time_ns: u64, body: FlowBody) -> Arc<StoredFlow> {
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let seq = ring.next_seq;
        let uuid = ring.ids.next();
        ring.next_seq += 1;
        let mut evicted = if ring.flows.len() >= self.max_flows {
            // The next flows to go were stored `max_flows` flows ago: start fetching them.
            prefetch::evictions(&ring.flows);
            ring.flows.pop_front()
        } else {
            None
        };
        let mut old_body = None;
        let stored = match evicted.as_mut().and_then(Arc::get_mut) {
            Some(slot) => {
                slot.seq = seq;
                slot.time_ns = time_ns;
                slot.uuid = uuid;
                old_body = Some(std::mem::replace(&mut slot.body, body));
                evicted.take().expect("the evicted flow is being reused")
            }
            None => Arc::new(StoredFlow {
                seq,
                time_ns,
                uuid,
                body,
            }),
        };
        ring.flows.push_back(stored.clone());
        self.seen.fetch_add(1, Ordering::Relaxed);
        // Sent under the lock so that `subscribe` sees a clean cut between snapshot and stream
        // (it counts its follower under the same lock). An error only means nobody follows.
        if self.followers.load(Ordering::Relaxed) > 0 {
            let _ = self.tx.send(FollowEvent::Flow(stored.clone()));
        }
        drop(ring);
        // Freed outside the lock: readers taking a snapshot don't wait for it.
        drop(evicted);
        drop(old_body);
        stored
    }

    /// Records that `count` events were lost at `source` (e.g. the kernel ring was full);
    /// followers get a LostEvent.
    pub fn note_lost(&self, source: LostSource, count: u64) {
        if count == 0 {
            return;
        }
        self.lost[source.index()].fetch_add(count, Ordering::Relaxed);
        let _ = self.tx.send(FollowEvent::Lost { source, count });
    }

    /// Every flow in the ring, oldest first.
    pub fn snapshot(&self) -> Vec<Arc<StoredFlow>> {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.flows.iter().cloned().collect()
    }

    /// The ring's flows plus a follower that gets every flow pushed after them: no gap, no
    /// duplicate.
    pub fn subscribe(self: &Arc<Self>) -> (Vec<Arc<StoredFlow>>, Follower) {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let rx = self.tx.subscribe();
        self.followers.fetch_add(1, Ordering::Relaxed);
        let snapshot = ring.flows.iter().cloned().collect();
        drop(ring);
        (
            snapshot,
            Follower {
                rx,
                store: self.clone(),
            },
        )
    }

    /// Flows in the ring now.
    pub fn num_flows(&self) -> usize {
        self.ring
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .flows
            .len()
    }

    /// Ring capacity.
    pub fn max_flows(&self) -> usize {
        self.max_flows
    }

    /// Flows pushed since the store was made.
    pub fn seen_flows(&self) -> u64 {
        self.seen.load(Ordering::Relaxed)
    }

    /// Events lost at `source` so far.
    pub fn lost(&self, source: LostSource) -> u64 {
        self.lost[source.index()].load(Ordering::Relaxed)
    }

    /// `(counter name, value)` of every lost-event counter.
    pub fn lost_counters(&self) -> Vec<(String, u64)> {
        LostSource::ALL
            .iter()
            .map(|s| (s.counter_name().to_string(), self.lost(*s)))
            .collect()
    }

    /// Time since the store was made.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Wall-clock time the store was made.
    pub fn started_at(&self) -> SystemTime {
        self.started_wall
    }

    /// The node name flows are stamped with.
    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// Records that a flow of a pod in `namespace` was seen now (for `GetNamespaces`); call it
    /// wherever a flow's pod is resolved.
    pub fn note_namespace(&self, namespace: &str) {
        self.namespaces.note(namespace, Instant::now());
    }

    /// `(cluster, namespace)` of the pods with flows in the last hour, sorted.
    pub fn namespaces(&self) -> Vec<(String, String)> {
        self.namespaces.list(Instant::now())
    }

    /// Flows per second at `now_ns` (ns since the Unix epoch), as Cilium's ServerStatus
    /// computes `flows_rate`: the flows of the last minute over 60 s, walking back from the
    /// newest and stopping at the first older one; when the ring has already dropped flows
    /// and every flow it holds is that recent, over the time since its oldest flow instead.
    pub fn flows_rate(&self, now_ns: u64) -> f64 {
        const WINDOW_NS: u64 = 60_000_000_000;
        let mut since = now_ns.saturating_sub(WINDOW_NS);
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let mut count = 0u64;
        let mut oldest_counted = None;
        let mut walked_all = true;
        for f in ring.flows.iter().rev() {
            if f.time_ns < since {
                walked_all = false;
                break;
            }
            count += 1;
            oldest_counted = Some(f.time_ns);
        }
        let wrapped = ring.next_seq - 1 > ring.flows.len() as u64;
        drop(ring);
        if let (true, true, Some(t)) = (walked_all, wrapped, oldest_counted) {
            since = t;
        }
        let secs = now_ns.saturating_sub(since) as f64 / 1e9;
        if secs > 0.0 {
            count as f64 / secs
        } else {
            0.0
        }
    }
}

/// A reader of new flows; see [`FlowStore::subscribe`].
pub struct Follower {
    rx: broadcast::Receiver<FollowEvent>,
    store: Arc<FlowStore>,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower").finish_non_exhaustive()
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.store.followers.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Follower {
    /// The next event; `None` once the store is gone. Flows this follower was too slow for
    /// come back as one `Lost { ObserverQueue, n }` (and are counted in the store).
    pub async fn next(&mut self) -> Option<FollowEvent> {
        match self.rx.recv().await {
            Ok(ev) => Some(ev),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                self.store.lost[LostSource::ObserverQueue.index()].fetch_add(n, Ordering::Relaxed);
                Some(FollowEvent::Lost {
                    source: LostSource::ObserverQueue,
                    count: n,
                })
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

/// A flow id: 128 bits shown as an RFC 9562 version-4 UUID. Kept as a number and formatted
/// only when a client reads the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Uuid(pub u128);

impl std::fmt::Display for Uuid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            (v >> 96) as u32,
            (v >> 80) as u16,
            (v >> 64) as u16,
            (v >> 48) as u16,
            v & 0xffff_ffff_ffff
        )
    }
}

/// Random-looking version-4 UUIDs from a SplitMix64 stream (unique per store; no need for
/// cryptographic randomness in a flow id).
struct UuidGenerator(u64);

impl UuidGenerator {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn next(&mut self) -> Uuid {
        let hi = self.next_u64();
        let lo = self.next_u64();
        // Version 4 in bits 48..52 of hi, variant 10 in the top bits of lo (RFC 9562 §5.4).
        let hi = (hi & !0xf000) | 0x4000;
        let lo = (lo & !(0b11 << 62)) | (0b10 << 62);
        Uuid((u128::from(hi) << 64) | u128::from(lo))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow_at(secs: i64) -> flow::Flow {
        flow::Flow {
            time: Some(prost_types::Timestamp {
                seconds: secs,
                nanos: 0,
            }),
            ..Default::default()
        }
    }

    /// Pods' namespaces are listed by GetNamespaces, whether the flow came from the pipeline
    /// with its ends resolved or as a wire flow (read back from a file).
    #[test]
    fn pods_namespaces_are_noted() {
        use crate::api::{endpoints::EndpointMeta, pods::PodMeta};
        let store = FlowStore::new(8, "n");
        store.push_record(&crate::api::convert::tests::tcp_syn());
        assert!(store.namespaces().is_empty());
        let pod = |ns: &str| {
            Some(std::sync::Arc::new(PodMeta {
                namespace: ns.into(),
                name: "p".into(),
                uid: String::new(),
                deployment: None,
            }))
        };
        let mut e = EngineFlow {
            flow: Box::new(crate::api::convert::tests::tcp_syn()),
            iface: None,
            endpoints: Default::default(),
        };
        e.endpoints.source = EndpointMeta {
            pod: pod("shop"),
            ..Default::default()
        };
        store.push_engine(e);
        let mut w = flow_at(1);
        w.destination = Some(flow::Endpoint {
            namespace: "kube-system".into(),
            pod_name: "coredns-x".into(),
            ..Default::default()
        });
        store.push(w);
        assert_eq!(
            store.namespaces(),
            [
                ("default".to_string(), "kube-system".to_string()),
                ("default".to_string(), "shop".to_string())
            ]
        );
    }

    /// A full ring gives the evicted flow's `Arc` to the new flow when nobody holds it, and
    /// never changes a flow a reader holds.
    #[test]
    fn full_ring_reuses_the_evicted_flow_unless_a_reader_holds_it() {
        let store = FlowStore::new(2, "n");
        let first = Arc::as_ptr(&store.push(flow_at(1)));
        store.push(flow_at(2));
        let third = store.push(flow_at(3));
        assert_eq!(
            Arc::as_ptr(&third),
            first,
            "the evicted flow's Arc is reused"
        );
        assert_eq!((third.seq, third.time_ns), (3, 3_000_000_000));
        let held = store.snapshot();
        let (held_uuid, held_wire) = (held[0].uuid, held[0].to_wire("n", true));
        let fourth = store.push(flow_at(4));
        assert!(!Arc::ptr_eq(&fourth, &held[0]), "a held flow is not reused");
        assert_eq!(
            (held[0].seq, held[0].time_ns, held[0].uuid),
            (2, 2_000_000_000, held_uuid)
        );
        assert_eq!(held[0].to_wire("n", true), held_wire);
        let now: Vec<_> = store.snapshot().iter().map(|f| f.seq).collect();
        assert_eq!(now, [3, 4]);
        assert_ne!(fourth.uuid, third.uuid);
    }

    /// Evicting from a full ring fetches the next flows' memory ahead (api/store/prefetch.rs)
    /// and changes nothing else: here with loads instead of prefetches (the harness's `touch`
    /// mode), so an address outside the flows' memory would fault. HTTP flows with heap header
    /// values, an empty and a grown header buffer, TCP health, HTTP/2 and wire flows.
    #[test]
    fn eviction_prefetch_keeps_the_ring_as_it_was() {
        use flows::record::{Http2Info, HttpHeader, L7Record, TcpHealth};
        PREFETCH_MODE.store(PrefetchMode::Touch as u8, Ordering::Relaxed);
        let flow = |i: u64| {
            let mut f = crate::api::convert::tests::http_request();
            f.time_ns = i;
            if let Some(L7Record::Http(h)) = f.l7.as_mut().map(|l| &mut l.record) {
                match i % 4 {
                    0 => h.headers = Vec::new(),
                    1 => h.headers.extend((0..9).map(|n| HttpHeader {
                        key: "date".into(),
                        value: format!("Mon, 30 Nov 2026 22:18:{n:02} GMT plus more").into(),
                    })),
                    2 => h.http2 = Some(Box::new(Http2Info::default())),
                    _ => f.tcp_health = Some(Box::new(TcpHealth::default())),
                }
            }
            f
        };
        let small = FlowStore::new(prefetch::AHEAD + 2, "n");
        let mut expected = Vec::new();
        for i in 0..40 {
            if i % 5 == 4 {
                small.push(flow_at(i as i64));
                expected.push(i * 1_000_000_000);
            } else {
                small.push_record(&flow(i));
                expected.push(i);
            }
        }
        let kept: Vec<_> = small
            .snapshot()
            .iter()
            .map(|f| (f.seq, f.time_ns))
            .collect();
        let want: Vec<_> = (35..40).map(|i| (i + 1, expected[i as usize])).collect();
        assert_eq!(kept[1..], want[..], "the newest flows, in order");
        // The newest engine flow reads back as the same flow in a store that never evicted.
        let last = small.snapshot()[4].clone();
        let mut fresh = FlowStore::new(1, "n")
            .push_record(&flow(38))
            .to_wire("n", true);
        fresh.flow.uuid = last.uuid.to_string();
        assert_eq!(last.to_wire("n", true), fresh);
    }

    #[test]
    fn ring_keeps_the_newest_and_counts() {
        let store = FlowStore::new(3, "node1");
        for s in 1..=5 {
            store.push(flow_at(s));
        }
        let snap = store.snapshot();
        assert_eq!(
            snap.iter()
                .map(|f| f.time_ns / 1_000_000_000)
                .collect::<Vec<_>>(),
            [3, 4, 5]
        );
        assert_eq!(snap[0].seq, 3);
        assert_eq!(store.num_flows(), 3);
        assert_eq!(store.max_flows(), 3);
        assert_eq!(store.seen_flows(), 5);
        let w = snap[0].to_wire(store.node_name(), false);
        assert_eq!(w.flow.node_name, "node1");
        let u = &w.flow.uuid;
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"), "{u}");
        assert_ne!(*u, snap[1].to_wire("node1", false).flow.uuid);
    }

    #[test]
    fn flows_rate_is_ciliums() {
        let s = |x: u64| x * 1_000_000_000;
        let now = s(1000);
        let store = FlowStore::new(10, "n");
        assert_eq!(store.flows_rate(now), 0.0, "empty ring");
        // 6 flows in the last minute (and one older): over 60 s, the ring has dropped nothing.
        for t in [900, 950, 960, 970, 980, 990, 999] {
            store.push(flow_at(t as i64));
        }
        assert_eq!(store.flows_rate(now), 6.0 / 60.0);
        // A full ring that has dropped flows and holds only the last 10 s: over those 10 s.
        let small = FlowStore::new(4, "n");
        for t in [980, 990, 992, 994, 996] {
            small.push(flow_at(t));
        }
        assert_eq!(small.flows_rate(now), 4.0 / 10.0);
        // ...but when an older flow stops the walk, still over the minute.
        let small = FlowStore::new(4, "n");
        for t in [900, 901, 930, 990, 996] {
            small.push(flow_at(t));
        }
        assert_eq!(small.flows_rate(now), 2.0 / 60.0);
    }

    #[test]
    fn summary_is_filled_when_read() {
        let store = FlowStore::new(4, "n");
        let engine = store.push_record(&crate::api::convert::tests::tcp_syn());
        assert_eq!(engine.to_wire("n", false).flow.summary, "TCP Flags: SYN");
        // A wire flow without one gets it; one that has one (from Cilium) keeps it.
        let mut f = crate::api::convert::flow_to_proto(&crate::api::convert::tests::tcp_syn(), "n");
        f.summary.clear();
        assert_eq!(
            store.push(f.clone()).to_wire("n", false).flow.summary,
            "TCP Flags: SYN"
        );
        f.summary = "from cilium".into();
        assert_eq!(
            store.push(f).to_wire("n", false).flow.summary,
            "from cilium"
        );
    }

    #[tokio::test]
    async fn follower_sees_flows_after_the_snapshot_only() {
        let store = Arc::new(FlowStore::new(10, "n"));
        store.push(flow_at(1));
        let (snap, mut follower) = store.subscribe();
        assert_eq!(snap.len(), 1);
        store.push(flow_at(2));
        store.note_lost(LostSource::KernelRing, 7);
        match follower.next().await {
            Some(FollowEvent::Flow(f)) => assert_eq!(f.seq, 2),
            other => panic!("{other:?}"),
        }
        match follower.next().await {
            Some(FollowEvent::Lost { source, count }) => {
                assert_eq!((source, count), (LostSource::KernelRing, 7))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(store.lost(LostSource::KernelRing), 7);
    }

    #[tokio::test]
    async fn flows_are_sent_only_while_someone_follows() {
        let store = Arc::new(FlowStore::new(10, "n"));
        store.push(flow_at(1));
        let (_, first) = store.subscribe();
        let (_, mut second) = store.subscribe();
        drop(first);
        store.push(flow_at(2));
        match second.next().await {
            Some(FollowEvent::Flow(f)) => assert_eq!(f.seq, 2),
            other => panic!("{other:?}"),
        }
        drop(second);
        assert_eq!(store.followers.load(Ordering::Relaxed), 0);
        store.push(flow_at(3));
        let (snap, mut third) = store.subscribe();
        assert_eq!(snap.iter().map(|f| f.seq).collect::<Vec<_>>(), [1, 2, 3]);
        store.push(flow_at(4));
        match third.next().await {
            Some(FollowEvent::Flow(f)) => assert_eq!(f.seq, 4),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn slow_follower_loses_and_counts_but_never_blocks_the_producer() {
        let store = Arc::new(FlowStore::with_follow_buffer(100, "n", 4));
        let (_, mut follower) = store.subscribe();
        for s in 0..10 {
            store.push(flow_at(s)); // would hang here if push blocked
        }
        match follower.next().await {
            Some(FollowEvent::Lost { source, count }) => {
                assert_eq!(source, LostSource::ObserverQueue);
                assert_eq!(count, 6);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(store.lost(LostSource::ObserverQueue), 6);
        match follower.next().await {
            Some(FollowEvent::Flow(f)) => assert_eq!(f.seq, 7),
            other => panic!("{other:?}"),
        }
    }
}
