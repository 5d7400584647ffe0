//! Software prefetch of the flows the ring is about to evict (issue 18; BENCHMARKS.md, "Flow
//! store working set").
//!
//! The flow a full ring evicts was stored `max_flows` flows ago (4,095 by default, a few MiB of
//! heap behind them): its memory has left the core's L2 by then, so evicting it (`Arc::get_mut`
//! on its block, freeing its `Flow` box, header buffer, header values and URL) waits on memory
//! at every pointer, and the engine's next `Box<Flow>`, which the allocator carves from the
//! chunk just freed, is written into cold lines too. With a small ring all of it is still
//! cached: the ring's size alone cost ~1 µs per request (4,095 vs 64 flows) although the work
//! is the same.
//!
//! So every insert fetches, a few flows ahead of their eviction, one more level of pointers of
//! each of the next flows: the `Arc`'s block [`AHEAD`] flows ahead, its `Flow` box one flow
//! later, what the flow owns (header buffer, URL, TCP health, HTTP/2 block) one later, the
//! header values one later, and the flow is evicted one insert after that. Each level reads
//! only pointers the previous level fetched (so the pointer chase never waits), and flows are
//! microseconds apart in the agent, more than a memory fetch takes. A prefetch is a hint: it
//! never faults, whatever the address, and changes nothing the program can observe.

use std::collections::VecDeque;
use std::sync::Arc;

use flows::record::{Flow, Http2Info, HttpHeader, L7Record, TcpHealth};

use super::{FlowBody, StoredFlow};

/// How many flows ahead of its eviction a flow's first level (its `Arc`'s block) is fetched;
/// each deeper level one flow later. Four levels, so four flows.
pub(super) const AHEAD: usize = 4;

/// Fetches, for the flows `flows[1..=AHEAD]` (`flows[0]` is evicted by this insert), the level
/// of each that is due: see the module's comment. Not inlined: a step of its own in profiles
/// (`bench/exchange_cost.sh`), for a call per insert.
#[inline(never)]
pub(super) fn evictions(flows: &VecDeque<Arc<StoredFlow>>) {
    if let Some(f) = flows.get(AHEAD) {
        // The `Arc`'s block: its two counts precede the value (`ArcInner`'s layout).
        block(
            Arc::as_ptr(f).cast::<u8>().wrapping_sub(16),
            16 + std::mem::size_of::<StoredFlow>(),
        );
    }
    if let Some(FlowBody::Engine(e)) = flows.get(AHEAD - 1).map(|f| &f.body) {
        // The whole box, not only the fields its drop reads: the next `Box<Flow>` the engine
        // makes is carved from this chunk once it is freed, and written whole.
        value::<Flow>(&e.flow);
    }
    if let Some(FlowBody::Engine(e)) = flows.get(AHEAD - 2).map(|f| &f.body) {
        owned(&e.flow);
    }
    if let Some(FlowBody::Engine(e)) = flows.get(AHEAD - 3).map(|f| &f.body) {
        if let Some(L7Record::Http(h)) = e.flow.l7.as_ref().map(|l| &l.record) {
            for field in &h.headers {
                // A short value is inline, in the buffer fetched above: fetching it is free.
                line(field.value.as_ptr());
            }
        }
    }
}

/// The blocks `flow` owns directly that its drop reads: the TCP health box, the kept headers'
/// buffer, the URL's `Arc` block, the HTTP/2 box.
fn owned(flow: &Flow) {
    if let Some(b) = &flow.tcp_health {
        value::<TcpHealth>(b);
    }
    let Some(L7Record::Http(h)) = flow.l7.as_ref().map(|l| &l.record) else {
        return;
    };
    if h.headers.capacity() > 0 {
        block(
            h.headers.as_ptr().cast(),
            h.headers.capacity() * std::mem::size_of::<HttpHeader>(),
        );
    }
    // The URL's two counts precede its bytes; its first bytes share their line.
    block(h.url.as_ptr().wrapping_sub(16), 16 + h.url.len().min(48));
    if let Some(b) = &h.http2 {
        value::<Http2Info>(b);
    }
}

/// The lines of the heap block holding `v`.
fn value<T>(v: &T) {
    block(std::ptr::from_ref(v).cast(), std::mem::size_of::<T>());
}

/// The cache lines of the `len` bytes at `p` and of the allocator's chunk header just before
/// them (glibc's `free` reads the size word there).
fn block(p: *const u8, len: usize) {
    let start = p.wrapping_sub(16);
    let skew = start as usize % LINE;
    let mut at = start.wrapping_sub(skew);
    for _ in 0..(skew + len + 16).div_ceil(LINE) {
        line(at);
        at = at.wrapping_add(LINE);
    }
}

/// A cache line's size on x86_64 (and the usual one elsewhere).
const LINE: usize = 64;

/// Fetches the cache line of `p` into every cache level.
#[cfg(not(test))]
#[inline]
fn line(p: *const u8) {
    prefetch(p);
}

/// The hint itself: PREFETCHT0 on x86_64.
#[cfg(target_arch = "x86_64")]
#[inline]
fn prefetch(p: *const u8) {
    // SAFETY: PREFETCHT0 only hints the cache: it never faults, whatever the address (valid,
    // dangling or null), and writes no memory; SSE, which it needs, is in x86_64's baseline.
    unsafe { core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast()) }
}

/// No prefetch off x86_64: the hint is only worth its instructions where it was measured.
#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn prefetch(_: *const u8) {}

#[cfg(test)]
pub(crate) use measure::{line, Mode, MODE};

/// In tests, the hint can be switched (by the exchange-cost harness, from
/// `$EXCHANGE_COST_PREFETCH`) off, or to a real load of the line: callgrind's cache simulation
/// ignores prefetch instructions, so loads are how it shows which misses the prefetches take off
/// the eviction path (they move here); off and on compare the hint's time natively.
#[cfg(test)]
mod measure {
    use std::sync::atomic::{AtomicU8, Ordering};

    /// What [`line`] does.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    #[repr(u8)]
    pub(crate) enum Mode {
        /// Prefetch, as the agent does.
        Prefetch = 0,
        /// Load the line (for callgrind).
        Touch = 1,
        /// Nothing.
        Off = 2,
    }

    /// The [`Mode`] in force.
    pub(crate) static MODE: AtomicU8 = AtomicU8::new(Mode::Prefetch as u8);

    /// The agent's prefetch inline (so the harness counts its instructions), plus one load and
    /// compare of the mode per line.
    #[inline]
    pub(crate) fn line(p: *const u8) {
        if MODE.load(Ordering::Relaxed) == Mode::Prefetch as u8 {
            super::prefetch(p);
        } else {
            other(p);
        }
    }

    #[inline(never)]
    fn other(p: *const u8) {
        if MODE.load(Ordering::Relaxed) == Mode::Touch as u8 {
            touch(p);
        }
    }

    /// A load of `p`'s cache line, for the measurement only.
    #[inline(never)]
    fn touch(p: *const u8) {
        let line = p.wrapping_sub(p as usize % super::LINE);
        // SAFETY: test builds only, under the exchange-cost harness: every address handed to
        // `line` is in a 64-byte line that overlaps a live heap block or its chunk header
        // (glibc's heap is mapped in whole pages, so the line is mapped), and it is only read.
        std::hint::black_box(unsafe { std::ptr::read_volatile(line) });
    }
}
