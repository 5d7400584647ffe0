//! Flows → service map: who talks to whom, with requests/s, error rate, status mix, p50/p99
//! latency, drops and resets over a time window, bounded to the top N nodes.
//!
//! Sans-IO like the engine: flows go in with [`ServiceMap::observe`], time is a parameter of
//! [`ServiceMap::snapshot`], and nothing here reads a clock. Each flow leaves one small
//! [`Sample`]; a snapshot folds the samples of its window, so any window up to
//! [`ServiceMap::retention_ns`] can be asked for without keeping a set of counters per window.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
    sync::Arc,
};

use serde::Serialize;

use super::endpoint::{EndpointResolver, Node, NodeKind};
use crate::api::{
    convert::timestamp_ns,
    proto::{
        flow::{layer4::Protocol, layer7::Record, Flow, L7FlowType, Verdict},
        flowscope::FlowExtension,
    },
};

/// Id of the node the nodes past the top N are folded into.
pub const OTHER_ID: &str = "other";

/// What one flow adds to its edge.
#[derive(Debug, Clone, PartialEq)]
enum Event {
    /// An L7 response: one finished exchange.
    Exchange {
        /// `2xx`, `4xx`, gRPC `NotFound`, DNS `NXDOMAIN`, ...
        status: String,
        /// Counts toward the error rate (see [`exchange_status`]).
        error: bool,
        /// Request to response, when the agent saw both.
        latency_ns: Option<u64>,
    },
    /// Any other flow: a packet, or an L7 request still waiting for its response.
    Packet { dropped: bool, reset: bool },
}

/// One flow, reduced to what the map needs.
#[derive(Debug, Clone)]
struct Sample {
    time_ns: u64,
    client: Arc<Node>,
    server: Arc<Node>,
    /// The ends' sockets where their owners were not known yet: a snapshot names them by the
    /// owner learned since ([`EndpointResolver::late_owner`]).
    client_socket: Option<Box<(String, u32)>>,
    server_socket: Option<Box<(String, u32)>>,
    protocol: &'static str,
    event: Event,
}

/// The map's state: the samples of the last [`ServiceMap::retention_ns`].
#[derive(Debug)]
pub struct ServiceMap {
    samples: VecDeque<Sample>,
    resolver: EndpointResolver,
    retention_ns: u64,
    max_samples: usize,
    /// Samples dropped because `max_samples` was reached before they aged out.
    overflowed: u64,
}

/// One edge of a snapshot: every flow between `client` and `server` in the window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EdgeStats {
    /// `client->server`.
    pub id: String,
    /// Node id of the client end (or [`OTHER_ID`]).
    pub client: String,
    /// Node id of the server end (or [`OTHER_ID`]).
    pub server: String,
    /// Every protocol seen on the edge, L7 first: `http`, `grpc`, `dns`, `tcp`, `udp`, ...
    pub protocols: Vec<&'static str>,
    /// Flows of any kind.
    pub flows: u64,
    /// Finished exchanges (L7 responses).
    pub requests: u64,
    /// `requests` / window.
    pub requests_per_second: f64,
    /// Exchanges that failed (see [`exchange_status`]).
    pub errors: u64,
    /// `errors / requests` (0 without requests).
    pub error_rate: f64,
    /// Exchanges by status: `{"2xx": 12, "5xx": 1}`.
    pub statuses: BTreeMap<String, u64>,
    /// Median and 99th percentile of the exchanges' latency (nearest rank), when any had one.
    pub p50_latency_ns: Option<u64>,
    /// 99th percentile, likewise.
    pub p99_latency_ns: Option<u64>,
    /// DROPPED flows.
    pub drops: u64,
    /// TCP segments with RST.
    pub resets: u64,
}

/// One node of a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeStats {
    /// Who it is (id, label, kind).
    #[serde(flatten)]
    pub node: Node,
    /// Flows it is an end of, in the window.
    pub flows: u64,
    /// For the "other" node: the ids folded into it (the page filters the table by them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
}

/// The map over one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MapSnapshot {
    /// End of the window (ns since the epoch).
    pub now_ns: u64,
    /// Length of the window (cut to the map's retention).
    pub window_ns: u64,
    /// Top-N bound the snapshot was made with.
    pub top: usize,
    /// Sorted by id, so a page can diff snapshots cheaply.
    pub nodes: Vec<NodeStats>,
    /// Sorted by id.
    pub edges: Vec<EdgeStats>,
    /// Samples dropped since start because the sample cap was reached.
    pub overflowed: u64,
}

impl ServiceMap {
    /// A map that answers windows up to `retention_ns` and keeps at most `max_samples` flows.
    pub fn new(retention_ns: u64, max_samples: usize) -> Self {
        ServiceMap {
            samples: VecDeque::new(),
            resolver: EndpointResolver::default(),
            retention_ns,
            max_samples,
            overflowed: 0,
        }
    }

    /// The resolver the map names ends with (the flow table names rows with it too, so a row
    /// and an edge agree on node ids).
    pub fn resolver(&mut self) -> &mut EndpointResolver {
        &mut self.resolver
    }

    /// Adds one flow (call for every flow the agent streams, in order). Flows without
    /// addresses are ignored.
    pub fn observe(&mut self, f: &Flow) {
        let Some(ends) = self.resolver.ends(f) else {
            return;
        };
        let time_ns = f.time.as_ref().map(timestamp_ns).unwrap_or(0);
        if self.samples.len() >= self.max_samples {
            self.samples.pop_front();
            self.overflowed += 1;
        }
        self.samples.push_back(Sample {
            time_ns,
            client: ends.client,
            server: ends.server,
            client_socket: ends.client_socket,
            server_socket: ends.server_socket,
            protocol: protocol(f),
            event: event(f),
        });
    }

    /// Drops samples older than the retention (call now and then with the current time).
    pub fn expire(&mut self, now_ns: u64) {
        let cutoff = now_ns.saturating_sub(self.retention_ns);
        let before = self.samples.len();
        while self.samples.front().is_some_and(|s| s.time_ns < cutoff) {
            self.samples.pop_front();
        }
        if self.samples.len() != before {
            self.resolver.forget_unused();
        }
    }

    /// The map of the flows in `(now_ns - window_ns, now_ns]`, with the `top` nodes by flows
    /// and the rest folded into one "other" node.
    pub fn snapshot<'a>(&'a self, now_ns: u64, window_ns: u64, top: usize) -> MapSnapshot {
        let window_ns = window_ns.clamp(1, self.retention_ns.max(1));
        let start = now_ns.saturating_sub(window_ns);
        let named = |node: &'a Arc<Node>, socket: &Option<Box<(String, u32)>>, at: u64| {
            socket
                .as_deref()
                .and_then(|s| self.resolver.late_owner(s, at))
                .unwrap_or(node)
        };
        let in_window: Vec<(&Arc<Node>, &Arc<Node>, &Sample)> = self
            .samples
            .iter()
            .filter(|s| s.time_ns > start && s.time_ns <= now_ns)
            .map(|s| {
                let client = named(&s.client, &s.client_socket, s.time_ns);
                let server = named(&s.server, &s.server_socket, s.time_ns);
                (client, server, s)
            })
            .collect();

        // Rank nodes by the flows they are an end of; ties by id, so the cut is stable.
        let mut traffic: HashMap<&str, (u64, &Arc<Node>)> = HashMap::new();
        for (client, server, _) in &in_window {
            for n in [*client, *server] {
                traffic.entry(n.id.as_str()).or_insert((0, n)).0 += 1;
            }
        }
        let mut ranked: Vec<(&str, u64)> = traffic.iter().map(|(id, (c, _))| (*id, *c)).collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let kept: BTreeSet<&str> = ranked.iter().take(top).map(|(id, _)| *id).collect();
        let fold = |n: &Node| -> String {
            if kept.contains(n.id.as_str()) {
                n.id.clone()
            } else {
                OTHER_ID.to_string()
            }
        };

        let mut nodes: BTreeMap<String, NodeStats> = BTreeMap::new();
        for (id, (count, node)) in &traffic {
            if kept.contains(*id) {
                nodes.insert(
                    node.id.clone(),
                    NodeStats {
                        node: Node::clone(node),
                        flows: *count,
                        members: Vec::new(),
                    },
                );
            } else {
                let other = nodes
                    .entry(OTHER_ID.to_string())
                    .or_insert_with(|| NodeStats {
                        node: Node {
                            id: OTHER_ID.into(),
                            label: "other".into(),
                            detail: String::new(),
                            kind: NodeKind::Other,
                        },
                        flows: 0,
                        members: Vec::new(),
                    });
                other.flows += count;
                other.members.push(node.id.clone());
            }
        }
        if let Some(other) = nodes.get_mut(OTHER_ID) {
            other.members.sort();
            other.node.detail = format!("{} more", other.members.len());
        }

        let mut edges: BTreeMap<(String, String), (EdgeStats, Vec<u64>)> = BTreeMap::new();
        for (client, server, s) in &in_window {
            let (client, server) = (fold(client), fold(server));
            let (e, latencies) = edges
                .entry((client.clone(), server.clone()))
                .or_insert_with(|| {
                    let stats = EdgeStats {
                        id: format!("{client}->{server}"),
                        client,
                        server,
                        ..Default::default()
                    };
                    (stats, Vec::new())
                });
            e.flows += 1;
            if !e.protocols.contains(&s.protocol) {
                e.protocols.push(s.protocol);
            }
            match &s.event {
                Event::Exchange {
                    status,
                    error,
                    latency_ns,
                } => {
                    e.requests += 1;
                    e.errors += u64::from(*error);
                    *e.statuses.entry(status.clone()).or_default() += 1;
                    latencies.extend(*latency_ns);
                }
                Event::Packet { dropped, reset } => {
                    e.drops += u64::from(*dropped);
                    e.resets += u64::from(*reset);
                }
            }
        }
        let seconds = window_ns as f64 / 1e9;
        let edges = edges
            .into_values()
            .map(|(mut e, mut latencies)| {
                e.protocols.sort_by_key(|p| protocol_rank(p));
                e.requests_per_second = e.requests as f64 / seconds;
                e.error_rate = if e.requests == 0 {
                    0.0
                } else {
                    e.errors as f64 / e.requests as f64
                };
                latencies.sort_unstable();
                e.p50_latency_ns = percentile(&latencies, 50);
                e.p99_latency_ns = percentile(&latencies, 99);
                e
            })
            .collect();
        MapSnapshot {
            now_ns,
            window_ns,
            top,
            nodes: nodes.into_values().collect(),
            edges,
            overflowed: self.overflowed,
        }
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], p: usize) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    Some(sorted[rank - 1])
}

/// The edge's protocol word for a flow: the L7 protocol when there is one, else the L4 one.
fn protocol(f: &Flow) -> &'static str {
    if let Some(l7) = &f.l7 {
        return match l7.record {
            Some(Record::Dns(_)) => "dns",
            Some(Record::Http(_)) => {
                let grpc = FlowExtension::from_flow(f).and_then(|e| e.grpc);
                if grpc.is_some() {
                    "grpc"
                } else {
                    "http"
                }
            }
            None => "l7",
        };
    }
    match f.l4.as_ref().and_then(|l| l.protocol.as_ref()) {
        Some(Protocol::Tcp(_)) => "tcp",
        Some(Protocol::Udp(_)) => "udp",
        Some(Protocol::IcmPv4(_) | Protocol::IcmPv6(_)) => "icmp",
        Some(Protocol::Sctp(_)) => "sctp",
        None => "ip",
    }
}

/// L7 protocols before L4 ones on an edge's label.
fn protocol_rank(p: &str) -> u8 {
    match p {
        "grpc" => 0,
        "http" => 1,
        "dns" => 2,
        "l7" => 3,
        _ => 4,
    }
}

fn event(f: &Flow) -> Event {
    let response =
        f.l7.as_ref()
            .filter(|l7| l7.r#type == L7FlowType::Response as i32);
    if let Some(l7) = response {
        if let Some((status, error)) = exchange_status(f) {
            return Event::Exchange {
                status,
                error,
                latency_ns: (l7.latency_ns != 0).then_some(l7.latency_ns),
            };
        }
    }
    let reset = matches!(
        f.l4.as_ref().and_then(|l| l.protocol.as_ref()),
        Some(Protocol::Tcp(t)) if t.flags.as_ref().is_some_and(|x| x.rst)
    );
    Event::Packet {
        dropped: f.verdict == Verdict::Dropped as i32,
        reset,
    }
}

/// A response's status for the mix and whether it counts as an error:
/// - gRPC: the call's status name; anything but OK is an error (gRPC status codes doc);
/// - HTTP: the class (`2xx`..`5xx`); 5xx is an error — the server failed (RFC 9110 §15.6),
///   while a 4xx is the client's doing (RFC 9110 §15.5) and shows in the mix only;
/// - DNS: the RCODE name; SERVFAIL, REFUSED and the like are errors, NXDOMAIN is an answer
///   ("no such name", RFC 1035 §4.1.1, RFC 8020), as are NOERROR answers with no data.
fn exchange_status(f: &Flow) -> Option<(String, bool)> {
    match f.l7.as_ref()?.record.as_ref()? {
        Record::Http(h) => {
            let grpc = FlowExtension::from_flow(f)
                .and_then(|e| e.grpc)
                .filter(|g| !g.status_source.is_empty());
            if let Some(g) = grpc {
                let code = tonic::Code::from_i32(g.status_code as i32);
                return Some((format!("grpc {code:?}"), code != tonic::Code::Ok));
            }
            if h.code == 0 {
                return Some(("no status".into(), true));
            }
            Some((format!("{}xx", h.code / 100), h.code >= 500))
        }
        Record::Dns(d) => {
            let name = d
                .flowscope
                .as_ref()
                .map(|x| x.rcode_name.clone())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| flows::l7::dns::rcode_name(d.rcode as u16));
            Some((name, d.rcode != 0 && d.rcode != 3))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{
        convert::timestamp,
        proto::{
            flow::{Http, Ip, Layer4, Layer7, Tcp, TcpFlags, TrafficDirection},
            flowscope::Process,
        },
    };

    const S: u64 = 1_000_000_000;

    /// A flow at `t` seconds between `client_port` on 10.0.0.2 and :80 on 10.0.0.1, as the
    /// server's agent sees it (local = the server).
    fn flow(t: u64, client: u32, reply: bool) -> Flow {
        let (c, s) = (
            ("10.0.0.2".to_string(), client),
            ("10.0.0.1".to_string(), 80),
        );
        let (src, dst) = if reply { (s, c) } else { (c, s) };
        Flow {
            time: Some(timestamp(t * S)),
            ip: Some(Ip {
                source: src.0,
                destination: dst.0,
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
            extensions: Some(
                FlowExtension {
                    process: Some(Process {
                        pid: 7,
                        comm: "nginx".into(),
                        ..Default::default()
                    }),
                    peer_process: Some(Process {
                        pid: 9,
                        comm: "curl".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }
                .to_any(),
            ),
            ..Default::default()
        }
    }

    fn http_response(t: u64, client: u32, code: u32, latency_ms: u64) -> Flow {
        let mut f = flow(t, client, true);
        f.l7 = Some(Layer7 {
            r#type: L7FlowType::Response as i32,
            latency_ns: latency_ms * 1_000_000,
            record: Some(Record::Http(Http {
                code,
                method: "GET".into(),
                ..Default::default()
            })),
        });
        f
    }

    fn http_request(t: u64, client: u32) -> Flow {
        let mut f = flow(t, client, false);
        f.l7 = Some(Layer7 {
            r#type: L7FlowType::Request as i32,
            latency_ns: 0,
            record: Some(Record::Http(Http {
                method: "GET".into(),
                ..Default::default()
            })),
        });
        f
    }

    #[test]
    fn exchanges_make_one_edge_client_to_server_with_rate_errors_and_latency() {
        let mut m = ServiceMap::new(900 * S, 10_000);
        for i in 0..10u32 {
            let t = 100 + u64::from(i);
            m.observe(&flow(t, 40000 + i, false)); // SYN
            m.observe(&http_request(t, 40000 + i));
            let code = if i < 8 {
                200
            } else if i == 8 {
                404
            } else {
                503
            };
            m.observe(&http_response(t, 40000 + i, code, u64::from(i) + 1));
        }
        let snap = m.snapshot(110 * S, 20 * S, 10);
        let ids: Vec<&str> = snap.nodes.iter().map(|n| n.node.id.as_str()).collect();
        assert_eq!(ids, ["process:7:nginx", "process:9:curl"]);
        assert_eq!(snap.edges.len(), 1, "{:#?}", snap.edges);
        let e = &snap.edges[0];
        assert_eq!(
            (e.client.as_str(), e.server.as_str()),
            ("process:9:curl", "process:7:nginx")
        );
        assert_eq!(e.protocols, ["http", "tcp"]);
        assert_eq!((e.flows, e.requests, e.errors), (30, 10, 1));
        assert_eq!(
            e.statuses,
            BTreeMap::from([("2xx".into(), 8), ("4xx".into(), 1), ("5xx".into(), 1)])
        );
        assert!((e.requests_per_second - 0.5).abs() < 1e-9);
        assert!((e.error_rate - 0.1).abs() < 1e-9);
        // Latencies 1..=10 ms: nearest rank p50 = 5 ms, p99 = 10 ms.
        assert_eq!(e.p50_latency_ns, Some(5_000_000));
        assert_eq!(e.p99_latency_ns, Some(10_000_000));
    }

    #[test]
    fn packets_before_the_owner_was_known_join_the_process_edge() {
        let mut m = ServiceMap::new(60 * S, 10_000);
        let mut syn = flow(1, 40000, false);
        syn.extensions = None;
        m.observe(&syn);
        m.observe(&http_response(2, 40000, 200, 1));
        let snap = m.snapshot(3 * S, 10 * S, 10);
        assert_eq!(snap.edges.len(), 1, "{:#?}", snap.edges);
        assert_eq!((snap.edges[0].flows, snap.edges[0].requests), (2, 1));
        assert_eq!(snap.edges[0].id, "process:9:curl->process:7:nginx");
    }

    #[test]
    fn the_window_counts_only_its_flows_and_expiry_forgets_old_ones() {
        let mut m = ServiceMap::new(60 * S, 10_000);
        m.observe(&http_response(10, 40000, 200, 1));
        m.observe(&http_response(50, 40001, 200, 1));
        m.observe(&http_response(55, 40002, 200, 1));
        assert_eq!(m.snapshot(56 * S, 10 * S, 10).edges[0].requests, 2);
        assert_eq!(m.snapshot(56 * S, 60 * S, 10).edges[0].requests, 3);
        // A window longer than the retention is cut to it.
        assert_eq!(m.snapshot(56 * S, 3600 * S, 10).window_ns, 60 * S);
        m.expire(80 * S);
        assert_eq!(m.snapshot(80 * S, 60 * S, 10).edges[0].requests, 2);
        m.expire(200 * S);
        assert!(m.snapshot(200 * S, 60 * S, 10).edges.is_empty());
    }

    #[test]
    fn drops_and_resets_are_flagged_on_the_edge() {
        let mut m = ServiceMap::new(60 * S, 10_000);
        let mut rst = flow(1, 40000, true);
        if let Some(Protocol::Tcp(t)) = rst.l4.as_mut().and_then(|l| l.protocol.as_mut()) {
            t.flags = Some(TcpFlags {
                rst: true,
                ..Default::default()
            });
        }
        m.observe(&rst);
        let mut drop = flow(1, 40001, false);
        drop.verdict = Verdict::Dropped as i32;
        m.observe(&drop);
        let e = &m.snapshot(2 * S, 10 * S, 10).edges[0];
        assert_eq!((e.drops, e.resets, e.requests), (1, 1, 0));
        assert_eq!(e.p50_latency_ns, None);
    }

    #[test]
    fn nodes_past_the_top_n_fold_into_other() {
        let mut m = ServiceMap::new(60 * S, 10_000);
        // Clients at three addresses, unknown processes: 3, 2 and 1 flows to one server.
        for (ip, n) in [("10.0.0.3", 3), ("10.0.0.4", 2), ("10.0.0.5", 1)] {
            for i in 0..n {
                let mut f = flow(1, 50000 + i, false);
                f.extensions = None;
                f.ip.as_mut().unwrap().source = ip.into();
                m.observe(&f);
            }
        }
        let snap = m.snapshot(2 * S, 10 * S, 2);
        let ids: Vec<&str> = snap.nodes.iter().map(|n| n.node.id.as_str()).collect();
        assert_eq!(ids, ["ip:10.0.0.1", "ip:10.0.0.3", "other"]);
        let other = snap.nodes.iter().find(|n| n.node.id == OTHER_ID).unwrap();
        assert_eq!(other.members, ["ip:10.0.0.4", "ip:10.0.0.5"]);
        assert_eq!((other.flows, other.node.kind), (3, NodeKind::Other));
        let folded = snap.edges.iter().find(|e| e.client == OTHER_ID).unwrap();
        assert_eq!((folded.server.as_str(), folded.flows), ("ip:10.0.0.1", 3));
        assert_eq!(snap.edges.len(), 2);
    }

    #[test]
    fn the_sample_cap_drops_the_oldest_and_says_so() {
        let mut m = ServiceMap::new(60 * S, 2);
        for t in 1..=3 {
            m.observe(&http_response(t, 40000, 200, 1));
        }
        let snap = m.snapshot(4 * S, 60 * S, 10);
        assert_eq!((snap.edges[0].requests, snap.overflowed), (2, 1));
    }

    #[test]
    fn statuses_of_grpc_and_dns_exchanges() {
        use crate::api::proto::{
            flow::Dns,
            flowscope::{DnsExtension, Grpc},
        };
        let mut f = http_response(1, 40000, 200, 1);
        let mut ext = FlowExtension::from_flow(&f).unwrap();
        ext.grpc = Some(Grpc {
            service: "shop.Cart".into(),
            method: "Get".into(),
            status_code: 14,
            status_source: "trailers".into(),
            ..Default::default()
        });
        f.extensions = Some(ext.to_any());
        assert_eq!(exchange_status(&f), Some(("grpc Unavailable".into(), true)));
        assert_eq!(protocol(&f), "grpc");
        let dns = |rcode: u32, name: &str| {
            let mut f = http_response(1, 40000, 200, 1);
            f.l7.as_mut().unwrap().record = Some(Record::Dns(Dns {
                rcode,
                flowscope: Some(DnsExtension {
                    rcode_name: name.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }));
            exchange_status(&f)
        };
        assert_eq!(dns(3, "NXDOMAIN"), Some(("NXDOMAIN".into(), false)));
        assert_eq!(dns(2, "SERVFAIL"), Some(("SERVFAIL".into(), true)));
    }
}
