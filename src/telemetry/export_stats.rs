//! Counts what happens to every span after it ends, keeps the export queue
//! bounded with the drops counted, and reports an unreachable collector once
//! per outage instead of once per batch.
//!
//! The SDK's batch processor drops spans silently when its queue is full (it
//! logs the first drop and a total at shutdown, nothing in between), and logs
//! every failed export at error level. Two thin wrappers make both visible:
//! [`AdmissionProcessor`] in front of the batch processor and
//! [`ReportingExporter`] behind it, sharing one [`ExportStats`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};

/// Span counts since startup.
#[derive(Debug, Clone, Default)]
pub struct ExportStats(Arc<Counters>);

#[derive(Debug, Default)]
struct Counters {
    /// Handed to the batch processor and not yet through an export.
    pending: AtomicU64,
    exported: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    /// True while spans are being dropped, to warn once per episode.
    dropping: AtomicBool,
}

/// A snapshot of [`ExportStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportCounts {
    /// Accepted by the collector.
    pub exported: u64,
    /// Lost because their export failed (collector down, timeout, rejected).
    pub failed: u64,
    /// Dropped because the queue was full.
    pub dropped: u64,
    /// Still queued or being exported.
    pub pending: u64,
}

impl ExportStats {
    pub fn counts(&self) -> ExportCounts {
        ExportCounts {
            exported: self.0.exported.load(Ordering::Relaxed),
            failed: self.0.failed.load(Ordering::Relaxed),
            dropped: self.0.dropped.load(Ordering::Relaxed),
            pending: self.0.pending.load(Ordering::Relaxed),
        }
    }

    fn finished(&self, count: u64) {
        self.0.pending.fetch_sub(count, Ordering::Relaxed);
        self.0.dropping.store(false, Ordering::Relaxed);
    }
}

/// Sits in front of the batch processor and admits at most `capacity` spans
/// that have not yet been through an export; beyond that it drops and counts
/// them. With `capacity` equal to the batch processor's queue size, that
/// queue never overflows, so every lost span is counted here or as failed.
#[derive(Debug)]
pub struct AdmissionProcessor<P> {
    inner: P,
    capacity: u64,
    stats: ExportStats,
}

impl<P> AdmissionProcessor<P> {
    pub fn new(inner: P, capacity: usize, stats: ExportStats) -> Self {
        Self {
            inner,
            capacity: u64::try_from(capacity).unwrap_or(u64::MAX),
            stats,
        }
    }
}

impl<P: SpanProcessor> SpanProcessor for AdmissionProcessor<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        let counters = &self.stats.0;
        let admitted = counters
            .pending
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |pending| {
                (pending < self.capacity).then_some(pending + 1)
            })
            .is_ok();
        if admitted {
            self.inner.on_end(span);
            return;
        }
        let dropped = counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if !counters.dropping.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                capacity = self.capacity,
                dropped_total = dropped,
                "span queue full; dropping spans until an export completes (raise OTEL_BSP_MAX_QUEUE_SIZE or fix the collector)"
            );
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Wraps the exporter: counts exported and failed spans, and logs a warning
/// when exports start failing and an info line when they recover.
#[derive(Debug)]
pub struct ReportingExporter<E> {
    inner: E,
    endpoint: String,
    failing: AtomicBool,
    stats: ExportStats,
}

impl<E> ReportingExporter<E> {
    pub fn new(inner: E, endpoint: String, stats: ExportStats) -> Self {
        Self {
            inner,
            endpoint,
            failing: AtomicBool::new(false),
            stats,
        }
    }
}

impl<E: SpanExporter> SpanExporter for ReportingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let count = u64::try_from(batch.len()).unwrap_or(u64::MAX);
        let result = self.inner.export(batch).await;
        let counters = &self.stats.0;
        match &result {
            Ok(()) => {
                counters.exported.fetch_add(count, Ordering::Relaxed);
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(endpoint = %self.endpoint, "span export recovered");
                }
            }
            Err(error) => {
                counters.failed.fetch_add(count, Ordering::Relaxed);
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        endpoint = %self.endpoint,
                        %error,
                        "span export failed; spans are lost until the collector is reachable again (logged once per outage)"
                    );
                }
            }
        }
        self.stats.finished(count);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
