//! Hooking Go executables (bpf/gotls.bpf.c): an entry probe on `(*tls.Conn).Write` and
//! `Read`, a probe on each of their RET instructions (never a uretprobe: see the C file), and
//! the executable's field offsets in `go_layouts` under a slot the probes get as their attach
//! cookie.

use aya::{
    maps::Array,
    programs::uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeScope},
};
use tracing::{info, warn};

use super::{program, symbol_offsets, HookedFile, TlsProbes};
use crate::{
    error::chain,
    go::{GoCall, GoExecutable},
    libraries::MappedLibrary,
};

/// Entry programs by call, and the program placed on every RET.
const WRITE_ENTRY: &str = "fst_go_write";
const READ_ENTRY: &str = "fst_go_read";
const RETURN: &str = "fst_go_ret";

/// Slots of `go_layouts` (`FST_GO_LAYOUTS`): Go executables hooked at once.
const LAYOUT_SLOTS: u32 = 1024;

/// `struct go_layout` of gotls.bpf.c.
#[repr(C)]
#[derive(Clone, Copy)]
struct RawLayout {
    conn_data: u32,
    tcp_fd: u32,
    sysfd: u32,
    _pad: u32,
    tcp_close: u64,
}

// SAFETY: plain integers, no padding (4 × u32 then a u64 at offset 16), any bit pattern valid.
unsafe impl aya::Pod for RawLayout {}

/// The Go programs' state.
pub(super) struct GoProbes {
    /// Why the programs could not be loaded (bpf_get_attach_cookie needs Linux 5.15).
    loaded: Result<(), String>,
    /// Slots released by detached executables.
    free: Vec<u32>,
    /// Next never-used slot.
    next: u32,
}

impl GoProbes {
    /// Loads the Go programs; failing only leaves Go executables unhooked (status says why).
    pub(super) fn load(ebpf: &mut aya::Ebpf) -> Self {
        let loaded = [WRITE_ENTRY, READ_ENTRY, RETURN]
            .iter()
            .try_for_each(|&name| {
                let p: &mut aya::programs::UProbe =
                    program(ebpf, name).map_err(|e| e.to_string())?;
                p.load().map_err(|e| format!("{name}: {}", chain(&e)))
            });
        if let Err(e) = &loaded {
            warn!("Go crypto/tls probes unavailable: {e}");
        }
        Self {
            loaded,
            free: Vec::new(),
            next: 0,
        }
    }

    fn take_slot(&mut self) -> Option<u32> {
        if let Some(s) = self.free.pop() {
            return Some(s);
        }
        (self.next < LAYOUT_SLOTS).then(|| {
            self.next += 1;
            self.next - 1
        })
    }

    /// An executable's probes are gone: its slot can be reused.
    pub(super) fn release(&mut self, slot: u32) {
        self.free.push(slot);
    }
}

impl TlsProbes {
    /// Hooks one Go executable, or says in `file.detail` why not.
    pub(super) fn hook_go(
        &mut self,
        lib: &MappedLibrary,
        exe: &GoExecutable,
        file: &mut HookedFile,
    ) {
        let hooks = match &exe.hooks {
            Ok(h) => h,
            Err(why) => {
                file.detail = format!("{why}: its plaintext is not seen");
                return;
            }
        };
        if let Err(e) = &self.go.loaded {
            file.detail = format!("Go probes not loaded: {e}");
            return;
        }
        let Some(slot) = self.go.take_slot() else {
            file.detail = format!("more than {LAYOUT_SLOTS} Go executables hooked at once");
            return;
        };
        let l = hooks.layout;
        let written = self
            .ebpf
            .map_mut("go_layouts")
            .ok_or_else(|| "no go_layouts map".to_string())
            .and_then(|m| Array::<_, RawLayout>::try_from(m).map_err(|e| chain(&e)))
            .and_then(|mut a| {
                let raw = RawLayout {
                    conn_data: l.conn_data,
                    tcp_fd: l.tcp_fd,
                    sysfd: l.sysfd,
                    _pad: 0,
                    tcp_close: l.tcp_close,
                };
                a.set(slot, raw, 0).map_err(|e| chain(&e))
            });
        if let Err(e) = written {
            self.go.release(slot);
            file.detail = format!("go_layouts: {e}");
            return;
        }
        let symbols: Vec<&str> = hooks.functions.iter().map(|f| f.symbol).collect();
        let starts = match symbol_offsets(lib, &symbols) {
            Ok(s) => s,
            Err(e) => {
                self.attach_failures += 1;
                warn!(executable = %lib.path, "Go TLS probes not placed: its symbols: {e}");
                self.go.release(slot);
                file.detail = format!("its symbols: {e}");
                return;
            }
        };
        for (f, start) in hooks.functions.iter().zip(starts) {
            let entry = match f.call {
                GoCall::Write => WRITE_ENTRY,
                GoCall::Read => READ_ENTRY,
            };
            let points = std::iter::once((entry, 0)).chain(f.returns.iter().map(|&o| (RETURN, o)));
            for (name, offset) in points {
                match attach_at(&mut self.ebpf, name, (f.symbol, start), offset, slot, lib) {
                    Ok(link) => file.links.push(link),
                    Err(e) => {
                        self.attach_failures += 1;
                        warn!(executable = %lib.path, "Go TLS probe {name} on {}+{offset:#x} not placed: {e}", f.symbol);
                        file.links.clear();
                        self.go.release(slot);
                        file.detail = format!("{}+{offset:#x}: {e}", f.symbol);
                        return;
                    }
                }
            }
        }
        file.go_slot = Some(slot);
        file.detail = l.source.describe().to_string();
        info!(executable = %lib.path, version = %exe.version, offsets = l.source.describe(),
            probes = file.links.len(), "Go crypto/tls hooked");
    }
}

/// Attaches `name` at `offset` bytes into the function `symbol` starting at file offset
/// `start` (from [`symbol_offsets`]: aya attaching by symbol would map and parse the whole
/// executable once per probe, and a Go executable gets one per RET).
fn attach_at(
    ebpf: &mut aya::Ebpf,
    name: &'static str,
    (symbol, start): (&str, Option<u64>),
    offset: u64,
    slot: u32,
    lib: &MappedLibrary,
) -> Result<aya::programs::uprobe::UProbeLink, String> {
    let start = start.ok_or_else(|| format!("no definition of {symbol} in it"))?;
    let p: &mut aya::programs::UProbe = program(ebpf, name).map_err(|e| e.to_string())?;
    let point = UProbeAttachPoint {
        location: UProbeAttachLocation::AbsoluteOffset(start + offset),
        cookie: Some(u64::from(slot)),
    };
    let id = p
        .attach(point, &lib.reach, UProbeScope::AllProcesses)
        .map_err(|e| chain(&e))?;
    p.take_link(id).map_err(|e| chain(&e))
}
