//! One trace as `somework trace` draws it: spans with their service, kind,
//! times, status and events, and the tree they form, in the order a
//! waterfall shows them.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

/// The span kinds of OpenTelemetry, named as the specification and Jaeger do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpanKind {
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl SpanKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "",
            Self::Internal => "internal",
            Self::Server => "server",
            Self::Client => "client",
            Self::Producer => "producer",
            Self::Consumer => "consumer",
        }
    }

    /// A span that starts the work of a process for a remote caller: the
    /// one kind of root whose parent may rightly be outside the trace.
    fn is_entry(self) -> bool {
        matches!(self, Self::Server | Self::Consumer)
    }
}

/// A span's status, as OpenTelemetry sets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Unset,
    Ok,
    Error(String),
}

/// A span event, its time since the epoch in nanoseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub name: String,
    pub time_unix_nano: u64,
    /// `key=value` pairs in the order they were recorded.
    pub attributes: Vec<(String, String)>,
}

/// One span, times in nanoseconds since the epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub span_id: String,
    /// Absent for a root; may name a span that is not in the trace.
    pub parent_span_id: Option<String>,
    pub service: String,
    pub name: String,
    pub kind: SpanKind,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    pub status: Status,
    pub events: Vec<Event>,
}

impl Span {
    pub fn duration_nanos(&self) -> u64 {
        self.end_unix_nano.saturating_sub(self.start_unix_nano)
    }

    pub fn is_error(&self) -> bool {
        matches!(self.status, Status::Error(_))
    }
}

/// The spans of one trace, as a source returned them.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    pub spans: Vec<Span>,
}

/// One line of the waterfall: a span and where it sits in the tree.
#[derive(Debug, Clone)]
pub struct Row<'a> {
    pub span: &'a Span,
    pub depth: usize,
    /// Whether it is the last of its siblings (the tree's corner).
    pub last: bool,
    /// For each ancestor level between the top and this row's parent,
    /// whether a sibling still follows at that level (the tree's lines).
    pub guides: Vec<bool>,
}

/// The trace in waterfall order: every span below its parent, siblings by
/// start time, each subtree before the next sibling.
#[derive(Debug)]
pub struct Waterfall<'a> {
    pub trace: &'a Trace,
    pub rows: Vec<Row<'a>>,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    /// Spans whose parent is not in the trace, but that should have one
    /// there: the trace is incomplete (still arriving, or spans were lost).
    pub missing_parents: Vec<&'a Span>,
}

impl<'a> Waterfall<'a> {
    pub fn new(trace: &'a Trace) -> Self {
        let ids: HashSet<&str> = trace.spans.iter().map(|s| s.span_id.as_str()).collect();
        let mut children: HashMap<&str, Vec<&Span>> = HashMap::new();
        let mut roots = Vec::new();
        for span in &trace.spans {
            match span.parent_span_id.as_deref() {
                Some(parent) if ids.contains(parent) && parent != span.span_id => {
                    children.entry(parent).or_default().push(span);
                }
                _ => roots.push(span),
            }
        }
        let by_start = |a: &&Span, b: &&Span| {
            (a.start_unix_nano, a.end_unix_nano, &a.span_id).cmp(&(
                b.start_unix_nano,
                b.end_unix_nano,
                &b.span_id,
            ))
        };
        roots.sort_by(by_start);
        for siblings in children.values_mut() {
            siblings.sort_by(by_start);
        }
        // The first root (by start) may be a remote caller's child; every
        // other span without its parent here means the tree is not whole.
        let missing_parents = roots
            .iter()
            .enumerate()
            .filter(|(i, root)| *i > 0 || (root.parent_span_id.is_some() && !root.kind.is_entry()))
            .map(|(_, root)| *root)
            .collect();

        let mut rows = Vec::with_capacity(trace.spans.len());
        // Depth-first, iteratively: (span, depth, last, guides).
        let mut stack: Vec<(&Span, usize, bool, Vec<bool>)> = roots
            .iter()
            .rev()
            .enumerate()
            .map(|(i, root)| (*root, 0, i == 0, Vec::new()))
            .collect();
        while let Some((span, depth, last, guides)) = stack.pop() {
            let mut below = guides.clone();
            if depth > 0 {
                below.push(!last);
            }
            rows.push(Row {
                span,
                depth,
                last,
                guides,
            });
            if let Some(kids) = children.get(span.span_id.as_str()) {
                for (i, kid) in kids.iter().enumerate().rev() {
                    stack.push((kid, depth + 1, i + 1 == kids.len(), below.clone()));
                }
            }
        }
        let start_unix_nano = trace
            .spans
            .iter()
            .map(|s| s.start_unix_nano)
            .min()
            .unwrap_or(0);
        let end_unix_nano = trace
            .spans
            .iter()
            .map(|s| s.end_unix_nano.max(s.start_unix_nano))
            .max()
            .unwrap_or(start_unix_nano);
        Self {
            trace,
            rows,
            start_unix_nano,
            end_unix_nano,
            missing_parents,
        }
    }

    pub fn duration_nanos(&self) -> u64 {
        self.end_unix_nano - self.start_unix_nano
    }

    pub fn is_complete(&self) -> bool {
        self.missing_parents.is_empty()
    }

    /// The distinct services, in the order the waterfall first shows them.
    pub fn services(&self) -> Vec<&'a str> {
        let mut seen = Vec::new();
        for row in &self.rows {
            if !seen.contains(&row.span.service.as_str()) {
                seen.push(row.span.service.as_str());
            }
        }
        seen
    }

    /// The service of each row's parent, for showing a service only where
    /// it changes.
    pub fn parent_services(&self) -> Vec<Option<&'a str>> {
        let services: BTreeMap<&str, &str> = self
            .trace
            .spans
            .iter()
            .map(|s| (s.span_id.as_str(), s.service.as_str()))
            .collect();
        self.rows
            .iter()
            .map(|row| {
                let parent = row.span.parent_span_id.as_deref()?;
                services.get(parent).copied()
            })
            .collect()
    }
}
