//! The exporter against real OTLP receivers in this process: a tonic `TraceService` server
//! (generated from the same protos) and a hyper OTLP/HTTP server, on 127.0.0.1 random ports.
//! Each span arrives once with its ids and attributes; a receiver stopped mid-run makes the
//! exporter count drops at a flat queue, and export resumes when it comes back.

use std::{
    collections::{BTreeMap, HashMap},
    convert::Infallible,
    io::Read,
    net::SocketAddr,
    sync::{atomic::Ordering, Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use flows::{
    record::{
        attr, AttributeValue, Attributes, ProcessInfo, Span, SpanKind, SpanStatus, StatusCode,
    },
    trace::{SpanId, TraceId},
};
use http_body_util::{BodyExt, Full};
use hyper::{server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use prost::Message;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

use super::{
    config::{ExportConfig, OtlpCompression, OtlpProtocol},
    exporter::{SpanExporter, SpanSink},
    metrics::Metrics,
    otlp::ResourceNamer,
    print::write_span_line,
    proto::{
        collector::{
            trace_service_server::{TraceService, TraceServiceServer},
            ExportTraceServiceRequest, ExportTraceServiceResponse,
        },
        common::any_value,
        trace as pb,
    },
    server::serve_metrics,
};

/// What a receiver got: each request's spans with their resource's service.name, and the
/// request headers.
#[derive(Debug, Default, Clone)]
struct Received {
    spans: Arc<Mutex<Vec<(String, pb::Span)>>>,
    headers: Arc<Mutex<Vec<HashMap<String, String>>>>,
}

impl Received {
    fn record(&self, req: ExportTraceServiceRequest, headers: HashMap<String, String>) {
        let mut spans = self.spans.lock().unwrap();
        for rs in req.resource_spans {
            let service = rs
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
                .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                    any_value::Value::StringValue(s) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    spans.push((service.clone(), s));
                }
            }
        }
        self.headers.lock().unwrap().push(headers);
    }

    fn count(&self) -> usize {
        self.spans.lock().unwrap().len()
    }

    async fn wait_for(&self, n: usize, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while self.count() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "receiver got {} spans, expected {n}",
                self.count()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[derive(Debug, Clone)]
struct GrpcReceiver(Received);

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        req: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let headers = req
            .metadata()
            .clone()
            .into_headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        self.0.record(req.into_inner(), headers);
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

/// A running receiver; dropping `stop` stops it.
struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Running {
    async fn stop(mut self) {
        drop(self.stop.take());
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.task).await;
        self.task.abort();
    }
}

async fn start_grpc(addr: SocketAddr, rx: Received) -> Running {
    let listener = TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(
                TraceServiceServer::new(GrpcReceiver(rx))
                    .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
            )
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            })
            .await;
    });
    Running {
        addr,
        stop: Some(stop),
        task,
    }
}

/// OTLP/HTTP receiver: POST /v1/traces, protobuf body, optional gzip.
async fn start_http(addr: SocketAddr, rx: Received) -> Running {
    let listener = TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, mut stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut conns = Vec::new();
        loop {
            let stream = tokio::select! {
                _ = &mut stopped => break,
                a = listener.accept() => a.unwrap().0,
            };
            let rx = rx.clone();
            conns.push(tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let rx = rx.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let mut body = body.collect().await.unwrap().to_bytes().to_vec();
                        let headers: HashMap<String, String> = parts
                            .headers
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                            .collect();
                        let status = if parts.uri.path() != "/v1/traces"
                            || headers.get("content-type").map(String::as_str)
                                != Some("application/x-protobuf")
                        {
                            hyper::StatusCode::NOT_FOUND
                        } else {
                            if headers.get("content-encoding").map(String::as_str) == Some("gzip") {
                                let mut out = Vec::new();
                                flate2::read::GzDecoder::new(&body[..])
                                    .read_to_end(&mut out)
                                    .unwrap();
                                body = out;
                            }
                            let req = ExportTraceServiceRequest::decode(&body[..]).unwrap();
                            rx.record(req, headers);
                            hyper::StatusCode::OK
                        };
                        let resp = ExportTraceServiceResponse::default().encode_to_vec();
                        Ok::<_, Infallible>(
                            hyper::Response::builder()
                                .status(status)
                                .header("content-type", "application/x-protobuf")
                                .body(Full::new(Bytes::from(resp)))
                                .unwrap(),
                        )
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            }));
        }
        // Stopped: close every connection too, like a collector going away.
        for c in conns {
            c.abort();
        }
    });
    Running {
        addr,
        stop: Some(stop),
        task,
    }
}

fn test_span(i: u64) -> Box<Span> {
    let mut a = Attributes::new();
    a.insert(attr::HTTP_REQUEST_METHOD, "GET".into());
    a.insert(attr::URL_PATH, format!("/items/{i}").into());
    a.insert(attr::HTTP_RESPONSE_STATUS_CODE, AttributeValue::Int(200));
    let mut trace = [0u8; 16];
    trace[..8].copy_from_slice(&(i + 1).to_be_bytes());
    trace[15] = 0xaa;
    Box::new(Span {
        trace_id: TraceId(trace),
        span_id: SpanId((i + 1).to_be_bytes()),
        parent_span_id: (i.is_multiple_of(2)).then(|| SpanId((i + 1_000_000).to_be_bytes())),
        trace_state: None,
        name: "GET".into(),
        kind: if i.is_multiple_of(3) {
            SpanKind::Client
        } else {
            SpanKind::Server
        },
        start_time_ns: 1_700_000_000_000_000_000 + i * 1000,
        end_time_ns: 1_700_000_000_000_000_000 + i * 1000 + 500,
        status: SpanStatus {
            code: StatusCode::Unset,
            message: None,
        },
        attributes: a,
        socket_cookie: None,
        ifindex: 1,
        process: Some(ProcessInfo {
            pid: 100 + (i % 2) as u32,
            comm: Some(if i.is_multiple_of(2) { "nginx" } else { "curl" }.into()),
            ..ProcessInfo::default()
        }),
        counterpart: None,
        events: Vec::new(),
    })
}

fn cfg_for(endpoint: String, protocol: OtlpProtocol) -> ExportConfig {
    ExportConfig {
        otlp_endpoint: Some(endpoint),
        otlp_protocol: Some(protocol),
        otlp_compression: Some(OtlpCompression::Gzip),
        otlp_batch_size: 64,
        otlp_batch_timeout_ms: 50,
        otlp_timeout_ms: 2000,
        otlp_max_retry_ms: 500,
        ..ExportConfig::default()
    }
}

fn spawn(cfg: &ExportConfig) -> (SpanSink, JoinHandle<()>) {
    let target = cfg.otlp_target_with(|_| None).unwrap().unwrap();
    let mut map = BTreeMap::new();
    map.insert("nginx".to_string(), "frontend".to_string());
    SpanExporter::spawn_to(
        cfg,
        &target,
        ResourceNamer::new("test-node", "unknown_service:flowscope", map),
    )
    .unwrap()
}

/// Every span arrives exactly once with its ids, kind, times and attributes.
fn check_all_arrived(rx: &Received, n: u64) {
    let spans = rx.spans.lock().unwrap();
    assert_eq!(spans.len() as u64, n, "each span once");
    let by_id: HashMap<Vec<u8>, &(String, pb::Span)> =
        spans.iter().map(|s| (s.1.span_id.clone(), s)).collect();
    assert_eq!(by_id.len() as u64, n, "no duplicates");
    for i in 0..n {
        let want = test_span(i);
        let (service, got) = by_id[&want.span_id.0.to_vec()];
        assert_eq!(got.trace_id, want.trace_id.0.to_vec());
        assert_eq!(
            got.parent_span_id,
            want.parent_span_id
                .map(|p| p.0.to_vec())
                .unwrap_or_default()
        );
        assert_eq!(
            got.kind,
            match want.kind {
                SpanKind::Server => pb::span::SpanKind::Server as i32,
                SpanKind::Client => pb::span::SpanKind::Client as i32,
                SpanKind::Internal => pb::span::SpanKind::Internal as i32,
            }
        );
        assert_eq!(got.start_time_unix_nano, want.start_time_ns);
        assert_eq!(got.end_time_unix_nano, want.end_time_ns);
        assert_eq!(
            service,
            if i.is_multiple_of(2) {
                "frontend"
            } else {
                "curl"
            }
        );
        let path = got
            .attributes
            .iter()
            .find(|a| a.key == attr::URL_PATH)
            .and_then(|a| a.value.clone()?.value);
        assert_eq!(
            path,
            Some(any_value::Value::StringValue(format!("/items/{i}")))
        );
    }
}

async fn exports_every_span_once(protocol: OtlpProtocol) {
    let rx = Received::default();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = match protocol {
        OtlpProtocol::Grpc => start_grpc(any, rx.clone()).await,
        OtlpProtocol::HttpProtobuf => start_http(any, rx.clone()).await,
    };
    let mut cfg = cfg_for(format!("http://{}", server.addr), protocol);
    cfg.add_header_flags(&["X-Tenant=net-team".into()]).unwrap();
    let (sink, task) = spawn(&cfg);
    let n = 1000;
    for i in 0..n {
        sink.push(test_span(i));
    }
    // Shutdown flushes what is queued.
    sink.shutdown();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("exporter stops within its shutdown deadline")
        .unwrap();
    check_all_arrived(&rx, n);
    let c = sink.counters();
    assert_eq!(c.spans_exported.load(Ordering::Relaxed), n);
    assert_eq!(c.spans_dropped_queue_full.load(Ordering::Relaxed), 0);
    assert_eq!(c.export_failures.load(Ordering::Relaxed), 0);
    {
        let headers = rx.headers.lock().unwrap();
        assert!(headers
            .iter()
            .all(|h| h.get("x-tenant").map(String::as_str) == Some("net-team")));
    }
    server.stop().await;
}

#[tokio::test]
async fn grpc_exports_every_span_once() {
    exports_every_span_once(OtlpProtocol::Grpc).await;
}

#[tokio::test]
async fn http_exports_every_span_once() {
    exports_every_span_once(OtlpProtocol::HttpProtobuf).await;
}

async fn survives_a_collector_outage(protocol: OtlpProtocol) {
    let rx = Received::default();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let start = |addr, rx| async move {
        match protocol {
            OtlpProtocol::Grpc => start_grpc(addr, rx).await,
            OtlpProtocol::HttpProtobuf => start_http(addr, rx).await,
        }
    };
    let server = start(any, rx.clone()).await;
    let addr = server.addr;
    let mut cfg = cfg_for(format!("http://{addr}"), protocol);
    cfg.otlp_queue_size = 200;
    cfg.otlp_max_retry_ms = 300;
    let (sink, task) = spawn(&cfg);
    let c = sink.counters();

    // Up: the first spans go through.
    for i in 0..100 {
        sink.push(test_span(i));
    }
    rx.wait_for(100, Duration::from_secs(10)).await;

    // Down: far more spans than the queue holds; the queue never grows past its cap.
    server.stop().await;
    for i in 100..3100 {
        sink.push(test_span(i));
        assert!(sink.queue_len() <= sink.queue_cap());
        if i % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(c.spans_dropped_queue_full.load(Ordering::Relaxed) > 0);
    assert!(c.export_failures.load(Ordering::Relaxed) > 0);
    assert!(c.queue_high_water.load(Ordering::Relaxed) <= 200);
    let before = rx.count();

    // Back: new spans arrive without anything being restarted on our side.
    let server = start(addr, rx.clone()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let marker = 5000;
    let mut i = marker;
    loop {
        sink.push(test_span(i));
        i += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let got_new = rx
            .spans
            .lock()
            .unwrap()
            .iter()
            .any(|(_, s)| s.span_id == (marker + 1).to_be_bytes().to_vec());
        if got_new {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no span delivered after the collector came back; counters {:?}",
            c.snapshot()
        );
    }
    assert!(rx.count() > before);
    sink.shutdown();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
    // Every span is accounted for: exported, or dropped for a counted reason.
    let total = c.spans_exported.load(Ordering::Relaxed)
        + c.spans_dropped_queue_full.load(Ordering::Relaxed)
        + c.spans_dropped_export_failed.load(Ordering::Relaxed)
        + c.spans_dropped_shutdown.load(Ordering::Relaxed);
    assert_eq!(total, 3100 + (i - marker), "{:?}", c.snapshot());
    server.stop().await;
}

#[tokio::test]
async fn grpc_survives_a_collector_outage() {
    survives_a_collector_outage(OtlpProtocol::Grpc).await;
}

#[tokio::test]
async fn http_survives_a_collector_outage() {
    survives_a_collector_outage(OtlpProtocol::HttpProtobuf).await;
}

#[tokio::test]
async fn shutdown_with_the_collector_down_keeps_its_deadline() {
    // Nothing listens on this port (bound, then closed).
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let mut cfg = cfg_for(format!("http://{addr}"), OtlpProtocol::Grpc);
    cfg.otlp_max_retry_ms = 60_000;
    cfg.otlp_shutdown_timeout_ms = 500;
    let (sink, task) = spawn(&cfg);
    for i in 0..300 {
        sink.push(test_span(i));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t0 = tokio::time::Instant::now();
    sink.shutdown();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("shutdown keeps its deadline")
        .unwrap();
    assert!(t0.elapsed() < Duration::from_secs(3));
    let c = sink.counters();
    assert_eq!(
        c.spans_dropped_export_failed.load(Ordering::Relaxed)
            + c.spans_dropped_shutdown.load(Ordering::Relaxed),
        300,
        "{:?}",
        c.snapshot()
    );
}

#[tokio::test]
async fn metrics_server_serves_metrics_and_healthz() {
    let m = Arc::new(Metrics::new(&ExportConfig::default()));
    m.observe_span(&test_span(1));
    let (addr, task) = serve_metrics("127.0.0.1:0".parse().unwrap(), m.clone())
        .await
        .unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let get = |path: &str| {
        let uri: hyper::Uri = format!("http://{addr}{path}").parse().unwrap();
        let client = client.clone();
        async move {
            let r = client.get(uri).await.unwrap();
            let status = r.status();
            let ctype = r
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string());
            let body = r.into_body().collect().await.unwrap().to_bytes();
            (status, ctype, String::from_utf8(body.to_vec()).unwrap())
        }
    };
    let (st, ctype, body) = get("/metrics").await;
    assert_eq!(st, 200);
    assert_eq!(ctype.as_deref(), Some(Metrics::CONTENT_TYPE));
    assert!(
        body.contains(r#"flowscope_requests_total{service="curl",peer="",protocol="http",method="GET",route="/items/{id}",status="200",kind="server",agent="false"} 1"#),
        "{body}"
    );
    assert_eq!(get("/healthz").await.0, 200);
    assert_eq!(get("/nope").await.0, 404);
    // A taken port is a clear error.
    let e = serve_metrics(addr, m).await.unwrap_err();
    assert!(e.to_string().contains("cannot listen on"), "{e}");
    task.abort();
}

#[test]
fn printed_spans_are_json_lines() {
    let mut out = Vec::new();
    write_span_line(&mut out, &test_span(0)).unwrap();
    write_span_line(&mut out, &test_span(1)).unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["trace_id"], "000000000000000100000000000000aa");
    assert_eq!(lines[0]["kind"], "CLIENT");
    assert_eq!(lines[1]["attributes"]["url.path"], "/items/1");
}
