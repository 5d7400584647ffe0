//! How the agent shares a CPU with the services it observes (issue 18: the tail latency the
//! agent adds to them).
//!
//! The agent drains its rings in batches (the kernel wakes it per 128 KiB, or every 20 ms), and
//! a batch is milliseconds of decoding. Two things keep that work from sitting in front of the
//! observed service's own wakeups:
//! - [`SchedPolicy::Batch`]: the agent's threads run under `SCHED_BATCH` (sched(7)), so the
//!   scheduler never lets the agent's wakeup preempt a running service; it keeps its normal
//!   share of the CPU (nice 0), unlike a positive nice value, which starved it into ring losses
//!   (BENCHMARKS.md, `nice -n 19`).
//! - [`SliceBudget`]: inside a batch the reader gives the CPU up (`sched_yield(2)`) after every
//!   [`SLICE_NS`] of work while records still wait, so a service that woke meanwhile runs
//!   then, not after the whole batch. When nothing else waits for the CPU the yield returns at
//!   once.

use std::io;

use serde::{Deserialize, Serialize};

/// Longest stretch of decoding between two offers of the CPU: the issue's "no burst of more
/// than ~100 µs of work at a time".
pub const SLICE_NS: u64 = 100_000;

/// Records handled between two clock reads (a read is a vDSO call, ~20 ns; a record is
/// microseconds): keeps the check off the per-record cost.
const CHECK_EVERY: u32 = 8;

/// The Linux scheduling policy of the agent's threads (sched(7)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchedPolicy {
    /// `SCHED_OTHER`: the kernel's default for every process.
    #[default]
    Normal,
    /// `SCHED_BATCH`: same CPU share, but the agent waking up never preempts a running task.
    Batch,
}

impl SchedPolicy {
    /// Sets the calling thread's policy (priority 0, as both policies require). Threads it
    /// creates afterwards inherit it (sched(7), "Privileges and resource limits": a policy
    /// is inherited across clone), so calling this first thing in the agent covers every
    /// runtime, worker and scanner thread.
    ///
    /// Errors: what `sched_setscheduler(2)` returns (EPERM under a seccomp filter that
    /// forbids it, for instance).
    pub fn apply(self) -> io::Result<()> {
        let policy = match self {
            SchedPolicy::Normal => libc::SCHED_OTHER,
            SchedPolicy::Batch => libc::SCHED_BATCH,
        };
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param for the call.
        let rc = unsafe { libc::sched_setscheduler(0, policy, &param) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

/// Counts the work done since the reader last offered the CPU (see the module docs). Sans-IO:
/// the caller reads the clock and does the yield.
#[derive(Debug)]
pub struct SliceBudget {
    since_ns: u64,
    records: u32,
}

impl SliceBudget {
    /// A budget whose slice starts at `now_ns` (CLOCK_MONOTONIC).
    pub fn new(now_ns: u64) -> Self {
        Self {
            since_ns: now_ns,
            records: 0,
        }
    }

    /// Called after each record; `now` is asked for the clock only every few records. True
    /// when the slice is used up: the caller yields, and the next slice starts at `now`.
    pub fn spent(&mut self, now: impl FnOnce() -> u64) -> bool {
        self.records += 1;
        if self.records < CHECK_EVERY {
            return false;
        }
        self.records = 0;
        let t = now();
        if t.saturating_sub(self.since_ns) < SLICE_NS {
            return false;
        }
        self.since_ns = t;
        true
    }
}

/// Offers the CPU to any task waiting for it (`sched_yield(2)`); returns at once when none is.
pub fn yield_cpu() {
    // SAFETY: sched_yield has no arguments and cannot fail on Linux.
    unsafe {
        libc::sched_yield();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slice_ends_after_its_time_and_the_next_starts_then() {
        let mut b = SliceBudget::new(1_000);
        let mut reads = 0;
        // 7 records: no clock read, no yield.
        for _ in 0..CHECK_EVERY - 1 {
            assert!(!b.spent(|| unreachable!("clock read before CHECK_EVERY records")));
        }
        // 8th record, 50 µs in: not spent.
        assert!(!b.spent(|| {
            reads += 1;
            51_000
        }));
        for _ in 0..CHECK_EVERY - 1 {
            assert!(!b.spent(|| unreachable!()));
        }
        // 16th record, 101 µs in: spent; the next slice starts at 101_000.
        assert!(b.spent(|| {
            reads += 1;
            101_000 + 1_000
        }));
        assert_eq!(reads, 2);
        for _ in 0..CHECK_EVERY - 1 {
            assert!(!b.spent(|| unreachable!()));
        }
        assert!(!b.spent(|| 150_000), "only 48 µs into the new slice");
    }

    #[test]
    fn a_clock_that_goes_back_never_yields_nor_panics() {
        let mut b = SliceBudget::new(500_000);
        for _ in 0..CHECK_EVERY - 1 {
            b.spent(|| 0);
        }
        assert!(!b.spent(|| 0));
    }

    #[test]
    fn policies_take_effect_on_the_calling_thread() {
        // In a thread of its own, so the test runner's threads keep theirs.
        std::thread::spawn(|| {
            SchedPolicy::Batch
                .apply()
                .expect("SCHED_BATCH needs no privilege");
            // SAFETY: no arguments beyond the calling thread.
            assert_eq!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_BATCH);
            // Inherited by a thread created afterwards.
            let child = std::thread::spawn(|| unsafe { libc::sched_getscheduler(0) });
            assert_eq!(child.join().unwrap(), libc::SCHED_BATCH);
            SchedPolicy::Normal.apply().expect("back to SCHED_OTHER");
            assert_eq!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_OTHER);
        })
        .join()
        .unwrap();
    }
}
