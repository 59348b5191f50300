//! `/chain?hops=N`: calls the next service over HTTP, N times in a row, so
//! one trace spans several services through W3C trace-context propagation.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt as _, Tracer as _};
use opentelemetry::{Context, KeyValue, global};
use opentelemetry_semantic_conventions::attribute::{
    ERROR_TYPE, HTTP_REQUEST_METHOD, HTTP_RESPONSE_STATUS_CODE, SERVER_ADDRESS, SERVER_PORT,
    URL_FULL,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use super::AppState;
use crate::error::AppError;
use crate::telemetry::http::inject_context;
use crate::telemetry::{ErrorOrigin, TRACER_NAME, current_trace_id};

/// The most hops one request may ask for; each hop holds a connection open.
pub const MAX_HOPS: u8 = 10;
/// How long one hop may take, including all hops behind it.
const DOWNSTREAM_TIMEOUT: Duration = Duration::from_secs(10);

/// The query of `/chain`.
#[derive(Debug, Deserialize)]
pub struct ChainParams {
    hops: Option<u8>,
}

impl ChainParams {
    /// The requested hop count, if it is within `0..=MAX_HOPS` (default 1).
    pub fn hops(&self) -> Option<u8> {
        let hops = self.hops.unwrap_or(1);
        (hops <= MAX_HOPS).then_some(hops)
    }
}

#[derive(Debug, Serialize)]
pub struct ChainReply {
    trace_id: Option<String>,
    service: String,
    hops: u8,
    /// The next service's reply, absent on the last hop.
    #[serde(skip_serializing_if = "Option::is_none")]
    downstream: Option<Value>,
}

pub async fn chain(
    State(state): State<AppState>,
    params: Result<Query<ChainParams>, QueryRejection>,
) -> Result<Json<ChainReply>, AppError> {
    let invalid =
        || AppError::BadRequest(format!("hops must be a whole number from 0 to {MAX_HOPS}"));
    let Query(params) = params.map_err(|_| invalid())?;
    let hops = params.hops().ok_or_else(invalid)?;
    let downstream = match hops.checked_sub(1) {
        Some(remaining) => Some(state.downstream.chain(remaining).await?),
        None => None,
    };
    Ok(Json(ChainReply {
        trace_id: current_trace_id(),
        service: state.service_name.to_string(),
        hops,
        downstream,
    }))
}

/// A failed call to the next service.
#[derive(Debug, thiserror::Error)]
pub enum DownstreamError {
    #[error("request to downstream {url} failed: {source}")]
    Request {
        url: Url,
        source: reqwest::Error,
        origin: ErrorOrigin,
    },
    #[error("downstream {url} answered {status}")]
    Status {
        url: Url,
        status: reqwest::StatusCode,
        origin: ErrorOrigin,
    },
}

impl DownstreamError {
    pub fn origin(&self) -> &ErrorOrigin {
        match self {
            DownstreamError::Request { origin, .. } | DownstreamError::Status { origin, .. } => {
                origin
            }
        }
    }
}

/// The HTTP client for the next hop.
#[derive(Debug, Clone)]
pub struct Downstream {
    client: reqwest::Client,
    base: Url,
}

impl Downstream {
    pub fn new(base: Url) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(DOWNSTREAM_TIMEOUT)
            .build()?;
        Ok(Self { client, base })
    }

    /// `GET {base}/chain?hops={hops}` inside a CLIENT span, with the span's
    /// context injected as `traceparent` so the next service continues the trace.
    pub async fn chain(&self, hops: u8) -> Result<Value, DownstreamError> {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().push("chain");
        }
        url.query_pairs_mut()
            .clear()
            .append_pair("hops", &hops.to_string());

        let tracer = global::tracer(TRACER_NAME);
        let mut attributes = vec![
            KeyValue::new(HTTP_REQUEST_METHOD, "GET"),
            KeyValue::new(URL_FULL, url.to_string()),
        ];
        if let Some(host) = url.host_str() {
            attributes.push(KeyValue::new(SERVER_ADDRESS, host.to_owned()));
        }
        if let Some(port) = url.port_or_known_default() {
            attributes.push(KeyValue::new(SERVER_PORT, i64::from(port)));
        }
        let span = tracer
            .span_builder("GET")
            .with_kind(SpanKind::Client)
            .with_attributes(attributes)
            .start(&tracer);
        let cx = Context::current_with_span(span);

        let result = self.call(url).with_context(cx.clone()).await;
        let span = cx.span();
        match &result {
            Ok(_) => {}
            Err(DownstreamError::Status { status, .. }) => {
                span.set_attribute(KeyValue::new(ERROR_TYPE, status.as_str().to_owned()));
                span.set_status(Status::error(""));
            }
            Err(DownstreamError::Request { source, .. }) => {
                let kind = if source.is_timeout() {
                    "timeout"
                } else {
                    "connect"
                };
                span.set_attribute(KeyValue::new(ERROR_TYPE, kind));
                span.set_status(Status::error(source.to_string()));
            }
        }
        span.end();
        result
    }

    /// Runs inside the CLIENT span's context.
    async fn call(&self, url: Url) -> Result<Value, DownstreamError> {
        let failed = |url: &Url, source| DownstreamError::Request {
            url: url.clone(),
            source,
            origin: ErrorOrigin::here(),
        };
        let mut request = self
            .client
            .get(url.clone())
            .build()
            .map_err(|source| failed(&url, source))?;
        inject_context(&Context::current(), request.headers_mut());
        let response = self
            .client
            .execute(request)
            .await
            .map_err(|source| failed(&url, source))?;
        let status = response.status();
        Context::current().span().set_attribute(KeyValue::new(
            HTTP_RESPONSE_STATUS_CODE,
            i64::from(status.as_u16()),
        ));
        if !status.is_success() {
            return Err(DownstreamError::Status {
                url,
                status,
                origin: ErrorOrigin::here(),
            });
        }
        response
            .json::<Value>()
            .await
            .map_err(|source| failed(&url, source))
    }
}
