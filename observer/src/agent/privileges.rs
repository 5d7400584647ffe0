//! Dropping the capabilities the agent no longer needs once its programs are loaded and
//! attached, so a bug later on (in a decoder fed hostile bytes, say) has less to work with.

use std::io;

use tracing::{info, warn};

/// Capability numbers (linux/capability.h).
pub mod cap {
    /// Bypass file read and directory search checks: reading other users' /proc/PID/fd links.
    pub const DAC_READ_SEARCH: u32 = 2;
    /// Interface and TC configuration: attaching to interfaces that appear later.
    pub const NET_ADMIN: u32 = 12;
    /// Raw/packet sockets: the AF_PACKET path reads its socket for as long as it runs.
    pub const NET_RAW: u32 = 13;
    /// Inspect other processes (/proc/PID/fd of processes we don't own).
    pub const SYS_PTRACE: u32 = 19;
    /// What CAP_BPF and CAP_PERFMON split out of, on kernels before 5.8.
    pub const SYS_ADMIN: u32 = 21;
    /// perf events and BPF tracing reads.
    pub const PERFMON: u32 = 38;
    /// bpf(2): reading counters, updating filter maps, creating TCX links.
    pub const BPF: u32 = 39;
}

/// The highest capability number this kernel knows.
fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Keeps only `keep` in the effective and permitted sets and in the bounding set; clears the
/// inheritable and ambient sets. Capabilities not held before stay not held.
pub fn keep_only(keep: &[u32]) -> io::Result<()> {
    let last = last_cap();
    for c in 0..=last {
        if !keep.contains(&c) {
            // SAFETY: prctl with integer arguments; EINVAL for unknown caps is ignored.
            unsafe { libc::prctl(libc::PR_CAPBSET_DROP, c as libc::c_ulong, 0, 0, 0) };
        }
    }
    // SAFETY: prctl with integer arguments.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget fills two CapData for version 3, as the header says.
    if unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut hdr as *mut CapHeader,
            data.as_mut_ptr(),
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    let mut mask = [0u32; 2];
    for c in keep {
        mask[(*c / 32) as usize] |= 1 << (c % 32);
    }
    for (d, m) in data.iter_mut().zip(mask) {
        d.effective &= m;
        d.permitted &= m;
        d.inheritable = 0;
    }
    // SAFETY: capset reads two CapData for version 3.
    if unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// After start-up: keep what running needs (attaching to new interfaces, reading maps, reading
/// packet sockets, resolving sockets to processes through /proc), drop everything else —
/// notably CAP_SYS_ADMIN where CAP_BPF exists, CAP_SYS_RESOURCE, CAP_DAC_OVERRIDE, CAP_SETUID.
pub fn drop_unneeded(afpacket: bool) {
    let has_cap_bpf = last_cap() >= cap::BPF;
    let mut keep = vec![cap::NET_ADMIN, cap::DAC_READ_SEARCH, cap::SYS_PTRACE];
    if has_cap_bpf {
        keep.extend([cap::BPF, cap::PERFMON]);
    } else {
        keep.push(cap::SYS_ADMIN);
    }
    if afpacket {
        keep.push(cap::NET_RAW);
    }
    match keep_only(&keep) {
        Ok(()) => info!(kept = ?keep, "dropped capabilities not needed after start-up"),
        Err(e) => warn!("could not drop capabilities: {e}; running with those we started with"),
    }
}
