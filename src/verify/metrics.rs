//! The collector's own span counters, read from its Prometheus endpoint
//! (`:8888/metrics`) with the `prometheus-parse` crate.
//!
//! The collector names a counter with or without the `_total` suffix
//! depending on its version and exporter settings (0.161 writes none), and
//! splits it by labels such as `transport` or `server_port`; both are folded
//! here, so a snapshot holds one number per receiver and per exporter.

use std::collections::BTreeMap;
use std::time::Duration;

use prometheus_parse::{Sample, Scrape, Value};
use serde::Serialize;

use super::check::Check;
use super::scrape::{Page, counter_delta as delta};

const RECEIVER_ACCEPTED: &str = "otelcol_receiver_accepted_spans";
const RECEIVER_REFUSED: &str = "otelcol_receiver_refused_spans";
const RECEIVER_FAILED: &str = "otelcol_receiver_failed_spans";
const EXPORTER_SENT: &str = "otelcol_exporter_sent_spans";
const EXPORTER_SEND_FAILED: &str = "otelcol_exporter_send_failed_spans";
/// In batches, not spans, since the collector's queue batches by itself.
const EXPORTER_QUEUE_SIZE: &str = "otelcol_exporter_queue_size";
const EXPORTER_IN_FLIGHT: &str = "otelcol_exporter_in_flight_requests";
/// Present when the pipeline keeps only some traces on purpose.
const TAIL_SAMPLING_PREFIX: &str = "otelcol_processor_tail_sampling";

#[derive(Debug, thiserror::Error)]
pub enum MetricsParseError {
    #[error("the collector's metrics are not in the Prometheus text format: {0}")]
    Format(#[from] std::io::Error),
    #[error("the page has no otelcol_ metrics: is this the collector's metrics port?")]
    NotTheCollector,
}

/// Span counters of one receiver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ReceiverSpans {
    pub accepted: f64,
    /// Not taken in (the pipeline pushed back, e.g. the memory limiter).
    pub refused: f64,
    /// Lost to an error inside the receiver.
    pub failed: f64,
}

/// Span counters of one exporter, and two gauges: batches waiting in its
/// sending queue (absent without a queue) and requests in flight (retries
/// included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ExporterSpans {
    pub sent: f64,
    pub send_failed: f64,
    pub queue_batches: Option<f64>,
    pub in_flight: Option<f64>,
}

/// One reading of the collector's span counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CollectorMetrics {
    pub receivers: BTreeMap<String, ReceiverSpans>,
    pub exporters: BTreeMap<String, ExporterSpans>,
    /// The pipeline drops traces by design (tail sampling), so exporters
    /// may send fewer spans than the receivers accepted.
    pub samples_traces: bool,
}

impl CollectorMetrics {
    pub fn parse(text: &str) -> Result<Self, MetricsParseError> {
        let lines = text.lines().map(|line| Ok(line.to_owned()));
        let scrape = Scrape::parse(lines)?;
        if !scrape
            .samples
            .iter()
            .any(|sample| sample.metric.starts_with("otelcol_"))
        {
            return Err(MetricsParseError::NotTheCollector);
        }
        let mut metrics = Self {
            samples_traces: samples_traces(&scrape),
            ..Self::default()
        };
        for sample in &scrape.samples {
            if sample
                .labels
                .get("data_type")
                .is_some_and(|kind| kind != "traces")
            {
                continue;
            }
            if let Some(value) = scalar(sample) {
                metrics.add(sample, value);
            }
        }
        Ok(metrics)
    }

    /// Folds one sample into its receiver's or exporter's counters.
    fn add(&mut self, sample: &Sample, value: f64) {
        let label = |name| sample.labels.get(name).map(str::to_owned);
        match base_name(&sample.metric) {
            metric @ (RECEIVER_ACCEPTED | RECEIVER_REFUSED | RECEIVER_FAILED) => {
                let Some(name) = label("receiver") else {
                    return;
                };
                let receiver = self.receivers.entry(name).or_default();
                match metric {
                    RECEIVER_ACCEPTED => receiver.accepted += value,
                    RECEIVER_REFUSED => receiver.refused += value,
                    _ => receiver.failed += value,
                }
            }
            metric @ (EXPORTER_SENT | EXPORTER_SEND_FAILED | EXPORTER_QUEUE_SIZE
            | EXPORTER_IN_FLIGHT) => {
                let Some(name) = label("exporter") else {
                    return;
                };
                let exporter = self.exporters.entry(name).or_default();
                match metric {
                    EXPORTER_SENT => exporter.sent += value,
                    EXPORTER_SEND_FAILED => exporter.send_failed += value,
                    EXPORTER_QUEUE_SIZE => *exporter.queue_batches.get_or_insert(0.0) += value,
                    _ => *exporter.in_flight.get_or_insert(0.0) += value,
                }
            }
            _ => {}
        }
    }

    /// What changed since `before`: counter deltas, and the queue sizes as
    /// they are now. A counter that went down (the collector restarted)
    /// counts from zero.
    pub fn since(&self, before: &Self) -> Self {
        let receivers = self
            .receivers
            .iter()
            .map(|(name, now)| {
                let then = before.receivers.get(name).copied().unwrap_or_default();
                let spans = ReceiverSpans {
                    accepted: delta(now.accepted, then.accepted),
                    refused: delta(now.refused, then.refused),
                    failed: delta(now.failed, then.failed),
                };
                (name.clone(), spans)
            })
            .collect();
        let exporters = self
            .exporters
            .iter()
            .map(|(name, now)| {
                let then = before.exporters.get(name).copied().unwrap_or_default();
                let spans = ExporterSpans {
                    sent: delta(now.sent, then.sent),
                    send_failed: delta(now.send_failed, then.send_failed),
                    queue_batches: now.queue_batches,
                    in_flight: now.in_flight,
                };
                (name.clone(), spans)
            })
            .collect();
        Self {
            receivers,
            exporters,
            samples_traces: self.samples_traces,
        }
    }

    pub fn accepted(&self) -> f64 {
        self.receivers.values().map(|r| r.accepted).sum()
    }

    /// Spans the receivers did not take in: refused or failed.
    pub fn lost_at_receivers(&self) -> f64 {
        self.receivers.values().map(|r| r.refused + r.failed).sum()
    }

    /// Every exporter has dealt with (sent or given up on) as many spans as
    /// the receivers accepted, and has nothing queued or in flight.
    /// Meaningful on deltas.
    pub fn exporters_caught_up(&self) -> bool {
        let accepted = self.accepted();
        !self.exporters.is_empty()
            && self.exporters.values().all(|e| {
                let handled = e.sent + e.send_failed;
                let drained =
                    e.queue_batches.unwrap_or(0.0) == 0.0 && e.in_flight.unwrap_or(0.0) == 0.0;
                drained && (handled >= accepted || (self.samples_traces && handled > 0.0))
            })
    }
}

fn base_name(metric: &str) -> &str {
    metric.strip_suffix("_total").unwrap_or(metric)
}

fn scalar(sample: &Sample) -> Option<f64> {
    match sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
        Value::Histogram(_) | Value::Summary(_) => None,
    }
}

impl Page for CollectorMetrics {
    type ParseError = MetricsParseError;

    fn parse(text: &str) -> Result<Self, MetricsParseError> {
        Self::parse(text)
    }

    fn since(&self, before: &Self) -> Self {
        self.since(before)
    }
}

/// Whether the collector keeps only some traces on purpose (tail
/// sampling), as its page shows: the one place `verify` tells the
/// collector's pipelines apart.
fn samples_traces(scrape: &Scrape) -> bool {
    scrape
        .samples
        .iter()
        .any(|sample| sample.metric.starts_with(TAIL_SAMPLING_PREFIX))
}

/// The receivers have accepted at least `min_spans` more spans and every
/// exporter has caught up: the collector is done with the traffic.
pub fn flushed(delta: &CollectorMetrics, min_spans: f64) -> bool {
    delta.accepted() >= min_spans && delta.exporters_caught_up()
}

/// One row for the receivers and one per exporter.
pub fn checks(delta: &CollectorMetrics, min_spans: f64, waited: Duration) -> Vec<Check> {
    rows(delta, min_spans, waited)
        .into_iter()
        .map(|(_, check)| check)
        .collect()
}

/// [`checks`], each exporter's row with the exporter's name, so a failing
/// one can be explained with its log lines.
pub fn rows(
    delta: &CollectorMetrics,
    min_spans: f64,
    waited: Duration,
) -> Vec<(Option<&str>, Check)> {
    let mut rows = vec![(None, receivers_check(delta, min_spans))];
    if delta.exporters.is_empty() {
        rows.push((
            None,
            Check::fail(
                "collector exporters".to_owned(),
                "span counters for each exporter",
                "no exporter counters on :8888/metrics".to_owned(),
            ),
        ));
    }
    for (name, spans) in &delta.exporters {
        rows.push((
            Some(name.as_str()),
            exporter_check(delta, name, spans, waited),
        ));
    }
    rows
}

fn receivers_check(delta: &CollectorMetrics, min_spans: f64) -> Check {
    let accepted = delta.accepted();
    let lost = delta.lost_at_receivers();
    let per_receiver = delta
        .receivers
        .iter()
        .map(|(name, spans)| {
            format!(
                "{name}: {} accepted, {} refused, {} failed",
                spans.accepted, spans.refused, spans.failed
            )
        })
        .collect::<Vec<_>>();
    Check::judged(
        accepted >= min_spans && lost == 0.0,
        "collector receivers".to_owned(),
        format!(">= {min_spans} spans accepted, 0 refused or failed"),
        if per_receiver.is_empty() {
            "no receiver counters".to_owned()
        } else {
            per_receiver.join("; ")
        },
    )
}

fn exporter_check(
    delta: &CollectorMetrics,
    name: &str,
    spans: &ExporterSpans,
    waited: Duration,
) -> Check {
    let accepted = delta.accepted();
    let queue = spans.queue_batches.unwrap_or(0.0);
    let in_flight = spans.in_flight.unwrap_or(0.0);
    let all_sent = if delta.samples_traces {
        spans.sent > 0.0
    } else {
        spans.sent >= accepted
    };
    let healthy = all_sent && spans.send_failed == 0.0 && queue == 0.0 && in_flight == 0.0;
    let expected = if delta.samples_traces {
        "spans sent (tail sampling keeps some), 0 failed, queue empty".to_owned()
    } else {
        format!("{accepted} spans sent, 0 failed, queue empty")
    };
    let seen = if healthy {
        format!("{} sent, 0 failed, queue empty", spans.sent)
    } else {
        format!(
            "exporter {name} failing: {} of {accepted} accepted spans sent within {}s, \
             {} failed to send, {queue} batch(es) queued, {in_flight} request(s) in flight",
            spans.sent,
            waited.as_secs(),
            spans.send_failed
        )
    };
    Check::judged(
        healthy,
        format!("collector exporter {name}"),
        expected,
        seen,
    )
}
