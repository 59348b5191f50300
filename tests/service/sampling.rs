//! Head sampling: the ratio holds statistically for new traces, and a
//! caller's decision always wins for continued ones.

use futures_util::StreamExt as _;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use somework_testkit::api::SomeworkApi as _;

use crate::helpers::{TestApp, spawn_app_with};

const CONCURRENCY: usize = 16;

async fn start() -> TestApp {
    spawn_app_with(|s| {
        s.env("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
            .env("OTEL_TRACES_SAMPLER_ARG", "0.25")
    })
    .await
}

/// Sends `count` requests to `/chain?hops=0` (one span each), with the
/// `traceparent` that `traceparent(i)` gives, if any; returns the trace ids the
/// service answered with.
async fn send(
    app: &TestApp,
    count: usize,
    traceparent: impl Fn(usize) -> Option<String>,
) -> Vec<String> {
    futures_util::stream::iter(0..count)
        .map(|i| {
            let mut request = app.request(reqwest::Method::GET, "/chain?hops=0");
            if let Some(header) = traceparent(i) {
                request = request.header("traceparent", header);
            }
            async move { app.send(request).await.trace_id() }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await
}

/// Flushes by shutting the service down, then returns the traces received.
async fn sampled_traces(mut app: TestApp) -> Vec<String> {
    let (status, _) = app.terminate().await;
    assert!(status.success());
    app.receiver
        .spans()
        .iter()
        .filter(|s| s.kind() == SpanKind::Server)
        .map(|s| s.trace_id())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn new_traces_are_sampled_at_the_configured_ratio() {
    const REQUESTS: usize = 1000;
    const RATIO: f64 = 0.25;
    let app = start().await;

    let answered = send(&app, REQUESTS, |_| None).await;
    let sampled = sampled_traces(app).await;

    assert!(
        sampled.iter().all(|t| answered.contains(t)),
        "unknown trace exported"
    );
    let expected = REQUESTS as f64 * RATIO;
    let sd = (REQUESTS as f64 * RATIO * (1.0 - RATIO)).sqrt();
    let got = sampled.len() as f64;
    assert!(
        (got - expected).abs() <= 4.0 * sd,
        "sampled {got} of {REQUESTS}; expected {expected} ± {:.0} (4 sd)",
        4.0 * sd
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sampled_parent_is_always_followed() {
    const REQUESTS: usize = 200;
    let app = start().await;

    // High trace ids, which the 0.25 ratio alone would reject.
    let trace = |i: usize| format!("{:016x}{:016x}", i + 1, u64::MAX - i as u64);
    let answered = send(&app, REQUESTS, |i| {
        Some(format!("00-{}-00f067aa0ba902b7-01", trace(i)))
    })
    .await;
    let sampled = sampled_traces(app).await;

    assert_eq!(sampled.len(), REQUESTS);
    for i in 0..REQUESTS {
        assert!(answered.contains(&trace(i)), "trace {i} not continued");
        assert!(sampled.contains(&trace(i)), "trace {i} not sampled");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unsampled_parent_is_never_sampled() {
    const REQUESTS: usize = 200;
    let app = start().await;

    // Low trace ids, which the 0.25 ratio alone would accept.
    let answered = send(&app, REQUESTS, |i| {
        Some(format!("00-{:032x}-00f067aa0ba902b7-00", i + 1))
    })
    .await;
    let sampled = sampled_traces(app).await;

    assert_eq!(answered.len(), REQUESTS);
    assert!(
        sampled.is_empty(),
        "{} unsampled traces were exported",
        sampled.len()
    );
}
