//! What both Rust peers share: the address they listen on, the response of
//! `/somework`, and a graceful stop on SIGTERM, as somework does.

use axum::Json;
use serde_json::{Value, json};
use tokio::signal::unix::{SignalKind, signal};

/// `LISTEN_ADDR`, as somework reads it.
pub fn listen_addr() -> String {
    std::env::var("LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".to_owned())
}

/// `OTEL_SDK_DISABLED=true`, the specification's switch.
pub fn sdk_disabled() -> bool {
    std::env::var("OTEL_SDK_DISABLED").is_ok_and(|disabled| disabled == "true")
}

/// The body somework answers `/somework` with (`ERROR_RATE=0`, no sleep).
pub fn work_reply(trace_id: Option<String>, failed: bool) -> Json<Value> {
    Json(json!({
        "trace_id": trace_id,
        "slept_ms": 0,
        "error_work": if failed { "failed_and_handled" } else { "succeeded" },
    }))
}

/// Resolves on SIGTERM, which is how the benchmark stops every program.
pub async fn terminated() {
    match signal(SignalKind::terminate()) {
        Ok(mut sigterm) => {
            sigterm.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}
