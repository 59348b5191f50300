//! The errors a request can end with, and their JSON form.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::downstream::DownstreamError;
use crate::telemetry::{Handled, capture_error, current_trace_id};
use crate::work::WorkError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Refused by a server limit.
    #[error("{reason}")]
    Rejected { status: StatusCode, reason: String },
    /// A failure with no detail to give the client, such as a handler panic.
    #[error("internal error")]
    Internal,
    #[error(transparent)]
    Work(#[from] WorkError),
    #[error(transparent)]
    Downstream(#[from] DownstreamError),
}

/// Every error response: `{"error": "...", "trace_id": "..."}`. The trace id
/// is `null` when tracing is off.
#[derive(Debug, Serialize)]
struct ErrorBody {
    error: String,
    trace_id: Option<String>,
}

impl AppError {
    fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AppError::Rejected { status, .. } => *status,
            AppError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            AppError::Work(_) => StatusCode::INTERNAL_SERVER_ERROR,
            AppError::Downstream(_) => StatusCode::BAD_GATEWAY,
        }
    }
}

impl IntoResponse for AppError {
    /// Runs inside the request's span context, so the trace id is the one of
    /// the request. Failures that end a request are reported to Sentry here,
    /// as unhandled errors, with the span they happened in.
    fn into_response(self) -> Response {
        match &self {
            AppError::Work(error) => capture_error(error, error.origin(), Handled::No),
            AppError::Downstream(error) => capture_error(error, error.origin(), Handled::No),
            AppError::BadRequest(_)
            | AppError::NotFound(_)
            | AppError::MethodNotAllowed
            | AppError::Rejected { .. }
            | AppError::Internal => {}
        }
        let body = ErrorBody {
            error: self.to_string(),
            trace_id: current_trace_id(),
        };
        (self.status(), Json(body)).into_response()
    }
}
