//! The request timeout at its boundary, through the service's own layers
//! (`routes::with_limits`) with handlers of the test's: one that finishes
//! just inside the timeout, one that never finishes. The router is called
//! in-process on paused time: Tokio's clock jumps to each timer when every
//! task waits, so the 15 s pass in no time and measure exactly, and the test
//! needs no share of the machine to itself.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use serde_json::Value;
use somework::routes::limits::REQUEST_TIMEOUT;
use somework::routes::{AppState, Readiness, routes, with_limits};
use somework_testkit::in_process::{UNCALLED_DOWNSTREAM, app_state};
use tokio::time::Instant;
use tower::ServiceExt as _;

/// How far from the timeout each side of the boundary is: Tokio's timers
/// tick in milliseconds.
const MARGIN: Duration = Duration::from_millis(10);

async fn call(app: axum::Router) -> (StatusCode, Value, Duration) {
    let started = Instant::now();
    let request = Request::get("/test")
        .body(Body::empty())
        .expect("a request");
    let response = app
        .oneshot(request)
        .await
        .expect("the router is infallible");
    let took = started.elapsed();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("a body");
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {bytes:?}"));
    (status, body, took)
}

fn app_with_test_route(handler: axum::routing::MethodRouter<AppState>) -> axum::Router {
    with_limits(
        routes().route("/test", handler),
        app_state(Readiness::ready(), UNCALLED_DOWNSTREAM),
    )
}

#[tokio::test(start_paused = true)]
async fn a_request_that_outlasts_the_timeout_answers_503_json_at_the_timeout() {
    let inside = REQUEST_TIMEOUT - MARGIN;
    let slow = app_with_test_route(get(move || async move {
        tokio::time::sleep(inside).await;
        axum::Json(serde_json::json!({ "slept": true }))
    }));
    let hung = app_with_test_route(get(std::future::pending::<()>));

    let ((slow_status, slow_body, _), (status, body, took)) = tokio::join!(call(slow), call(hung));
    assert_eq!(
        slow_status,
        StatusCode::OK,
        "just inside the timeout: {slow_body}"
    );
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("did not finish within 15s")),
        "{body}"
    );
    assert!(
        took >= REQUEST_TIMEOUT && took < REQUEST_TIMEOUT + MARGIN,
        "cut after {took:?}, not at the {REQUEST_TIMEOUT:?} timeout"
    );
}
