//! What the exporter and the metrics server are told: [`ExportConfig`] (the `[export]` table of
//! the agent's TOML file and the matching flags), laid over the standard `OTEL_EXPORTER_OTLP_*`
//! environment variables, resolved into an [`OtlpTarget`].

use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use hyper::Uri;
use serde::{Deserialize, Serialize};

use super::ExportError;

/// OTLP transport (the values of `OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum OtlpProtocol {
    /// OTLP/gRPC (port 4317).
    #[serde(rename = "grpc")]
    #[value(name = "grpc")]
    Grpc,
    /// OTLP/HTTP with binary protobuf bodies, `POST /v1/traces` (port 4318).
    #[serde(rename = "http/protobuf")]
    #[value(name = "http/protobuf")]
    HttpProtobuf,
}

impl std::str::FromStr for OtlpProtocol {
    type Err = ExportError;
    fn from_str(s: &str) -> Result<Self, ExportError> {
        match s.trim() {
            "grpc" => Ok(Self::Grpc),
            "http/protobuf" => Ok(Self::HttpProtobuf),
            other => Err(ExportError::Config(format!(
                "OTLP protocol {other:?} is not supported: use grpc or http/protobuf"
            ))),
        }
    }
}

/// Body compression of OTLP requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OtlpCompression {
    /// Uncompressed.
    None,
    /// gzip (gRPC `grpc-encoding: gzip`, HTTP `Content-Encoding: gzip`).
    Gzip,
}

impl std::str::FromStr for OtlpCompression {
    type Err = ExportError;
    fn from_str(s: &str) -> Result<Self, ExportError> {
        match s.trim() {
            "none" | "" => Ok(Self::None),
            "gzip" => Ok(Self::Gzip),
            other => Err(ExportError::Config(format!(
                "OTLP compression {other:?} is not supported: use gzip or none"
            ))),
        }
    }
}

/// Span export, span printing and Prometheus metrics (the agent's `[export]` TOML table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ExportConfig {
    /// OTLP collector URL: `http://host:4317` is gRPC; `http://host:4318` or a `/v1/traces`
    /// path is HTTP/protobuf; `https://` uses TLS with the system's roots. Unset:
    /// `$OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, then `$OTEL_EXPORTER_OTLP_ENDPOINT`, then no export.
    pub otlp_endpoint: Option<String>,
    /// `grpc` or `http/protobuf`; unset: `$OTEL_EXPORTER_OTLP_PROTOCOL`, then from the endpoint.
    pub otlp_protocol: Option<OtlpProtocol>,
    /// Extra request headers (e.g. `authorization`); merged over `$OTEL_EXPORTER_OTLP_HEADERS`.
    pub otlp_headers: BTreeMap<String, String>,
    /// `gzip` or `none`; unset: `$OTEL_EXPORTER_OTLP_COMPRESSION`, then none.
    pub otlp_compression: Option<OtlpCompression>,
    /// Time allowed for one export request, milliseconds.
    pub otlp_timeout_ms: u64,
    /// Spans held while the collector is slow or down; beyond it the oldest are dropped.
    pub otlp_queue_size: usize,
    /// Spans per export request.
    pub otlp_batch_size: usize,
    /// Longest a span waits for its batch to fill, milliseconds.
    pub otlp_batch_timeout_ms: u64,
    /// How long one batch is retried (exponential backoff) before it is dropped, milliseconds.
    pub otlp_max_retry_ms: u64,
    /// How long shutdown may spend sending what is queued, milliseconds.
    pub otlp_shutdown_timeout_ms: u64,
    /// `service.name` for spans whose process is unknown; unset: `$OTEL_SERVICE_NAME`, then
    /// `unknown_service:flowscope`.
    pub service_name: Option<String>,
    /// `comm = "service name"` overrides (else a known process's service is its `comm`).
    pub service_name_map: BTreeMap<String, String>,
    /// Print each span as a JSON line on stdout.
    pub print_spans: bool,
    /// Where `/metrics` and `/healthz` are served; empty string: no metrics server.
    pub metrics_listen: String,
    /// Distinct routes kept per service in metric labels; the rest count as `other`.
    pub max_routes_per_service: usize,
    /// Distinct peers kept in metric labels; the rest count as `other`.
    pub max_peers: usize,
    /// Which metric families `/metrics` serves: `flowscope` (`flowscope_*`), `otel` (the
    /// OpenTelemetry semantic-convention request durations under their Prometheus names) and
    /// `hubble` (Hubble's `hubble_*` families). All three by default: each is what some
    /// existing dashboard reads, all come from the same spans and flows, and each is bounded,
    /// so serving them costs a few counter updates per record and no configuration.
    pub metrics: Vec<MetricSet>,
}

/// A family of metrics served on `/metrics` ([`ExportConfig::metrics`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum MetricSet {
    /// `flowscope_requests_total`, `flowscope_request_duration_seconds`, ... (RED by service,
    /// peer, route), TCP connections and bytes.
    Flowscope,
    /// `http_{server,client}_request_duration_seconds`, `rpc_{server,client}_duration_seconds`.
    Otel,
    /// `hubble_flows_processed_total`, `hubble_http_requests_total`, `hubble_dns_*`, ...
    Hubble,
}

impl Default for ExportConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            otlp_protocol: None,
            otlp_headers: BTreeMap::new(),
            otlp_compression: None,
            otlp_timeout_ms: 10_000,
            otlp_queue_size: 8192,
            otlp_batch_size: 512,
            otlp_batch_timeout_ms: 1000,
            otlp_max_retry_ms: 30_000,
            otlp_shutdown_timeout_ms: 5000,
            service_name: None,
            service_name_map: BTreeMap::new(),
            print_spans: false,
            metrics_listen: "127.0.0.1:9965".into(),
            max_routes_per_service: 100,
            max_peers: 1000,
            metrics: vec![MetricSet::Flowscope, MetricSet::Otel, MetricSet::Hubble],
        }
    }
}

/// Where and how spans are sent, after the environment is taken into account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpTarget {
    /// gRPC: `scheme://host:port`; HTTP: the full URL of the traces endpoint.
    pub url: Uri,
    /// The transport.
    pub protocol: OtlpProtocol,
    /// True for `https://`.
    pub tls: bool,
    /// Request headers (lowercase names).
    pub headers: Vec<(String, String)>,
    /// Body compression.
    pub compression: OtlpCompression,
}

/// The OTLP path for traces (OTLP/HTTP spec: "The default URL path for requests that carry
/// trace data is /v1/traces").
pub const TRACES_PATH: &str = "/v1/traces";

impl ExportConfig {
    /// Checks values serde can't, naming the key.
    pub fn validate(&self) -> Result<(), ExportError> {
        let bad = |k: &str, why: &str| Err(ExportError::Config(format!("key `{k}`: {why}")));
        if self.otlp_queue_size == 0 {
            return bad("otlp-queue-size", "must be at least 1");
        }
        if self.otlp_batch_size == 0 {
            return bad("otlp-batch-size", "must be at least 1");
        }
        if self.otlp_timeout_ms == 0 {
            return bad("otlp-timeout-ms", "must be at least 1");
        }
        if self.max_routes_per_service == 0 {
            return bad("max-routes-per-service", "must be at least 1");
        }
        self.metrics_addr()?;
        self.otlp_target_with(|_| None)?;
        Ok(())
    }

    /// The metrics server's address; None when `metrics-listen` is empty.
    pub fn metrics_addr(&self) -> Result<Option<SocketAddr>, ExportError> {
        if self.metrics_listen.trim().is_empty() {
            return Ok(None);
        }
        self.metrics_listen.parse().map(Some).map_err(|e| {
            ExportError::Config(format!(
                "key `metrics-listen`: {:?} is not ADDR:PORT: {e}",
                self.metrics_listen
            ))
        })
    }

    /// Sets `k=v` headers from `--otlp-header` flags (repeatable).
    pub fn add_header_flags(&mut self, flags: &[String]) -> Result<(), ExportError> {
        for f in flags {
            let (k, v) = f.split_once('=').ok_or_else(|| {
                ExportError::Config(format!("--otlp-header {f:?} is not KEY=VALUE"))
            })?;
            self.otlp_headers
                .insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
        Ok(())
    }

    /// Sets `comm=name` pairs from `--service-name-map` flags (repeatable).
    pub fn add_service_map_flags(&mut self, flags: &[String]) -> Result<(), ExportError> {
        for f in flags {
            let (k, v) = f.split_once('=').ok_or_else(|| {
                ExportError::Config(format!("--service-name-map {f:?} is not COMM=NAME"))
            })?;
            self.service_name_map
                .insert(k.trim().to_string(), v.trim().to_string());
        }
        Ok(())
    }

    /// The `service.name` of spans without a known process (config, `$OTEL_SERVICE_NAME`, or
    /// the OpenTelemetry default for an unnamed service).
    pub fn default_service_name(&self) -> String {
        self.default_service_name_with(|k| std::env::var(k).ok())
    }

    pub(crate) fn default_service_name_with(&self, env: impl Fn(&str) -> Option<String>) -> String {
        self.service_name
            .clone()
            .or_else(|| env("OTEL_SERVICE_NAME").filter(|s| !s.is_empty()))
            .unwrap_or_else(|| "unknown_service:flowscope".into())
    }

    /// The collector to send spans to, from this config and the process environment; None
    /// when neither names an endpoint (export is off).
    pub fn otlp_target(&self) -> Result<Option<OtlpTarget>, ExportError> {
        self.otlp_target_with(|k| std::env::var(k).ok())
    }

    /// [`Self::otlp_target`] with `env` in place of the process environment.
    ///
    /// Per the OpenTelemetry exporter spec, `OTEL_EXPORTER_OTLP_ENDPOINT` is a base URL to
    /// which HTTP appends `/v1/traces`, while `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is used as
    /// is; explicit configuration wins over both.
    pub fn otlp_target_with(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<OtlpTarget>, ExportError> {
        let env = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        // (url, is the full traces URL)
        let (raw, exact) = match &self.otlp_endpoint {
            Some(e) if !e.trim().is_empty() => (e.trim().to_string(), false),
            _ => match (
                env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
                env("OTEL_EXPORTER_OTLP_ENDPOINT"),
            ) {
                (Some(t), _) => (t, true),
                (None, Some(b)) => (b, false),
                (None, None) => return Ok(None),
            },
        };
        let uri: Uri = raw
            .parse()
            .map_err(|e| ExportError::Config(format!("OTLP endpoint {raw:?}: {e}")))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => {
                return Err(ExportError::Config(format!(
                    "OTLP endpoint {raw:?} must start with http:// or https://"
                )))
            }
        };
        let authority = uri
            .authority()
            .ok_or_else(|| ExportError::Config(format!("OTLP endpoint {raw:?} has no host")))?
            .clone();
        let path = uri.path().trim_end_matches('/');
        let protocol = match self.otlp_protocol {
            Some(p) => p,
            None => match env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
            {
                Some(p) => p.parse()?,
                None if path.ends_with(TRACES_PATH) || authority.port_u16() == Some(4318) => {
                    OtlpProtocol::HttpProtobuf
                }
                None => OtlpProtocol::Grpc,
            },
        };
        let scheme = if tls { "https" } else { "http" };
        let url = match protocol {
            OtlpProtocol::Grpc => format!("{scheme}://{authority}"),
            OtlpProtocol::HttpProtobuf if exact || path.ends_with(TRACES_PATH) => {
                format!("{scheme}://{authority}{}", uri.path())
            }
            OtlpProtocol::HttpProtobuf => format!("{scheme}://{authority}{path}{TRACES_PATH}"),
        };
        let url: Uri = url
            .parse()
            .map_err(|e| ExportError::Config(format!("OTLP endpoint {raw:?}: {e}")))?;

        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        for var in [
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        ] {
            if let Some(v) = env(var) {
                headers.extend(parse_env_headers(var, &v)?);
            }
        }
        for (k, v) in &self.otlp_headers {
            headers.insert(k.to_ascii_lowercase(), v.clone());
        }
        for (k, v) in &headers {
            if hyper::header::HeaderName::from_bytes(k.as_bytes()).is_err()
                || hyper::header::HeaderValue::from_str(v).is_err()
            {
                return Err(ExportError::Config(format!(
                    "OTLP header {k:?}: not a valid HTTP header name and value"
                )));
            }
        }
        let compression = match self.otlp_compression {
            Some(c) => c,
            None => match env("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION")
                .or_else(|| env("OTEL_EXPORTER_OTLP_COMPRESSION"))
            {
                Some(c) => c.parse()?,
                None => OtlpCompression::None,
            },
        };
        Ok(Some(OtlpTarget {
            url,
            protocol,
            tls,
            headers: headers.into_iter().collect(),
            compression,
        }))
    }

    /// One request's time limit.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.otlp_timeout_ms)
    }
}

/// `k1=v1,k2=v2` with percent-encoded values (the W3C Baggage format the OTel spec names for
/// `OTEL_EXPORTER_OTLP_HEADERS`).
fn parse_env_headers(var: &str, v: &str) -> Result<Vec<(String, String)>, ExportError> {
    v.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|pair| {
            let (k, val) = pair
                .split_once('=')
                .ok_or_else(|| ExportError::Config(format!("${var}: {pair:?} is not key=value")))?;
            Ok((
                percent_decode(k.trim()).to_ascii_lowercase(),
                percent_decode(val.trim()),
            ))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(cfg: &ExportConfig, env: &[(&str, &str)]) -> Option<OtlpTarget> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        cfg.otlp_target_with(|k| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
            .unwrap()
    }

    fn with_endpoint(e: &str) -> ExportConfig {
        ExportConfig {
            otlp_endpoint: Some(e.into()),
            ..ExportConfig::default()
        }
    }

    #[test]
    fn no_endpoint_means_no_export() {
        assert_eq!(target(&ExportConfig::default(), &[]), None);
    }

    #[test]
    fn protocol_follows_port_and_path() {
        let t = target(&with_endpoint("http://collector:4317"), &[]).unwrap();
        assert_eq!(t.protocol, OtlpProtocol::Grpc);
        assert_eq!(t.url.to_string(), "http://collector:4317/");
        assert!(!t.tls);

        let t = target(&with_endpoint("http://collector:4318"), &[]).unwrap();
        assert_eq!(t.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(t.url.to_string(), "http://collector:4318/v1/traces");

        let t = target(&with_endpoint("https://otel.example:443/v1/traces"), &[]).unwrap();
        assert_eq!(t.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(t.url.to_string(), "https://otel.example:443/v1/traces");
        assert!(t.tls);

        let mut c = with_endpoint("http://h:9999/prefix/");
        c.otlp_protocol = Some(OtlpProtocol::HttpProtobuf);
        let t = target(&c, &[]).unwrap();
        assert_eq!(t.url.to_string(), "http://h:9999/prefix/v1/traces");
    }

    #[test]
    fn environment_fills_what_config_leaves_unset() {
        let env = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "Authorization=Bearer%20abc, x-team=net",
            ),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ];
        let t = target(&ExportConfig::default(), &env).unwrap();
        assert_eq!(t.url.to_string(), "http://base:4318/v1/traces");
        assert_eq!(t.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(t.compression, OtlpCompression::Gzip);
        assert_eq!(
            t.headers,
            vec![
                ("authorization".to_string(), "Bearer abc".to_string()),
                ("x-team".to_string(), "net".to_string())
            ]
        );

        // The signal-specific endpoint is used as is and wins over the base one.
        let env2 = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:4318/custom"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ];
        let t = target(&ExportConfig::default(), &env2).unwrap();
        assert_eq!(t.url.to_string(), "http://t:4318/custom");

        // Config wins over the environment.
        let mut c = with_endpoint("http://mine:4317");
        c.otlp_protocol = Some(OtlpProtocol::Grpc);
        c.otlp_compression = Some(OtlpCompression::None);
        c.add_header_flags(&["X-Team=flows".into()]).unwrap();
        let t = target(&c, &env).unwrap();
        assert_eq!(t.url.to_string(), "http://mine:4317/");
        assert_eq!(t.protocol, OtlpProtocol::Grpc);
        assert_eq!(t.compression, OtlpCompression::None);
        assert!(t.headers.contains(&("x-team".into(), "flows".into())));
    }

    #[test]
    fn bad_values_name_what_is_wrong() {
        let e = with_endpoint("collector:4317")
            .otlp_target_with(|_| None)
            .unwrap_err();
        assert!(e.to_string().contains("http:// or https://"), "{e}");
        let e = ExportConfig::default()
            .otlp_target_with(|k| {
                (k == "OTEL_EXPORTER_OTLP_ENDPOINT")
                    .then(|| "http://h:4317".to_string())
                    .or_else(|| (k == "OTEL_EXPORTER_OTLP_PROTOCOL").then(|| "http/json".into()))
            })
            .unwrap_err();
        assert!(e.to_string().contains("http/json"), "{e}");
        let mut c = ExportConfig::default();
        assert!(c.add_header_flags(&["nokv".into()]).is_err());
        c.metrics_listen = "nonsense".into();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("metrics-listen"));
    }

    #[test]
    fn service_name_defaults() {
        let c = ExportConfig::default();
        assert_eq!(
            c.default_service_name_with(|_| None),
            "unknown_service:flowscope"
        );
        assert_eq!(
            c.default_service_name_with(|k| (k == "OTEL_SERVICE_NAME").then(|| "edge".into())),
            "edge"
        );
    }

    #[test]
    fn toml_round_trip() {
        let mut c = ExportConfig {
            otlp_endpoint: Some("http://c:4317".into()),
            otlp_protocol: Some(OtlpProtocol::HttpProtobuf),
            ..ExportConfig::default()
        };
        c.service_name_map.insert("nginx".into(), "frontend".into());
        let text = toml::to_string(&c).unwrap();
        assert!(text.contains("otlp-protocol = \"http/protobuf\""), "{text}");
        let back: ExportConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, c);
    }
}
