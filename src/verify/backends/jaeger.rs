//! Jaeger's HTTP API (`/api/traces/{id}`): each trace `verify` started is
//! there as one tree with the SERVER spans, services and span names of its
//! endpoint.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::Value;
use tokio::time::Instant;

use super::{POLL_INTERVAL, REQUEST_TIMEOUT};
use crate::verify::check::Check;
use crate::verify::http::{Get, GetError};
use crate::verify::traffic::{ENDPOINTS, Endpoint, Sent, TraceShape};

/// Why a trace is not (yet) what its endpoint makes.
#[derive(Debug, thiserror::Error)]
pub enum TraceProblem {
    #[error("not in Jaeger")]
    NotFound,
    #[error("Jaeger answered {0}")]
    Status(u16),
    #[error("Jaeger answered no JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Get(#[from] GetError),
    #[error("no spans")]
    NoSpans,
    #[error("a span has trace id {0}")]
    ForeignSpan(Value),
    #[error("root span {name:?} has parent {parent:?}, not our traceparent's {ours}")]
    WrongParent {
        name: String,
        parent: Option<String>,
        ours: String,
    },
    #[error(
        "{} spans without a parent in the trace ({}): the tree is broken or incomplete",
        .0.len(),
        .0.join(", ")
    )]
    NotOneTree(Vec<String>),
    #[error("services {seen:?}, expected {expected:?}")]
    Services {
        seen: BTreeSet<String>,
        expected: BTreeSet<String>,
    },
    #[error("{seen} SERVER spans, expected {expected}")]
    ServerSpans { seen: usize, expected: usize },
    #[error("no span named {missing:?} (spans: {names:?})")]
    MissingSpan {
        missing: String,
        names: BTreeSet<String>,
    },
    #[error("span {0:?} has no error status")]
    NoErrorStatus(String),
}

/// Looks every trace up in Jaeger until each has its full shape or
/// `deadline` passes; one row per endpoint.
pub async fn check_jaeger(jaeger: &impl Get, sent: &[Sent], deadline: Instant) -> Vec<Check> {
    let mut verdicts: HashMap<&str, Result<(), TraceProblem>> = HashMap::new();
    loop {
        for request in sent {
            if matches!(verdicts.get(request.trace_id.as_str()), Some(Ok(()))) {
                continue;
            }
            verdicts.insert(&request.trace_id, look_up(jaeger, request).await);
        }
        let done = verdicts.values().all(Result::is_ok);
        if done || Instant::now() + POLL_INTERVAL >= deadline {
            break;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    ENDPOINTS
        .iter()
        .map(|endpoint| endpoint_check(endpoint, sent, &verdicts))
        .collect()
}

async fn look_up(jaeger: &impl Get, request: &Sent) -> Result<(), TraceProblem> {
    let path = format!("/api/traces/{}", request.trace_id);
    let reply = jaeger.get(&path, &[], REQUEST_TIMEOUT).await?;
    match reply.status {
        200 => {
            let body: Value = serde_json::from_slice(&reply.body)?;
            judge_trace(&body, request, &request.endpoint.shape)
        }
        404 => Err(TraceProblem::NotFound),
        status => Err(TraceProblem::Status(status)),
    }
}

fn endpoint_check(
    endpoint: &Endpoint,
    sent: &[Sent],
    verdicts: &HashMap<&str, Result<(), TraceProblem>>,
) -> Check {
    let ours: Vec<&Sent> = sent
        .iter()
        .filter(|request| request.endpoint.path == endpoint.path)
        .collect();
    let complete = ours
        .iter()
        .filter(|request| matches!(verdicts.get(request.trace_id.as_str()), Some(Ok(()))))
        .count();
    let shape = &endpoint.shape;
    let mut check = Check::judged(
        complete == ours.len(),
        format!("Jaeger: traces of {}", endpoint.path),
        format!(
            "{} traces, one tree each, {} SERVER span(s), services {}",
            ours.len(),
            shape.server_spans,
            shape.services.join("+")
        ),
        format!("{complete} of {} complete", ours.len()),
    );
    for request in &ours {
        if let Some(Err(problem)) = verdicts.get(request.trace_id.as_str()) {
            check
                .details
                .push(format!("trace {}: {problem}", request.trace_id));
        }
    }
    check
}

/// What a trace holds, gathered from its spans.
#[derive(Default)]
struct Gathered<'a> {
    /// Spans whose parent is not in the trace: name and parent span id.
    roots: Vec<(&'a str, Option<&'a str>)>,
    services: BTreeSet<String>,
    names: BTreeSet<String>,
    server_spans: usize,
}

/// Checks a Jaeger `/api/traces/{id}` answer against the expected shape:
/// one tree whose root is the child of our `traceparent`'s span, the SERVER
/// spans, services and span names of the endpoint.
pub fn judge_trace(body: &Value, request: &Sent, shape: &TraceShape) -> Result<(), TraceProblem> {
    let trace = &body["data"][0];
    let spans = trace["spans"]
        .as_array()
        .filter(|spans| !spans.is_empty())
        .ok_or(TraceProblem::NoSpans)?;
    let gathered = gather(spans, &trace["processes"], &request.trace_id)?;
    judge_root(&gathered.roots, &request.parent_span_id)?;
    judge_shape(&gathered, spans, shape)
}

fn gather<'a>(
    spans: &'a [Value],
    processes: &'a Value,
    trace_id: &str,
) -> Result<Gathered<'a>, TraceProblem> {
    let ids: HashSet<&str> = spans.iter().filter_map(|s| s["spanID"].as_str()).collect();
    let mut gathered = Gathered::default();
    for span in spans {
        if span["traceID"].as_str() != Some(trace_id) {
            return Err(TraceProblem::ForeignSpan(span["traceID"].clone()));
        }
        let name = span["operationName"].as_str().unwrap_or("");
        let parent = span["references"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|reference| reference["refType"] == "CHILD_OF")
            .and_then(|reference| reference["spanID"].as_str());
        if !parent.is_some_and(|parent| ids.contains(parent)) {
            gathered.roots.push((name, parent));
        }
        let process = span["processID"].as_str().unwrap_or("");
        if let Some(service) = processes[process]["serviceName"].as_str() {
            gathered.services.insert(service.to_owned());
        }
        gathered.names.insert(name.to_owned());
        if tag(span, "span.kind") == Some("server") {
            gathered.server_spans += 1;
        }
    }
    Ok(gathered)
}

/// One root, and its parent is the span of our `traceparent`.
fn judge_root(roots: &[(&str, Option<&str>)], ours: &str) -> Result<(), TraceProblem> {
    match roots {
        [(_, Some(parent))] if *parent == ours => Ok(()),
        [(name, parent)] => Err(TraceProblem::WrongParent {
            name: (*name).to_owned(),
            parent: parent.map(str::to_owned),
            ours: ours.to_owned(),
        }),
        _ => Err(TraceProblem::NotOneTree(
            roots.iter().map(|(name, _)| (*name).to_owned()).collect(),
        )),
    }
}

fn judge_shape(
    gathered: &Gathered<'_>,
    spans: &[Value],
    shape: &TraceShape,
) -> Result<(), TraceProblem> {
    let expected: BTreeSet<String> = shape.services.iter().map(|s| (*s).to_owned()).collect();
    if gathered.services != expected {
        return Err(TraceProblem::Services {
            seen: gathered.services.clone(),
            expected,
        });
    }
    if gathered.server_spans != shape.server_spans {
        return Err(TraceProblem::ServerSpans {
            seen: gathered.server_spans,
            expected: shape.server_spans,
        });
    }
    if let Some(missing) = shape
        .span_names
        .iter()
        .find(|name| !gathered.names.contains(**name))
    {
        return Err(TraceProblem::MissingSpan {
            missing: (*missing).to_owned(),
            names: gathered.names.clone(),
        });
    }
    if let Some(error_span) = shape.error_span {
        let has_error = spans.iter().any(|span| {
            span["operationName"] == error_span && tag(span, "otel.status_code") == Some("ERROR")
        });
        if !has_error {
            return Err(TraceProblem::NoErrorStatus(error_span.to_owned()));
        }
    }
    Ok(())
}

fn tag<'a>(span: &'a Value, key: &str) -> Option<&'a str> {
    span["tags"]
        .as_array()?
        .iter()
        .find(|tag| tag["key"] == key)
        .and_then(|tag| tag["value"].as_str())
}
