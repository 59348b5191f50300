//! The exporter's side: every item counted as exported or failed, and an
//! unreachable collector reported when exports start failing and when they
//! recover, instead of once per batch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::logs::Severity;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use super::{ExportStats, Signal};

/// Wraps the exporter: counts exported and failed items, and logs a warning
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

impl<E> ReportingExporter<E> {
    /// Counts the `count` items of one export and reports a change between
    /// working and failing.
    fn report(&self, count: usize, result: &OTelSdkResult) {
        let count = u64::try_from(count).unwrap_or(u64::MAX);
        let counters = &self.stats.counters;
        let Signal { name, items, .. } = self.stats.signal;
        match result {
            Ok(()) => {
                counters.exported.fetch_add(count, Ordering::Relaxed);
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(endpoint = %self.endpoint, "{name} export recovered");
                }
            }
            Err(error) => {
                counters.failed.fetch_add(count, Ordering::Relaxed);
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        endpoint = %self.endpoint,
                        %error,
                        "{name} export failed; {items} are lost until the collector is reachable again (logged once per outage)"
                    );
                }
            }
        }
        self.stats.finished(count, result.is_ok());
    }
}

impl<E: SpanExporter> SpanExporter for ReportingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let count = batch.len();
        let result = self.inner.export(batch).await;
        self.report(count, &result);
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

impl<E: LogExporter> LogExporter for ReportingExporter<E> {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        let count = batch.iter().count();
        let result = self.inner.export(batch).await;
        self.report(count, &result);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn event_enabled(&self, level: Severity, target: &str, name: Option<&str>) -> bool {
        self.inner.event_enabled(level, target, name)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::export_queue::SPANS;
    use crate::telemetry::export_queue::tests::{Inner, admitting, counts, end_spans, logs_of};

    fn export(exporter: &ReportingExporter<Inner>, batch: Vec<SpanData>) -> OTelSdkResult {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(SpanExporter::export(exporter, batch))
    }

    #[test]
    fn exports_count_spans_as_exported_or_failed_and_free_the_queue() {
        let stats = ExportStats::new(SPANS);
        let inner = Inner::default();
        let (_provider, tracer) = admitting(10, &stats, &inner);
        end_spans(&tracer, 5);
        let mut ended = std::mem::take(&mut *inner.0.ended.lock().unwrap());
        let exporter =
            ReportingExporter::new(inner.clone(), "http://c:4317".to_owned(), stats.clone());
        let failing: Vec<SpanData> = ended.drain(..2).collect();
        assert!(export(&exporter, ended).is_ok());
        assert_eq!(stats.counts(), counts(3, 0, 0, 2));
        inner.0.fail.store(true, Ordering::Relaxed);
        assert!(export(&exporter, failing).is_err());
        assert_eq!(stats.counts(), counts(3, 2, 0, 0));
    }

    #[test]
    fn an_outage_warns_once_and_its_end_is_logged() {
        let stats = ExportStats::new(SPANS);
        let inner = Inner::default();
        let exporter = ReportingExporter::new(inner.clone(), "http://c:4317".to_owned(), stats);
        let fail = |failing: bool| inner.0.fail.store(failing, Ordering::Relaxed);
        let logs = logs_of(|| {
            // Two outages, of four failed exports and of one: one warning each.
            for failing in [false, true, true, true, true, false, false, true] {
                fail(failing);
                let _ = export(&exporter, Vec::new());
            }
        });
        assert_eq!(logs.matches("span export failed").count(), 2, "{logs}");
        assert_eq!(logs.matches("span export recovered").count(), 1, "{logs}");
        assert!(logs.contains("collector down"), "{logs}");
    }
}
