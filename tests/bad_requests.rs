//! Bad requests get a 4xx JSON answer with a trace id, and malformed trace
//! context never fails a request. Table-driven: each case states its answer.

use std::time::Duration;

use serde_json::Value;
use somework_testkit::otlp::OtlpReceiver;
use somework_testkit::service::{Service, ServiceBuilder};

async fn start(receiver: &OtlpReceiver) -> Service {
    ServiceBuilder::new(env!("CARGO_BIN_EXE_somework"))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
        .start()
        .await
}

/// (method, path and query, expected status, a phrase the error must contain)
const BAD_REQUESTS: &[(&str, &str, u16, &str)] = &[
    ("GET", "/users/abc", 400, "whole number"),
    ("GET", "/users/-1", 400, "whole number"),
    ("GET", "/users/1.5", 400, "whole number"),
    ("GET", "/users/18446744073709551616", 400, "whole number"),
    ("GET", "/users/7", 404, "user 7 not found"),
    ("GET", "/chain?hops=-1", 400, "from 0 to 10"),
    ("GET", "/chain?hops=11", 400, "from 0 to 10"),
    ("GET", "/chain?hops=256", 400, "from 0 to 10"),
    ("GET", "/chain?hops=two", 400, "from 0 to 10"),
    ("GET", "/chain?hops=", 400, "from 0 to 10"),
    ("GET", "/no/such/route", 404, "no route for /no/such/route"),
    ("GET", "/somework/extra", 404, "no route"),
    ("POST", "/somework", 405, "method not allowed"),
    ("DELETE", "/users/123", 405, "method not allowed"),
    ("PUT", "/chain", 405, "method not allowed"),
    ("POST", "/healthz", 405, "method not allowed"),
];

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_a_json_4xx() {
    let receiver = OtlpReceiver::start().await;
    let service = start(&receiver).await;
    let client = reqwest::Client::new();

    let mut failures = Vec::new();
    for (method, path, expected, phrase) in BAD_REQUESTS {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let response = client
            .request(method.clone(), service.url(path))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let message = body["error"].as_str().unwrap_or_default();
        if status != *expected || content_type != "application/json" || !message.contains(phrase) {
            failures.push(format!(
                "{method} {path}: got {status} {content_type} {body}, expected {expected} with {phrase:?}"
            ));
        }
        let traced = path.starts_with("/healthz");
        if !traced && body["trace_id"].as_str().is_none_or(|t| t.len() != 32) {
            failures.push(format!("{method} {path}: no trace_id in {body}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Malformed `traceparent` values; each must start a fresh trace.
const BAD_TRACEPARENTS: &[&str] = &[
    "garbage",
    "",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
    "00-4bf92f3577b34da6a3ce929d0e0e4736x-00f067aa0ba902b7-01",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz",
    "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-+1",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
];

#[tokio::test(flavor = "multi_thread")]
async fn malformed_trace_context_starts_a_fresh_trace() {
    let receiver = OtlpReceiver::start().await;
    let service = start(&receiver).await;
    let client = reqwest::Client::new();

    let mut answered = Vec::new();
    for traceparent in BAD_TRACEPARENTS {
        let response = client
            .get(service.url("/somework"))
            .header("traceparent", *traceparent)
            .header("tracestate", "=bad,,key=@@@,\tx")
            .header("baggage", "%%%;;==,k=v;;")
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200, "traceparent {traceparent:?}");
        let body: Value = response.json().await.expect("JSON");
        let trace_id = body["trace_id"].as_str().expect("trace_id").to_owned();
        assert!(
            !trace_id.eq_ignore_ascii_case("4bf92f3577b34da6a3ce929d0e0e4736"),
            "adopted the ids of the malformed {traceparent:?}"
        );
        answered.push((traceparent, trace_id));
    }

    let spans = receiver
        .wait_for(Duration::from_secs(10), |spans| {
            spans
                .iter()
                .filter(|s| s.parent_span_id().is_none())
                .count()
                >= BAD_TRACEPARENTS.len()
        })
        .await;
    for (traceparent, trace_id) in answered {
        let server = spans
            .iter()
            .find(|s| s.trace_id() == trace_id && s.name() == "GET /somework")
            .unwrap_or_else(|| panic!("no server span for {traceparent:?}"));
        assert_eq!(
            server.parent_span_id(),
            None,
            "{traceparent:?} gave the span a parent"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_headers_and_bodies_are_refused_with_json() {
    let receiver = OtlpReceiver::start().await;
    let service = start(&receiver).await;
    let client = reqwest::Client::new();

    let huge = "x".repeat(70 * 1024);
    for path in ["/somework", "/healthz"] {
        let response = client
            .get(service.url(path))
            .header("x-padding", huge.as_str())
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 431, "{path}");
        let body: Value = response.json().await.expect("JSON");
        assert!(
            body["error"].as_str().unwrap().contains("headers exceed"),
            "{body}"
        );
    }

    let response = client
        .post(service.url("/somework"))
        .body(vec![b'x'; 64 * 1024])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.expect("JSON");
    assert!(
        body["error"].as_str().unwrap().contains("body exceeds"),
        "{body}"
    );

    // The service is unharmed.
    assert_eq!(
        client
            .get(service.url("/somework"))
            .send()
            .await
            .expect("request")
            .status(),
        200
    );
}
