//! Loading the TLS programs, attaching them to each TLS library file found, detaching them.
//!
//! Everything attached is owned by [`TlsProbes`]: links are dropped (detached) when the last
//! process mapping a library is gone, and all of them when `TlsProbes` is dropped. Nothing is
//! pinned, nothing outlives the agent. A probe that cannot be placed is logged, counted and
//! shown in `flowscope status`; it never stops the agent.

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    sync::Arc,
};

use aya::{
    maps::{PerCpuArray, ProgramArray},
    programs::{
        uprobe::{UProbeAttachLocation, UProbeLink, UProbeScope},
        BtfTracePoint, FEntry, KProbe, ProgramFd, TracePoint, UProbe,
    },
    Btf, Ebpf, EbpfLoader,
};
use ebpf_ring::{RingMapping, SingleMapRing};
use tracing::{debug, info, warn};

use crate::{
    error::{chain, TlsProbeError},
    libraries::{
        executable_file, scan_all, scan_process, FileId, MappedLibrary, ProcessLibraries,
        TlsLibraryKind,
    },
    wire::KERNEL_COUNTERS,
};

mod go_attach;

static OBJ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/openssl.bpf.o"));

/// Prefix of every program name in the object (`bpftool prog show` finds them by it).
pub const PROGRAM_PREFIX: &str = "fst_";

/// (program, OpenSSL symbol, required): entry and return probes of the four calls. The `_ex`
/// forms exist from OpenSSL 1.1.1 on; without them a library is still hooked.
const OPENSSL_PROBES: &[(&str, &str, bool)] = &[
    ("fst_write", "SSL_write", true),
    ("fst_write_ret", "SSL_write", true),
    ("fst_read", "SSL_read", true),
    ("fst_read_ret", "SSL_read", true),
    ("fst_write_ex", "SSL_write_ex", false),
    ("fst_write_ex_ret", "SSL_write_ex", false),
    ("fst_read_ex", "SSL_read_ex", false),
    ("fst_read_ex_ret", "SSL_read_ex", false),
];

/// The file offset of each of `symbols` in the library file (`None`: not defined there),
/// streamed through fixed buffers ([`crate::elf_symbols`]). aya's attach by symbol name maps
/// the file and walks its whole symbol tables once per probe: node's are 30+ MiB
/// (BENCHMARKS.md "Bounded executable scans"). Same answer as aya's: the dynamic symbols
/// first, the address translated through its section.
fn symbol_offsets(lib: &MappedLibrary, symbols: &[&str]) -> Result<Vec<Option<u64>>, String> {
    let file = std::fs::File::open(&lib.reach).map_err(|e| e.to_string())?;
    let scan = crate::elf_symbols::scan(&file, symbols).map_err(|e| e.to_string())?;
    Ok((0..symbols.len())
        .map(|i| scan.definition(i).and_then(|d| d.file_offset))
        .collect())
}

/// Loads program `name` and attaches it to the `sched:{tracepoint}` tracepoint; the error says
/// why not, for a warning (both users work on without it).
fn attach_sched(ebpf: &mut Ebpf, name: &'static str, tracepoint: &str) -> Result<(), String> {
    let p: &mut TracePoint = program(ebpf, name).map_err(|e| e.to_string())?;
    p.load().map_err(|e| chain(&e))?;
    p.attach("sched", tracepoint).map_err(|e| chain(&e))?;
    Ok(())
}

/// How an SSL call is tied to the socket its TLS records went over (openssl.bpf.c): programs
/// that see the `struct sock` of each socket send/receive on a thread inside a call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SocketLink {
    /// The first of the links below the kernel has.
    #[default]
    Auto,
    /// `tp_btf/sock_send_length` and `sock_recv_length` (kernels from ~6.3).
    SockTracepoints,
    /// fentry on `tcp_sendmsg` and `tcp_recvmsg` (kernels with BPF trampolines, e.g. 6.1).
    TcpFentry,
    /// kprobes on `tcp_sendmsg` and `tcp_recvmsg` (no trampolines: kernels without ftrace;
    /// reads the socket with `bpf_probe_read_kernel`, so not under lockdown=confidentiality).
    TcpKprobe,
}

impl SocketLink {
    /// Name in logs and status counters.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::SockTracepoints => "tp_btf/sock_send_length+sock_recv_length",
            Self::TcpFentry => "fentry/tcp_sendmsg+tcp_recvmsg",
            Self::TcpKprobe => "kprobe/tcp_sendmsg+tcp_recvmsg",
        }
    }

    /// Parses the names `auto`, `tracepoints`, `fentry`, `kprobe` (FLOWSCOPE_TLS_SOCKET_LINK).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "auto" => Some(Self::Auto),
            "tracepoints" => Some(Self::SockTracepoints),
            "fentry" => Some(Self::TcpFentry),
            "kprobe" => Some(Self::TcpKprobe),
            _ => None,
        }
    }

    /// (program, kernel tracepoint or function) of this link.
    fn programs(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Auto => &[],
            Self::SockTracepoints => &[
                ("fst_sock_send", "sock_send_length"),
                ("fst_sock_recv", "sock_recv_length"),
            ],
            Self::TcpFentry => &[
                ("fst_tcp_send", "tcp_sendmsg"),
                ("fst_tcp_recv", "tcp_recvmsg"),
            ],
            Self::TcpKprobe => &[
                ("fst_tcp_send_kp", "tcp_sendmsg"),
                ("fst_tcp_recv_kp", "tcp_recvmsg"),
            ],
        }
    }
}

/// Settings for [`TlsProbes::start`].
#[derive(Clone, Debug)]
pub struct TlsProbesOptions {
    /// Bytes of the event ring; rounded up to a power of two of at least one page.
    pub ring_bytes: u32,
    /// 0: the ring wakes its reader on every record. N: once per N bytes written and not yet
    /// read (the reader must also drain it on a timer).
    pub wakeup_batch_bytes: u32,
    /// Where /proc is (a container mounts the host's elsewhere).
    pub proc_root: PathBuf,
    /// Which socket link to use; [`SocketLink::Auto`] but to test a kernel's fallback.
    pub socket_link: SocketLink,
}

impl Default for TlsProbesOptions {
    fn default() -> Self {
        Self {
            ring_bytes: 8 << 20,
            wakeup_batch_bytes: 0,
            proc_root: PathBuf::from("/proc"),
            socket_link: SocketLink::Auto,
        }
    }
}

/// One library file and what was attached to it.
struct HookedFile {
    path: String,
    links: Vec<UProbeLink>,
    /// Why it is not (fully) hooked; empty when all is well.
    detail: String,
    /// A Go executable's slot in `go_layouts`.
    go_slot: Option<u32>,
}

/// One process's TLS library, for `flowscope status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LibraryStatus {
    /// Process id.
    pub pid: u32,
    /// Its comm.
    pub comm: String,
    /// The library's path in the process's mount namespace.
    pub library: String,
    /// "openssl 3", "gnutls", ...
    pub kind: String,
    /// The plaintext through it is read.
    pub hooked: bool,
    /// Why not, or what is missing (e.g. no `_ex` functions); empty when all is well.
    pub detail: String,
}

/// The loaded TLS programs and the library files they are attached to.
pub struct TlsProbes {
    ebpf: Ebpf,
    opts: TlsProbesOptions,
    files: HashMap<FileId, HookedFile>,
    processes: BTreeMap<u32, ProcessLibraries>,
    /// What each executable file carries (read once per file).
    executables: HashMap<FileId, Option<TlsLibraryKind>>,
    /// The agent's own executable: never read. Its CLI runs (`flowscope status`, a monitoring
    /// script's every few seconds) made the agent read its 5 MiB symbol tables again after
    /// each full rescan, a transient of as much in its heap (BENCHMARKS.md "Soak memory
    /// under 50 MB"); its own TLS is rustls, which is not hooked.
    own_executable: Option<FileId>,
    /// The link in use, or why none is.
    socket_link: Result<SocketLink, String>,
    exec_hook: Result<(), String>,
    ring_taken: bool,
    exec_ring_taken: bool,
    /// The plaintext ring is mapped once a library is hooked (see [`TlsProbes::take_ring`]).
    plaintext_ring: Arc<RingMapping>,
    attach_failures: u64,
    detached_files: u64,
    go: go_attach::GoProbes,
}

impl std::fmt::Debug for TlsProbes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsProbes")
            .field("files", &self.files.len())
            .field("processes", &self.processes.len())
            .finish()
    }
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, TlsProbeError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program>,
{
    ebpf.program_mut(name)
        .ok_or(TlsProbeError::Missing(name))?
        .try_into()
        .map_err(|_| TlsProbeError::Missing("program of the expected type"))
}

fn load_err(program: &'static str) -> impl Fn(aya::programs::ProgramError) -> TlsProbeError {
    move |e| TlsProbeError::Load {
        program,
        detail: chain(&e),
    }
}

impl TlsProbes {
    /// Loads the programs and attaches the socket and exec hooks; no library is hooked until
    /// [`TlsProbes::rescan`]. The socket hooks failing is not fatal (plaintext then comes
    /// without its socket, counted), nor is the exec hook (new libraries are then found by
    /// the periodic rescan only).
    pub fn start(opts: &TlsProbesOptions) -> Result<Self, TlsProbeError> {
        let ring = opts.ring_bytes.max(4096).next_power_of_two();
        let wakeup = opts.wakeup_batch_bytes.min(ring / 2);
        let mut ebpf = EbpfLoader::new()
            .map_max_entries("events", ring)
            .override_global("cfg_wakeup_bytes", &wakeup, true)
            .load(OBJ)
            .map_err(|e| TlsProbeError::Load {
                program: "object",
                detail: chain(&e),
            })?;
        for &(name, _, _) in OPENSSL_PROBES {
            let p: &mut UProbe = program(&mut ebpf, name)?;
            p.load().map_err(load_err(name))?;
        }
        let go = go_attach::GoProbes::load(&mut ebpf);
        let socket_link = Self::attach_socket_link(&mut ebpf, opts.socket_link);
        match &socket_link {
            Ok(l) => info!(link = l.describe(), "TLS calls tied to their sockets"),
            Err(e) => {
                warn!("TLS plaintext will come without its socket (not joinable to flows): {e}")
            }
        }
        let exec_hook = attach_sched(&mut ebpf, "fst_exec", "sched_process_exec");
        if let Err(e) = &exec_hook {
            warn!("exec tracepoint unavailable ({e}); new TLS libraries are found by the periodic rescan only");
        }
        // Frees an exiting thread's slot in the socket tracepoints' gate (openssl.bpf.c,
        // `ssl_threads`). Without it the gate only fills up over time: every socket send and
        // receive of a thread whose slot was ever used pays two hash lookups again.
        if let Err(e) = attach_sched(&mut ebpf, "fst_thread_exit", "sched_process_exit") {
            warn!("exit tracepoint unavailable ({e}); threads that made SSL calls keep their socket-tracepoint slots");
        }
        Ok(Self {
            ebpf,
            opts: opts.clone(),
            files: HashMap::new(),
            processes: BTreeMap::new(),
            executables: HashMap::new(),
            own_executable: executable_file(&opts.proc_root, std::process::id()),
            socket_link,
            exec_hook,
            ring_taken: false,
            exec_ring_taken: false,
            plaintext_ring: Arc::default(),
            attach_failures: 0,
            detached_files: 0,
            go,
        })
    }

    /// Attaches the first socket link `want` allows that the kernel has: the socket
    /// tracepoints appeared around 6.3, so older kernels (Debian 12's 6.1) get fentry, and
    /// kernels without BPF trampolines kprobes.
    fn attach_socket_link(ebpf: &mut Ebpf, want: SocketLink) -> Result<SocketLink, String> {
        let btf = Btf::from_sys_fs().map_err(|e| format!("no kernel BTF: {e}"))?;
        let candidates: &[SocketLink] = match want {
            SocketLink::Auto => &[
                SocketLink::SockTracepoints,
                SocketLink::TcpFentry,
                SocketLink::TcpKprobe,
            ],
            SocketLink::SockTracepoints => &[SocketLink::SockTracepoints],
            SocketLink::TcpFentry => &[SocketLink::TcpFentry],
            SocketLink::TcpKprobe => &[SocketLink::TcpKprobe],
        };
        let mut why = Vec::new();
        for &link in candidates {
            match Self::attach_link(ebpf, &btf, link) {
                Ok(()) => return Ok(link),
                Err(e) => {
                    debug!(link = link.describe(), "socket link unavailable: {e}");
                    why.push(e);
                }
            }
        }
        Err(why.join("; "))
    }

    /// Loads and attaches both programs of `link`; on failure unloads what it loaded (the
    /// two halves are useless apart, and a half left attached would cost for nothing).
    fn attach_link(ebpf: &mut Ebpf, btf: &Btf, link: SocketLink) -> Result<(), String> {
        let mut done: Vec<&'static str> = Vec::new();
        let mut result = Ok(());
        for &(name, target) in link.programs() {
            done.push(name);
            if let Err(e) = Self::attach_link_program(ebpf, btf, link, name, target) {
                result = Err(format!("{}: {target}: {e}", link.describe()));
                break;
            }
        }
        if result.is_err() {
            for name in done {
                let _ = match link {
                    SocketLink::TcpFentry => program::<FEntry>(ebpf, name).map(|p| p.unload()),
                    SocketLink::TcpKprobe => program::<KProbe>(ebpf, name).map(|p| p.unload()),
                    _ => program::<BtfTracePoint>(ebpf, name).map(|p| p.unload()),
                };
            }
        }
        result
    }

    fn attach_link_program(
        ebpf: &mut Ebpf,
        btf: &Btf,
        link: SocketLink,
        name: &'static str,
        target: &'static str,
    ) -> Result<(), String> {
        let e = |e: aya::programs::ProgramError| chain(&e);
        match link {
            SocketLink::TcpFentry => {
                let p: &mut FEntry = program(ebpf, name).map_err(|e| e.to_string())?;
                p.load(target, btf).map_err(e)?;
                p.attach().map(drop).map_err(e)
            }
            SocketLink::TcpKprobe => {
                let p: &mut KProbe = program(ebpf, name).map_err(|e| e.to_string())?;
                p.load().map_err(e)?;
                p.attach(target, 0).map(drop).map_err(e)
            }
            _ => {
                let p: &mut BtfTracePoint = program(ebpf, name).map_err(|e| e.to_string())?;
                p.load(target, btf).map_err(e)?;
                p.attach().map(drop).map_err(e)
            }
        }
    }

    /// Scans every process's maps: hooks TLS library files not hooked yet, and unhooks those
    /// no process maps any more. Call at start-up and now and then (exec events cover most
    /// new processes: see [`TlsProbes::rescan_pid`]).
    pub fn rescan(&mut self) {
        let found = scan_all(&self.opts.proc_root, std::process::id());
        let found: Vec<ProcessLibraries> =
            found.into_iter().filter_map(|p| self.classify(p)).collect();
        // Forget executables nobody runs any more.
        self.executables.retain(|id, _| {
            found
                .iter()
                .any(|p| p.libraries.iter().any(|l| l.file == *id))
        });
        self.processes = found.into_iter().map(|p| (p.pid, p)).collect();
        let wanted: Vec<MappedLibrary> = self
            .processes
            .values()
            .flat_map(|p| p.libraries.iter().cloned())
            .collect();
        for lib in &wanted {
            self.hook(lib);
        }
        // Detach what nobody maps any more (its processes exited).
        let before = self.files.len();
        let go = &mut self.go;
        self.files.retain(|id, f| {
            let used = wanted.iter().any(|l| l.file == *id);
            if !used {
                debug!(library = %f.path, "no process maps it any more: detaching");
                if let Some(slot) = f.go_slot {
                    go.release(slot);
                }
            }
            used
        });
        self.detached_files += (before - self.files.len()) as u64;
    }

    /// Scans one process (one that just exec'd): hooks its TLS libraries if new.
    pub fn rescan_pid(&mut self, pid: u32) {
        if pid == std::process::id() {
            return;
        }
        if let Some(p) = scan_process(&self.opts.proc_root, pid).and_then(|p| self.classify(p)) {
            for lib in p.libraries.clone() {
                self.hook(&lib);
            }
            self.processes.insert(pid, p);
        }
    }

    /// Replaces the process's executable by what TLS it carries (or drops it); `None` when
    /// no TLS library is left.
    fn classify(&mut self, mut p: ProcessLibraries) -> Option<ProcessLibraries> {
        let executables = &mut self.executables;
        let own = self.own_executable;
        p.libraries.retain_mut(|lib| {
            if lib.kind != TlsLibraryKind::Executable {
                return true;
            }
            if Some(lib.file) == own {
                return false;
            }
            let kind = executables
                .entry(lib.file)
                .or_insert_with(|| crate::executable::classify(&lib.reach));
            match kind {
                Some(k) => {
                    lib.kind = k.clone();
                    true
                }
                None => false,
            }
        });
        (!p.libraries.is_empty()).then_some(p)
    }

    fn hook(&mut self, lib: &MappedLibrary) {
        if self.files.contains_key(&lib.file) {
            return;
        }
        let mut file = HookedFile {
            path: lib.path.clone(),
            links: Vec::new(),
            detail: String::new(),
            go_slot: None,
        };
        if let TlsLibraryKind::GoTls(exe) = &lib.kind {
            self.hook_go(lib, exe, &mut file);
        } else if let Some(why) = lib.kind.unsupported() {
            file.detail = why;
        } else {
            let mut missing = Vec::new();
            let symbols: Vec<&str> = OPENSSL_PROBES.iter().map(|&(_, s, _)| s).collect();
            let offsets = match symbol_offsets(lib, &symbols) {
                Ok(o) => o,
                Err(_) if !lib.reach.exists() => {
                    debug!(library = %lib.path, "process gone before its TLS library was hooked");
                    return;
                }
                Err(e) => {
                    self.attach_failures += 1;
                    warn!(library = %lib.path, "TLS library not hooked: its symbols: {e}");
                    file.detail = format!("its symbols: {e}");
                    self.files.insert(lib.file, file);
                    return;
                }
            };
            for (&(name, symbol, required), offset) in OPENSSL_PROBES.iter().zip(offsets) {
                match self.attach_one(name, symbol, offset, lib) {
                    Ok(link) => file.links.push(link),
                    Err(_) if required && !lib.reach.exists() => {
                        // The process that showed us this file is gone (its /proc entry with
                        // it): another process mapping the file will show it again.
                        debug!(library = %lib.path, "process gone before its TLS library was hooked");
                        return;
                    }
                    Err(e) if required => {
                        self.attach_failures += 1;
                        warn!(library = %lib.path, "TLS probe {name} on {symbol} not placed: {e}");
                        file.links.clear();
                        file.detail = format!("{symbol}: {e}");
                        break;
                    }
                    Err(e) => {
                        debug!(library = %lib.path, "optional TLS probe {name} on {symbol} not placed: {e}");
                        if !missing.contains(&symbol) {
                            missing.push(symbol);
                        }
                    }
                }
            }
            if file.detail.is_empty() && !missing.is_empty() {
                file.detail = format!(
                    "no {} in it (OpenSSL before 1.1.1, or left out by a static link)",
                    missing.join(", ")
                );
            }
            if !file.links.is_empty() {
                info!(library = %lib.path, kind = %lib.kind.describe(), probes = file.links.len(), "TLS library hooked");
            }
        }
        if !file.links.is_empty() {
            self.plaintext_ring.want();
        }
        self.files.insert(lib.file, file);
    }

    /// Attaches program `name` at `symbol`'s file offset (from [`symbol_offsets`]), so aya
    /// does not map and parse the file to find it.
    fn attach_one(
        &mut self,
        name: &'static str,
        symbol: &str,
        offset: Option<u64>,
        lib: &MappedLibrary,
    ) -> Result<UProbeLink, String> {
        let offset = offset.ok_or_else(|| format!("no definition of {symbol} in it"))?;
        let p: &mut UProbe = program(&mut self.ebpf, name).map_err(|e| e.to_string())?;
        let id = p
            .attach(
                UProbeAttachLocation::AbsoluteOffset(offset),
                &lib.reach,
                UProbeScope::AllProcesses,
            )
            .map_err(|e| chain(&e))?;
        p.take_link(id).map_err(|e| chain(&e))
    }

    /// Per process that maps a TLS library: which, and whether its plaintext is read.
    pub fn status(&self) -> Vec<LibraryStatus> {
        let socket_note = self.socket_link.as_ref().err();
        let mut out = Vec::new();
        for p in self.processes.values() {
            for lib in &p.libraries {
                let (hooked, mut detail) = match self.files.get(&lib.file) {
                    Some(f) => (!f.links.is_empty(), f.detail.clone()),
                    None => (false, "not scanned yet".to_string()),
                };
                // Go's probes find the socket by its descriptor, without the socket hooks.
                let go = matches!(lib.kind, TlsLibraryKind::GoTls(_));
                if let (true, false, Some(why)) = (hooked, go, socket_note) {
                    detail = format!("plaintext not tied to sockets: {why}");
                }
                out.push(LibraryStatus {
                    pid: p.pid,
                    comm: p.comm.clone(),
                    library: lib.path.clone(),
                    kind: lib.kind.describe(),
                    hooked,
                    detail,
                });
            }
        }
        out
    }

    /// Library files with probes attached.
    pub fn hooked_files(&self) -> usize {
        self.files.values().filter(|f| !f.links.is_empty()).count()
    }

    /// The link tying calls to their sockets, or why there is none.
    pub fn socket_link(&self) -> Result<SocketLink, &str> {
        self.socket_link.as_ref().copied().map_err(String::as_str)
    }

    /// Runs `send` and `recv`, another module's programs loaded for `tp_btf/sock_send_length`
    /// and `tp_btf/sock_recv_length` (process attribution's), at the end of this module's
    /// programs on those tracepoints, by tail call (openssl.bpf.c, `sock_send_next`): each
    /// socket send or receive on the node then pays one program dispatch for both. The
    /// caller detaches its own attachment of them only after this succeeds.
    ///
    /// Errors: [`TlsProbeError::NotChainable`] without the socket-tracepoint link (kernels
    /// before ~6.3, or a forced other link); [`TlsProbeError::Map`] when the kernel refuses a
    /// program (not of the same tracepoint). Nothing stays chained on error.
    pub fn chain_sock_io(
        &mut self,
        send: &ProgramFd,
        recv: &ProgramFd,
    ) -> Result<(), TlsProbeError> {
        if self.socket_link != Ok(SocketLink::SockTracepoints) {
            let why = match &self.socket_link {
                Ok(l) => format!("socket link {}", l.describe()),
                Err(e) => e.clone(),
            };
            return Err(TlsProbeError::NotChainable(why));
        }
        let mut set = Vec::new();
        for (map, fd) in [("sock_send_next", send), ("sock_recv_next", recv)] {
            let result = self
                .ebpf
                .map_mut(map)
                .ok_or(TlsProbeError::Missing(map))
                .and_then(|m| {
                    let mut a = ProgramArray::try_from(m).map_err(|e| TlsProbeError::Map {
                        map,
                        detail: chain(&e),
                    })?;
                    a.set(0, fd, 0).map_err(|e| TlsProbeError::Map {
                        map,
                        detail: chain(&e),
                    })
                });
            if let Err(e) = result {
                self.unchain(&set);
                return Err(e);
            }
            set.push(map);
        }
        Ok(())
    }

    /// Empties the named program arrays (best effort: used to undo a half-done chain).
    fn unchain(&mut self, maps: &[&'static str]) {
        for &map in maps {
            if let Some(m) = self.ebpf.map_mut(map) {
                if let Ok(mut a) = ProgramArray::try_from(m) {
                    let _ = a.clear_index(&0);
                }
            }
        }
    }

    /// Whether exec events come (else only the periodic rescan finds new libraries).
    pub fn exec_events(&self) -> bool {
        self.exec_hook.is_ok()
    }

    /// Takes the ring of plaintext [`crate::TlsEvent`] records. Call once. It is mapped (its
    /// pages count in RSS from then on) at the first read after a library file is hooked:
    /// until then no probe writes to it (BENCHMARKS.md "Soak memory under 50 MB").
    pub fn take_ring(&mut self) -> Result<SingleMapRing, TlsProbeError> {
        if self.ring_taken {
            return Err(TlsProbeError::NoRing);
        }
        let map = self.ebpf.take_map("events").ok_or(TlsProbeError::NoRing)?;
        self.ring_taken = true;
        Ok(SingleMapRing::deferred(
            map,
            "TLS events",
            self.plaintext_ring.clone(),
        )?)
    }

    /// Whether the plaintext ring is mapped (a TLS library was hooked).
    pub fn plaintext_ring_mapped(&self) -> bool {
        self.plaintext_ring.is_mapped()
    }

    /// Takes the ring of exec records ([`crate::TlsEventKind::Exec`]), small and mapped now;
    /// read it on a timer (it wakes no one). Call once.
    pub fn take_exec_ring(&mut self) -> Result<SingleMapRing, TlsProbeError> {
        if self.exec_ring_taken {
            return Err(TlsProbeError::NoRing);
        }
        let map = self.ebpf.take_map("execs").ok_or(TlsProbeError::NoRing)?;
        self.exec_ring_taken = true;
        Ok(SingleMapRing::new(map, "TLS execs")?)
    }

    /// Kernel-side counters summed over CPUs, and the loader's own.
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        let mut out: Vec<(&'static str, u64)> = vec![
            ("tls_libraries_hooked", self.hooked_files() as u64),
            ("tls_library_attach_failures", self.attach_failures),
            ("tls_libraries_detached", self.detached_files),
            // 1 once a library is hooked and the plaintext ring's pages are mapped.
            (
                "tls_plaintext_ring_mapped",
                u64::from(self.plaintext_ring.is_mapped()),
            ),
            (
                "tls_socket_link_unavailable",
                u64::from(self.socket_link.is_err()),
            ),
            // Which link ties calls to sockets: 1 on the one in use (see SocketLink).
            (
                "tls_socket_link_sock_tracepoints",
                u64::from(self.socket_link == Ok(SocketLink::SockTracepoints)),
            ),
            (
                "tls_socket_link_tcp_fentry",
                u64::from(self.socket_link == Ok(SocketLink::TcpFentry)),
            ),
            (
                "tls_socket_link_tcp_kprobe",
                u64::from(self.socket_link == Ok(SocketLink::TcpKprobe)),
            ),
        ];
        let arr = self
            .ebpf
            .map("counters")
            .and_then(|m| PerCpuArray::<_, u64>::try_from(m).ok());
        for &(i, name) in KERNEL_COUNTERS {
            let v = arr
                .as_ref()
                .and_then(|a| a.get(&i, 0).ok())
                .map(|v| v.iter().sum())
                .unwrap_or(0);
            out.push((name, v));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linked_in_openssl_probes_all_have_an_offset() {
        // The four calls and their `_ex` forms, each probe's symbol at the same offset as
        // its pair's.
        let exe = crate::test_executables::static_openssl();
        let lib = MappedLibrary {
            path: exe.display().to_string(),
            reach: exe,
            file: FileId { dev: 0, inode: 0 },
            kind: TlsLibraryKind::StaticOpenSsl { boring: false },
        };
        let symbols: Vec<&str> = OPENSSL_PROBES.iter().map(|&(_, s, _)| s).collect();
        let offsets = symbol_offsets(&lib, &symbols).unwrap();
        assert!(offsets.iter().all(Option::is_some), "{offsets:?}");
        for pair in offsets.chunks(2) {
            assert_eq!(pair[0], pair[1]);
        }
        let gone = MappedLibrary {
            reach: "/nonexistent/client".into(),
            ..lib
        };
        assert!(symbol_offsets(&gone, &symbols).is_err());
    }
}
