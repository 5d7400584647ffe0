//! Starting the syscall-span programs ([`ebpf_kprobe::syscalls`]) for `--syscall-spans`, and
//! their counters for `flowscope status`.

use std::sync::{Arc, Mutex};

use ebpf_kprobe::syscalls::{SyscallOptions, SyscallTracer};
use tracing::{info, warn};

use crate::config::AgentConfig;

/// The attached programs, shared with the status provider (for their counters); `None` once
/// detached.
pub type SharedSyscalls = Arc<Mutex<Option<SyscallTracer>>>;

/// Loads and attaches the programs when `syscall-spans` selects processes (None when it
/// does not). Failing to is not fatal: it is logged, and `flowscope status` shows
/// `syscall_spans_unavailable 1`.
pub fn start_syscall_spans(cfg: &AgentConfig) -> Option<Result<SyscallTracer, String>> {
    if cfg.syscall_spans.is_empty() {
        return None;
    }
    if !cfg.export.print_spans && cfg.export.otlp_endpoint.is_none() {
        warn!(
            "--syscall-spans makes spans: without --otlp-endpoint or --print-spans they go nowhere"
        );
    }
    let selection = match cfg.syscall_selection() {
        Ok(s) => s,
        Err(e) => return Some(Err(e.to_string())),
    };
    Some(
        match SyscallTracer::start(&SyscallOptions {
            selection,
            ring_bytes: 1 << 20,
        }) {
            Ok(t) => {
                info!(attached = %t.attached(), processes = ?cfg.syscall_spans, "syscall spans");
                Ok(t)
            }
            Err(e) => {
                warn!("syscall spans unavailable: {e}");
                Err(e.to_string())
            }
        },
    )
}

/// The counters `flowscope status` and /metrics show for the syscall programs.
pub fn syscall_counters(tracer: &SharedSyscalls, unavailable: bool) -> Vec<(String, u64)> {
    let mut out = vec![(
        "syscall_spans_unavailable".to_string(),
        u64::from(unavailable),
    )];
    if let Some(t) = tracer.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        out.extend(
            t.kernel_counters()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v)),
        );
    }
    out
}
