//! Feature probes run at start-up to pick the attribution method.

use std::{
    fs,
    path::{Path, PathBuf},
};

/// What this kernel offers for attribution.
#[derive(Clone, Debug)]
pub struct Features {
    /// kprobes usable: the `kprobe` perf PMU, or `kprobe_events` in tracefs.
    pub kprobes: Result<(), String>,
    /// Kernel BTF at /sys/kernel/btf/vmlinux (tp_btf and CO-RE need it).
    pub btf: Result<(), String>,
    /// Where cgroup v2 is mounted (cgroup sock_addr hooks attach there).
    pub cgroup2: Result<PathBuf, String>,
}

/// Probes the running kernel. Mounts tracefs when it is missing and needed to tell whether
/// kprobes exist (kernels without the kprobe PMU, before 4.17).
pub fn probe() -> Features {
    Features {
        kprobes: probe_kprobes(),
        btf: if Path::new("/sys/kernel/btf/vmlinux").exists() {
            Ok(())
        } else {
            Err("no /sys/kernel/btf/vmlinux (kernel built without CONFIG_DEBUG_INFO_BTF)".into())
        },
        cgroup2: crate::cgroup::cgroup2_mount()
            .ok_or_else(|| "no cgroup2 filesystem mounted (see /proc/self/mountinfo)".to_string()),
    }
}

fn probe_kprobes() -> Result<(), String> {
    if Path::new("/sys/bus/event_source/devices/kprobe/type").exists() {
        return kallsyms_has("tcp_connect");
    }
    for dir in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
        if Path::new(dir).join("kprobe_events").exists() {
            return kallsyms_has("tcp_connect");
        }
    }
    if mount_tracefs().is_ok() && Path::new("/sys/kernel/tracing/kprobe_events").exists() {
        return kallsyms_has("tcp_connect");
    }
    Err(
        "no kprobe perf PMU (/sys/bus/event_source/devices/kprobe) and no kprobe_events in \
         tracefs: the kernel is built without CONFIG_KPROBES"
            .into(),
    )
}

fn kallsyms_has(sym: &str) -> Result<(), String> {
    let text = fs::read_to_string("/proc/kallsyms")
        .map_err(|e| format!("cannot read /proc/kallsyms: {e}"))?;
    let found = text
        .lines()
        .any(|l| l.split_whitespace().nth(2) == Some(sym));
    if found {
        Ok(())
    } else {
        Err(format!("kprobes exist but {sym} is not in /proc/kallsyms"))
    }
}

/// Mounts tracefs at /sys/kernel/tracing unless something is mounted there already.
pub fn mount_tracefs() -> Result<(), String> {
    let target = Path::new("/sys/kernel/tracing");
    if target.join("trace").exists() || target.join("events").exists() {
        return Ok(());
    }
    mount("tracefs", target, "tracefs").map_err(|e| {
        format!(
            "tracefs is not mounted and `mount -t tracefs nodev /sys/kernel/tracing` failed: {e}"
        )
    })
}

/// Mounts a cgroup2 hierarchy at `target` (creating the directory).
pub fn mount_cgroup2(target: &Path) -> Result<(), String> {
    fs::create_dir_all(target).map_err(|e| format!("mkdir {}: {e}", target.display()))?;
    mount("cgroup2", target, "cgroup2").map_err(|e| {
        format!(
            "no cgroup2 mount and `mount -t cgroup2 none {}` failed: {e}",
            target.display()
        )
    })
}

fn mount(src: &str, target: &Path, fstype: &str) -> Result<(), std::io::Error> {
    use std::{ffi::CString, os::unix::ffi::OsStrExt};
    let c = |s: &[u8]| CString::new(s).expect("no NUL in mount arguments");
    let (src, tgt, ty) = (
        c(src.as_bytes()),
        c(target.as_os_str().as_bytes()),
        c(fstype.as_bytes()),
    );
    // SAFETY: all pointers are valid NUL-terminated strings for the duration of the call.
    let rc = unsafe { libc::mount(src.as_ptr(), tgt.as_ptr(), ty.as_ptr(), 0, std::ptr::null()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
