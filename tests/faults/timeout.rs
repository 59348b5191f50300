//! The request timeout at its boundary, through the service's own layers
//! (`routes::with_limits`) with handlers of the test's: one that finishes
//! just inside the timeout, one that never finishes. Both run at once, so
//! the test takes the timeout once; it measures wall-clock time, hence this
//! serial suite.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use serde_json::Value;
use somework::routes::limits::REQUEST_TIMEOUT;
use somework::routes::{AppState, Readiness, routes, with_limits};
use somework_testkit::in_process::{UNCALLED_DOWNSTREAM, app_state};
use tower::ServiceExt as _;

use crate::helpers::serial;

/// How far from the timeout each side of the boundary is.
const MARGIN: Duration = Duration::from_millis(500);

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

#[tokio::test(flavor = "multi_thread")]
async fn a_request_that_outlasts_the_timeout_answers_503_json_at_the_timeout() {
    let _serial = serial().await;
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
