//! Requests to the frontend, each with a `traceparent` that `verify`
//! generates, so it knows every trace id before any backend is asked.

use std::time::Duration;

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::{IdGenerator as _, RandomIdGenerator};
use serde_json::Value;

use super::check::Check;
use super::http::Get;
use crate::routes::catalog::{self, Spec};

/// The two services of the somework chart (`<fullname>-<component>`), which
/// are also their `service.name`.
pub const FRONTEND: &str = "somework-frontend";
pub const BACKEND: &str = "somework-backend";

/// What a request's trace must look like in a backend that stores spans.
#[derive(Debug)]
pub struct TraceShape {
    pub services: &'static [&'static str],
    pub server_spans: usize,
    pub span_names: &'static [&'static str],
    /// A span that must carry an error status.
    pub error_span: Option<&'static str>,
}

#[derive(Debug)]
pub struct Endpoint {
    pub path: &'static str,
    pub status: u16,
    /// An error event reaches Sentry (or Bugsink) for every request.
    pub reports_error: bool,
    pub shape: TraceShape,
}

impl Endpoint {
    /// The catalogue's example request of `spec`, with its status and trace
    /// shape, answered by `services`.
    const fn expecting(
        spec: &'static Spec,
        services: &'static [&'static str],
        reports_error: bool,
    ) -> Self {
        let Some(trace) = &spec.trace else {
            panic!("verify follows the traces of traced endpoints only")
        };
        Self {
            path: spec.example,
            status: spec.status.as_u16(),
            reports_error,
            shape: TraceShape {
                services,
                server_spans: trace.server_spans,
                span_names: trace.span_names,
                error_span: trace.error_span,
            },
        }
    }
}

pub const ENDPOINTS: [Endpoint; 3] = [
    Endpoint::expecting(&catalog::SOMEWORK, &[FRONTEND], false),
    Endpoint::expecting(&catalog::ERRORWORK, &[FRONTEND], true),
    Endpoint::expecting(&catalog::CHAIN, &[FRONTEND, BACKEND], false),
];

/// One request and what came back.
#[derive(Debug, Clone)]
pub struct Sent {
    pub endpoint: &'static Endpoint,
    pub trace_id: String,
    /// The span id in our `traceparent`: the parent of the trace's root span.
    pub parent_span_id: String,
    pub status: Option<u16>,
    /// The `trace_id` of the JSON reply: the service joined our trace.
    pub echoed_trace_id: Option<String>,
    pub error: Option<String>,
}

/// A fresh sampled W3C `traceparent`: `(trace id, parent span id, header)`.
pub fn traceparent() -> (TraceId, SpanId, String) {
    let ids = RandomIdGenerator::default();
    let (trace_id, span_id) = (ids.new_trace_id(), ids.new_span_id());
    (trace_id, span_id, format!("00-{trace_id}-{span_id}-01"))
}

/// Sends `requests` requests to each endpoint, one after another.
pub async fn send(frontend: &impl Get, requests: u32, timeout: Duration) -> Vec<Sent> {
    let mut sent = Vec::new();
    for endpoint in &ENDPOINTS {
        for _ in 0..requests {
            let (trace_id, span_id, header) = traceparent();
            let reply = frontend
                .get(endpoint.path, &[("traceparent", header.as_str())], timeout)
                .await;
            let (status, echoed_trace_id, error) = match reply {
                Ok(reply) => {
                    let echoed = serde_json::from_slice::<Value>(&reply.body)
                        .ok()
                        .and_then(|body| body["trace_id"].as_str().map(str::to_owned));
                    (Some(reply.status), echoed, None)
                }
                Err(error) => (None, None, Some(error.to_string())),
            };
            sent.push(Sent {
                endpoint,
                trace_id: trace_id.to_string(),
                parent_span_id: span_id.to_string(),
                status,
                echoed_trace_id,
                error,
            });
        }
    }
    sent
}

/// One row per endpoint: every request got the expected status and its
/// reply carried our trace id.
pub fn checks(sent: &[Sent]) -> Vec<Check> {
    ENDPOINTS
        .iter()
        .map(|endpoint| {
            let ours: Vec<&Sent> = sent
                .iter()
                .filter(|request| request.endpoint.path == endpoint.path)
                .collect();
            let good = ours
                .iter()
                .filter(|request| {
                    request.status == Some(endpoint.status)
                        && request.echoed_trace_id.as_deref() == Some(request.trace_id.as_str())
                })
                .count();
            let mut check = Check::judged(
                good == ours.len(),
                format!("GET {} (frontend)", endpoint.path),
                format!("{} x {} with our trace id", ours.len(), endpoint.status),
                format!("{good} of {} as expected", ours.len()),
            );
            for request in ours.iter().filter(|request| {
                request.status != Some(endpoint.status)
                    || request.echoed_trace_id.as_deref() != Some(request.trace_id.as_str())
            }) {
                check.details.push(match (&request.error, request.status) {
                    (Some(error), _) => error.clone(),
                    (None, status) => format!(
                        "trace {}: status {}, reply trace id {}",
                        request.trace_id,
                        status.map_or_else(|| "none".to_owned(), |s| s.to_string()),
                        request.echoed_trace_id.as_deref().unwrap_or("none")
                    ),
                });
            }
            check
        })
        .collect()
}
