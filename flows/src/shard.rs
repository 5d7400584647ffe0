//! Sharding the engine across worker threads: which worker owns a frame, and how the workers'
//! records are put back into one stream. Pure logic (no threads, no clock); the binary runs one
//! [`Engine`](crate::engine::Engine) per worker thread and drives these.
//!
//! How a sharded run works, and why it reports what one engine would:
//!
//! - **One connection, one worker.** [`Dispatcher::route`] decodes each frame with the engine's
//!   own decoder and hashes the flow's normalised [`FlowKey`], which is the same for both
//!   directions (`lo <= hi`). Everything the engine keeps — reassembly, L7 decoders, DNS
//!   query/answer pairing (per 5-tuple), TCP health, the close linger — is per flow, so each
//!   worker's engine sees every packet of the flows it owns, in capture order.
//! - **IP fragments are reassembled here, before dispatch.** Only the first fragment carries
//!   the transport header (RFC 791 §3.2, RFC 8200 §4.5), so a later fragment cannot be hashed
//!   to its flow's worker, and later fragments may arrive before the first. The dispatcher
//!   holds fragments in the engine's own [`IpReassembler`] (same limits, same counters) and
//!   sends the completed datagram to the worker that owns its 5-tuple
//!   ([`Engine::handle_reassembled`](crate::engine::Engine::handle_reassembled)). Fragments
//!   are rare, so the single dispatcher thread doing this costs nothing on the fast path.
//! - **TLS plaintext goes with its connection's packets.** A chunk read at the TLS library
//!   ([`Engine::handle_plaintext`](crate::engine::Engine::handle_plaintext)) names its TCP
//!   connection by its two ends; [`Dispatcher::route_plaintext`] hashes the same normalised
//!   key, so the chunk reaches the worker holding that connection's packets, and, dispatched
//!   in the caller's order between them, keeps its place among them.
//! - **ICMP goes where the engine files it**: under its own key (addresses, no ports). The
//!   engine keeps an ICMP conversation (who pinged first, is-reply) per address pair and never
//!   reads the flow an ICMP error quotes, so this keeps one engine's records exactly. An engine
//!   feature that ties an error to the quoted connection (RFC 792, RFC 4443 §2.4: the quote
//!   holds the offending packet's header and first 8 bytes, its ports) would route errors by
//!   the quoted 5-tuple instead, with its per-message state moved onto that flow.
//! - **Time is broadcast.** The engine scans its table at most once per
//!   `timeout_scan_interval_ns`; the dispatcher keeps the same schedule ([`Dispatcher::due`])
//!   and every worker runs its scan at exactly those times, so idle evictions and unanswered
//!   requests happen when one engine's would, whichever worker holds the flow.
//! - **Records merge by dispatch position.** Every frame and every broadcast tick gets the next
//!   sequence number; a record carries the number of the item whose handling produced it. Each
//!   worker's records come in increasing numbers, and a worker reports how far it has got (its
//!   watermark) with every batch, so [`Merger`] releases a record once no worker can still
//!   produce an earlier one. The merged stream is in capture-time order, the order one engine
//!   emits in; only records of one broadcast tick (evictions) may interleave differently.
//! - **Counters add up.** Each worker counts what its engine saw, the dispatcher counts the
//!   fragments it held; [`Counters::add`] sums them into what one engine would have counted.
//! - **Memory caps are divided** ([`worker_config`]): a node's worst case stays what one
//!   engine's config promises. The flow hash spreads connections evenly, so a worker reaches its
//!   share at about the load where one engine would reach the whole cap; a per-flow cap
//!   (`max_flow_buffer_bytes`) is unchanged. IP fragments are held once, in the dispatcher, under
//!   the undivided fragment limits.

use std::collections::VecDeque;
use std::hash::BuildHasher;

use crate::counters::Counters;
use crate::engine::EngineConfig;
use crate::ip::{CapturePoint, Fragment, IpReassembler, ReassemblyLimits};
use crate::key::FlowKey;
use crate::packet::{decode, decode_ip, ip_layer, CaptureMeta, DecodeError, Direction, LinkType};

/// Where a frame goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// Hand the frame as captured to this worker (`Engine::handle_frame`). Frames that do not
    /// decode go to worker 0, whose engine counts them by reason.
    Frame(usize),
    /// The frame was the IP fragment that completed its datagram: hand the datagram (raw IP,
    /// with the completing fragment's metadata) to this worker (`Engine::handle_reassembled`).
    Datagram {
        /// The worker owning the datagram's flow.
        worker: usize,
        /// The reassembled IP packet.
        datagram: Vec<u8>,
        /// Capture metadata of the fragment that completed it.
        meta: CaptureMeta,
    },
    /// An IP fragment held (or dropped) here: nothing for the workers.
    Held,
}

/// The worker owning `key` among `workers`, by a hash seeded with `seed`. Both directions of
/// a connection share the normalised key, hence the worker. A fixed seed makes replays
/// reproducible; the agent seeds randomly so that no one can aim flows at one worker.
pub fn worker_of(key: &FlowKey, workers: usize, seed: u64) -> usize {
    if workers <= 1 {
        return 0;
    }
    let h = foldhash::fast::FixedState::with_seed(seed).hash_one(key);
    // Lemire's multiply-shift: uniform over `workers` without a division.
    ((u128::from(h) * workers as u128) >> 64) as usize
}

/// The engine configuration of worker `index` of `workers`: the flow and byte caps divided
/// between the workers (rounded up), and its own span/trace id stream (one seed for all would
/// give every worker the same ids).
pub fn worker_config(config: &EngineConfig, workers: usize, index: usize) -> EngineConfig {
    let n = workers.max(1);
    let share = |v: usize| v.div_ceil(n);
    EngineConfig {
        max_flows: share(config.max_flows),
        max_total_buffer_bytes: share(config.max_total_buffer_bytes),
        max_queued_records: share(config.max_queued_records),
        id_seed: if index == 0 {
            config.id_seed
        } else {
            crate::trace::IdGenerator::new(config.id_seed ^ (index as u64).rotate_left(32))
                .next_u64()
        },
        ..config.clone()
    }
}

/// Sends each frame to the worker that owns its flow, reassembling IP fragments first, and
/// keeps the engine's timeout schedule for all workers. See the module docs.
#[derive(Debug)]
pub struct Dispatcher {
    workers: usize,
    seed: u64,
    fragments: IpReassembler,
    limits: ReassemblyLimits,
    counters: Counters,
    scan_interval_ns: u64,
    next_scan_ns: u64,
    /// Route a tunnel packet by the conversation inside it (`EngineConfig::decapsulate_tunnels`):
    /// an overlay's two directions may use different outer ports (RFC 7348 §5: each end
    /// hashes its own source port), so only the inner key keeps a connection on one worker.
    decapsulate: bool,
}

impl Dispatcher {
    /// A dispatcher over `workers` engines configured like `config` (its fragment limits and
    /// scan interval), hashing with `seed`.
    pub fn new(workers: usize, config: &EngineConfig, seed: u64) -> Self {
        Self {
            workers: workers.max(1),
            seed,
            fragments: IpReassembler::new(),
            limits: ReassemblyLimits {
                timeout_ns: config.ip_fragment_timeout_ns,
                max_bytes: config.max_ip_fragment_bytes,
                max_datagrams: config.max_ip_fragmented_datagrams,
            },
            counters: Counters::default(),
            scan_interval_ns: config.timeout_scan_interval_ns,
            next_scan_ns: 0,
            decapsulate: config.decapsulate_tunnels,
        }
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// What the dispatcher counted itself: IP fragments (frames, bytes, reassembly outcomes).
    /// Add the workers' counters to it for the engine's totals.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Bytes held in IP fragments waiting for the rest of their datagram.
    pub fn ip_fragment_bytes(&self) -> usize {
        self.fragments.held_bytes()
    }

    /// Where the frame goes. Call for every frame, in capture order.
    pub fn route(&mut self, now_ns: u64, link: LinkType, frame: &[u8], meta: CaptureMeta) -> Route {
        match decode(link, frame, meta) {
            Ok(packet) if self.decapsulate => Route::Frame(self.worker_of_innermost(packet)),
            Ok(packet) => Route::Frame(self.worker_of_key(&FlowKey::from_packet(&packet).0)),
            Err(DecodeError::Fragment { .. }) if self.limits.max_datagrams > 0 => {
                self.hold_fragment(now_ns, link, frame, meta)
            }
            Err(_) => Route::Frame(0),
        }
    }

    /// The worker owning the TCP connection a chunk of TLS plaintext belongs to: the one its
    /// packets go to (the key is normalised, so which end is local does not matter).
    pub fn route_plaintext(&self, chunk: &crate::engine::PlaintextChunk<'_>) -> usize {
        // IP protocol 6: TLS plaintext is always a TCP connection's (RFC 9293).
        let (key, _) = FlowKey::new(6, chunk.local, chunk.remote);
        self.worker_of_key(&key)
    }

    /// The worker of the innermost conversation a tunnel packet carries (the outer packet's
    /// own record goes there too). A tunnel packet whose inner packet is an IP fragment stays
    /// with the worker of the headers above it (its datagram is reassembled there).
    #[cold]
    fn worker_of_innermost(&self, mut packet: crate::packet::Packet<'_>) -> usize {
        let meta = packet.meta;
        for _ in 0..crate::engine::MAX_TUNNEL_DEPTH {
            let Some((link, inner)) = crate::packet::tunnel::inner(&packet) else {
                break;
            };
            match decode(link, inner, meta) {
                Ok(p) => packet = p,
                Err(_) => break,
            }
        }
        self.worker_of_key(&FlowKey::from_packet(&packet).0)
    }

    fn worker_of_key(&self, key: &FlowKey) -> usize {
        worker_of(key, self.workers, self.seed)
    }

    /// The engine's fragment path up to the whole datagram, counted as the engine counts it
    /// (`Engine::handle_frame` on a fragment); the datagram's decoding is left to its worker.
    #[cold]
    fn hold_fragment(
        &mut self,
        now_ns: u64,
        link: LinkType,
        frame: &[u8],
        meta: CaptureMeta,
    ) -> Route {
        let c = &mut self.counters;
        c.frames += 1;
        c.decode_ip_fragment += 1;
        let (ip, meta) = match ip_layer(link, frame, meta) {
            Ok(v) => v,
            // Not reached (the frame decoded as far as its IP header), but if it were, the
            // engine counts the reason.
            Err(_) => {
                c.frames -= 1;
                c.decode_ip_fragment -= 1;
                return Route::Frame(0);
            }
        };
        let Ok(fragment) = Fragment::parse(ip) else {
            c.ip_frag_malformed += 1;
            return Route::Held;
        };
        *match meta.direction {
            Direction::Ingress => &mut c.ip_bytes_ingress,
            Direction::Egress => &mut c.ip_bytes_egress,
            Direction::Unknown => &mut c.ip_bytes_unknown_direction,
        } += u64::from(fragment.ip_len);
        let at = CapturePoint {
            ifindex: meta.ifindex,
            direction: meta.direction,
        };
        let Some(done) =
            self.fragments
                .push(now_ns, at, &fragment, &self.limits, &mut self.counters)
        else {
            return Route::Held;
        };
        // A datagram that does not decode still goes to a worker, whose engine counts why.
        let worker = match decode_ip(&done.packet, meta) {
            Ok(packet) => self.worker_of_key(&FlowKey::from_packet(&packet).0),
            Err(_) => 0,
        };
        Route::Datagram {
            worker,
            datagram: done.packet,
            meta,
        }
    }

    /// Whether the workers' engines should run their timers now (`Engine::handle_timeout`
    /// with this `now_ns`, on every worker): true at most once per `timeout_scan_interval_ns`,
    /// at the times one engine would scan. Also expires the fragments held here, as the
    /// engine does in its scan. Call wherever one engine's `handle_timeout` would be called.
    pub fn due(&mut self, now_ns: u64) -> bool {
        if now_ns < self.next_scan_ns {
            return false;
        }
        self.next_scan_ns = now_ns.saturating_add(self.scan_interval_ns);
        self.fragments
            .on_timeout(now_ns, &self.limits, &mut self.counters);
        true
    }

    /// Ends the capture: datagrams still missing fragments are dropped and counted (call with
    /// the workers' `Engine::flush`).
    pub fn flush(&mut self) {
        self.fragments.flush(&mut self.counters);
    }
}

/// One worker's records waiting to be merged.
#[derive(Debug)]
struct Lane<T> {
    queue: VecDeque<(u64, T)>,
    /// Every item up to this sequence number has been handled by the worker.
    watermark: u64,
}

/// Merges the workers' records back into dispatch order. Buffering is bounded by how far the
/// dispatcher lets workers run ahead of each other (the binary bounds the batches in flight).
#[derive(Debug)]
pub struct Merger<T> {
    lanes: Vec<Lane<T>>,
}

impl<T> Merger<T> {
    /// A merger of `workers` lanes.
    pub fn new(workers: usize) -> Self {
        Self {
            lanes: (0..workers.max(1))
                .map(|_| Lane {
                    queue: VecDeque::new(),
                    watermark: 0,
                })
                .collect(),
        }
    }

    /// A record of `worker`, produced while handling the item numbered `seq`. Each worker's
    /// records must come in nondecreasing `seq`.
    pub fn push(&mut self, worker: usize, seq: u64, record: T) {
        let lane = &mut self.lanes[worker];
        debug_assert!(lane.queue.back().is_none_or(|(s, _)| *s <= seq));
        lane.queue.push_back((seq, record));
    }

    /// `worker` has handled every item up to `seq` (and pushed their records).
    pub fn advance(&mut self, worker: usize, seq: u64) {
        let lane = &mut self.lanes[worker];
        lane.watermark = lane.watermark.max(seq);
    }

    /// Records waiting.
    pub fn len(&self) -> usize {
        self.lanes.iter().map(|l| l.queue.len()).sum()
    }

    /// Whether no record waits.
    pub fn is_empty(&self) -> bool {
        self.lanes.iter().all(|l| l.queue.is_empty())
    }

    /// The next record in dispatch order, once no worker can still produce an earlier one
    /// (ties: lower worker first).
    pub fn pop(&mut self) -> Option<T> {
        self.pop_with_worker().map(|(_, r)| r)
    }

    /// Like [`Merger::pop`], with the worker the record came from.
    pub fn pop_with_worker(&mut self) -> Option<(usize, T)> {
        let (i, seq) = self
            .lanes
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.queue.front().map(|(s, _)| (i, *s)))
            .min_by_key(|&(i, s)| (s, i))?;
        // A worker with nothing queued that has not reported `seq` done may still produce
        // records of `seq` or an earlier item.
        let ready = self
            .lanes
            .iter()
            .all(|l| !l.queue.is_empty() || l.watermark >= seq);
        if !ready {
            return None;
        }
        self.lanes[i].queue.pop_front().map(|(_, r)| (i, r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Endpoint;

    fn ep(s: &str, port: u16) -> Endpoint {
        Endpoint {
            addr: s.parse().unwrap(),
            port,
        }
    }

    #[test]
    fn both_directions_go_to_one_worker_and_flows_spread() {
        let mut used = [0usize; 4];
        for port in 40000..41000 {
            let (a, _) = FlowKey::new(6, ep("198.18.0.2", port), ep("198.18.0.1", 80));
            let (b, _) = FlowKey::new(6, ep("198.18.0.1", 80), ep("198.18.0.2", port));
            let w = worker_of(&a, 4, 7);
            assert_eq!(w, worker_of(&b, 4, 7));
            assert_eq!(w, worker_of(&a, 4, 7), "stable");
            used[w] += 1;
        }
        // One client and one server: the ports alone spread the connections.
        assert!(used.iter().all(|&n| n > 150), "{used:?}");
        let (k, _) = FlowKey::new(17, ep("::1", 1), ep("::2", 2));
        assert_eq!(worker_of(&k, 1, 7), 0);
    }

    #[test]
    fn worker_configs_divide_caps_and_get_their_own_ids() {
        let c = EngineConfig::default();
        let w0 = worker_config(&c, 3, 0);
        let w1 = worker_config(&c, 3, 1);
        let w2 = worker_config(&c, 3, 2);
        assert_eq!(w0.max_flows, c.max_flows.div_ceil(3));
        assert_eq!(
            w1.max_total_buffer_bytes,
            c.max_total_buffer_bytes.div_ceil(3)
        );
        assert_eq!(w0.max_flow_buffer_bytes, c.max_flow_buffer_bytes);
        assert_eq!(w0.id_seed, c.id_seed);
        assert_ne!(w1.id_seed, w0.id_seed);
        assert_ne!(w1.id_seed, w2.id_seed);
        assert_eq!(worker_config(&c, 1, 0), c);
    }

    #[test]
    fn merger_waits_for_the_watermarks_then_releases_in_order() {
        let mut m = Merger::new(2);
        m.push(0, 1, "a1");
        m.push(0, 3, "a3");
        // Worker 1 may still have records of items 1..: nothing is ready.
        assert_eq!(m.pop(), None);
        m.push(1, 2, "b2");
        assert_eq!(m.pop(), Some("a1"));
        assert_eq!(m.pop(), Some("b2"));
        // Worker 1 might still produce item 3's records.
        assert_eq!(m.pop(), None);
        m.advance(1, 3);
        assert_eq!(m.pop(), Some("a3"));
        assert_eq!(m.pop(), None);
        assert!(m.is_empty());
    }

    #[test]
    fn merger_orders_a_shared_tick_by_worker() {
        let mut m = Merger::new(2);
        m.push(1, 5, "b5");
        m.advance(1, 5);
        // Worker 0 may still add item 5's records, which go first.
        assert_eq!(m.pop(), None);
        m.push(0, 5, "a5");
        m.advance(0, 5);
        assert_eq!(m.pop(), Some("a5"));
        assert_eq!(m.pop(), Some("b5"));
        // A worker done with item 5 holds nothing back for item 5 of a higher worker.
        m.push(1, 6, "b6");
        m.advance(0, 6);
        assert_eq!(m.pop(), Some("b6"));
    }

    /// An ICMPv4 frame `src -> dst` of `icmp_type` (code 0) carrying `payload`.
    fn icmp(src: [u8; 4], dst: [u8; 4], icmp_type: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4(src, dst, 64)
            .icmpv4_raw(icmp_type, 0, [0; 4])
            .write(&mut out, payload)
            .unwrap();
        out
    }

    /// The engine files ICMP under its own address pair (one conversation: who pinged first,
    /// which message is a reply), so an error quoting some UDP flow goes with that pair's
    /// echoes, not to the worker of the flow it quotes.
    #[test]
    fn icmp_errors_go_with_their_own_address_pair() {
        let (a, b) = ([198, 18, 0, 2], [198, 18, 0, 1]);
        // Destination unreachable (RFC 792 type 3) from b quoting a's UDP datagram a -> b:53.
        let mut quoted = Vec::new();
        etherparse::PacketBuilder::ipv4(a, b, 64)
            .udp(40000, 53)
            .write(&mut quoted, &[0; 8])
            .unwrap();
        let echo = icmp(a, b, 8, &[0; 8]);
        let error = icmp(b, a, 3, &quoted[..28]);
        let meta = CaptureMeta::default();
        for seed in 0..16 {
            let mut d = Dispatcher::new(4, &EngineConfig::default(), seed);
            let Route::Frame(w) = d.route(0, LinkType::Ethernet, &echo, meta) else {
                panic!("an echo is a frame")
            };
            assert_eq!(
                d.route(0, LinkType::Ethernet, &error, meta),
                Route::Frame(w),
                "seed {seed}"
            );
        }
    }

    #[test]
    fn timeouts_follow_the_engine_schedule() {
        let c = EngineConfig::default();
        let mut d = Dispatcher::new(2, &c, 0);
        let s = c.timeout_scan_interval_ns;
        assert!(d.due(10));
        assert!(!d.due(10 + s - 1));
        assert!(d.due(10 + s));
    }
}
