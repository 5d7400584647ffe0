//! cgroup v2 ids to paths, and container/pod identity parsed from a cgroup path.
//!
//! The kernel programs report `bpf_get_current_cgroup_id()`, which is the inode number of the
//! process's cgroup directory in the v2 hierarchy. [`CgroupResolver`] walks that hierarchy once
//! and caches inode -> path; a miss re-walks it, at most once per [`REWALK_INTERVAL`].

use std::{
    collections::HashMap,
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

/// Shortest time between two walks of the cgroup tree triggered by unknown ids.
pub const REWALK_INTERVAL: Duration = Duration::from_secs(2);
/// Most cgroups remembered; a host with more is unusual, and only the path lookup suffers.
const MAX_CGROUPS: usize = 100_000;

/// The container a cgroup path belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerRef {
    /// Container runtime that named the cgroup: "docker", "containerd", "crio" or "podman".
    pub runtime: &'static str,
    /// The 64-hex-digit container id.
    pub id: String,
    /// Kubernetes pod UID (with dashes), when the path is under kubepods.
    pub pod_uid: Option<String>,
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Finds the container id and pod UID in a cgroup v2 path such as
/// `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope`
/// (systemd driver) or `/kubepods/burstable/pod<uid>/<id>` (cgroupfs driver), `/docker/<id>`,
/// `/system.slice/docker-<id>.scope`, `crio-<id>.scope`, `libpod-<id>.scope`.
pub fn parse_container(path: &str) -> Option<ContainerRef> {
    let mut found: Option<(&'static str, String)> = None;
    let mut pod_uid = None;
    let mut prev: Option<&str> = None;
    for part in path.split('/').filter(|p| !p.is_empty()) {
        let unit = part.strip_suffix(".scope").unwrap_or(part);
        let runtime_id = [
            ("cri-containerd-", "containerd"),
            ("docker-", "docker"),
            ("crio-", "crio"),
            ("libpod-", "podman"),
        ]
        .iter()
        .find_map(|(prefix, rt)| {
            unit.strip_prefix(prefix)
                .filter(|id| is_container_id(id))
                .map(|id| (*rt, id.to_string()))
        });
        if let Some(rid) = runtime_id {
            found = Some(rid);
        } else if is_container_id(part) {
            // cgroupfs layouts: /docker/<id>, /kubepods/<qos>/pod<uid>/<id>
            let rt = match prev {
                Some("docker") => "docker",
                _ => "containerd",
            };
            found = Some((rt, part.to_string()));
        }
        if let Some(uid) = pod_uid_of(part) {
            pod_uid = Some(uid);
        }
        prev = Some(part);
    }
    let (runtime, id) = found?;
    Some(ContainerRef {
        runtime,
        id,
        pod_uid,
    })
}

/// The Kubernetes pod UID of a cgroup path under `kubepods` (the kubelet's systemd layout
/// `/kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid_with_underscores>.slice/...`
/// or its cgroupfs layout `/kubepods/<qos>/pod<uid>/...`), whether or not a container's
/// cgroup lies below it.
pub fn pod_uid(path: &str) -> Option<String> {
    let mut parts = path.split('/').filter(|p| !p.is_empty());
    if !parts.next()?.starts_with("kubepods") {
        return None;
    }
    parts.find_map(pod_uid_of)
}

/// `kubepods-burstable-pod1234_5678.slice` or `pod1234-5678` -> `1234-5678`.
fn pod_uid_of(part: &str) -> Option<String> {
    let unit = part.strip_suffix(".slice").unwrap_or(part);
    let last = unit.rsplit('-').next()?;
    let uid = if part.ends_with(".slice") {
        last.strip_prefix("pod")?.replace('_', "-")
    } else {
        unit.strip_prefix("pod")?.to_string()
    };
    let ok = uid.len() == 36 && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    ok.then_some(uid)
}

/// Where the cgroup v2 hierarchy is mounted, from a mountinfo text (`/proc/self/mountinfo`).
pub fn cgroup2_mount_in(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|l| {
        // "36 25 0:31 / /sys/fs/cgroup/unified rw,... shared:9 - cgroup2 cgroup2 rw"
        let (pre, post) = l.split_once(" - ")?;
        let fstype = post.split_whitespace().next()?;
        (fstype == "cgroup2").then(|| PathBuf::from(pre.split_whitespace().nth(4).unwrap_or("")))
    })
}

/// Where the cgroup v2 hierarchy is mounted on this host.
pub fn cgroup2_mount() -> Option<PathBuf> {
    cgroup2_mount_in(&fs::read_to_string("/proc/self/mountinfo").ok()?)
}

/// The process's cgroup v2 path from a `/proc/PID/cgroup` text (the `0::` line).
pub fn cgroup2_path_in(proc_cgroup: &str) -> Option<String> {
    proc_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_string)
}

/// cgroup id -> path, from walking the v2 hierarchy.
#[derive(Debug)]
pub struct CgroupResolver {
    root: Option<PathBuf>,
    paths: HashMap<u64, String>,
    last_walk: Option<Instant>,
    walks: u64,
}

impl CgroupResolver {
    /// A resolver for the hierarchy mounted at `root` (None: paths are never resolved).
    pub fn new(root: Option<PathBuf>) -> Self {
        Self {
            root,
            paths: HashMap::new(),
            last_walk: None,
            walks: 0,
        }
    }

    /// The mount point in use.
    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// How many times the tree was walked.
    pub fn walks(&self) -> u64 {
        self.walks
    }

    /// The path (relative to the hierarchy root, starting with `/`) of cgroup `id`.
    pub fn path_of(&mut self, id: u64) -> Option<String> {
        if let Some(p) = self.paths.get(&id) {
            return Some(p.clone());
        }
        let due = self
            .last_walk
            .is_none_or(|t| t.elapsed() >= REWALK_INTERVAL);
        if due {
            self.walk();
        }
        self.paths.get(&id).cloned()
    }

    /// The cgroup id (inode) of `path` in the hierarchy, e.g. from `/proc/PID/cgroup`.
    pub fn id_of(&self, path: &str) -> Option<u64> {
        let root = self.root.as_ref()?;
        let full = root.join(path.trim_start_matches('/'));
        fs::metadata(full).ok().map(|m| m.ino())
    }

    fn walk(&mut self) {
        self.last_walk = Some(Instant::now());
        let Some(root) = self.root.clone() else {
            return;
        };
        self.walks += 1;
        self.paths.clear();
        let mut stack = vec![(root, String::from("/"))];
        while let Some((dir, rel)) = stack.pop() {
            let Ok(meta) = fs::metadata(&dir) else {
                continue;
            };
            if self.paths.len() >= MAX_CGROUPS {
                break;
            }
            self.paths.insert(meta.ino(), rel.clone());
            let Ok(rd) = fs::read_dir(&dir) else {
                continue;
            };
            for ent in rd.flatten() {
                if ent.file_type().is_ok_and(|t| t.is_dir()) {
                    let name = ent.file_name().to_string_lossy().into_owned();
                    let child = if rel == "/" {
                        format!("/{name}")
                    } else {
                        format!("{rel}/{name}")
                    };
                    stack.push((ent.path(), child));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f1c9a2b4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";
    const UID: &str = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0";

    #[test]
    fn parses_container_ids() {
        let uid_ = UID.replace('-', "_");
        type Want<'a> = Option<(&'a str, Option<&'a str>)>;
        let cases: Vec<(String, Want)> = vec![
            (format!("/system.slice/docker-{ID}.scope"), Some(("docker", None))),
            (format!("/docker/{ID}"), Some(("docker", None))),
            (
                format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/cri-containerd-{ID}.scope"),
                Some(("containerd", Some(UID))),
            ),
            (
                format!("/kubepods.slice/kubepods-pod{uid_}.slice/crio-{ID}.scope"),
                Some(("crio", Some(UID))),
            ),
            (format!("/kubepods/besteffort/pod{UID}/{ID}"), Some(("containerd", Some(UID)))),
            (format!("/machine.slice/libpod-{ID}.scope/container"), Some(("podman", None))),
            ("/user.slice/user-1000.slice/session-2.scope".into(), None),
            ("/".into(), None),
            (format!("/system.slice/docker-{}.scope", &ID[..63]), None),
            (format!("/system.slice/crio-conmon-{ID}.scope"), None),
        ];
        for (path, want) in cases {
            let got = parse_container(&path);
            match want {
                None => assert_eq!(got, None, "{path}"),
                Some((rt, uid)) => {
                    let c = got.unwrap_or_else(|| panic!("no container in {path}"));
                    assert_eq!(c.runtime, rt, "{path}");
                    assert_eq!(c.id, ID, "{path}");
                    assert_eq!(c.pod_uid.as_deref(), uid, "{path}");
                }
            }
        }
    }

    #[test]
    fn finds_pod_uids_under_kubepods_only() {
        let uid_ = UID.replace('-', "_");
        for path in [
            format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_}.slice/cri-containerd-{ID}.scope"),
            format!("/kubepods.slice/kubepods-pod{uid_}.slice"),
            format!("/kubepods/burstable/pod{UID}/{ID}"),
            format!("/kubepods/pod{UID}"),
        ] {
            assert_eq!(pod_uid(&path).as_deref(), Some(UID), "{path}");
        }
        for path in [
            format!("/system.slice/pod{UID}"),
            "/kubepods.slice/kubepods-besteffort.slice".to_string(),
            format!("/kubepods/burstable/pod{}", &UID[..35]),
            "/".to_string(),
        ] {
            assert_eq!(pod_uid(&path), None, "{path}");
        }
    }

    #[test]
    fn finds_cgroup2_mount_and_proc_path() {
        let mi = "30 24 0:26 / /sys/fs/cgroup/cpu rw,relatime shared:5 - cgroup cgroup rw,cpu\n\
                  36 25 0:31 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_mount_in(mi),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(cgroup2_mount_in("1 2 0:1 / / rw - ext4 /dev/x rw\n"), None);
        let pc = "12:pids:/user.slice\n1:name=systemd:/user.slice/x\n0::/user.slice/x.scope\n";
        assert_eq!(cgroup2_path_in(pc).as_deref(), Some("/user.slice/x.scope"));
    }

    #[test]
    fn resolves_ids_on_this_host() {
        let root = cgroup2_mount().expect("this host has a cgroup2 mount");
        let mut r = CgroupResolver::new(Some(root.clone()));
        let ino = fs::metadata(&root).unwrap().ino();
        assert_eq!(r.path_of(ino).as_deref(), Some("/"));
        assert_eq!(r.id_of("/"), Some(ino));
        assert_eq!(r.path_of(u64::MAX), None);
        assert_eq!(
            r.walks(),
            1,
            "a miss right after a walk does not walk again"
        );
    }
}
