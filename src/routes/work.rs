//! The endpoints of the Go + Sentry article's example (see the README's
//! "Where it comes from"): `/somework`, `/errorwork`, `/users/{id}`.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use opentelemetry::KeyValue;
use opentelemetry_semantic_conventions::attribute::USER_ID;
use serde::Serialize;

use super::AppState;
use crate::error::AppError;
use crate::telemetry::{current_trace_id, in_span};
use crate::work::{Failure, WorkReport};

/// The one user the demo knows, as in the Go + Sentry article's example.
const DEMO_USER_ID: u64 = 123;

#[derive(Debug, Serialize)]
pub struct WorkReply {
    trace_id: Option<String>,
    #[serde(flatten)]
    report: WorkReport,
}

#[derive(Debug, Serialize)]
pub struct UserReply {
    id: u64,
    name: &'static str,
    trace_id: Option<String>,
    #[serde(flatten)]
    report: WorkReport,
}

/// ErrorWork fails with probability `ERROR_RATE`; the request succeeds anyway.
pub async fn somework(State(state): State<AppState>) -> Result<Json<WorkReply>, AppError> {
    let report = state.work.somework(state.work.handled_failure()).await?;
    Ok(Json(WorkReply {
        trace_id: current_trace_id(),
        report,
    }))
}

/// ErrorWork always fails and the failure ends the request with a 500.
pub async fn errorwork(State(state): State<AppState>) -> Result<Json<WorkReply>, AppError> {
    let report = state.work.somework(Failure::Unhandled).await?;
    Ok(Json(WorkReply {
        trace_id: current_trace_id(),
        report,
    }))
}

/// Looks a user up in a `getUser` span; the demo user runs MiddleWork.
pub async fn user(
    State(state): State<AppState>,
    id: Result<Path<u64>, PathRejection>,
) -> Result<Json<UserReply>, AppError> {
    let Path(id) = id.map_err(|_| {
        AppError::BadRequest(format!(
            "user id must be a whole number from 0 to {}",
            u64::MAX
        ))
    })?;
    let attributes = || vec![KeyValue::new(USER_ID, id.to_string())];
    let found = in_span("getUser", attributes, async {
        if id != DEMO_USER_ID {
            return Ok(None);
        }
        state
            .work
            .middle_work(state.work.handled_failure())
            .await
            .map(Some)
    })
    .await?;
    let report = found.ok_or_else(|| AppError::NotFound(format!("user {id} not found")))?;
    Ok(Json(UserReply {
        id,
        name: "Demo User",
        trace_id: current_trace_id(),
        report,
    }))
}
