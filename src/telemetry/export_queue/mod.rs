//! What becomes of every span and log record on its way to the collector,
//! counted: admitted to the batch queue or dropped because it is full
//! ([`AdmissionProcessor`], in front of the batch processor), then exported
//! or failed ([`ReportingExporter`], behind it), with an unreachable
//! collector reported once per outage. The SDK's batch processors drop
//! silently and log every failed export; these two wrappers, sharing one
//! [`ExportStats`] per signal, make both visible.

mod admission;
mod reporting;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub use self::admission::AdmissionProcessor;
pub use self::reporting::ReportingExporter;

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

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use opentelemetry::logs::{Logger as _, LoggerProvider as _, Severity};
    use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
    use opentelemetry::{Context, InstrumentationScope, KeyValue};
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
    use opentelemetry_sdk::logs::{
        LogBatch, LogExporter, LogProcessor, SdkLogRecord, SdkLoggerProvider, SimpleLogProcessor,
    };
    use opentelemetry_sdk::trace::{
        SdkTracer, SdkTracerProvider, Span, SpanData, SpanExporter, SpanProcessor,
    };

    use super::*;

    /// What the wrapped processor or exporter was asked to do.
    #[derive(Debug, Default)]
    pub(super) struct Calls {
        pub(super) started: AtomicUsize,
        pub(super) ended: Mutex<Vec<SpanData>>,
        pub(super) flushed: AtomicUsize,
        pub(super) shut_down: AtomicUsize,
        pub(super) resource: Mutex<Option<Resource>>,
        pub(super) fail: AtomicBool,
    }

    #[derive(Debug, Clone, Default)]
    pub(super) struct Inner(pub(super) Arc<Calls>);

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
    pub(super) fn admitting(
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

    pub(super) fn end_spans(tracer: &SdkTracer, count: usize) {
        for _ in 0..count {
            tracer.start("span").end();
        }
    }

    pub(super) fn counts(exported: u64, failed: u64, dropped: u64, pending: u64) -> ExportCounts {
        ExportCounts {
            exported,
            failed,
            dropped,
            pending,
        }
    }

    /// The log lines `run` writes.
    pub(super) fn logs_of(run: impl FnOnce()) -> String {
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
