//! The OpenTelemetry semantic-convention request metrics under the Prometheus names OTel's
//! Prometheus exporters give them (dots become underscores, the unit is appended):
//! `http.server.request.duration` -> `http_server_request_duration_seconds`, likewise
//! `http.client.request.duration`, and the RPC ones `rpc.server.duration` /
//! `rpc.client.duration` (in seconds here, as semconv 1.27+ `rpc.*.call.duration` are; the
//! older semconv said milliseconds, a unit the name now states).
//!
//! One observation per span: a span's kind says whose metric it is (a CLIENT span of curl
//! feeds `http_client_*`, the SERVER span of python3 `http_server_*`), so an exchange between
//! two local processes counts once on each side, as two instrumented processes would report.
//!
//! Attributes follow the HTTP and RPC semantic conventions (semconv `http-metrics.md`,
//! `rpc-metrics.md`), as labels. `http.route` is left out: it "MUST be the matched route"
//! (the server framework's template, e.g. `/users/{id}`), which only the server knows; a
//! packet observer has the path, and the path is neither a route nor of bounded cardinality.
//! Dashboards that group by `http_route` see it empty, which Prometheus treats as absent.
//! `service_name` is the OTel resource attribute of the span's process, promoted to a label
//! as OTel's Prometheus exporters do (`resource_to_telemetry_conversion`): one agent reports
//! for many processes. Label values a peer chooses (the Host header, gRPC service and method
//! names) are capped like the flowscope metrics' routes and peers.

use std::sync::Mutex;

use flows::record::{AttributeValue, Span, SpanKind};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{family::Family, histogram::Histogram},
    registry::{Registry, Unit},
};

use super::{route::LabelLimiter, span_fields::SpanFields};

/// OTel's recommended explicit buckets for HTTP request durations, in seconds (semconv
/// `http-metrics.md`, "Metric: http.server.request.duration").
const DURATION_BUCKETS: [f64; 15] = [
    0.0, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// Labels of `http_{server,client}_request_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The span's process's `service.name`.
    pub service_name: String,
    /// `http.request.method` (`_OTHER` for methods outside the known set).
    pub http_request_method: String,
    /// `http.response.status_code`; empty when no response came.
    pub http_response_status_code: String,
    /// `server.address`: the Host header or `:authority`, else the server's address.
    pub server_address: String,
    /// `network.protocol.version`: `1.0`, `1.1` or `2`.
    pub network_protocol_version: String,
    /// `error.type`: the status code of failures, or why there is no response; empty else.
    pub error_type: String,
}

/// Labels of `rpc_{server,client}_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    /// The span's process's `service.name`.
    pub service_name: String,
    /// `rpc.system`: `grpc`.
    pub rpc_system: String,
    /// `rpc.service`, e.g. `helloworld.Greeter`.
    pub rpc_service: String,
    /// `rpc.method`, e.g. `SayHello`.
    pub rpc_method: String,
    /// `rpc.grpc.status_code`; empty when unknown.
    pub rpc_grpc_status_code: String,
    /// `server.address`: `:authority`, else the server's address.
    pub server_address: String,
}

/// The four semantic-convention duration histograms.
#[derive(Debug)]
pub struct SemconvMetrics {
    http_server: Family<HttpLabels, Histogram, fn() -> Histogram>,
    http_client: Family<HttpLabels, Histogram, fn() -> Histogram>,
    rpc_server: Family<RpcLabels, Histogram, fn() -> Histogram>,
    rpc_client: Family<RpcLabels, Histogram, fn() -> Histogram>,
    /// `server.address` values (chosen by clients: the Host header), capped.
    addresses: Mutex<LabelLimiter>,
    /// `rpc.service/rpc.method` per service (chosen by clients: `:path`), capped.
    rpc_names: Mutex<LabelLimiter>,
}

impl SemconvMetrics {
    /// Registers the histograms in `registry`; at most `max_addresses` distinct
    /// `server_address` values and `max_rpc_names` RPC names per service are kept, the rest
    /// counted under `other`.
    pub fn new(registry: &mut Registry, max_addresses: usize, max_rpc_names: usize) -> Self {
        let family = || Family::new_with_constructor(duration_histogram as fn() -> Histogram);
        let rpc_family = || Family::new_with_constructor(duration_histogram as fn() -> Histogram);
        let m = Self {
            http_server: family(),
            http_client: family(),
            rpc_server: rpc_family(),
            rpc_client: rpc_family(),
            addresses: Mutex::new(LabelLimiter::new(max_addresses.max(1))),
            rpc_names: Mutex::new(LabelLimiter::new(max_rpc_names.max(1))),
        };
        registry.register_with_unit(
            "http_server_request_duration",
            "Duration of HTTP server requests (OpenTelemetry http.server.request.duration)",
            Unit::Seconds,
            m.http_server.clone(),
        );
        registry.register_with_unit(
            "http_client_request_duration",
            "Duration of HTTP client requests (OpenTelemetry http.client.request.duration)",
            Unit::Seconds,
            m.http_client.clone(),
        );
        registry.register_with_unit(
            "rpc_server_duration",
            "Duration of inbound RPCs (OpenTelemetry rpc.server.duration)",
            Unit::Seconds,
            m.rpc_server.clone(),
        );
        registry.register_with_unit(
            "rpc_client_duration",
            "Duration of outbound RPCs (OpenTelemetry rpc.client.duration)",
            Unit::Seconds,
            m.rpc_client.clone(),
        );
        m
    }

    /// The histogram of `s` (of its kind, under `service`; `p` are its attributes), and
    /// whether a cap replaced one of its labels (then the caller must not keep the handle:
    /// each such observation is counted as overflowing). None for INTERNAL spans.
    pub fn histogram(
        &self,
        s: &Span,
        p: &SpanFields<'_>,
        service: &str,
    ) -> Option<(Histogram, bool)> {
        let server = match s.kind {
            SpanKind::Server => true,
            SpanKind::Client => false,
            SpanKind::Internal => return None,
        };
        let (labels, capped) = self.labels(p, service);
        let h = match (labels, server) {
            (Labels::Http(l), true) => self.http_server.get_or_create_owned(&l),
            (Labels::Http(l), false) => self.http_client.get_or_create_owned(&l),
            (Labels::Rpc(l), true) => self.rpc_server.get_or_create_owned(&l),
            (Labels::Rpc(l), false) => self.rpc_client.get_or_create_owned(&l),
        };
        Some((h, capped))
    }

    /// The labels of `s`'s histogram, and whether a cap replaced one of them (then they are
    /// not cached: each such observation is counted as overflowing).
    fn labels(&self, p: &SpanFields<'_>, service: &str) -> (Labels, bool) {
        let text = |v: Option<&AttributeValue>| match v {
            Some(AttributeValue::String(v)) => v.to_string(),
            Some(AttributeValue::Int(v)) => v.to_string(),
            Some(AttributeValue::Bool(v)) => v.to_string(),
            None => String::new(),
        };
        let mut capped = false;
        let address = {
            let a = text(p.server_address);
            let mut l = self.addresses.lock().unwrap_or_else(|p| p.into_inner());
            let admitted = l.admit("", &a);
            capped |= admitted == super::route::OVERFLOW;
            admitted.to_string()
        };
        if p.rpc_system.is_some() {
            let (rpc_service, rpc_method) = {
                let (svc, m) = (text(p.rpc_service), text(p.rpc_method));
                let mut l = self.rpc_names.lock().unwrap_or_else(|p| p.into_inner());
                match l.admit(service, &format!("{svc}/{m}")) {
                    super::route::OVERFLOW => {
                        capped = true;
                        (
                            super::route::OVERFLOW.to_string(),
                            super::route::OVERFLOW.to_string(),
                        )
                    }
                    _ => (svc, m),
                }
            };
            let labels = RpcLabels {
                service_name: service.to_string(),
                rpc_system: text(p.rpc_system),
                rpc_service,
                rpc_method,
                rpc_grpc_status_code: text(p.rpc_status),
                server_address: address,
            };
            (Labels::Rpc(labels), capped)
        } else {
            let labels = HttpLabels {
                service_name: service.to_string(),
                http_request_method: text(p.http_method),
                http_response_status_code: text(p.http_status),
                server_address: address,
                network_protocol_version: text(p.protocol_version),
                error_type: text(p.error_type),
            };
            (Labels::Http(labels), capped)
        }
    }
}

/// One span's labels: an HTTP or an RPC histogram's.
enum Labels {
    Http(HttpLabels),
    Rpc(RpcLabels),
}
