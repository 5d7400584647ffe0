//! The agent's side of export in one place: starts the span exporter, the metrics server and
//! the counter publisher from an [`ExportConfig`], hands the pipeline cheap [`ExportHandles`],
//! and shuts everything down (flushing spans within the deadline) at exit.

use std::{io::Write, sync::Arc, time::Duration};

use flows::record::{Flow, Span};
use tokio::task::JoinHandle;

use super::{
    config::ExportConfig, exporter::SpanExporter, metrics::Metrics, print::write_span_line,
    server::serve_metrics, ExportError, SpanSink,
};

/// What the pipeline calls per record; cheap to clone, never blocks.
#[derive(Debug, Clone, Default)]
pub struct ExportHandles {
    /// The OTLP exporter's queue, when exporting.
    pub spans: Option<SpanSink>,
    /// The metrics, when `/metrics` is served.
    pub metrics: Option<Arc<Metrics>>,
    /// `--print-spans`.
    pub print_spans: bool,
}

impl ExportHandles {
    /// Counts a flow in the metrics.
    pub fn observe_flow(&self, f: &Flow) {
        if let Some(m) = &self.metrics {
            m.observe_flow(f);
        }
    }

    /// Counts a packet the kernel dropped (`f`, verdict DROPPED), by its kernel reason name
    /// and, in Hubble's families, by Hubble's `DropReason` name.
    pub fn observe_drop(&self, reason: &str, f: &Flow, hubble_reason: &'static str) {
        if let Some(m) = &self.metrics {
            m.observe_drop(reason);
            m.observe_hubble_drop(f, hubble_reason);
        }
    }

    /// Adds IP bytes captured in `direction` to the metrics.
    pub fn add_bytes(&self, direction: flows::packet::Direction, ip_bytes: u64) {
        if let Some(m) = &self.metrics {
            m.add_bytes(direction, ip_bytes);
        }
    }

    /// True when something consumes spans (OTLP, `--print-spans` or the RED metrics): the
    /// engine builds none otherwise.
    pub fn wants_spans(&self) -> bool {
        self.spans.is_some() || self.metrics.is_some() || self.print_spans
    }

    /// Counts a span, prints it to `out` (with `--print-spans`) and queues it for export.
    pub fn emit_span<W: Write>(&self, span: Box<Span>, out: Option<&mut W>) -> std::io::Result<()> {
        if let Some(m) = &self.metrics {
            m.observe_span(&span);
        }
        if self.print_spans {
            if let Some(w) = out {
                write_span_line(w, &span)?;
            }
        }
        if let Some(s) = &self.spans {
            s.push(span);
        }
        Ok(())
    }
}

/// The running exporter, metrics server and counter publisher.
#[derive(Debug)]
pub struct ExportRuntime {
    handles: ExportHandles,
    exporter: Option<JoinHandle<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl ExportRuntime {
    /// Starts what `cfg` asks for on the current tokio runtime. `host_name` goes on span
    /// resources; `counters` is called every second for the agent's own counters (served as
    /// `flowscope_agent_<name>_total`).
    pub async fn start(
        cfg: &ExportConfig,
        host_name: &str,
        counters: impl Fn() -> Vec<(String, u64)> + Send + 'static,
    ) -> Result<Self, ExportError> {
        cfg.validate()?;
        let mut tasks = Vec::new();
        let (spans, exporter) = match SpanExporter::spawn(cfg, host_name)? {
            Some((sink, task)) => (Some(sink), Some(task)),
            None => (None, None),
        };
        let metrics = match cfg.metrics_addr()? {
            Some(addr) => {
                let m = Arc::new(Metrics::new(cfg));
                if let Some(s) = &spans {
                    m.watch_exporter(s.counters());
                }
                let (_, server) = serve_metrics(addr, m.clone()).await?;
                tasks.push(server);
                let publisher = m.clone();
                tasks.push(tokio::spawn(async move {
                    let mut every = tokio::time::interval(Duration::from_secs(1));
                    loop {
                        every.tick().await;
                        publisher.set_counters(&counters());
                    }
                }));
                Some(m)
            }
            None => None,
        };
        Ok(Self {
            handles: ExportHandles {
                spans,
                metrics,
                print_spans: cfg.print_spans,
            },
            exporter,
            tasks,
        })
    }

    /// Handles for the pipeline.
    pub fn handles(&self) -> ExportHandles {
        self.handles.clone()
    }

    /// Sends the queued spans (within `otlp-shutdown-timeout-ms`) and stops everything.
    /// Call after the pipeline has emitted its last records.
    pub async fn shutdown(self) {
        if let (Some(s), Some(task)) = (&self.handles.spans, self.exporter) {
            s.shutdown();
            let _ = task.await;
            let c = s.counters();
            tracing::info!(
                exported = c.spans_exported.load(std::sync::atomic::Ordering::Relaxed),
                "OTLP exporter stopped"
            );
        }
        for t in self.tasks {
            t.abort();
        }
    }
}
