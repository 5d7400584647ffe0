//! Loading the capture programs and attaching them: TC (TCX or clsact) and the AF_PACKET socket
//! filter. Everything attached is owned by [`KernelCapture`] and detached when it is dropped.

use std::{
    collections::HashMap,
    fs, io,
    net::IpAddr,
    os::fd::{AsFd, FromRawFd, OwnedFd},
    path::PathBuf,
};

use aya::{
    maps::{
        lpm_trie::{Key, LpmTrie},
        HashMap as BpfHashMap, PerCpuArray,
    },
    programs::{
        tc::{self, NlOptions, SchedClassifierLinkId, TcAttachOptions},
        LinkOrder, ProgramError, SchedClassifier, SocketFilter, TcAttachType,
    },
    Ebpf, EbpfLoader,
};
use ebpf_ring::SingleMapRing;
use tracing::{debug, info, warn};

use crate::{
    body_skip::BodySkip,
    error::CaptureError,
    iface::Interface,
    reader_idle::ReaderIdle,
    wire::{port_bitmap, FilterCfg, L2Kind, IF_BITMAP_WORDS, KERNEL_COUNTERS, MAX_CAPTURE},
};

static CAPTURE_OBJ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/capture.bpf.o"));

/// Program names in the object; clsact filters carry them, which is how a later start finds the
/// filters a killed agent left behind.
pub const PROG_INGRESS: &str = "fs_tc_ingress";
/// See [`PROG_INGRESS`].
pub const PROG_EGRESS: &str = "fs_tc_egress";
const PROG_SOCKET: &str = "fs_socket";

/// How TC programs are attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcMode {
    /// TCX links where the kernel has them (6.6+), clsact otherwise.
    Auto,
    /// TCX links only.
    Tcx,
    /// A clsact qdisc with direct-action filters (netlink), on any kernel.
    Clsact,
}

/// What a TC attach used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcMethod {
    /// bpf_link of type TCX; goes away with the process.
    Tcx,
    /// clsact qdisc filter; outlives the process, so it is recorded in the state file.
    Clsact,
}

impl TcMethod {
    /// Short name for logs and status.
    pub fn as_str(self) -> &'static str {
        match self {
            TcMethod::Tcx => "tcx",
            TcMethod::Clsact => "clsact",
        }
    }
}

/// Settings fixed when the programs are loaded.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Payload bytes kept after the L4 header of each packet (capped at 8192 minus headers).
    pub snaplen: u32,
    /// Bytes of the ring buffer; rounded up to a power of two of at least one page.
    pub ring_bytes: u32,
    /// Wake the reader once per this many bytes written while it has not read them (when a
    /// record takes the unread bytes past a multiple of it), not on every record after that:
    /// each wakeup is a self-IPI on the sending CPU. 0 wakes it for every record it has not
    /// caught up with. A reader that sets it must also poll on a timer.
    pub wakeup_bytes: u32,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            snaplen: 512,
            ring_bytes: 8 << 20,
            wakeup_bytes: 0,
        }
    }
}

/// In-kernel filters; changeable while running with [`KernelCapture::set_filters`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filters {
    /// Keep only packets with one of these ports (either side); empty keeps all.
    pub allow_ports: Vec<u16>,
    /// Drop packets with one of these ports (either side): the agent's own traffic.
    pub deny_ports: Vec<u16>,
    /// Keep only packets whose source or destination is in one of these prefixes; empty keeps all.
    pub allow_cidrs: Vec<(IpAddr, u8)>,
}

struct TcAttachment {
    name: String,
    method: TcMethod,
    links: Vec<(TcAttachType, SchedClassifierLinkId)>,
    created_clsact: bool,
}

/// The loaded capture object and everything attached from it.
pub struct KernelCapture {
    ebpf: Ebpf,
    snaplen: u32,
    wakeup_bytes: u32,
    tc: HashMap<u32, TcAttachment>,
    sockets: Vec<OwnedFd>,
    state: StateFile,
}

impl std::fmt::Debug for KernelCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelCapture")
            .field("tc_ifaces", &self.tc.len())
            .field("sockets", &self.sockets.len())
            .finish()
    }
}

/// Keeps the end of a verifier log: the failing instruction and the reason are there, and the
/// full log can run to thousands of lines.
fn short_load_error(e: impl std::error::Error + Send + Sync + 'static) -> CaptureError {
    let hint = load_hint(&e);
    let full = e.to_string();
    let lines: Vec<&str> = full.lines().collect();
    let source: Box<dyn std::error::Error + Send + Sync> = if lines.len() > 8 {
        let tail = lines[lines.len() - 6..].join("\n");
        format!(
            "{} [... {} verifier lines ...]\n{tail}",
            lines[0],
            lines.len() - 7
        )
        .into()
    } else {
        Box::new(e)
    };
    CaptureError::Load { source, hint }
}

fn load_hint(e: &dyn std::error::Error) -> &'static str {
    let s = e.to_string();
    if s.contains("EPERM") || s.contains("Operation not permitted") || s.contains("permission") {
        "Run as root, or grant CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON"
    } else {
        "Check that the kernel has CONFIG_BPF_SYSCALL and a BPF ring buffer (5.8+)"
    }
}

impl KernelCapture {
    /// Loads the programs and maps into the kernel (nothing is attached yet).
    pub fn load(opts: &LoadOptions) -> Result<Self, CaptureError> {
        raise_memlock_limit();
        let ring = opts.ring_bytes.max(4096).next_power_of_two();
        let mut ebpf = EbpfLoader::new()
            .map_max_entries("events", ring)
            .load(CAPTURE_OBJ)
            .map_err(short_load_error)?;
        for name in [PROG_INGRESS, PROG_EGRESS] {
            let prog: &mut SchedClassifier = ebpf
                .program_mut(name)
                .ok_or(CaptureError::Missing("TC program"))?
                .try_into()
                .map_err(|_| CaptureError::Missing("TC program of the right type"))?;
            prog.load().map_err(short_load_error)?;
        }
        let sf: &mut SocketFilter = ebpf
            .program_mut(PROG_SOCKET)
            .ok_or(CaptureError::Missing("socket filter"))?
            .try_into()
            .map_err(|_| CaptureError::Missing("socket filter of the right type"))?;
        sf.load().map_err(short_load_error)?;
        let snaplen = opts.snaplen.clamp(1, MAX_CAPTURE);
        let mut me = Self {
            ebpf,
            snaplen,
            wakeup_bytes: opts.wakeup_bytes.min(opts.ring_bytes / 2),
            tc: HashMap::new(),
            sockets: Vec::new(),
            state: StateFile::new(),
        };
        me.set_filters(&Filters::default())?;
        Ok(me)
    }

    /// Takes the ring buffer the programs write to, mapped (its data pages once: see
    /// [`ebpf_ring`]). Call once.
    pub fn take_ring(&mut self) -> Result<SingleMapRing, CaptureError> {
        let map = self
            .ebpf
            .take_map("events")
            .ok_or(CaptureError::Missing("events ring"))?;
        Ok(SingleMapRing::new(map, "capture events")?)
    }

    /// Takes the table of body ranges the programs cut to headers (see [`BodySkip`]). Call
    /// once; without it, no range is ever set and every segment is captured as before.
    pub fn take_body_skip(&mut self) -> Result<BodySkip, CaptureError> {
        let ranges = self
            .ebpf
            .take_map("body_skip")
            .ok_or(CaptureError::Missing("body_skip map"))?;
        let live = self
            .ebpf
            .take_map("skip_live")
            .ok_or(CaptureError::Missing("skip_live map"))?;
        BodySkip::new(ranges, live)
    }

    /// Takes the flag through which the reader asks to be woken by the next record after a
    /// quiet spell (see [`ReaderIdle`]). Call once; without it, a quiet ring is read on the
    /// reader's own timer only.
    pub fn take_reader_idle(&mut self) -> Result<ReaderIdle, CaptureError> {
        let map = self
            .ebpf
            .take_map("reader_idle")
            .ok_or(CaptureError::Missing("reader_idle map"))?;
        ReaderIdle::new(map)
    }

    /// Replaces the in-kernel filters. Takes effect for the next packet.
    pub fn set_filters(&mut self, f: &Filters) -> Result<(), CaptureError> {
        let map_err = |map: &'static str| {
            move |e: aya::maps::MapError| CaptureError::Map {
                map,
                detail: e.to_string(),
            }
        };
        for (name, ports) in [("port_allow", &f.allow_ports), ("port_deny", &f.deny_ports)] {
            let mut m: aya::maps::Array<_, u64> = aya::maps::Array::try_from(
                self.ebpf
                    .map_mut(name)
                    .ok_or(CaptureError::Missing("port map"))?,
            )
            .map_err(map_err("port"))?;
            for (i, w) in (0u32..).zip(port_bitmap(ports)) {
                // Write only the words that change, so a reload leaves the others alone.
                if m.get(&i, 0).map_err(map_err("port"))? != w {
                    m.set(i, w, 0).map_err(map_err("port"))?;
                }
            }
        }
        {
            let mut t4: LpmTrie<_, [u8; 4], u8> = LpmTrie::try_from(
                self.ebpf
                    .map_mut("cidr4_allow")
                    .ok_or(CaptureError::Missing("cidr4 map"))?,
            )
            .map_err(map_err("cidr4_allow"))?;
            let old: Vec<Key<[u8; 4]>> = t4.keys().filter_map(Result::ok).collect();
            for k in &old {
                t4.remove(k).map_err(map_err("cidr4_allow"))?;
            }
            for (ip, len) in &f.allow_cidrs {
                if let IpAddr::V4(a) = ip {
                    t4.insert(&Key::new(u32::from(*len.min(&32)), a.octets()), 1, 0)
                        .map_err(map_err("cidr4_allow"))?;
                }
            }
        }
        {
            let mut t6: LpmTrie<_, [u8; 16], u8> = LpmTrie::try_from(
                self.ebpf
                    .map_mut("cidr6_allow")
                    .ok_or(CaptureError::Missing("cidr6 map"))?,
            )
            .map_err(map_err("cidr6_allow"))?;
            let old: Vec<Key<[u8; 16]>> = t6.keys().filter_map(Result::ok).collect();
            for k in &old {
                t6.remove(k).map_err(map_err("cidr6_allow"))?;
            }
            for (ip, len) in &f.allow_cidrs {
                if let IpAddr::V6(a) = ip {
                    t6.insert(&Key::new(u32::from(*len.min(&128)), a.octets()), 1, 0)
                        .map_err(map_err("cidr6_allow"))?;
                }
            }
        }
        let cfg = FilterCfg {
            port_allow_on: !f.allow_ports.is_empty(),
            cidr_allow_on: !f.allow_cidrs.is_empty(),
            snaplen: self.snaplen,
            wakeup_bytes: self.wakeup_bytes,
        };
        let mut arr: aya::maps::Array<_, [u8; 16]> = aya::maps::Array::try_from(
            self.ebpf
                .map_mut("filter_cfg")
                .ok_or(CaptureError::Missing("filter_cfg map"))?,
        )
        .map_err(map_err("filter_cfg"))?;
        arr.set(0, cfg.to_bytes(), 0)
            .map_err(map_err("filter_cfg"))?;
        Ok(())
    }

    /// Tells the programs how frames on `iface` start (only raw-IP devices need an entry).
    fn set_l2(&mut self, iface: &Interface) -> Result<(), CaptureError> {
        let mut m: BpfHashMap<_, u32, u8> = BpfHashMap::try_from(
            self.ebpf
                .map_mut("if_l2")
                .ok_or(CaptureError::Missing("if_l2 map"))?,
        )
        .map_err(|e| CaptureError::Map {
            map: "if_l2",
            detail: e.to_string(),
        })?;
        let v = match iface.l2 {
            L2Kind::Ethernet => 0,
            L2Kind::RawIp => 1,
        };
        m.insert(iface.index, v, 0).map_err(|e| CaptureError::Map {
            map: "if_l2",
            detail: e.to_string(),
        })?;
        if iface.index >= IF_BITMAP_WORDS * 64 {
            return Ok(());
        }
        let map_err = |e: aya::maps::MapError| CaptureError::Map {
            map: "if_raw_ip",
            detail: e.to_string(),
        };
        let mut bits: aya::maps::Array<_, u64> = aya::maps::Array::try_from(
            self.ebpf
                .map_mut("if_raw_ip")
                .ok_or(CaptureError::Missing("if_raw_ip map"))?,
        )
        .map_err(map_err)?;
        let word = iface.index / 64;
        let bit = 1u64 << (iface.index % 64);
        let old = bits.get(&word, 0).map_err(map_err)?;
        let new = if v == 1 { old | bit } else { old & !bit };
        bits.set(word, new, 0).map_err(map_err)
    }

    /// Whether `ifindex` has our TC programs.
    pub fn is_attached(&self, ifindex: u32) -> bool {
        self.tc.contains_key(&ifindex)
    }

    /// Interfaces with TC programs attached, with the method used.
    pub fn attached(&self) -> Vec<(String, TcMethod)> {
        let mut v: Vec<_> = self
            .tc
            .values()
            .map(|a| (a.name.clone(), a.method))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Attaches the ingress and egress classifiers to `iface`.
    pub fn attach_tc(&mut self, iface: &Interface, mode: TcMode) -> Result<TcMethod, CaptureError> {
        if let Some(a) = self.tc.get(&iface.index) {
            return Ok(a.method);
        }
        self.set_l2(iface)?;
        let method = match mode {
            TcMode::Tcx => TcMethod::Tcx,
            TcMode::Clsact => TcMethod::Clsact,
            TcMode::Auto if tcx_supported() => TcMethod::Tcx,
            TcMode::Auto => TcMethod::Clsact,
        };
        let mut created_clsact = false;
        if method == TcMethod::Clsact {
            match tc::qdisc_add_clsact(&iface.name) {
                Ok(()) => created_clsact = true,
                Err(tc::TcError::NetlinkError(e)) if e.raw_os_error() == Some(libc::EEXIST) => {}
                Err(e) => {
                    return Err(CaptureError::Attach {
                        iface: iface.name.clone(),
                        method: "clsact",
                        detail: format!("adding the clsact qdisc: {e}"),
                        hint: hint_of(&e.to_string()),
                    })
                }
            }
            // Record before attaching: if we die between here and a clean exit, the next start
            // knows what to remove.
            self.state.record(&iface.name, created_clsact);
        }
        let mut att = TcAttachment {
            name: iface.name.clone(),
            method,
            links: Vec::new(),
            created_clsact,
        };
        for (prog_name, at) in [
            (PROG_INGRESS, TcAttachType::Ingress),
            (PROG_EGRESS, TcAttachType::Egress),
        ] {
            let prog: &mut SchedClassifier = self
                .ebpf
                .program_mut(prog_name)
                .expect("loaded")
                .try_into()
                .expect("checked at load");
            let opts = match method {
                TcMethod::Tcx => TcAttachOptions::TcxOrder(LinkOrder::default()),
                TcMethod::Clsact => TcAttachOptions::Netlink(NlOptions::default()),
            };
            match prog.attach_with_options(&iface.name, at, opts) {
                Ok(id) => att.links.push((at, id)),
                Err(e) => {
                    let detail = describe(&e);
                    // Undo the half we did.
                    self.detach_one(att);
                    return Err(CaptureError::Attach {
                        iface: iface.name.clone(),
                        method: method.as_str(),
                        hint: hint_of(&detail),
                        detail,
                    });
                }
            }
        }
        debug!(iface = %iface.name, method = method.as_str(), "attached TC programs");
        self.tc.insert(iface.index, att);
        Ok(method)
    }

    /// Detaches from one interface (e.g. it went down). Errors are logged: the interface may be
    /// gone already, which detaches everything by itself.
    pub fn detach_tc(&mut self, ifindex: u32) {
        if let Some(att) = self.tc.remove(&ifindex) {
            self.detach_one(att);
        }
    }

    fn detach_one(&mut self, att: TcAttachment) {
        for (at, id) in att.links {
            let name = if at == TcAttachType::Ingress {
                PROG_INGRESS
            } else {
                PROG_EGRESS
            };
            let prog: &mut SchedClassifier = self
                .ebpf
                .program_mut(name)
                .expect("loaded")
                .try_into()
                .expect("checked at load");
            if let Err(e) = prog.detach(id) {
                debug!(iface = %att.name, "detach {name}: {}", describe(&e));
            }
        }
        if att.method == TcMethod::Clsact {
            if att.created_clsact {
                if let Err(e) = crate::qdisc::delete_clsact(&att.name) {
                    if e.raw_os_error() != Some(libc::ENODEV)
                        && e.raw_os_error() != Some(libc::ENOENT)
                    {
                        warn!(iface = %att.name, "removing the clsact qdisc we added failed: {e}");
                    }
                }
            }
            self.state.forget(&att.name);
        }
    }

    /// Opens an AF_PACKET socket (all interfaces, or `iface`) with the capture socket filter
    /// attached. The socket never queues data: the filter writes to the ring and returns 0.
    pub fn attach_socket(&mut self, iface: Option<&Interface>) -> Result<(), CaptureError> {
        if let Some(i) = iface {
            self.set_l2(i)?;
        } else {
            for i in crate::iface::all().unwrap_or_default() {
                if i.l2 != L2Kind::Ethernet {
                    self.set_l2(&i)?;
                }
            }
        }
        let sock = crate::afpacket::open_packet_socket(iface.map(|i| i.index))?;
        let sf: &SocketFilter = self
            .ebpf
            .program(PROG_SOCKET)
            .ok_or(CaptureError::Missing("socket filter"))?
            .try_into()
            .map_err(|_| CaptureError::Missing("socket filter of the right type"))?;
        sf.attach(sock.as_fd()).map_err(|e| CaptureError::Socket {
            what: "SO_ATTACH_BPF on the AF_PACKET socket",
            hint: hint_of(&describe(&e)),
            source: io::Error::other(describe(&e)),
        })?;
        self.sockets.push(sock);
        Ok(())
    }

    /// Records a new interface's framing for the socket-filter path.
    pub fn note_interface(&mut self, iface: &Interface) -> Result<(), CaptureError> {
        self.set_l2(iface)
    }

    /// Sums the per-CPU kernel counters: `(metric name, value)`.
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        let Some(map) = self.ebpf.map("counters") else {
            return Vec::new();
        };
        let Ok(arr) = PerCpuArray::<_, u64>::try_from(map) else {
            return Vec::new();
        };
        KERNEL_COUNTERS
            .iter()
            .map(|(i, name)| (*name, arr.get(i, 0).map(|v| v.iter().sum()).unwrap_or(0)))
            .collect()
    }

    /// Runs the ingress (`ingress`) or egress TC program once on `frame`, an Ethernet frame,
    /// through `BPF_PROG_TEST_RUN`, as TC would hand it over on an Ethernet interface: its
    /// record goes to the ring and its counters count. For tests of the programs' own rules
    /// (body skipping's cuts, and a SYN or RST deleting its sender's range) on exact packets,
    /// with no interface attached.
    ///
    /// # Errors
    /// [`CaptureError::Missing`] without the program; [`CaptureError::TestRun`] when the
    /// kernel refuses the run (not root, or a frame shorter than an Ethernet header).
    pub fn run_tc_once(&self, ingress: bool, frame: &[u8]) -> Result<(), CaptureError> {
        use aya::programs::{TestRun, TestRunOptions};
        let name = if ingress { PROG_INGRESS } else { PROG_EGRESS };
        let prog: &SchedClassifier = self
            .ebpf
            .program(name)
            .ok_or(CaptureError::Missing("TC program"))?
            .try_into()
            .map_err(|_| CaptureError::Missing("TC program of the right type"))?;
        let opts = TestRunOptions {
            data_in: Some(frame),
            ..TestRunOptions::default()
        };
        prog.test_run(opts)
            .map(|_| ())
            .map_err(|e| CaptureError::TestRun {
                program: name,
                detail: e.to_string(),
            })
    }

    /// Detaches everything; also done on drop.
    pub fn detach_all(&mut self) {
        let idx: Vec<u32> = self.tc.keys().copied().collect();
        for i in idx {
            self.detach_tc(i);
        }
        self.sockets.clear();
    }
}

impl Drop for KernelCapture {
    fn drop(&mut self) {
        self.detach_all();
    }
}

fn describe(e: &ProgramError) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

fn hint_of(detail: &str) -> &'static str {
    if detail.contains("EPERM")
        || detail.contains("Operation not permitted")
        || detail.contains("os error 1)")
    {
        " — run as root or grant CAP_BPF and CAP_NET_ADMIN"
    } else if detail.contains("No such device") || detail.contains("os error 19") {
        " — the interface went away"
    } else {
        ""
    }
}

/// TCX (bpf_mprog) arrived in Linux 6.6.
pub fn tcx_supported() -> bool {
    aya::util::KernelVersion::current()
        .map(|v| v >= aya::util::KernelVersion::new(6, 6, 0))
        .unwrap_or(false)
}

/// Before 5.11 BPF memory counted against RLIMIT_MEMLOCK; raise it so maps fit there too.
fn raise_memlock_limit() {
    let lim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit with a valid struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) } != 0 {
        debug!(
            "raising RLIMIT_MEMLOCK failed: {}",
            io::Error::last_os_error()
        );
    }
}

/// Remembers which interfaces have clsact filters of ours (they outlive the process), keyed by
/// network namespace so agents in different namespaces don't touch each other's.
struct StateFile {
    path: PathBuf,
    entries: Vec<(String, bool)>,
}

/// Directory for the agent's runtime state.
pub const RUN_DIR: &str = "/run/flowscope";

fn netns_id() -> String {
    fs::metadata("/proc/self/ns/net")
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m).to_string())
        .unwrap_or_else(|_| "unknown".into())
}

impl StateFile {
    fn new() -> Self {
        Self {
            path: PathBuf::from(RUN_DIR).join(format!("clsact-{}.state", netns_id())),
            entries: Vec::new(),
        }
    }

    fn write(&self) {
        if self.entries.is_empty() {
            let _ = fs::remove_file(&self.path);
            return;
        }
        let body: String = self
            .entries
            .iter()
            .map(|(n, c)| format!("{n} {}\n", u8::from(*c)))
            .collect();
        if let Err(e) = fs::create_dir_all(RUN_DIR).and_then(|_| fs::write(&self.path, body)) {
            warn!(
                "cannot record clsact state in {}: {e}; a crash would leave filters behind",
                self.path.display()
            );
        }
    }

    fn record(&mut self, iface: &str, created: bool) {
        self.entries.retain(|(n, _)| n != iface);
        self.entries.push((iface.to_string(), created));
        self.write();
    }

    fn forget(&mut self, iface: &str) {
        self.entries.retain(|(n, _)| n != iface);
        self.write();
    }
}

/// What [`cleanup_stale`] removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct StaleCleanup {
    /// `iface/direction` of clsact filters removed.
    pub filters: Vec<String>,
    /// Interfaces whose clsact qdisc (added by a previous agent) was removed.
    pub qdiscs: Vec<String>,
}

/// Removes what an agent that did not exit cleanly (SIGKILL, power loss of the process) left in
/// this network namespace: clsact filters named like ours on any interface, and clsact qdiscs a
/// previous run recorded as its own. TCX links need nothing: they die with their process.
pub fn cleanup_stale() -> StaleCleanup {
    let mut done = StaleCleanup::default();
    let state = StateFile::new();
    let recorded: Vec<(String, bool)> = fs::read_to_string(&state.path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (n, c) = l.split_once(' ')?;
            Some((n.to_string(), c == "1"))
        })
        .collect();
    for i in crate::iface::all().unwrap_or_default() {
        for (at, name, dir) in [
            (TcAttachType::Ingress, PROG_INGRESS, "ingress"),
            (TcAttachType::Egress, PROG_EGRESS, "egress"),
        ] {
            if tc::qdisc_detach_program(&i.name, at, name).is_ok() {
                done.filters.push(format!("{}/{dir}", i.name));
            }
        }
    }
    for (name, created) in recorded {
        if created && crate::qdisc::delete_clsact(&name).is_ok() {
            done.qdiscs.push(name);
        }
    }
    let _ = fs::remove_file(&state.path);
    if !done.filters.is_empty() || !done.qdiscs.is_empty() {
        info!(filters = ?done.filters, qdiscs = ?done.qdiscs, "removed TC state left by an earlier agent that did not exit cleanly");
    }
    done
}

/// Takes ownership of a descriptor a libc call returned, or the call's errno when it failed.
pub(crate) fn owned(raw: i32) -> io::Result<OwnedFd> {
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: raw is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}
