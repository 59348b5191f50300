//! The verdict: one row per check (a mark, what was expected, what was
//! seen), the trace ids to open, as a table for people or JSON for machines.

use std::fmt::Write as _;

use serde::Serialize;

use super::metrics::CollectorMetrics;
use super::red::RedReport;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    /// Not run because a check it depends on failed.
    Skip,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub outcome: Outcome,
    pub expected: String,
    pub seen: String,
    /// Evidence for a failure: the last log lines, what to run next.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

impl Check {
    fn new(outcome: Outcome, name: String, expected: String, seen: String) -> Self {
        Self {
            name,
            outcome,
            expected,
            seen,
            details: Vec::new(),
        }
    }

    pub fn pass(name: String, expected: impl Into<String>, seen: String) -> Self {
        Self::new(Outcome::Pass, name, expected.into(), seen)
    }

    pub fn fail(name: String, expected: impl Into<String>, seen: String) -> Self {
        Self::new(Outcome::Fail, name, expected.into(), seen)
    }

    pub fn judged(passed: bool, name: String, expected: impl Into<String>, seen: String) -> Self {
        let outcome = if passed { Outcome::Pass } else { Outcome::Fail };
        Self::new(outcome, name, expected.into(), seen)
    }

    pub fn skip(name: String, expected: impl Into<String>, because: &str) -> Self {
        Self::new(
            Outcome::Skip,
            name,
            expected.into(),
            format!("skipped: {because}"),
        )
    }

    pub fn detail(mut self, line: String) -> Self {
        self.details.push(line);
        self
    }
}

/// A trace that `verify` started, and where to look at it.
#[derive(Debug, Clone, Serialize)]
pub struct TraceRef {
    pub request: String,
    pub trace_id: String,
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub open: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub passed: bool,
    pub context: Option<String>,
    pub api_server: String,
    pub elapsed_ms: u64,
    pub checks: Vec<Check>,
    pub traces: Vec<TraceRef>,
    /// The collector's counters over the run (deltas; queue sizes as read last).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collector: Option<CollectorMetrics>,
    /// Rate, errors and p99 per endpoint, from the collector's span metrics.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub red: Option<RedReport>,
    /// How to open the links in `traces`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<String>,
}

impl Report {
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks
            .iter()
            .filter(|check| check.outcome == Outcome::Fail)
    }

    /// The table, the failures again as one line each, the traces to open.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let header = ["", "check", "expected", "seen"];
        let rows: Vec<[&str; 4]> = self
            .checks
            .iter()
            .map(|check| {
                let mark = match check.outcome {
                    Outcome::Pass => "ok",
                    Outcome::Fail => "FAIL",
                    Outcome::Skip => "skip",
                };
                [mark, &check.name, &check.expected, &check.seen]
            })
            .collect();
        let width = |column: usize| {
            rows.iter()
                .chain([&header])
                .map(|row| row[column].chars().count())
                .max()
                .unwrap_or(0)
        };
        let (w0, w1, w2) = (width(0), width(1), width(2));
        let details = self.checks.iter().map(|check| check.details.as_slice());
        for (row, details) in [(header, &[][..])]
            .into_iter()
            .chain(rows.iter().copied().zip(details))
        {
            let _ = writeln!(
                out,
                "{:<w0$}  {:<w1$}  {:<w2$}  {}",
                row[0], row[1], row[2], row[3]
            );
            for detail in details {
                let _ = writeln!(out, "{:<w0$}    | {detail}", "");
            }
        }
        if let Some(red) = &self.red {
            out.push_str(&red.render());
        }
        if !self.traces.is_empty() {
            let _ = writeln!(out, "\ntraces sent (open them to look):");
            for trace in &self.traces {
                let status = trace
                    .status
                    .map_or_else(|| "no answer".to_owned(), |status| status.to_string());
                let _ = writeln!(out, "  {:<16} {}  {status}", trace.request, trace.trace_id);
                for link in &trace.open {
                    let _ = writeln!(out, "  {:<16} {link}", "");
                }
            }
            for hint in &self.hints {
                let _ = writeln!(out, "  ({hint})");
            }
        }
        let failed: Vec<&Check> = self.failures().collect();
        let _ = writeln!(out);
        if failed.is_empty() {
            let _ = writeln!(
                out,
                "verify: all {} checks passed in {:.1}s",
                self.checks.len(),
                self.elapsed_ms as f64 / 1000.0
            );
        } else {
            for check in &failed {
                let _ = writeln!(out, "verify: FAIL {}: {}", check.name, check.seen);
            }
        }
        out
    }
}
