//! The Kubernetes pod a local socket belongs to, from what the node itself knows (no API
//! server): the pod UID in the process's cgroup path (the kubelet names each pod's cgroup
//! after it, see `ebpf_kprobe::cgroup::pod_uid`) and the kubelet's log directories,
//! `/var/log/pods/<namespace>_<pod>_<uid>/`, which give namespace and name for that UID.
//!
//! The DaemonSet mounts the host's `/var/log/pods` read-only (`pods-log-dir`). Lookups are
//! cached per cgroup id (bounded); the log directory is listed again only when a UID is not
//! in it yet, at most every [`RESCAN_INTERVAL`].

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use ebpf_kprobe::cgroup::{pod_uid, CgroupResolver};

/// Where the kubelet writes pod logs (its `--pod-logs-dir` default).
pub const DEFAULT_PODS_LOG_DIR: &str = "/var/log/pods";
/// Shortest time between two listings of the log directory caused by unknown UIDs.
pub const RESCAN_INTERVAL: Duration = Duration::from_secs(2);
/// Most cgroups whose pod (or lack of one) is remembered; past it the cache starts over.
const MAX_CACHED_CGROUPS: usize = 8192;

/// A pod as this node knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodMeta {
    /// Kubernetes namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Pod UID.
    pub uid: String,
    /// The Deployment that made the pod, when its name says so ([`deployment_of`]).
    pub deployment: Option<String>,
}

/// `(namespace, pod, uid)` of a kubelet log directory name `<namespace>_<pod>_<uid>`.
/// Namespaces (DNS-1123 labels) and pod names (DNS-1123 subdomains) never contain `_`, so
/// the split is unambiguous.
pub fn parse_log_dir(name: &str) -> Option<(&str, &str, &str)> {
    let (rest, uid) = name.rsplit_once('_')?;
    let (namespace, pod) = rest.split_once('_')?;
    let uid_ok = uid.len() == 36 && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    (uid_ok && !namespace.is_empty() && !pod.is_empty() && !pod.contains('_'))
        .then_some((namespace, pod, uid))
}

/// The characters Kubernetes draws generated names and the pod-template hash from
/// (`k8s.io/apimachinery/pkg/util/rand`: no vowels, no 0/1/3, so no words are spelled).
fn is_safe_encoded(s: &str) -> bool {
    s.bytes()
        .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b))
}

/// The Deployment of a pod named `<deployment>-<pod-template-hash>-<5 random>`, as the
/// Deployment controller names them (ReplicaSet `<deployment>-<hash>`, its pods with a
/// generated 5-character suffix). A heuristic from the name alone: the hash is the
/// safe-encoded decimal FNV-32 of the template (6 to 10 characters here; shorter hashes are
/// too rare to be worth the false positives), and a pod of another controller whose name
/// happens to have that shape is taken for a Deployment's.
pub fn deployment_of(pod: &str) -> Option<&str> {
    let (rest, suffix) = pod.rsplit_once('-')?;
    let (name, hash) = rest.rsplit_once('-')?;
    let ok = suffix.len() == 5
        && is_safe_encoded(suffix)
        && (6..=10).contains(&hash.len())
        && is_safe_encoded(hash)
        && !name.is_empty();
    ok.then_some(name)
}

/// cgroup id -> pod, cached.
#[derive(Debug)]
pub struct PodResolver {
    cgroups: CgroupResolver,
    log_dir: PathBuf,
    by_cgroup: HashMap<u64, Option<Arc<PodMeta>>>,
    by_uid: HashMap<String, Arc<PodMeta>>,
    last_scan: Option<Instant>,
    counters: PodCounters,
}

/// What went wrong finding pods, for `flowscope status` and /metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PodCounters {
    /// Lookups of a pod cgroup whose UID has no log directory (yet): the log directory is
    /// not mounted, or the pod is being created or deleted.
    pub uid_not_in_log_dir: u64,
    /// Listings of the log directory that failed (not mounted, not readable).
    pub log_dir_unreadable: u64,
    /// Times the per-cgroup cache was full and started over.
    pub cache_resets: u64,
}

impl PodResolver {
    /// A resolver reading the cgroup v2 hierarchy at `cgroup_root` (None: no pods are ever
    /// found) and the kubelet's pod log directories under `log_dir`.
    pub fn new(cgroup_root: Option<PathBuf>, log_dir: PathBuf) -> Self {
        Self {
            cgroups: CgroupResolver::new(cgroup_root),
            log_dir,
            by_cgroup: HashMap::new(),
            by_uid: HashMap::new(),
            last_scan: None,
            counters: PodCounters::default(),
        }
    }

    /// The counters so far.
    pub fn counters(&self) -> PodCounters {
        self.counters
    }

    /// The pod of the process in cgroup `cgroup_id`, if any.
    pub fn pod_of(&mut self, cgroup_id: u64) -> Option<Arc<PodMeta>> {
        if let Some(known) = self.by_cgroup.get(&cgroup_id) {
            return known.clone();
        }
        // An unknown id makes the resolver walk the hierarchy again (rate-limited there);
        // nothing is cached until the path is known.
        let path = self.cgroups.path_of(cgroup_id)?;
        let found = match pod_uid(&path) {
            None => None,
            Some(uid) => {
                if !self.by_uid.contains_key(&uid) {
                    self.rescan();
                }
                // A pod whose log directory is not there (yet) is looked up again later.
                let Some(meta) = self.by_uid.get(&uid).cloned() else {
                    self.counters.uid_not_in_log_dir += 1;
                    return None;
                };
                Some(meta)
            }
        };
        if self.by_cgroup.len() >= MAX_CACHED_CGROUPS {
            self.by_cgroup.clear();
            self.counters.cache_resets += 1;
        }
        self.by_cgroup.insert(cgroup_id, found.clone());
        found
    }

    /// Lists the log directory again, at most every [`RESCAN_INTERVAL`].
    fn rescan(&mut self) {
        if self
            .last_scan
            .is_some_and(|t| t.elapsed() < RESCAN_INTERVAL)
        {
            return;
        }
        self.last_scan = Some(Instant::now());
        let rd = match std::fs::read_dir(&self.log_dir) {
            Ok(rd) => rd,
            Err(e) => {
                if self.counters.log_dir_unreadable == 0 {
                    tracing::warn!(dir = %self.log_dir.display(), error = %e, "cannot list the kubelet's pod log directories: flows get no pod names (mount the host's /var/log/pods, or set pods-log-dir)");
                }
                self.counters.log_dir_unreadable += 1;
                return;
            }
        };
        // Pods that are gone go too: the map holds what the directory holds now.
        self.by_uid.clear();
        for ent in rd.flatten() {
            let name = ent.file_name();
            let Some((namespace, pod, uid)) = name.to_str().and_then(parse_log_dir) else {
                continue;
            };
            self.by_uid.insert(
                uid.to_string(),
                Arc::new(PodMeta {
                    namespace: namespace.to_string(),
                    name: pod.to_string(),
                    uid: uid.to_string(),
                    deployment: deployment_of(pod).map(str::to_string),
                }),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0";

    #[test]
    fn parses_kubelet_log_dir_names() {
        let ok = format!("kube-system_coredns-5d78c9869d-x7k2q_{UID}");
        assert_eq!(
            parse_log_dir(&ok),
            Some(("kube-system", "coredns-5d78c9869d-x7k2q", UID))
        );
        for bad in [
            "kube-system_coredns".to_string(),
            format!("_pod_{UID}"),
            format!("ns__{UID}"),
            "ns_pod_not-a-uid".to_string(),
            format!("ns_a_b_{UID}"),
        ] {
            assert_eq!(parse_log_dir(&bad), None, "{bad}");
        }
    }

    #[test]
    fn deployment_from_pod_name() {
        let table = [
            ("coredns-5d78c9869d-x7k2q", Some("coredns")),
            ("my-web-app-7f9c6b8d45-abcde", None), // 'a', 'e' are never generated
            ("my-web-app-7f9c6b8d45-bcd2f", Some("my-web-app")),
            ("web-0", None),            // a StatefulSet's
            ("fluent-bit-x7k2q", None), // a DaemonSet's or Job's
            ("api-db-x7k2q", None),     // hash too short to tell
            ("-5d78c9869d-x7k2q", None),
        ];
        for (pod, want) in table {
            assert_eq!(deployment_of(pod), want, "{pod}");
        }
    }

    /// A directory tree laid out like the kubelet's cgroups (the resolver only reads
    /// directory names and inode numbers, which any directory has) and its log directory.
    #[test]
    fn finds_the_pod_of_a_cgroup_from_its_uid_and_the_log_directory() {
        let tmp = std::env::temp_dir().join(format!("flowscope-pods-{}", std::process::id()));
        let uid_ = UID.replace('-', "_");
        let systemd = tmp.join(format!(
            "cg/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/cri-containerd-{}.scope",
            "ab".repeat(32)
        ));
        let cgroupfs = tmp.join(format!(
            "cg/kubepods/besteffort/pod{UID}/{}",
            "cd".repeat(32)
        ));
        let other = tmp.join("cg/system.slice/sshd.service");
        for d in [&systemd, &cgroupfs, &other] {
            std::fs::create_dir_all(d).unwrap();
        }
        let logs = tmp.join("pods");
        std::fs::create_dir_all(logs.join(format!("shop_cart-5d78c9869d-x7k2q_{UID}/cart")))
            .unwrap();
        std::fs::create_dir_all(logs.join("not-a-pod-dir")).unwrap();
        let ino = |p: &std::path::Path| {
            std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap())
        };
        let mut r = PodResolver::new(Some(tmp.join("cg")), logs);
        let want = PodMeta {
            namespace: "shop".into(),
            name: "cart-5d78c9869d-x7k2q".into(),
            uid: UID.into(),
            deployment: Some("cart".into()),
        };
        for d in [&systemd, &cgroupfs] {
            assert_eq!(r.pod_of(ino(d)).as_deref(), Some(&want), "{}", d.display());
        }
        assert_eq!(r.pod_of(ino(&other)), None);
        // Cached, by cgroup id.
        assert_eq!(r.by_cgroup.len(), 3);
        assert_eq!(r.counters(), PodCounters::default());
        let _ = std::fs::remove_dir_all(&tmp);
    }

    #[test]
    fn resolves_a_pod_cgroup_on_this_host_and_caches_the_rest() {
        // A real cgroup of this host that is no pod: cached as none.
        let root = ebpf_kprobe::cgroup::cgroup2_mount();
        let mut r = PodResolver::new(root.clone(), "/nonexistent/pods".into());
        if let Some(root) = root {
            let id = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&root).unwrap());
            assert_eq!(r.pod_of(id), None);
            assert!(r.by_cgroup.contains_key(&id));
        }
        // An id that is no cgroup: not cached (it may appear later).
        let nowhere = 0xdead_beef_dead_beef;
        assert_eq!(r.pod_of(nowhere), None);
        assert!(!r.by_cgroup.contains_key(&nowhere));
    }
}
