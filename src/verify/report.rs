//! The verdict: one row per check (a mark, what was expected, what was
//! seen), the trace ids to open, as a table for people or JSON for machines.

use std::fmt::Write as _;

use serde::Serialize;

use super::check::{Check, Outcome, TraceRef};
use super::metrics::CollectorMetrics;
use super::red::RedReport;

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub passed: bool,
    pub context: Option<String>,
    /// The Kubernetes API server (empty for a local run).
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
    /// Lines printed after the table: where a local run's traces and error are.
    #[serde(skip)]
    pub summary: Vec<String>,
}

impl Report {
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|check| check.failed())
    }

    /// The table, the traces to open, the summary, and the failures again
    /// as one line each.
    pub fn render(&self) -> String {
        let mut out = self.table();
        if let Some(red) = &self.red {
            out.push_str(&red.render());
        }
        out.push_str(&self.traces_to_open());
        if !self.summary.is_empty() {
            out.push('\n');
        }
        for line in &self.summary {
            let _ = writeln!(out, "{line}");
        }
        out.push_str(&self.verdict());
        out
    }

    /// One row per check, with the details of a failure under it.
    fn table(&self) -> String {
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
        let mut out = String::new();
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
        out
    }

    fn traces_to_open(&self) -> String {
        let mut out = String::new();
        if self.traces.is_empty() {
            return out;
        }
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
        out
    }

    fn verdict(&self) -> String {
        let mut out = String::from("\n");
        let failed: Vec<&Check> = self.failures().collect();
        if failed.is_empty() {
            let _ = writeln!(
                out,
                "verify: all {} checks passed in {:.1}s",
                self.checks.len(),
                self.elapsed_ms as f64 / 1000.0
            );
        }
        for check in failed {
            let _ = writeln!(out, "verify: FAIL {}: {}", check.name, check.seen);
        }
        out
    }
}
