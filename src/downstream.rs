//! The HTTP client for the next service of `/chain`, traced with a CLIENT
//! span per call.

use std::time::Duration;

use opentelemetry::context::FutureExt as _;
use reqwest::Method;
use serde_json::Value;
use url::Url;

use crate::telemetry::ErrorOrigin;
use crate::telemetry::http::ClientSpan;

/// How long one hop may take, including all hops behind it.
const DOWNSTREAM_TIMEOUT: Duration = Duration::from_secs(10);

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

        let span = ClientSpan::start(&Method::GET, &url);
        let result = self
            .get_json(&span, url)
            .with_context(span.context().clone())
            .await;
        match &result {
            Ok(_) => {}
            Err(DownstreamError::Status { status, .. }) => {
                span.record_failure(status.as_str(), "");
            }
            Err(DownstreamError::Request { source, .. }) => {
                let kind = if source.is_timeout() {
                    "timeout"
                } else {
                    "connect"
                };
                span.record_failure(kind, source.to_string());
            }
        }
        span.end();
        result
    }

    /// Runs inside the CLIENT span's context, so an error made here records
    /// that span as its origin.
    async fn get_json(&self, span: &ClientSpan, url: Url) -> Result<Value, DownstreamError> {
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
        span.inject(request.headers_mut());
        let response = self
            .client
            .execute(request)
            .await
            .map_err(|source| failed(&url, source))?;
        let status = response.status();
        span.record_status(status);
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
