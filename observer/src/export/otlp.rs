//! flowscope spans as OTLP messages: one `ResourceSpans` per process (service, pid, container),
//! one `ScopeSpans` named `flowscope` inside it, attributes mapped one to one.

use std::collections::{BTreeMap, HashMap};

use flows::record::{AttributeValue, ProcessInfo, Span, SpanKind, StatusCode};

use super::proto::{
    collector::ExportTraceServiceRequest,
    common::{any_value, AnyValue, InstrumentationScope, KeyValue},
    resource::Resource,
    trace::{self as pb, ResourceSpans, ScopeSpans},
};

/// OTLP `SpanFlags` (trace.proto): bit 8 says whether bit 9 (parent is remote) is known.
const SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE: u32 = 0x100;
const SPAN_FLAGS_CONTEXT_IS_REMOTE: u32 = 0x200;
/// W3C trace-flags `sampled` (Trace Context §3.2.2.5): every span we export was recorded.
const TRACE_FLAG_SAMPLED: u32 = 0x01;

/// Span attribute naming the thread that acted (OTel general semantic conventions).
const THREAD_NAME: &str = "thread.name";

/// Resource attribute names (OTel semantic conventions).
mod resource_attr {
    pub const SERVICE_NAME: &str = "service.name";
    pub const HOST_NAME: &str = "host.name";
    pub const PROCESS_PID: &str = "process.pid";
    pub const PROCESS_EXECUTABLE_NAME: &str = "process.executable.name";
    pub const CONTAINER_ID: &str = "container.id";
    pub const TELEMETRY_DISTRO_NAME: &str = "telemetry.distro.name";
}

/// Decides each span's `service.name` and builds its resource.
#[derive(Debug, Clone)]
pub struct ResourceNamer {
    host_name: String,
    default_service: String,
    service_map: BTreeMap<String, String>,
}

/// What makes two spans share a resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct ResourceKey {
    service: String,
    pid: Option<u32>,
    comm: Option<String>,
    container_id: Option<String>,
}

impl ResourceNamer {
    /// `host_name` goes on every resource; `default_service` names spans of unknown processes;
    /// `service_map` renames processes by `comm`.
    pub fn new(
        host_name: impl Into<String>,
        default_service: impl Into<String>,
        service_map: BTreeMap<String, String>,
    ) -> Self {
        Self {
            host_name: host_name.into(),
            default_service: default_service.into(),
            service_map,
        }
    }

    /// The `service.name` of a span from `process` (mapped comm, comm, or the default).
    pub fn service_name<'a>(&'a self, process: Option<&'a ProcessInfo>) -> &'a str {
        match process.and_then(|p| p.comm.as_deref()) {
            Some(comm) => self.service_map.get(comm).map_or(comm, String::as_str),
            None => &self.default_service,
        }
    }

    fn key(&self, process: Option<&ProcessInfo>) -> ResourceKey {
        ResourceKey {
            service: self.service_name(process).to_string(),
            pid: process.map(|p| p.pid).filter(|p| *p != 0),
            comm: process.and_then(|p| p.comm.as_deref().map(str::to_string)),
            container_id: process.and_then(|p| p.container_id.as_deref().map(str::to_string)),
        }
    }

    fn resource(&self, k: &ResourceKey) -> Resource {
        let mut attributes = vec![
            kv_str(resource_attr::SERVICE_NAME, &k.service),
            kv_str(resource_attr::HOST_NAME, &self.host_name),
            kv_str(resource_attr::TELEMETRY_DISTRO_NAME, "flowscope"),
        ];
        if let Some(pid) = k.pid {
            attributes.push(kv(
                resource_attr::PROCESS_PID,
                any_value::Value::IntValue(pid.into()),
            ));
        }
        if let Some(c) = &k.comm {
            attributes.push(kv_str(resource_attr::PROCESS_EXECUTABLE_NAME, c));
        }
        if let Some(c) = &k.container_id {
            attributes.push(kv_str(resource_attr::CONTAINER_ID, c));
        }
        Resource {
            attributes,
            ..Resource::default()
        }
    }

    /// One export request for `spans`, grouped by resource (in a stable order).
    pub fn request(&self, spans: &[Box<Span>]) -> ExportTraceServiceRequest {
        let mut groups: HashMap<ResourceKey, Vec<pb::Span>> = HashMap::new();
        for s in spans {
            groups
                .entry(self.key(s.process.as_ref()))
                .or_default()
                .push(span_to_proto(s));
        }
        let mut groups: Vec<_> = groups.into_iter().collect();
        groups.sort_by(|a, b| a.0.cmp(&b.0));
        ExportTraceServiceRequest {
            resource_spans: groups
                .into_iter()
                .map(|(k, spans)| ResourceSpans {
                    resource: Some(self.resource(&k)),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: "flowscope".into(),
                            version: env!("CARGO_PKG_VERSION").into(),
                            ..InstrumentationScope::default()
                        }),
                        spans,
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                })
                .collect(),
        }
    }
}

fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(v) }),
        ..KeyValue::default()
    }
}

fn kv_str(key: &str, v: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(v.to_string()))
}

/// One flowscope span as an OTLP span.
pub fn span_to_proto(s: &Span) -> pb::Span {
    let remote_parent = s.kind == SpanKind::Server && s.parent_span_id.is_some();
    pb::Span {
        trace_id: s.trace_id.0.to_vec(),
        span_id: s.span_id.0.to_vec(),
        trace_state: s.trace_state.clone().unwrap_or_default(),
        parent_span_id: s.parent_span_id.map(|p| p.0.to_vec()).unwrap_or_default(),
        // A server's parent came over the wire (remote); a client's parent is the calling
        // process's own span, which is local to it.
        flags: TRACE_FLAG_SAMPLED
            | SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE
            | if remote_parent {
                SPAN_FLAGS_CONTEXT_IS_REMOTE
            } else {
                0
            },
        name: s.name.to_string(),
        kind: match s.kind {
            SpanKind::Server => pb::span::SpanKind::Server,
            SpanKind::Client => pb::span::SpanKind::Client,
            SpanKind::Internal => pb::span::SpanKind::Internal,
        } as i32,
        start_time_unix_nano: s.start_time_ns,
        end_time_unix_nano: s.end_time_ns.max(s.start_time_ns),
        attributes: s
            .attributes
            .iter()
            .map(|(k, v)| {
                kv(
                    k,
                    match v {
                        AttributeValue::Bool(b) => any_value::Value::BoolValue(*b),
                        AttributeValue::Int(i) => any_value::Value::IntValue(*i),
                        AttributeValue::String(s) => any_value::Value::StringValue(s.to_string()),
                    },
                )
            })
            // OTel general semconv `thread.name`: the thread that used the socket, when it is
            // not the process's own name (that is `process.executable.name` on the resource).
            .chain(
                s.process
                    .as_ref()
                    .and_then(|p| p.thread_name.as_deref())
                    .map(|t| kv_str(THREAD_NAME, t)),
            )
            .collect(),
        status: Some(pb::Status {
            message: s.status.message.clone().unwrap_or_default(),
            code: match s.status.code {
                StatusCode::Unset => pb::status::StatusCode::Unset,
                StatusCode::Ok => pb::status::StatusCode::Ok,
                StatusCode::Error => pb::status::StatusCode::Error,
            } as i32,
        }),
        events: s
            .events
            .iter()
            .map(|e| pb::span::Event {
                time_unix_nano: e.time_ns,
                name: e.name.to_string(),
                ..pb::span::Event::default()
            })
            .collect(),
        ..pb::Span::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flows::record::{attr, Attributes, SpanStatus};
    use flows::trace::{SpanId, TraceId};

    fn span(pid: Option<u32>, comm: Option<&str>) -> Box<Span> {
        let mut attributes = Attributes::new();
        attributes.insert(attr::HTTP_REQUEST_METHOD, "GET".into());
        attributes.insert(attr::HTTP_RESPONSE_STATUS_CODE, 404i64.into());
        attributes.insert("flowscope.partial", AttributeValue::Bool(true));
        Box::new(Span {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736"
                .parse::<TraceId>()
                .unwrap(),
            span_id: "00f067aa0ba902b7".parse::<SpanId>().unwrap(),
            parent_span_id: Some("b7ad6b7169203331".parse().unwrap()),
            trace_state: Some("congo=t61rcWkgMzE".into()),
            name: "GET".into(),
            kind: SpanKind::Server,
            start_time_ns: 1_700_000_000_000_000_000,
            end_time_ns: 1_700_000_000_002_000_000,
            status: SpanStatus {
                code: StatusCode::Error,
                message: Some("boom".into()),
            },
            attributes,
            socket_cookie: Some(7),
            ifindex: 2,
            process: pid.map(|pid| ProcessInfo {
                pid,
                comm: comm.map(Into::into),
                container_id: Some("abc123".into()),
                ..ProcessInfo::default()
            }),
            counterpart: None,
            events: Vec::new(),
        })
    }

    fn attr_of<'a>(kvs: &'a [KeyValue], k: &str) -> Option<&'a any_value::Value> {
        kvs.iter()
            .find(|x| x.key == k)
            .and_then(|x| x.value.as_ref()?.value.as_ref())
    }

    #[test]
    fn span_maps_ids_times_kind_status_and_attributes() {
        let p = span_to_proto(&span(None, None));
        assert_eq!(hex(&p.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex(&p.span_id), "00f067aa0ba902b7");
        assert_eq!(hex(&p.parent_span_id), "b7ad6b7169203331");
        assert_eq!(p.trace_state, "congo=t61rcWkgMzE");
        assert_eq!(p.kind, pb::span::SpanKind::Server as i32);
        assert_eq!(p.flags, 0x301);
        assert_eq!(p.start_time_unix_nano, 1_700_000_000_000_000_000);
        assert_eq!(p.end_time_unix_nano, 1_700_000_000_002_000_000);
        let st = p.status.unwrap();
        assert_eq!(st.code, pb::status::StatusCode::Error as i32);
        assert_eq!(st.message, "boom");
        assert_eq!(
            attr_of(&p.attributes, attr::HTTP_REQUEST_METHOD),
            Some(&any_value::Value::StringValue("GET".into()))
        );
        assert_eq!(
            attr_of(&p.attributes, attr::HTTP_RESPONSE_STATUS_CODE),
            Some(&any_value::Value::IntValue(404))
        );
        assert_eq!(
            attr_of(&p.attributes, "flowscope.partial"),
            Some(&any_value::Value::BoolValue(true))
        );
    }

    #[test]
    fn spans_group_by_process_resource() {
        let mut map = BTreeMap::new();
        map.insert("nginx".to_string(), "frontend".to_string());
        let namer = ResourceNamer::new("node-1", "unknown_service:flowscope", map);
        let spans = vec![
            span(Some(10), Some("nginx")),
            span(None, None),
            span(Some(10), Some("nginx")),
            span(Some(20), Some("curl")),
        ];
        let req = namer.request(&spans);
        assert_eq!(req.resource_spans.len(), 3);
        let by_service: BTreeMap<String, &ResourceSpans> = req
            .resource_spans
            .iter()
            .map(|rs| {
                let r = rs.resource.as_ref().unwrap();
                match attr_of(&r.attributes, "service.name") {
                    Some(any_value::Value::StringValue(s)) => (s.clone(), rs),
                    other => panic!("service.name {other:?}"),
                }
            })
            .collect();
        let front = by_service["frontend"];
        assert_eq!(front.scope_spans[0].spans.len(), 2);
        assert_eq!(
            front.scope_spans[0].scope.as_ref().unwrap().name,
            "flowscope"
        );
        let r = &front.resource.as_ref().unwrap().attributes;
        assert_eq!(
            attr_of(r, "process.pid"),
            Some(&any_value::Value::IntValue(10))
        );
        assert_eq!(
            attr_of(r, "host.name"),
            Some(&any_value::Value::StringValue("node-1".into()))
        );
        assert_eq!(
            attr_of(r, "container.id"),
            Some(&any_value::Value::StringValue("abc123".into()))
        );
        assert_eq!(
            attr_of(r, "process.executable.name"),
            Some(&any_value::Value::StringValue("nginx".into()))
        );
        assert_eq!(by_service["curl"].scope_spans[0].spans.len(), 1);
        let unknown = by_service["unknown_service:flowscope"];
        assert!(attr_of(
            &unknown.resource.as_ref().unwrap().attributes,
            "process.pid"
        )
        .is_none());
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
