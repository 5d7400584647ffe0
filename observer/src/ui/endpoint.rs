//! Who a flow's two ends are, as nodes of the service map: the process that owns the socket
//! (comm + pid), else the pod (namespace/name), else the DNS name the agent saw for the address,
//! else the address itself. And which end is the client, so an edge points the way requests go.

use std::{collections::HashMap, sync::Arc};

use serde::Serialize;

use crate::api::{
    convert::packet_direction,
    proto::{
        flow::{layer4::Protocol, Endpoint, Flow},
        flowscope::{FlowExtension, Process},
    },
};
use flows::packet::Direction;

/// What a node of the map stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// A process on this node (comm + pid).
    Process,
    /// A Kubernetes pod (namespace/name) whose process is not known.
    Pod,
    /// The outside world by the DNS name the agent saw resolved to its address.
    Dns,
    /// The outside world by address only.
    Address,
    /// The nodes folded together past the top N.
    Other,
}

/// One node of the map.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Node {
    /// Stable id: the same process, pod, name or address gives the same id in every snapshot.
    pub id: String,
    /// What the map writes on it: comm, pod name, DNS name or address.
    pub label: String,
    /// The second line: `pid 123`, the namespace, the address behind a name.
    pub detail: String,
    /// What it stands for.
    pub kind: NodeKind,
}

impl Node {
    fn process(p: &Process) -> Self {
        let comm = if p.comm.is_empty() { "?" } else { &p.comm };
        Node {
            id: format!("process:{}:{comm}", p.pid),
            label: comm.to_string(),
            detail: format!("pid {}", p.pid),
            kind: NodeKind::Process,
        }
    }
}

/// One end of a flow as the flow itself tells it.
#[derive(Debug, Clone, Default)]
struct End<'a> {
    ip: &'a str,
    port: u32,
    process: Option<&'a Process>,
    endpoint: Option<&'a Endpoint>,
    names: &'a [String],
}

/// A flow's ends as map nodes, client first.
#[derive(Debug, Clone)]
pub struct Ends {
    /// The end that opened the connection or sent the request.
    pub client: Arc<Node>,
    /// The end that accepted it or answered.
    pub server: Arc<Node>,
    /// The client's `ip:port` as the flow has it.
    pub client_addr: String,
    /// The server's `ip:port`.
    pub server_addr: String,
    /// The client's socket when its owner was not known, for [`EndpointResolver::late_owner`].
    pub client_socket: Option<Box<(String, u32)>>,
    /// Likewise for the server.
    pub server_socket: Option<Box<(String, u32)>>,
}

/// Sockets (`ip`, port) whose owning process a flow told us, for flows that don't: a TCP
/// connection's first packets and the request of an exchange can leave before the agent knew
/// the other end's owner, and without this the same process would show twice, once by
/// address. Bounded: entries not seen for [`SOCKET_TTL_NS`] go when the table is full.
#[derive(Debug, Default)]
pub struct EndpointResolver {
    sockets: HashMap<(String, u32), (Arc<Node>, u64)>,
    interned: HashMap<Node, Arc<Node>>,
}

/// How many sockets [`EndpointResolver`] remembers.
const MAX_SOCKETS: usize = 8192;
/// How long a remembered socket owner is trusted without being seen again (ports are reused).
const SOCKET_TTL_NS: u64 = 120_000_000_000;

impl EndpointResolver {
    /// The flow's ends as nodes, client first; `None` for a flow without IP addresses (lost
    /// events, agent events).
    pub fn ends(&mut self, f: &Flow) -> Option<Ends> {
        let ip = f.ip.as_ref()?;
        let now = f
            .time
            .as_ref()
            .map(crate::api::convert::timestamp_ns)
            .unwrap_or(0);
        let (sport, dport) = ports(f);
        let ext = FlowExtension::from_flow(f);
        let (local, peer) = ext
            .as_ref()
            .map(|e| (e.process.as_ref(), e.peer_process.as_ref()))
            .unwrap_or((None, None));
        // The local socket sends egress packets and receives ingress ones (as the printer).
        let (sproc, dproc) = if packet_direction(f) == Direction::Ingress {
            (peer, local)
        } else {
            (local, peer)
        };
        let src = End {
            ip: &ip.source,
            port: sport,
            process: sproc.filter(|p| p.pid != 0),
            endpoint: f.source.as_ref(),
            names: &f.source_names,
        };
        let dst = End {
            ip: &ip.destination,
            port: dport,
            process: dproc.filter(|p| p.pid != 0),
            endpoint: f.destination.as_ref(),
            names: &f.destination_names,
        };
        // A reply (Hubble's is_reply: a response, a SYN/ACK) travels server -> client.
        let (client, server) = if f.is_reply.unwrap_or(false) {
            (dst, src)
        } else {
            (src, dst)
        };
        let (client_node, server_node) = (self.node(&client, now), self.node(&server, now));
        let socket = |end: &End, node: &Node| {
            (node.kind != NodeKind::Process).then(|| Box::new((end.ip.to_string(), end.port)))
        };
        Some(Ends {
            client_addr: addr(client.ip, client.port),
            server_addr: addr(server.ip, server.port),
            client_socket: socket(&client, &client_node),
            server_socket: socket(&server, &server_node),
            client: client_node,
            server: server_node,
        })
    }

    /// The process a later flow said owns `socket`, for a flow at `at_ns` that did not know
    /// it (a connection's SYN leaves before the agent looked its owner up).
    pub fn late_owner(&self, socket: &(String, u32), at_ns: u64) -> Option<&Arc<Node>> {
        let (node, seen) = self.sockets.get(socket)?;
        (seen.abs_diff(at_ns) < SOCKET_TTL_NS).then_some(node)
    }

    fn node(&mut self, end: &End, now: u64) -> Arc<Node> {
        let key = (end.ip.to_string(), end.port);
        if let Some(p) = end.process {
            let node = self.intern(Node::process(p));
            if self.sockets.len() >= MAX_SOCKETS && !self.sockets.contains_key(&key) {
                self.sockets
                    .retain(|_, (_, seen)| now.saturating_sub(*seen) < SOCKET_TTL_NS);
                if self.sockets.len() >= MAX_SOCKETS {
                    self.sockets.clear();
                }
            }
            self.sockets.insert(key, (node.clone(), now));
            return node;
        }
        if let Some((node, seen)) = self.sockets.get(&key) {
            if now.saturating_sub(*seen) < SOCKET_TTL_NS {
                return node.clone();
            }
        }
        let node = if let Some(ep) = end.endpoint.filter(|e| !e.pod_name.is_empty()) {
            Node {
                id: format!("pod:{}/{}", ep.namespace, ep.pod_name),
                label: ep.pod_name.clone(),
                detail: ep.namespace.clone(),
                kind: NodeKind::Pod,
            }
        } else if let Some(name) = end.names.first() {
            Node {
                id: format!("dns:{name}"),
                label: name.clone(),
                detail: end.ip.to_string(),
                kind: NodeKind::Dns,
            }
        } else {
            Node {
                id: format!("ip:{}", end.ip),
                label: end.ip.to_string(),
                detail: String::new(),
                kind: NodeKind::Address,
            }
        };
        self.intern(node)
    }

    /// One `Arc` per distinct node, so samples share it.
    fn intern(&mut self, node: Node) -> Arc<Node> {
        if let Some(n) = self.interned.get(&node) {
            return n.clone();
        }
        let n = Arc::new(node.clone());
        self.interned.insert(node, n.clone());
        n
    }

    /// Forgets interned nodes no sample holds any more (call after dropping samples).
    pub fn forget_unused(&mut self) {
        let sockets = &self.sockets;
        self.interned.retain(|_, n| {
            Arc::strong_count(n) > 1 || sockets.values().any(|(s, _)| Arc::ptr_eq(s, n))
        });
    }
}

fn addr(ip: &str, port: u32) -> String {
    match (port, ip.contains(':')) {
        (0, _) => ip.to_string(),
        (_, true) => format!("[{ip}]:{port}"),
        (_, false) => format!("{ip}:{port}"),
    }
}

/// Source and destination ports (0 without a port).
pub fn ports(f: &Flow) -> (u32, u32) {
    match f.l4.as_ref().and_then(|l| l.protocol.as_ref()) {
        Some(Protocol::Tcp(t)) => (t.source_port, t.destination_port),
        Some(Protocol::Udp(u)) => (u.source_port, u.destination_port),
        Some(Protocol::Sctp(s)) => (s.source_port, s.destination_port),
        _ => (0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::proto::flow::{Ip, Layer4, Tcp, TrafficDirection};

    pub(crate) fn tcp_flow(src: (&str, u32), dst: (&str, u32), reply: bool) -> Flow {
        Flow {
            time: Some(crate::api::convert::timestamp(1_000_000_000)),
            ip: Some(Ip {
                source: src.0.into(),
                destination: dst.0.into(),
                ..Default::default()
            }),
            l4: Some(Layer4 {
                protocol: Some(Protocol::Tcp(Tcp {
                    source_port: src.1,
                    destination_port: dst.1,
                    flags: None,
                })),
            }),
            is_reply: Some(reply),
            traffic_direction: TrafficDirection::Ingress as i32,
            ..Default::default()
        }
    }

    fn with_processes(mut f: Flow, local: Option<(u32, &str)>, peer: Option<(u32, &str)>) -> Flow {
        let p = |(pid, comm): (u32, &str)| Process {
            pid,
            comm: comm.into(),
            ..Default::default()
        };
        f.extensions = Some(
            FlowExtension {
                process: local.map(p),
                peer_process: peer.map(p),
                ..Default::default()
            }
            .to_any(),
        );
        f
    }

    #[test]
    fn a_reply_points_from_client_to_server() {
        let mut r = EndpointResolver::default();
        let req = tcp_flow(("10.0.0.2", 40000), ("10.0.0.1", 80), false);
        let resp = tcp_flow(("10.0.0.1", 80), ("10.0.0.2", 40000), true);
        let a = r.ends(&req).unwrap();
        let b = r.ends(&resp).unwrap();
        assert_eq!(
            (a.client.id.as_str(), a.server.id.as_str()),
            ("ip:10.0.0.2", "ip:10.0.0.1")
        );
        assert_eq!(
            (b.client.id.as_str(), b.server.id.as_str()),
            ("ip:10.0.0.2", "ip:10.0.0.1")
        );
        assert_eq!(
            (b.client_addr.as_str(), b.server_addr.as_str()),
            ("10.0.0.2:40000", "10.0.0.1:80")
        );
    }

    #[test]
    fn processes_name_ends_and_are_remembered_for_flows_without_them() {
        let mut r = EndpointResolver::default();
        // Ingress to the server's socket (local = nginx), peer = curl.
        let req = with_processes(
            tcp_flow(("10.0.0.2", 40000), ("10.0.0.1", 80), false),
            Some((7, "nginx")),
            Some((9, "curl")),
        );
        let e = r.ends(&req).unwrap();
        assert_eq!(e.client.id, "process:9:curl");
        assert_eq!(
            (e.server.label.as_str(), e.server.detail.as_str()),
            ("nginx", "pid 7")
        );
        // A later packet of the connection without owners: the same nodes.
        let bare = tcp_flow(("10.0.0.1", 80), ("10.0.0.2", 40000), true);
        let e = r.ends(&bare).unwrap();
        assert_eq!(
            (e.client.id.as_str(), e.server.id.as_str()),
            ("process:9:curl", "process:7:nginx")
        );
    }

    #[test]
    fn an_owner_learned_later_names_earlier_flows_of_the_socket() {
        let mut r = EndpointResolver::default();
        let syn = r
            .ends(&tcp_flow(("10.0.0.2", 40000), ("10.0.0.1", 80), false))
            .unwrap();
        assert_eq!(syn.client.id, "ip:10.0.0.2");
        let socket = syn.client_socket.unwrap();
        assert!(r.late_owner(&socket, 1_000_000_000).is_none());
        let req = with_processes(
            tcp_flow(("10.0.0.2", 40000), ("10.0.0.1", 80), false),
            Some((7, "nginx")),
            Some((9, "curl")),
        );
        let e = r.ends(&req).unwrap();
        assert!(e.client_socket.is_none() && e.server_socket.is_none());
        assert_eq!(
            r.late_owner(&socket, 1_000_000_000).unwrap().id,
            "process:9:curl"
        );
        // Long after the owner was seen: a port reused since, not the same socket.
        assert!(r
            .late_owner(&socket, 1_000_000_000 + SOCKET_TTL_NS)
            .is_none());
    }

    #[test]
    fn outside_ends_are_pods_then_names_then_addresses() {
        let mut r = EndpointResolver::default();
        let mut f = tcp_flow(("10.0.0.2", 40000), ("93.184.216.34", 443), false);
        f.destination_names = vec!["example.com".into()];
        f.source = Some(Endpoint {
            namespace: "shop".into(),
            pod_name: "cart-1".into(),
            ..Default::default()
        });
        let e = r.ends(&f).unwrap();
        assert_eq!(
            (e.client.id.as_str(), e.client.kind),
            ("pod:shop/cart-1", NodeKind::Pod)
        );
        assert_eq!(
            (e.server.id.as_str(), e.server.kind),
            ("dns:example.com", NodeKind::Dns)
        );
        assert_eq!(e.server.detail, "93.184.216.34");
        assert!(r.ends(&Flow::default()).is_none());
    }
}
