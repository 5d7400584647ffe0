//! The gRPC services: Hubble's `observer.Observer` and flowscope's `flowscope.Agent`.

use std::{
    pin::Pin,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use tokio::sync::mpsc;
use tokio_stream::{wrappers::ReceiverStream, Stream};
use tonic::{Request, Response, Status};

use super::{
    convert::{timestamp, timestamp_ns},
    filter::{self, FlowPredicate, FlowRef},
    proto::{
        flow::LostEvent,
        flowscope::{
            agent_server::Agent, Attachment, Counter, GetAgentStatusRequest,
            GetAgentStatusResponse, GetFlowsRequestExtension, TlsLibrary,
        },
        observer::{
            get_flows_response::ResponseTypes, observer_server::Observer, GetAgentEventsRequest,
            GetAgentEventsResponse, GetDebugEventsRequest, GetDebugEventsResponse, GetFlowsRequest,
            GetFlowsResponse, GetNamespacesRequest, GetNamespacesResponse, GetNodesRequest,
            GetNodesResponse, Namespace, Node, ServerStatusRequest, ServerStatusResponse, Tls,
        },
        relay::NodeState,
    },
    status::StatusHandle,
    store::{FlowStore, FollowEvent, LostSource, StoredFlow, WireFlow},
};

/// flowscope's version, reported as the server version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// At most one LostEvent per source per this long on one stream.
const LOST_EVENT_INTERVAL: Duration = Duration::from_secs(1);

/// Serves both services from one store and status handle.
#[derive(Clone, Debug)]
pub struct ObserverService {
    store: Arc<FlowStore>,
    status: StatusHandle,
    /// This node's TLS server name when its TCP listener serves TLS.
    tls: Option<String>,
    stop: tokio::sync::watch::Receiver<bool>,
}

impl ObserverService {
    /// A service over `store`, reporting agent state from `status`.
    pub fn new(store: Arc<FlowStore>, status: StatusHandle) -> Self {
        // Never signalled: streams end when their client goes away.
        let (tx, stop) = tokio::sync::watch::channel(false);
        std::mem::forget(tx);
        Self {
            store,
            status,
            tls: None,
            stop,
        }
    }

    /// Whether the API is served over TLS (announced to peers and in GetNodes).
    pub fn tls_enabled(&self) -> bool {
        self.tls.is_some()
    }

    /// The TCP listener serves TLS with a certificate for `server_name` (reported by
    /// GetNodes, which is how the other agents' peer discovery learns it).
    pub fn with_tls(mut self, server_name: Option<String>) -> Self {
        self.tls = server_name;
        self
    }

    /// Ends every `--follow` stream when `stop` turns true (graceful server shutdown waits
    /// for open streams, and a follow stream would otherwise never end).
    pub fn with_stop(mut self, stop: tokio::sync::watch::Receiver<bool>) -> Self {
        self.stop = stop;
        self
    }
}

/// A request's time window and count, checked and in nanoseconds.
#[derive(Debug, Clone, Copy)]
struct Window {
    since: Option<u64>,
    until: Option<u64>,
    number: Option<usize>,
    first: bool,
}

impl Window {
    fn contains(&self, t: u64) -> bool {
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t <= u)
    }
}

/// The wire form of `s` when it is in the window and passes the filters.
fn select(
    s: &StoredFlow,
    node: &str,
    pred: &FlowPredicate,
    w: &Window,
    include_ext: bool,
) -> Option<WireFlow> {
    if !w.contains(s.time_ns) {
        return None;
    }
    let wire = s.to_wire(node, include_ext);
    pred.matches(&FlowRef::new(&wire.flow, wire.ext.as_ref()))
        .then_some(wire)
}

/// The flows of `snapshot` a request asks for, oldest first, in wire form.
fn select_history(
    snapshot: &[Arc<StoredFlow>],
    node: &str,
    pred: &FlowPredicate,
    w: &Window,
    follow: bool,
    include_ext: bool,
) -> Vec<WireFlow> {
    // Following with neither a count nor a start time means "only new flows".
    if follow && w.number.is_none() && w.since.is_none() {
        return Vec::new();
    }
    let keep = |s: &Arc<StoredFlow>| select(s, node, pred, w, include_ext);
    let limit = w.number.unwrap_or(usize::MAX);
    if w.first {
        snapshot.iter().filter_map(keep).take(limit).collect()
    } else {
        let mut last: Vec<_> = snapshot.iter().rev().filter_map(keep).take(limit).collect();
        last.reverse();
        last
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn flow_response(w: WireFlow) -> GetFlowsResponse {
    let flow = w.flow;
    GetFlowsResponse {
        node_name: flow.node_name.clone(),
        time: flow.time,
        response_types: Some(ResponseTypes::Flow(flow)),
    }
}

fn lost_response(node: &str, source: LostSource, count: u64) -> GetFlowsResponse {
    GetFlowsResponse {
        node_name: node.to_string(),
        time: Some(timestamp(now_ns())),
        response_types: Some(ResponseTypes::LostEvents(LostEvent {
            source: source.to_proto() as i32,
            num_events_lost: count,
            cpu: None,
        })),
    }
}

/// Lost counts of one stream, flushed at most once per [`LOST_EVENT_INTERVAL`] per source.
struct LostAggregator {
    pending: Vec<(LostSource, u64, Option<Instant>)>,
}

impl LostAggregator {
    fn new() -> Self {
        Self {
            pending: Vec::new(),
        }
    }

    fn add(&mut self, source: LostSource, count: u64) {
        match self.pending.iter_mut().find(|p| p.0 == source) {
            Some(p) => p.1 += count,
            None => self.pending.push((source, count, None)),
        }
    }

    /// `(source, count)` pairs due now.
    fn due(&mut self, now: Instant) -> Vec<(LostSource, u64)> {
        let mut out = Vec::new();
        for (source, count, last) in &mut self.pending {
            if *count > 0 && last.is_none_or(|l| now.duration_since(l) >= LOST_EVENT_INTERVAL) {
                out.push((*source, *count));
                *count = 0;
                *last = Some(now);
            }
        }
        out
    }
}

/// Completes once `stop` is true.
pub(super) async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        if stop.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

type FlowStream = Pin<Box<dyn Stream<Item = Result<GetFlowsResponse, Status>> + Send>>;
type AgentEventStream = Pin<Box<dyn Stream<Item = Result<GetAgentEventsResponse, Status>> + Send>>;
type DebugEventStream = Pin<Box<dyn Stream<Item = Result<GetDebugEventsResponse, Status>> + Send>>;

/// Why GetAgentEvents is UNIMPLEMENTED.
pub const NO_AGENT_EVENTS: &str = "flowscope has no agent events: Hubble's agent events \
     (policy, endpoint, ipcache and service updates) come from the Cilium agent, and flowscope \
     runs without Cilium; use GetFlows";
/// Why GetDebugEvents is UNIMPLEMENTED.
pub const NO_DEBUG_EVENTS: &str = "flowscope has no debug events: Hubble's debug events are \
     Cilium datapath (BPF program) debug messages, and flowscope runs without Cilium's \
     datapath; use GetFlows, or `flowscope status` for flowscope's own counters";

#[tonic::async_trait]
impl Observer for ObserverService {
    type GetFlowsStream = FlowStream;
    type GetAgentEventsStream = AgentEventStream;
    type GetDebugEventsStream = DebugEventStream;

    async fn get_agent_events(
        &self,
        _request: Request<GetAgentEventsRequest>,
    ) -> Result<Response<Self::GetAgentEventsStream>, Status> {
        Err(Status::unimplemented(NO_AGENT_EVENTS))
    }

    async fn get_debug_events(
        &self,
        _request: Request<GetDebugEventsRequest>,
    ) -> Result<Response<Self::GetDebugEventsStream>, Status> {
        Err(Status::unimplemented(NO_DEBUG_EVENTS))
    }

    async fn get_namespaces(
        &self,
        _request: Request<GetNamespacesRequest>,
    ) -> Result<Response<GetNamespacesResponse>, Status> {
        Ok(Response::new(GetNamespacesResponse {
            namespaces: self
                .store
                .namespaces()
                .into_iter()
                .map(|(cluster, namespace)| Namespace { cluster, namespace })
                .collect(),
        }))
    }

    async fn get_flows(
        &self,
        request: Request<GetFlowsRequest>,
    ) -> Result<Response<Self::GetFlowsStream>, Status> {
        let req = request.into_inner();
        if req.first && req.follow {
            return Err(Status::invalid_argument(
                "first cannot be combined with follow",
            ));
        }
        let pred = filter::compile(&req.whitelist, &req.blacklist)
            .map_err(|e| Status::invalid_argument(format!("invalid filter: {e}")))?;
        let window = Window {
            since: req.since.as_ref().map(timestamp_ns),
            until: req.until.as_ref().map(timestamp_ns),
            number: (req.number != 0).then(|| usize::try_from(req.number).unwrap_or(usize::MAX)),
            first: req.first,
        };
        if let (Some(s), Some(u)) = (window.since, window.until) {
            if s > u {
                return Err(Status::invalid_argument("since is after until"));
            }
        }
        let include_ext = GetFlowsRequestExtension::from_request(&req).include_flow_extension;
        let (snapshot, follower) = if req.follow {
            let (s, f) = self.store.subscribe();
            (s, Some(f))
        } else {
            (self.store.snapshot(), None)
        };
        let node = self.store.node_name().to_string();
        let history = select_history(&snapshot, &node, &pred, &window, req.follow, include_ext);
        drop(snapshot);
        let (tx, rx) = mpsc::channel(256);
        let mut stop = self.stop.clone();
        tokio::spawn(async move {
            for w in history {
                if tx.send(Ok(flow_response(w))).await.is_err() {
                    return;
                }
            }
            let Some(mut follower) = follower else {
                return;
            };
            let mut lost = LostAggregator::new();
            let mut tick = tokio::time::interval(LOST_EVENT_INTERVAL);
            loop {
                let ev = tokio::select! {
                    ev = follower.next() => ev,
                    _ = tick.tick() => {
                        if window.until.is_some_and(|u| now_ns() > u) {
                            return;
                        }
                        for (source, count) in lost.due(Instant::now()) {
                            if tx.send(Ok(lost_response(&node, source, count))).await.is_err() {
                                return;
                            }
                        }
                        continue;
                    }
                    _ = tx.closed() => return,
                    _ = stopped(&mut stop) => return,
                };
                match ev {
                    None => return,
                    Some(FollowEvent::Flow(s)) => {
                        if window.until.is_some_and(|u| s.time_ns > u) {
                            return;
                        }
                        let Some(w) = select(&s, &node, &pred, &window, include_ext) else {
                            continue;
                        };
                        if tx.send(Ok(flow_response(w))).await.is_err() {
                            return;
                        }
                    }
                    Some(FollowEvent::Lost { source, count }) => {
                        lost.add(source, count);
                        for (source, count) in lost.due(Instant::now()) {
                            if tx
                                .send(Ok(lost_response(&node, source, count)))
                                .await
                                .is_err()
                            {
                                return;
                            }
                        }
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_nodes(
        &self,
        _request: Request<GetNodesRequest>,
    ) -> Result<Response<GetNodesResponse>, Status> {
        let s = &self.store;
        Ok(Response::new(GetNodesResponse {
            nodes: vec![Node {
                name: s.node_name().to_string(),
                version: VERSION.to_string(),
                address: String::new(),
                state: NodeState::NodeConnected as i32,
                tls: Some(Tls {
                    enabled: self.tls.is_some(),
                    server_name: self.tls.clone().unwrap_or_default(),
                }),
                uptime_ns: s.uptime().as_nanos() as u64,
                num_flows: s.num_flows() as u64,
                max_flows: s.max_flows() as u64,
                seen_flows: s.seen_flows(),
            }],
        }))
    }

    async fn server_status(
        &self,
        _request: Request<ServerStatusRequest>,
    ) -> Result<Response<ServerStatusResponse>, Status> {
        // The fields a Cilium agent fills (pkg/hubble/observer LocalObserverServer): the node
        // counts stay unset, as there; Relay sets them when it aggregates nodes.
        let s = &self.store;
        Ok(Response::new(ServerStatusResponse {
            num_flows: s.num_flows() as u64,
            max_flows: s.max_flows() as u64,
            seen_flows: s.seen_flows(),
            uptime_ns: s.uptime().as_nanos() as u64,
            num_connected_nodes: None,
            num_unavailable_nodes: None,
            unavailable_nodes: Vec::new(),
            version: format!("flowscope v{VERSION}"),
            flows_rate: s.flows_rate(now_ns()),
        }))
    }
}

#[tonic::async_trait]
impl Agent for ObserverService {
    async fn get_agent_status(
        &self,
        _request: Request<GetAgentStatusRequest>,
    ) -> Result<Response<GetAgentStatusResponse>, Status> {
        let st = self.status.get();
        let mut counters: Vec<Counter> = st
            .counters
            .into_iter()
            .map(|(name, value)| Counter { name, value })
            .collect();
        counters.extend(
            self.store
                .lost_counters()
                .into_iter()
                .map(|(name, value)| Counter { name, value }),
        );
        Ok(Response::new(GetAgentStatusResponse {
            version: VERSION.to_string(),
            node_name: self.store.node_name().to_string(),
            uptime_ns: self.store.uptime().as_nanos() as u64,
            capture_path: st.capture_path,
            attachments: st
                .attachments
                .into_iter()
                .map(|(iface, method)| Attachment { iface, method })
                .collect(),
            attribution: st.attribution,
            counters,
            tls_libraries: st
                .tls_libraries
                .into_iter()
                .map(|t| TlsLibrary {
                    pid: t.pid,
                    comm: t.comm,
                    library: t.library,
                    kind: t.kind,
                    hooked: t.hooked,
                    detail: t.detail,
                })
                .collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::proto::flow::{self, FlowFilter};
    use tokio_stream::StreamExt;

    fn store_with(n: i64) -> Arc<FlowStore> {
        let store = Arc::new(FlowStore::new(100, "node"));
        for i in 1..=n {
            store.push(flow::Flow {
                time: Some(prost_types::Timestamp {
                    seconds: i,
                    nanos: 0,
                }),
                verdict: if i % 2 == 0 { 1 } else { 2 },
                ..Default::default()
            });
        }
        store
    }

    async fn times(svc: &ObserverService, req: GetFlowsRequest) -> Vec<i64> {
        let mut s = svc.get_flows(Request::new(req)).await.unwrap().into_inner();
        let mut out = Vec::new();
        while let Some(r) = s.next().await {
            if let Some(ResponseTypes::Flow(f)) = r.unwrap().response_types {
                out.push(f.time.unwrap().seconds);
            }
        }
        out
    }

    #[tokio::test]
    async fn number_first_since_until_and_filters() {
        let svc = ObserverService::new(store_with(10), StatusHandle::default());
        let req = |number, first| GetFlowsRequest {
            number,
            first,
            ..Default::default()
        };
        assert_eq!(times(&svc, req(3, false)).await, [8, 9, 10]);
        assert_eq!(times(&svc, req(3, true)).await, [1, 2, 3]);
        assert_eq!(times(&svc, req(0, false)).await.len(), 10);
        let ts = |s| {
            Some(prost_types::Timestamp {
                seconds: s,
                nanos: 0,
            })
        };
        let windowed = GetFlowsRequest {
            since: ts(4),
            until: ts(6),
            ..Default::default()
        };
        assert_eq!(times(&svc, windowed).await, [4, 5, 6]);
        // Number counts matching flows: the last 2 FORWARDED (even) flows.
        let filtered = GetFlowsRequest {
            number: 2,
            whitelist: vec![FlowFilter {
                verdict: vec![1],
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(times(&svc, filtered).await, [8, 10]);
    }

    #[tokio::test]
    async fn invalid_filters_are_rejected_before_streaming() {
        let svc = ObserverService::new(store_with(1), StatusHandle::default());
        let req = GetFlowsRequest {
            whitelist: vec![FlowFilter {
                source_ip: vec!["300.1.1.1".into()],
                ..Default::default()
            }],
            ..Default::default()
        };
        let err = svc.get_flows(Request::new(req)).await.err().unwrap();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains("300.1.1.1"), "{}", err.message());
        let req = GetFlowsRequest {
            first: true,
            follow: true,
            ..Default::default()
        };
        let err = svc.get_flows(Request::new(req)).await.err().unwrap();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
    }

    #[tokio::test]
    async fn follow_streams_new_flows_and_lost_events() {
        let store = store_with(2);
        let svc = ObserverService::new(store.clone(), StatusHandle::default());
        let req = GetFlowsRequest {
            number: 1,
            follow: true,
            ..Default::default()
        };
        let mut s = svc.get_flows(Request::new(req)).await.unwrap().into_inner();
        let first = s.next().await.unwrap().unwrap();
        assert!(
            matches!(first.response_types, Some(ResponseTypes::Flow(ref f)) if f.time.unwrap().seconds == 2)
        );
        store.note_lost(LostSource::KernelRing, 3);
        store.note_lost(LostSource::KernelRing, 4); // within the second: aggregated
        store.push(flow::Flow {
            time: Some(prost_types::Timestamp {
                seconds: 3,
                nanos: 0,
            }),
            ..Default::default()
        });
        let mut lost_total = 0;
        let mut saw_flow = false;
        while !(saw_flow && lost_total == 7) {
            let r = tokio::time::timeout(Duration::from_secs(3), s.next())
                .await
                .expect("stream stalled")
                .unwrap()
                .unwrap();
            match r.response_types {
                Some(ResponseTypes::Flow(f)) => {
                    assert_eq!(f.time.unwrap().seconds, 3);
                    saw_flow = true;
                }
                Some(ResponseTypes::LostEvents(l)) => {
                    assert_eq!(l.source, flow::LostEventSource::PerfEventRingBuffer as i32);
                    lost_total += l.num_events_lost;
                }
                None => panic!("empty response"),
            }
        }
    }

    #[test]
    fn lost_events_are_rate_limited_per_source() {
        let mut agg = LostAggregator::new();
        let t0 = Instant::now();
        agg.add(LostSource::KernelRing, 1);
        assert_eq!(agg.due(t0), [(LostSource::KernelRing, 1)]);
        agg.add(LostSource::KernelRing, 2);
        agg.add(LostSource::KernelRing, 3);
        agg.add(LostSource::ObserverQueue, 1);
        assert_eq!(agg.due(t0), [(LostSource::ObserverQueue, 1)]);
        assert_eq!(
            agg.due(t0 + Duration::from_millis(1000)),
            [(LostSource::KernelRing, 5)]
        );
    }

    #[tokio::test]
    async fn extension_only_when_asked() {
        let store = Arc::new(FlowStore::new(10, "n"));
        store.push_record(&crate::api::convert::tests::http_request());
        let svc = ObserverService::new(store, StatusHandle::default());
        for ask in [false, true] {
            let req = GetFlowsRequest {
                extensions: ask.then(|| {
                    GetFlowsRequestExtension {
                        include_flow_extension: true,
                    }
                    .to_any()
                }),
                ..Default::default()
            };
            let mut s = svc.get_flows(Request::new(req)).await.unwrap().into_inner();
            let Some(ResponseTypes::Flow(f)) = s.next().await.unwrap().unwrap().response_types
            else {
                panic!()
            };
            assert_eq!(f.extensions.is_some(), ask);
        }
    }
}
