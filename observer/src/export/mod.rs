//! Where spans and metrics leave the agent: OTLP span export (gRPC or HTTP/protobuf, batched,
//! bounded, retried), `--print-spans`, and Prometheus metrics on `/metrics`.
//!
//! The agent starts an [`ExportRuntime`] from its [`ExportConfig`], gives the pipeline its
//! [`ExportHandles`] (per record: [`ExportHandles::observe_flow`] and
//! [`ExportHandles::emit_span`], which count, print and queue without blocking), and calls
//! [`ExportRuntime::shutdown`] at exit.

mod config;
mod exporter;
mod hubble_metrics;
mod label_cache;
pub(crate) mod metrics;
mod otlp;
mod print;
pub mod proto;
mod queue;
mod route;
mod runtime;
mod semconv_metrics;
mod server;
mod span_fields;
mod transport;

pub use config::{ExportConfig, MetricSet, OtlpCompression, OtlpProtocol};
pub use exporter::SpanSink;
pub use runtime::{ExportHandles, ExportRuntime};

#[cfg(test)]
mod record_cost;
#[cfg(test)]
mod tests;

/// What can go wrong setting up export or metrics.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A bad option value; the message names the key or variable and the value.
    #[error("{0}")]
    Config(String),
    /// The metrics server could not bind.
    #[error("metrics server: cannot listen on {0}: {1} — pick another --metrics-listen address")]
    Listen(std::net::SocketAddr, #[source] std::io::Error),
}
