//! Bad requests get a 4xx JSON answer with a trace id, and malformed trace
//! context never fails a request. Table-driven: each case states its answer.

use somework::routes::catalog::Endpoint;
use somework_testkit::api::SomeworkApi as _;

use crate::helpers::spawn_app;

/// Whether `path` is a probe's route, which the catalogue leaves untraced:
/// its answers carry no trace id.
fn is_probe(path: &str) -> bool {
    Endpoint::ALL
        .into_iter()
        .map(Endpoint::spec)
        .any(|spec| spec.trace.is_none() && spec.route == path)
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
    let app = spawn_app().await;

    let mut failures = Vec::new();
    for (method, path, expected, phrase) in BAD_REQUESTS {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let reply = app.send(app.request(method.clone(), path)).await;
        let (status, body) = (reply.status, &reply.body);
        let content_type = reply.content_type.as_deref().unwrap_or_default();
        let message = body["error"].as_str().unwrap_or_default();
        if status != *expected || content_type != "application/json" || !message.contains(phrase) {
            failures.push(format!(
                "{method} {path}: got {status} {content_type} {body}, expected {expected} with {phrase:?}"
            ));
        }
        if !is_probe(path) && body["trace_id"].as_str().is_none_or(|t| t.len() != 32) {
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
    let app = spawn_app().await;

    let mut answered = Vec::new();
    for traceparent in BAD_TRACEPARENTS {
        let reply = app
            .get_with_headers(
                "/somework",
                &[
                    ("traceparent", *traceparent),
                    ("tracestate", "=bad,,key=@@@,\tx"),
                    ("baggage", "%%%;;==,k=v;;"),
                ],
            )
            .await;
        assert_eq!(reply.status, 200, "traceparent {traceparent:?}");
        let trace_id = reply.trace_id();
        assert!(
            !trace_id.eq_ignore_ascii_case("4bf92f3577b34da6a3ce929d0e0e4736"),
            "adopted the ids of the malformed {traceparent:?}"
        );
        answered.push((traceparent, trace_id));
    }

    let spans = app
        .spans_until(|spans| {
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
    let app = spawn_app().await;

    let huge = "x".repeat(70 * 1024);
    for path in ["/somework", "/healthz"] {
        let reply = app
            .get_with_headers(path, &[("x-padding", huge.as_str())])
            .await;
        assert_eq!(reply.status, 431, "{path}");
        assert!(reply.error().contains("headers exceed"), "{}", reply.body);
    }

    let reply = app
        .send(
            app.request(reqwest::Method::POST, "/somework")
                .body(vec![b'x'; 64 * 1024]),
        )
        .await;
    assert_eq!(reply.status, 413);
    assert!(reply.error().contains("body exceeds"), "{}", reply.body);

    // The service is unharmed.
    assert_eq!(app.get_somework().await.status, 200);
}
