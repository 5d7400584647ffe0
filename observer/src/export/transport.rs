//! Sending one `ExportTraceServiceRequest`: OTLP/gRPC through the generated tonic client, or
//! OTLP/HTTP (`POST /v1/traces`, `application/x-protobuf`) through a hyper client. Each error
//! says whether the OTLP spec lets us retry it.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{header, Request, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use prost::Message;
use tonic::{
    codec::CompressionEncoding,
    metadata::{MetadataKey, MetadataValue},
    transport::{Channel, ClientTlsConfig},
};

use super::{
    config::{OtlpCompression, OtlpProtocol, OtlpTarget},
    proto::collector::{trace_service_client::TraceServiceClient, ExportTraceServiceRequest},
    ExportError,
};

/// Why one export attempt failed.
#[derive(Debug)]
pub(crate) struct SendError {
    /// The OTLP spec allows retrying (unavailable, throttled, timed out).
    pub retryable: bool,
    /// What happened, for the log.
    pub message: String,
}

/// A connection to the collector over the configured protocol (one per exporter, so the
/// variants' size difference costs nothing).
#[allow(clippy::large_enum_variant)]
pub(crate) enum Transport {
    Grpc {
        client: TraceServiceClient<Channel>,
        headers: Vec<(
            MetadataKey<tonic::metadata::Ascii>,
            MetadataValue<tonic::metadata::Ascii>,
        )>,
        timeout: Duration,
    },
    Http {
        client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
        target: OtlpTarget,
        timeout: Duration,
    },
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Grpc { .. } => f.write_str("Transport::Grpc"),
            Transport::Http { target, .. } => write!(f, "Transport::Http({})", target.url),
        }
    }
}

impl Transport {
    /// Sets up (lazily: nothing connects until the first export) a transport to `target`.
    pub(crate) fn new(target: &OtlpTarget, timeout: Duration) -> Result<Self, ExportError> {
        match target.protocol {
            OtlpProtocol::Grpc => {
                let mut ep = Channel::from_shared(target.url.to_string())
                    .map_err(|e| ExportError::Config(format!("OTLP endpoint {}: {e}", target.url)))?
                    .connect_timeout(timeout.min(Duration::from_secs(5)))
                    .timeout(timeout)
                    .tcp_nodelay(true);
                if target.tls {
                    ep = ep
                        .tls_config(ClientTlsConfig::new().with_native_roots())
                        .map_err(|e| {
                            ExportError::Config(format!(
                                "TLS for OTLP endpoint {}: {e}",
                                target.url
                            ))
                        })?;
                }
                let mut client = TraceServiceClient::new(ep.connect_lazy());
                if target.compression == OtlpCompression::Gzip {
                    client = client.send_compressed(CompressionEncoding::Gzip);
                }
                client = client.accept_compressed(CompressionEncoding::Gzip);
                let headers = target
                    .headers
                    .iter()
                    .map(|(k, v)| {
                        Ok((
                            MetadataKey::from_bytes(k.as_bytes()).map_err(|e| {
                                ExportError::Config(format!("OTLP header {k:?}: {e}"))
                            })?,
                            MetadataValue::try_from(v.as_str()).map_err(|e| {
                                ExportError::Config(format!("OTLP header {k:?} value: {e}"))
                            })?,
                        ))
                    })
                    .collect::<Result<_, ExportError>>()?;
                Ok(Transport::Grpc {
                    client,
                    headers,
                    timeout,
                })
            }
            OtlpProtocol::HttpProtobuf => {
                let builder = hyper_rustls::HttpsConnectorBuilder::new();
                let builder = if target.tls {
                    builder.with_native_roots().map_err(|e| {
                        ExportError::Config(format!(
                            "TLS for OTLP endpoint {}: no system root certificates: {e}",
                            target.url
                        ))
                    })?
                } else {
                    // Plain http: no roots are read, but the builder wants some.
                    builder.with_tls_config(
                        rustls::ClientConfig::builder()
                            .with_root_certificates(rustls::RootCertStore::empty())
                            .with_no_client_auth(),
                    )
                };
                let mut http = HttpConnector::new();
                http.enforce_http(false);
                http.set_nodelay(true);
                http.set_connect_timeout(Some(timeout.min(Duration::from_secs(5))));
                let conn = builder.https_or_http().enable_http1().wrap_connector(http);
                let client = Client::builder(TokioExecutor::new())
                    .pool_idle_timeout(Duration::from_secs(30))
                    .build(conn);
                Ok(Transport::Http {
                    client,
                    target: target.clone(),
                    timeout,
                })
            }
        }
    }

    /// Sends one request and waits for the collector's answer.
    pub(crate) async fn send(&mut self, req: ExportTraceServiceRequest) -> Result<(), SendError> {
        match self {
            Transport::Grpc {
                client,
                headers,
                timeout,
            } => {
                let mut r = tonic::Request::new(req);
                r.set_timeout(*timeout);
                for (k, v) in headers.iter() {
                    r.metadata_mut().insert(k.clone(), v.clone());
                }
                match client.export(r).await {
                    Ok(resp) => {
                        log_partial(
                            resp.into_inner()
                                .partial_success
                                .map(|p| (p.rejected_spans, p.error_message)),
                        );
                        Ok(())
                    }
                    Err(st) => Err(SendError {
                        retryable: grpc_retryable(st.code()),
                        message: format!("gRPC {:?}: {}", st.code(), st.message()),
                    }),
                }
            }
            Transport::Http {
                client,
                target,
                timeout,
            } => {
                let mut body = req.encode_to_vec();
                let mut b = Request::post(target.url.clone())
                    .header(header::CONTENT_TYPE, "application/x-protobuf")
                    .header(
                        header::USER_AGENT,
                        concat!("flowscope/", env!("CARGO_PKG_VERSION")),
                    );
                if target.compression == OtlpCompression::Gzip {
                    body = gzip(&body);
                    b = b.header(header::CONTENT_ENCODING, "gzip");
                }
                for (k, v) in &target.headers {
                    b = b.header(k.as_str(), v.as_str());
                }
                let request = b
                    .body(Full::new(Bytes::from(body)))
                    .map_err(|e| SendError {
                        retryable: false,
                        message: format!("building the HTTP request: {e}"),
                    })?;
                let resp = match tokio::time::timeout(*timeout, client.request(request)).await {
                    Err(_) => {
                        return Err(SendError {
                            retryable: true,
                            message: format!("no answer from {} in {timeout:?}", target.url),
                        })
                    }
                    Ok(Err(e)) => {
                        return Err(SendError {
                            retryable: true,
                            message: format!("POST {}: {}", target.url, error_chain(&e)),
                        })
                    }
                    Ok(Ok(r)) => r,
                };
                let status = resp.status();
                // Read the body so the connection can be reused.
                let body = tokio::time::timeout(*timeout, resp.into_body().collect())
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                if status.is_success() {
                    if let Ok(r) = super::proto::collector::ExportTraceServiceResponse::decode(body)
                    {
                        log_partial(
                            r.partial_success
                                .map(|p| (p.rejected_spans, p.error_message)),
                        );
                    }
                    return Ok(());
                }
                Err(SendError {
                    retryable: http_retryable(status),
                    message: format!(
                        "POST {}: HTTP {status}: {}",
                        target.url,
                        String::from_utf8_lossy(&body[..body.len().min(200)])
                    ),
                })
            }
        }
    }
}

fn log_partial(p: Option<(i64, String)>) {
    if let Some((rejected, msg)) = p {
        if rejected > 0 || !msg.is_empty() {
            tracing::warn!(rejected, "OTLP collector rejected spans: {msg}");
        }
    }
}

/// OTLP/gRPC spec, "Failures": these codes are retryable, the rest are not.
fn grpc_retryable(code: tonic::Code) -> bool {
    use tonic::Code::*;
    matches!(
        code,
        Cancelled
            | DeadlineExceeded
            | ResourceExhausted
            | Aborted
            | OutOfRange
            | Unavailable
            | DataLoss
    )
}

/// OTLP/HTTP spec, "Retryable Response Codes": 429, 502, 503, 504.
fn http_retryable(s: StatusCode) -> bool {
    matches!(s.as_u16(), 429 | 502 | 503 | 504)
}

fn gzip(b: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e =
        flate2::write::GzEncoder::new(Vec::with_capacity(b.len() / 4), flate2::Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = e.write_all(b);
    e.finish().unwrap_or_default()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_rules_follow_the_otlp_spec() {
        assert!(grpc_retryable(tonic::Code::Unavailable));
        assert!(grpc_retryable(tonic::Code::ResourceExhausted));
        assert!(!grpc_retryable(tonic::Code::InvalidArgument));
        assert!(!grpc_retryable(tonic::Code::Unauthenticated));
        assert!(http_retryable(StatusCode::SERVICE_UNAVAILABLE));
        assert!(http_retryable(StatusCode::TOO_MANY_REQUESTS));
        assert!(!http_retryable(StatusCode::BAD_REQUEST));
        assert!(!http_retryable(StatusCode::NOT_FOUND));
    }

    #[test]
    fn gzip_round_trips() {
        use std::io::Read;
        let data = b"spans spans spans spans".repeat(10);
        let z = gzip(&data);
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&z[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
    }
}
