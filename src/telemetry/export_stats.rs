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

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;

    use opentelemetry::KeyValue;
    use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
    use opentelemetry_sdk::error::OTelSdkError;
    use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

    use super::*;

    /// What the wrapped processor or exporter was asked to do.
    #[derive(Debug, Default)]
    struct Calls {
        started: AtomicUsize,
        ended: Mutex<Vec<SpanData>>,
        flushed: AtomicUsize,
        shut_down: AtomicUsize,
        resource: Mutex<Option<Resource>>,
        fail: AtomicBool,
    }

    #[derive(Debug, Clone, Default)]
    struct Inner(Arc<Calls>);

    impl SpanProcessor for Inner {
        fn on_start(&self, _span: &mut Span, _cx: &Context) {
            self.0.started.fetch_add(1, Ordering::Relaxed);
        }
        fn on_end(&self, span: SpanData) {
            self.0.ended.lock().unwrap().push(span);
        }
        fn force_flush(&self) -> OTelSdkResult {
            self.0.flushed.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
            self.0.shut_down.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        fn set_resource(&mut self, resource: &Resource) {
            *self.0.resource.lock().unwrap() = Some(resource.clone());
        }
    }

    impl SpanExporter for Inner {
        async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
            if self.0.fail.load(Ordering::Relaxed) {
                Err(OTelSdkError::InternalFailure("collector down".to_owned()))
            } else {
                Ok(())
            }
        }
        fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
            self.0.shut_down.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        fn force_flush(&self) -> OTelSdkResult {
            self.0.flushed.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        fn set_resource(&mut self, resource: &Resource) {
            *self.0.resource.lock().unwrap() = Some(resource.clone());
        }
    }

    /// A tracer whose spans go through an admission processor of `capacity`
    /// to `inner`.
    fn admitting(
        capacity: usize,
        stats: &ExportStats,
        inner: &Inner,
    ) -> (SdkTracerProvider, SdkTracer) {
        let provider = SdkTracerProvider::builder()
            .with_span_processor(AdmissionProcessor::new(
                inner.clone(),
                capacity,
                stats.clone(),
            ))
            .build();
        let tracer = provider.tracer("test");
        (provider, tracer)
    }

    fn end_spans(tracer: &SdkTracer, count: usize) {
        for _ in 0..count {
            tracer.start("span").end();
        }
    }

    fn counts(exported: u64, failed: u64, dropped: u64, pending: u64) -> ExportCounts {
        ExportCounts {
            exported,
            failed,
            dropped,
            pending,
        }
    }

    /// The log lines `run` writes.
    fn logs_of(run: impl FnOnce()) -> String {
        struct Captured(Arc<Mutex<Vec<u8>>>);
        impl io::Write for Captured {
            fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || Captured(writer.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, run);
        String::from_utf8(buffer.lock().unwrap().clone()).unwrap()
    }

    fn export(exporter: &ReportingExporter<Inner>, batch: Vec<SpanData>) -> OTelSdkResult {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(exporter.export(batch))
    }

    #[test]
    fn admits_exactly_the_capacity_and_counts_the_rest_as_dropped() {
        let stats = ExportStats::default();
        let inner = Inner::default();
        let (_provider, tracer) = admitting(2, &stats, &inner);
        end_spans(&tracer, 2);
        assert_eq!(stats.counts(), counts(0, 0, 0, 2), "a full queue admits");
        end_spans(&tracer, 3);
        assert_eq!(stats.counts(), counts(0, 0, 3, 2));
        assert_eq!(inner.0.ended.lock().unwrap().len(), 2);
        assert_eq!(inner.0.started.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn an_export_makes_room_and_each_drop_episode_warns_once() {
        let stats = ExportStats::default();
        let inner = Inner::default();
        let (_provider, tracer) = admitting(1, &stats, &inner);
        let logs = logs_of(|| {
            end_spans(&tracer, 3);
            stats.finished(1);
            end_spans(&tracer, 3);
        });
        assert_eq!(stats.counts(), counts(0, 0, 4, 1));
        assert_eq!(inner.0.ended.lock().unwrap().len(), 2);
        assert_eq!(logs.matches("span queue full").count(), 2, "{logs}");
        assert!(logs.contains("dropped_total=1"), "{logs}");
        assert!(logs.contains("dropped_total=3"), "{logs}");
    }

    #[test]
    fn exports_count_spans_as_exported_or_failed_and_free_the_queue() {
        let stats = ExportStats::default();
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
        let stats = ExportStats::default();
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

    #[test]
    fn flush_shutdown_and_resource_reach_the_wrapped_processor_and_exporter() {
        let resource = Resource::builder_empty()
            .with_attribute(KeyValue::new("service.name", "checked"))
            .build();
        let processor_calls = Inner::default();
        let mut processor =
            AdmissionProcessor::new(processor_calls.clone(), 1, ExportStats::default());
        let exporter_calls = Inner::default();
        let mut exporter = ReportingExporter::new(
            exporter_calls.clone(),
            String::new(),
            ExportStats::default(),
        );
        assert!(processor.force_flush().is_ok());
        assert!(
            processor
                .shutdown_with_timeout(Duration::from_secs(1))
                .is_ok()
        );
        processor.set_resource(&resource);
        assert!(exporter.force_flush().is_ok());
        assert!(
            exporter
                .shutdown_with_timeout(Duration::from_secs(1))
                .is_ok()
        );
        exporter.set_resource(&resource);
        for calls in [&processor_calls, &exporter_calls] {
            assert_eq!(calls.0.flushed.load(Ordering::Relaxed), 1);
            assert_eq!(calls.0.shut_down.load(Ordering::Relaxed), 1);
            assert_eq!(calls.0.resource.lock().unwrap().as_ref(), Some(&resource));
        }
    }
}
