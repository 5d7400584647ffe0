//! The bounded hand-off between the pipeline and the exporter task: a push never blocks and
//! never grows memory past the cap; when full, the oldest span makes room (a newer span is
//! worth more to someone looking at a live system) and the drop is counted.

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
};

use flows::record::Span;
use tokio::sync::Notify;

/// The exporter's counters (all monotonic except the queue gauges).
#[derive(Debug, Default)]
pub struct ExportCounters {
    /// Spans the collector accepted.
    pub spans_exported: AtomicU64,
    /// Oldest spans dropped to make room in a full queue.
    pub spans_dropped_queue_full: AtomicU64,
    /// Spans of batches given up on (retries exhausted or a non-retryable error).
    pub spans_dropped_export_failed: AtomicU64,
    /// Spans still queued when shutdown's deadline passed.
    pub spans_dropped_shutdown: AtomicU64,
    /// Export requests that failed (each retry counts).
    pub export_failures: AtomicU64,
    /// Export requests that succeeded.
    pub export_requests: AtomicU64,
    /// Spans in the queue now.
    pub queue_len: AtomicUsize,
    /// The most spans the queue ever held (never above the cap).
    pub queue_high_water: AtomicUsize,
}

impl ExportCounters {
    /// `(name, value)` pairs, names prefixed `otlp_`.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        vec![
            ("otlp_spans_exported", g(&self.spans_exported)),
            (
                "otlp_spans_dropped_queue_full",
                g(&self.spans_dropped_queue_full),
            ),
            (
                "otlp_spans_dropped_export_failed",
                g(&self.spans_dropped_export_failed),
            ),
            (
                "otlp_spans_dropped_shutdown",
                g(&self.spans_dropped_shutdown),
            ),
            ("otlp_export_failures", g(&self.export_failures)),
            ("otlp_export_requests", g(&self.export_requests)),
        ]
    }
}

/// A drop-oldest FIFO of spans shared by [`super::SpanSink`]s and the exporter task.
#[derive(Debug)]
pub(crate) struct SpanQueue {
    spans: Mutex<VecDeque<Box<Span>>>,
    cap: usize,
    /// Wake the exporter when this many spans wait.
    batch: usize,
    pub(crate) wake: Notify,
    closed: AtomicBool,
    pub(crate) counters: Arc<ExportCounters>,
}

impl SpanQueue {
    /// A queue of at most `cap` spans that wakes its reader every `batch` spans.
    pub(crate) fn new(cap: usize, batch: usize) -> Self {
        Self {
            spans: Mutex::new(VecDeque::with_capacity(cap.min(4096))),
            cap: cap.max(1),
            batch: batch.max(1),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
            counters: Arc::new(ExportCounters::default()),
        }
    }

    /// Adds a span, dropping the oldest when full. Never blocks beyond a short lock.
    pub(crate) fn push(&self, span: Box<Span>) {
        let len = {
            let mut q = self.spans.lock().unwrap_or_else(|p| p.into_inner());
            if q.len() >= self.cap {
                q.pop_front();
                self.counters
                    .spans_dropped_queue_full
                    .fetch_add(1, Ordering::Relaxed);
            }
            q.push_back(span);
            q.len()
        };
        self.counters.queue_len.store(len, Ordering::Relaxed);
        self.counters
            .queue_high_water
            .fetch_max(len, Ordering::Relaxed);
        if len == self.batch {
            self.wake.notify_one();
        }
    }

    /// Takes up to `n` of the oldest spans.
    #[allow(clippy::vec_box)] // spans arrive boxed (Record::Span) and stay boxed: no moves
    pub(crate) fn take(&self, n: usize) -> Vec<Box<Span>> {
        let mut q = self.spans.lock().unwrap_or_else(|p| p.into_inner());
        let k = n.min(q.len());
        let out: Vec<_> = q.drain(..k).collect();
        self.counters.queue_len.store(q.len(), Ordering::Relaxed);
        out
    }

    /// Spans waiting now.
    pub(crate) fn len(&self) -> usize {
        self.spans.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The cap.
    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    /// Says no more spans will come and wakes the exporter to flush.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// True after [`Self::close`].
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flows::record::{Attributes, SpanKind, SpanStatus, StatusCode};
    use flows::trace::{SpanId, TraceId};

    pub(crate) fn span(n: u64) -> Box<Span> {
        Box::new(Span {
            trace_id: TraceId([1; 16]),
            span_id: SpanId(n.to_be_bytes()),
            parent_span_id: None,
            trace_state: None,
            name: "GET".into(),
            kind: SpanKind::Server,
            start_time_ns: n,
            end_time_ns: n + 1,
            status: SpanStatus {
                code: StatusCode::Unset,
                message: None,
            },
            attributes: Attributes::new(),
            socket_cookie: None,
            ifindex: 1,
            process: None,
            counterpart: None,
            events: Vec::new(),
        })
    }

    #[test]
    fn full_queue_drops_the_oldest_and_counts() {
        let q = SpanQueue::new(3, 2);
        for i in 0..5 {
            q.push(span(i));
        }
        assert_eq!(q.len(), 3);
        assert_eq!(
            q.counters.spans_dropped_queue_full.load(Ordering::Relaxed),
            2
        );
        assert_eq!(q.counters.queue_high_water.load(Ordering::Relaxed), 3);
        let got: Vec<u64> = q.take(10).iter().map(|s| s.start_time_ns).collect();
        assert_eq!(got, vec![2, 3, 4]);
        assert_eq!(q.len(), 0);
        assert_eq!(q.counters.queue_len.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn take_is_fifo_and_bounded() {
        let q = SpanQueue::new(10, 4);
        for i in 0..6 {
            q.push(span(i));
        }
        let a: Vec<u64> = q.take(4).iter().map(|s| s.start_time_ns).collect();
        assert_eq!(a, vec![0, 1, 2, 3]);
        assert_eq!(q.len(), 2);
        assert!(!q.is_closed());
        q.close();
        assert!(q.is_closed());
    }
}
