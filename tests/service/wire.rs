//! What the service puts on the wire besides its answers: the trace context
//! it injects into `/chain` calls, the gRPC metadata it sends the collector,
//! and neither of them with `OTEL_SDK_DISABLED=true`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status;
use serde_json::json;
use somework_testkit::api::SomeworkApi as _;
use somework_testkit::otlp::Attr;
use tokio::task::JoinHandle;

use crate::helpers::{WAIT, spawn_app_with};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACESTATE: &str = "vendor=opaque,other=x";

/// The next hop of `/chain`, run by the test: records the headers of every
/// call and answers with `status`.
struct NextHop {
    url: String,
    received: Arc<Mutex<Vec<HeaderMap>>>,
    server: JoinHandle<()>,
}

impl NextHop {
    async fn start(status: StatusCode) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the next hop");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let received = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route(
                "/chain",
                get(
                    move |State(received): State<Arc<Mutex<Vec<HeaderMap>>>>,
                          headers: HeaderMap| async move {
                        received.lock().unwrap().push(headers);
                        (status, axum::Json(json!({ "hops": 0 })))
                    },
                ),
            )
            .with_state(received.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("the next hop");
        });
        Self {
            url,
            received,
            server,
        }
    }

    /// The headers of the one call received.
    fn only_call(&self) -> HeaderMap {
        let received = self.received.lock().unwrap();
        assert_eq!(received.len(), 1, "calls: {received:?}");
        received[0].clone()
    }
}

impl Drop for NextHop {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn chain_injects_traceparent_tracestate_and_baggage_into_the_next_call() {
    let next = NextHop::start(StatusCode::OK).await;
    let app = spawn_app_with(|s| s.env("DOWNSTREAM_URL", &next.url)).await;

    let reply = app
        .get_with_headers(
            "/chain?hops=1",
            &[
                ("traceparent", TRACEPARENT),
                ("tracestate", TRACESTATE),
                ("baggage", "tenant=acme,user.tier=gold"),
            ],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.trace_id(), TRACE_ID);
    let spans = app.spans_of(TRACE_ID, 2).await;
    let client = spans
        .iter()
        .find(|s| s.kind() == SpanKind::Client)
        .expect("a CLIENT span");

    let sent = next.only_call();
    assert_eq!(
        header(&sent, "traceparent"),
        Some(format!("00-{TRACE_ID}-{}-01", client.span_id()).as_str()),
        "the next hop continues the trace under the CLIENT span"
    );
    assert_eq!(header(&sent, "tracestate"), Some(TRACESTATE));
    let baggage: HashSet<&str> = header(&sent, "baggage")
        .expect("baggage is forwarded")
        .split(',')
        .map(str::trim)
        .collect();
    assert_eq!(
        baggage,
        HashSet::from(["tenant=acme", "user.tier=gold"]),
        "every baggage entry is forwarded"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_next_hop_gives_502_and_a_client_span_with_error_type() {
    let next = NextHop::start(StatusCode::INTERNAL_SERVER_ERROR).await;
    let app = spawn_app_with(|s| s.env("DOWNSTREAM_URL", &next.url)).await;

    let reply = app.get_chain(1).await;
    assert_eq!(reply.status, 502, "{}", reply.body);
    assert!(
        reply.error().contains("answered 500"),
        "the error names the next hop's answer: {}",
        reply.body
    );
    let spans = app.spans_of(&reply.trace_id(), 2).await;
    let client = spans
        .iter()
        .find(|s| s.kind() == SpanKind::Client)
        .expect("a CLIENT span");
    assert_eq!(client.attr("error.type").as_deref(), Some("500"));
    assert_eq!(
        client.attribute("http.response.status_code"),
        Some(Attr::Int(500))
    );
    assert_eq!(client.status_code(), status::StatusCode::Error);
    let server = spans
        .iter()
        .find(|s| s.kind() == SpanKind::Server)
        .expect("a SERVER span");
    assert_eq!(
        server.attribute("http.response.status_code"),
        Some(Attr::Int(502))
    );
    assert_eq!(server.status_code(), status::StatusCode::Error);
}

#[tokio::test(flavor = "multi_thread")]
async fn otlp_headers_reach_the_collector_as_grpc_metadata() {
    let app = spawn_app_with(|s| {
        s.env(
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x-tenant=acme,authorization=Bearer%20s3cret",
        )
    })
    .await;

    let reply = app.get_somework().await;
    app.spans_of(&reply.trace_id(), 4).await;
    let metadata = app.receiver.metadata();
    assert!(!metadata.is_empty(), "no export call recorded");
    for call in &metadata {
        assert_eq!(call.get("x-tenant").map(String::as_str), Some("acme"));
        assert_eq!(
            call.get("authorization").map(String::as_str),
            Some("Bearer s3cret"),
            "values are percent-decoded"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_sdk_disabled_requests_work_and_nothing_is_exported_or_propagated() {
    let next = NextHop::start(StatusCode::OK).await;
    let mut app = spawn_app_with(|s| {
        s.env("OTEL_SDK_DISABLED", "true")
            .env("DOWNSTREAM_URL", &next.url)
    })
    .await;
    app.service
        .wait_for_log(WAIT, |l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("OTEL_SDK_DISABLED=true"))
        })
        .await;

    let reply = app.get_somework().await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body["trace_id"].is_null(), "{}", reply.body);
    let reply = app
        .get_with_headers(
            "/chain?hops=1",
            &[("traceparent", TRACEPARENT), ("baggage", "tenant=acme")],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body["trace_id"].is_null(), "{}", reply.body);
    let sent = next.only_call();
    for name in ["traceparent", "tracestate", "baggage"] {
        assert_eq!(header(&sent, name), None, "{name} was injected: {sent:?}");
    }
    assert_eq!(app.get_errorwork().await.status, 500);

    // Shutdown flushes whatever was queued: after the exit, nothing more
    // can arrive.
    let (status, _) = app.terminate().await;
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(app.receiver.export_calls(), 0, "something was exported");
    assert_eq!(app.receiver.log_export_calls(), 0, "a log was exported");
}
