//! Limits that keep one client, or a flood of them, from taking the service
//! down. Each rejection is a JSON error like every other.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::error::AppError;

/// Largest header section accepted, names and values together.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Largest request body accepted. No endpoint reads a body; this only bounds
/// what a client can make the server accept.
pub const MAX_BODY_BYTES: u64 = 16 * 1024;
/// Longest a request may take. `/chain` with 10 hops stays well inside it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Requests served at once; more get 503 at once instead of queueing.
pub const MAX_CONCURRENT_REQUESTS: usize = 512;

/// Rejects oversized headers (431) and declared bodies (413) before any
/// work is done.
pub async fn reject_oversized(request: Request, next: Next) -> Response {
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return AppError::Rejected {
            status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            reason: format!("request headers exceed {MAX_HEADER_BYTES} bytes"),
        }
        .into_response();
    }
    let declared_body = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if declared_body.is_some_and(|length| length > MAX_BODY_BYTES) {
        return AppError::Rejected {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            reason: format!("request body exceeds {MAX_BODY_BYTES} bytes"),
        }
        .into_response();
    }
    next.run(request).await
}

/// Sheds load beyond [`MAX_CONCURRENT_REQUESTS`] with a 503.
pub async fn limit_concurrency(
    State(permits): State<Arc<Semaphore>>,
    request: Request,
    next: Next,
) -> Response {
    match permits.try_acquire() {
        Ok(_permit) => next.run(request).await,
        Err(_) => AppError::Rejected {
            status: StatusCode::SERVICE_UNAVAILABLE,
            reason: "too many concurrent requests; retry later".to_owned(),
        }
        .into_response(),
    }
}

/// Ends a request that takes longer than [`REQUEST_TIMEOUT`] with a 503.
pub async fn time_out(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => AppError::Rejected {
            status: StatusCode::SERVICE_UNAVAILABLE,
            reason: format!("request did not finish within {REQUEST_TIMEOUT:?}"),
        }
        .into_response(),
    }
}

/// Turns a panic in a handler into a JSON 500; the sentry crate's panic
/// integration has already reported it.
pub fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    AppError::Internal.into_response()
}
