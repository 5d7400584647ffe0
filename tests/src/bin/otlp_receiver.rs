//! A real OTLP receiver for the end-to-end tests: serves the TraceService over gRPC and
//! `POST /v1/traces` over HTTP (protobuf, optionally gzip), and prints every received span as
//! one JSON line on stdout:
//!
//! `{"service":..,"resource":{..},"trace_id":hex,"span_id":hex,"parent_span_id":hex,
//!   "kind":"SERVER","name":..,"start":ns,"end":ns,"status":0,"attributes":{..}}`
//!
//! Usage: `otlp_receiver [--grpc ADDR] [--http ADDR]`; prints `listening grpc=ADDR http=ADDR`
//! on stderr once both are bound.

use std::{convert::Infallible, io::Read, io::Write, net::SocketAddr};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use prost::Message;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

#[allow(missing_docs, dead_code, clippy::all)]
mod proto {
    pub mod opentelemetry {
        pub mod proto {
            pub mod common {
                pub mod v1 {
                    tonic::include_proto!("opentelemetry.proto.common.v1");
                }
            }
            pub mod resource {
                pub mod v1 {
                    tonic::include_proto!("opentelemetry.proto.resource.v1");
                }
            }
            pub mod trace {
                pub mod v1 {
                    tonic::include_proto!("opentelemetry.proto.trace.v1");
                }
            }
            pub mod collector {
                pub mod trace {
                    pub mod v1 {
                        tonic::include_proto!("opentelemetry.proto.collector.trace.v1");
                    }
                }
            }
        }
    }
}

use proto::opentelemetry::proto::{
    collector::trace::v1::{
        trace_service_server::{TraceService, TraceServiceServer},
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    },
    common::v1::{any_value, KeyValue},
};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn attrs(kvs: &[KeyValue]) -> Value {
    let mut m = Map::new();
    for kv in kvs {
        let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(any_value::Value::StringValue(s)) => json!(s),
            Some(any_value::Value::IntValue(i)) => json!(i),
            Some(any_value::Value::BoolValue(b)) => json!(b),
            Some(any_value::Value::DoubleValue(d)) => json!(d),
            _ => Value::Null,
        };
        m.insert(kv.key.clone(), v);
    }
    Value::Object(m)
}

/// Prints each span of `req` as a JSON line.
fn print(req: &ExportTraceServiceRequest, transport: &str) {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for rs in &req.resource_spans {
        let resource = attrs(rs.resource.as_ref().map_or(&[][..], |r| &r.attributes));
        let service = resource["service.name"].clone();
        for ss in &rs.scope_spans {
            for s in &ss.spans {
                // opentelemetry/proto/trace/v1/trace.proto SpanKind.
                let kind = match s.kind {
                    1 => "INTERNAL",
                    2 => "SERVER",
                    3 => "CLIENT",
                    4 => "PRODUCER",
                    5 => "CONSUMER",
                    _ => "UNSPECIFIED",
                };
                let line = json!({
                    "transport": transport,
                    "service": service,
                    "resource": resource,
                    "scope": ss.scope.as_ref().map(|x| x.name.clone()),
                    "trace_id": hex(&s.trace_id),
                    "span_id": hex(&s.span_id),
                    "parent_span_id": hex(&s.parent_span_id),
                    "kind": kind,
                    "name": s.name,
                    "start": s.start_time_unix_nano,
                    "end": s.end_time_unix_nano,
                    "status": s.status.as_ref().map_or(0, |x| x.code),
                    "attributes": attrs(&s.attributes),
                    "events": s.events.iter().map(|e| json!({"name": e.name, "time": e.time_unix_nano})).collect::<Vec<_>>(),
                });
                let _ = writeln!(out, "{line}");
            }
        }
    }
    let _ = out.flush();
}

struct Grpc;

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        print(req.get_ref(), "grpc");
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

async fn http_export(
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let reply = |code: u16, body: Vec<u8>| {
        hyper::Response::builder()
            .status(code)
            .header("content-type", "application/x-protobuf")
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_default()
    };
    if req.method() != hyper::Method::POST || req.uri().path() != "/v1/traces" {
        return Ok(reply(404, Vec::new()));
    }
    let gz = req
        .headers()
        .get("content-encoding")
        .is_some_and(|v| v == "gzip");
    let Ok(body) = req.into_body().collect().await else {
        return Ok(reply(400, Vec::new()));
    };
    let mut body = body.to_bytes().to_vec();
    if gz {
        let mut out = Vec::new();
        if flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .is_err()
        {
            return Ok(reply(400, Vec::new()));
        }
        body = out;
    }
    match ExportTraceServiceRequest::decode(&body[..]) {
        Ok(r) => {
            print(&r, "http");
            Ok(reply(
                200,
                ExportTraceServiceResponse::default().encode_to_vec(),
            ))
        }
        Err(_) => Ok(reply(400, Vec::new())),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut grpc_addr: SocketAddr = "127.0.0.1:4317".parse().unwrap();
    let mut http_addr: SocketAddr = "127.0.0.1:4318".parse().unwrap();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().expect("flag needs a value");
        match a.as_str() {
            "--grpc" => grpc_addr = v.parse().expect("--grpc ADDR"),
            "--http" => http_addr = v.parse().expect("--http ADDR"),
            _ => panic!("usage: otlp_receiver [--grpc ADDR] [--http ADDR]"),
        }
    }
    let grpc = TcpListener::bind(grpc_addr).await.expect("bind grpc");
    let http = TcpListener::bind(http_addr).await.expect("bind http");
    eprintln!(
        "listening grpc={} http={}",
        grpc.local_addr().unwrap(),
        http.local_addr().unwrap()
    );
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = http.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(s), service_fn(http_export))
                    .await;
            });
        }
    });
    tonic::transport::Server::builder()
        .add_service(
            TraceServiceServer::new(Grpc)
                .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
        )
        .serve_with_incoming(TcpListenerStream::new(grpc))
        .await
        .expect("grpc server");
}
