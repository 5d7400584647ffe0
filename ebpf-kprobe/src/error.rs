//! Errors of the attribution crate, each saying what failed, on what, and what to do about it.

/// Attribution could not be started or used.
#[derive(Debug, thiserror::Error)]
pub enum AttributionError {
    /// The kernel refused to load the embedded eBPF object or one of its programs.
    #[error("loading the attribution eBPF program {program} failed: {detail}. {hint}")]
    Load {
        /// Program (or "object").
        program: &'static str,
        /// What aya/the verifier reported (shortened).
        detail: String,
        /// What the user can do.
        hint: &'static str,
    },
    /// Attaching a program failed.
    #[error("attaching {program} to {target} failed: {detail}. {hint}")]
    Attach {
        /// Program name.
        program: &'static str,
        /// Hook: a kernel function, tracepoint or cgroup path.
        target: String,
        /// The kernel's or aya's message.
        detail: String,
        /// What the user can do.
        hint: &'static str,
    },
    /// A program or map the object should hold is not there (a build problem).
    #[error("the embedded attribution eBPF object has no {0}; rebuild flowscope")]
    Missing(&'static str),
    /// The method asked for cannot run on this kernel.
    #[error("attribution method {method:?} is not available here: {why}")]
    Unavailable {
        /// The method asked for.
        method: &'static str,
        /// What the feature probe found.
        why: String,
    },
    /// The chosen method has no kernel ring ("proc-only"), or it was already taken.
    #[error("attribution method {0:?} has no event ring (already taken, or proc-only)")]
    NoRing(&'static str),
    /// A ring could not be taken or mapped.
    #[error(transparent)]
    Ring(#[from] ebpf_ring::RingError),
    /// A map operation failed.
    #[error("reading the {map} map failed: {detail}")]
    Map {
        /// Map name.
        map: &'static str,
        /// aya's message.
        detail: String,
    },
}

/// Advice for a kernel refusal.
pub(crate) fn hint_for(detail: &str) -> &'static str {
    if detail.contains("EPERM")
        || detail.contains("Operation not permitted")
        || detail.contains("permission")
    {
        "Run as root, or grant CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN (kernel lockdown can also forbid this hook)"
    } else if detail.contains("No such file") || detail.contains("ENOENT") {
        "The kernel lacks this hook (function, tracepoint or BTF type)"
    } else {
        "See the verifier message above"
    }
}

/// Keeps the head and the end of a verifier log: the failing instruction and the reason are at
/// the end, and the full log can run to thousands of lines.
pub(crate) fn shorten(e: &dyn std::error::Error) -> String {
    let mut full = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        full.push_str(": ");
        full.push_str(&s.to_string());
        src = s.source();
    }
    let lines: Vec<&str> = full.lines().collect();
    if lines.len() > 8 {
        format!(
            "{} [... {} verifier lines ...]\n{}",
            lines[0],
            lines.len() - 7,
            lines[lines.len() - 6..].join("\n")
        )
    } else {
        full
    }
}

impl AttributionError {
    /// `program` (or an object) that the kernel or aya refused to load, with `e`'s message
    /// shortened and a hint for it.
    pub(crate) fn load(program: &'static str, e: &dyn std::error::Error) -> Self {
        let detail = shorten(e);
        Self::Load {
            program,
            hint: hint_for(&detail),
            detail,
        }
    }

    /// A failed operation on `map`.
    pub(crate) fn map(map: &'static str, e: impl std::fmt::Display) -> Self {
        Self::Map {
            map,
            detail: e.to_string(),
        }
    }
}
