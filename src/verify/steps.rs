//! The steps a run in the cluster and a local run share: read the
//! collector's pages before the traffic, send it, wait for the collector to
//! take in and export it, and find the errors in Bugsink. Each step adds its
//! rows to the [`Report`]; what it reads comes through any [`Get`].

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::backends::bugsink::{self, FoundEvent};
use super::check::Check;
use super::http::Get;
use super::metrics::{self, CollectorMetrics};
use super::progress::Step;
use super::report::Report;
use super::scrape::{self, Page};
use super::traffic::{self, ENDPOINTS, Sent};

/// How long the receivers and exporters get to take in and send our spans:
/// the service's batch delay (5 s) plus the collector's (1 s), with room.
pub const FLUSH_WAIT: Duration = Duration::from_secs(20);
/// How long Jaeger, Bugsink and Sentry get to show everything.
const BACKEND_WAIT: Duration = Duration::from_secs(30);
/// One request to the frontend (it sleeps on purpose; /chain makes hops).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Kept free at the end of `--timeout` to print the report.
const REPORT_RESERVE: Duration = Duration::from_secs(2);
/// Lines of the collector's log quoted for a failing exporter.
pub const EXPORTER_LOG_LINES: usize = 3;
/// The collector's metrics page, as the rows name it.
const COLLECTOR_METRICS: &str = "Prometheus text on :8888/metrics";

/// When a run starts, and when its steps must be done so that the report
/// is printed within `timeout`.
pub fn deadline(timeout: Duration) -> (Instant, Instant) {
    let started = Instant::now();
    (started, started + timeout.saturating_sub(REPORT_RESERVE))
}

/// The report with its verdict and run time.
pub fn finish(mut report: Report, started: Instant) -> Report {
    report.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let passed = report.failures().next().is_none();
    report.passed = passed;
    report
}

/// Reads a metrics page before the traffic; a failure is the row `name`.
pub async fn read_before<P: Page>(
    source: &impl Get,
    name: &str,
    expected: &str,
    report: &mut Report,
) -> Option<P> {
    match scrape::read::<P>(source).await {
        Ok(page) => Some(page),
        Err(problem) => {
            let check = Check::fail(name.to_owned(), expected, problem.to_string());
            report.checks.push(check);
            None
        }
    }
}

/// [`read_before`] for the collector's own counters.
pub async fn read_collector_before(
    collector: &impl Get,
    step: &Step,
    report: &mut Report,
) -> Option<CollectorMetrics> {
    step.set("reading the collector's metrics");
    read_before(collector, "collector metrics", COLLECTOR_METRICS, report).await
}

/// Sends the requests, one row per endpoint; returns every request sent.
pub async fn send_traffic(
    frontend: &impl Get,
    requests: u32,
    step: &Step,
    report: &mut Report,
) -> Vec<Sent> {
    step.set(format!(
        "sending {requests} requests each to {}",
        ENDPOINTS.map(|endpoint| endpoint.path).join(", ")
    ));
    let sent = traffic::send(frontend, requests, REQUEST_TIMEOUT).await;
    report.checks.extend(traffic::checks(&sent));
    sent
}

/// The requests that got an answer: only they can have a trace.
pub fn answered(sent: &[Sent]) -> Vec<Sent> {
    sent.iter()
        .filter(|request| request.status.is_some())
        .cloned()
        .collect()
}

/// Waits until the collector has taken in and exported at least the spans
/// of the `answered` requests; its rows, each failing exporter explained by
/// `explain` (the collector's log lines about it). Keeps the counters in the
/// report; `false` when they could not be read.
pub async fn collector_counters(
    collector: &impl Get,
    before: &CollectorMetrics,
    answered: &[Sent],
    deadline: Instant,
    step: &Step,
    report: &mut Report,
    explain: impl AsyncFn(&str) -> Vec<String>,
) -> bool {
    let min_spans: usize = answered
        .iter()
        .map(|request| {
            let shape = &request.endpoint.shape;
            shape.span_names.len().max(shape.server_spans)
        })
        .sum();
    let min_spans = min_spans as f64;
    step.set("waiting for the collector to export the spans");
    let waited_from = Instant::now();
    let flush_deadline = deadline.min(waited_from + FLUSH_WAIT);
    let settled = |delta: &CollectorMetrics| metrics::flushed(delta, min_spans);
    let delta = match scrape::poll(collector, before, settled, flush_deadline).await {
        Ok(delta) => delta,
        Err(problem) => {
            let name = "collector counters".to_owned();
            let check = Check::fail(name, COLLECTOR_METRICS, problem.to_string());
            report.checks.push(check);
            return false;
        }
    };
    for (exporter, mut check) in metrics::rows(&delta, min_spans, waited_from.elapsed()) {
        if let Some(exporter) = exporter.filter(|_| check.failed()) {
            check.details = explain(exporter).await;
        }
        report.checks.push(check);
    }
    report.collector = Some(delta);
    true
}

/// The deadline of the look-ups in the backends, from now.
pub fn backend_deadline(deadline: Instant) -> Instant {
    deadline.min(Instant::now() + BACKEND_WAIT)
}

/// Finds the error event of every `/errorwork` request in Bugsink by
/// `backend_deadline`.
pub async fn bugsink_errors(
    bugsink: &impl Get,
    token: &str,
    answered: &[Sent],
    backend_deadline: Instant,
    report: &mut Report,
) -> HashMap<String, FoundEvent> {
    let (check, found) = bugsink::check_bugsink(bugsink, token, answered, backend_deadline).await;
    report.checks.push(check);
    found
}
