//! The flow table: per-conversation state keyed by [`FlowKey`], with a cap on entries.
//!
//! A plain `HashMap` owned by one engine (one per worker thread, so no locking), hashed with
//! foldhash under random seeds (see [`FlowHasher`]). The engine drives eviction itself (idle,
//! closed, flush) in a deterministic order (by creation time, then key), so replaying a capture
//! always yields records in the same order whatever the hash seeds.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

use crate::key::{FlowKey, Side};
use crate::l7::tls::PlaintextSlot;
use crate::l7::{DatagramDecoder, L7Context, L7Event, PacketCtx, StreamDecoder, StreamDir};
use crate::tcp::{ConnectionHealth, ResetTracker, StreamEvent, TcpReassembler};

/// The table is at its entry cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("flow table full ({max} flows): new flow {key:?} not tracked — raise max_flows or lower idle_timeout")]
pub struct TableFull {
    /// The cap.
    pub max: usize,
    /// The flow that did not fit.
    pub key: FlowKey,
}

/// Which L7 decoder a TCP connection has, if any.
#[derive(Debug)]
pub enum L7Slot {
    /// No stream bytes yet; `gapped[i]` records a gap/mid-stream start in direction `i`
    /// (0 = to server, 1 = to client) to replay to the decoder once it exists.
    Detecting {
        /// Per direction: did the stream start with a gap?
        gapped: [bool; 2],
    },
    /// A decoder is attached.
    Active(Box<dyn StreamDecoder>),
    /// Not a protocol we decode; bytes are ignored.
    Unrecognised,
    /// A TLS connection decoded from the plaintext its TLS library saw
    /// ([`crate::l7::tls`]): the packets' bytes are ciphertext and go nowhere.
    Plaintext(Box<PlaintextSlot>),
}

fn dir_index(dir: StreamDir) -> usize {
    match dir {
        StreamDir::ToServer => 0,
        StreamDir::ToClient => 1,
    }
}

impl L7Slot {
    /// Routes one reassembled stream event to the decoder, detecting the protocol on the first
    /// bytes.
    pub fn on_event(
        &mut self,
        dir: StreamDir,
        event: StreamEvent<'_>,
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        match self {
            L7Slot::Detecting { gapped } => match event {
                StreamEvent::Data(d) if !d.is_empty() => {
                    match crate::l7::start_stream_decoder(d, *gapped, at, cx, out) {
                        Some(dec) => {
                            *self = L7Slot::Active(dec);
                            self.on_event(dir, event, at, cx, out);
                        }
                        None => {
                            cx.counters.l7_unrecognised_flows += 1;
                            *self = L7Slot::Unrecognised;
                        }
                    }
                }
                StreamEvent::Gap { .. } => gapped[dir_index(dir)] = true,
                _ => {}
            },
            L7Slot::Active(dec) => {
                dec.on_event(dir, event, at, cx, out);
                if let Some(next) = dec.take_upgrade() {
                    *dec = next;
                }
                if dec.is_dead() {
                    if !dec.stopped_by_protocol_error() {
                        cx.counters.l7_unrecognised_flows += 1;
                    }
                    dec.finish(at.ts_ns, cx, out);
                    *self = L7Slot::Unrecognised;
                }
            }
            L7Slot::Plaintext(p) => p.on_packet_event(dir, &event, at),
            L7Slot::Unrecognised => {}
        }
    }

    /// Time passes (the engine's timeout scan): let the decoder report what waits only for
    /// time (see [`StreamDecoder::on_timeout`]).
    pub fn on_timeout(
        &mut self,
        now_ns: u64,
        request_timeout_ns: u64,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        match self {
            L7Slot::Active(dec) => dec.on_timeout(now_ns, request_timeout_ns, cx, out),
            L7Slot::Plaintext(p) => p.inner.on_timeout(now_ns, request_timeout_ns, cx, out),
            _ => {}
        }
    }

    /// The connection is over: let the decoder report what is pending. A plaintext decoder
    /// waits for [`L7Slot::finish_evicted`]: the plaintext of a connection's last exchange is
    /// read by the application after the packets that carried it, and may reach the engine
    /// after its FINs.
    pub fn finish(&mut self, now_ns: u64, cx: &mut L7Context<'_>, out: &mut Vec<L7Event>) {
        match self {
            L7Slot::Active(dec) => dec.finish(now_ns, cx, out),
            L7Slot::Plaintext(_) => return,
            _ => {}
        }
        *self = L7Slot::Unrecognised;
    }

    /// The connection leaves the table: like [`L7Slot::finish`], and a plaintext decoder
    /// ends too (the slot stays, so the records it makes can still be marked with its source).
    pub fn finish_evicted(&mut self, now_ns: u64, cx: &mut L7Context<'_>, out: &mut Vec<L7Event>) {
        match self {
            L7Slot::Plaintext(p) => p.finish(now_ns, cx, out),
            _ => self.finish(now_ns, cx, out),
        }
    }

    /// Bytes of `dir` after the `delivered` ones the decoder will pass over unread (see
    /// [`crate::l7::StreamDecoder::skippable`]); 0 while detecting. A connection decoded from
    /// its TLS library's plaintext, and one of no protocol we decode, read none of their
    /// packets' bytes.
    pub fn skippable(&self, dir: StreamDir, delivered: u64) -> u64 {
        match self {
            L7Slot::Active(dec) => dec.skippable(dir, delivered),
            L7Slot::Plaintext(_) | L7Slot::Unrecognised => crate::l7::opaque_skippable(delivered),
            _ => 0,
        }
    }

    /// Bytes the decoder holds.
    pub fn buffered(&self) -> usize {
        match self {
            L7Slot::Active(dec) => dec.buffered(),
            L7Slot::Plaintext(p) => p.inner.buffered(),
            _ => 0,
        }
    }
}

/// TCP connection state.
#[derive(Debug)]
pub struct TcpConn {
    /// Reassembly per sending side, indexed by [`Side::index`].
    pub reasm: [TcpReassembler; 2],
    /// The L7 decoder.
    pub l7: L7Slot,
    /// When both directions ended (FIN/FIN or RST).
    pub closed_at: Option<u64>,
    /// What each side advertised and a reset waiting to take effect (RFC 5961 §3.2).
    pub rst: ResetTracker,
    /// Handshake, RTT and loss so far (issue 17).
    pub health: ConnectionHealth,
    /// Each side's last segment as first captured: a packet seen again at another capture
    /// point is not sent again (see [`crate::tcp::sighting`]).
    pub sightings: crate::tcp::Sightings,
    /// The end (`until_seq`) of the capture hint standing for each sending side, indexed by
    /// [`Side::index`] (see [`crate::engine::CaptureHint`]).
    pub hinted: [Option<u32>; 2],
}

impl TcpConn {
    /// Bytes held by reassembly and the decoder.
    pub fn buffered(&self) -> usize {
        self.reasm[0].buffered() + self.reasm[1].buffered() + self.l7.buffered()
    }
}

/// UDP conversation state.
#[derive(Debug, Default)]
pub struct UdpConn {
    /// The decoder of its datagrams, when its ports name a protocol we decode.
    pub l7: Option<Box<dyn DatagramDecoder>>,
}

/// Protocol-specific state.
#[derive(Debug)]
pub enum ConnState {
    /// TCP.
    Tcp(Box<TcpConn>),
    /// UDP.
    Udp(UdpConn),
    /// Anything else (ICMP, ...): counted only.
    Other,
}

/// One conversation in the table.
#[derive(Debug)]
pub struct FlowEntry {
    /// Creation time.
    pub created_ns: u64,
    /// Last packet time.
    pub last_seen_ns: u64,
    /// Which side is the server.
    pub server: Side,
    /// Socket cookie, once any packet carried one.
    pub socket_cookie: Option<u64>,
    /// Bytes of this flow counted in the engine's total buffer.
    pub accounted: usize,
    /// Time of the last L3/L4 record per sending side ([`crate::key::Side::index`]); 0: none
    /// yet. Control-only reporting uses it to show connectionless flows now and then.
    pub l4_reported_ns: [u64; 2],
    /// Protocol state.
    pub state: ConnState,
}

impl FlowEntry {
    /// The stream direction of bytes sent by `side`.
    pub fn dir_of(&self, side: Side) -> StreamDir {
        if side == self.server {
            StreamDir::ToClient
        } else {
            StreamDir::ToServer
        }
    }
}

/// Why a flow left the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvictReason {
    /// No packets for the idle timeout.
    Idle,
    /// Closed (FIN both ways, or RST) and the linger passed.
    Closed,
    /// End of capture.
    Flush,
}

/// The flow table's hasher: foldhash (several times cheaper than std's SipHash on a 5-tuple)
/// with both of its seeds drawn from std's `RandomState`, i.e. from the OS's randomness.
///
/// Flow keys come off the network, so an attacker picks them: an unseeded hash (FxHash) would
/// let one precompute colliding tuples and turn every lookup into a list walk (HashDoS).
/// foldhash's own seeding mixes address-space layout and the clock; drawing its seeds from the
/// OS as well keeps them unguessable across processes and tables. (foldhash does not claim
/// resistance to an attacker who can measure our timing interactively; neither the capture
/// path nor the API exposes hash order, since eviction sorts by creation time and key.)
#[derive(Debug, Clone)]
pub struct FlowHasher(foldhash::fast::SeedableRandomState);

impl FlowHasher {
    /// A hasher with a fresh per-table seed and the process-wide random shared seed.
    pub fn new() -> Self {
        static SHARED: OnceLock<foldhash::SharedSeed> = OnceLock::new();
        let shared = SHARED.get_or_init(|| foldhash::SharedSeed::from_u64(os_random_u64()));
        Self(foldhash::fast::SeedableRandomState::with_seed(
            os_random_u64(),
            shared,
        ))
    }
}

impl Default for FlowHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl BuildHasher for FlowHasher {
    type Hasher = foldhash::fast::FoldHasher<'static>;
    fn build_hasher(&self) -> Self::Hasher {
        self.0.build_hasher()
    }
}

/// 64 random bits from std's `RandomState` (SipHash keys the OS supplies once per thread and
/// that std advances for every new state).
fn os_random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x666c_6f77_7363_6f70);
    h.finish()
}

/// Conversations by normalised 5-tuple.
#[derive(Debug)]
pub struct FlowTable {
    map: HashMap<FlowKey, FlowEntry, FlowHasher>,
    max_entries: usize,
}

impl FlowTable {
    /// An empty table holding at most `max_entries` flows.
    pub fn new(max_entries: usize) -> Self {
        Self {
            map: HashMap::with_hasher(FlowHasher::new()),
            max_entries,
        }
    }

    /// Number of flows.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no flows are tracked.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The flow for `key`, if tracked.
    pub fn get_mut(&mut self, key: &FlowKey) -> Option<&mut FlowEntry> {
        self.map.get_mut(key)
    }

    /// Adds a new flow, unless the table is full. A flow already tracked under `key` is kept
    /// (and returned); `entry` is then dropped.
    pub fn insert(&mut self, key: FlowKey, entry: FlowEntry) -> Result<&mut FlowEntry, TableFull> {
        if self.map.len() >= self.max_entries {
            return Err(TableFull {
                max: self.max_entries,
                key,
            });
        }
        Ok(self.map.entry(key).or_insert(entry))
    }

    /// Removes a flow.
    pub fn remove(&mut self, key: &FlowKey) -> Option<FlowEntry> {
        self.map.remove(key)
    }

    /// Keys of every flow, ordered by creation time then key (a deterministic order).
    pub fn keys_in_order(&self) -> Vec<FlowKey> {
        let mut keys: Vec<(u64, FlowKey)> =
            self.map.iter().map(|(k, e)| (e.created_ns, *k)).collect();
        keys.sort_unstable();
        keys.into_iter().map(|(_, k)| k).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_hash_with_different_seeds() {
        let key = FlowKey::new(
            6,
            crate::key::Endpoint {
                addr: "198.18.0.2".parse().unwrap(),
                port: 51234,
            },
            crate::key::Endpoint {
                addr: "198.18.0.1".parse().unwrap(),
                port: 80,
            },
        )
        .0;
        let (a, b) = (FlowHasher::new(), FlowHasher::new());
        assert_eq!(a.hash_one(key), a.hash_one(key));
        assert_ne!(a.hash_one(key), b.hash_one(key));
    }
}
