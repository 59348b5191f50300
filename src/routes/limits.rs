//! Limits that keep one client, or a flood of them, from taking the service
//! down. tower and tower-http enforce them (see [`with_limits`]); this file
//! holds their values and turns each refusal into a JSON error like every
//! other.
//!
//! [`with_limits`]: super::with_limits

use std::time::Duration;

use axum::BoxError;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower::load_shed::error::Overloaded;
use tower::timeout::error::Elapsed;

use crate::error::AppError;

/// Largest header section accepted, names and values together.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Largest request body accepted. No endpoint reads a body; this only bounds
/// what a client can make the server accept.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Longest a request may take. `/chain` with 10 hops stays well inside it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Requests served at once; more get 503 at once instead of queueing.
pub const MAX_CONCURRENT_REQUESTS: usize = 512;

/// Rejects an oversized header section (431) before any work is done.
/// Written here because neither tower nor tower-http limits headers: hyper
/// bounds its read buffer, which is far larger and answers without a body.
pub async fn reject_large_headers(request: Request, next: Next) -> Response {
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
    next.run(request).await
}

/// Gives tower-http's `RequestBodyLimitLayer` refusal (a plain-text 413) the
/// service's JSON form. Under that layer a 413 can only mean the body passed
/// [`MAX_BODY_BYTES`]: by its declared length, or while a handler read it.
pub async fn explain_body_limit(response: Response) -> Response {
    if response.status() != StatusCode::PAYLOAD_TOO_LARGE {
        return response;
    }
    AppError::Rejected {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        reason: format!("request body exceeds {MAX_BODY_BYTES} bytes"),
    }
    .into_response()
}

/// The answer to a request that tower's middleware refused, matched by the
/// error's type: past [`REQUEST_TIMEOUT`] (tower's `Timeout`), or beyond
/// [`MAX_CONCURRENT_REQUESTS`] (`LoadShed` over the concurrency limit). Both
/// are 503s, so a client retries them.
pub async fn refused(error: BoxError) -> AppError {
    if error.is::<Elapsed>() {
        AppError::Rejected {
            status: StatusCode::SERVICE_UNAVAILABLE,
            reason: format!("request did not finish within {REQUEST_TIMEOUT:?}"),
        }
    } else if error.is::<Overloaded>() {
        AppError::Rejected {
            status: StatusCode::SERVICE_UNAVAILABLE,
            reason: "too many concurrent requests; retry later".to_owned(),
        }
    } else {
        // The layers above fail in no other way; were one added that does,
        // its error is logged rather than shown to the client.
        tracing::error!(%error, "a middleware refused the request");
        AppError::Internal
    }
}

/// Turns a panic in a handler into a JSON 500; the sentry crate's panic
/// integration has already reported it.
pub fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    AppError::Internal.into_response()
}
