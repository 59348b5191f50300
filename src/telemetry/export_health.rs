//! Watches span exports so an unreachable collector is reported once per
//! outage, not once per batch, and so exported and failed spans are counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

/// Span counts since startup, shared with whoever wants to report them.
#[derive(Debug, Clone, Default)]
pub struct ExportStats(Arc<Counters>);

#[derive(Debug, Default)]
struct Counters {
    exported: AtomicU64,
    failed: AtomicU64,
}

impl ExportStats {
    /// Spans the collector accepted.
    pub fn exported(&self) -> u64 {
        self.0.exported.load(Ordering::Relaxed)
    }

    /// Spans lost because their export failed.
    pub fn failed(&self) -> u64 {
        self.0.failed.load(Ordering::Relaxed)
    }
}

/// Wraps an exporter and logs a warning when exports start failing and an
/// info line when they recover.
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
        let count = batch.len() as u64;
        let result = self.inner.export(batch).await;
        match &result {
            Ok(()) => {
                self.stats.0.exported.fetch_add(count, Ordering::Relaxed);
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(endpoint = %self.endpoint, "span export recovered");
                }
            }
            Err(error) => {
                self.stats.0.failed.fetch_add(count, Ordering::Relaxed);
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        endpoint = %self.endpoint,
                        %error,
                        "span export failed; spans are dropped until the collector is reachable again (logged once per outage)"
                    );
                }
            }
        }
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
