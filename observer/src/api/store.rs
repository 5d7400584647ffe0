//! The ring of recent flows behind the Observer API, and the follow stream of new ones.
//!
//! Producers (the agent's workers) call [`FlowStore::push`] from any thread; it never blocks
//! on readers: followers get flows through a bounded broadcast channel, and a follower that
//! falls more than its buffer behind loses the oldest flows, which are counted as
//! `OBSERVER_EVENTS_QUEUE` lost events (Hubble's name for the same thing).

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use tokio::sync::broadcast;

use super::proto::{
    flow::{self, LostEventSource},
    flowscope::FlowExtension,
};

/// Default ring capacity (Hubble's default too).
pub const DEFAULT_MAX_FLOWS: usize = 65_536;
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

/// One flow in the ring: the wire message plus what filters read often, decoded once.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFlow {
    /// Position in the stream of all flows ever pushed (starts at 1).
    pub seq: u64,
    /// Flow time, ns since the Unix epoch.
    pub time_ns: u64,
    /// The flow as sent to clients that asked for flowscope's extension.
    pub flow: flow::Flow,
    /// The flowscope extension of `flow`, decoded.
    pub ext: Option<FlowExtension>,
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
    started: Instant,
    started_wall: SystemTime,
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
                flows: VecDeque::with_capacity(max_flows.min(DEFAULT_MAX_FLOWS)),
                next_seq: 1,
                ids: UuidGenerator(seed),
            }),
            max_flows,
            node_name: node_name.into(),
            seen: AtomicU64::new(0),
            lost: Default::default(),
            tx,
            started: Instant::now(),
            started_wall,
        }
    }

    /// Adds a flow, evicting the oldest when full. Fills `uuid` and `node_name` when empty.
    /// Never blocks on readers.
    pub fn push(&self, mut flow: flow::Flow) {
        if flow.node_name.is_empty() {
            flow.node_name.clone_from(&self.node_name);
        }
        let time_ns = flow
            .time
            .as_ref()
            .map(|t| (t.seconds.max(0) as u64) * 1_000_000_000 + t.nanos.max(0) as u64)
            .unwrap_or(0);
        let ext = FlowExtension::from_flow(&flow);
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        if flow.uuid.is_empty() {
            flow.uuid = ring.ids.next();
        }
        let stored = Arc::new(StoredFlow {
            seq: ring.next_seq,
            time_ns,
            flow,
            ext,
        });
        ring.next_seq += 1;
        if ring.flows.len() >= self.max_flows {
            ring.flows.pop_front();
        }
        ring.flows.push_back(stored.clone());
        self.seen.fetch_add(1, Ordering::Relaxed);
        // Sent under the lock so that `subscribe` sees a clean cut between snapshot and stream.
        // An error only means nobody follows.
        let _ = self.tx.send(FollowEvent::Flow(stored));
    }

    /// Converts an engine flow (see [`super::convert`]) and adds it.
    pub fn push_record(&self, flow: &flows::record::Flow) {
        self.push(super::convert::flow_to_proto(flow, &self.node_name));
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

/// Random-looking RFC 9562 version-4 UUIDs from a SplitMix64 stream (unique per store; no
/// need for cryptographic randomness in a flow id).
struct UuidGenerator(u64);

impl UuidGenerator {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn next(&mut self) -> String {
        let hi = self.next_u64();
        let lo = self.next_u64();
        // Version 4 in bits 48..52 of hi, variant 10 in the top bits of lo (RFC 9562 §5.4).
        let hi = (hi & !0xf000) | 0x4000;
        let lo = (lo & !(0b11 << 62)) | (0b10 << 62);
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            hi >> 32,
            (hi >> 16) & 0xffff,
            hi & 0xffff,
            lo >> 48,
            lo & 0xffff_ffff_ffff
        )
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
        assert_eq!(snap[0].flow.node_name, "node1");
        let u = &snap[0].flow.uuid;
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(snap[0].flow.uuid, snap[1].flow.uuid);
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
