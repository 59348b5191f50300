//! The run's report: what [`super::record`] counted, per endpoint and for
//! all, with latency percentiles and the slowest requests. Printed as a
//! table, or as JSON with `--json`.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::time::Duration;

use serde::Serialize;

use super::mix::Endpoint;
use super::record::{EndpointStats, Recorder, SlowRequest, as_millis};

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

fn as_secs<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use hyper::StatusCode;

    use super::*;
    use crate::load::record::Outcome;
    use crate::load::record::tests::measured;

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
