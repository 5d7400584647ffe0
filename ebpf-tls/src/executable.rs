//! TLS inside an executable: a statically linked OpenSSL or BoringSSL (an nginx or proxy built
//! with it) is found by its symbol table; Go's crypto/tls by its functions (see [`crate::go`]). A stripped
//! executable shows nothing here: if it speaks TLS, its connections are reported as blind spots
//! when they end (see the agent's status).

use std::{fs::File, path::Path};

use object::{read::ReadCache, Object, ObjectSymbol};

use crate::libraries::TlsLibraryKind;

/// What TLS an executable carries, from its ELF symbol tables (read through a cache: only the
/// headers and symbol tables are read, not the whole file); `None` when it shows none.
pub fn classify(path: &Path) -> Option<TlsLibraryKind> {
    let file = File::open(path).ok()?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamically_linked_program_carries_no_tls() {
        // curl links libssl.so: its own file defines no SSL_write.
        assert_eq!(classify(Path::new("/usr/bin/curl")), None);
    }

    #[test]
    fn a_file_that_is_not_elf_carries_none() {
        assert_eq!(classify(Path::new("/etc/hostname")), None);
    }
}
