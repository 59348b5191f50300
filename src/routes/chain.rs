//! `/chain?hops=N`: calls the next service over HTTP, N times in a row, so
//! one trace spans several services through W3C trace-context propagation.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::AppState;
use crate::error::AppError;
use crate::telemetry::current_trace_id;

/// The most hops one request may ask for; each hop holds a connection open.
pub const MAX_HOPS: u8 = 10;

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
