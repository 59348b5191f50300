//! No secret or PII leaks into spans or logs: a planted secret, sent in
//! every place a client or an operator could put one, must appear nowhere.
//! (The Sentry side of the same check runs against Bugsink in
//! `tests/pipeline/sentry_bugsink.rs`.) The URL path is recorded as `url.path`, as
//! the semantic conventions ask, so secrets must never go into paths.

use opentelemetry_proto::tonic::trace::v1::Span;
use somework_testkit::api::SomeworkApi as _;

use crate::helpers::spawn_app_with;

const SECRET: &str = "PLANTED-SECRET-7f3a9c";

fn span_text(span: &Span) -> String {
    // The Debug form holds every name, attribute, event and status message.
    format!("{span:?}")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_planted_secret_reaches_no_span_and_no_log() {
    let mut app = spawn_app_with(|s| {
        s.env(
            "OTEL_EXPORTER_OTLP_HEADERS",
            format!("authorization=Bearer%20{SECRET}"),
        )
        .env("ERROR_RATE", "1")
        .env("RUST_LOG", "debug")
    })
    .await;

    for path in [
        format!("/somework?token={SECRET}"),
        format!("/errorwork?password={SECRET}"),
        format!("/users/123?api_key={SECRET}"),
        format!("/chain?hops=1&secret={SECRET}"),
    ] {
        let response = app
            .request(reqwest::Method::GET, &path)
            .header("authorization", format!("Bearer {SECRET}"))
            .header("cookie", format!("session={SECRET}"))
            .header("x-api-key", SECRET)
            .header("baggage", format!("user.email={SECRET}"))
            .send()
            .await
            .expect("request");
        let body = response.text().await.expect("body");
        assert!(
            !body.contains(SECRET),
            "{path}: the response echoes the secret: {body}"
        );
    }

    let spans = app.spans_until(|spans| spans.len() >= 14).await;
    assert!(spans.len() >= 14, "only {} spans arrived", spans.len());
    app.terminate().await;

    for span in app.receiver.spans() {
        assert!(
            !span_text(&span.span).contains(SECRET),
            "span leaks the secret: {span:?}"
        );
        assert!(
            !span.resource.values().any(|v| v.contains(SECRET)),
            "resource leaks the secret"
        );
    }
    for line in app.service.logs() {
        assert!(!line.contains(SECRET), "log leaks the secret: {line}");
    }
}
