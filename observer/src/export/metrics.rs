//! Prometheus metrics: RED metrics per (service, peer, protocol, method, route, status) from
//! spans, TCP connection and byte counts from flows, the agent's own counters, and the span
//! exporter's counters — encoded in the Prometheus text format on each scrape.

use std::sync::{Arc, Mutex};

use flows::{
    packet::{Direction, TcpFlags},
    record::{AttributeValue, Flow, FlowType, Layer4, Span, SpanKind, StatusCode},
};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric},
    metrics::{
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::ConstGauge,
        histogram::Histogram,
        MetricType,
    },
    registry::{Registry, Unit},
};

use super::{
    config::{ExportConfig, MetricSet},
    hubble_metrics::HubbleMetrics,
    label_cache::LabelCache,
    otlp::ResourceNamer,
    queue::ExportCounters,
    route::{route_template, LabelLimiter, OVERFLOW},
    semconv_metrics::SemconvMetrics,
    span_fields::{string, SpanFields},
};

/// Labels of the RED metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RedLabels {
    /// `service.name` of the local process (as on exported spans).
    pub service: String,
    /// The other side: the client's address on server spans, the server's on client spans.
    pub peer: String,
    /// `http` or the RPC system (`grpc`).
    pub protocol: String,
    /// HTTP method or RPC method.
    pub method: String,
    /// Templated path (`/users/{id}`), or `/Service/Method` for RPCs.
    pub route: String,
    /// HTTP status code, gRPC status code, or the error type (`no_response`).
    pub status: String,
    /// `server` or `client`.
    pub kind: SpanKindLabel,
    /// The span's process is this agent (its own metrics and API listeners, its exports):
    /// dashboards can leave the agent's own traffic out (or the agent can, `exclude_self`).
    pub agent: bool,
}

/// Span kind as a label value.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum SpanKindLabel {
    /// The local process served the request.
    server,
    /// The local process made the request.
    client,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: DirectionLabel,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
enum DirectionLabel {
    ingress,
    egress,
    unknown,
}

/// `reason` of `flowscope_drops_total`: a kernel `skb_drop_reason` name. Bounded: the
/// kernel's enum has ~130 names, and names past [`MAX_DROP_REASONS`] count as "other".
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    reason: String,
}

/// Most distinct `reason` labels on `flowscope_drops_total`.
const MAX_DROP_REASONS: usize = 256;

/// Request duration buckets, seconds (500 µs .. 10 s).
const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

// --- TCP connection health (issue 17) ---

/// Which data direction of a connection an RTT or retransmission count is about.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
enum TcpDataDirection {
    to_server,
    to_client,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TcpDirectionLabels {
    direction: TcpDataDirection,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TcpEndLabels {
    by: TcpEndBy,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
enum TcpEndBy {
    client,
    server,
}

/// RTT and handshake buckets, seconds (50 µs .. 2.5 s): LAN to intercontinental paths.
const RTT_BUCKETS: [f64; 15] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5,
];

fn rtt_histogram() -> Histogram {
    Histogram::new(RTT_BUCKETS)
}

/// Per-connection TCP health, observed once per connection: on the L3/L4 flow of its first FIN
/// or RST (the record whose health says it is the first close). Connections evicted without
/// FIN or RST (idle, end of capture) are not in these families; the engine's counters
/// (`flowscope_agent_engine_tcp_*`) count every segment.
#[derive(Debug)]
struct TcpHealthMetrics {
    handshake: Histogram,
    srtt: Family<TcpDirectionLabels, Histogram, fn() -> Histogram>,
    retransmitted_segments: Family<TcpDirectionLabels, Counter>,
    resets: Family<TcpEndLabels, Counter>,
    refused: Counter,
}

impl TcpHealthMetrics {
    fn register(registry: &mut Registry) -> Self {
        let m = Self {
            handshake: rtt_histogram(),
            srtt: Family::new_with_constructor(rtt_histogram),
            retransmitted_segments: Family::default(),
            resets: Family::default(),
            refused: Counter::default(),
        };
        registry.register_with_unit(
            "flowscope_tcp_handshake_duration",
            "TCP handshakes, first SYN to the ACK of the SYN/ACK as seen from the capture point, per connection at its first FIN or RST",
            Unit::Seconds,
            m.handshake.clone(),
        );
        registry.register_with_unit(
            "flowscope_tcp_srtt",
            "Smoothed RTT (RFC 6298) of each data direction of a TCP connection at its first FIN or RST: the capture point <-> receiver leg",
            Unit::Seconds,
            m.srtt.clone(),
        );
        registry.register(
            "flowscope_tcp_connection_retransmitted_segments",
            "Retransmitted segments of TCP connections, by data direction, added at each connection's first FIN or RST",
            m.retransmitted_segments.clone(),
        );
        registry.register(
            "flowscope_tcp_connection_resets",
            "TCP connections whose first close was a RST, by who sent it",
            m.resets.clone(),
        );
        registry.register(
            "flowscope_tcp_connections_refused",
            "TCP connections refused (RST answering the SYN)",
            m.refused.clone(),
        );
        m
    }

    fn observe(&self, f: &Flow) {
        let (Some(h), Layer4::Tcp { flags, .. }) = (f.tcp_health.as_deref(), f.l4) else {
            return;
        };
        let Some(close) = h.closed_by else {
            return;
        };
        let sender_is_server = f.is_reply == Some(true);
        let by_server = close.by == flows::record::ConnectionRole::Server;
        let first_close = flags.0 & (TcpFlags::FIN.0 | TcpFlags::RST.0) != 0
            && close.time_ns == f.time_ns
            && sender_is_server == by_server;
        if !first_close {
            return;
        }
        let secs = |ns: u64| ns as f64 / 1e9;
        if let Some(ns) = h.handshake_ns {
            self.handshake.observe(secs(ns));
        }
        for (direction, d) in [
            (TcpDataDirection::to_server, &h.to_server),
            (TcpDataDirection::to_client, &h.to_client),
        ] {
            let labels = TcpDirectionLabels { direction };
            if let Some(ns) = d.srtt_ns {
                self.srtt.get_or_create(&labels).observe(secs(ns));
            }
            if d.retransmitted_segments > 0 {
                self.retransmitted_segments
                    .get_or_create(&labels)
                    .inc_by(u64::from(d.retransmitted_segments));
            }
        }
        if h.refused {
            self.refused.inc();
        } else if close.reset {
            let by = if by_server {
                TcpEndBy::server
            } else {
                TcpEndBy::client
            };
            self.resets.get_or_create(&TcpEndLabels { by }).inc();
        }
    }
}

/// Values pushed in by the agent (and the exporter's counters), encoded at scrape time.
#[derive(Debug, Default)]
struct PushedValues {
    counters: Mutex<Vec<(String, u64)>>,
    gauges: Mutex<Vec<(String, i64)>>,
    exporter: Mutex<Option<Arc<ExportCounters>>>,
    overflow: Mutex<(u64, u64)>,
}

/// Every metric the agent serves on `/metrics`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RedLabels, Counter>,
    errors: Family<RedLabels, Counter>,
    duration: Family<RedLabels, Histogram, fn() -> Histogram>,
    tcp_flows: Counter,
    bytes: [Counter; 3],
    namer: ResourceNamer,
    routes: Mutex<LabelLimiter>,
    peers: Mutex<LabelLimiter>,
    pushed: Arc<PushedValues>,
    /// Serve the `flowscope_*` request, connection and byte families.
    flowscope: bool,
    /// The OpenTelemetry semantic-convention histograms, when asked for.
    semconv: Option<SemconvMetrics>,
    /// Hubble's families, when asked for.
    hubble: Option<HubbleMetrics>,
    drops: Family<DropLabels, Counter>,
    drop_reasons: Mutex<std::collections::HashSet<String>>,
    tcp_health: TcpHealthMetrics,
    /// Every span family's handles by label inputs.
    span_cache: Mutex<LabelCache<SpanHandles>>,
}

impl Metrics {
    /// Registers every metric; service names follow `cfg` like the exporter's.
    pub fn new(cfg: &ExportConfig) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RedLabels, Counter>::default();
        let errors = Family::<RedLabels, Counter>::default();
        let duration = Family::<RedLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            duration_histogram,
        );
        let tcp_flows = Counter::default();
        let bytes_family = Family::<DirectionLabels, Counter>::default();
        let flowscope = cfg.metrics.contains(&MetricSet::Flowscope);
        if flowscope {
            registry.register(
                "flowscope_requests",
                "Requests observed (HTTP exchanges and RPCs), by service, peer, protocol, method, route and status",
                requests.clone(),
            );
            registry.register(
                "flowscope_request_errors",
                "Requests whose span status is ERROR (5xx on servers, 4xx/5xx on clients, gRPC errors, no response)",
                errors.clone(),
            );
            registry.register_with_unit(
                "flowscope_request_duration",
                "Request duration from the first request packet to the last response packet",
                Unit::Seconds,
                duration.clone(),
            );
            registry.register(
                "flowscope_tcp_flows",
                "TCP connections opened (a SYN without ACK seen)",
                tcp_flows.clone(),
            );
            registry.register(
                "flowscope_bytes",
                "IP bytes of captured packets, by capture direction",
                bytes_family.clone(),
            );
        }
        let d = |direction| bytes_family.get_or_create_owned(&DirectionLabels { direction });
        let bytes = [
            d(DirectionLabel::ingress),
            d(DirectionLabel::egress),
            d(DirectionLabel::unknown),
        ];
        let drops = Family::<DropLabels, Counter>::default();
        registry.register(
            "flowscope_drops",
            "Packets (TCP/UDP) the kernel dropped, by the kernel's drop reason (reported ones; rate-limited drops are counted in flowscope_agent_kernel_drops_rate_limited_total)",
            drops.clone(),
        );
        let pushed = Arc::new(PushedValues::default());
        registry.register_collector(Box::new(pushed.clone()));
        let semconv = cfg
            .metrics
            .contains(&MetricSet::Otel)
            .then(|| SemconvMetrics::new(&mut registry, cfg.max_peers, cfg.max_routes_per_service));
        let hubble = cfg
            .metrics
            .contains(&MetricSet::Hubble)
            .then(|| HubbleMetrics::new(&mut registry));
        let tcp_health = TcpHealthMetrics::register(&mut registry);
        Self {
            registry,
            requests,
            errors,
            duration,
            tcp_flows,
            bytes,
            namer: ResourceNamer::new("", cfg.default_service_name(), cfg.service_name_map.clone()),
            routes: Mutex::new(LabelLimiter::new(cfg.max_routes_per_service)),
            peers: Mutex::new(LabelLimiter::new(cfg.max_peers.max(1))),
            pushed,
            flowscope,
            semconv,
            hubble,
            drops,
            drop_reasons: Mutex::new(std::collections::HashSet::new()),
            tcp_health,
            span_cache: Mutex::default(),
        }
    }

    /// Counts one kernel drop under its reason name.
    pub fn observe_drop(&self, reason: &str) {
        let mut seen = self.drop_reasons.lock().unwrap_or_else(|p| p.into_inner());
        let label = if seen.contains(reason) {
            reason
        } else if seen.len() < MAX_DROP_REASONS {
            seen.insert(reason.to_string());
            reason
        } else {
            "other"
        };
        self.drops
            .get_or_create(&DropLabels {
                reason: label.to_string(),
            })
            .inc();
    }

    /// Counts a kernel drop's flow in Hubble's flow and drop families under Hubble's reason
    /// name (`DROP_REASON_UNKNOWN` where no Hubble reason matches the kernel's).
    pub fn observe_hubble_drop(&self, f: &Flow, hubble_reason: &'static str) {
        if let Some(m) = &self.hubble {
            m.observe_dropped_flow(f, hubble_reason);
        }
    }

    /// Counts one finished exchange in the request families (RED, semconv, Hubble).
    pub fn observe_span(&self, s: &Span) {
        // Request metrics are about exchanges: a syscall span inside one is not a request.
        if s.kind == SpanKind::Internal {
            return;
        }
        let service = self.namer.service_name(s.process.as_ref());
        let error = s.status.code == StatusCode::Error;
        let secs = s.end_time_ns.saturating_sub(s.start_time_ns) as f64 / 1e9;
        let mut cache = self.span_cache.lock().unwrap_or_else(|p| p.into_inner());
        // One key and one lookup for all three families: from the exchange itself when the
        // span's attributes are unbuilt (no list is built for a label set seen before), else
        // from one pass over the attributes.
        if !span_identity_key(&mut cache, s, service) {
            span_key(&mut cache, s, &SpanFields::of(s), service);
        }
        if let Some(h) = cache.get() {
            self.observe_into(h, error, secs);
            return;
        }
        // Not cached: each family makes its labels (and applies its caps).
        let p = SpanFields::of(s);
        let mut capped = false;
        let red = self.flowscope.then(|| {
            let (labels, c) = self.red_labels(s, &p, service);
            capped |= c;
            RedHandles {
                requests: self.requests.get_or_create_owned(&labels),
                // Created on the first error only: a series of zero errors would show otherwise.
                errors: None,
                duration: self.duration.get_or_create_owned(&labels),
                labels,
            }
        });
        let semconv = self.semconv.as_ref().and_then(|m| {
            let (h, c) = m.histogram(s, &p, service)?;
            capped |= c;
            Some(h)
        });
        let hubble = self.hubble.as_ref().and_then(|m| m.span_handles(s, &p));
        let mut h = SpanHandles {
            red,
            semconv,
            hubble,
        };
        self.observe_into(&mut h, error, secs);
        // A capped label's observations are each counted as overflowing: not cached.
        if !capped {
            cache.insert(h);
        }
    }

    /// Counts one span (`error`: its status is ERROR; `secs` long) into its handles.
    fn observe_into(&self, h: &mut SpanHandles, error: bool, secs: f64) {
        if let Some(m) = &mut h.red {
            m.requests.inc();
            if error {
                let errors = &self.errors;
                m.errors
                    .get_or_insert_with(|| errors.get_or_create_owned(&m.labels))
                    .inc();
            }
            m.duration.observe(secs);
        }
        if let Some(m) = &h.semconv {
            m.observe(secs);
        }
        if let Some((requests, duration)) = &h.hubble {
            requests.inc();
            duration.observe(secs);
        }
    }

    /// Counts a flow: TCP connections (an L3/L4 flow of a SYN without ACK; every L4 record
    /// mode but `off` has them).
    pub fn observe_flow(&self, f: &Flow) {
        if let Some(m) = &self.hubble {
            m.observe_flow(f);
        }
        if f.flow_type != FlowType::L3L4 {
            return;
        }
        self.tcp_health.observe(f);
        if let Layer4::Tcp { flags, .. } = f.l4 {
            if flags.0 & TcpFlags::SYN.0 != 0 && flags.0 & TcpFlags::ACK.0 == 0 {
                self.tcp_flows.inc();
            }
        }
    }

    /// Adds IP bytes captured in `direction` (the agent feeds the engine's per-packet byte
    /// counters here; L3/L4 records may be control-only, so they can't be summed instead).
    pub fn add_bytes(&self, direction: Direction, ip_bytes: u64) {
        let i = match direction {
            Direction::Ingress => 0,
            Direction::Egress => 1,
            Direction::Unknown => 2,
        };
        self.bytes[i].inc_by(ip_bytes);
    }

    /// Replaces the agent's own counters (engine, kernel, API: `(name, value)`), served as
    /// `flowscope_agent_<name>_total`. Call it every second or so.
    pub fn set_counters(&self, counters: &[(String, u64)]) {
        let mut c = self
            .pushed
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        c.clear();
        c.extend(counters.iter().cloned());
    }

    /// Replaces the agent's gauges (values that go up and down, e.g. flows in the table),
    /// served as `flowscope_agent_<name>`.
    #[allow(dead_code)] // for the agent's gauges (flows in the table, ring fill) to come
    pub fn set_gauges(&self, gauges: &[(String, i64)]) {
        let mut g = self.pushed.gauges.lock().unwrap_or_else(|p| p.into_inner());
        g.clear();
        g.extend(gauges.iter().cloned());
    }

    /// Serves the span exporter's counters as `flowscope_otlp_*`.
    pub fn watch_exporter(&self, counters: Arc<ExportCounters>) {
        *self
            .pushed
            .exporter
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(counters);
    }

    /// Everything, in the Prometheus text format (version 0.0.4).
    pub fn encode(&self) -> String {
        {
            let r = self
                .routes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .overflowed();
            let p = self
                .peers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .overflowed();
            *self
                .pushed
                .overflow
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = (r, p);
        }
        let mut out = String::with_capacity(8192);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }

    /// The `Content-Type` of [`Self::encode`]'s output.
    pub const CONTENT_TYPE: &'static str =
        prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

    /// Forgets every cached metric handle (tests: the uncached path).
    #[cfg(test)]
    fn forget_cached(&self) {
        self.span_cache.lock().unwrap().clear();
    }

    /// The RED labels of `s`, and whether a cap replaced its route or peer (then they are
    /// not cached: each such observation is counted as overflowing).
    fn red_labels(&self, s: &Span, p: &SpanFields<'_>, service: &str) -> (RedLabels, bool) {
        let number = |v: Option<&AttributeValue>| match v {
            Some(AttributeValue::Int(v)) => Some(v.to_string()),
            Some(AttributeValue::String(v)) => Some(v.to_string()),
            _ => None,
        };
        let service = service.to_string();
        let rpc_system = string(p.rpc_system);
        let protocol = rpc_system
            .or_else(|| string(p.protocol_name))
            .unwrap_or("http")
            .to_string();
        let method = string(p.http_method)
            .or_else(|| string(p.rpc_method))
            .unwrap_or("")
            .to_string();
        let route = match (rpc_system, string(p.rpc_service), string(p.rpc_method)) {
            (Some(_), Some(svc), Some(m)) => format!("/{svc}/{m}"),
            _ => string(p.url_path).map(route_template).unwrap_or_default(),
        };
        let mut capped = false;
        let route = {
            let mut l = self.routes.lock().unwrap_or_else(|p| p.into_inner());
            let admitted = l.admit(&service, &route);
            if admitted == OVERFLOW {
                capped = true;
                OVERFLOW.to_string()
            } else {
                route
            }
        };
        let peer_attr = peer_attr(s.kind, p);
        let peer = self
            .peers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .admit("", peer_attr)
            .to_string();
        capped |= peer == OVERFLOW;
        let status = number(p.http_status)
            .or_else(|| number(p.rpc_status))
            .or_else(|| string(p.error_type).map(str::to_string))
            .unwrap_or_default();
        let labels = RedLabels {
            service,
            peer,
            protocol,
            method,
            route,
            status,
            kind: kind_label(s.kind),
            agent: s.process.as_ref().is_some_and(|p| p.agent),
        };
        (labels, capped)
    }
}

/// The handles of one span label-input set in every family served (see [`LabelCache`]).
#[derive(Debug)]
struct SpanHandles {
    /// The `flowscope_request*` families'.
    red: Option<RedHandles>,
    /// The semantic-convention histogram.
    semconv: Option<Histogram>,
    /// Hubble's request counter and duration histogram (spans with a response).
    hubble: Option<(Counter, Histogram)>,
}

/// The handles of one RED label set.
#[derive(Debug)]
struct RedHandles {
    labels: RedLabels,
    requests: Counter,
    /// Made on the first error with these labels.
    errors: Option<Counter>,
    duration: Histogram,
}

/// The other side's address, before the peer cap: the client's on server spans, the
/// server's on client spans.
fn peer_attr<'a>(kind: SpanKind, p: &SpanFields<'a>) -> &'a str {
    match kind {
        SpanKind::Server => string(p.client_address),
        SpanKind::Client => string(p.server_address),
        SpanKind::Internal => None,
    }
    .or_else(|| string(p.peer_address))
    .unwrap_or("")
}

fn kind_label(kind: SpanKind) -> SpanKindLabel {
    match kind {
        // INTERNAL spans never get here: observe_span leaves them out.
        SpanKind::Server | SpanKind::Internal => SpanKindLabel::server,
        SpanKind::Client => SpanKindLabel::client,
    }
}

/// Writes the cache key of `s`'s labels in every family: every input [`Metrics::red_labels`],
/// `SemconvMetrics::histogram` and `HubbleMetrics::span_handles` read, before templating and
/// capping (both depend on these inputs only, and a value once admitted under a cap stays
/// admitted). One key for the three: one hash and one lookup per span, not three.
/// The cache key of `s` from its exchange ([`flows::record::Attributes::metric_identity`]:
/// equal bytes, equal label values) when its attributes are unbuilt; false (use [`span_key`])
/// when they are a list. The identity's first byte is none of [`span_key`]'s field tags, so
/// the two kinds of key never meet.
fn span_identity_key(cache: &mut LabelCache<SpanHandles>, s: &Span, service: &str) -> bool {
    cache
        .key()
        .tag(kind_label(s.kind) as u8)
        .tag(u8::from(s.process.as_ref().is_some_and(|p| p.agent)))
        .str(service)
        .raw(|key| s.attributes.metric_identity(key))
}

fn span_key(cache: &mut LabelCache<SpanHandles>, s: &Span, p: &SpanFields<'_>, service: &str) {
    let mut k = cache
        .key()
        .tag(kind_label(s.kind) as u8)
        .tag(u8::from(s.process.as_ref().is_some_and(|p| p.agent)))
        .str(service);
    for v in p.all() {
        k = match v {
            Some(AttributeValue::String(v)) => k.tagged_str(0, v),
            Some(AttributeValue::Int(v)) => k.tag(1).int(*v),
            Some(AttributeValue::Bool(v)) => k.tag(2).int(i64::from(*v)),
            None => k.tag(3),
        };
    }
}

/// `engine.flows-evicted` -> `engine_flows_evicted` (Prometheus names are `[a-zA-Z0-9_:]`).
fn metric_name(prefix: &str, name: &str) -> String {
    let name = name.strip_suffix("_total").unwrap_or(name);
    let mut out = String::with_capacity(prefix.len() + name.len());
    out.push_str(prefix);
    out.extend(
        name.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }),
    );
    out
}

impl Collector for PushedValues {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counters = self
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for (name, v) in &counters {
            let n = metric_name("flowscope_agent_", name);
            let m = encoder.encode_descriptor(
                &n,
                "flowscope agent counter",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(*v).encode(m)?;
        }
        let gauges = self
            .gauges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for (name, v) in &gauges {
            let n = metric_name("flowscope_agent_", name);
            let m =
                encoder.encode_descriptor(&n, "flowscope agent gauge", None, MetricType::Gauge)?;
            ConstGauge::new(*v).encode(m)?;
        }
        let exporter = self
            .exporter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(c) = exporter {
            for (name, v) in c.snapshot() {
                let n = metric_name("flowscope_", name);
                let m = encoder.encode_descriptor(
                    &n,
                    "OTLP span exporter",
                    None,
                    MetricType::Counter,
                )?;
                ConstCounter::new(v).encode(m)?;
            }
            let len = c.queue_len.load(std::sync::atomic::Ordering::Relaxed) as i64;
            let m = encoder.encode_descriptor(
                "flowscope_otlp_queue_spans",
                "Spans waiting in the OTLP export queue",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(len).encode(m)?;
        }
        let (routes, peers) = *self.overflow.lock().unwrap_or_else(|p| p.into_inner());
        let m = encoder.encode_descriptor(
            "flowscope_route_overflow",
            "Requests counted under route=\"other\" because their service had too many routes",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(routes).encode(m)?;
        let m = encoder.encode_descriptor(
            "flowscope_peer_overflow",
            "Requests counted under peer=\"other\" because there were too many peers",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(peers).encode(m)?;
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use flows::record::{attr, Attributes, IpInfo, ProcessInfo, SpanStatus, Verdict};
    use flows::trace::{SpanId, TraceId};

    pub(crate) fn http_span(path: &str, status: i64, ms: u64, error: bool) -> Span {
        let mut a = Attributes::new();
        a.insert(attr::HTTP_REQUEST_METHOD, "GET".into());
        a.insert(attr::URL_PATH, path.into());
        a.insert(attr::HTTP_RESPONSE_STATUS_CODE, status.into());
        a.insert(attr::CLIENT_ADDRESS, "198.18.0.2".into());
        a.insert(attr::NETWORK_PROTOCOL_NAME, "http".into());
        Span {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([2; 8]),
            parent_span_id: None,
            trace_state: None,
            name: "GET".into(),
            kind: SpanKind::Server,
            start_time_ns: 1_000_000_000,
            end_time_ns: 1_000_000_000 + ms * 1_000_000,
            status: SpanStatus {
                code: if error {
                    StatusCode::Error
                } else {
                    StatusCode::Unset
                },
                message: None,
            },
            attributes: a,
            socket_cookie: None,
            ifindex: 1,
            process: Some(ProcessInfo {
                pid: 42,
                comm: Some("nginx".into()),
                ..ProcessInfo::default()
            }),
            counterpart: None,
            events: Vec::new(),
        }
    }

    fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(prefix))
    }

    #[test]
    fn red_metrics_count_by_status_and_route() {
        let m = Metrics::new(&ExportConfig::default());
        for _ in 0..3 {
            m.observe_span(&http_span("/users/1", 200, 2, false));
        }
        m.observe_span(&http_span("/users/2", 404, 1, false));
        m.observe_span(&http_span("/users/3", 500, 30, true));
        let t = m.encode();
        let l = r#"flowscope_requests_total{service="nginx",peer="198.18.0.2",protocol="http",method="GET",route="/users/{id}",status="200",kind="server",agent="false"} 3"#;
        assert!(t.contains(l), "{t}");
        assert!(
            t.contains(r#"status="404",kind="server",agent="false"} 1"#),
            "{t}"
        );
        assert!(
            t.contains(r#"flowscope_request_errors_total{service="nginx",peer="198.18.0.2",protocol="http",method="GET",route="/users/{id}",status="500",kind="server",agent="false"} 1"#),
            "{t}"
        );
        assert!(
            t.contains(r#"flowscope_request_duration_seconds_bucket{le="0.0025",service="nginx",peer="198.18.0.2",protocol="http",method="GET",route="/users/{id}",status="200",kind="server",agent="false"} 3"#)
                || t.contains(r#"flowscope_request_duration_seconds_bucket{service="nginx",peer="198.18.0.2",protocol="http",method="GET",route="/users/{id}",status="200",kind="server",agent="false",le="0.0025"} 3"#),
            "{t}"
        );
        assert!(
            line(&t, "# TYPE flowscope_request_duration_seconds histogram").is_some(),
            "{t}"
        );
    }

    /// Cached label sets observe into the same series as looking each up: the same
    /// `/metrics` text (lines sorted: a family's series come in hash order), errors first seen
    /// on a cached label set, and overflow counted per observation past a cap.
    #[test]
    fn cached_handles_encode_like_uncached_lookups() {
        let cfg = ExportConfig {
            max_routes_per_service: 2,
            max_peers: 2,
            ..ExportConfig::default()
        };
        let (cached, uncached) = (Metrics::new(&cfg), Metrics::new(&cfg));
        let mut spans = Vec::new();
        for (i, p) in ["/a", "/a", "/b/1", "/c", "/a", "/d", "/c", "/b/2"]
            .iter()
            .enumerate()
        {
            let status = [200, 200, 404, 500, 200][i % 5];
            spans.push(http_span(p, status, i as u64 + 1, status >= 500 || i == 4));
        }
        let mut client = http_span("/a", 404, 3, true);
        client.kind = SpanKind::Client;
        client
            .attributes
            .insert(attr::SERVER_ADDRESS, "web.test".into());
        client
            .attributes
            .insert(attr::NETWORK_PROTOCOL_VERSION, "1.1".into());
        spans.push(client.clone());
        client
            .attributes
            .insert(attr::SERVER_ADDRESS, "other.test".into());
        spans.push(client.clone());
        client
            .attributes
            .insert(attr::SERVER_ADDRESS, "third.test".into());
        spans.push(client);
        let mut rpc = http_span("/x", 200, 20, false);
        rpc.attributes.insert(attr::RPC_SYSTEM, "grpc".into());
        rpc.attributes
            .insert(attr::RPC_SERVICE, "helloworld.Greeter".into());
        rpc.attributes.insert(attr::RPC_METHOD, "SayHello".into());
        rpc.attributes.insert(attr::RPC_GRPC_STATUS_CODE, 0.into());
        spans.push(rpc.clone());
        rpc.attributes
            .insert(attr::RPC_GRPC_STATUS_CODE, "2".into());
        spans.push(rpc);
        for _ in 0..3 {
            for s in &spans {
                cached.observe_span(s);
                uncached.forget_cached();
                uncached.observe_span(s);
            }
        }
        let sorted = |t: String| {
            let mut l: Vec<String> = t.lines().map(str::to_string).collect();
            l.sort();
            l
        };
        let (a, b) = (sorted(cached.encode()), sorted(uncached.encode()));
        assert_eq!(a, b);
        let t = cached.encode();
        assert!(t.contains("flowscope_route_overflow_total 15"), "{t}");
        assert!(t.contains("flowscope_peer_overflow_total 6"), "{t}");
        assert!(
            t.contains(r#"flowscope_request_errors_total{service="nginx",peer="198.18.0.2",protocol="http",method="GET",route="/a",status="200",kind="server",agent="false"} 3"#),
            "{t}"
        );
    }

    /// Spans whose attributes the engine left unbuilt (keyed by their exchange's metric
    /// identity, the list built only for a label set not seen before) give the very `/metrics`
    /// that the same spans with their attributes as a list give (keyed by the list's values),
    /// over exchanges that vary in every label input and in inputs that are no label, with
    /// caps small enough to overflow.
    #[test]
    fn unbuilt_attributes_count_like_their_list() {
        use flows::key::Endpoint;
        use flows::l7::exchange::{ExchangeTrace, HttpVersion, RequestHead};
        use flows::l7::http1::{records, BodySeen, ResponseHead};
        use flows::l7::PacketCtx;
        use flows::record::{BodyError, CompactString};
        use std::sync::Arc;

        let cfg = ExportConfig {
            max_routes_per_service: 3,
            max_peers: 3,
            ..ExportConfig::default()
        };
        let (lazy, listed) = (Metrics::new(&cfg), Metrics::new(&cfg));
        let owner = |comm: &str| {
            Some(ProcessInfo {
                pid: 7,
                comm: Some(comm.into()),
                ..ProcessInfo::default()
            })
        };
        let mut n = 0;
        for round in 0..2 {
            for (client, server) in [("198.18.0.2", "198.18.0.1"), ("2001:db8::2", "2001:db8::1")] {
                let peers = records::Peers {
                    client: Endpoint {
                        addr: client.parse().unwrap(),
                        port: 40_000 + round,
                    },
                    server: Endpoint {
                        addr: server.parse().unwrap(),
                        port: 80,
                    },
                    socket_cookie: None,
                };
                for method in ["GET", "POST", "BREW"] {
                    for target in ["/a?x=1", "/users/12", "/b", "http://h/c"] {
                        for host in [None, Some("web.test:8080")] {
                            for (status, body_error) in [
                                (Some(200), None),
                                (Some(404), None),
                                (Some(503), None),
                                (Some(200), Some(BodyError::Truncated)),
                            ] {
                                let req = Arc::new(RequestHead {
                                    method: method.into(),
                                    target: target.into(),
                                    version: HttpVersion::Http11,
                                    host: host.map(CompactString::new),
                                    user_agent: Some(CompactString::new(format!("ua/{round}"))),
                                    headers: Vec::new(),
                                    content_length: None,
                                    trace: ExchangeTrace::none(),
                                    start: PacketCtx::default(),
                                    head_end: PacketCtx::default(),
                                    framing_error: None,
                                    url: Default::default(),
                                });
                                let resp = ResponseHead {
                                    status,
                                    version: HttpVersion::Http11,
                                    headers: Vec::new(),
                                    start: PacketCtx::default(),
                                    head_end: PacketCtx::default(),
                                    end_ns: 3_000_000,
                                    body_size: Some(10),
                                    body_error,
                                };
                                for kind in [SpanKind::Client, SpanKind::Server] {
                                    for (answer, comm) in [(Some(&resp), "web"), (None, "api")] {
                                        let mut s = records::span(
                                            &peers,
                                            &req,
                                            BodySeen::default(),
                                            answer,
                                            2_000_000 + n,
                                            kind,
                                        );
                                        s.process = owner(comm);
                                        assert!(s.attributes.metric_identity(&mut Vec::new()));
                                        // A JSON round trip makes the same span with a list.
                                        let list: Span = serde_json::from_value(
                                            serde_json::to_value(&s).unwrap(),
                                        )
                                        .unwrap();
                                        assert!(!list.attributes.metric_identity(&mut Vec::new()));
                                        lazy.observe_span(&s);
                                        listed.observe_span(&list);
                                        n += 1;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        let sorted = |t: String| {
            let mut l: Vec<String> = t.lines().map(str::to_string).collect();
            l.sort();
            l
        };
        let (a, b) = (sorted(lazy.encode()), sorted(listed.encode()));
        assert_eq!(a, b);
        let t = lazy.encode();
        assert!(t.contains(r#"status="no_response""#), "{t}");
        assert!(
            t.contains(r#"status="truncated""#) || t.contains("truncated"),
            "{t}"
        );
        assert!(
            !t.contains("flowscope_route_overflow_total 0"),
            "caps reached: {t}"
        );
    }

    #[test]
    fn routes_per_service_are_capped() {
        let cfg = ExportConfig {
            max_routes_per_service: 2,
            ..ExportConfig::default()
        };
        let m = Metrics::new(&cfg);
        for p in ["/a", "/b", "/c", "/d", "/a"] {
            m.observe_span(&http_span(p, 200, 1, false));
        }
        let t = m.encode();
        assert!(
            t.contains(r#"route="other",status="200",kind="server",agent="false"} 2"#),
            "{t}"
        );
        assert!(
            t.contains(r#"route="/a",status="200",kind="server",agent="false"} 2"#),
            "{t}"
        );
        assert!(t.contains("flowscope_route_overflow_total 2"), "{t}");
    }

    #[test]
    fn drops_by_kernel_reason_with_a_bounded_label() {
        let m = Metrics::new(&ExportConfig::default());
        m.observe_drop("NETFILTER_DROP");
        m.observe_drop("NETFILTER_DROP");
        m.observe_drop("NO_SOCKET");
        for i in 0..MAX_DROP_REASONS + 5 {
            m.observe_drop(&format!("UNKNOWN_{i}"));
        }
        let t = m.encode();
        assert!(
            t.contains(r#"flowscope_drops_total{reason="NETFILTER_DROP"} 2"#),
            "{t}"
        );
        assert!(
            t.contains(r#"flowscope_drops_total{reason="NO_SOCKET"} 1"#),
            "{t}"
        );
        // Two names took slots; the rest beyond the cap count as "other".
        assert!(
            t.contains(r#"flowscope_drops_total{reason="other"} 7"#),
            "{t}"
        );
        // Known names keep counting under their own label after the cap.
        m.observe_drop("NO_SOCKET");
        assert!(m
            .encode()
            .contains(r#"flowscope_drops_total{reason="NO_SOCKET"} 2"#));
    }

    #[test]
    fn tcp_health_observed_once_per_connection_at_its_first_close() {
        use flows::record::{ConnectionRole, TcpClose, TcpDirectionHealth, TcpHealth};
        let m = Metrics::new(&ExportConfig::default());
        let health = TcpHealth {
            handshake_ns: Some(300_000),
            to_server: TcpDirectionHealth {
                srtt_ns: Some(20_000_000),
                rtt_samples: 3,
                retransmitted_segments: 2,
                ..Default::default()
            },
            closed_by: Some(TcpClose {
                by: ConnectionRole::Server,
                reset: true,
                time_ns: 7,
            }),
            ..Default::default()
        };
        let flow = |flags: TcpFlags, time_ns, is_reply| Flow {
            time_ns,
            verdict: Verdict::Forwarded,
            flow_type: FlowType::L3L4,
            ip: IpInfo::new("198.18.0.1".parse().unwrap(), "198.18.0.2".parse().unwrap()),
            l4: Layer4::Tcp {
                source_port: 80,
                destination_port: 5000,
                flags,
            },
            l7: None,
            traffic_direction: Direction::Egress,
            is_reply: Some(is_reply),
            ifindex: 1,
            socket_cookie: None,
            ip_len: 40,
            payload_bytes: 0,
            trace_context: None,
            process: None,
            peer_process: None,
            tcp_health: Some(Box::new(health)),
            tcp_srtt_ns: health.path_srtt_ns(),
            l7_source: None,
        };
        // The first RST (by the server, at 7) counts; a later FIN, or the same time from the
        // client, does not.
        m.observe_flow(&flow(TcpFlags::RST, 7, true));
        m.observe_flow(&flow(TcpFlags::FIN, 9, true));
        m.observe_flow(&flow(TcpFlags::RST, 7, false));
        let t = m.encode();
        for want in [
            "flowscope_tcp_handshake_duration_seconds_count 1",
            r#"flowscope_tcp_srtt_seconds_count{direction="to_server"} 1"#,
            r#"flowscope_tcp_connection_retransmitted_segments_total{direction="to_server"} 2"#,
            r#"flowscope_tcp_connection_resets_total{by="server"} 1"#,
            "flowscope_tcp_connections_refused_total 0",
        ] {
            assert!(t.contains(want), "missing {want:?} in\n{t}");
        }
    }

    #[test]
    fn flows_agent_counters_and_exporter_counters() {
        let m = Metrics::new(&ExportConfig::default());
        let flow = |flags: u8, dir, len| Flow {
            time_ns: 0,
            verdict: Verdict::Forwarded,
            flow_type: FlowType::L3L4,
            ip: IpInfo::new("198.18.0.2".parse().unwrap(), "198.18.0.1".parse().unwrap()),
            l4: Layer4::Tcp {
                source_port: 5000,
                destination_port: 80,
                flags: TcpFlags(flags),
            },
            l7: None,
            traffic_direction: dir,
            is_reply: None,
            ifindex: 1,
            socket_cookie: None,
            ip_len: len,
            payload_bytes: 0,
            trace_context: None,
            process: None,
            peer_process: None,
            tcp_health: None,
            tcp_srtt_ns: None,
            l7_source: None,
        };
        m.observe_flow(&flow(TcpFlags::SYN.0, Direction::Ingress, 60));
        m.observe_flow(&flow(
            TcpFlags::SYN.0 | TcpFlags::ACK.0,
            Direction::Egress,
            60,
        ));
        m.observe_flow(&flow(TcpFlags::ACK.0, Direction::Ingress, 100));
        m.add_bytes(Direction::Ingress, 60);
        m.add_bytes(Direction::Egress, 60);
        m.add_bytes(Direction::Ingress, 100);
        m.set_counters(&[
            ("engine_packets".into(), 7),
            ("kernel_ring_full_lost".into(), 0),
        ]);
        m.set_gauges(&[("flows.active".into(), 3)]);
        let c = Arc::new(ExportCounters::default());
        c.spans_dropped_queue_full
            .store(5, std::sync::atomic::Ordering::Relaxed);
        m.watch_exporter(c);
        let t = m.encode();
        for want in [
            "flowscope_tcp_flows_total 1",
            r#"flowscope_bytes_total{direction="ingress"} 160"#,
            r#"flowscope_bytes_total{direction="egress"} 60"#,
            "flowscope_agent_engine_packets_total 7",
            "flowscope_agent_kernel_ring_full_lost_total 0",
            "flowscope_agent_flows_active 3",
            "flowscope_otlp_spans_dropped_queue_full_total 5",
            "flowscope_otlp_spans_exported_total 0",
            "flowscope_otlp_queue_spans 0",
        ] {
            assert!(t.contains(want), "missing {want:?} in\n{t}");
        }
        // A second push replaces the first.
        m.set_counters(&[("engine_packets".into(), 9)]);
        let t = m.encode();
        assert!(t.contains("flowscope_agent_engine_packets_total 9"), "{t}");
        assert!(!t.contains("kernel_ring_full_lost"), "{t}");
    }

    #[test]
    fn otel_semconv_histograms_by_span_kind() {
        let m = Metrics::new(&ExportConfig::default());
        let mut server = http_span("/a", 200, 3, false);
        server
            .attributes
            .insert(attr::SERVER_ADDRESS, "web.test".into());
        server
            .attributes
            .insert(attr::NETWORK_PROTOCOL_VERSION, "1.1".into());
        let mut client = server.clone();
        client.kind = SpanKind::Client;
        client.process.as_mut().unwrap().comm = Some("curl".into());
        m.observe_span(&server);
        m.observe_span(&server);
        m.observe_span(&client);
        let mut rpc = http_span("/x", 200, 20, false);
        rpc.attributes.insert(attr::RPC_SYSTEM, "grpc".into());
        rpc.attributes
            .insert(attr::RPC_SERVICE, "helloworld.Greeter".into());
        rpc.attributes.insert(attr::RPC_METHOD, "SayHello".into());
        rpc.attributes.insert(attr::RPC_GRPC_STATUS_CODE, 0.into());
        m.observe_span(&rpc);
        let t = m.encode();
        for want in [
            r#"http_server_request_duration_seconds_count{service_name="nginx",http_request_method="GET",http_response_status_code="200",server_address="web.test",network_protocol_version="1.1",error_type=""} 2"#,
            r#"http_client_request_duration_seconds_count{service_name="curl",http_request_method="GET",http_response_status_code="200",server_address="web.test",network_protocol_version="1.1",error_type=""} 1"#,
            r#"http_server_request_duration_seconds_bucket{service_name="nginx",http_request_method="GET",http_response_status_code="200",server_address="web.test",network_protocol_version="1.1",error_type="",le="0.005"} 2"#,
            r#"rpc_server_duration_seconds_count{service_name="nginx",rpc_system="grpc",rpc_service="helloworld.Greeter",rpc_method="SayHello",rpc_grpc_status_code="0",server_address=""} 1"#,
        ] {
            assert!(t.contains(want), "{want}\n{t}");
        }
        assert!(!t.contains("http_route"), "no route is known: {t}");
    }

    #[test]
    fn hubble_families_with_ciliums_labels() {
        let m = Metrics::new(&ExportConfig::default());
        let mut client = http_span("/a", 404, 3, true);
        client.kind = SpanKind::Client;
        m.observe_span(&client);
        m.observe_span(&http_span("/a", 200, 3, false));
        let syn = Flow {
            time_ns: 0,
            verdict: Verdict::Forwarded,
            flow_type: FlowType::L3L4,
            ip: IpInfo::new("198.18.0.2".parse().unwrap(), "198.18.0.1".parse().unwrap()),
            l4: Layer4::Tcp {
                source_port: 5000,
                destination_port: 80,
                flags: TcpFlags::SYN,
            },
            l7: None,
            traffic_direction: Direction::Egress,
            is_reply: Some(false),
            ifindex: 1,
            socket_cookie: None,
            ip_len: 60,
            payload_bytes: 0,
            trace_context: None,
            process: None,
            peer_process: None,
            tcp_health: None,
            tcp_srtt_ns: None,
            l7_source: None,
        };
        m.observe_flow(&syn);
        // A kernel drop (agent/drops.rs) under Hubble's reason name.
        let dropped = Flow {
            verdict: Verdict::Dropped,
            traffic_direction: Direction::Unknown,
            is_reply: None,
            ..syn.clone()
        };
        m.observe_hubble_drop(&dropped, "POLICY_DENIED");
        let t = m.encode();
        for want in [
            r#"hubble_drop_total{reason="POLICY_DENIED",protocol="TCP"} 1"#,
            r#"hubble_flows_processed_total{protocol="TCP",type="Drop",subtype="",verdict="DROPPED"} 1"#,
            r#"hubble_http_requests_total{method="GET",protocol="HTTP/1.1",status="404",reporter="client"} 1"#,
            r#"hubble_http_requests_total{method="GET",protocol="HTTP/1.1",status="200",reporter="server"} 1"#,
            r#"hubble_http_request_duration_seconds_count{method="GET",reporter="server"} 1"#,
            r#"hubble_flows_processed_total{protocol="TCP",type="Trace",subtype="from-endpoint",verdict="FORWARDED"} 1"#,
            r#"hubble_tcp_flags_total{flag="SYN",family="IPv4"} 1"#,
        ] {
            assert!(t.contains(want), "{want}\n{t}");
        }
    }

    #[test]
    fn metric_sets_are_selectable() {
        let m = Metrics::new(&ExportConfig {
            metrics: vec![MetricSet::Otel],
            ..ExportConfig::default()
        });
        m.observe_span(&http_span("/a", 200, 3, false));
        let t = m.encode();
        assert!(
            t.contains("http_server_request_duration_seconds_count"),
            "{t}"
        );
        assert!(!t.contains("flowscope_requests_total"), "{t}");
        assert!(!t.contains("hubble_"), "{t}");
    }

    #[test]
    fn hubble_dns_queries_and_responses_with_ciliums_rcode_names() {
        use flows::record::{DnsInfo, L7Record, L7Type, Layer7};
        let m = Metrics::new(&ExportConfig::default());
        let dns = |t: L7Type, rcode: Option<u16>, ips: usize| Flow {
            time_ns: 0,
            verdict: Verdict::Forwarded,
            flow_type: FlowType::L7,
            ip: IpInfo::new("198.18.0.2".parse().unwrap(), "198.18.0.1".parse().unwrap()),
            l4: Layer4::Udp {
                source_port: 5000,
                destination_port: 53,
            },
            l7: Some(Layer7 {
                r#type: t,
                latency_ns: None,
                record: L7Record::Dns(DnsInfo {
                    id: 1,
                    query: "a.test.".into(),
                    qtypes: vec!["A".into()],
                    rcode,
                    ips: vec!["192.0.2.1".parse().unwrap(); ips],
                    ttl: None,
                    cnames: vec![],
                    rrtypes: vec![],
                    answers: vec![],
                    truncated: false,
                    questions: vec![],
                    response_only: false,
                    doh: false,
                }),
            }),
            traffic_direction: Direction::Egress,
            is_reply: Some(t == L7Type::Response),
            ifindex: 1,
            socket_cookie: None,
            ip_len: 0,
            payload_bytes: 0,
            trace_context: None,
            process: None,
            peer_process: None,
            tcp_health: None,
            tcp_srtt_ns: None,
            l7_source: None,
        };
        m.observe_flow(&dns(L7Type::Request, None, 0));
        m.observe_flow(&dns(L7Type::Response, Some(0), 2));
        m.observe_flow(&dns(L7Type::Response, Some(3), 0));
        let t = m.encode();
        for want in [
            r#"hubble_dns_queries_total{rcode="",qtypes="A",ips_returned="0"} 1"#,
            r#"hubble_dns_responses_total{rcode="No Error",qtypes="A",ips_returned="2"} 1"#,
            r#"hubble_dns_responses_total{rcode="Non-Existent Domain",qtypes="A",ips_returned="0"} 1"#,
            r#"hubble_flows_processed_total{protocol="DNS",type="L7",subtype="DNS",verdict="FORWARDED"} 3"#,
        ] {
            assert!(t.contains(want), "{want}\n{t}");
        }
    }
}
