//! Errors of the TLS probes, each saying what failed, on what, and what to do about it.

/// The TLS probes could not be started or used.
#[derive(Debug, thiserror::Error)]
pub enum TlsProbeError {
    /// The kernel refused to load the embedded object or one of its programs.
    #[error("loading the TLS eBPF program {program} failed: {detail}. Run as root (CAP_BPF, CAP_PERFMON), on a kernel with BTF")]
    Load {
        /// Program (or "object").
        program: &'static str,
        /// What aya/the verifier reported.
        detail: String,
    },
    /// A program or map the object should hold is not there (a build problem).
    #[error("the embedded TLS eBPF object has no {0}; rebuild flowscope")]
    Missing(&'static str),
    /// The ring was already taken.
    #[error("the TLS event ring was already taken")]
    NoRing,
    /// A ring could not be taken or mapped.
    #[error(transparent)]
    Ring(#[from] ebpf_ring::RingError),
    /// Another module's programs can't be chained: this module has no socket-tracepoint
    /// programs to call them from.
    #[error("no TLS socket-tracepoint programs to chain to ({0})")]
    NotChainable(String),
    /// A map operation failed.
    #[error("reading the TLS {map} map failed: {detail}")]
    Map {
        /// Map name.
        map: &'static str,
        /// aya's message.
        detail: String,
    },
}

/// The whole chain of an error, on one line.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut full = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        full.push_str(": ");
        full.push_str(&s.to_string());
        src = s.source();
    }
    full
}
