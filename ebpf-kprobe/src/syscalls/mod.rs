//! Syscall spans' kernel side: the programs of bpf/syscalls.bpf.c report every finished
//! syscall of the [`wire::SYSCALLS`] set made by a traced process as a [`SyscallEvent`]: its
//! times, arguments, return value, and what its fd was (a file, or a TCP/UDP socket with both
//! ends), or the path it opened.
//!
//! [`SyscallTracer::start`] loads the two programs and attaches them to the
//! `syscalls:sys_{enter,exit}_<name>` tracepoints of that set only, so the machine's other
//! syscalls never run them (where those can't be opened, e.g. no tracefs in the agent's mount
//! namespace, to `tp_btf/sys_enter`/`sys_exit`, which every syscall runs); processes are selected by pid or by the comm of their main thread
//! ([`SyscallSelection`]). Everything is detached when the value is dropped (bpf_links only,
//! nothing pinned).

pub mod wire;

use aya::{
    maps::{HashMap as BpfHashMap, PerCpuArray},
    programs::{BtfTracePoint, TracePoint},
    Btf, Ebpf, EbpfLoader,
};
use ebpf_ring::SingleMapRing;
use tracing::debug;

pub use wire::{FdTarget, Syscall, SyscallEvent, WireError, SYSCALLS, SYSCALL_COUNTERS};

use crate::error::{hint_for, shorten, AttributionError};

static OBJ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/syscalls.bpf.o"));

/// Most comms [`SyscallSelection::comms`] may name (the size of the kernel map).
pub const MAX_COMMS: usize = 64;
/// Most pids [`SyscallSelection::pids`] may name (the size of the kernel map).
pub const MAX_PIDS: usize = 1024;

/// Which processes are traced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyscallSelection {
    /// Processes by tgid.
    pub pids: Vec<u32>,
    /// Processes whose main thread has this comm (the kernel keeps 15 bytes of it), including
    /// those started later.
    pub comms: Vec<String>,
}

/// Settings for [`SyscallTracer::start`].
#[derive(Clone, Debug)]
pub struct SyscallOptions {
    /// Who is traced.
    pub selection: SyscallSelection,
    /// Bytes of the ring; rounded up to a power of two of at least one page.
    pub ring_bytes: u32,
}

/// How the programs are attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    /// To this many `syscalls:sys_{enter,exit}_*` tracepoints.
    Tracepoints(usize),
    /// To `tp_btf/sys_enter` and `tp_btf/sys_exit` (every syscall runs them).
    RawSyscalls,
}

/// The attached syscall programs; detached and unloaded on drop.
pub struct SyscallTracer {
    ebpf: Ebpf,
    method: Method,
    ring_taken: bool,
}

impl std::fmt::Debug for SyscallTracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyscallTracer")
            .field("method", &self.method)
            .finish()
    }
}

/// A comm as the kernel stores it: at most 15 bytes and a NUL, NUL padded.
fn comm_key(comm: &str) -> [u8; 16] {
    let mut k = [0u8; 16];
    let b = comm.as_bytes();
    let n = b.len().min(15);
    k[..n].copy_from_slice(&b[..n]);
    k
}

impl SyscallTracer {
    /// Loads the programs, fills the selection and attaches to the tracepoints of every
    /// syscall in [`SYSCALLS`] this kernel has. An error means syscall spans can't be made
    /// here; nothing stays attached.
    pub fn start(opts: &SyscallOptions) -> Result<Self, AttributionError> {
        let sel = &opts.selection;
        if sel.comms.len() > MAX_COMMS || sel.pids.len() > MAX_PIDS {
            return Err(AttributionError::Unavailable {
                method: "syscall spans",
                why: format!(
                    "at most {MAX_COMMS} comms and {MAX_PIDS} pids can be traced ({} and {} asked)",
                    sel.comms.len(),
                    sel.pids.len()
                ),
            });
        }
        let ring = opts.ring_bytes.max(4096).next_power_of_two();
        let nr_openat = Syscall::Openat.nr().unwrap_or(-1);
        let nr_open = Syscall::Open.nr().unwrap_or(-1);
        let mut ebpf = EbpfLoader::new()
            .map_max_entries("syscall_events", ring)
            .override_global("cfg_nr_openat", &nr_openat, true)
            .override_global("cfg_nr_open", &nr_open, true)
            .load(OBJ)
            .map_err(|e| AttributionError::load("syscalls object", &e))?;
        {
            let mut pids: BpfHashMap<_, u32, u8> = BpfHashMap::try_from(
                ebpf.map_mut("fss_pids")
                    .ok_or(AttributionError::Missing("fss_pids map"))?,
            )
            .map_err(|e| AttributionError::map("fss_pids", e))?;
            for &p in &sel.pids {
                pids.insert(p, 1, 0)
                    .map_err(|e| AttributionError::map("fss_pids", e))?;
            }
        }
        {
            let mut comms: BpfHashMap<_, [u8; 16], u8> = BpfHashMap::try_from(
                ebpf.map_mut("fss_comms")
                    .ok_or(AttributionError::Missing("fss_comms map"))?,
            )
            .map_err(|e| AttributionError::map("fss_comms", e))?;
            for c in &sel.comms {
                comms
                    .insert(comm_key(c), 1, 0)
                    .map_err(|e| AttributionError::map("fss_comms", e))?;
            }
        }
        let mut tracepoints = 0;
        let mut first_error = None;
        for (prog, phase) in [
            ("fss_enter", "enter"),
            ("fss_enter1", "enter"),
            ("fss_exit", "exit"),
        ] {
            let p: &mut TracePoint = ebpf
                .program_mut(prog)
                .ok_or(AttributionError::Missing(prog))?
                .try_into()
                .map_err(|_| AttributionError::Missing("tracepoint program"))?;
            p.load().map_err(|e| AttributionError::load(prog, &e))?;
            // The kernel refuses a program that reads more arguments than the tracepoint has.
            let one_arg =
                |s: Syscall| matches!(s, Syscall::Close | Syscall::Fsync | Syscall::Fdatasync);
            for &(syscall, name, _) in SYSCALLS {
                if phase == "enter" && one_arg(syscall) != (prog == "fss_enter1") {
                    continue;
                }
                let tp = format!("sys_{phase}_{name}");
                match p.attach("syscalls", &tp) {
                    Ok(_) => tracepoints += 1,
                    // A kernel without this syscall (or its tracepoint): that syscall is
                    // simply not followed.
                    Err(e) => {
                        debug!("{prog} not attached to syscalls/{tp}: {e}");
                        first_error
                            .get_or_insert_with(|| format!("syscalls/{tp}: {}", shorten(&e)));
                    }
                }
            }
        }
        let method = if tracepoints > 0 {
            Method::Tracepoints(tracepoints)
        } else {
            debug!(
                "no per-syscall tracepoint ({}); trying tp_btf/sys_enter and sys_exit",
                first_error.as_deref().unwrap_or("none attached")
            );
            Self::attach_raw(&mut ebpf).map_err(|e| AttributionError::Attach {
                program: "fss_enter",
                target: "syscalls:sys_enter_* or tp_btf/sys_enter".into(),
                detail: format!(
                    "no syscall tracepoint could be attached (first: {}), and the raw \
                     fallback failed: {e}",
                    first_error.unwrap_or_default()
                ),
                hint: "the kernel needs CONFIG_FTRACE_SYSCALLS and tracefs, or BTF",
            })?;
            Method::RawSyscalls
        };
        Ok(Self {
            ebpf,
            method,
            ring_taken: false,
        })
    }

    /// The fallback: the generic sys_enter/sys_exit tracepoints by BTF (no tracefs needed),
    /// told which syscall numbers to follow.
    fn attach_raw(ebpf: &mut Ebpf) -> Result<(), AttributionError> {
        {
            let mut watched: aya::maps::Array<_, u8> = aya::maps::Array::try_from(
                ebpf.map_mut("fss_watched")
                    .ok_or(AttributionError::Missing("fss_watched map"))?,
            )
            .map_err(|e| AttributionError::map("fss_watched", e))?;
            for &(_, _, nr) in SYSCALLS {
                watched
                    .set(nr as u32, 1, 0)
                    .map_err(|e| AttributionError::map("fss_watched", e))?;
            }
        }
        let btf = Btf::from_sys_fs().map_err(|e| AttributionError::Unavailable {
            method: "syscall spans",
            why: format!("kernel BTF: {e}"),
        })?;
        for (prog, tp) in [("fss_sys_enter", "sys_enter"), ("fss_sys_exit", "sys_exit")] {
            let p: &mut BtfTracePoint = ebpf
                .program_mut(prog)
                .ok_or(AttributionError::Missing(prog))?
                .try_into()
                .map_err(|_| AttributionError::Missing("tp_btf program"))?;
            p.load(tp, &btf)
                .map_err(|e| AttributionError::load(prog, &e))?;
            p.attach().map_err(|e| {
                let detail = shorten(&e);
                AttributionError::Attach {
                    program: prog,
                    target: format!("tp_btf/{tp}"),
                    hint: hint_for(&detail),
                    detail,
                }
            })?;
        }
        Ok(())
    }

    /// `programs -> hooks`, for logs and status.
    pub fn attached(&self) -> String {
        match self.method {
            Method::Tracepoints(n) => format!(
                "fss_enter, fss_enter1, fss_exit -> {n} syscalls:sys_{{enter,exit}}_* tracepoints"
            ),
            Method::RawSyscalls => {
                "fss_sys_enter, fss_sys_exit -> tp_btf/sys_enter, tp_btf/sys_exit".to_string()
            }
        }
    }

    /// Takes the ring of [`SyscallEvent`] records. Call once.
    pub fn take_ring(&mut self) -> Result<SingleMapRing, AttributionError> {
        if self.ring_taken {
            return Err(AttributionError::NoRing("syscall spans"));
        }
        let map = self
            .ebpf
            .take_map("syscall_events")
            .ok_or(AttributionError::Missing("syscall_events map"))?;
        self.ring_taken = true;
        Ok(SingleMapRing::new(map, "syscall_events")?)
    }

    /// Kernel-side counters summed over CPUs (events, ring-full, ...).
    pub fn kernel_counters(&self) -> Vec<(&'static str, u64)> {
        let Some(map) = self.ebpf.map("fss_counters") else {
            return Vec::new();
        };
        let Ok(arr) = PerCpuArray::<_, u64>::try_from(map) else {
            return Vec::new();
        };
        SYSCALL_COUNTERS
            .iter()
            .map(|&(i, name)| (name, arr.get(&i, 0).map(|v| v.iter().sum()).unwrap_or(0)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comms_are_cut_like_the_kernel_cuts_them() {
        assert_eq!(&comm_key("python3")[..8], b"python3\0");
        let long = comm_key("a-very-long-process-name");
        assert_eq!(&long[..15], b"a-very-long-pro");
        assert_eq!(long[15], 0);
    }
}
