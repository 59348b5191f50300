//! What the run measured: per endpoint, the count, status classes, errors
//! and an HDR histogram of latencies; the slowest requests with their trace
//! ids. Printed as a table, or as JSON with `--json`.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::time::Duration;

use hdrhistogram::Histogram;
use hyper::StatusCode;
use serde::Serialize;

use super::mix::Endpoint;

/// Latencies are recorded in microseconds, from 1 µs to one hour, with three
/// significant digits (about 190 KiB per histogram).
const LOWEST_MICROS: u64 = 1;
const HIGHEST_MICROS: u64 = 3_600_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;
/// How many of the slowest requests the report names.
pub const SLOWEST: usize = 5;

/// The outcome of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Status(StatusCode),
    /// No response; the error kind.
    Failed(&'static str),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Status(status) => write!(f, "{}", status.as_u16()),
            Outcome::Failed(kind) => f.write_str(kind),
        }
    }
}

#[derive(Debug, Clone)]
struct EndpointStats {
    count: u64,
    /// 1xx to 5xx.
    classes: [u64; 5],
    errors: BTreeMap<&'static str, u64>,
    latency: Histogram<u64>,
}

impl EndpointStats {
    #[expect(
        clippy::expect_used,
        reason = "the histogram bounds are valid constants"
    )]
    fn new() -> Self {
        Self {
            count: 0,
            classes: [0; 5],
            errors: BTreeMap::new(),
            latency: Histogram::new_with_bounds(LOWEST_MICROS, HIGHEST_MICROS, SIGNIFICANT_DIGITS)
                .expect("constant, valid histogram bounds"),
        }
    }

    fn record(&mut self, outcome: Outcome, latency: Duration) {
        self.count += 1;
        match outcome {
            Outcome::Status(status) => {
                let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
                self.classes[class] += 1;
                let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                self.latency.saturating_record(micros.max(LOWEST_MICROS));
            }
            Outcome::Failed(kind) => *self.errors.entry(kind).or_default() += 1,
        }
    }

    fn add(&mut self, other: &EndpointStats) {
        self.count += other.count;
        for (total, class) in self.classes.iter_mut().zip(other.classes) {
            *total += class;
        }
        for (kind, count) in &other.errors {
            *self.errors.entry(kind).or_default() += count;
        }
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
    }

    fn errors(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// One of the slowest requests.
#[derive(Debug, Clone, Serialize)]
pub struct SlowRequest {
    #[serde(serialize_with = "as_millis")]
    pub latency: Duration,
    pub endpoint: Endpoint,
    pub path: String,
    pub outcome: String,
    /// The trace the load tool started; `None` with `--no-traceparent`.
    pub trace_id: Option<String>,
}

/// Everything recorded so far. One per run, behind a lock taken once per
/// request: the lock is held for a few hundred nanoseconds.
#[derive(Debug, Clone)]
pub struct Recorder {
    endpoints: Vec<EndpointStats>,
    slowest: Vec<SlowRequest>,
    late: u64,
    max_send_delay: Duration,
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            endpoints: Endpoint::ALL.iter().map(|_| EndpointStats::new()).collect(),
            slowest: Vec::with_capacity(SLOWEST + 1),
            late: 0,
            max_send_delay: Duration::ZERO,
        }
    }
}

/// What a caller hands to [`Recorder::record`] for one request.
pub struct Measured<'a> {
    pub endpoint: Endpoint,
    pub path: &'a str,
    pub outcome: Outcome,
    /// From the scheduled time (open loop) or the send (closed loop).
    pub latency: Duration,
    /// How far behind its schedule the request was sent (open loop).
    pub send_delay: Option<Duration>,
    pub trace_id: Option<u128>,
}

impl Recorder {
    pub fn record(&mut self, measured: Measured<'_>) {
        self.endpoints[measured.endpoint.index()].record(measured.outcome, measured.latency);
        if let Some(delay) = measured.send_delay {
            self.max_send_delay = self.max_send_delay.max(delay);
            if delay > super::schedule::LATE_AFTER {
                self.late += 1;
            }
        }
        let fastest_kept = self.slowest.last().map(|slow| slow.latency);
        if self.slowest.len() < SLOWEST || fastest_kept.is_some_and(|l| measured.latency > l) {
            let position = self
                .slowest
                .partition_point(|slow| slow.latency >= measured.latency);
            self.slowest.insert(
                position,
                SlowRequest {
                    latency: measured.latency,
                    endpoint: measured.endpoint,
                    path: measured.path.to_owned(),
                    outcome: measured.outcome.to_string(),
                    trace_id: measured.trace_id.map(|id| format!("{id:032x}")),
                },
            );
            self.slowest.truncate(SLOWEST);
        }
    }

    /// Requests with an outcome (a response or an error).
    pub fn finished(&self) -> u64 {
        self.endpoints.iter().map(|stats| stats.count).sum()
    }

    pub fn errors(&self) -> u64 {
        self.endpoints.iter().map(EndpointStats::errors).sum()
    }

    pub fn late(&self) -> u64 {
        self.late
    }
}

/// How the run was set up, for the report's header.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub target: String,
    /// `open` or `closed`.
    pub mode: &'static str,
    /// Open loop: the scheduled rate.
    pub rate: Option<f64>,
    pub connections: usize,
    pub mix: String,
    pub seed: u64,
    pub traceparent: bool,
}

#[derive(Debug, Serialize)]
pub struct Percentiles {
    p50: f64,
    p90: f64,
    p99: f64,
    #[serde(rename = "p99.9")]
    p99_9: f64,
    max: f64,
}

#[derive(Debug, Serialize)]
pub struct EndpointReport {
    endpoint: String,
    count: u64,
    status: BTreeMap<&'static str, u64>,
    errors: BTreeMap<&'static str, u64>,
    /// Milliseconds, over requests that got a response.
    latency_ms: Percentiles,
}

/// The final report, as printed and as written by `--json`.
#[derive(Debug, Serialize)]
pub struct Report {
    #[serde(flatten)]
    run: RunInfo,
    #[serde(serialize_with = "as_secs")]
    elapsed: Duration,
    /// Requests sent (or attempted, if the connection failed).
    sent: u64,
    /// Requests with a response or an error.
    finished: u64,
    /// In flight when the run was stopped; they have no outcome.
    interrupted: u64,
    /// Open loop: sent more than 1 ms behind their scheduled time.
    late: u64,
    #[serde(serialize_with = "as_millis")]
    max_send_delay: Duration,
    /// Finished requests per second.
    achieved_rate: f64,
    stopped_early: bool,
    endpoints: Vec<EndpointReport>,
    all: EndpointReport,
    slowest: Vec<SlowRequest>,
}

/// The rest of a report's figures, known only to the run.
pub struct Totals {
    pub elapsed: Duration,
    pub sent: u64,
    pub interrupted: u64,
    pub stopped_early: bool,
}

impl Report {
    pub fn new(run: RunInfo, recorder: Recorder, totals: Totals) -> Self {
        let mut all = EndpointStats::new();
        let mut endpoints = Vec::new();
        for (endpoint, stats) in Endpoint::ALL.iter().zip(&recorder.endpoints) {
            all.add(stats);
            if stats.count > 0 {
                endpoints.push(endpoint_report(endpoint.name(), stats));
            }
        }
        let finished = all.count;
        let seconds = totals.elapsed.as_secs_f64();
        Self {
            run,
            elapsed: totals.elapsed,
            sent: totals.sent,
            finished,
            interrupted: totals.interrupted,
            late: recorder.late,
            max_send_delay: recorder.max_send_delay,
            achieved_rate: if seconds > 0.0 {
                finished as f64 / seconds
            } else {
                0.0
            },
            stopped_early: totals.stopped_early,
            endpoints,
            all: endpoint_report("all", &all),
            slowest: recorder.slowest,
        }
    }
}

fn endpoint_report(name: &str, stats: &EndpointStats) -> EndpointReport {
    let millis = |micros: u64| micros as f64 / 1000.0;
    let at = |quantile: f64| millis(stats.latency.value_at_quantile(quantile));
    let status = ["1xx", "2xx", "3xx", "4xx", "5xx"]
        .into_iter()
        .zip(stats.classes)
        .filter(|(_, count)| *count > 0)
        .collect();
    EndpointReport {
        endpoint: name.to_owned(),
        count: stats.count,
        status,
        errors: stats.errors.clone(),
        latency_ms: Percentiles {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p99_9: at(0.999),
            max: millis(stats.latency.max()),
        },
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let run = &self.run;
        match run.rate {
            Some(rate) => write!(
                f,
                "open loop at {rate} req/s over {} connections",
                run.connections
            )?,
            None => write!(f, "closed loop with {} connections", run.connections)?,
        }
        writeln!(
            f,
            " against {}; mix {}; seed {}{}",
            run.target,
            run.mix,
            run.seed,
            if self.stopped_early {
                "; stopped early"
            } else {
                ""
            }
        )?;
        write!(
            f,
            "{} sent, {} finished, {} interrupted in {:.1} s ({:.1} req/s)",
            self.sent,
            self.finished,
            self.interrupted,
            self.elapsed.as_secs_f64(),
            self.achieved_rate
        )?;
        if run.rate.is_some() {
            write!(
                f,
                "; {} sent late (more than 1 ms behind schedule; the most {:.2} ms)",
                self.late,
                self.max_send_delay.as_secs_f64() * 1000.0
            )?;
        }
        writeln!(f, "\n")?;

        writeln!(
            f,
            "{:<10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "endpoint",
            "count",
            "2xx",
            "3xx",
            "4xx",
            "5xx",
            "errors",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms"
        )?;
        for row in self.endpoints.iter().chain([&self.all]) {
            let class = |name| row.status.get(name).copied().unwrap_or(0);
            let latency = &row.latency_ms;
            writeln!(
                f,
                "{:<10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                row.endpoint,
                row.count,
                class("2xx"),
                class("3xx"),
                class("4xx"),
                class("5xx"),
                row.errors.values().sum::<u64>(),
                latency.p50,
                latency.p90,
                latency.p99,
                latency.p99_9,
                latency.max
            )?;
        }
        if !self.all.errors.is_empty() {
            let mut errors = String::new();
            for (kind, count) in &self.all.errors {
                let _ = write!(errors, " {kind} {count};");
            }
            writeln!(f, "\nerrors:{}", errors.trim_end_matches(';'))?;
        }
        if !self.slowest.is_empty() {
            writeln!(f, "\nslowest requests:")?;
            for slow in &self.slowest {
                writeln!(
                    f,
                    "{:>10.2} ms  {:<6} {:<18} trace {}",
                    slow.latency.as_secs_f64() * 1000.0,
                    slow.outcome,
                    slow.path,
                    slow.trace_id.as_deref().unwrap_or("(none sent)")
                )?;
            }
        }
        Ok(())
    }
}

fn as_millis<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64() * 1000.0)
}

fn as_secs<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(endpoint: Endpoint, outcome: Outcome, millis: u64, id: u128) -> Measured<'static> {
        Measured {
            endpoint,
            path: "/x",
            outcome,
            latency: Duration::from_millis(millis),
            send_delay: Some(Duration::from_micros(millis * 200)),
            trace_id: Some(id),
        }
    }

    #[test]
    fn keeps_the_five_slowest_in_order() {
        let mut recorder = Recorder::default();
        for (i, millis) in [5, 1, 9, 3, 7, 2, 8, 6].into_iter().enumerate() {
            recorder.record(measured(
                Endpoint::Somework,
                Outcome::Status(StatusCode::OK),
                millis,
                i as u128 + 1,
            ));
        }
        let kept: Vec<u128> = recorder
            .slowest
            .iter()
            .map(|slow| slow.latency.as_millis())
            .collect();
        assert_eq!(kept, [9, 8, 7, 6, 5]);
        assert_eq!(
            recorder.slowest[0].trace_id.as_deref(),
            Some("00000000000000000000000000000003")
        );
        // Sent 0.2 ms behind per ms of latency: 6, 7, 8 and 9 ms are late.
        assert_eq!(recorder.late(), 4);
    }

    #[test]
    fn counts_status_classes_and_errors_per_endpoint() {
        let mut recorder = Recorder::default();
        recorder.record(measured(
            Endpoint::Users,
            Outcome::Status(StatusCode::OK),
            1,
            1,
        ));
        recorder.record(measured(
            Endpoint::Users,
            Outcome::Status(StatusCode::NOT_FOUND),
            1,
            2,
        ));
        recorder.record(measured(
            Endpoint::Errorwork,
            Outcome::Status(StatusCode::INTERNAL_SERVER_ERROR),
            1,
            3,
        ));
        recorder.record(measured(Endpoint::Chain, Outcome::Failed("connect"), 1, 4));
        assert_eq!(recorder.finished(), 4);
        assert_eq!(recorder.errors(), 1);
        let report = Report::new(
            RunInfo {
                target: "http://t".into(),
                mode: "open",
                rate: Some(1.0),
                connections: 1,
                mix: "users=1".into(),
                seed: 1,
                traceparent: true,
            },
            recorder,
            Totals {
                elapsed: Duration::from_secs(1),
                sent: 4,
                interrupted: 0,
                stopped_early: false,
            },
        );
        let json = serde_json::to_value(&report).unwrap();
        let users = &json["endpoints"][1];
        assert_eq!(users["endpoint"], "users");
        assert_eq!(users["status"]["2xx"], 1);
        assert_eq!(users["status"]["4xx"], 1);
        assert_eq!(json["all"]["errors"]["connect"], 1);
        assert_eq!(json["all"]["count"], 4);
        let table = report.to_string();
        assert!(table.contains("errorwork"), "{table}");
        assert!(table.contains("errors: connect 1"), "{table}");
    }
}
