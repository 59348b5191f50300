//! Counts what happens to every span after it ends and to every log record
//! after it is written, keeps the export queues bounded with the drops
//! counted, and reports an unreachable collector once per outage instead of
//! once per batch.
//!
//! The SDK's batch processors drop silently when their queue is full (they
//! log the first drop and a total at shutdown, nothing in between), and log
//! every failed export at error level. Two thin wrappers make both visible:
//! [`AdmissionProcessor`] in front of the batch processor and
//! [`ReportingExporter`] behind it, sharing one [`ExportStats`]. Each signal,
//! spans and logs, has its own pair.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::logs::Severity;
use opentelemetry::{Context, InstrumentationScope};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter, LogProcessor, SdkLogRecord};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};

/// What a pipeline carries, as its warnings name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal {
    /// `span export failed`, `log export failed`.
    name: &'static str,
    /// `spans are lost`, `log records are lost`.
    items: &'static str,
    /// The variable that sizes its queue.
    queue_size_var: &'static str,
}

pub const SPANS: Signal = Signal {
    name: "span",
    items: "spans",
    queue_size_var: "OTEL_BSP_MAX_QUEUE_SIZE",
};

pub const LOGS: Signal = Signal {
    name: "log",
    items: "log records",
    queue_size_var: "OTEL_BLRP_MAX_QUEUE_SIZE",
};

/// One signal's counts since startup.
#[derive(Debug, Clone)]
pub struct ExportStats {
    signal: Signal,
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    /// Handed to the batch processor and not yet through an export.
    pending: AtomicU64,
    exported: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    /// True while items are being dropped, to warn once per episode: from
    /// the first drop to the next successful export.
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
    pub fn new(signal: Signal) -> Self {
        Self {
            signal,
            counters: Arc::default(),
        }
    }

    pub fn counts(&self) -> ExportCounts {
        let counters = &self.counters;
        ExportCounts {
            exported: counters.exported.load(Ordering::Relaxed),
            failed: counters.failed.load(Ordering::Relaxed),
            dropped: counters.dropped.load(Ordering::Relaxed),
            pending: counters.pending.load(Ordering::Relaxed),
        }
    }

    /// `count` items went through an export. A successful one ends a drop
    /// episode; a failed one does not, so a whole outage warns of drops once.
    fn finished(&self, count: u64, exported: bool) {
        self.counters.pending.fetch_sub(count, Ordering::Relaxed);
        if exported {
            self.counters.dropping.store(false, Ordering::Relaxed);
        }
    }
}

/// Sits in front of the batch processor and admits at most `capacity` spans
/// or log records that have not yet been through an export; beyond that it
/// drops and counts them. With `capacity` equal to the batch processor's
/// queue size, that queue never overflows, so every lost item is counted
/// here or as failed.
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

impl<P> AdmissionProcessor<P> {
    /// True if one more item fits; else counts it as dropped, warning once
    /// per episode.
    fn admit(&self) -> bool {
        let counters = &self.stats.counters;
        let admitted = counters
            .pending
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |pending| {
                (pending < self.capacity).then_some(pending + 1)
            })
            .is_ok();
        if admitted {
            return true;
        }
        let dropped = counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if !counters.dropping.swap(true, Ordering::Relaxed) {
            // To stdout only: as a log record, the warning would join the
            // very queue it reports full.
            let _suppressed = Context::enter_telemetry_suppressed_scope();
            let Signal {
                name,
                items,
                queue_size_var,
            } = self.stats.signal;
            tracing::warn!(
                capacity = self.capacity,
                dropped_total = dropped,
                "{name} queue full; dropping {items} until an export completes (raise {queue_size_var} or fix the collector)"
            );
        }
        false
    }
}

impl<P: SpanProcessor> SpanProcessor for AdmissionProcessor<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if self.admit() {
            self.inner.on_end(span);
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

impl<P: LogProcessor> LogProcessor for AdmissionProcessor<P> {
    fn emit(&self, record: &mut SdkLogRecord, scope: &InstrumentationScope) {
        if self.admit() {
            self.inner.emit(record, scope);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
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
    use std::io;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;

    use opentelemetry::KeyValue;
    use opentelemetry::logs::{Logger as _, LoggerProvider as _};
    use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
    use opentelemetry_sdk::error::OTelSdkError;
    use opentelemetry_sdk::logs::{SdkLoggerProvider, SimpleLogProcessor};
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

    impl LogProcessor for Inner {
        fn emit(&self, _record: &mut SdkLogRecord, _scope: &InstrumentationScope) {
            self.0.started.fetch_add(1, Ordering::Relaxed);
        }
        fn force_flush(&self) -> OTelSdkResult {
            self.0.flushed.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
            self.0.shut_down.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        fn event_enabled(&self, level: Severity, _target: &str, _name: Option<&str>) -> bool {
            level >= Severity::Warn
        }
    }

    impl LogExporter for Inner {
        async fn export(&self, _batch: LogBatch<'_>) -> OTelSdkResult {
            if self.0.fail.load(Ordering::Relaxed) {
                Err(OTelSdkError::InternalFailure("collector down".to_owned()))
            } else {
                Ok(())
            }
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
            .block_on(SpanExporter::export(exporter, batch))
    }

    #[test]
    fn admits_exactly_the_capacity_and_counts_the_rest_as_dropped() {
        let stats = ExportStats::new(SPANS);
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
        let stats = ExportStats::new(SPANS);
        let inner = Inner::default();
        let (_provider, tracer) = admitting(1, &stats, &inner);
        let logs = logs_of(|| {
            end_spans(&tracer, 3);
            // A failed export makes room but the episode goes on; a
            // successful one ends it.
            stats.finished(1, false);
            end_spans(&tracer, 3);
            stats.finished(1, true);
            end_spans(&tracer, 3);
        });
        assert_eq!(stats.counts(), counts(0, 0, 6, 1));
        assert_eq!(inner.0.ended.lock().unwrap().len(), 3);
        assert_eq!(logs.matches("span queue full").count(), 2, "{logs}");
        assert!(logs.contains("dropped_total=1"), "{logs}");
        assert!(logs.contains("dropped_total=5"), "{logs}");
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

    #[test]
    fn log_records_are_admitted_counted_and_their_outages_reported_like_spans() {
        let stats = ExportStats::new(LOGS);
        let inner = Inner::default();
        let processor = AdmissionProcessor::new(inner.clone(), 2, stats.clone());
        let provider = SdkLoggerProvider::builder()
            .with_log_processor(processor)
            .build();
        let logger = provider.logger("test");
        assert!(
            !logger.event_enabled(Severity::Info, "t", None),
            "asks the inner processor"
        );
        assert!(logger.event_enabled(Severity::Warn, "t", None));
        // The exporter behind the SDK's simplest processor, which exports
        // each record as it is written.
        let export_stats = ExportStats::new(LOGS);
        let exporter = ReportingExporter::new(
            inner.clone(),
            "http://c:4317".to_owned(),
            export_stats.clone(),
        );
        let exporting = SdkLoggerProvider::builder()
            .with_log_processor(SimpleLogProcessor::new(exporter))
            .build()
            .logger("test");
        let logs = logs_of(|| {
            for _ in 0..5 {
                logger.emit(logger.create_log_record());
            }
            exporting.emit(exporting.create_log_record());
            inner.0.fail.store(true, Ordering::Relaxed);
            for _ in 0..2 {
                exporting.emit(exporting.create_log_record());
            }
        });
        assert_eq!(export_stats.counts().exported, 1);
        assert_eq!(export_stats.counts().failed, 2);
        assert_eq!(inner.0.started.load(Ordering::Relaxed), 2);
        assert_eq!(stats.counts(), counts(0, 0, 3, 2));
        assert_eq!(
            logs.matches("log queue full; dropping log records").count(),
            1,
            "{logs}"
        );
        assert!(logs.contains("OTEL_BLRP_MAX_QUEUE_SIZE"), "{logs}");
        assert_eq!(
            logs.matches("log export failed; log records are lost")
                .count(),
            1,
            "{logs}"
        );
    }

    #[test]
    fn flush_shutdown_and_resource_reach_the_wrapped_processor_and_exporter() {
        let resource = Resource::builder_empty()
            .with_attribute(KeyValue::new("service.name", "checked"))
            .build();
        let processor_calls = Inner::default();
        let mut processor =
            AdmissionProcessor::new(processor_calls.clone(), 1, ExportStats::new(SPANS));
        let exporter_calls = Inner::default();
        let mut exporter = ReportingExporter::new(
            exporter_calls.clone(),
            String::new(),
            ExportStats::new(SPANS),
        );
        let timeout = Duration::from_secs(1);
        assert!(SpanProcessor::force_flush(&processor).is_ok());
        assert!(SpanProcessor::shutdown_with_timeout(&processor, timeout).is_ok());
        SpanProcessor::set_resource(&mut processor, &resource);
        assert!(SpanExporter::force_flush(&exporter).is_ok());
        assert!(SpanExporter::shutdown_with_timeout(&exporter, timeout).is_ok());
        SpanExporter::set_resource(&mut exporter, &resource);
        for calls in [&processor_calls, &exporter_calls] {
            assert_eq!(calls.0.flushed.load(Ordering::Relaxed), 1);
            assert_eq!(calls.0.shut_down.load(Ordering::Relaxed), 1);
            assert_eq!(calls.0.resource.lock().unwrap().as_ref(), Some(&resource));
        }
    }
}
