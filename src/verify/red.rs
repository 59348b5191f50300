//! RED metrics per endpoint (request rate, error rate, duration), read from
//! the span metrics that the collector's `span_metrics` connector derives
//! from every span, and that its `prometheus` exporter serves on
//! `:8889/metrics`, with the `prometheus-parse` crate.
//!
//! Only SERVER spans count: one per request a service answered, labelled with
//! its route. Two readings, before and after the traffic, give deltas; the
//! p99 comes from the deltas of the duration histogram's buckets, as
//! Prometheus's `histogram_quantile` computes it.

use std::collections::BTreeMap;
use std::time::Duration;

use prometheus_parse::{Scrape, Value};
use serde::Serialize;

use super::check::Check;
use super::scrape::{Page, counter_delta as delta};

/// The names Jaeger's Monitor tab queries; the collector configs pin them
/// (connector namespace `traces.span.metrics`, histogram unit `ms`).
pub const CALLS: &str = "traces_span_metrics_calls_total";
pub const DURATION_MS: &str = "traces_span_metrics_duration_milliseconds";
const SERVER: &str = "SPAN_KIND_SERVER";
const ERROR: &str = "STATUS_CODE_ERROR";

#[derive(Debug, thiserror::Error)]
#[error("the span metrics are not in the Prometheus text format: {0}")]
pub struct RedParseError(#[from] std::io::Error);

/// The SERVER spans of one service on one route, summed over the other
/// labels (status code, collector instance).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RouteCounts {
    pub calls: f64,
    /// Calls whose span status is Error.
    pub errors: f64,
    /// Cumulative counts of the duration histogram, by upper bound in ms
    /// (the last one `+Inf`), ascending.
    pub buckets: Vec<(f64, f64)>,
}

impl RouteCounts {
    /// The `q` quantile of the durations in ms, interpolated linearly within
    /// its bucket as `histogram_quantile` does; `None` without observations.
    /// In the `+Inf` bucket it is the highest finite bound.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total = self.buckets.last()?.1;
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let (mut lower, mut below) = (0.0, 0.0);
        for &(upper, count) in &self.buckets {
            if count >= rank {
                if upper == f64::INFINITY {
                    return Some(lower);
                }
                if count == below {
                    return Some(upper);
                }
                return Some(lower + (upper - lower) * (rank - below) / (count - below));
            }
            (lower, below) = (upper, count);
        }
        Some(lower)
    }

    /// The share of calls that failed, from 0 to 1.
    pub fn error_ratio(&self) -> Option<f64> {
        (self.calls > 0.0).then(|| self.errors / self.calls)
    }
}

/// One reading of the span metrics: the SERVER spans by service and route.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpanMetrics {
    pub routes: BTreeMap<(String, String), RouteCounts>,
}

impl SpanMetrics {
    /// A page with no span metrics yet (no span went through) is empty, not
    /// an error.
    pub fn parse(text: &str) -> Result<Self, RedParseError> {
        let scrape = Scrape::parse(text.lines().map(|line| Ok(line.to_owned())))?;
        let mut metrics = Self::default();
        for sample in &scrape.samples {
            let labels = &sample.labels;
            if labels.get("span_kind") != Some(SERVER) {
                continue;
            }
            let (Some(service), Some(route)) =
                (labels.get("service_name"), labels.get("http_route"))
            else {
                continue;
            };
            let key = (service.to_owned(), route.to_owned());
            match (sample.metric.as_str(), &sample.value) {
                (CALLS, Value::Counter(calls)) => {
                    let counts = metrics.routes.entry(key).or_default();
                    counts.calls += calls;
                    if labels.get("status_code") == Some(ERROR) {
                        counts.errors += calls;
                    }
                }
                (DURATION_MS, Value::Histogram(buckets)) => {
                    let counts = metrics.routes.entry(key).or_default();
                    for bucket in buckets {
                        add_bucket(&mut counts.buckets, bucket.less_than, bucket.count);
                    }
                }
                _ => {}
            }
        }
        Ok(metrics)
    }

    /// What changed since `before`. A count that went down (the collector
    /// restarted, its series start again) counts from zero.
    pub fn since(&self, before: &Self) -> Self {
        let routes = self
            .routes
            .iter()
            .map(|(key, now)| {
                let then = before.routes.get(key).cloned().unwrap_or_default();
                let calls = delta(now.calls, then.calls);
                let restarted = now.calls < then.calls;
                let buckets = now
                    .buckets
                    .iter()
                    .map(|&(upper, count)| {
                        let old = then
                            .buckets
                            .iter()
                            .find(|(bound, _)| *bound == upper)
                            .map_or(0.0, |(_, count)| *count);
                        (upper, if restarted { count } else { delta(count, old) })
                    })
                    .collect();
                let errors = if restarted {
                    now.errors
                } else {
                    delta(now.errors, then.errors)
                };
                let counts = RouteCounts {
                    calls,
                    errors,
                    buckets,
                };
                (key.clone(), counts)
            })
            .collect();
        Self { routes }
    }

    pub fn route(&self, service: &str, route: &str) -> Option<&RouteCounts> {
        self.routes.get(&(service.to_owned(), route.to_owned()))
    }
}

/// Adds `count` to the bucket bounded by `upper`, keeping them sorted.
fn add_bucket(buckets: &mut Vec<(f64, f64)>, upper: f64, count: f64) {
    match buckets.iter_mut().find(|(bound, _)| *bound == upper) {
        Some((_, total)) => *total += count,
        None => {
            buckets.push((upper, count));
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
    }
}

/// RED of one endpoint over the run, as `verify` reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointRed {
    /// The request `verify` sent, e.g. `/chain?hops=2`.
    pub endpoint: String,
    /// Its route, the `http_route` label, e.g. `/chain`.
    pub route: String,
    pub service: String,
    pub calls: f64,
    pub errors: f64,
    /// Calls per second over the time between the two readings.
    pub rate_per_s: f64,
    /// Errors per call, from 0 to 1.
    pub error_rate: Option<f64>,
    pub p99_ms: Option<f64>,
}

impl EndpointRed {
    /// `endpoint`'s route is its path without the query.
    pub fn from_delta(
        delta: &SpanMetrics,
        service: &str,
        endpoint: &str,
        window: Duration,
    ) -> Self {
        let route = endpoint.split('?').next().unwrap_or(endpoint);
        let counts = delta.route(service, route).cloned().unwrap_or_default();
        let seconds = window.as_secs_f64();
        Self {
            endpoint: endpoint.to_owned(),
            route: route.to_owned(),
            service: service.to_owned(),
            calls: counts.calls,
            errors: counts.errors,
            rate_per_s: if seconds > 0.0 {
                counts.calls / seconds
            } else {
                0.0
            },
            error_rate: counts.error_ratio(),
            p99_ms: counts.quantile_ms(0.99),
        }
    }

    /// The metrics counted at least the `answered` requests, and the
    /// `failed` ones (5xx) among their errors.
    pub fn counted(&self, answered: usize, failed: usize) -> bool {
        self.calls >= answered as f64 && self.errors >= failed as f64
    }

    /// A row that passes when [`Self::counted`] holds.
    pub fn check(&self, answered: usize, failed: usize) -> Check {
        let expected = format!(">= {answered} calls, >= {failed} errors");
        let error_rate = self
            .error_rate
            .map_or_else(|| "-".to_owned(), |rate| format!("{:.0}%", rate * 100.0));
        let p99 = self
            .p99_ms
            .map_or_else(|| "-".to_owned(), |p99| format!("{p99:.0} ms"));
        let seen = format!(
            "{} calls ({:.2}/s), {} errors ({error_rate}), p99 {p99}",
            self.calls, self.rate_per_s, self.errors
        );
        Check::judged(
            self.counted(answered, failed),
            format!("RED {} ({})", self.route, self.service),
            expected,
            seen,
        )
    }
}

impl Page for SpanMetrics {
    type ParseError = RedParseError;

    fn parse(text: &str) -> Result<Self, RedParseError> {
        Self::parse(text)
    }

    fn since(&self, before: &Self) -> Self {
        self.since(before)
    }
}

/// The RED section of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RedReport {
    /// Time between the two readings, the denominator of the rates.
    pub window_ms: u64,
    pub endpoints: Vec<EndpointRed>,
}

impl RedReport {
    /// A table of the endpoints, for the text report.
    pub fn render(&self) -> String {
        let mut out = format!(
            "\nRED per endpoint (SERVER spans, span metrics over {:.1}s):\n",
            self.window_ms as f64 / 1000.0
        );
        let header = [
            "endpoint",
            "service",
            "calls",
            "req/s",
            "errors",
            "error rate",
            "p99",
        ];
        let rows: Vec<[String; 7]> = self
            .endpoints
            .iter()
            .map(|red| {
                [
                    red.route.clone(),
                    red.service.clone(),
                    red.calls.to_string(),
                    format!("{:.2}", red.rate_per_s),
                    red.errors.to_string(),
                    red.error_rate
                        .map_or_else(|| "-".to_owned(), |rate| format!("{:.1}%", rate * 100.0)),
                    red.p99_ms
                        .map_or_else(|| "-".to_owned(), |p99| format!("{p99:.1} ms")),
                ]
            })
            .collect();
        let widths: Vec<usize> = (0..header.len())
            .map(|column| {
                rows.iter()
                    .map(|row| row[column].chars().count())
                    .chain([header[column].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let header = header.map(str::to_owned);
        for row in std::iter::once(&header).chain(&rows) {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            out.push_str("  ");
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
        out
    }
}
