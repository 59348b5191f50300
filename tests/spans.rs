//! The spans the real binary exports, received by an in-process OTLP receiver.

use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use serde_json::Value;
use somework_testkit::http::{get_json, trace_id};
use somework_testkit::otlp::{OtlpReceiver, ReceivedSpan};
use somework_testkit::service::{Service, ServiceBuilder};

const WAIT: Duration = Duration::from_secs(10);

async fn start(
    receiver: &OtlpReceiver,
    configure: impl FnOnce(ServiceBuilder) -> ServiceBuilder,
) -> Service {
    configure(
        ServiceBuilder::new(env!("CARGO_BIN_EXE_somework"))
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()),
    )
    .start()
    .await
}

async fn get(url: &str) -> (u16, Value) {
    get_json(url, &[]).await
}

fn one<'a>(spans: &'a [ReceivedSpan], name: &str) -> &'a ReceivedSpan {
    let matching: Vec<_> = spans.iter().filter(|s| s.name() == name).collect();
    assert_eq!(
        matching.len(),
        1,
        "expected one {name:?} span in {:#?}",
        names(spans)
    );
    matching[0]
}

fn names(spans: &[ReceivedSpan]) -> Vec<&str> {
    spans.iter().map(ReceivedSpan::name).collect()
}

fn assert_child_of(child: &ReceivedSpan, parent: &ReceivedSpan) {
    assert_eq!(
        child.parent_span_id().as_deref(),
        Some(parent.span_id().as_str()),
        "{} should be a child of {}",
        child.name(),
        parent.name()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn somework_exports_the_nested_span_tree_with_events() {
    let receiver = OtlpReceiver::start().await;
    let service = start(&receiver, |s| s.env("WORK_SLEEP_MS", "20")).await;

    let (status, body) = get(&service.url("/somework")).await;
    assert_eq!(status, 200);
    assert_eq!(body["error_work"], "succeeded");
    let spans = receiver.trace(&trace_id(&body), 4, WAIT).await;

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
    // The raw attribute, not the receiver's string rendering: a number of
    // milliseconds is exported as an integer, not as a string.
    let slept = middle
        .span
        .events
        .iter()
        .find(|event| event.name == "started the sleep")
        .and_then(|event| {
            event
                .attributes
                .iter()
                .find(|kv| kv.key == "sleep.duration_ms")
        })
        .and_then(|kv| kv.value.as_ref()?.value.clone());
    assert_eq!(
        slept,
        Some(any_value::Value::IntValue(
            body["slept_ms"].as_i64().expect("slept_ms is a number")
        )),
        "the event records the sleep as an integer"
    );
    assert_eq!(
        middle.event("Out of Error!").expect("event")["error_work.failed"],
        "false"
    );
    assert!(error_work.event_names().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn server_span_follows_the_http_semantic_conventions() {
    let receiver = OtlpReceiver::start().await;
    let service = start(&receiver, |s| s).await;

    let (_, body) = get(&service.url("/users/123")).await;
    let spans = receiver.trace(&trace_id(&body), 4, WAIT).await;
    let server = one(&spans, "GET /users/{id}");
    assert_eq!(server.kind(), SpanKind::Server);
    assert_eq!(server.attr("http.request.method").as_deref(), Some("GET"));
    assert_eq!(server.attr("http.route").as_deref(), Some("/users/{id}"));
    assert_eq!(server.attr("url.path").as_deref(), Some("/users/123"));
    assert_eq!(server.attr("url.scheme").as_deref(), Some("http"));
    assert_eq!(
        server.attr("http.response.status_code").as_deref(),
        Some("200")
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
    let receiver = OtlpReceiver::start().await;
    let service = start(&receiver, |s| s.env("ERROR_RATE", "1")).await;

    let (status, body) = get(&service.url("/somework")).await;
    assert_eq!(status, 200);
    assert_eq!(body["error_work"], "failed_and_handled");
    let spans = receiver.trace(&trace_id(&body), 4, WAIT).await;

    let error_work = one(&spans, "ErrorWork");
    assert_eq!(error_work.status_code(), StatusCode::Error);
    let exception = error_work.event("exception").expect("an exception event");
    assert_eq!(exception["exception.type"], "somework::work::WorkError");
    assert!(exception["exception.message"].contains("ErrorWork failed"));
    let middle = one(&spans, "MiddleWork");
    assert_eq!(
        middle.event("Out of Error!").expect("event")["error_work.failed"],
        "true"
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
    let receiver = OtlpReceiver::start().await;
    let service = start(&receiver, |s| s).await;

    let (status, body) = get(&service.url("/errorwork")).await;
    assert_eq!(status, 500);
    assert!(body["error"].as_str().unwrap().contains("ErrorWork failed"));
    let spans = receiver.trace(&trace_id(&body), 4, WAIT).await;

    let error_work = one(&spans, "ErrorWork");
    assert_eq!(error_work.status_code(), StatusCode::Error);
    assert!(error_work.event("exception").is_some());
    let server = one(&spans, "GET /errorwork");
    assert_eq!(server.status_code(), StatusCode::Error);
    assert_eq!(
        server.attr("http.response.status_code").as_deref(),
        Some("500")
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
    let receiver = OtlpReceiver::start().await;
    // A ratio of 0 would drop every root; the sampled parent must win.
    let service = start(&receiver, |s| {
        s.env("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
            .env("OTEL_TRACES_SAMPLER_ARG", "0")
    })
    .await;

    let parent_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_span = "00f067aa0ba902b7";
    let traceparent = format!("00-{parent_trace}-{parent_span}-01");
    let (status, body) = get_json(
        &service.url("/somework"),
        &[
            ("traceparent", &traceparent),
            ("tracestate", "vendor=value"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(trace_id(&body), parent_trace);

    let spans = receiver.trace(parent_trace, 4, WAIT).await;
    let server = one(&spans, "GET /somework");
    assert_eq!(server.parent_span_id().as_deref(), Some(parent_span));
    assert_eq!(server.span.trace_state, "vendor=value");
}

#[tokio::test(flavor = "multi_thread")]
async fn chain_with_two_hops_is_one_trace_with_three_server_spans() {
    let receiver = OtlpReceiver::start().await;
    let service = start(&receiver, |s| s).await;

    let (status, body) = get(&service.url("/chain?hops=2")).await;
    assert_eq!(status, 200);
    assert_eq!(body["downstream"]["downstream"]["hops"], 0);
    let trace = trace_id(&body);
    let spans = receiver.trace(&trace, 5, WAIT).await;

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
            client.attr("http.response.status_code").as_deref(),
            Some("200")
        );
        assert_eq!(
            client.attr("server.port"),
            Some(service.addr().port().to_string())
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
    let receiver = OtlpReceiver::start().await;
    let service = start(&receiver, |s| {
        s.env("OTEL_SERVICE_NAME", "somework-frontend").env(
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.name=ignored,k8s.namespace.name=demo,deployment.environment.name=ci%20run",
        )
    })
    .await;

    let (_, body) = get(&service.url("/somework")).await;
    let spans = receiver.trace(&trace_id(&body), 4, WAIT).await;
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
    let receiver = OtlpReceiver::start().await;
    let service = start(&receiver, |s| s).await;

    assert_eq!(get(&service.url("/healthz")).await.0, 200);
    assert_eq!(get(&service.url("/readyz")).await.0, 200);
    let (status, not_found) = get(&service.url("/no/such/path")).await;
    assert_eq!(status, 404);
    let response = reqwest::Client::new()
        .post(service.url("/somework"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 405);
    let not_allowed: Value = response.json().await.expect("JSON body");

    let spans = receiver.wait_for(WAIT, |spans| spans.len() >= 2).await;
    let not_found_span = spans
        .iter()
        .find(|s| s.trace_id() == trace_id(&not_found))
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
        .find(|s| s.trace_id() == trace_id(&not_allowed))
        .expect("405 span");
    assert_eq!(
        not_allowed_span
            .attr("http.response.status_code")
            .as_deref(),
        Some("405")
    );

    // Give a late probe span time to show up before asserting there is none.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let paths: Vec<_> = receiver
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
    let receiver = OtlpReceiver::start().await;
    let mut service = start(&receiver, |s| s.env("OTEL_BSP_SCHEDULE_DELAY", "600000")).await;

    let mut trace_ids = Vec::new();
    for _ in 0..5 {
        let (_, body) = get(&service.url("/somework")).await;
        trace_ids.push(trace_id(&body));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        receiver.spans().is_empty(),
        "nothing is exported before the schedule or shutdown"
    );

    let (status, took) = service.terminate(Duration::from_secs(15)).await;
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(10), "shutdown took {took:?}");
    let spans = receiver.spans();
    for trace in &trace_ids {
        let count = spans.iter().filter(|s| &s.trace_id() == trace).count();
        assert_eq!(count, 4, "trace {trace} arrived incomplete");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn request_logs_carry_the_trace_id() {
    let receiver = OtlpReceiver::start().await;
    let service = start(&receiver, |s| s).await;

    let (_, body) = get(&service.url("/somework")).await;
    let trace = trace_id(&body);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let line = service
        .json_logs()
        .into_iter()
        .find(|l| l["message"] == "request" && l["trace_id"] == trace.as_str())
        .expect("a request log line with the trace id");
    assert_eq!(line["status"], 200);
    assert_eq!(line["path"], "/somework");
}
