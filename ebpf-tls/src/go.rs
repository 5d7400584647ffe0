//! Go executables: which Go built them, where the return instructions of
//! `crypto/tls.(*Conn).Read` and `Write` are, and where a `*tls.Conn` keeps its socket's
//! descriptor (bpf/gotls.bpf.c follows those offsets).
//!
//! Go programs are statically linked, so crypto/tls is hooked on the executable itself, by the
//! symbols of its `.symtab` (a stripped binary has none: it is named in status, not hooked).
//! Only Go >= 1.17 on amd64 is hooked: the probes read arguments and results from the
//! register ABI's registers and the goroutine from R14 (go.dev/s/regabi).

use object::{Object, ObjectSection, ObjectSymbol};

/// The two functions hooked, and their probes' kind.
pub const FUNCTIONS: &[(&str, GoCall)] = &[
    ("crypto/tls.(*Conn).Write", GoCall::Write),
    ("crypto/tls.(*Conn).Read", GoCall::Read),
];

/// Which call a function is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GoCall {
    /// `(*tls.Conn).Write`: plaintext the program sends.
    Write,
    /// `(*tls.Conn).Read`: plaintext the program receives.
    Read,
}

/// One hooked function: where it starts and its RET instructions.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GoFunction {
    /// Its symbol.
    pub symbol: &'static str,
    /// Which call.
    pub call: GoCall,
    /// Offsets of its RET instructions from the symbol's start.
    pub returns: Vec<u64>,
}

/// Where the socket's descriptor is, from a `*tls.Conn` (`struct go_layout` in gotls.bpf.c).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GoLayout {
    /// Offset in `tls.Conn` of the data word of its `conn net.Conn` interface.
    pub conn_data: u32,
    /// Offset in `net.TCPConn` of `net.conn.fd` (`*netFD`).
    pub tcp_fd: u32,
    /// Offset in `net.netFD` of `pfd.Sysfd`.
    pub sysfd: u32,
    /// Address of `net.(*TCPConn).Close`, the first method of the itab a `net.Conn` holding a
    /// `*net.TCPConn` has: the probes follow the offsets only from such a Conn (a TLS
    /// connection over another net.Conn would lead them to some other int). 0: not checked
    /// (a position-independent executable, where the address moves).
    pub tcp_close: u64,
    /// Where these came from.
    pub source: LayoutSource,
}

/// Where a [`GoLayout`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LayoutSource {
    /// The executable's own DWARF.
    Dwarf,
    /// The table for the executable's Go version (no DWARF: built with `-ldflags=-w`).
    VersionTable,
}

impl LayoutSource {
    /// For status and logs.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Dwarf => "offsets from DWARF",
            Self::VersionTable => "offsets from the go1.17+ table (no DWARF)",
        }
    }
}

/// What a Go executable offers the probes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GoExecutable {
    /// `go1.21.3` (from `.go.buildinfo`), or "" when unreadable.
    pub version: String,
    /// Hookable: the functions and the layout; or why not.
    pub hooks: Result<GoHooks, String>,
}

/// Everything needed to hook one Go executable.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GoHooks {
    /// Read and Write.
    pub functions: Vec<GoFunction>,
    /// Where the descriptor is.
    pub layout: GoLayout,
}

/// Reads a Go executable (`None` when it is not one: no `.go.buildinfo`).
pub fn inspect<'d, R: object::ReadRef<'d>>(elf: &object::File<'d, R>) -> Option<GoExecutable> {
    let buildinfo = elf.section_by_name(".go.buildinfo")?;
    let version = buildinfo
        .data()
        .ok()
        .and_then(|d| build_version(elf, d))
        .unwrap_or_default();
    let hooks = hooks(elf, &version);
    Some(GoExecutable { version, hooks })
}

fn hooks<'d, R: object::ReadRef<'d>>(
    elf: &object::File<'d, R>,
    version: &str,
) -> Result<GoHooks, String> {
    if elf.architecture() != object::Architecture::X86_64 {
        return Err(format!(
            "{:?} Go executables are not hooked (amd64 only)",
            elf.architecture()
        ));
    }
    if let Some((1, minor)) = parse_version(version) {
        if minor < 17 {
            return Err(format!(
                "{version} predates the register ABI (go1.17) the probes read"
            ));
        }
    }
    if elf.symbols().next().is_none() {
        return Err("stripped Go executable (no .symtab): crypto/tls not found".into());
    }
    let mut functions = Vec::new();
    for &(symbol, call) in FUNCTIONS {
        let Some(sym) = elf.symbols().find(|s| s.name() == Ok(symbol)) else {
            return Err(format!("no {symbol} (the program does not use crypto/tls)"));
        };
        let code = elf
            .section_by_index(sym.section_index().ok_or("symbol without section")?)
            .ok()
            .and_then(|s| s.data_range(sym.address(), sym.size()).ok().flatten())
            .ok_or_else(|| format!("{symbol}: code not readable"))?;
        let returns = return_offsets(code, sym.address());
        if returns.is_empty() {
            return Err(format!("{symbol}: no RET instruction found"));
        }
        functions.push(GoFunction {
            symbol,
            call,
            returns,
        });
    }
    let mut layout = crate::go_dwarf::layout(elf).unwrap_or(GoLayout {
        // tls.Conn starts with `conn net.Conn` (an interface: type word, data word);
        // net.TCPConn is a net.conn whose only field is `fd *netFD`; netFD starts with
        // `pfd poll.FD`, whose `fdmu fdMutex` (uint64 + 2 × uint32) precedes `Sysfd int`.
        // The same from go1.9 to today.
        conn_data: 8,
        tcp_fd: 0,
        sysfd: 16,
        tcp_close: 0,
        source: LayoutSource::VersionTable,
    });
    if elf.kind() == object::ObjectKind::Executable {
        layout.tcp_close = elf
            .symbols()
            .find(|s| s.name() == Ok("net.(*TCPConn).Close"))
            .map_or(0, |s| s.address());
    }
    Ok(GoHooks { functions, layout })
}

/// Offsets (from `addr`, the code's address) of the RET instructions in `code`.
pub fn return_offsets(code: &[u8], addr: u64) -> Vec<u64> {
    use iced_x86::{Decoder, DecoderOptions, Mnemonic};
    let mut out = Vec::new();
    let mut d = Decoder::with_ip(64, code, addr, DecoderOptions::NONE);
    while d.can_decode() {
        let i = d.decode();
        if i.mnemonic() == Mnemonic::Ret {
            out.push(i.ip() - addr);
        }
    }
    out
}

/// `(major, minor)` of `go1.21.3`, `go1.22rc1`; `None` for `devel ...` and the unreadable.
pub fn parse_version(v: &str) -> Option<(u32, u32)> {
    let rest = v.strip_prefix("go")?;
    let mut parts = rest.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor: String = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((major, minor.parse().ok()?))
}

/// The Go version in `.go.buildinfo` (layout: src/debug/buildinfo/buildinfo.go): a 16-byte
/// header "\xff Go buildinf:", pointer size, flags; with flag 2 (go1.18+) the version follows
/// at 32 as a varint-prefixed string, else at 16 is a pointer to its string header.
fn build_version<'d, R: object::ReadRef<'d>>(
    elf: &object::File<'d, R>,
    data: &[u8],
) -> Option<String> {
    const MAGIC: &[u8] = b"\xff Go buildinf:";
    if !data.starts_with(MAGIC) || data.len() < 32 {
        return None;
    }
    let (ptr_size, flags) = (usize::from(data[14]), data[15]);
    if flags & 2 != 0 {
        let (len, used) = uvarint(&data[32..])?;
        let start = 32 + used;
        let bytes = data.get(start..start.checked_add(usize::try_from(len).ok()?)?)?;
        return Some(String::from_utf8_lossy(bytes).into_owned());
    }
    if ptr_size != 8 {
        return None;
    }
    let word = |b: &[u8]| Some(u64::from_le_bytes(b.get(..8)?.try_into().ok()?));
    let header = read_at(elf, word(&data[16..])?, 16)?;
    let (ptr, len) = (word(&header)?, word(&header[8..])?);
    let bytes = read_at(elf, ptr, len.min(64))?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

fn read_at<'d, R: object::ReadRef<'d>>(
    elf: &object::File<'d, R>,
    addr: u64,
    len: u64,
) -> Option<Vec<u8>> {
    elf.sections()
        .find_map(|s| s.data_range(addr, len).ok().flatten())
        .map(<[u8]>::to_vec)
}

fn uvarint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("go1.21.3"), Some((1, 21)));
        assert_eq!(parse_version("go1.22rc1"), Some((1, 22)));
        assert_eq!(parse_version("go1.16"), Some((1, 16)));
        assert_eq!(parse_version("devel go1.23-abc"), None);
    }

    #[test]
    fn finds_every_ret() {
        // sub rsp,8; test eax,eax; je +1; ret; add rsp,8; ret (c3) and ret imm16 (c2 08 00)
        let code = [
            0x48, 0x83, 0xec, 0x08, 0x85, 0xc0, 0x74, 0x01, 0xc3, 0x48, 0x83, 0xc4, 0x08, 0xc3,
            0xc2, 0x08, 0x00,
        ];
        assert_eq!(return_offsets(&code, 0x1000), vec![8, 13, 14]);
        // A 0xc3 byte inside an instruction is not a RET: mov eax, 0xc3c3c3c3.
        assert!(return_offsets(&[0xb8, 0xc3, 0xc3, 0xc3, 0xc3], 0).is_empty());
    }

    #[test]
    fn varints() {
        assert_eq!(uvarint(&[0x08]), Some((8, 1)));
        assert_eq!(uvarint(&[0x80, 0x01]), Some((128, 2)));
        assert_eq!(uvarint(&[0x80]), None);
    }
}
