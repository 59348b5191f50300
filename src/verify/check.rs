//! The vocabulary every step speaks: one row of the verdict ([`Check`]) and
//! a trace that `verify` started ([`TraceRef`]). A leaf: it imports no step.

use serde::Serialize;

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

    pub fn failed(&self) -> bool {
        self.outcome == Outcome::Fail
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
