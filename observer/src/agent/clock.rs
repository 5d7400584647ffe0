//! The agent's clocks: the kernel stamps packets with CLOCK_MONOTONIC, owner-cache expiry runs
//! on it too, and flows are shown and queued in wall-clock time.

/// Offset between CLOCK_REALTIME and CLOCK_MONOTONIC, sampled once at start.
#[derive(Clone, Copy, Debug)]
pub struct MonoToWall {
    offset_ns: i128,
}

fn now_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

/// CLOCK_REALTIME now, nanoseconds since the epoch.
pub fn wall_now_ns() -> u64 {
    now_ns(libc::CLOCK_REALTIME).max(0) as u64
}

/// CLOCK_MONOTONIC now (the clock of kernel stamps), nanoseconds.
pub fn monotonic_now_ns() -> u64 {
    now_ns(libc::CLOCK_MONOTONIC).max(0) as u64
}

impl MonoToWall {
    /// Samples both clocks now.
    pub fn sample() -> Self {
        Self {
            offset_ns: now_ns(libc::CLOCK_REALTIME) - now_ns(libc::CLOCK_MONOTONIC),
        }
    }

    /// Wall-clock nanoseconds since the epoch for a monotonic stamp.
    pub fn wall_ns(&self, mono_ns: u64) -> u64 {
        (i128::from(mono_ns) + self.offset_ns).max(0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_now_maps_to_wall_now() {
        let m = MonoToWall::sample();
        let wall = m.wall_ns(now_ns(libc::CLOCK_MONOTONIC) as u64) as i128;
        let real = now_ns(libc::CLOCK_REALTIME);
        assert!(
            (real - wall).abs() < 1_000_000_000,
            "off by {} ns",
            real - wall
        );
    }
}
