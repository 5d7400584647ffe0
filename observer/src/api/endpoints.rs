//! What this node knows about the two ends of a flow, for Hubble's `source`/`destination`
//! Endpoint and `source_names`/`destination_names`: the reserved identity
//! ([`super::identity`]), the local pod ([`super::pods`]) and the DNS names
//! ([`super::dns_names`]).
//!
//! Resolved once, when the agent's pipeline hands a flow to the store (a few hash lookups),
//! and kept compact beside it; the wire messages are built only when a client reads the flow.

use std::{net::IpAddr, path::PathBuf, sync::Arc, sync::Mutex};

use flows::{
    packet::Direction,
    record::{Flow, L7Record, L7Type, ProcessInfo},
};

use super::{
    dns_names::{self, DnsNameCache},
    identity::{NodeAddresses, ReservedIdentity},
    pods::{self, PodMeta, PodResolver},
    proto::flow as pb,
};

/// How ends are resolved (the agent's `pods-log-dir`, `dns-names-*` keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointsConfig {
    /// The cgroup v2 mount (pods are found from cgroup paths); None: no pods.
    pub cgroup_root: Option<PathBuf>,
    /// The kubelet's pod log directory (the host's /var/log/pods, mounted read-only).
    pub pods_log_dir: PathBuf,
    /// Most (address, name) pairs remembered from DNS answers.
    pub dns_names_max_entries: usize,
    /// Shortest time a DNS answer's names are kept, seconds.
    pub dns_names_min_ttl_secs: u64,
}

impl Default for EndpointsConfig {
    fn default() -> Self {
        Self {
            cgroup_root: None,
            pods_log_dir: pods::DEFAULT_PODS_LOG_DIR.into(),
            dns_names_max_entries: dns_names::DEFAULT_MAX_ENTRIES,
            dns_names_min_ttl_secs: dns_names::DEFAULT_MIN_TTL_SECS,
        }
    }
}

/// One end of a flow as resolved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EndpointMeta {
    /// Its reserved identity (`Unknown` when not resolved).
    pub identity: ReservedIdentity,
    /// Its pod, when a local pod owns it.
    pub pod: Option<Arc<PodMeta>>,
    /// Its names from DNS answers.
    pub names: Vec<Arc<str>>,
}

impl EndpointMeta {
    /// Hubble's Endpoint message (None when nothing is known, as for a flow read from a file).
    pub fn to_proto(&self) -> Option<pb::Endpoint> {
        if self.identity == ReservedIdentity::Unknown && self.pod.is_none() {
            return None;
        }
        let mut labels: Vec<String> = Vec::new();
        let mut ep = pb::Endpoint {
            identity: self.identity.id(),
            ..Default::default()
        };
        if let Some(p) = &self.pod {
            // Cilium's label for an endpoint's namespace (pkg/k8s/apis/cilium.io: PodNamespaceLabel).
            labels.push(format!("k8s:io.kubernetes.pod.namespace={}", p.namespace));
            ep.namespace = p.namespace.clone();
            ep.pod_name = p.name.clone();
            ep.workloads = p
                .deployment
                .iter()
                .map(|d| pb::Workload {
                    name: d.clone(),
                    kind: "Deployment".into(),
                })
                .collect();
        }
        labels.extend(self.identity.label().map(str::to_string));
        labels.sort();
        ep.labels = labels;
        Some(ep)
    }

    /// The names as Hubble's `*_names` field.
    pub fn names_proto(&self) -> Vec<String> {
        self.names.iter().map(|n| n.to_string()).collect()
    }
}

/// Both ends of a flow as resolved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlowEndpoints {
    /// The packet's (or message's) sender.
    pub source: EndpointMeta,
    /// Its receiver.
    pub destination: EndpointMeta,
}

impl FlowEndpoints {
    /// The pods' namespaces (for `GetNamespaces`).
    pub fn namespaces(&self) -> impl Iterator<Item = &str> {
        [&self.source, &self.destination]
            .into_iter()
            .filter_map(|e| e.pod.as_ref().map(|p| p.namespace.as_str()))
    }
}

/// Resolves the ends of flows. Shared (in the store) by the pipeline and the API's refresh
/// task.
#[derive(Debug)]
pub struct EndpointResolver {
    addresses: NodeAddresses,
    dns: Mutex<DnsNameCache>,
    pods: Mutex<PodResolver>,
}

impl Default for EndpointResolver {
    fn default() -> Self {
        Self::new(&EndpointsConfig::default())
    }
}

impl EndpointResolver {
    /// A resolver per `cfg`; this node's addresses are empty until
    /// [`NodeAddresses::refresh_local`].
    pub fn new(cfg: &EndpointsConfig) -> Self {
        Self {
            addresses: NodeAddresses::default(),
            dns: Mutex::new(DnsNameCache::new(
                cfg.dns_names_max_entries,
                cfg.dns_names_min_ttl_secs,
            )),
            pods: Mutex::new(PodResolver::new(
                cfg.cgroup_root.clone(),
                cfg.pods_log_dir.clone(),
            )),
        }
    }

    /// This node's and the other nodes' addresses.
    pub fn addresses(&self) -> &NodeAddresses {
        &self.addresses
    }

    /// Its counters, by name (`flowscope status`, /metrics).
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        let pods = self
            .pods
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .counters();
        let dns = self.dns.lock().unwrap_or_else(|e| e.into_inner()).evicted();
        vec![
            ("dns_names_evicted_cache_full", dns),
            ("pods_uid_not_in_log_dir", pods.uid_not_in_log_dir),
            ("pods_log_dir_unreadable", pods.log_dir_unreadable),
            ("pods_cgroup_cache_resets", pods.cache_resets),
        ]
    }

    /// Learns names from a flow when it is a DNS response.
    pub fn observe(&self, f: &Flow) {
        let Some(l7) = &f.l7 else { return };
        if let (L7Type::Response, L7Record::Dns(d)) = (l7.r#type, &l7.record) {
            self.dns
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .observe(d, f.time_ns);
        }
    }

    /// Both ends of `f`, whose local socket is owned by `f.process` and whose other end by
    /// `peer` when that is on this node too.
    pub fn resolve(&self, f: &Flow, peer: Option<&ProcessInfo>) -> FlowEndpoints {
        // The local socket sends egress packets and receives ingress ones.
        let (src_owner, dst_owner) = match f.traffic_direction {
            Direction::Egress => (f.process.as_ref(), peer),
            Direction::Ingress => (peer, f.process.as_ref()),
            Direction::Unknown => (None, None),
        };
        let pod_of = |owner: Option<&ProcessInfo>| {
            let id = owner?.cgroup_id?;
            self.pods
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pod_of(id)
        };
        let (src_pod, dst_pod) = (pod_of(src_owner), pod_of(dst_owner));
        let dns = self.dns.lock().unwrap_or_else(|e| e.into_inner());
        let end = |ip: IpAddr, owner: Option<&ProcessInfo>, pod: Option<Arc<PodMeta>>| {
            let identity = match (&pod, owner) {
                (Some(_), _) => ReservedIdentity::Unmanaged,
                (None, Some(_)) => ReservedIdentity::Host,
                (None, None) => self.addresses.identity_of(ip),
            };
            EndpointMeta {
                identity,
                pod,
                names: dns.names(ip, f.time_ns),
            }
        };
        FlowEndpoints {
            source: end(f.ip.source, src_owner, src_pod),
            destination: end(f.ip.destination, dst_owner, dst_pod),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Arc<PodMeta> {
        Arc::new(PodMeta {
            namespace: "shop".into(),
            name: "cart-5d78c9869d-x7k2q".into(),
            uid: "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0".into(),
            deployment: Some("cart".into()),
        })
    }

    #[test]
    fn endpoint_messages() {
        assert_eq!(EndpointMeta::default().to_proto(), None);
        let host = EndpointMeta {
            identity: ReservedIdentity::Host,
            ..Default::default()
        };
        let ep = host.to_proto().unwrap();
        assert_eq!(
            (ep.identity, ep.labels),
            (1, vec!["reserved:host".to_string()])
        );
        let in_pod = EndpointMeta {
            identity: ReservedIdentity::Unmanaged,
            pod: Some(pod()),
            names: vec!["cart.shop.example".into()],
        };
        let ep = in_pod.to_proto().unwrap();
        assert_eq!(ep.identity, 3);
        assert_eq!(
            (ep.namespace.as_str(), ep.pod_name.as_str()),
            ("shop", "cart-5d78c9869d-x7k2q")
        );
        assert_eq!(
            ep.labels,
            ["k8s:io.kubernetes.pod.namespace=shop", "reserved:unmanaged"]
        );
        assert_eq!(
            ep.workloads,
            [pb::Workload {
                name: "cart".into(),
                kind: "Deployment".into()
            }]
        );
        assert_eq!(in_pod.names_proto(), ["cart.shop.example"]);
    }

    #[test]
    fn names_from_a_dns_answer_on_the_flows_that_follow() {
        use flows::record::{DnsAnswer, L7Record, L7Type, Layer7};
        let r = EndpointResolver::default();
        let mut answer = super::super::convert::tests::tcp_syn();
        let mut info = match super::super::convert::tests::dns_response()
            .l7
            .unwrap()
            .record
        {
            L7Record::Dns(d) => d,
            L7Record::Http(_) => unreachable!(),
        };
        info.query = "api.example.org.".into();
        info.rcode = Some(0);
        info.answers = vec![DnsAnswer {
            name: "api.example.org.".into(),
            rrtype: "A".into(),
            ttl: 30,
            data: "198.51.100.1".into(),
        }];
        answer.l7 = Some(Layer7 {
            r#type: L7Type::Response,
            latency_ns: None,
            record: L7Record::Dns(info),
        });
        r.observe(&answer);
        let mut f = super::super::convert::tests::tcp_syn();
        f.time_ns = answer.time_ns + 1;
        f.ip.destination = "198.51.100.1".parse().unwrap();
        let e = r.resolve(&f, None);
        assert_eq!(e.destination.names_proto(), ["api.example.org"]);
        assert!(e.source.names.is_empty());
        // A request names nothing.
        let mut query = answer.clone();
        let l7 = query.l7.as_mut().unwrap();
        l7.r#type = L7Type::Request;
        if let L7Record::Dns(d) = &mut l7.record {
            d.answers[0].data = "198.51.100.2".into();
        }
        f.ip.destination = "198.51.100.2".parse().unwrap();
        r.observe(&query);
        assert!(r.resolve(&f, None).destination.names.is_empty());
    }

    #[test]
    fn local_process_is_host_the_rest_by_address() {
        let r = EndpointResolver::default();
        r.addresses().set_local(["192.0.2.10".parse().unwrap()]);
        r.addresses()
            .set_remote_nodes(["192.0.2.11".parse().unwrap()]);
        let mut f = super::super::convert::tests::tcp_syn();
        f.ip.source = "192.0.2.10".parse().unwrap();
        f.ip.destination = "198.51.100.1".parse().unwrap();
        f.traffic_direction = Direction::Egress;
        let e = r.resolve(&f, None);
        assert_eq!(
            (e.source.identity, e.destination.identity),
            (ReservedIdentity::Host, ReservedIdentity::World)
        );
        // The other node's packet arriving here.
        f.ip.source = "192.0.2.11".parse().unwrap();
        f.ip.destination = "192.0.2.10".parse().unwrap();
        f.traffic_direction = Direction::Ingress;
        f.process = None;
        let e = r.resolve(&f, None);
        assert_eq!(
            (e.source.identity, e.destination.identity),
            (ReservedIdentity::RemoteNode, ReservedIdentity::Host)
        );
    }
}
