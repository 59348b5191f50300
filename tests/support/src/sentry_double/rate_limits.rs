//! The answers Sentry gives ingest when things go wrong, on a test's request:
//! a rate limit, kept up for its whole window as Relay keeps it, a server
//! error, or the `ProjectId` rejection of a deleted project.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An answer Sentry gives an ingest request when things go wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestFailure {
    /// 429 with `Retry-After: {seconds}` and Sentry's documented
    /// `X-Sentry-Rate-Limits: {seconds}:{categories}:{scope}` (categories
    /// `;`-separated, empty for all; scope `key`). The double answers every
    /// ingest request of the window so, counting down the seconds as it goes.
    RateLimited { seconds: u64, categories: String },
    /// 429 with `Retry-After: {seconds}` alone, as a proxy in front of Sentry
    /// or a Sentry-compatible server answers; it holds for every category.
    TooManyRequests { retry_after: u64 },
    /// A server error (e.g. 502 or 503 from an overloaded Relay), with Sentry's
    /// JSON `detail` body.
    ServerError(u16),
    /// 403 `event submission rejected with_reason: ProjectId`: the project of
    /// the URL is gone (deleted, or its key rotated).
    ProjectIdRejected,
}

/// What Relay says when it drops data for a quota or a rate limit.
const RATE_LIMITED_DETAIL: &str = "Sentry dropped data due to a quota or internal rate limit \
     being reached. This will not affect your application.";

/// The rate-limit categories of OTLP spans, OTLP logs and error events
/// (Relay's names, as the collector's exporter and the sentry crate map them).
pub(super) const TRACE_CATEGORY: &str = "transaction";
pub(super) const LOG_CATEGORY: &str = "log_item";
pub(super) const ERROR_CATEGORY: &str = "error";

/// A rate limit in force: until when, the categories it names, and whether
/// it is announced in `X-Sentry-Rate-Limits` or by `Retry-After` alone.
#[derive(Debug, Clone)]
struct RateLimit {
    until: Instant,
    categories: String,
    sentry_header: bool,
}

impl RateLimit {
    /// Relay's rule: an empty list limits every category.
    fn covers(&self, category: &str) -> bool {
        self.categories.is_empty() || self.categories.split(';').any(|c| c == category)
    }
}

/// The failures a test asked for, and the rate limit they put in force.
#[derive(Debug, Default)]
pub(super) struct Failures {
    /// For the next OTLP trace ingest requests that would be accepted, in order.
    pub(super) traces: VecDeque<IngestFailure>,
    /// For the next envelope requests that would be accepted, in order.
    pub(super) envelopes: VecDeque<IngestFailure>,
    rate_limit: Option<RateLimit>,
}

impl Failures {
    /// The failure answer for an ingest request of `category` that would be
    /// accepted: the rate limit in force for it, else the next queued failure
    /// of its endpoint (OTLP traces or envelopes; none for OTLP logs), else none.
    pub(super) fn answer(&mut self, category: &str) -> Option<Response> {
        let now = Instant::now();
        if let Some(limit) = self
            .rate_limit
            .as_ref()
            .filter(|limit| limit.until > now && limit.covers(category))
        {
            return Some(rate_limited(limit, now));
        }
        let queued = match category {
            TRACE_CATEGORY => &mut self.traces,
            ERROR_CATEGORY => &mut self.envelopes,
            _ => return None,
        };
        let (categories, seconds, sentry_header) = match queued.pop_front()? {
            IngestFailure::RateLimited {
                seconds,
                categories,
            } => (categories, seconds, true),
            IngestFailure::TooManyRequests { retry_after } => (String::new(), retry_after, false),
            IngestFailure::ServerError(status) => {
                return Some(detail_response(
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    "Internal Error",
                ));
            }
            IngestFailure::ProjectIdRejected => {
                return Some(detail_response(
                    StatusCode::FORBIDDEN,
                    "event submission rejected with_reason: ProjectId",
                ));
            }
        };
        let limit = RateLimit {
            until: now + Duration::from_secs(seconds),
            categories,
            sentry_header,
        };
        let response = rate_limited(&limit, now);
        self.rate_limit = Some(limit);
        Some(response)
    }
}

/// Sentry's error body: `{"detail": ...}`.
pub(super) fn detail_response(status: StatusCode, detail: &str) -> Response {
    (status, axum::Json(json!({ "detail": detail }))).into_response()
}

/// A 429 for `limit` with the time it has left, in whole seconds rounded up
/// as Relay rounds them.
fn rate_limited(limit: &RateLimit, now: Instant) -> Response {
    let remaining = limit.until - now;
    let seconds = remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0);
    let mut response = detail_response(StatusCode::TOO_MANY_REQUESTS, RATE_LIMITED_DETAIL);
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    if limit.sentry_header
        && let Ok(value) = HeaderValue::from_str(&format!("{seconds}:{}:key", limit.categories))
    {
        headers.insert("x-sentry-rate-limits", value);
    }
    response
}
