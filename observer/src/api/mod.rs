//! The Hubble-compatible Observer API: the ring of recent flows ([`store::FlowStore`]), the
//! `observer.Observer`, `peer.Peer`, `grpc.health.v1.Health` and `flowscope.Agent` gRPC
//! services, and the filters they share with `flowscope observe`.
//!
//! The agent wires it like this:
//!
//! ```ignore
//! let cfg = ApiConfig { unix_socket, tcp: None, max_flows: 65_536, node_name, ..Default::default() };
//! let store = cfg.new_store();
//! let status = StatusHandle::default();          // status.set_provider(|| AgentStatus {..})
//! tokio::spawn(api::serve(cfg, store.clone(), status.clone(), shutdown_future));
//! store.push_record(&flow);                     // for every flows::record::Flow
//! store.note_lost(LostSource::KernelRing, n);   // when the kernel ring overflowed
//! ```

// Parts of this surface are for the agent and `replay` to wire in.
#![allow(dead_code)]

pub mod convert;
pub mod dns_names;
pub mod drop_reason;
pub mod endpoints;
pub mod filter;
pub mod health;
pub mod identity;
pub mod namespaces;
pub mod peer;
pub mod peer_discovery;
pub mod pods;
pub mod proto;
pub mod service;
pub mod status;
pub mod store;
pub mod summary;
pub mod tcp_health;
pub mod tls;
pub mod tls_dial;

use std::{
    future::Future,
    io,
    net::SocketAddr,
    os::unix::fs::{FileTypeExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{bail, Context, Result};
use tokio::{net::UnixListener, sync::watch};
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};

// The agent's entry points.
#[allow(unused_imports)]
pub use status::{AgentStatus, StatusHandle};
#[allow(unused_imports)]
pub use store::{FlowStore, LostSource};

use peer::{PeerInfo, PeerService, PeerSet};
use proto::{
    flowscope::agent_server::AgentServer, observer::observer_server::ObserverServer,
    peer::peer_server::PeerServer,
};
use service::ObserverService;

/// Default unix socket of the API (and default `--server` of `flowscope observe`).
pub const DEFAULT_SOCKET: &str = "/var/run/flowscope/observer.sock";

/// The cluster name flowscope reports (in namespaces, peer and TLS server names): Cilium's
/// default cluster name, since flowscope has no cluster setting.
pub const CLUSTER_NAME: &str = "default";

/// How often this node's interface addresses and the other nodes' addresses (for the
/// `host` / `remote-node` identities) are read again.
const NODE_ADDRESSES_REFRESH: std::time::Duration = std::time::Duration::from_secs(10);

/// How often the address announced to peers is looked up again (it changes when the node's
/// address does and the TCP listener is bound to an unspecified address).
const PEER_ADDRESS_RECHECK: std::time::Duration = std::time::Duration::from_secs(30);

/// Where and how to serve the API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Unix socket path (mode 0660; its directory is created).
    pub unix_socket: PathBuf,
    /// Also serve gRPC on this TCP address: over TLS when `tls` is set, else plaintext.
    pub tcp: Option<SocketAddr>,
    /// TLS (and mTLS with client CA files) on the TCP listener.
    pub tls: Option<tls::TlsFiles>,
    /// The TLS server name this node announces to peers; `None`: Cilium's
    /// `<node>.<cluster>.hubble-grpc.cilium.io`.
    pub tls_server_name: Option<String>,
    /// Ring capacity for [`ApiConfig::new_store`].
    pub max_flows: usize,
    /// Node name stamped on flows.
    pub node_name: String,
    /// `HOST:PORT` resolving to every agent (a headless Service): the other agents announced
    /// by `peer.Peer/Notify`, for Hubble Relay. `None`: this node only.
    pub peer_service: Option<String>,
    /// How the ends of flows are resolved (pods, DNS names).
    pub endpoints: endpoints::EndpointsConfig,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            unix_socket: PathBuf::from(DEFAULT_SOCKET),
            tcp: None,
            tls: None,
            tls_server_name: None,
            max_flows: store::DEFAULT_MAX_FLOWS,
            node_name: default_node_name(),
            peer_service: None,
            endpoints: endpoints::EndpointsConfig::default(),
        }
    }
}

impl ApiConfig {
    /// A store sized and named per this config, resolving flow ends per `endpoints` (this
    /// node's addresses read now; [`serve`] keeps them current).
    pub fn new_store(&self) -> Arc<FlowStore> {
        let resolver = endpoints::EndpointResolver::new(&self.endpoints);
        resolver.addresses().refresh_local();
        Arc::new(
            FlowStore::new(self.max_flows, self.node_name.clone())
                .with_endpoints(Arc::new(resolver)),
        )
    }
}

/// This host's name (what Hubble uses as node name outside Kubernetes); `$NODE_NAME` wins,
/// as set by the DaemonSet from the downward API.
pub fn default_node_name() -> String {
    if let Ok(n) = std::env::var("NODE_NAME") {
        if !n.is_empty() {
            return n;
        }
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Binds the unix socket: creates the directory, removes a stale socket left by a dead agent
/// (refuses when another agent still answers on it), sets mode 0660.
fn bind_unix(path: &Path) -> Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the API socket directory {}", dir.display()))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(md) if md.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                bail!(
                    "another process is serving {} — is another `flowscope agent` running? \
                     Stop it or pass a different --listen",
                    path.display()
                );
            }
            std::fs::remove_file(path)
                .with_context(|| format!("cannot remove the stale socket {}", path.display()))?;
        }
        Ok(_) => bail!(
            "{} exists and is not a socket; refusing to replace it",
            path.display()
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", path.display())),
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("cannot listen on unix socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("cannot chmod 0660 {}", path.display()))?;
    Ok(listener)
}

/// Removes the socket file when dropped (on shutdown, error or panic).
struct SocketGuard(PathBuf);

impl Drop for SocketGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Serves `observer.Observer`, `peer.Peer`, `grpc.health.v1.Health` and `flowscope.Agent` on
/// the unix socket (and TCP when configured) until `shutdown` completes; removes the socket
/// file before returning.
pub async fn serve(
    cfg: ApiConfig,
    store: Arc<FlowStore>,
    status: StatusHandle,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    // The TLS files first: a bad file is a start-up error naming it, before anything binds.
    let tls = match (&cfg.tcp, &cfg.tls) {
        (Some(_), Some(files)) => Some(Arc::new(tls::ReloadingConfig::load(files.clone())?)),
        _ => None,
    };
    let tls_server_name = tls.as_ref().map(|_| {
        cfg.tls_server_name
            .clone()
            .unwrap_or_else(|| peer::tls_server_name(&cfg.node_name, CLUSTER_NAME))
    });
    let unix = bind_unix(&cfg.unix_socket)?;
    let _guard = SocketGuard(cfg.unix_socket.clone());
    let tcp = match cfg.tcp {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} for the API"))?,
        ),
        None => None,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let svc = ObserverService::new(store.clone(), status)
        .with_stop(stop_rx.clone())
        .with_tls(tls_server_name.clone());
    // This node, as Relay learns it: a TLS server name when the listener serves TLS.
    let (node, socket) = (cfg.node_name.clone(), cfg.unix_socket.clone());
    let me = move |tcp: Option<SocketAddr>| PeerInfo {
        name: peer::peer_name(&node, CLUSTER_NAME),
        address: peer::advertised_address(&socket, tcp),
        tls_server_name: tls_server_name.clone(),
    };
    let tcp_addr = match &tcp {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    let first = me(tcp_addr);
    if peer::is_unspecified(&first.address) {
        tracing::warn!(
            address = %first.address,
            "cannot tell this node's address for peers (no default route): set \
             FLOWSCOPE_NODE_IP, or a peer service will tell it"
        );
    }
    let peers = PeerSet::new(first);
    tokio::spawn(refresh_node_addresses(
        store.clone(),
        peers.clone(),
        cfg.node_name.clone(),
        stop_rx.clone(),
    ));
    let peer_svc = PeerService::new(peers.clone(), stop_rx.clone());
    if let Some(target) = cfg.peer_service.clone() {
        tracing::info!(%target, "announcing the agents the peer service resolves to");
        tokio::spawn(peer_discovery::run(
            target,
            peer::peer_name(&cfg.node_name, CLUSTER_NAME),
            peers.clone(),
            tls.as_ref().map(|t| t.files().clone()),
            stop_rx.clone(),
        ));
    }
    if tcp_addr.is_some_and(|a| a.ip().is_unspecified()) {
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(PEER_ADDRESS_RECHECK) => {
                        // Never back to an unspecified address once one is known.
                        let now = me(tcp_addr);
                        if !peer::is_unspecified(&now.address) {
                            peers.upsert(now);
                        }
                    }
                    _ = service::stopped(&mut stop) => return,
                }
            }
        });
    }
    let (health, health_svc) = health::health_service().await;
    {
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            service::stopped(&mut stop).await;
            health::set_all(&health, tonic_health::ServingStatus::NotServing).await;
        });
    }
    let router = || {
        tonic::transport::Server::builder()
            .add_service(health_svc.clone())
            .add_service(ObserverServer::new(svc.clone()))
            .add_service(PeerServer::new(peer_svc.clone()))
            .add_service(AgentServer::new(svc.clone()))
    };
    tracing::info!(socket = %cfg.unix_socket.display(), "observer API listening");
    let unix_srv = router()
        .serve_with_incoming_shutdown(UnixListenerStream::new(unix), stopped(stop_rx.clone()));
    let Some(l) = tcp else {
        return unix_srv.await.context("observer API (unix socket) failed");
    };
    let addr = l.local_addr()?;
    let tcp_srv = async {
        match tls {
            Some(tls) => {
                let files = tls.files();
                tracing::info!(
                    %addr,
                    cert = %files.cert_file.display(),
                    client_cas = files.client_ca_files.len(),
                    "observer API listening on TCP ({})",
                    if files.mutual() { "mTLS: client certificates required" } else { "TLS" }
                );
                router()
                    .serve_with_incoming_shutdown(tls::incoming(l, tls), stopped(stop_rx.clone()))
                    .await
            }
            None => {
                tracing::warn!(
                    %addr,
                    "observer API listening on TCP in plaintext (--disable-tls): anyone who \
                     reaches this port reads every flow"
                );
                router()
                    .serve_with_incoming_shutdown(
                        TcpListenerStream::new(l),
                        stopped(stop_rx.clone()),
                    )
                    .await
            }
        }
    };
    let (a, b) = tokio::join!(unix_srv, tcp_srv);
    a.context("observer API (unix socket) failed")?;
    b.context("observer API (TCP) failed")?;
    Ok(())
}

/// Keeps the store's view of which addresses are this node's and which are the other
/// agents' nodes current, until `stop`.
async fn refresh_node_addresses(
    store: Arc<FlowStore>,
    peers: PeerSet,
    node_name: String,
    mut stop: watch::Receiver<bool>,
) {
    let me = peer::peer_name(&node_name, CLUSTER_NAME);
    loop {
        let addresses = store.endpoints().addresses();
        addresses.refresh_local();
        // The peer service resolves to the agents' (host-network) addresses: their nodes'.
        addresses.set_remote_nodes(
            peers
                .peers()
                .into_iter()
                .filter(|p| p.name != me)
                .filter_map(|p| p.address.parse::<SocketAddr>().ok())
                .map(|a| a.ip()),
        );
        tokio::select! {
            _ = tokio::time::sleep(NODE_ADDRESSES_REFRESH) => {}
            _ = service::stopped(&mut stop) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio_stream::StreamExt;

    use super::*;
    use crate::api::proto::{
        flow::FlowFilter,
        flowscope::{agent_client::AgentClient, GetAgentStatusRequest},
        observer::{
            get_flows_response::ResponseTypes, observer_client::ObserverClient,
            GetAgentEventsRequest, GetDebugEventsRequest, GetFlowsRequest, GetNamespacesRequest,
            ServerStatusRequest,
        },
        peer::{peer_client::PeerClient, ChangeNotificationType, NotifyRequest},
    };

    fn temp_socket(name: &str) -> PathBuf {
        std::env::temp_dir()
            .join(format!("flowscope-api-{}-{name}", std::process::id()))
            .join("run/observer.sock")
    }

    #[tokio::test]
    async fn serves_the_hubble_api_on_a_unix_socket() {
        let sock = temp_socket("serve");
        // A stale socket file left by a dead agent is replaced.
        std::fs::create_dir_all(sock.parent().unwrap()).unwrap();
        drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
        let cfg = ApiConfig {
            unix_socket: sock.clone(),
            tcp: None,
            max_flows: 10,
            node_name: "n1".into(),
            peer_service: None,
            ..ApiConfig::default()
        };
        let store = cfg.new_store();
        store.push_record(&convert::tests::http_request());
        store.push_record(&convert::tests::tcp_syn());
        store.note_lost(LostSource::KernelRing, 5);
        let status = StatusHandle::new(AgentStatus {
            capture_path: "tc".into(),
            attachments: vec![("eth0".into(), "tcx".into())],
            attribution: "kprobe".into(),
            counters: vec![("kernel_ring_full_lost".into(), 5)],
            tls_libraries: Vec::new(),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(cfg, store, status, async {
            let _ = stopped.await;
        }));
        let url = format!("unix://{}", sock.display());
        let mut channel = None;
        for _ in 0..100 {
            if let Ok(c) = crate::cli::client::connect(&url).await {
                channel = Some(c);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let channel = channel.expect("server came up");
        let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);

        let mut observer = ObserverClient::new(channel.clone());
        let st = observer
            .server_status(ServerStatusRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!((st.num_flows, st.max_flows, st.seen_flows), (2, 10, 2));
        assert!(st.version.starts_with("flowscope v"));
        // Like a Cilium agent's: no node counts (Relay fills those).
        assert_eq!(
            (st.num_connected_nodes, st.num_unavailable_nodes),
            (None, None)
        );

        let req = GetFlowsRequest {
            whitelist: vec![FlowFilter {
                protocol: vec!["http".into()],
                ..Default::default()
            }],
            ..Default::default()
        };
        let flows: Vec<_> = observer
            .get_flows(req)
            .await
            .unwrap()
            .into_inner()
            .collect::<Vec<_>>()
            .await;
        assert_eq!(flows.len(), 1);
        let resp = flows[0].as_ref().unwrap();
        assert_eq!(resp.node_name, "n1");
        let Some(ResponseTypes::Flow(f)) = &resp.response_types else {
            panic!("not a flow")
        };
        assert_eq!(f.ip.as_ref().unwrap().destination, "198.18.0.1");
        assert!(f.extensions.is_none(), "not asked for");

        let bad = GetFlowsRequest {
            blacklist: vec![FlowFilter {
                http_status_code: vec!["600".into()],
                ..Default::default()
            }],
            ..Default::default()
        };
        let err = observer.get_flows(bad).await.err().unwrap();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);

        // What `hubble status` asks first, on the same socket.
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
        for name in ["", "hubble.server.Observer", "observer.Observer"] {
            let r = health
                .check(tonic_health::pb::HealthCheckRequest {
                    service: name.into(),
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(r.status, 1, "SERVING for {name:?}");
        }
        // `hubble watch peers`: this node, at its socket, plaintext.
        let mut notify = PeerClient::new(channel.clone())
            .notify(NotifyRequest {})
            .await
            .unwrap()
            .into_inner();
        let me = notify.next().await.unwrap().unwrap();
        assert_eq!(
            (me.name.as_str(), me.r#type(), me.tls),
            ("n1", ChangeNotificationType::PeerAdded, None)
        );
        assert_eq!(me.address, format!("unix://{}", sock.display()));
        // No pods seen: no namespaces. Agent and debug events: a clear UNIMPLEMENTED.
        let ns = observer
            .get_namespaces(GetNamespacesRequest {})
            .await
            .unwrap()
            .into_inner();
        assert!(ns.namespaces.is_empty());
        let err = observer
            .get_agent_events(GetAgentEventsRequest::default())
            .await
            .err()
            .unwrap();
        assert_eq!(err.code(), tonic::Code::Unimplemented);
        assert!(
            err.message().contains("without Cilium"),
            "{}",
            err.message()
        );
        let err = observer
            .get_debug_events(GetDebugEventsRequest::default())
            .await
            .err()
            .unwrap();
        assert_eq!(err.code(), tonic::Code::Unimplemented);

        let agent = AgentClient::new(channel)
            .get_agent_status(GetAgentStatusRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(agent.capture_path, "tc");
        assert_eq!(agent.attachments[0].iface, "eth0");
        let lost = agent
            .counters
            .iter()
            .find(|c| c.name == "lost_events_kernel_ring")
            .unwrap();
        assert_eq!(lost.value, 5);

        // An open --follow stream must not hold the shutdown up.
        let mut follow = observer
            .get_flows(GetFlowsRequest {
                follow: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        stop.send(()).unwrap();
        let end = tokio::time::timeout(Duration::from_secs(5), follow.next())
            .await
            .expect("follow stream ended on shutdown");
        assert!(matches!(end, None | Some(Err(_))), "{end:?}");
        // Nor an open Notify stream.
        let end = tokio::time::timeout(Duration::from_secs(5), notify.next())
            .await
            .expect("notify stream ended on shutdown");
        assert!(matches!(end, None | Some(Err(_))), "{end:?}");
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("server stopped")
            .unwrap()
            .unwrap();
        assert!(!sock.exists(), "socket removed on shutdown");
        let _ = std::fs::remove_dir_all(sock.parent().unwrap().parent().unwrap());
    }

    /// The other agents the peer service announced are `remote-node`, this node's own
    /// interface addresses `host`.
    #[tokio::test]
    async fn other_agents_nodes_are_remote_nodes() {
        let store = Arc::new(FlowStore::new(4, "n1"));
        let peers = PeerSet::new(PeerInfo {
            name: peer::peer_name("n1", CLUSTER_NAME),
            address: "192.0.2.10:4244".into(),
            tls_server_name: None,
        });
        peers.upsert(PeerInfo {
            name: peer::peer_name("n2", CLUSTER_NAME),
            address: "192.0.2.11:4244".into(),
            tls_server_name: None,
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(refresh_node_addresses(
            store.clone(),
            peers,
            "n1".into(),
            stop_rx,
        ));
        let addresses = store.endpoints().addresses();
        for _ in 0..100 {
            if addresses.identity_of("192.0.2.11".parse().unwrap())
                == identity::ReservedIdentity::RemoteNode
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        use identity::ReservedIdentity::*;
        let id = |a: &str| addresses.identity_of(a.parse().unwrap());
        assert_eq!(id("192.0.2.11"), RemoteNode);
        // This node's announced address is no remote node (nor, here, an interface's).
        assert_eq!(id("192.0.2.10"), World);
        assert_eq!(id("127.0.0.1"), Host);
        stop_tx.send(true).unwrap();
        task.await.unwrap();
    }

    #[test]
    fn refuses_to_replace_a_live_socket_or_a_file() {
        let sock = temp_socket("live");
        std::fs::create_dir_all(sock.parent().unwrap()).unwrap();
        let live = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let err = bind_unix(&sock).err().unwrap().to_string();
        assert!(err.contains("another process is serving"), "{err}");
        drop(live);
        std::fs::remove_file(&sock).unwrap();
        std::fs::write(&sock, "x").unwrap();
        let err = bind_unix(&sock).err().unwrap().to_string();
        assert!(err.contains("not a socket"), "{err}");
        let _ = std::fs::remove_dir_all(sock.parent().unwrap().parent().unwrap());
    }

    #[tokio::test]
    async fn a_missing_agent_is_a_clear_error() {
        let err = crate::cli::client::connect("unix:///nonexistent/flowscope/observer.sock")
            .await
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            err,
            "cannot reach the flowscope agent at unix:///nonexistent/flowscope/observer.sock: \
             No such file or directory — is `flowscope agent` running?"
        );
    }
}
