//! The span exporter task: takes batches from the [`SpanQueue`], sends them with retries and
//! exponential backoff, and flushes on shutdown within a deadline. While the collector is down
//! the queue keeps its cap (dropping the oldest), so the agent's memory stays flat; when the
//! collector returns, the next attempt goes through and export resumes by itself.

use std::{
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use flows::record::Span;
use tokio::{task::JoinHandle, time::Instant};

use super::{
    config::{ExportConfig, OtlpTarget},
    otlp::ResourceNamer,
    queue::{ExportCounters, SpanQueue},
    transport::Transport,
    ExportError,
};

/// The pipeline's handle on the exporter: cheap to clone, [`SpanSink::push`] never blocks.
#[derive(Debug, Clone)]
pub struct SpanSink {
    queue: Arc<SpanQueue>,
}

impl SpanSink {
    /// Queues a finished span for export (dropping the oldest queued span when full).
    pub fn push(&self, span: Box<Span>) {
        self.queue.push(span);
    }

    /// The exporter's counters (exported, dropped by reason, failures).
    pub fn counters(&self) -> Arc<ExportCounters> {
        self.queue.counters.clone()
    }

    /// Spans waiting in the queue now.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn queue_len(&self) -> usize {
        self.queue.len()
    }

    /// The queue's cap (`otlp-queue-size`).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn queue_cap(&self) -> usize {
        self.queue.cap()
    }

    /// Asks the exporter to send what is queued and stop; await its `JoinHandle` after this.
    /// The exporter gives up after `otlp-shutdown-timeout-ms` and counts what it left.
    pub fn shutdown(&self) {
        self.queue.close();
    }
}

/// Batching, retry and timing knobs (from [`ExportConfig`]).
#[derive(Debug, Clone, Copy)]
struct Timing {
    batch_size: usize,
    batch_timeout: Duration,
    max_retry: Duration,
    shutdown_timeout: Duration,
}

/// First and longest wait between retries of one batch.
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Sends spans to an OTLP collector.
#[derive(Debug)]
pub struct SpanExporter {
    queue: Arc<SpanQueue>,
    transport: Transport,
    namer: ResourceNamer,
    timing: Timing,
    /// Set once shutdown starts: nothing is retried past it.
    hard_deadline: Option<Instant>,
}

impl SpanExporter {
    /// Starts the exporter on the current tokio runtime when `cfg` (or the environment) names
    /// an endpoint; None when export is off. `host_name` goes on every span's resource.
    pub fn spawn(
        cfg: &ExportConfig,
        host_name: &str,
    ) -> Result<Option<(SpanSink, JoinHandle<()>)>, ExportError> {
        let Some(target) = cfg.otlp_target()? else {
            return Ok(None);
        };
        let namer = ResourceNamer::new(
            host_name,
            cfg.default_service_name(),
            cfg.service_name_map.clone(),
        );
        Self::spawn_to(cfg, &target, namer).map(Some)
    }

    /// Starts the exporter towards an already resolved `target`.
    pub fn spawn_to(
        cfg: &ExportConfig,
        target: &OtlpTarget,
        namer: ResourceNamer,
    ) -> Result<(SpanSink, JoinHandle<()>), ExportError> {
        cfg.validate()?;
        let transport = Transport::new(target, cfg.timeout())?;
        let queue = Arc::new(SpanQueue::new(cfg.otlp_queue_size, cfg.otlp_batch_size));
        let exporter = SpanExporter {
            queue: queue.clone(),
            transport,
            namer,
            timing: Timing {
                batch_size: cfg.otlp_batch_size,
                batch_timeout: Duration::from_millis(cfg.otlp_batch_timeout_ms),
                max_retry: Duration::from_millis(cfg.otlp_max_retry_ms),
                shutdown_timeout: Duration::from_millis(cfg.otlp_shutdown_timeout_ms),
            },
            hard_deadline: None,
        };
        tracing::info!(
            endpoint = %target.url,
            protocol = ?target.protocol,
            compression = ?target.compression,
            "exporting spans over OTLP"
        );
        let handle = tokio::spawn(exporter.run());
        Ok((SpanSink { queue }, handle))
    }

    async fn run(mut self) {
        loop {
            if self.queue.is_closed() && self.hard_deadline.is_none() {
                self.hard_deadline = Some(Instant::now() + self.timing.shutdown_timeout);
            }
            if let Some(d) = self.hard_deadline {
                if Instant::now() >= d {
                    break;
                }
            }
            // A batch goes when it is full, when its oldest span has waited `batch_timeout`,
            // or at shutdown.
            if self.queue.len() < self.timing.batch_size && !self.queue.is_closed() {
                let _ = tokio::time::timeout(self.timing.batch_timeout, self.queue.wake.notified())
                    .await;
            }
            let batch = self.queue.take(self.timing.batch_size);
            if batch.is_empty() {
                if self.queue.is_closed() {
                    break;
                }
                continue;
            }
            self.send_with_retry(batch).await;
        }
        let left = self.queue.take(usize::MAX).len() as u64;
        if left > 0 {
            self.queue
                .counters
                .spans_dropped_shutdown
                .fetch_add(left, Ordering::Relaxed);
            tracing::warn!(left, "OTLP shutdown deadline passed; spans not sent");
        }
    }

    /// Sends one batch, retrying retryable failures with exponential backoff until
    /// `max_retry` (or the shutdown deadline) passes; then the batch is dropped and counted.
    #[allow(clippy::vec_box)] // spans arrive boxed (Record::Span) and stay boxed: no moves
    async fn send_with_retry(&mut self, batch: Vec<Box<Span>>) {
        let n = batch.len() as u64;
        let req = self.namer.request(&batch);
        drop(batch);
        let counters = self.queue.counters.clone();
        let started = Instant::now();
        let mut backoff = BACKOFF_START;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match self.transport.send(req.clone()).await {
                Ok(()) => {
                    counters.spans_exported.fetch_add(n, Ordering::Relaxed);
                    counters.export_requests.fetch_add(1, Ordering::Relaxed);
                    if attempt > 1 {
                        tracing::info!(attempt, "OTLP export recovered");
                    }
                    return;
                }
                Err(e) => {
                    counters.export_failures.fetch_add(1, Ordering::Relaxed);
                    let mut give_up = started + self.timing.max_retry;
                    if self.queue.is_closed() {
                        let d = *self
                            .hard_deadline
                            .get_or_insert_with(|| Instant::now() + self.timing.shutdown_timeout);
                        give_up = give_up.min(d);
                    }
                    let next = Instant::now() + backoff;
                    if !e.retryable || next >= give_up {
                        counters
                            .spans_dropped_export_failed
                            .fetch_add(n, Ordering::Relaxed);
                        tracing::warn!(
                            spans = n,
                            attempt,
                            retryable = e.retryable,
                            "OTLP export failed, dropping the batch: {}",
                            e.message
                        );
                        return;
                    }
                    if attempt == 1 {
                        tracing::warn!("OTLP export failed, retrying: {}", e.message);
                    } else {
                        tracing::debug!(attempt, "OTLP export failed, retrying: {}", e.message);
                    }
                    // Jitter (±25%) so many agents don't hit a recovering collector at once.
                    let jitter = 0.75 + 0.5 * pseudo_random_unit();
                    let until = Instant::now() + backoff.mul_f64(jitter);
                    loop {
                        tokio::select! {
                            _ = tokio::time::sleep_until(until) => break,
                            // Shutdown cuts the wait short (pushes may also wake us: wait on).
                            _ = self.queue.wake.notified() => if self.queue.is_closed() { break },
                        }
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
}

/// A cheap value in [0, 1) for jitter (no need for a real RNG).
fn pseudo_random_unit() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    f64::from(nanos % 1000) / 1000.0
}
