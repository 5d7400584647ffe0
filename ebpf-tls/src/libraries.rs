//! Which TLS libraries each process maps, from `/proc/PID/maps`.
//!
//! A uprobe is placed on a library *file* (an inode): one attach covers every process that
//! maps it, now and later. So the scan's job is to find the distinct files, say how to reach
//! each one from the agent's mount namespace (`/proc/PID/root/...`, or the mapping itself when
//! the file was deleted after it was mapped), and remember which process uses which, for
//! `flowscope status`.

use std::{
    fs,
    path::{Path, PathBuf},
};

/// A TLS library family, from its file name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TlsLibraryKind {
    /// OpenSSL's libssl (`libssl.so.3`, `libssl.so.1.1`, ...), with the version its soname
    /// says. Hooked.
    OpenSsl {
        /// "3", "1.1", "1.0.2", or "" when the name has none.
        version: String,
    },
    /// GnuTLS (`libgnutls.so.*`): not hooked yet.
    GnuTls,
    /// NSS (`libssl3.so`, `libnss3.so`): not hooked yet.
    Nss,
    /// wolfSSL (`libwolfssl.so.*`): not hooked yet.
    WolfSsl,
    /// OpenSSL or BoringSSL linked into the executable, found by its symbols. Hooked.
    StaticOpenSsl {
        /// BoringSSL rather than OpenSSL.
        boring: bool,
    },
    /// A process's executable, not classified yet (see [`crate::executable`]).
    Executable,
    /// Go's crypto/tls, in a Go executable: hooked on `(*tls.Conn).Read`/`Write` when
    /// [`crate::go::GoExecutable::hooks`] is `Ok`.
    GoTls(crate::go::GoExecutable),
}

impl TlsLibraryKind {
    /// From a file name; `None` for anything that is not a TLS library we know.
    pub fn from_file_name(name: &str) -> Option<Self> {
        if let Some(rest) = name.strip_prefix("libssl.so") {
            let version = rest.strip_prefix('.').unwrap_or(rest).to_string();
            return Some(Self::OpenSsl { version });
        }
        if name.starts_with("libgnutls.so") {
            return Some(Self::GnuTls);
        }
        // NSS's libssl3.so is not OpenSSL's libssl.so.3.
        if name.starts_with("libssl3.so") || name.starts_with("libnss3.so") {
            return Some(Self::Nss);
        }
        if name.starts_with("libwolfssl.so") {
            return Some(Self::WolfSsl);
        }
        None
    }

    /// Short name for status: "openssl 3", "gnutls", ...
    pub fn describe(&self) -> String {
        match self {
            Self::OpenSsl { version } if version.is_empty() => "openssl".into(),
            Self::OpenSsl { version } => format!("openssl {version}"),
            Self::GnuTls => "gnutls".into(),
            Self::Nss => "nss".into(),
            Self::WolfSsl => "wolfssl".into(),
            Self::StaticOpenSsl { boring: false } => "openssl (static)".into(),
            Self::StaticOpenSsl { boring: true } => "boringssl (static)".into(),
            Self::GoTls(go) if go.version.is_empty() => "go crypto/tls".into(),
            Self::GoTls(go) => format!("go crypto/tls ({})", go.version),
            Self::Executable => "executable".into(),
        }
    }

    /// Why this kind is not hooked, when it is not.
    pub fn unsupported(&self) -> Option<String> {
        match self {
            Self::OpenSsl { .. } | Self::StaticOpenSsl { .. } | Self::Executable => None,
            Self::GoTls(go) => go
                .hooks
                .as_ref()
                .err()
                .map(|why| format!("{why}: its plaintext is not seen")),
            Self::GnuTls => Some("gnutls is not supported yet: its plaintext is not seen".into()),
            Self::Nss => Some("nss is not supported yet: its plaintext is not seen".into()),
            Self::WolfSsl => Some("wolfssl is not supported yet: its plaintext is not seen".into()),
        }
    }
}

/// A library file: its device and inode as `/proc/PID/maps` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId {
    /// `major:minor` packed as major << 32 | minor.
    pub dev: u64,
    /// Inode number.
    pub inode: u64,
}

/// One TLS library mapped by a process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappedLibrary {
    /// The path in the process's own mount namespace.
    pub path: String,
    /// A path to the same file from the agent (through `/proc/PID/root` or `map_files`).
    pub reach: PathBuf,
    /// Which file.
    pub file: FileId,
    /// What it is.
    pub kind: TlsLibraryKind,
}

/// What a scan found in one process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessLibraries {
    /// Process id.
    pub pid: u32,
    /// Its comm.
    pub comm: String,
    /// The TLS libraries it maps (each file once).
    pub libraries: Vec<MappedLibrary>,
}

fn parse_dev(s: &str) -> Option<u64> {
    let (maj, min) = s.split_once(':')?;
    Some((u64::from_str_radix(maj, 16).ok()? << 32) | u64::from_str_radix(min, 16).ok()?)
}

/// The TLS libraries in the text of `/proc/PID/maps` (each file once, in order of first
/// mapping). `proc_pid` is the process's `/proc` directory, for the paths that reach them.
pub fn parse_maps(maps: &str, proc_pid: &Path) -> Vec<MappedLibrary> {
    let mut out: Vec<MappedLibrary> = Vec::new();
    for line in maps.lines() {
        // address perms offset dev inode pathname
        let mut cols = line.splitn(6, ' ');
        let (Some(range), Some(_perms), Some(_off), Some(dev), Some(inode)) = (
            cols.next(),
            cols.next(),
            cols.next(),
            cols.next(),
            cols.next(),
        ) else {
            continue;
        };
        let path = cols.next().unwrap_or("").trim_start();
        if !path.starts_with('/') {
            continue;
        }
        let (path, deleted) = match path.strip_suffix(" (deleted)") {
            Some(p) => (p, true),
            None => (path, false),
        };
        let name = path.rsplit('/').next().unwrap_or(path);
        let Some(kind) = TlsLibraryKind::from_file_name(name) else {
            continue;
        };
        let (Some(dev), Ok(inode)) = (parse_dev(dev), inode.parse::<u64>()) else {
            continue;
        };
        let file = FileId { dev, inode };
        if out.iter().any(|l| l.file == file) {
            continue;
        }
        let reach = if deleted {
            proc_pid.join("map_files").join(range)
        } else {
            proc_pid.join("root").join(path.trim_start_matches('/'))
        };
        out.push(MappedLibrary {
            path: path.to_string(),
            reach,
            file,
            kind,
        });
    }
    out
}

/// Scans one process; `None` when it is gone or unreadable (kernel threads map nothing).
pub fn scan_process(proc_root: &Path, pid: u32) -> Option<ProcessLibraries> {
    let dir = proc_root.join(pid.to_string());
    let maps = fs::read_to_string(dir.join("maps")).ok()?;
    let comm = fs::read_to_string(dir.join("comm"))
        .map(|c| c.trim_end().to_string())
        .unwrap_or_default();
    let mut libraries = parse_maps(&maps, &dir);
    if let Some(exe) = executable(&maps, &dir) {
        libraries.push(exe);
    }
    Some(ProcessLibraries {
        pid,
        comm,
        libraries,
    })
}

/// The process's executable as a candidate "library" (static TLS), unless it is one of the
/// shared libraries already listed. Its kind is filled by the caller's cache
/// ([`crate::executable::classify`] reads the whole file, once per file).
fn executable(maps: &str, dir: &Path) -> Option<MappedLibrary> {
    let exe = fs::read_link(dir.join("exe")).ok()?;
    let exe = exe.to_str()?;
    let (exe, deleted) = match exe.strip_suffix(" (deleted)") {
        Some(e) => (e, true),
        None => (exe, false),
    };
    let line = maps.lines().find(|l| l.contains(exe))?;
    let mut cols = line.split_whitespace();
    let range = cols.next()?;
    let dev = parse_dev(cols.nth(2)?)?;
    let inode = cols.next()?.parse().ok()?;
    // Through the process's root, which needs only ptrace access (map_files needs
    // CAP_SYS_ADMIN, which the agent drops after start-up); a deleted file only that way.
    let reach = if deleted {
        dir.join("map_files").join(range)
    } else {
        dir.join("root").join(exe.trim_start_matches('/'))
    };
    Some(MappedLibrary {
        path: exe.to_string(),
        reach,
        file: FileId { dev, inode },
        kind: TlsLibraryKind::Executable,
    })
}

/// The file process `pid` runs (the agent's own, to leave it out of [`crate::executable`]'s
/// reads).
pub fn executable_file(proc_root: &Path, pid: u32) -> Option<FileId> {
    let dir = proc_root.join(pid.to_string());
    let maps = fs::read_to_string(dir.join("maps")).ok()?;
    executable(&maps, &dir).map(|e| e.file)
}

/// Scans every process (except `skip`, the agent), keeping those that map a TLS library.
pub fn scan_all(proc_root: &Path, skip: u32) -> Vec<ProcessLibraries> {
    let Ok(dir) = fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let mut out: Vec<ProcessLibraries> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != skip)
        .filter_map(|pid| scan_process(proc_root, pid))
        .filter(|p| !p.libraries.is_empty())
        .collect();
    out.sort_by_key(|p| p.pid);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_a_process_runs() {
        use std::os::unix::fs::MetadataExt;
        let me = executable_file(Path::new("/proc"), std::process::id()).expect("own exe");
        let exe = fs::metadata(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(me.inode, exe.ino());
        assert_eq!(executable_file(Path::new("/nonexistent"), 1), None);
    }

    const MAPS: &str = "\
55d0c0a00000-55d0c0a2e000 r--p 00000000 fd:01 1049 /usr/sbin/nginx
7f52d2053000-7f52d20b5000 r--p 00000000 fd:01 2231 /usr/lib/x86_64-linux-gnu/libssl.so.3
7f52d20b5000-7f52d214f000 r-xp 00062000 fd:01 2231 /usr/lib/x86_64-linux-gnu/libssl.so.3
7f52d1a00000-7f52d1c00000 r--p 00000000 fd:01 2230 /usr/lib/x86_64-linux-gnu/libcrypto.so.3
7f0000000000-7f0000001000 r-xp 00000000 00:05 77 /opt/app/libssl.so.1.1 (deleted)
7f1000000000-7f1000001000 r-xp 00000000 fd:01 90 /usr/lib/libssl3.so
7f2000000000-7f2000001000 r-xp 00000000 fd:01 91 /usr/lib/libgnutls.so.30
7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0 [stack]
";

    #[test]
    fn finds_each_tls_library_file_once() {
        let libs = parse_maps(MAPS, Path::new("/proc/42"));
        let got: Vec<_> = libs
            .iter()
            .map(|l| {
                (
                    l.kind.describe(),
                    l.path.as_str(),
                    l.reach.display().to_string(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "openssl 3".to_string(),
                    "/usr/lib/x86_64-linux-gnu/libssl.so.3",
                    "/proc/42/root/usr/lib/x86_64-linux-gnu/libssl.so.3".to_string()
                ),
                (
                    "openssl 1.1".to_string(),
                    "/opt/app/libssl.so.1.1",
                    "/proc/42/map_files/7f0000000000-7f0000001000".to_string()
                ),
                (
                    "nss".to_string(),
                    "/usr/lib/libssl3.so",
                    "/proc/42/root/usr/lib/libssl3.so".to_string()
                ),
                (
                    "gnutls".to_string(),
                    "/usr/lib/libgnutls.so.30",
                    "/proc/42/root/usr/lib/libgnutls.so.30".to_string()
                ),
            ]
        );
        assert_eq!(
            libs[0].file,
            FileId {
                dev: (0xfd << 32) | 1,
                inode: 2231
            }
        );
        assert_eq!(libs[0].kind.unsupported(), None);
        assert!(libs[3].kind.unsupported().is_some());
    }

    #[test]
    fn this_process_is_scanned_without_error() {
        let me = scan_process(Path::new("/proc"), std::process::id()).unwrap();
        assert_eq!(me.pid, std::process::id());
        assert!(!me.comm.is_empty());
    }
}
