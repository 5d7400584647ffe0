//! Checks before touching the kernel, so a missing privilege or feature is one clear sentence
//! instead of an errno from deep inside a loader.

use std::{fs, path::Path};

use anyhow::{bail, Result};
use tracing::{info, warn};

const CAP_NET_ADMIN: u32 = 12;
const CAP_NET_RAW: u32 = 13;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// The effective capability set of this process, from /proc/self/status.
pub fn effective_caps() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

fn has(caps: u64, cap: u32) -> bool {
    caps & (1u64 << cap) != 0
}

/// Fails with advice when this process can't load eBPF programs or open packet sockets.
pub fn check_privileges(needs_bpf: bool) -> Result<()> {
    let caps = effective_caps();
    let bpf_ok = has(caps, CAP_SYS_ADMIN) || (has(caps, CAP_BPF) && has(caps, CAP_PERFMON));
    let mut missing = Vec::new();
    if needs_bpf && !bpf_ok {
        missing.push("CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)");
    }
    if needs_bpf && !has(caps, CAP_NET_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    if !needs_bpf && !has(caps, CAP_NET_RAW) {
        missing.push("CAP_NET_RAW");
    }
    if !missing.is_empty() {
        bail!(
            "flowscope agent lacks {} (effective caps {caps:#x}): run it as root (sudo flowscope agent) \
             or grant those capabilities",
            missing.join(", ")
        );
    }
    Ok(())
}

/// Logs what the kernel offers that later stages depend on.
pub fn report_kernel() {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let btf = Path::new("/sys/kernel/btf/vmlinux").exists();
    let lockdown = fs::read_to_string("/sys/kernel/security/lockdown").unwrap_or_default();
    let lockdown = lockdown
        .split_whitespace()
        .find(|w| w.starts_with('['))
        .map(|w| w.trim_matches(|c| c == '[' || c == ']').to_string())
        .unwrap_or_else(|| "unknown".into());
    info!(kernel = release.trim(), btf, lockdown = %lockdown, tcx = ebpf_tc::capture::tcx_supported(), "kernel");
    if !btf {
        warn!("no BTF at /sys/kernel/btf/vmlinux: packet capture works, but process attribution \
               will fall back to /proc scanning (install a kernel built with CONFIG_DEBUG_INFO_BTF)");
    }
}
