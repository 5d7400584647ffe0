//! Pacing the capture ring's reader: a batch of records is decoded in slices of about
//! [`SLICE`] of work, and between two slices the reader's thread gives up its CPU
//! (`sched_yield(2)`), so that a service thread woken on that CPU waits for one slice at most,
//! not for the whole batch.
//!
//! Why: the kernel wakes the reader once per 64 KiB of records (`RING_WAKEUP_BYTES`), ~80
//! HTTP/1 exchanges, whose decoding takes ~400 µs on a 2-vCPU machine; a request whose server
//! or client thread wakes behind that batch waits for it, and the added p99 latency at 10k
//! req/s was about one batch long (BENCHMARKS.md, "Pacing the ring reader"). Smaller batches
//! would cost a wakeup each; a yield costs a syscall and returns at once when nothing else
//! wants the CPU.
//!
//! The reader yields only while it is keeping up: with more than [`YIELD_BELOW`] of the ring
//! unread it runs flat out, because a reader that kept yielding to a saturated service would
//! fall behind until the ring overflowed and records were lost (measured: 658k lost records
//! in 10 s of saturation with an unconditional yield every 32 records).

use std::time::{Duration, Instant};

/// Work between two yields.
pub const SLICE: Duration = Duration::from_micros(50);

/// The reader yields only while less than this share of the ring (1/8) waits unread.
pub const YIELD_BELOW: usize = 8;

/// Records between two looks at the clock (a clock read costs ~25 ns; a record ~2 µs).
const CHECK_EVERY: u32 = 8;

/// Where the reader is in its current slice.
#[derive(Debug)]
pub struct Pacer {
    slice_start: Instant,
    records: u32,
    /// Yields so far (status: `ring_reader_yields`).
    pub yields: u64,
}

impl Pacer {
    /// A slice starting now.
    pub fn new() -> Self {
        Self {
            slice_start: Instant::now(),
            records: 0,
            yields: 0,
        }
    }

    /// Starts a new slice (at the start of a batch: the reader just woke).
    pub fn restart(&mut self) {
        self.slice_start = Instant::now();
        self.records = 0;
    }

    /// After one record: yields the CPU when the slice is over and `backlog()` (bytes unread,
    /// asked only then) is under the share [`YIELD_BELOW`] of `ring_size`.
    pub fn after_record(&mut self, ring_size: usize, backlog: impl FnOnce() -> usize) {
        self.records += 1;
        if self.records < CHECK_EVERY {
            return;
        }
        self.records = 0;
        let now = Instant::now();
        if now.duration_since(self.slice_start) < SLICE {
            return;
        }
        if should_yield(backlog(), ring_size) {
            std::thread::yield_now();
            self.yields += 1;
        }
        self.slice_start = Instant::now();
    }
}

impl Default for Pacer {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether a reader `backlog` bytes behind in a ring of `ring_size` bytes may yield.
fn should_yield(backlog: usize, ring_size: usize) -> bool {
    backlog < ring_size / YIELD_BELOW
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_falling_behind_stops_yielding() {
        let ring = 4 << 20;
        assert!(should_yield(0, ring));
        assert!(should_yield(64 << 10, ring));
        assert!(!should_yield(512 << 10, ring));
        assert!(!should_yield(4 << 20, ring));
    }

    #[test]
    fn the_backlog_is_asked_only_at_the_end_of_a_slice() {
        let mut p = Pacer::new();
        let mut asked = 0;
        // A burst of records well under a slice: no clock-driven yield, no backlog read.
        for _ in 0..(CHECK_EVERY - 1) {
            p.after_record(4 << 20, || {
                asked += 1;
                0
            });
        }
        assert_eq!(asked, 0);
        // After a slice's worth of time, the next check asks and yields.
        std::thread::sleep(SLICE * 2);
        p.after_record(4 << 20, || {
            asked += 1;
            0
        });
        assert_eq!((asked, p.yields), (1, 1));
        // Behind: asked, no yield.
        std::thread::sleep(SLICE * 2);
        for _ in 0..CHECK_EVERY {
            p.after_record(4 << 20, || {
                asked += 1;
                4 << 20
            });
        }
        assert_eq!((asked, p.yields), (2, 1));
    }
}
