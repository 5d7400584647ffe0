//! Kernel drop reports: the kfree_skb program (bpf/drops.bpf.c) turns drops of TCP/UDP
//! packets into [`DropEvent`]s, and [`DropReasons`] names their reasons from the running
//! kernel's BTF.
//!
//! [`KernelDrops::start`] loads the program (direct BTF reads first, the bpf_probe_read_kernel
//! variant for older verifiers), sets the kernel's numbers for the frees that are not drops,
//! and attaches it; everything is detached when the value is dropped (bpf_links only,
//! nothing pinned).

pub mod reasons;
pub mod wire;

use aya::{
    maps::PerCpuArray,
    programs::{BtfTracePoint, FEntry},
    Btf, Ebpf, EbpfLoader,
};
use ebpf_ring::SingleMapRing;
use tracing::debug;

pub use reasons::{BtfError, DropReasons};
pub use wire::{DropEvent, EventKind, WireError, DROP_COUNTERS, LISTEN_OVERFLOW_UNNUMBERED};

use crate::error::{hint_for, shorten, AttributionError};

static OBJ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/drops.bpf.o"));

/// The programs, best first: (name, how it reads header bytes).
const PROGRAMS: &[(&str, &str)] = &[
    (
        "fsd_kfree_skb_rx",
        "direct BTF reads, receiving socket (6.11+)",
    ),
    ("fsd_kfree_skb", "direct BTF reads"),
    ("fsd_kfree_skb_pr", "bpf_probe_read_kernel"),
];

/// The TCP tracepoint programs, as (tracepoint, programs best first): the kernel's own
/// retransmissions and resets. 6.10 gave tcp_retransmit_skb an error argument (older kernels
/// refuse the program that reads it) and tcp_send_reset a reason (not read: the arguments
/// before it are the same).
const TCP_PROGRAMS: &[(&str, &[&str])] = &[
    (
        "tcp_retransmit_skb",
        &[
            "fsd_tcp_retransmit_err",
            "fsd_tcp_retransmit",
            "fsd_tcp_retransmit_pr",
        ],
    ),
    ("tcp_send_reset", &["fsd_tcp_send_reset"]),
    ("tcp_receive_reset", &["fsd_tcp_receive_reset"]),
];

/// SYNs dropped for a full accept queue: fentry on tcp_conn_request (see drops.bpf.c), best
/// first, as the kfree_skb programs read header bytes.
const LISTEN_OVERFLOW_PROGRAMS: &[&str] = &["fsd_listen_overflow", "fsd_listen_overflow_pr"];

/// Settings for [`KernelDrops::start`].
#[derive(Clone, Debug)]
pub struct DropOptions {
    /// Reports per second per CPU; drops above it are counted, not reported.
    pub rate_per_sec: u64,
    /// Reports allowed at once above the rate.
    pub burst: u64,
    /// Bytes of the ring; rounded up to a power of two of at least one page.
    pub ring_bytes: u32,
}

impl Default for DropOptions {
    fn default() -> Self {
        Self {
            rate_per_sec: 1000,
            burst: 1000,
            ring_bytes: 256 << 10,
        }
    }
}

/// The attached kfree_skb program; detached and unloaded on drop.
pub struct KernelDrops {
    ebpf: Ebpf,
    reasons: DropReasons,
    program: &'static str,
    /// The TCP tracepoint programs attached, as `program -> tracepoint`.
    tcp_programs: Vec<String>,
    ring_taken: bool,
}

impl std::fmt::Debug for KernelDrops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelDrops")
            .field("program", &self.program)
            .finish()
    }
}

impl KernelDrops {
    /// Reads the reason names, then loads and attaches the best program that this kernel
    /// accepts. An error means drops can't be reported here; nothing stays attached.
    ///
    /// Memory: the kernel's BTF (~5 MiB raw, ~16 MiB parsed) is read three times here, one
    /// after the other and never two at once: the reason names (raw bytes, dropped before
    /// the object loads), aya's `EbpfLoader::new` (it always parses the kernel BTF itself,
    /// aya 0.14 offers no way to hand it ours, and frees it when the object is loaded), and
    /// the [`Btf`] the tp_btf/fentry programs are loaded against (parsed after that and
    /// dropped on return). Parsing once before the loader would keep two parsed copies alive
    /// during the load: that was the agent's 66 MiB start-up peak (issue 18).
    pub fn start(opts: &DropOptions) -> Result<Self, AttributionError> {
        let reasons = DropReasons::from_kernel().map_err(|e| AttributionError::Unavailable {
            method: "kernel drops",
            why: e.to_string(),
        })?;
        let mut errors = Vec::new();
        for &(name, how) in PROGRAMS {
            match Self::try_program(opts, &reasons, name) {
                Ok((mut ebpf, btf)) => {
                    debug!(program = name, how, "kfree_skb program attached");
                    let tcp_programs = attach_tcp_programs(&mut ebpf, &btf);
                    return Ok(Self {
                        ebpf,
                        reasons,
                        program: name,
                        tcp_programs,
                        ring_taken: false,
                    });
                }
                Err(e) => {
                    debug!("{name} ({how}) did not load: {e}");
                    errors.push(format!("{name} ({how}): {e}"));
                }
            }
        }
        Err(AttributionError::Unavailable {
            method: "kernel drops",
            why: errors.join("; "),
        })
    }

    /// Loads the object and attaches its program `name` to kfree_skb; returns the object and
    /// the kernel BTF it was attached with (for the TCP programs), parsed only after the
    /// loader has freed its own copy.
    fn try_program(
        opts: &DropOptions,
        reasons: &DropReasons,
        name: &'static str,
    ) -> Result<(Ebpf, Btf), AttributionError> {
        // Kernels before 6.3 have no SKB_CONSUMED (consume_skb has its own tracepoint there).
        let consumed = reasons.number("SKB_CONSUMED").unwrap_or(u32::MAX);
        let not_specified = reasons.number("NOT_SPECIFIED").unwrap_or(u32::MAX);
        // Queues freed with their socket: not a drop on the network (see drops.bpf.c).
        let queue_purge = reasons.number("QUEUE_PURGE").unwrap_or(u32::MAX);
        let listen_overflow = reasons
            .number("TCP_LISTEN_OVERFLOW")
            .unwrap_or(LISTEN_OVERFLOW_UNNUMBERED);
        let ring = opts.ring_bytes.max(4096).next_power_of_two();
        let mut ebpf = EbpfLoader::new()
            .map_max_entries("drop_events", ring)
            .override_global("cfg_reason_consumed", &consumed, true)
            .override_global("cfg_reason_not_specified", &not_specified, true)
            .override_global("cfg_reason_queue_purge", &queue_purge, true)
            .override_global("cfg_reason_listen_overflow", &listen_overflow, true)
            .override_global("cfg_rate_per_sec", &opts.rate_per_sec, true)
            .override_global("cfg_burst", &opts.burst.max(1), true)
            .load(OBJ)
            .map_err(|e| AttributionError::load("drops object", &e))?;
        let btf = Btf::from_sys_fs().map_err(|e| AttributionError::Unavailable {
            method: "kernel drops",
            why: format!("kernel BTF: {e}"),
        })?;
        let p: &mut BtfTracePoint = ebpf
            .program_mut(name)
            .ok_or(AttributionError::Missing(name))?
            .try_into()
            .map_err(|_| AttributionError::Missing("tp_btf program"))?;
        p.load("kfree_skb", &btf)
            .map_err(|e| AttributionError::load(name, &e))?;
        p.attach().map_err(|e| {
            let detail = shorten(&e);
            AttributionError::Attach {
                program: name,
                target: "tp_btf/kfree_skb".into(),
                hint: hint_for(&detail),
                detail,
            }
        })?;
        Ok((ebpf, btf))
    }

    /// The kernel's reason names (also for reading [`DropEvent::reason`]).
    pub fn reasons(&self) -> &DropReasons {
        &self.reasons
    }

    /// `program -> hook`, for logs and status.
    pub fn attached(&self) -> String {
        let mut s = format!("{} -> tp_btf/kfree_skb", self.program);
        for p in &self.tcp_programs {
            s.push_str(", ");
            s.push_str(p);
        }
        s
    }

    /// How many of the TCP tracepoints (retransmit, reset sent, reset received) have no
    /// program attached (the kernel refused them; see the debug log).
    pub fn tcp_tracepoints_missing(&self) -> usize {
        let attached = self
            .tcp_programs
            .iter()
            .filter(|p| p.contains("tp_btf/"))
            .count();
        TCP_PROGRAMS.len() - attached
    }

    /// Whether no program reports SYNs dropped for a full accept queue (fentry needs BPF
    /// trampolines, which need ftrace; status then has the per-listener counts only).
    pub fn listen_overflow_hook_missing(&self) -> bool {
        !self.tcp_programs.iter().any(|p| p.contains("fentry/"))
    }

    /// Takes the ring of [`DropEvent`] records. Call once.
    pub fn take_ring(&mut self) -> Result<SingleMapRing, AttributionError> {
        if self.ring_taken {
            return Err(AttributionError::NoRing("kernel drops"));
        }
        let map = self
            .ebpf
            .take_map("drop_events")
            .ok_or(AttributionError::Missing("drop_events map"))?;
        self.ring_taken = true;
        Ok(SingleMapRing::new(map, "drop_events")?)
    }

    /// Kernel-side counters summed over CPUs (reported, rate-limited, ring-full, ...).
    pub fn kernel_counters(&self) -> Vec<(&'static str, u64)> {
        let Some(map) = self.ebpf.map("drop_counters") else {
            return Vec::new();
        };
        let Ok(arr) = PerCpuArray::<_, u64>::try_from(map) else {
            return Vec::new();
        };
        DROP_COUNTERS
            .iter()
            .map(|&(i, name)| (name, arr.get(&i, 0).map(|v| v.iter().sum()).unwrap_or(0)))
            .collect()
    }
}

/// Attaches the best program this kernel accepts for each TCP tracepoint, beside the
/// kfree_skb one (same ring and counters). One that no program loads for is skipped and
/// logged: drops are still reported.
fn attach_tcp_programs(ebpf: &mut Ebpf, btf: &Btf) -> Vec<String> {
    let mut attached = Vec::new();
    for &(tracepoint, names) in TCP_PROGRAMS {
        for &name in names {
            let Some(Ok(p)) = ebpf.program_mut(name).map(<&mut BtfTracePoint>::try_from) else {
                debug!("{name}: not a tp_btf program in the object");
                continue;
            };
            match p
                .load(tracepoint, btf)
                .and_then(|()| p.attach().map(|_| ()))
            {
                Ok(()) => {
                    debug!(
                        program = name,
                        tracepoint, "TCP tracepoint program attached"
                    );
                    attached.push(format!("{name} -> tp_btf/{tracepoint}"));
                    break;
                }
                Err(e) => debug!("{name} on {tracepoint} did not load: {}", shorten(&e)),
            }
        }
    }
    for &name in LISTEN_OVERFLOW_PROGRAMS {
        let Some(Ok(p)) = ebpf.program_mut(name).map(<&mut FEntry>::try_from) else {
            debug!("{name}: not an fentry program in the object");
            continue;
        };
        match p
            .load("tcp_conn_request", btf)
            .and_then(|()| p.attach().map(|_| ()))
        {
            Ok(()) => {
                debug!(program = name, "listen overflow program attached");
                attached.push(format!("{name} -> fentry/tcp_conn_request"));
                break;
            }
            Err(e) => debug!("{name} on tcp_conn_request did not load: {}", shorten(&e)),
        }
    }
    attached
}
