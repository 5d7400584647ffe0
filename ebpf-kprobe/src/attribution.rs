//! Loading and attaching the attribution programs, with the method chosen by feature probes.
//! Everything attached is owned by [`Attribution`] and detached when it is dropped (bpf_links
//! only: nothing is pinned, nothing outlives the process).

use std::{fs::File, path::PathBuf};

use aya::{
    maps::PerCpuArray,
    programs::{
        BtfTracePoint, CgroupAttachMode, CgroupSock, CgroupSockAddr, KProbe, ProgramFd, TracePoint,
    },
    Btf, Ebpf, EbpfLoader,
};
use ebpf_ring::SingleMapRing;
use tracing::{debug, info, warn};

use crate::{
    error::{hint_for, shorten, AttributionError},
    probe::{self, Features},
    wire::KERNEL_COUNTERS,
};

static OBJ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/attribution.bpf.o"));

/// Prefix of every program name in the object (`bpftool prog show` finds them by it).
pub const PROGRAM_PREFIX: &str = "fsa_";

/// kprobe programs: (name, kernel function).
const KPROBES: &[(&str, &str)] = &[
    ("fsa_kp_connect", "tcp_connect"),
    ("fsa_kr_accept", "inet_csk_accept"),
    ("fsa_kp_tcp_send", "tcp_sendmsg"),
    ("fsa_kp_tcp_recv", "tcp_recvmsg"),
    ("fsa_kp_udp_send", "udp_sendmsg"),
    ("fsa_kp_udp6_snd", "udpv6_sendmsg"),
    ("fsa_kp_close", "tcp_close"),
];
/// Per-syscall tracepoints for accept/connect returns: (name, tracepoint in `syscalls`).
const SYSCALL_TPS: &[(&str, &str)] = &[
    ("fsa_exit_accept4", "sys_exit_accept4"),
    ("fsa_exit_accept", "sys_exit_accept"),
    ("fsa_enter_conn", "sys_enter_connect"),
    ("fsa_exit_conn", "sys_exit_connect"),
];
/// Socket tracepoints (kernels from 6.3): (name, tp_btf tracepoint).
/// With the socket tracepoints, where the kernel has it (6.16+): the start of a TCP send.
const TCP_SEND_TP: (&str, &str) = ("fsa_tcp_send", "tcp_sendmsg_locked");
const SOCK_TPS: &[(&str, &str)] = &[
    ("fsa_sock_send", "sock_send_length"),
    ("fsa_sock_recv", "sock_recv_length"),
];
/// cgroup sock_addr programs (attach type comes from the section name).
const CGROUP_HOOKS: &[&str] = &[
    "fsa_connect4",
    "fsa_connect6",
    "fsa_sendmsg4",
    "fsa_sendmsg6",
    "fsa_recvmsg4",
    "fsa_recvmsg6",
];

/// How sockets get their owners.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// kprobes on tcp_connect, inet_csk_accept, tcp/udp send and recv, tcp_close.
    Kprobe,
    /// cgroup connect/sendmsg/recvmsg hooks on the cgroup v2 root, tp_btf
    /// inet_sock_set_state, and for accepted and connected-UDP sockets the socket tracepoints
    /// (first send or receive) or the accept/connect-return syscall tracepoints
    /// ([`SocketOwnerHook`]).
    CgroupTpBtf,
    /// No cgroup v2: TCP connect at SYN_SENT (tp_btf), accepted and connected-UDP sockets as
    /// in [`Method::CgroupTpBtf`]; unconnected UDP only via /proc.
    TpBtf,
    /// No kernel programs: every owner comes from /proc scans.
    ProcOnly,
}

impl Method {
    /// Short name for logs and status: "kprobe", "cgroup+tp_btf", "tp_btf", "proc-only".
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Kprobe => "kprobe",
            Method::CgroupTpBtf => "cgroup+tp_btf",
            Method::TpBtf => "tp_btf",
            Method::ProcOnly => "proc-only",
        }
    }
}

/// How the tp_btf methods learn the owner of a socket its process did not `connect(2)` (an
/// accepted TCP connection, a connected UDP socket).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SocketOwnerHook {
    /// The socket tracepoints where the kernel has them, else the syscall tracepoints.
    #[default]
    Auto,
    /// `tp_btf/sock_send_length` and `sock_recv_length` (kernels from 6.3): the socket's
    /// first send or receive by each process (and again with a new peer, for a connected UDP
    /// socket connected anew). Runs only on socket I/O.
    SockTracepoints,
    /// `syscalls:sys_exit_accept{,4}` and `sys_{enter,exit}_connect` (else `tp_btf/sys_exit`):
    /// at accept's return. Any attached syscall tracepoint sends every syscall of every task
    /// through the kernel's slow path (`bench/syscall_cost.sh`: +44 ns per syscall here).
    SyscallTracepoints,
}

impl SocketOwnerHook {
    /// Parses `auto`, `sock` or `syscalls` (FLOWSCOPE_ATTRIBUTION_OWNER_HOOK).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "auto" => Some(Self::Auto),
            "sock" => Some(Self::SockTracepoints),
            "syscalls" => Some(Self::SyscallTracepoints),
            _ => None,
        }
    }
}

/// Settings for [`Attribution::start`].
#[derive(Clone, Debug)]
pub struct AttributionOptions {
    /// Force a method; None probes the kernel and takes the best that loads.
    pub method: Option<Method>,
    /// Bytes of the event ring; rounded up to a power of two of at least one page.
    pub ring_bytes: u32,
    /// cgroup v2 directory the cgroup hooks attach to (None: the hierarchy's root, so every
    /// process on the host is covered).
    pub cgroup: Option<PathBuf>,
    /// Where to mount cgroup2 when no cgroup2 filesystem is mounted.
    pub cgroup2_mount_fallback: PathBuf,
    /// 0: the ring wakes its reader on every record. N > 0: once per N bytes written and not
    /// yet read (fewer wakeups, much cheaper per connection); the reader must then also drain
    /// the ring on a timer (e.g. every 10 ms), or events can wait there indefinitely.
    pub wakeup_batch_bytes: u32,
    /// Which hooks report accepted and connected-UDP sockets on the tp_btf methods.
    pub owner_hook: SocketOwnerHook,
}

impl Default for AttributionOptions {
    fn default() -> Self {
        Self {
            method: None,
            ring_bytes: 4 << 20,
            cgroup: None,
            cgroup2_mount_fallback: PathBuf::from("/run/flowscope/cgroup2"),
            wakeup_batch_bytes: 0,
            owner_hook: SocketOwnerHook::Auto,
        }
    }
}

/// The loaded attribution programs; detached and unloaded on drop.
pub struct Attribution {
    ebpf: Option<Ebpf>,
    method: Method,
    reason: String,
    attached: Vec<String>,
    /// The socket tracepoints' own links (see [`Attribution::detach_sock_io`]).
    sock_links: Vec<(&'static str, BtfLinkId)>,
    ring_taken: bool,
}

/// aya's id of a `tp_btf` attachment.
type BtfLinkId = aya::programs::tp_btf::BtfTracePointLinkId;

impl std::fmt::Debug for Attribution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attribution")
            .field("method", &self.method.as_str())
            .field("attached", &self.attached)
            .finish()
    }
}

fn load_err(program: &'static str) -> impl Fn(aya::programs::ProgramError) -> AttributionError {
    move |e| {
        let detail = shorten(&e);
        AttributionError::Load {
            program,
            hint: hint_for(&detail),
            detail,
        }
    }
}

fn attach_err(
    program: &'static str,
    target: String,
) -> impl FnOnce(aya::programs::ProgramError) -> AttributionError {
    move |e| {
        let detail = shorten(&e);
        AttributionError::Attach {
            program,
            target,
            hint: hint_for(&detail),
            detail,
        }
    }
}

fn raise_memlock_limit() {
    let lim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit with a valid struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) } != 0 {
        debug!(
            "raising RLIMIT_MEMLOCK failed: {}",
            std::io::Error::last_os_error()
        );
    }
}

fn load_object(opts: &AttributionOptions, syn_sent_owner: bool) -> Result<Ebpf, AttributionError> {
    raise_memlock_limit();
    let ring = opts.ring_bytes.max(4096).next_power_of_two();
    let syn_sent = u8::from(syn_sent_owner);
    let wakeup = opts.wakeup_batch_bytes.min(ring / 2);
    EbpfLoader::new()
        .map_max_entries("events", ring)
        .override_global("cfg_syn_sent_owner", &syn_sent, true)
        .override_global("cfg_wakeup_bytes", &wakeup, true)
        .load(OBJ)
        .map_err(|e| {
            let detail = shorten(&e);
            AttributionError::Load {
                program: "object",
                hint: hint_for(&detail),
                detail,
            }
        })
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, AttributionError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program>,
{
    ebpf.program_mut(name)
        .ok_or(AttributionError::Missing(name))?
        .try_into()
        .map_err(|_| AttributionError::Missing("program of the expected type"))
}

fn attach_kprobes(ebpf: &mut Ebpf, attached: &mut Vec<String>) -> Result<(), AttributionError> {
    for &(name, func) in KPROBES {
        let p: &mut KProbe = program(ebpf, name)?;
        p.load().map_err(load_err(name))?;
        p.attach(func, 0)
            .map_err(attach_err(name, func.to_string()))?;
        attached.push(format!("{name} -> {func}"));
    }
    Ok(())
}

/// `tp_btf/inet_sock_set_state`, and for the sockets a process did not connect: the socket
/// tracepoints (`hook` permitting), else the accept/connect-return hooks: the per-syscall
/// tracepoints (they run only for those syscalls, but put every syscall on the slow path), else
/// `tp_btf/sys_exit` (runs on every syscall exit, so it is only the fallback).
///
/// Returns the socket tracepoints' links (empty on the syscall path), which
/// [`Attribution::detach_sock_io`] may drop once another module runs the programs.
fn attach_tp_btf(
    ebpf: &mut Ebpf,
    attached: &mut Vec<String>,
    hook: SocketOwnerHook,
) -> Result<Vec<(&'static str, BtfLinkId)>, AttributionError> {
    let btf = Btf::from_sys_fs().map_err(|e| AttributionError::Load {
        program: "btf",
        detail: e.to_string(),
        hint: "tp_btf needs kernel BTF at /sys/kernel/btf/vmlinux",
    })?;
    let load_btf = |ebpf: &mut Ebpf, name: &'static str, tp: &'static str| {
        let p: &mut BtfTracePoint = program(ebpf, name)?;
        p.load(tp, &btf).map_err(load_err(name))?;
        let link = p
            .attach()
            .map_err(attach_err(name, format!("tp_btf/{tp}")))?;
        Ok::<_, AttributionError>((format!("{name} -> tp_btf/{tp}"), link))
    };
    attached.push(load_btf(ebpf, "fsa_state", "inet_sock_set_state")?.0);
    if hook != SocketOwnerHook::SyscallTracepoints {
        let sock: Result<Vec<_>, AttributionError> = SOCK_TPS
            .iter()
            .map(|&(name, tp)| load_btf(ebpf, name, tp).map(|(line, link)| (name, line, link)))
            .collect();
        match sock {
            Ok(progs) => {
                attached.extend(progs.iter().map(|(_, line, _)| line.clone()));
                // Not fatal: before 6.16 a blocking send's segments go out before the
                // socket is named (at the send's return), as on the syscall path they did not.
                let (name, tp) = TCP_SEND_TP;
                match load_btf(ebpf, name, tp) {
                    Ok((line, _link)) => attached.push(line),
                    Err(e) => {
                        info!("{tp} unusable ({e}); TCP sockets are named when a send returns");
                        if let Ok(p) = program::<BtfTracePoint>(ebpf, name) {
                            let _ = p.unload();
                        }
                    }
                }
                return Ok(progs
                    .into_iter()
                    .map(|(name, _, link)| (name, link))
                    .collect());
            }
            Err(e) if hook == SocketOwnerHook::SockTracepoints => return Err(e),
            Err(e) => {
                info!("socket tracepoints unusable ({e}); accepted sockets through syscall tracepoints");
                for &(name, _) in SOCK_TPS {
                    if let Ok(p) = program::<BtfTracePoint>(ebpf, name) {
                        let _ = p.unload();
                    }
                }
            }
        }
    }
    match attach_syscall_tracepoints(ebpf) {
        Ok(names) => attached.extend(names),
        Err(e) => {
            warn!("syscall tracepoints unusable ({e}); using tp_btf/sys_exit, which runs on every syscall exit");
            for &(name, _) in SYSCALL_TPS {
                if let Ok(p) = program::<TracePoint>(ebpf, name) {
                    let _ = p.unload();
                }
            }
            attached.push(load_btf(ebpf, "fsa_sys_exit", "sys_exit")?.0);
        }
    }
    Ok(Vec::new())
}

fn attach_syscall_tracepoints(ebpf: &mut Ebpf) -> Result<Vec<String>, AttributionError> {
    probe::mount_tracefs().map_err(|why| AttributionError::Unavailable {
        method: "syscall tracepoints",
        why,
    })?;
    let mut names = Vec::new();
    for &(name, tp) in SYSCALL_TPS {
        let p: &mut TracePoint = program(ebpf, name)?;
        p.load().map_err(load_err(name))?;
        p.attach("syscalls", tp)
            .map_err(attach_err(name, format!("tracepoint/syscalls/{tp}")))?;
        names.push(format!("{name} -> tracepoint/syscalls/{tp}"));
    }
    Ok(names)
}

fn attach_cgroup(
    ebpf: &mut Ebpf,
    dir: &std::path::Path,
    attached: &mut Vec<String>,
) -> Result<(), AttributionError> {
    let cg = File::open(dir).map_err(|e| AttributionError::Attach {
        program: "cgroup hooks",
        target: dir.display().to_string(),
        detail: e.to_string(),
        hint: "the cgroup v2 directory must exist and be readable",
    })?;
    for &name in CGROUP_HOOKS {
        let p: &mut CgroupSockAddr = program(ebpf, name)?;
        p.load().map_err(load_err(name))?;
        // aya attaches with a bpf_link on 5.7+, and the kernel rejects any flag on a cgroup
        // link_create (EINVAL): links always behave as BPF_F_ALLOW_MULTI, so other agents'
        // programs on the root keep running. `Single` is aya's "no flags".
        p.attach(&cg, CgroupAttachMode::Single)
            .map_err(attach_err(name, dir.display().to_string()))?;
        attached.push(format!("{name} -> cgroup {}", dir.display()));
    }
    // The socket release hook (5.9+), for sockets no send or receive named: not fatal.
    let name = "fsa_release";
    let release = program::<CgroupSock>(ebpf, name).and_then(|p| {
        p.load().map_err(load_err(name))?;
        p.attach(&cg, CgroupAttachMode::Single)
            .map_err(attach_err(name, dir.display().to_string()))
    });
    match release {
        Ok(_) => attached.push(format!("{name} -> cgroup {}", dir.display())),
        Err(e) => {
            info!("cgroup/sock_release unusable ({e}); sockets closed without I/O keep no owner")
        }
    }
    Ok(())
}

impl Attribution {
    /// Probes the kernel, loads and attaches the best method that works (or the one forced in
    /// `opts`), and logs which was chosen and why.
    pub fn start(opts: &AttributionOptions) -> Result<Self, AttributionError> {
        let features = probe::probe();
        debug!(?features, "attribution feature probe");
        let order: Vec<Method> = match opts.method {
            Some(m) => vec![m],
            None => vec![
                Method::Kprobe,
                Method::CgroupTpBtf,
                Method::TpBtf,
                Method::ProcOnly,
            ],
        };
        let mut why_not: Vec<String> = Vec::new();
        let mut last_err = None;
        for m in order {
            match Self::try_method(m, opts, &features) {
                Ok(me) => {
                    let mut reason = match m {
                        Method::Kprobe => "kprobes available".to_string(),
                        Method::CgroupTpBtf => "kernel BTF and cgroup v2 present".to_string(),
                        Method::TpBtf => "kernel BTF present".to_string(),
                        Method::ProcOnly => "no kernel method loaded".to_string(),
                    };
                    if opts.method.is_some() {
                        reason = format!("forced by configuration; {reason}");
                    }
                    if !why_not.is_empty() {
                        reason = format!("{reason}; {}", why_not.join("; "));
                    }
                    info!(
                        method = m.as_str(),
                        programs = me.attached.len(),
                        "process attribution: using {} ({reason})",
                        m.as_str()
                    );
                    return Ok(Self { reason, ..me });
                }
                Err(e) => {
                    if opts.method.is_none() {
                        warn!("attribution method {} not used: {e}", m.as_str());
                    }
                    why_not.push(format!("not {}: {e}", m.as_str()));
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.expect("at least one method was tried"))
    }

    fn try_method(
        m: Method,
        opts: &AttributionOptions,
        f: &Features,
    ) -> Result<Self, AttributionError> {
        let unavailable = |why: &String| AttributionError::Unavailable {
            method: m.as_str(),
            why: why.clone(),
        };
        let mut attached = Vec::new();
        let mut sock_links = Vec::new();
        let ebpf = match m {
            Method::ProcOnly => None,
            Method::Kprobe => {
                f.kprobes.as_ref().map_err(unavailable)?;
                let mut ebpf = load_object(opts, false)?;
                attach_kprobes(&mut ebpf, &mut attached)?;
                Some(ebpf)
            }
            Method::TpBtf => {
                f.btf.as_ref().map_err(unavailable)?;
                let mut ebpf = load_object(opts, true)?;
                sock_links = attach_tp_btf(&mut ebpf, &mut attached, opts.owner_hook)?;
                Some(ebpf)
            }
            Method::CgroupTpBtf => {
                f.btf.as_ref().map_err(unavailable)?;
                let dir = match (&opts.cgroup, &f.cgroup2) {
                    (Some(d), _) => d.clone(),
                    (None, Ok(root)) => root.clone(),
                    (None, Err(why)) => {
                        warn!(
                            "{why}; mounting cgroup2 at {}",
                            opts.cgroup2_mount_fallback.display()
                        );
                        probe::mount_cgroup2(&opts.cgroup2_mount_fallback)
                            .map_err(|e| unavailable(&e))?;
                        opts.cgroup2_mount_fallback.clone()
                    }
                };
                let mut ebpf = load_object(opts, false)?;
                sock_links = attach_tp_btf(&mut ebpf, &mut attached, opts.owner_hook)?;
                attach_cgroup(&mut ebpf, &dir, &mut attached)?;
                Some(ebpf)
            }
        };
        Ok(Self {
            ebpf,
            method: m,
            reason: String::new(),
            attached,
            sock_links,
            ring_taken: false,
        })
    }

    /// Loads (verifies) the kprobe programs without attaching them, and unloads them again: a
    /// check that they pass this kernel's verifier even where kprobes cannot attach.
    pub fn verify_kprobe_programs() -> Result<(), AttributionError> {
        let mut ebpf = load_object(&AttributionOptions::default(), false)?;
        for &(name, _) in KPROBES {
            let p: &mut KProbe = program(&mut ebpf, name)?;
            p.load().map_err(load_err(name))?;
        }
        Ok(())
    }

    /// The method in use: "kprobe", "cgroup+tp_btf", "tp_btf" or "proc-only".
    pub fn method(&self) -> &'static str {
        self.method.as_str()
    }

    /// The method in use, as a value.
    pub fn method_kind(&self) -> Method {
        self.method
    }

    /// Why this method was chosen (and why better ones were not).
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The programs for `tp_btf/sock_send_length` and `sock_recv_length` (`fsa_sock_send`,
    /// `fsa_sock_recv`), when this method uses them: another module with programs on the same
    /// tracepoints can run them by tail call (ebpf-tls's `TlsProbes::chain_sock_io`), so each
    /// socket send or receive pays one program dispatch for both, then call
    /// [`Attribution::detach_sock_io`].
    pub fn sock_io_programs(&self) -> Option<(&ProgramFd, &ProgramFd)> {
        if self.sock_links.len() != SOCK_TPS.len() {
            return None;
        }
        let ebpf = self.ebpf.as_ref()?;
        let fd = |name: &str| {
            let p: &BtfTracePoint = ebpf.program(name)?.try_into().ok()?;
            p.fd().ok()
        };
        Some((fd(SOCK_TPS[0].0)?, fd(SOCK_TPS[1].0)?))
    }

    /// Detaches this module's own attachment of the socket-tracepoint programs, for when
    /// another module runs them (see [`Attribution::sock_io_programs`]); they stay loaded.
    /// Call it only after the other module has taken them: a socket's first send or receive
    /// between the two would otherwise go unreported.
    pub fn detach_sock_io(&mut self, by: &str) -> Result<(), AttributionError> {
        let Some(ebpf) = self.ebpf.as_mut() else {
            return Ok(());
        };
        for (name, link) in std::mem::take(&mut self.sock_links) {
            let p: &mut BtfTracePoint = program(ebpf, name)?;
            p.detach(link).map_err(|e| AttributionError::Attach {
                program: name,
                target: "its own tp_btf link (detach)".to_string(),
                detail: shorten(&e),
                hint: "",
            })?;
            if let Some(line) = self.attached.iter_mut().find(|l| l.starts_with(name)) {
                *line = format!("{name} -> tail call from {by}");
            }
        }
        Ok(())
    }

    /// On the tp_btf methods, what reports the owners of sockets a process did not connect
    /// (accepted TCP, connected UDP), as attached now: "socket tracepoints" (their first send
    /// or receive), "socket tracepoints, run from <programs>" (by tail call from another
    /// module's programs on them), either followed by "tcp_sendmsg_locked" when that names a
    /// TCP socket at the start of its first send too (6.16+), "syscall tracepoints" (accept's
    /// return) or "tp_btf/sys_exit". None on the kprobe and proc-only methods.
    pub fn owner_hook(&self) -> Option<String> {
        if !matches!(self.method, Method::TpBtf | Method::CgroupTpBtf) {
            return None;
        }
        let line = |name: &str| self.attached.iter().find(|l| l.starts_with(name));
        let tcp_send = line(TCP_SEND_TP.0).is_some();
        let hook = match line(SOCK_TPS[1].0).map(|l| l.split_once(" -> tail call from ")) {
            Some(Some((_, by))) if tcp_send => {
                format!("socket tracepoints, run from {by}, and tcp_sendmsg_locked")
            }
            Some(Some((_, by))) => format!("socket tracepoints, run from {by}"),
            Some(None) if tcp_send => "socket tracepoints and tcp_sendmsg_locked".to_string(),
            Some(None) => "socket tracepoints".to_string(),
            None if line("fsa_sys_exit").is_some() => "tp_btf/sys_exit".to_string(),
            None => "syscall tracepoints".to_string(),
        };
        Some(hook)
    }

    /// What is attached, one `program -> hook` line each (for `flowscope status`).
    pub fn attached(&self) -> &[String] {
        &self.attached
    }

    /// Takes the ring of [`crate::SockEvent`] records. Call once; "proc-only" has no ring.
    pub fn take_ring(&mut self) -> Result<SingleMapRing, AttributionError> {
        let name = self.method.as_str();
        if self.ring_taken {
            return Err(AttributionError::NoRing(name));
        }
        let ebpf = self.ebpf.as_mut().ok_or(AttributionError::NoRing(name))?;
        let map = ebpf
            .take_map("events")
            .ok_or(AttributionError::NoRing(name))?;
        self.ring_taken = true;
        Ok(SingleMapRing::new(map, "attribution events")?)
    }

    /// Kernel-side counters summed over CPUs (events written, ring-full losses, ...).
    pub fn kernel_counters(&self) -> Vec<(&'static str, u64)> {
        let Some(ebpf) = self.ebpf.as_ref() else {
            return Vec::new();
        };
        let Some(map) = ebpf.map("counters") else {
            return Vec::new();
        };
        let Ok(arr) = PerCpuArray::<_, u64>::try_from(map) else {
            return Vec::new();
        };
        KERNEL_COUNTERS
            .iter()
            .map(|&(i, name)| {
                let v = arr.get(&i, 0).map(|v| v.iter().sum()).unwrap_or(0);
                (name, v)
            })
            .collect()
    }
}
