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

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use tokio::{sync::watch, task::JoinSet};

use super::{
    peer::{PeerInfo, PeerSet},
    proto::observer::{observer_client::ObserverClient, GetNodesRequest},
};

/// How often the peer service name is resolved again (Relay's own retry cadence is seconds).
pub const RESOLVE_INTERVAL: Duration = Duration::from_secs(5);
/// How long a peer has to answer `GetNodes` before it is tried again next round.
const ASK_TIMEOUT: Duration = Duration::from_secs(3);

/// What is known of the addresses the peer service resolved to.
#[derive(Debug, Default)]
pub struct Discovery {
    /// Node name of each address that answered, for as long as the address resolves (asking
    /// every peer every round would cost N² calls a round across a cluster).
    names: HashMap<SocketAddr, String>,
}

impl Discovery {
    /// One round: learns the names of new `addrs`, forgets the addresses that are gone, and
    /// makes `peers` hold this node plus every named address that is not this node.
    pub async fn round(&mut self, addrs: &[SocketAddr], peers: &PeerSet, me: &str) {
        self.names.retain(|a, _| addrs.contains(a));
        let mut asks = JoinSet::new();
        for &addr in addrs {
            if !self.names.contains_key(&addr) {
                asks.spawn(async move { (addr, node_name_at(addr).await) });
            }
        }
        while let Some(done) = asks.join_next().await {
            match done {
                Ok((addr, Ok(name))) => {
                    self.names.insert(addr, name);
                }
                Ok((addr, Err(e))) => {
                    tracing::debug!(%addr, error = %e, "peer did not answer GetNodes yet");
                }
                Err(e) => tracing::warn!(error = %e, "peer lookup task failed"),
            }
        }
        // This node answering at a resolved address: that is where others reach it, which
        // fills in its own address when it could not be told (no route, no FLOWSCOPE_NODE_IP).
        if let Some(addr) = self
            .names
            .iter()
            .find(|(_, n)| n.as_str() == me)
            .map(|(a, _)| a)
        {
            peers.resolve_unspecified(me, &addr.to_string());
        }
        let others = self
            .names
            .iter()
            .filter(|(_, name)| name.as_str() != me)
            .map(|(addr, name)| PeerInfo {
                name: name.clone(),
                address: addr.to_string(),
                // Plaintext: a TLS listener would announce its server name here.
                tls_server_name: None,
            })
            .collect();
        peers.replace_others(me, others);
    }
}

/// The node name the agent at `addr` reports (the first node of its `GetNodes`).
async fn node_name_at(addr: SocketAddr) -> Result<String, String> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .connect_timeout(ASK_TIMEOUT)
        .timeout(ASK_TIMEOUT);
    let channel = endpoint.connect().await.map_err(|e| e.to_string())?;
    let nodes = ObserverClient::new(channel)
        .get_nodes(GetNodesRequest {})
        .await
        .map_err(|e| e.to_string())?
        .into_inner()
        .nodes;
    nodes
        .into_iter()
        .map(|n| n.name)
        .find(|n| !n.is_empty())
        .ok_or_else(|| "GetNodes listed no node".to_string())
}

/// Resolves `target` (`HOST:PORT`) every [`RESOLVE_INTERVAL`] and keeps `peers` in step
/// until `stop` turns true. `me` is this node's peer name.
pub async fn run(target: String, me: String, peers: PeerSet, mut stop: watch::Receiver<bool>) {
    let mut discovery = Discovery::default();
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
