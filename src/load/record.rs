//! What the run records as it goes: per endpoint, the count, status
//! classes, errors and an HDR histogram of latencies; the slowest requests
//! with their trace ids.

use std::collections::BTreeMap;
use std::fmt;
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
pub(super) struct EndpointStats {
    pub(super) count: u64,
    /// 1xx to 5xx.
    pub(super) classes: [u64; 5],
    pub(super) errors: BTreeMap<&'static str, u64>,
    pub(super) latency: Histogram<u64>,
}

impl EndpointStats {
    #[expect(
        clippy::expect_used,
        reason = "the histogram bounds are valid constants"
    )]
    pub(super) fn new() -> Self {
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

    pub(super) fn add(&mut self, other: &EndpointStats) {
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

/// Everything recorded so far: one per run, behind a lock taken once per
/// request and held only to update these counts.
#[derive(Debug, Clone)]
pub struct Recorder {
    pub(super) endpoints: Vec<EndpointStats>,
    pub(super) slowest: Vec<SlowRequest>,
    pub(super) late: u64,
    pub(super) max_send_delay: Duration,
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

pub(super) fn as_millis<S: serde::Serializer>(
    duration: &Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64() * 1000.0)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::load) fn measured(
        endpoint: Endpoint,
        outcome: Outcome,
        millis: u64,
        id: u128,
    ) -> Measured<'static> {
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
}
