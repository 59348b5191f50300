//! The spans the real binary exports, received by an in-process OTLP receiver.

use std::time::Duration;

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use somework_testkit::api::SomeworkApi as _;
use somework_testkit::otlp::{Attr, names};

use crate::helpers::{WAIT, assert_child_of, one, spawn_app, spawn_app_with};

#[tokio::test(flavor = "multi_thread")]
async fn somework_exports_the_nested_span_tree_with_events() {
    let app = spawn_app_with(|s| s.env("WORK_SLEEP_MS", "20")).await;

    let reply = app.get_somework().await;
    assert_eq!(reply.status, 200);
    let body = &reply.body;
    assert_eq!(body["error_work"], "succeeded");
    let spans = app.spans_of(&reply.trace_id(), 4).await;

    assert_eq!(spans.len(), 4, "spans: {:?}", names(&spans));
    let server = one(&spans, "GET /somework");
    let somework = one(&spans, "somework");
    let middle = one(&spans, "MiddleWork");
    let error_work = one(&spans, "ErrorWork");
    assert_eq!(server.parent_span_id(), None, "the server span is the root");
    assert_child_of(somework, server);
    assert_child_of(middle, somework);
    assert_child_of(error_work, middle);

    assert_eq!(server.kind(), SpanKind::Server);
    for span in [somework, middle, error_work] {
        assert_eq!(span.kind(), SpanKind::Internal, "{}", span.name());
        assert_eq!(span.status_code(), StatusCode::Unset, "{}", span.name());
        assert_eq!(span.scope, "somework");
    }
    assert_eq!(
        middle.event_names(),
        ["started the sleep", "completed the sleep", "Out of Error!"]
    );
    // Typed: a number of milliseconds is exported as an integer, not a string.
    let slept = middle.event("started the sleep").expect("event")["sleep.duration_ms"].clone();
    assert_eq!(
        slept,
        Attr::Int(body["slept_ms"].as_i64().expect("slept_ms is a number")),
        "the event records the sleep as an integer"
    );
    assert_eq!(
        middle.event("Out of Error!").expect("event")["error_work.failed"],
        Attr::Bool(false)
    );
    assert!(error_work.event_names().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn server_span_follows_the_http_semantic_conventions() {
    let app = spawn_app().await;

    let reply = app.get_user("123").await;
    let spans = app.spans_of(&reply.trace_id(), 4).await;
    let server = one(&spans, "GET /users/{id}");
    assert_eq!(server.kind(), SpanKind::Server);
    assert_eq!(server.attr("http.request.method").as_deref(), Some("GET"));
    assert_eq!(server.attr("http.route").as_deref(), Some("/users/{id}"));
    assert_eq!(server.attr("url.path").as_deref(), Some("/users/123"));
    assert_eq!(server.attr("url.scheme").as_deref(), Some("http"));
    assert_eq!(
        server.attribute("http.response.status_code"),
        Some(Attr::Int(200))
    );
    assert_eq!(
        server.attr("network.protocol.version").as_deref(),
        Some("1.1")
    );
    assert_eq!(server.status_code(), StatusCode::Unset);

    let get_user = one(&spans, "getUser");
    assert_child_of(get_user, server);
    assert_eq!(get_user.attr("user.id").as_deref(), Some("123"));
    assert_child_of(one(&spans, "MiddleWork"), get_user);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handled_error_marks_error_work_only_and_the_request_succeeds() {
    let app = spawn_app_with(|s| s.env("ERROR_RATE", "1")).await;

    let reply = app.get_somework().await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["error_work"], "failed_and_handled");
    let spans = app.spans_of(&reply.trace_id(), 4).await;

    let error_work = one(&spans, "ErrorWork");
    assert_eq!(error_work.status_code(), StatusCode::Error);
    let exception = error_work.event("exception").expect("an exception event");
    assert_eq!(exception["exception.type"], "somework::work::WorkError");
    assert!(
        exception["exception.message"]
            .as_str()
            .is_some_and(|m| m.contains("ErrorWork failed"))
    );
    let middle = one(&spans, "MiddleWork");
    assert_eq!(
        middle.event("Out of Error!").expect("event")["error_work.failed"],
        Attr::Bool(true)
    );
    for name in ["MiddleWork", "somework", "GET /somework"] {
        assert_eq!(
            one(&spans, name).status_code(),
            StatusCode::Unset,
            "{name} recovered"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn errorwork_fails_the_request_and_marks_the_server_span() {
    let app = spawn_app().await;

    let reply = app.get_errorwork().await;
    assert_eq!(reply.status, 500);
    assert!(reply.error().contains("ErrorWork failed"));
    let spans = app.spans_of(&reply.trace_id(), 4).await;

    let error_work = one(&spans, "ErrorWork");
    assert_eq!(error_work.status_code(), StatusCode::Error);
    assert!(error_work.event("exception").is_some());
    let server = one(&spans, "GET /errorwork");
    assert_eq!(server.status_code(), StatusCode::Error);
    assert_eq!(
        server.attribute("http.response.status_code"),
        Some(Attr::Int(500))
    );
    assert_eq!(server.attr("error.type").as_deref(), Some("500"));
    // The error passed through the spans in between, without a second exception event.
    for name in ["MiddleWork", "somework"] {
        let span = one(&spans, name);
        assert_eq!(span.status_code(), StatusCode::Error, "{name}");
        assert!(span.event("exception").is_none(), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_incoming_traceparent_is_continued() {
    // A ratio of 0 would drop every root; the sampled parent must win.
    let app = spawn_app_with(|s| {
        s.env("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
            .env("OTEL_TRACES_SAMPLER_ARG", "0")
    })
    .await;

    let parent_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_span = "00f067aa0ba902b7";
    let traceparent = format!("00-{parent_trace}-{parent_span}-01");
    let reply = app
        .get_with_headers(
            "/somework",
            &[
                ("traceparent", &traceparent),
                ("tracestate", "vendor=value"),
            ],
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.trace_id(), parent_trace);

    let spans = app.spans_of(parent_trace, 4).await;
    let server = one(&spans, "GET /somework");
    assert_eq!(server.parent_span_id().as_deref(), Some(parent_span));
    assert_eq!(server.span.trace_state, "vendor=value");
}

#[tokio::test(flavor = "multi_thread")]
async fn chain_with_two_hops_is_one_trace_with_three_server_spans() {
    let app = spawn_app().await;

    let reply = app.get_chain(2).await;
    assert_eq!(reply.status, 200);
    let body = &reply.body;
    assert_eq!(body["downstream"]["downstream"]["hops"], 0);
    let trace = reply.trace_id();
    let spans = app.spans_of(&trace, 5).await;

    let servers: Vec<_> = spans
        .iter()
        .filter(|s| s.kind() == SpanKind::Server)
        .collect();
    let clients: Vec<_> = spans
        .iter()
        .filter(|s| s.kind() == SpanKind::Client)
        .collect();
    assert_eq!(servers.len(), 3, "spans: {:?}", names(&spans));
    assert_eq!(clients.len(), 2, "spans: {:?}", names(&spans));
    assert!(servers.iter().all(|s| s.name() == "GET /chain"));
    assert_eq!(body["downstream"]["trace_id"], trace.as_str());

    // root server -> client -> server -> client -> server
    let root = servers
        .iter()
        .find(|s| s.parent_span_id().is_none())
        .expect("a root");
    let mut current = *root;
    for hop in 0..2 {
        let client = clients
            .iter()
            .find(|c| c.parent_span_id().as_deref() == Some(current.span_id().as_str()))
            .unwrap_or_else(|| panic!("no client span under hop {hop}"));
        assert_eq!(client.name(), "GET");
        assert_eq!(client.attr("http.request.method").as_deref(), Some("GET"));
        assert_eq!(
            client.attribute("http.response.status_code"),
            Some(Attr::Int(200))
        );
        assert_eq!(
            client.attribute("server.port"),
            Some(Attr::Int(i64::from(app.service.addr().port())))
        );
        let next = servers
            .iter()
            .find(|s| s.parent_span_id().as_deref() == Some(client.span_id().as_str()))
            .unwrap_or_else(|| panic!("no server span under client {hop}"));
        assert_eq!(next.attr("url.path").as_deref(), Some("/chain"),);
        current = *next;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn resource_comes_from_the_environment() {
    let app = spawn_app_with(|s| {
        s.env("OTEL_SERVICE_NAME", "somework-frontend").env(
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.name=ignored,k8s.namespace.name=demo,deployment.environment.name=ci%20run",
        )
    })
    .await;

    let reply = app.get_somework().await;
    let spans = app.spans_of(&reply.trace_id(), 4).await;
    let resource = &spans[0].resource;
    assert_eq!(
        resource["service.name"], "somework-frontend",
        "OTEL_SERVICE_NAME wins"
    );
    assert_eq!(resource["service.version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(resource["k8s.namespace.name"], "demo");
    assert_eq!(
        resource["deployment.environment.name"], "ci run",
        "values are percent-decoded"
    );
    assert_eq!(resource["telemetry.sdk.language"], "rust");
}

#[tokio::test(flavor = "multi_thread")]
async fn probes_are_not_traced_but_unknown_routes_and_methods_are() {
    let app = spawn_app().await;

    assert_eq!(app.get_healthz().await.status, 200);
    assert_eq!(app.get_readyz().await.status, 200);
    let not_found = app.get("/no/such/path").await;
    assert_eq!(not_found.status, 404);
    let not_allowed = app
        .send(app.request(reqwest::Method::POST, "/somework"))
        .await;
    assert_eq!(not_allowed.status, 405);

    let answered = [not_found.trace_id(), not_allowed.trace_id()];
    let spans = app
        .spans_until(|spans| {
            answered
                .iter()
                .all(|trace| spans.iter().any(|s| &s.trace_id() == trace))
        })
        .await;
    let not_found_span = spans
        .iter()
        .find(|s| s.trace_id() == not_found.trace_id())
        .expect("404 span");
    assert_eq!(
        not_found_span.name(),
        "GET",
        "no route, so no route in the name"
    );
    assert_eq!(not_found_span.attr("http.route"), None);
    assert_eq!(
        not_found_span.status_code(),
        StatusCode::Unset,
        "4xx is not a server error"
    );
    let not_allowed_span = spans
        .iter()
        .find(|s| s.trace_id() == not_allowed.trace_id())
        .expect("405 span");
    assert_eq!(
        not_allowed_span.attribute("http.response.status_code"),
        Some(Attr::Int(405))
    );

    // Spans are exported in the order they end, and the probes ended before
    // the 404 did: had a probe been traced, its span would be here already.
    let paths: Vec<_> = app
        .receiver
        .spans()
        .iter()
        .filter_map(|s| s.attr("url.path"))
        .collect();
    assert!(
        !paths.iter().any(|p| p == "/healthz" || p == "/readyz"),
        "probes were traced: {paths:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_flushes_spans_that_the_schedule_would_send_much_later() {
    let mut app = spawn_app_with(|s| s.env("OTEL_BSP_SCHEDULE_DELAY", "600000")).await;
    // The same requests to a service on the harness's 100 ms schedule: once
    // its spans arrived, an export of the first would have arrived too.
    let control = spawn_app().await;

    let mut trace_ids = Vec::new();
    let mut control_ids = Vec::new();
    for _ in 0..5 {
        trace_ids.push(app.get_somework().await.trace_id());
        control_ids.push(control.get_somework().await.trace_id());
    }
    control
        .spans_until(|spans| {
            control_ids
                .iter()
                .all(|id| spans.iter().filter(|s| &s.trace_id() == id).count() == 4)
        })
        .await;
    assert!(
        app.receiver.spans().is_empty(),
        "nothing is exported before the schedule or shutdown"
    );

    let (status, took) = app.terminate().await;
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(10), "shutdown took {took:?}");
    let spans = app.receiver.spans();
    for trace in &trace_ids {
        let count = spans.iter().filter(|s| &s.trace_id() == trace).count();
        assert_eq!(count, 4, "trace {trace} arrived incomplete");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn request_logs_carry_the_trace_id() {
    let app = spawn_app().await;

    let trace = app.get_somework().await.trace_id();
    let line = app
        .service
        .wait_for_log(WAIT, |l| {
            l["message"] == "request" && l["trace_id"] == trace.as_str()
        })
        .await;
    assert_eq!(line["status"], 200);
    assert_eq!(line["path"], "/somework");
}
