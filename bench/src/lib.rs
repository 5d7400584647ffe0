//! Workloads for flowscope's benchmarks: large synthetic HTTP/1.1 captures made in memory.

use flows::synth::{http_connection, SynthFrame};

/// A capture of `connections` keep-alive connections, each with `exchanges` GET/200
/// exchanges of `body_len`-byte bodies, interleaved as concurrent clients would be.
pub fn http_workload(connections: u16, exchanges: usize, body_len: usize) -> Vec<SynthFrame> {
    let mut frames: Vec<SynthFrame> = (0..connections)
        .flat_map(|i| {
            http_connection(
                20_000 + i,
                exchanges,
                body_len,
                1_700_000_000_000_000_000 + u64::from(i) * 1_000,
            )
        })
        .collect();
    // Stable sort by time interleaves connections while keeping each one in order.
    frames.sort_by_key(|f| f.ts_ns);
    frames
}

/// Exchanges in a workload made by [`http_workload`].
pub fn exchange_count(connections: u16, exchanges: usize) -> u64 {
    u64::from(connections) * exchanges as u64
}
