//! Errors of the capture crate, each saying what failed, on what, and what to do about it.

use std::io;

/// A capture path could not be set up or used.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The kernel refused to load the embedded eBPF object.
    #[error("loading the capture eBPF programs failed: {source}. {hint}")]
    Load {
        /// What aya reported.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
        /// What the user can do.
        hint: &'static str,
    },
    /// A program or map the object should hold is not there (a build problem).
    #[error("the embedded eBPF object has no {0}; rebuild flowscope")]
    Missing(&'static str),
    /// The interface does not exist.
    #[error("interface {name:?} not found: {source}")]
    NoInterface {
        /// Name asked for.
        name: String,
        /// Lookup error.
        #[source]
        source: io::Error,
    },
    /// Attaching to an interface failed.
    #[error("TC attach ({method}) on {iface} failed: {detail}{hint}")]
    Attach {
        /// Interface name.
        iface: String,
        /// "tcx" or "clsact".
        method: &'static str,
        /// The kernel's or aya's message.
        detail: String,
        /// What the user can do.
        hint: &'static str,
    },
    /// A socket operation for the socket-filter or AF_PACKET path failed.
    #[error("{what} failed: {source}{hint}")]
    Socket {
        /// The call that failed.
        what: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
        /// What the user can do.
        hint: &'static str,
    },
    /// The capture ring could not be taken or mapped.
    #[error(transparent)]
    Ring(#[from] ebpf_ring::RingError),
    /// The kernel refused to run a program once on a given packet (`BPF_PROG_TEST_RUN`).
    #[error("running {program} on a test packet failed: {detail}")]
    TestRun {
        /// The program's name.
        program: &'static str,
        /// aya's message.
        detail: String,
    },
    /// Writing a filter or config map failed.
    #[error("updating the {map} map failed: {detail}")]
    Map {
        /// Map name.
        map: &'static str,
        /// aya's message.
        detail: String,
    },
}

/// The advice for EPERM/EACCES from the kernel.
pub(crate) fn perm_hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => {
            " — run as root or grant CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON"
        }
        _ => "",
    }
}
