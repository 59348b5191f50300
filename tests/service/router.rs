//! The Router called in-process with `tower::ServiceExt::oneshot`, as axum's
//! `examples/testing` does: answers that need no socket, no process and no
//! exporter. What a request does to spans and logs is tested on the real
//! binary (`spans`, `bad_requests`).

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use serde_json::Value;
use somework::routes::catalog::Endpoint;
use somework::routes::limits::{MAX_BODY_BYTES, MAX_CONCURRENT_REQUESTS, MAX_HEADER_BYTES};
use somework::routes::{AppState, Readiness, router, routes, with_limits};
use somework_testkit::in_process::{UNCALLED_DOWNSTREAM, app_state};
use somework_testkit::net::Blackhole;
use tokio::net::TcpListener;
use tower::ServiceExt as _;

/// The router with no simulated sleep or failure. `/chain` calls go to a
/// port nobody listens on; the tests here never send one that far.
fn app(readiness: Readiness) -> Router {
    router(app_state(readiness, UNCALLED_DOWNSTREAM))
}

/// The service's routes and one of the test's, `/test`, behind the
/// service's own limits: for a handler that panics, which no route of the
/// service does on purpose. (The request timeout is tested the same way in
/// the `faults` suite, which measures time.)
fn app_with_test_route(handler: axum::routing::MethodRouter<AppState>) -> Router {
    with_limits(
        routes().route("/test", handler),
        app_state(Readiness::ready(), UNCALLED_DOWNSTREAM),
    )
}

/// Sends `request` through a fresh router; returns the status and JSON body.
async fn call(router: Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = router
        .oneshot(request)
        .await
        .expect("the router is infallible");
    let status = response.status();
    assert_eq!(
        response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.as_bytes()),
        Some(&b"application/json"[..]),
        "every answer is JSON"
    );
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("a readable body");
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {bytes:?}"));
    (status, body)
}

fn get_request(uri: &str) -> Request<Body> {
    Request::get(uri)
        .body(Body::empty())
        .expect("a valid request")
}

#[tokio::test]
async fn healthz_answers_ok() {
    let (status, body) = call(app(Readiness::ready()), get_request("/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn readyz_turns_503_once_shutdown_begins_while_healthz_stays_ok() {
    let readiness = Readiness::ready();
    let (status, body) = call(app(readiness.clone()), get_request("/readyz")).await;
    assert_eq!((status, &body["status"]), (StatusCode::OK, &"ready".into()));

    readiness.set_not_ready();
    let (status, body) = call(app(readiness.clone()), get_request("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "shutting down");
    let (status, _) = call(app(readiness), get_request("/healthz")).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "liveness does not depend on readiness"
    );
}

#[tokio::test]
async fn somework_answers_with_its_report() {
    let (status, body) = call(app(Readiness::ready()), get_request("/somework")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["error_work"], "succeeded");
    assert_eq!(body["slept_ms"], 0);
}

#[tokio::test]
async fn errorwork_answers_500_with_the_error() {
    let (status, body) = call(app(Readiness::ready()), get_request("/errorwork")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("ErrorWork failed")),
        "{body}"
    );
}

/// The router, with `/chain` calling a copy of it served on a loopback port,
/// as the deployed frontend calls the backend.
async fn app_with_a_next_hop() -> Router {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let next_hop = format!("http://{}", listener.local_addr().expect("its address"));
    let served = router(app_state(Readiness::ready(), &next_hop));
    tokio::spawn(async move { axum::serve(listener, served).await });
    router(app_state(Readiness::ready(), &next_hop))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_catalogued_example_answers_its_status_with_json() {
    let app = app_with_a_next_hop().await;
    for endpoint in Endpoint::ALL {
        let spec = endpoint.spec();
        let request = Request::builder()
            .method(spec.method.clone())
            .uri(spec.example)
            .body(Body::empty())
            .expect("a valid request");
        let (status, body) = call(app.clone(), request).await;
        assert_eq!(
            status, spec.status,
            "{} {}: {body}",
            spec.method, spec.example
        );
    }
}

/// (method, uri, expected status, a phrase the error must contain)
const REJECTED: &[(&str, &str, StatusCode, &str)] = &[
    ("GET", "/users/abc", StatusCode::BAD_REQUEST, "whole number"),
    ("GET", "/users/7", StatusCode::NOT_FOUND, "user 7 not found"),
    (
        "GET",
        "/chain?hops=11",
        StatusCode::BAD_REQUEST,
        "from 0 to 10",
    ),
    (
        "GET",
        "/no/such/route",
        StatusCode::NOT_FOUND,
        "no route for /no/such/route",
    ),
    (
        "POST",
        "/somework",
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed",
    ),
    (
        "POST",
        "/healthz",
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed",
    ),
];

#[tokio::test]
async fn rejected_requests_get_a_json_error() {
    for (method, uri, expected, phrase) in REJECTED {
        let request = Request::builder()
            .method(*method)
            .uri(*uri)
            .body(Body::empty())
            .expect("a valid request");
        let (status, body) = call(app(Readiness::ready()), request).await;
        assert_eq!(status, *expected, "{method} {uri}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| e.contains(phrase)),
            "{method} {uri}: {body}"
        );
    }
}

#[tokio::test]
async fn headers_are_limited_at_the_documented_size() {
    // The limit counts names and values together.
    let name = "x-padding";
    let at_limit = "x".repeat(MAX_HEADER_BYTES - name.len());
    let request = |value: &str| {
        Request::get("/healthz")
            .header(name, value)
            .body(Body::empty())
            .expect("a valid request")
    };
    let (status, _) = call(app(Readiness::ready()), request(&at_limit)).await;
    assert_eq!(status, StatusCode::OK, "{MAX_HEADER_BYTES} bytes pass");
    let (status, body) = call(app(Readiness::ready()), request(&format!("{at_limit}x"))).await;
    assert_eq!(
        status,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "{body}"
    );
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("headers exceed")),
        "{body}"
    );
}

#[tokio::test]
async fn declared_bodies_are_limited_at_the_documented_size() {
    let request = |length: usize| {
        Request::get("/healthz")
            .header(header::CONTENT_LENGTH, length)
            .body(Body::from(vec![b'x'; length]))
            .expect("a valid request")
    };
    let (status, _) = call(app(Readiness::ready()), request(MAX_BODY_BYTES)).await;
    assert_eq!(status, StatusCode::OK, "{MAX_BODY_BYTES} bytes pass");
    let (status, body) = call(app(Readiness::ready()), request(MAX_BODY_BYTES + 1)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("body exceeds")),
        "{body}"
    );
}

async fn panics() -> &'static str {
    panic!("a handler panicked on purpose")
}

#[tokio::test]
async fn a_handler_panic_answers_a_json_500() {
    let panicking = app_with_test_route(get(panics));
    let (status, body) = call(panicking, get_request("/test")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["error"], "internal error", "no panic message leaks");
}

#[tokio::test(flavor = "multi_thread")]
async fn beyond_the_concurrency_limit_requests_get_503_json_while_probes_answer() {
    // Each `/chain` call holds its permit while it waits on a downstream
    // that accepts the connection and never answers.
    let hung = Blackhole::start().await;
    let app = router(app_state(
        Readiness::ready(),
        &format!("http://{}", hung.addr()),
    ));
    let mut holding: Vec<_> = (0..MAX_CONCURRENT_REQUESTS)
        .map(|_| tokio::spawn(app.clone().oneshot(get_request("/chain?hops=1"))))
        .collect();
    let wait = Duration::from_secs(30);
    assert_eq!(
        hung.accepted(MAX_CONCURRENT_REQUESTS, wait).await,
        MAX_CONCURRENT_REQUESTS,
        "every request within the limit reached the downstream"
    );

    let (status, body) = call(app.clone(), get_request("/chain?hops=1")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("too many concurrent requests")),
        "{body}"
    );
    let (status, _) = call(app.clone(), get_request("/somework")).await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "the limit is shared"
    );
    for probe in ["/healthz", "/readyz"] {
        let (status, body) = call(app.clone(), get_request(probe)).await;
        assert_eq!(status, StatusCode::OK, "{probe} is exempt: {body}");
    }

    // One request ends: its permit goes to the next one.
    let ended = holding.pop().expect("one");
    ended.abort();
    assert!(ended.await.is_err_and(|e| e.is_cancelled()));
    let next = tokio::spawn(app.clone().oneshot(get_request("/chain?hops=1")));
    assert_eq!(
        hung.accepted(MAX_CONCURRENT_REQUESTS + 1, wait).await,
        MAX_CONCURRENT_REQUESTS + 1,
        "a freed permit is taken again"
    );
    for request in holding.into_iter().chain([next]) {
        request.abort();
    }
}
