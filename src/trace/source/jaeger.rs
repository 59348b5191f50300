//! Jaeger's query API, `GET /api/traces/{id}`: the JSON that Jaeger's UI
//! reads (Jaeger v2 serves it as v1 did). Times are microseconds; kind,
//! status and scope are tags; events are logs whose `event` field is the name.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use super::SourceError;
use crate::trace::http::Endpoint;
use crate::trace::model::{Event, Span, SpanKind, Status, Trace};

#[derive(Debug, Deserialize)]
struct Answer {
    #[serde(default)]
    data: Vec<JaegerTrace>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JaegerTrace {
    #[serde(default)]
    spans: Vec<JaegerSpan>,
    #[serde(default)]
    processes: HashMap<String, Process>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Process {
    service_name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JaegerSpan {
    #[serde(rename = "traceID")]
    trace_id: String,
    #[serde(rename = "spanID")]
    span_id: String,
    operation_name: String,
    #[serde(default)]
    references: Vec<Reference>,
    /// Microseconds since the epoch.
    start_time: u64,
    /// Microseconds.
    duration: u64,
    #[serde(default)]
    tags: Vec<Tag>,
    #[serde(default)]
    logs: Vec<Log>,
    #[serde(rename = "processID", default)]
    process_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Reference {
    ref_type: String,
    #[serde(rename = "spanID")]
    span_id: String,
}

#[derive(Debug, Deserialize)]
struct Tag {
    key: String,
    value: Value,
}

#[derive(Debug, Deserialize)]
struct Log {
    timestamp: u64,
    #[serde(default)]
    fields: Vec<Tag>,
}

/// Asks Jaeger for `trace_id`; `None` when it does not know it (yet).
pub async fn fetch(jaeger: &Endpoint, trace_id: &str) -> Result<Option<Trace>, SourceError> {
    let path = format!("/api/traces/{trace_id}");
    let reply = jaeger.get(&path, &[]).await.map_err(SourceError::Http)?;
    match reply.status {
        200 => {}
        404 => return Ok(None),
        status => {
            return Err(SourceError::Http(format!(
                "Jaeger at {} answered {status} to GET {path}: {}",
                jaeger.describe(),
                String::from_utf8_lossy(&reply.body)
            )));
        }
    }
    parse(&reply.body, trace_id).map_err(|reason| SourceError::Parse {
        origin: format!("Jaeger's answer to GET {path}"),
        reason,
    })
}

/// The spans of `trace_id` in an answer of `/api/traces/{id}`.
pub fn parse(body: &[u8], trace_id: &str) -> Result<Option<Trace>, String> {
    let answer: Answer = serde_json::from_slice(body).map_err(|error| error.to_string())?;
    let mut spans = Vec::new();
    for trace in answer.data {
        for span in trace.spans {
            // Jaeger drops the leading zeros of an id.
            if format!("{:0>32}", span.trace_id) != trace_id {
                continue;
            }
            let service = trace
                .processes
                .get(&span.process_id)
                .map_or_else(|| "unknown_service".to_owned(), |p| p.service_name.clone());
            spans.push(convert(span, service));
        }
    }
    Ok((!spans.is_empty()).then(|| Trace {
        trace_id: trace_id.to_owned(),
        spans,
    }))
}

fn convert(span: JaegerSpan, service: String) -> Span {
    let tag = |key: &str| {
        span.tags
            .iter()
            .find(|tag| tag.key == key)
            .map(|tag| &tag.value)
    };
    let kind = match tag("span.kind").and_then(Value::as_str) {
        Some("server") => SpanKind::Server,
        Some("client") => SpanKind::Client,
        Some("producer") => SpanKind::Producer,
        Some("consumer") => SpanKind::Consumer,
        Some("internal") => SpanKind::Internal,
        _ => SpanKind::Unspecified,
    };
    let message = tag("otel.status_description").map(text).unwrap_or_default();
    let status = match tag("otel.status_code").and_then(Value::as_str) {
        Some("ERROR") => Status::Error(message),
        Some("OK") => Status::Ok,
        _ if tag("error").is_some_and(|error| error == &Value::Bool(true)) => {
            Status::Error(message)
        }
        _ => Status::Unset,
    };
    let parent_span_id = span
        .references
        .iter()
        .find(|reference| reference.ref_type == "CHILD_OF")
        .or_else(|| span.references.first())
        .map(|reference| format!("{:0>16}", reference.span_id));
    let events = span
        .logs
        .iter()
        .map(|log| {
            let name = log
                .fields
                .iter()
                .find(|field| field.key == "event")
                .map(|field| text(&field.value))
                .unwrap_or_default();
            let attributes = log
                .fields
                .iter()
                .filter(|field| field.key != "event")
                .map(|field| (field.key.clone(), text(&field.value)))
                .collect();
            Event {
                name,
                time_unix_nano: log.timestamp.saturating_mul(1000),
                attributes,
            }
        })
        .collect();
    let start_unix_nano = span.start_time.saturating_mul(1000);
    Span {
        span_id: format!("{:0>16}", span.span_id),
        parent_span_id,
        service,
        name: span.operation_name,
        kind,
        start_unix_nano,
        end_unix_nano: start_unix_nano.saturating_add(span.duration.saturating_mul(1000)),
        status,
        events,
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}
