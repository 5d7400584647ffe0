//! Hubble's peer service, `peer.Peer/Notify`: the stream Hubble Relay (and `hubble watch
//! peers`) reads to learn which nodes serve the Observer API and where.
//!
//! Cilium's contract (api/v1/peer/peer.proto, pkg/hubble/peer): on connect, every known peer
//! as `PEER_ADDED`; then each change as it happens — `PEER_ADDED` for a new peer,
//! `PEER_DELETED` for one that went, `PEER_UPDATED` when a peer's address or TLS settings
//! change. A peer is known by its name, so a renamed peer is a deletion and an addition.
//! flowscope's set always holds this node, and the other agents when a peer service is
//! configured (api/peer_discovery.rs).

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket},
    path::Path,
    pin::Pin,
    sync::Arc,
};

use tokio::sync::{mpsc, watch};
use tokio_stream::{wrappers::ReceiverStream, Stream};
use tonic::{Request, Response, Status};

use super::proto::peer::{
    peer_server, ChangeNotification, ChangeNotificationType, NotifyRequest, Tls,
};

/// Hubble's gRPC service name in TLS server names (Cilium's `defaults.GRPCServiceName`).
const HUBBLE_GRPC_SERVICE_NAME: &str = "hubble-grpc";
/// The domain of TLS server names (Cilium's `defaults.DomainName`).
const HUBBLE_DOMAIN_NAME: &str = "cilium.io";

/// A node serving the Observer API, as announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's name: the node name, `cluster/node` outside the default cluster.
    pub name: String,
    /// Where its API listens: `ip:port`, or `unix:///path` when it has no TCP listener.
    pub address: String,
    /// The name its TLS certificate is checked against; `None` when it serves plaintext.
    pub tls_server_name: Option<String>,
}

impl PeerInfo {
    fn notification(&self, change: ChangeNotificationType) -> ChangeNotification {
        ChangeNotification {
            name: self.name.clone(),
            address: self.address.clone(),
            r#type: change as i32,
            tls: self.tls_server_name.as_ref().map(|n| Tls {
                server_name: n.clone(),
            }),
        }
    }
}

/// The peer name Cilium gives a node (`types.Node.Fullname`): the node name alone in the
/// default cluster, `cluster/node` otherwise.
pub fn peer_name(node: &str, cluster: &str) -> String {
    if cluster.is_empty() || cluster == super::CLUSTER_NAME {
        node.to_string()
    } else {
        format!("{cluster}/{node}")
    }
}

/// Cilium's `TLSServerName`: `<node>.<cluster>.hubble-grpc.cilium.io`, dots in the node and
/// cluster names turned into dashes so every node's name is at the same DNS level (the form
/// Relay checks a peer's certificate against, and Cilium's certificates are issued for).
pub fn tls_server_name(node: &str, cluster: &str) -> String {
    if node.is_empty() {
        return String::new();
    }
    let cluster = if cluster.is_empty() {
        super::CLUSTER_NAME
    } else {
        cluster
    };
    format!(
        "{}.{}.{HUBBLE_GRPC_SERVICE_NAME}.{HUBBLE_DOMAIN_NAME}",
        node.replace('.', "-"),
        cluster.replace('.', "-")
    )
}

/// Where this node's Observer API is reachable from other nodes: the TCP listener's address
/// (with the node's address in place of an unspecified one), else the unix socket.
pub fn advertised_address(unix_socket: &Path, tcp: Option<SocketAddr>) -> String {
    let Some(addr) = tcp else {
        return format!("unix://{}", unix_socket.display());
    };
    if !addr.ip().is_unspecified() {
        return addr.to_string();
    }
    // When the node's address can't be told, the unspecified one: see `is_unspecified`.
    match node_ip(addr.is_ipv6()) {
        Some(ip) => SocketAddr::new(ip, addr.port()).to_string(),
        None => addr.to_string(),
    }
}

/// Whether an announced address is an unspecified one (`0.0.0.0:P`, `[::]:P`): this node's
/// address could not be told, and Relay would dial itself.
pub fn is_unspecified(address: &str) -> bool {
    address
        .parse::<SocketAddr>()
        .is_ok_and(|a| a.ip().is_unspecified())
}

/// This node's address for peers: `$FLOWSCOPE_NODE_IP` (the DaemonSet sets it from the
/// downward API's `status.hostIP`), else the source address the kernel picks towards the
/// default route (a UDP `connect` only looks the route up; nothing is sent), trying the
/// listener's family first.
pub fn node_ip(prefer_v6: bool) -> Option<IpAddr> {
    if let Some(ip) = std::env::var("FLOWSCOPE_NODE_IP")
        .ok()
        .and_then(|s| s.trim().parse().ok())
    {
        return Some(ip);
    }
    // Documentation addresses (RFC 5737, RFC 3849): only their route matters.
    let v4 = || route_source(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), "0.0.0.0:0");
    let v6 = || {
        route_source(
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            "[::]:0",
        )
    };
    if prefer_v6 {
        v6().or_else(v4)
    } else {
        v4().or_else(v6)
    }
}

fn route_source(dst: IpAddr, bind: &str) -> Option<IpAddr> {
    let s = UdpSocket::bind(bind).ok()?;
    s.connect(SocketAddr::new(dst, 9)).ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_unspecified() && !ip.is_loopback()).then_some(ip)
}

type PeerMap = BTreeMap<String, PeerInfo>;

/// The peers to announce, this node first among them. Cheap to clone; every change reaches
/// every open `Notify` stream.
#[derive(Debug, Clone)]
pub struct PeerSet {
    tx: Arc<watch::Sender<PeerMap>>,
}

impl PeerSet {
    /// A set holding `me`.
    pub fn new(me: PeerInfo) -> Self {
        let (tx, _) = watch::channel(PeerMap::from([(me.name.clone(), me)]));
        Self { tx: Arc::new(tx) }
    }

    /// Adds `peer`, or replaces the peer of the same name.
    pub fn upsert(&self, peer: PeerInfo) {
        self.tx.send_if_modified(|m| {
            if m.get(&peer.name) == Some(&peer) {
                return false;
            }
            m.insert(peer.name.clone(), peer);
            true
        });
    }

    /// Makes the set this node (`me`, kept as it is) plus exactly `others`.
    pub fn replace_others(&self, me: &str, others: Vec<PeerInfo>) {
        self.tx.send_if_modified(|m| {
            let mut new: PeerMap = others
                .into_iter()
                .filter(|p| p.name != me)
                .map(|p| (p.name.clone(), p))
                .collect();
            if let Some(p) = m.get(me) {
                new.insert(me.to_string(), p.clone());
            }
            if *m == new {
                return false;
            }
            *m = new;
            true
        });
    }

    /// Gives this node (`me`) the address `address` when its own is unspecified (a peer
    /// service found where this node answers).
    pub fn resolve_unspecified(&self, me: &str, address: &str) {
        self.tx.send_if_modified(|m| match m.get_mut(me) {
            Some(p) if is_unspecified(&p.address) && p.address != address => {
                p.address = address.to_string();
                true
            }
            _ => false,
        });
    }

    /// Removes the peer called `name`.
    pub fn remove(&self, name: &str) {
        self.tx.send_if_modified(|m| m.remove(name).is_some());
    }

    /// The peers now.
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.tx.borrow().values().cloned().collect()
    }

    fn subscribe(&self) -> watch::Receiver<PeerMap> {
        self.tx.subscribe()
    }
}

/// The notifications that take a client from `old` to `new`, by name: deletions first (so a
/// renamed peer's old name goes before its new one comes), then additions and updates.
fn changes(old: &PeerMap, new: &PeerMap) -> Vec<ChangeNotification> {
    let mut out: Vec<ChangeNotification> = old
        .values()
        .filter(|p| !new.contains_key(&p.name))
        .map(|p| p.notification(ChangeNotificationType::PeerDeleted))
        .collect();
    for p in new.values() {
        match old.get(&p.name) {
            None => out.push(p.notification(ChangeNotificationType::PeerAdded)),
            Some(o) if o != p => out.push(p.notification(ChangeNotificationType::PeerUpdated)),
            Some(_) => {}
        }
    }
    out
}

/// The `peer.Peer` service over a [`PeerSet`].
#[derive(Debug, Clone)]
pub struct PeerService {
    peers: PeerSet,
    stop: watch::Receiver<bool>,
}

impl PeerService {
    /// Serves `peers`; open streams end when `stop` turns true (a graceful shutdown waits for
    /// them, and a Notify stream never ends on its own).
    pub fn new(peers: PeerSet, stop: watch::Receiver<bool>) -> Self {
        Self { peers, stop }
    }
}

type NotifyStream = Pin<Box<dyn Stream<Item = Result<ChangeNotification, Status>> + Send>>;

#[tonic::async_trait]
impl peer_server::Peer for PeerService {
    type NotifyStream = NotifyStream;

    async fn notify(
        &self,
        _request: Request<NotifyRequest>,
    ) -> Result<Response<Self::NotifyStream>, Status> {
        let mut rx = self.peers.subscribe();
        let mut stop = self.stop.clone();
        let (tx, out) = mpsc::channel(16);
        tokio::spawn(async move {
            let mut known = PeerMap::new();
            loop {
                let now = rx.borrow_and_update().clone();
                for n in changes(&known, &now) {
                    if tx.send(Ok(n)).await.is_err() {
                        return;
                    }
                }
                known = now;
                tokio::select! {
                    changed = rx.changed() => if changed.is_err() { return },
                    _ = tx.closed() => return,
                    _ = super::service::stopped(&mut stop) => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out))))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio_stream::StreamExt;

    use super::*;
    use crate::api::proto::peer::peer_server::Peer as _;

    fn peer(name: &str, address: &str) -> PeerInfo {
        PeerInfo {
            name: name.into(),
            address: address.into(),
            tls_server_name: None,
        }
    }

    fn kinds(v: &[ChangeNotification]) -> Vec<(String, ChangeNotificationType)> {
        v.iter().map(|n| (n.name.clone(), n.r#type())).collect()
    }

    #[test]
    fn names_are_ciliums() {
        assert_eq!(peer_name("node-a", "default"), "node-a");
        assert_eq!(peer_name("node-a", ""), "node-a");
        assert_eq!(peer_name("node-a", "prod"), "prod/node-a");
        assert_eq!(
            tls_server_name("ip-10-0-0-1.ec2.internal", "default"),
            "ip-10-0-0-1-ec2-internal.default.hubble-grpc.cilium.io"
        );
        assert_eq!(
            tls_server_name("moseisley", "tatooine.galaxy"),
            "moseisley.tatooine-galaxy.hubble-grpc.cilium.io"
        );
        assert_eq!(tls_server_name("", "x"), "");
    }

    #[test]
    fn addresses() {
        let sock = Path::new("/run/flowscope/observer.sock");
        assert_eq!(
            advertised_address(sock, None),
            "unix:///run/flowscope/observer.sock"
        );
        assert_eq!(
            advertised_address(sock, Some("10.0.0.5:4244".parse().unwrap())),
            "10.0.0.5:4244"
        );
        assert_eq!(
            advertised_address(sock, Some("[2001:db8::5]:4244".parse().unwrap())),
            "[2001:db8::5]:4244"
        );
        // An unspecified listener is announced with some address of this node (never 0.0.0.0
        // when the node has a route), and its port.
        let a = advertised_address(sock, Some("0.0.0.0:4244".parse().unwrap()));
        assert!(a.ends_with(":4244"), "{a}");
        assert!(is_unspecified("0.0.0.0:4244") && is_unspecified("[::]:4244"));
        assert!(!is_unspecified("10.0.0.5:4244") && !is_unspecified("unix:///x.sock"));
    }

    #[test]
    fn changes_by_name() {
        let a = peer("a", "10.0.0.1:4244");
        let b = peer("b", "10.0.0.2:4244");
        let mut b2 = b.clone();
        b2.address = "10.0.0.22:4244".into();
        let map = |v: &[&PeerInfo]| -> PeerMap {
            v.iter().map(|p| (p.name.clone(), (*p).clone())).collect()
        };
        use ChangeNotificationType::*;
        assert_eq!(
            kinds(&changes(&PeerMap::new(), &map(&[&a, &b]))),
            [("a".into(), PeerAdded), ("b".into(), PeerAdded)]
        );
        assert_eq!(
            kinds(&changes(&map(&[&a, &b]), &map(&[&a, &b2]))),
            [("b".into(), PeerUpdated)]
        );
        let n = changes(&map(&[&a, &b]), &map(&[&a, &b2]));
        assert_eq!(n[0].address, "10.0.0.22:4244");
        assert_eq!(
            kinds(&changes(&map(&[&a, &b]), &map(&[&a]))),
            [("b".into(), PeerDeleted)]
        );
        let renamed = peer("c", "10.0.0.2:4244");
        assert_eq!(
            kinds(&changes(&map(&[&a, &b]), &map(&[&a, &renamed]))),
            [("b".into(), PeerDeleted), ("c".into(), PeerAdded)]
        );
        assert!(changes(&map(&[&a]), &map(&[&a])).is_empty());
    }

    async fn next(s: &mut NotifyStream) -> Option<Result<ChangeNotification, Status>> {
        tokio::time::timeout(Duration::from_secs(5), s.next())
            .await
            .expect("stream stalled")
    }

    #[tokio::test]
    async fn notify_announces_this_node_then_changes_and_ends_on_stop() {
        let mut me = peer("node-a", "10.0.0.1:4244");
        me.tls_server_name = Some(tls_server_name("node-a", "default"));
        let set = PeerSet::new(me.clone());
        let (stop_tx, stop) = watch::channel(false);
        let svc = PeerService::new(set.clone(), stop);
        let mut s = svc
            .notify(Request::new(NotifyRequest {}))
            .await
            .unwrap()
            .into_inner();
        let first = next(&mut s).await.unwrap().unwrap();
        assert_eq!(first.r#type(), ChangeNotificationType::PeerAdded);
        assert_eq!(
            (first.name.as_str(), first.address.as_str()),
            ("node-a", "10.0.0.1:4244")
        );
        assert_eq!(
            first.tls.unwrap().server_name,
            "node-a.default.hubble-grpc.cilium.io"
        );

        me.address = "10.0.0.9:4244".into();
        set.upsert(me.clone());
        set.upsert(me.clone()); // no change, no notification
        set.upsert(peer("node-b", "10.0.0.2:4244"));
        let upd = next(&mut s).await.unwrap().unwrap();
        assert_eq!(upd.r#type(), ChangeNotificationType::PeerUpdated);
        assert_eq!(upd.address, "10.0.0.9:4244");
        let add = next(&mut s).await.unwrap().unwrap();
        assert_eq!(
            (add.name.as_str(), add.r#type()),
            ("node-b", ChangeNotificationType::PeerAdded)
        );
        set.remove("node-b");
        let del = next(&mut s).await.unwrap().unwrap();
        assert_eq!(
            (del.name.as_str(), del.r#type()),
            ("node-b", ChangeNotificationType::PeerDeleted)
        );
        assert!(del.tls.is_none());

        // A client connecting now gets the current set as additions.
        let mut s2 = svc
            .notify(Request::new(NotifyRequest {}))
            .await
            .unwrap()
            .into_inner();
        let again = next(&mut s2).await.unwrap().unwrap();
        assert_eq!(
            (again.address.as_str(), again.r#type()),
            ("10.0.0.9:4244", ChangeNotificationType::PeerAdded)
        );

        stop_tx.send(true).unwrap();
        assert!(next(&mut s).await.is_none(), "stream ends on shutdown");
        assert!(next(&mut s2).await.is_none(), "stream ends on shutdown");
    }
}
