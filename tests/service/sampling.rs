//! Head sampling, by behaviour: each sampler of the SDK specification keeps
//! exactly the traces it should. Ratios are far from every default (0.2 for
//! the service, 1 for `always_on`), so a service that ignored
//! `OTEL_TRACES_SAMPLER_ARG` would fail, and a caller's decision wins for
//! continued traces only under the parent-based samplers.

use futures_util::StreamExt as _;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use somework_testkit::api::SomeworkApi as _;

use crate::helpers::{TestApp, spawn_app_with};

const CONCURRENCY: usize = 16;
/// Continued traces per test: enough that a sampler deciding by chance
/// would be caught (2^-200).
const CONTINUED: usize = 200;

async fn start(sampler: &str, ratio: &str) -> TestApp {
    spawn_app_with(|s| {
        s.env("OTEL_TRACES_SAMPLER", sampler)
            .env("OTEL_TRACES_SAMPLER_ARG", ratio)
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

/// A trace id whose low 64 bits are near the top: every ratio below 1 rejects it.
fn rejected_by_ratio(i: usize) -> String {
    format!("{:016x}{:016x}", i + 1, u64::MAX - i as u64)
}

/// A trace id whose low 64 bits are tiny: every ratio above 0 accepts it.
fn accepted_by_ratio(i: usize) -> String {
    format!("{:032x}", i + 1)
}

/// A `traceparent` for `trace_id` with the caller's sampled flag.
fn traceparent(trace_id: &str, sampled: bool) -> String {
    format!("00-{trace_id}-00f067aa0ba902b7-{:02}", u8::from(sampled))
}

/// Sends 1000 new traces with `ratio` and asserts that the number sampled
/// lies within 4 standard deviations of `ratio` × 1000.
async fn assert_ratio_holds(sampler: &str, ratio: f64) {
    const REQUESTS: usize = 1000;
    let app = start(sampler, &ratio.to_string()).await;

    let answered = send(&app, REQUESTS, |_| None).await;
    let sampled = sampled_traces(app).await;

    assert!(
        sampled.iter().all(|t| answered.contains(t)),
        "unknown trace exported"
    );
    let expected = REQUESTS as f64 * ratio;
    let sd = (REQUESTS as f64 * ratio * (1.0 - ratio)).sqrt();
    let got = sampled.len() as f64;
    assert!(
        (got - expected).abs() <= 4.0 * sd,
        "{sampler} {ratio}: sampled {got} of {REQUESTS}; expected {expected} ± {:.0} (4 sd)",
        4.0 * sd
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn new_traces_are_sampled_at_half_the_rate_with_ratio_one_half() {
    // 437..=563 of 1000; the default 0.2 would give about 200.
    assert_ratio_holds("parentbased_traceidratio", 0.5).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn new_traces_are_sampled_at_one_in_twenty_with_ratio_five_hundredths() {
    // 23..=77 of 1000; the default 0.2 would give about 200.
    assert_ratio_holds("traceidratio", 0.05).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sampled_parent_is_always_followed() {
    let app = start("parentbased_traceidratio", "0.25").await;

    // Trace ids that the 0.25 ratio alone would reject.
    let answered = send(&app, CONTINUED, |i| {
        Some(traceparent(&rejected_by_ratio(i), true))
    })
    .await;
    let sampled = sampled_traces(app).await;

    assert_eq!(sampled.len(), CONTINUED);
    for i in 0..CONTINUED {
        assert!(
            answered.contains(&rejected_by_ratio(i)),
            "trace {i} not continued"
        );
        assert!(
            sampled.contains(&rejected_by_ratio(i)),
            "trace {i} not sampled"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unsampled_parent_is_never_sampled() {
    let app = start("parentbased_traceidratio", "0.25").await;

    // Trace ids that the 0.25 ratio alone would accept.
    let answered = send(&app, CONTINUED, |i| {
        Some(traceparent(&accepted_by_ratio(i), false))
    })
    .await;
    let sampled = sampled_traces(app).await;

    assert_eq!(answered.len(), CONTINUED);
    assert!(
        sampled.is_empty(),
        "{} unsampled traces were exported",
        sampled.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn always_off_samples_nothing_even_under_a_sampled_parent() {
    let app = start("always_off", "1").await;

    let roots = send(&app, CONTINUED, |_| None).await;
    let continued = send(&app, CONTINUED, |i| {
        Some(traceparent(&accepted_by_ratio(i), true))
    })
    .await;
    let sampled = sampled_traces(app).await;

    assert_eq!(
        roots.len() + continued.len(),
        2 * CONTINUED,
        "every request answered"
    );
    assert!(
        sampled.is_empty(),
        "always_off exported {} traces",
        sampled.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn traceidratio_ignores_the_parents_decision() {
    let app = start("traceidratio", "0.25").await;

    // Sampled parents the ratio rejects, unsampled parents the ratio accepts:
    // the ratio decides both.
    send(&app, CONTINUED, |i| {
        Some(traceparent(&rejected_by_ratio(i), true))
    })
    .await;
    send(&app, CONTINUED, |i| {
        Some(traceparent(&accepted_by_ratio(i), false))
    })
    .await;
    let sampled = sampled_traces(app).await;

    for i in 0..CONTINUED {
        assert!(
            !sampled.contains(&rejected_by_ratio(i)),
            "trace {i} followed its sampled parent against the ratio"
        );
        assert!(
            sampled.contains(&accepted_by_ratio(i)),
            "trace {i} followed its unsampled parent against the ratio"
        );
    }
    assert_eq!(sampled.len(), CONTINUED);
}

#[tokio::test(flavor = "multi_thread")]
async fn parentbased_always_off_follows_parents_and_drops_new_traces() {
    let app = start("parentbased_always_off", "1").await;

    let roots = send(&app, CONTINUED, |_| None).await;
    send(&app, CONTINUED, |i| {
        Some(traceparent(&rejected_by_ratio(i), true))
    })
    .await;
    send(&app, CONTINUED, |i| {
        Some(traceparent(&accepted_by_ratio(i), false))
    })
    .await;
    let sampled = sampled_traces(app).await;

    assert!(
        roots.iter().all(|t| !sampled.contains(t)),
        "a new trace was sampled"
    );
    for i in 0..CONTINUED {
        assert!(
            sampled.contains(&rejected_by_ratio(i)),
            "sampled parent {i} not followed"
        );
        assert!(
            !sampled.contains(&accepted_by_ratio(i)),
            "unsampled parent {i} not followed"
        );
    }
    assert_eq!(sampled.len(), CONTINUED);
}
