//! The other agents for `peer.Peer/Notify`, found without the Kubernetes API: the addresses a
//! DNS name resolves to (a headless Service over the agents, `peer-service`), each asked its
//! node name with the Observer API's own `GetNodes`.
//!
//! A Cilium agent learns its peers from the cluster's node list; Hubble Relay only needs the
//! resulting stream (every peer's name and address, then changes), so this gives it the same
//! stream from what the node can reach: every [`RESOLVE_INTERVAL`] the name is resolved again,
//! a new address is announced (`PEER_ADDED`) once it answers `GetNodes`, and an address that
//! no longer resolves is withdrawn (`PEER_DELETED`). A failed lookup changes nothing, so a DNS
//! hiccup does not make Relay drop every node.
//!
//! When this agent serves TLS the others do too (one DaemonSet, one configuration): they are
//! asked over TLS (api/tls_dial.rs) and announced with the TLS server name each reports in
//! `GetNodes`, the name Relay then checks its certificate against.

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use tokio::{sync::watch, task::JoinSet};

use super::{
    peer::{self, PeerInfo, PeerSet},
    proto::observer::{observer_client::ObserverClient, GetNodesRequest},
    tls::TlsFiles,
};

/// How often the peer service name is resolved again (Relay's own retry cadence is seconds).
pub const RESOLVE_INTERVAL: Duration = Duration::from_secs(5);
/// How long a peer has to answer `GetNodes` before it is tried again next round.
const ASK_TIMEOUT: Duration = Duration::from_secs(3);

/// What is known of the addresses the peer service resolved to.
#[derive(Debug, Default)]
pub struct Discovery {
    /// Node name (and TLS server name) of each address that answered, for as long as the
    /// address resolves (asking every peer every round would cost N² calls a round across a
    /// cluster).
    names: HashMap<SocketAddr, (String, Option<String>)>,
    /// Set when the agents serve TLS: how to dial them.
    tls: Option<TlsFiles>,
    /// Rounds in a row each unnamed address has failed to answer.
    failures: HashMap<SocketAddr, u32>,
}

/// Rounds an address may fail before it is worth a warning (an agent that is starting answers
/// within a round or two; one that never does is misconfigured, TLS being the likely cause).
const WARN_AFTER_FAILURES: u32 = 6;

impl Discovery {
    /// Discovery of agents that serve TLS configured like this one.
    pub fn with_tls(tls: Option<TlsFiles>) -> Self {
        Self {
            names: HashMap::new(),
            tls,
            failures: HashMap::new(),
        }
    }

    /// One round: learns the names of new `addrs`, forgets the addresses that are gone, and
    /// makes `peers` hold this node plus every named address that is not this node.
    pub async fn round(&mut self, addrs: &[SocketAddr], peers: &PeerSet, me: &str) {
        self.names.retain(|a, _| addrs.contains(a));
        self.failures.retain(|a, _| addrs.contains(a));
        let mut asks = JoinSet::new();
        for &addr in addrs {
            if !self.names.contains_key(&addr) {
                let tls = self.tls.clone();
                asks.spawn(async move { (addr, node_name_at(addr, tls.as_ref()).await) });
            }
        }
        while let Some(done) = asks.join_next().await {
            match done {
                Ok((addr, Ok(named))) => {
                    self.names.insert(addr, named);
                    self.failures.remove(&addr);
                }
                Ok((addr, Err(e))) => {
                    let n = self.failures.entry(addr).or_default();
                    *n += 1;
                    if *n == WARN_AFTER_FAILURES {
                        tracing::warn!(
                            %addr,
                            error = %e,
                            tls = self.tls.is_some(),
                            "a peer the peer service resolves to keeps failing GetNodes; it is \
                             not announced (under mTLS this agent's certificate must allow \
                             client auth)"
                        );
                    } else {
                        tracing::debug!(%addr, error = %e, "peer did not answer GetNodes yet");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "peer lookup task failed"),
            }
        }
        // This node answering at a resolved address: that is where others reach it, which
        // fills in its own address when it could not be told (no route, no FLOWSCOPE_NODE_IP).
        if let Some(addr) = self
            .names
            .iter()
            .find(|(_, (n, _))| n.as_str() == me)
            .map(|(a, _)| a)
        {
            peers.resolve_unspecified(me, &addr.to_string());
        }
        let others = self
            .names
            .iter()
            .filter(|(_, (name, _))| name.as_str() != me)
            .map(|(addr, (name, tls_server_name))| PeerInfo {
                name: name.clone(),
                address: addr.to_string(),
                tls_server_name: tls_server_name.clone(),
            })
            .collect();
        peers.replace_others(me, others);
    }
}

/// The node name the agent at `addr` reports (the first node of its `GetNodes`), and when
/// it is dialled over TLS, the TLS server name it reports (Cilium's form of its node name if
/// it reports none).
async fn node_name_at(
    addr: SocketAddr,
    tls: Option<&TlsFiles>,
) -> Result<(String, Option<String>), String> {
    let channel = match tls {
        Some(files) => super::tls_dial::connect(addr, files, ASK_TIMEOUT).await?,
        None => tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| e.to_string())?
            .connect_timeout(ASK_TIMEOUT)
            .timeout(ASK_TIMEOUT)
            .connect()
            .await
            .map_err(|e| e.to_string())?,
    };
    let nodes = ObserverClient::new(channel)
        .get_nodes(GetNodesRequest {})
        .await
        .map_err(|e| e.to_string())?
        .into_inner()
        .nodes;
    let node = nodes
        .into_iter()
        .find(|n| !n.name.is_empty())
        .ok_or_else(|| "GetNodes listed no node".to_string())?;
    let server_name = tls.map(|_| {
        node.tls
            .map(|t| t.server_name)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| peer::tls_server_name(&node.name, super::CLUSTER_NAME))
    });
    Ok((node.name, server_name))
}

/// Resolves `target` (`HOST:PORT`) every [`RESOLVE_INTERVAL`] and keeps `peers` in step
/// until `stop` turns true. `me` is this node's peer name; `tls`: the agents serve TLS.
pub async fn run(
    target: String,
    me: String,
    peers: PeerSet,
    tls: Option<TlsFiles>,
    mut stop: watch::Receiver<bool>,
) {
    let mut discovery = Discovery::with_tls(tls);
    let mut failing = false;
    loop {
        match tokio::net::lookup_host(target.as_str()).await {
            Ok(addrs) => {
                failing = false;
                let mut addrs: Vec<SocketAddr> = addrs.collect();
                addrs.sort();
                addrs.dedup();
                discovery.round(&addrs, &peers, &me).await;
            }
            // Logged once per outage; the peers stay as they were.
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(%target, error = %e, "cannot resolve the peer service; keeping the known peers");
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(RESOLVE_INTERVAL) => {}
            _ = super::service::stopped(&mut stop) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio_stream::wrappers::TcpListenerStream;

    use super::*;
    use crate::api::{
        proto::observer::observer_server::ObserverServer, service::ObserverService,
        store::FlowStore, StatusHandle,
    };

    /// A real Observer API for node `name` on 127.0.0.1, until the test ends.
    async fn agent(name: &str) -> SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let svc = ObserverService::new(Arc::new(FlowStore::new(4, name)), StatusHandle::default());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(ObserverServer::new(svc))
                .serve_with_incoming(TcpListenerStream::new(l)),
        );
        addr
    }

    fn names(peers: &PeerSet) -> Vec<(String, String)> {
        peers
            .peers()
            .into_iter()
            .map(|p| (p.name, p.address))
            .collect()
    }

    #[tokio::test]
    async fn announces_the_agents_that_answer_and_withdraws_the_gone() {
        let me = agent("node-a").await;
        let b = agent("node-b").await;
        let c = agent("node-c").await;
        // An address where nothing listens: never announced.
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        // This node could not tell its address: the peer service tells it.
        let peers = PeerSet::new(PeerInfo {
            name: "node-a".into(),
            address: format!("0.0.0.0:{}", me.port()),
            tls_server_name: None,
        });
        let mut d = Discovery::default();
        d.round(&[me, b, c, dead], &peers, "node-a").await;
        assert_eq!(
            names(&peers),
            [
                ("node-a".to_string(), me.to_string()),
                ("node-b".to_string(), b.to_string()),
                ("node-c".to_string(), c.to_string()),
            ]
        );
        // node-c's address no longer resolves: withdrawn; this node always stays.
        d.round(&[b], &peers, "node-a").await;
        assert_eq!(
            names(&peers),
            [
                ("node-a".to_string(), me.to_string()),
                ("node-b".to_string(), b.to_string()),
            ]
        );
    }
}

#[cfg(test)]
mod tls_tests {
    use std::sync::Arc;

    use super::*;
    use crate::api::{
        peer::tls_server_name,
        proto::observer::observer_server::ObserverServer,
        service::ObserverService,
        store::FlowStore,
        tls::{self, test_pki::*, ReloadingConfig},
        StatusHandle,
    };

    /// A real Observer API for node `name` on 127.0.0.1 over (m)TLS, until the test ends.
    async fn tls_agent(name: &str, files: &TlsFiles) -> SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let svc = ObserverService::new(Arc::new(FlowStore::new(4, name)), StatusHandle::default())
            .with_tls(Some(tls_server_name(name, "default")));
        let tls = Arc::new(ReloadingConfig::load(files.clone()).unwrap());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(ObserverServer::new(svc))
                .serve_with_incoming(tls::incoming(l, tls)),
        );
        addr
    }

    #[tokio::test]
    async fn asks_tls_peers_over_mtls_and_announces_their_server_names() {
        let dir = temp_dir("discovery");
        let ca = Ca::new("cluster CA");
        // One certificate for every agent, issued the Cilium way.
        let (cert_file, key_file) = ca.write(&dir, "agent", &["*.default.hubble-grpc.cilium.io"]);
        let ca_file = dir.join("ca.crt");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        let files = TlsFiles {
            cert_file,
            key_file,
            client_ca_files: vec![ca_file],
        };
        let me = tls_agent("node-a", &files).await;
        let b = tls_agent("node-b.example", &files).await;
        let peers = PeerSet::new(PeerInfo {
            name: "node-a".into(),
            address: me.to_string(),
            tls_server_name: Some(tls_server_name("node-a", "default")),
        });
        let mut d = Discovery::with_tls(Some(files.clone()));
        d.round(&[me, b], &peers, "node-a").await;
        let got: Vec<_> = peers
            .peers()
            .into_iter()
            .map(|p| (p.name, p.tls_server_name))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "node-a".to_string(),
                    Some("node-a.default.hubble-grpc.cilium.io".to_string())
                ),
                (
                    "node-b.example".to_string(),
                    Some("node-b-example.default.hubble-grpc.cilium.io".to_string())
                ),
            ]
        );
        // TLS without client CAs: the peers are asked over TLS with no client certificate,
        // their chain unchecked (this agent has no CA to check it with; Relay checks it).
        let server_only = TlsFiles {
            client_ca_files: vec![],
            ..files.clone()
        };
        let c = tls_agent("node-c", &server_only).await;
        let peers_c = PeerSet::new(PeerInfo {
            name: "node-a".into(),
            address: me.to_string(),
            tls_server_name: None,
        });
        Discovery::with_tls(Some(server_only))
            .round(&[c], &peers_c, "node-a")
            .await;
        assert_eq!(
            peers_c
                .peers()
                .into_iter()
                .map(|p| (p.name, p.tls_server_name))
                .collect::<Vec<_>>()[1],
            (
                "node-c".to_string(),
                Some("node-c.default.hubble-grpc.cilium.io".to_string())
            )
        );
        // A plaintext asker learns nothing from TLS agents.
        let plain = PeerSet::new(PeerInfo {
            name: "node-a".into(),
            address: me.to_string(),
            tls_server_name: None,
        });
        Discovery::default().round(&[b], &plain, "node-a").await;
        assert_eq!(plain.peers().len(), 1);
        let _ = std::fs::remove_dir_all(dir);
    }
}
