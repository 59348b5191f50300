//! Admission to the batch queue: at most its size in items not yet through
//! an export; the rest dropped, counted and reported once per episode.

use std::sync::atomic::Ordering;
use std::time::Duration;

use opentelemetry::logs::Severity;
use opentelemetry::{Context, InstrumentationScope};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogProcessor, SdkLogRecord};
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};

use super::{ExportStats, Signal};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::export_queue::SPANS;
    use crate::telemetry::export_queue::tests::{Inner, admitting, counts, end_spans, logs_of};

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
}
