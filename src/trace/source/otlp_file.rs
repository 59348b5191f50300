//! The collector's `file` exporter's output: one OTLP JSON
//! `ExportTraceServiceRequest` per line (the OTLP/JSON mapping: hex ids,
//! lowerCamelCase names, 64-bit numbers as strings, enums as numbers).

use std::fs::File;
use std::io::{BufRead as _, BufReader};
use std::path::Path;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{span, status};

use super::SourceError;
use crate::trace::model::{Event, Span, SpanKind, Status, Trace};

/// The spans of `trace_id` in the file at `path`; `None` when it holds none.
///
/// The exporter buffers its writes, so the last line may be cut short while
/// the collector runs: a last line without its newline that does not parse
/// is skipped, as still being written.
pub fn read(path: &Path, trace_id: &str) -> Result<Option<Trace>, SourceError> {
    let io_error = |source| SourceError::File {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io_error)?;
    let mut reader = BufReader::new(file);
    let mut spans = Vec::new();
    let mut line = String::new();
    let mut number = 0;
    loop {
        line.clear();
        if reader.read_line(&mut line).map_err(io_error)? == 0 {
            break;
        }
        number += 1;
        // A cheap filter: the hex trace id appears verbatim in each request
        // holding one of its spans, so most lines are never parsed.
        if !line.contains(trace_id) {
            continue;
        }
        let request: ExportTraceServiceRequest = match serde_json::from_str(&line) {
            Ok(request) => request,
            Err(_) if !line.ends_with('\n') => break,
            Err(error) => {
                return Err(SourceError::Parse {
                    origin: format!("{}:{number}", path.display()),
                    reason: error.to_string(),
                });
            }
        };
        collect(request, trace_id, &mut spans);
    }
    Ok((!spans.is_empty()).then(|| Trace {
        trace_id: trace_id.to_owned(),
        spans,
    }))
}

/// Adds the spans of `trace_id` in `request` to `spans`.
fn collect(request: ExportTraceServiceRequest, trace_id: &str, spans: &mut Vec<Span>) {
    for resource_spans in request.resource_spans {
        let attributes = resource_spans
            .resource
            .map(|resource| resource.attributes)
            .unwrap_or_default();
        let service = attributes
            .iter()
            .find(|attribute| attribute.key == "service.name")
            .and_then(|attribute| attribute.value.as_ref())
            .map_or_else(|| "unknown_service".to_owned(), display);
        let ours = resource_spans
            .scope_spans
            .into_iter()
            .flat_map(|scope| scope.spans)
            .filter(|span| hex(&span.trace_id) == trace_id);
        for span in ours {
            let status = match span.status {
                Some(status) if status.code == status::StatusCode::Error as i32 => {
                    Status::Error(status.message)
                }
                Some(status) if status.code == status::StatusCode::Ok as i32 => Status::Ok,
                _ => Status::Unset,
            };
            spans.push(Span {
                span_id: hex(&span.span_id),
                parent_span_id: (!span.parent_span_id.is_empty())
                    .then(|| hex(&span.parent_span_id)),
                service: service.clone(),
                name: span.name,
                kind: kind(span.kind),
                start_unix_nano: span.start_time_unix_nano,
                end_unix_nano: span.end_time_unix_nano,
                status,
                events: span
                    .events
                    .into_iter()
                    .map(|event| Event {
                        name: event.name,
                        time_unix_nano: event.time_unix_nano,
                        attributes: pairs(&event.attributes),
                    })
                    .collect(),
            });
        }
    }
}

fn kind(value: i32) -> SpanKind {
    match span::SpanKind::try_from(value) {
        Ok(span::SpanKind::Internal) => SpanKind::Internal,
        Ok(span::SpanKind::Server) => SpanKind::Server,
        Ok(span::SpanKind::Client) => SpanKind::Client,
        Ok(span::SpanKind::Producer) => SpanKind::Producer,
        Ok(span::SpanKind::Consumer) => SpanKind::Consumer,
        Ok(span::SpanKind::Unspecified) | Err(_) => SpanKind::Unspecified,
    }
}

fn pairs(attributes: &[KeyValue]) -> Vec<(String, String)> {
    attributes
        .iter()
        .map(|attribute| {
            let value = attribute.value.as_ref().map(display).unwrap_or_default();
            (attribute.key.clone(), value)
        })
        .collect()
}

/// An attribute value as text: strings as they are, the rest as JSON would
/// show them.
fn display(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(text)) => text.clone(),
        Some(any_value::Value::BoolValue(flag)) => flag.to_string(),
        Some(any_value::Value::IntValue(number)) => number.to_string(),
        Some(any_value::Value::DoubleValue(number)) => number.to_string(),
        Some(any_value::Value::ArrayValue(array)) => {
            let items: Vec<String> = array.values.iter().map(display).collect();
            format!("[{}]", items.join(", "))
        }
        Some(any_value::Value::KvlistValue(list)) => {
            let items: Vec<String> = pairs(&list.values)
                .into_iter()
                .map(|(key, value)| format!("{key}={value}"))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        Some(any_value::Value::BytesValue(bytes)) => hex(bytes),
        Some(any_value::Value::StringValueStrindex(_)) | None => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut text, byte| {
        let _ = write!(text, "{byte:02x}");
        text
    })
}
