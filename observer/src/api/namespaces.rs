//! The namespaces `GetNamespaces` (`hubble list namespaces`) answers with: every Kubernetes
//! namespace a flow's pod belonged to in the last hour, like Cilium's namespace manager
//! (pkg/hubble/observer/namespace: noted per flow, forgotten an hour after the last flow).
//!
//! Whoever resolves a flow's pod calls [`NamespaceTracker::note`]; flows without a pod add
//! nothing, so a node without pods (or before pod metadata is known) answers an empty list.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// How long a namespace is listed after its last flow (Cilium's `namespaceTTL`).
pub const NAMESPACE_TTL: Duration = Duration::from_secs(3600);
/// At most this many namespaces are remembered; the least recently seen go first. Far above
/// any real cluster's count: it only bounds memory against bogus input.
pub const MAX_NAMESPACES: usize = 16_384;

/// Namespaces seen on one node's flows, with when each was last seen.
#[derive(Debug)]
pub struct NamespaceTracker {
    cluster: String,
    seen: Mutex<HashMap<String, Instant>>,
}

impl NamespaceTracker {
    /// A tracker for the namespaces of `cluster` (the cluster name every entry is listed with).
    pub fn new(cluster: impl Into<String>) -> Self {
        Self {
            cluster: cluster.into(),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Records a flow of a pod in `namespace` at `now`. Allocates only for a new namespace.
    pub fn note(&self, namespace: &str, now: Instant) {
        if namespace.is_empty() {
            return;
        }
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = seen.get_mut(namespace) {
            *t = now;
            return;
        }
        if seen.len() >= MAX_NAMESPACES {
            seen.retain(|_, t| now.saturating_duration_since(*t) <= NAMESPACE_TTL);
            if seen.len() >= MAX_NAMESPACES {
                if let Some(oldest) = seen.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone()) {
                    seen.remove(&oldest);
                }
            }
        }
        seen.insert(namespace.to_string(), now);
    }

    /// `(cluster, namespace)` of every namespace seen within [`NAMESPACE_TTL`] of `now`,
    /// sorted by cluster then namespace (Cilium's order); forgets the older ones.
    pub fn list(&self, now: Instant) -> Vec<(String, String)> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.retain(|_, t| now.saturating_duration_since(*t) <= NAMESPACE_TTL);
        let mut out: Vec<(String, String)> = seen
            .keys()
            .map(|ns| (self.cluster.clone(), ns.clone()))
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_recent_namespaces_sorted_and_forgets_after_an_hour() {
        let t = NamespaceTracker::new("default");
        let t0 = Instant::now();
        assert!(t.list(t0).is_empty(), "no pods, no namespaces");
        t.note("kube-system", t0);
        t.note("", t0);
        t.note("default", t0 + Duration::from_secs(10));
        t.note("apps", t0 + Duration::from_secs(20));
        assert_eq!(
            t.list(t0 + Duration::from_secs(30)),
            [
                ("default".to_string(), "apps".to_string()),
                ("default".to_string(), "default".to_string()),
                ("default".to_string(), "kube-system".to_string()),
            ]
        );
        // A new flow keeps kube-system; default and apps expire an hour after their last flow.
        t.note("kube-system", t0 + Duration::from_secs(1800));
        let later = t0 + NAMESPACE_TTL + Duration::from_secs(15);
        assert_eq!(
            t.list(later),
            [
                ("default".to_string(), "apps".to_string()),
                ("default".to_string(), "kube-system".to_string()),
            ]
        );
        assert_eq!(
            t.list(t0 + NAMESPACE_TTL + Duration::from_secs(1801)),
            Vec::<(String, String)>::new()
        );
    }

    #[test]
    fn bounded() {
        let t = NamespaceTracker::new("c");
        let t0 = Instant::now();
        for i in 0..MAX_NAMESPACES + 10 {
            t.note(&format!("ns{i}"), t0 + Duration::from_millis(i as u64));
        }
        let l = t.list(t0 + Duration::from_secs(60));
        assert_eq!(l.len(), MAX_NAMESPACES);
        assert!(!l.iter().any(|(_, n)| n == "ns0"), "the oldest went first");
    }
}
