//! The other ways an error reaches Sentry, each stored by a real Bugsink: a
//! failing next hop of `/chain`, a handler panic, tracing switched off, and
//! an error made just before SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use sentry::SentryFutureExt as _;
use somework::routes::{Readiness, routes, with_limits};
use somework_testkit::api::SomeworkApi as _;
use somework_testkit::bugsink::Bugsink;
use somework_testkit::in_process::{UNCALLED_DOWNSTREAM, app_state};
use somework_testkit::net::closed_port;
use tower::ServiceExt as _;

use crate::helpers::{EVENT_WAIT, pretty, spawn_bugsink_app};

/// The message of the last exception of a stored event.
fn exception(event: &serde_json::Value) -> &serde_json::Value {
    event["data"]["exception"]["values"]
        .as_array()
        .and_then(|values| values.last())
        .unwrap_or_else(|| panic!("no exception in {event:#}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_next_hop_is_an_unhandled_error_linked_to_the_client_span() {
    let closed = closed_port();
    let Some(app) =
        spawn_bugsink_app(|s| s.env("DOWNSTREAM_URL", format!("http://{}", closed.addr()))).await
    else {
        return;
    };

    let reply = app.get_chain(1).await;
    assert_eq!(reply.status, 502, "{}", reply.body);
    let trace_id = reply.trace_id();
    let spans = app.receiver.trace(&trace_id, 2, EVENT_WAIT).await;
    let client = spans
        .iter()
        .find(|s| s.kind() == SpanKind::Client)
        .unwrap_or_else(|| panic!("no CLIENT span in {spans:#?}"));
    assert_eq!(client.attr("error.type").as_deref(), Some("connect"));

    let events = app.events(1).await;
    assert_eq!(events.len(), 1, "{}", pretty(&events));
    let event = app.event_of_trace(&events, &trace_id);
    let exception = exception(event);
    assert_eq!(exception["mechanism"]["handled"], false, "{exception:#}");
    assert!(
        exception["value"]
            .as_str()
            .is_some_and(|v| v.starts_with("request to downstream")),
        "{exception:#}"
    );
    assert_eq!(
        event["data"]["contexts"]["trace"]["span_id"],
        client.span_id(),
        "the event points at the CLIENT span: {event:#}"
    );
}

async fn panics() -> &'static str {
    panic!("a handler panicked on purpose")
}

#[tokio::test]
async fn a_handler_panic_answers_a_json_500_and_reaches_sentry() {
    let Some(bugsink) = Bugsink::start().await else {
        return;
    };
    // The sentry crate's default integrations, as `sentry::init` applies
    // them for the service, on a hub of this test's own: the panic
    // integration reports through the hub of the thread that panics.
    let mut options = sentry::ClientOptions::new();
    options.dsn = Some(bugsink.dsn().parse().expect("Bugsink's DSN"));
    let client = Arc::new(sentry::Client::from(sentry::apply_defaults(options)));
    let hub = Arc::new(sentry::Hub::new(
        Some(client.clone()),
        Arc::new(sentry::Scope::default()),
    ));
    // The service's layers with a route that panics, which the service
    // itself does not have.
    let app = with_limits(
        routes().route("/test", get(panics)),
        app_state(Readiness::ready(), UNCALLED_DOWNSTREAM),
    );

    let request = Request::get("/test")
        .body(Body::empty())
        .expect("a request");
    let response = app
        .oneshot(request)
        .bind_hub(hub)
        .await
        .expect("the router is infallible");
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("a body");
    let body: serde_json::Value = serde_json::from_slice(&bytes).expect("a JSON body");
    assert_eq!(body["error"], "internal error", "{body}");
    assert!(client.flush(Some(EVENT_WAIT)), "the event was not sent");

    let events = bugsink.wait_for_events(1, EVENT_WAIT).await;
    assert_eq!(events.len(), 1, "{}", pretty(&events));
    let exception = exception(&events[0]);
    assert_eq!(exception["mechanism"]["type"], "panic", "{exception:#}");
    assert_eq!(exception["value"], "a handler panicked on purpose");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_tracing_disabled_errors_still_reach_sentry() {
    let Some(app) = spawn_bugsink_app(|s| s.env("OTEL_SDK_DISABLED", "true")).await else {
        return;
    };

    let reply = app.get_errorwork().await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert!(reply.body["trace_id"].is_null(), "{}", reply.body);

    let events = app.events(1).await;
    assert_eq!(events.len(), 1, "{}", pretty(&events));
    let exception = exception(&events[0]);
    assert_eq!(exception["mechanism"]["handled"], false, "{exception:#}");
    assert_eq!(exception["type"], "WorkError", "{exception:#}");
    assert_eq!(
        exception["value"],
        "ErrorWork failed: the simulated dependency is unavailable"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_error_made_just_before_sigterm_is_delivered() {
    let Some(mut app) = spawn_bugsink_app(|s| s).await else {
        return;
    };

    let reply = app.get_errorwork().await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    let (status, took) = app.service.terminate(Duration::from_secs(15)).await;
    assert!(status.success(), "exit status {status:?} after {took:?}");

    let events = app.events(1).await;
    let event = app.event_of_trace(&events, &reply.trace_id());
    assert_eq!(exception(event)["type"], "WorkError", "{event:#}");
}
