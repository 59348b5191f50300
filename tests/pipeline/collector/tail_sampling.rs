//! `tail-sampling.yaml`: every error and slow trace kept whole, its
//! percentage of the rest, and RED metrics counted from every span before
//! the sampler drops any.

use std::collections::BTreeSet;
use std::time::Duration;

use somework_testkit::api::SomeworkApi;
use somework_testkit::collector::{self, CollectorBuilder};
use somework_testkit::sentry_double::SentryDouble;
use somework_testkit::service::ServiceBuilder;

use crate::helpers::{
    PROJECT, RED_FLUSH, assert_delivered, by_trace, complete, metric, metric_sum, names, request,
    route_red, sentry_env, span_names, wait_for_red,
};

/// The kept share the tail-sampling test sets: far from the config's default
/// (10) and from the service's head-sampling default, so a collector that
/// ignored `TAIL_SAMPLING_PERCENT` fails.
const TAIL_PERCENT: u32 = 35;
/// Traces that only the percentage can keep; enough for a tight bound.
const TAIL_PLAIN: usize = 1000;
/// The slow-trace rule's threshold, and the longest sleep of the slow service.
const TAIL_LATENCY_MS: u64 = 300;
const SLOW_SLEEP_MS: u64 = 1000;

/// The range that `kept` of `n` traces sampled at `p` falls in unless the
/// sampler is wrong: the binomial mean plus or minus 5 standard deviations,
/// which a right sampler leaves about once in 1.7 million runs.
fn binomial_bounds(n: usize, p: f64) -> (usize, usize) {
    let n = n as f64;
    let mean = n * p;
    let spread = 5.0 * (n * p * (1.0 - p)).sqrt();
    (
        (mean - spread).ceil() as usize,
        (mean + spread).floor() as usize,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn tail_sampling_keeps_every_error_and_slow_trace_and_its_percentage_of_the_rest() {
    use futures_util::StreamExt;

    let Some(binary) = collector::binary() else {
        return;
    };
    let double = SentryDouble::builder().project(PROJECT).start().await;
    let mut builder = CollectorBuilder::new(&binary, "tail-sampling")
        .set("exporters.sentry.http.proxy_url", &double.url())
        .set("processors.tail_sampling.decision_wait", "2s")
        .set("connectors.span_metrics.metrics_flush_interval", RED_FLUSH)
        .env("TAIL_SAMPLING_PERCENT", TAIL_PERCENT.to_string())
        .env("TAIL_SAMPLING_LATENCY_MS", TAIL_LATENCY_MS.to_string());
    for (key, value) in sentry_env(&double) {
        builder = builder.env(key, value);
    }
    let collector = builder.start().await;
    // Head sampling keeps everything; the collector decides. One service
    // answers at once, the other sleeps up to SLOW_SLEEP_MS in MiddleWork.
    let start_service = |sleep_ms: u64| {
        ServiceBuilder::new(env!("CARGO_BIN_EXE_somework"))
            .env(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                collector.otlp_grpc_endpoint(),
            )
            .env("OTEL_TRACES_SAMPLER", "always_on")
            .env("ERROR_RATE", "0")
            .env("WORK_SLEEP_MS", sleep_ms.to_string())
            .start()
    };
    let fast = start_service(0).await;
    let slow_service = start_service(SLOW_SLEEP_MS).await;

    // Every tenth request fails: TAIL_PLAIN plain traces and a tenth as many errors.
    let routes: Vec<&str> = (0..TAIL_PLAIN + TAIL_PLAIN / 9)
        .map(|i| {
            if i % 10 == 9 {
                "/errorwork"
            } else {
                "/somework"
            }
        })
        .collect();
    let fast = &fast;
    let replies: Vec<(&str, u16, String)> = futures_util::stream::iter(routes)
        .map(|route| async move {
            let (status, trace_id) = request(fast, route).await;
            (route, status, trace_id)
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let mut errors = Vec::new();
    let mut plain = BTreeSet::new();
    for (route, status, trace_id) in replies {
        if route == "/errorwork" {
            assert_eq!(status, 500);
            errors.push((trace_id, "/errorwork"));
        } else {
            assert_eq!(status, 200);
            plain.insert(trace_id);
        }
    }
    assert_eq!(plain.len(), TAIL_PLAIN);
    // Slow traces: those whose sleep alone passes the threshold must be kept.
    let slow_replies: Vec<(u64, String)> = futures_util::stream::iter(0..30)
        .map(|_| async {
            let reply = slow_service.get("/somework").await;
            assert_eq!(reply.status, 200);
            let slept = reply.body["slept_ms"]
                .as_u64()
                .unwrap_or_else(|| panic!("no slept_ms in {}", reply.body));
            (slept, reply.trace_id())
        })
        .buffer_unordered(30)
        .collect()
        .await;
    let slow: Vec<(String, &str)> = slow_replies
        .iter()
        .filter(|(slept, _)| *slept > TAIL_LATENCY_MS)
        .map(|(_, trace_id)| (trace_id.clone(), "/somework"))
        .collect();
    assert!(
        slow.len() >= 10,
        "only {} of 30 traces slept past {TAIL_LATENCY_MS} ms",
        slow.len()
    );
    let total = errors.len() + plain.len() + slow_replies.len();

    // Every error and slow trace, whole; then every decision made and its spans sent.
    let must_keep: Vec<_> = errors.iter().chain(&slow).cloned().collect();
    let spans = double
        .wait_for(Duration::from_secs(30), |spans| complete(spans, &must_keep))
        .await;
    for (what, wanted) in [("error", &errors), ("slow", &slow)] {
        let whole = wanted
            .iter()
            .filter(|e| complete(&spans, std::slice::from_ref(*e)))
            .count();
        assert_eq!(
            whole,
            wanted.len(),
            "{what} traces are missing: {whole} of {} arrived whole",
            wanted.len()
        );
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = collector.metrics().await;
        let decided = metric_sum(
            &metrics,
            "otelcol_processor_tail_sampling_global_count_traces_sampled",
        );
        let sent = metric(
            &metrics,
            r#"otelcol_exporter_sent_spans{exporter="sentry"}"#,
        );
        if decided >= total as f64 && sent == Some(double.spans().len() as f64) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the collector decided {decided} of {total} traces and sent {sent:?} spans, \
             of which the double has {}:\n{metrics}",
            double.spans().len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let spans = double.spans();
    let project = double.project(PROJECT);
    assert_delivered(&spans, &errors, project.id, &project.public_key);
    assert_delivered(&spans, &slow, project.id, &project.public_key);

    let traces = by_trace(&spans);
    let kept: Vec<_> = plain.iter().filter(|id| traces.contains_key(*id)).collect();
    for trace_id in &kept {
        assert_eq!(
            names(&traces[*trace_id]),
            span_names("/somework"),
            "a sampled trace is kept whole"
        );
    }
    let (low, high) = binomial_bounds(TAIL_PLAIN, f64::from(TAIL_PERCENT) / 100.0);
    assert!(
        (low..=high).contains(&kept.len()),
        "kept {} of {TAIL_PLAIN} plain traces, expected {low}..={high} ({TAIL_PERCENT}%)",
        kept.len(),
    );
    // The collector's own metrics tell the same story: it accepted every span and
    // sent only the kept ones.
    let metrics = collector.metrics().await;
    let accepted = metric(
        &metrics,
        r#"otelcol_receiver_accepted_spans{receiver="otlp",transport="grpc"}"#,
    );
    assert_eq!(accepted, Some(total as f64 * 4.0), "{metrics}");
    let sent = metric(
        &metrics,
        r#"otelcol_exporter_sent_spans{exporter="sentry"}"#,
    );
    assert_eq!(sent, Some(spans.len() as f64), "{metrics}");
    somework_testkit::results::record(
        env!("CARGO_TARGET_TMPDIR"),
        "pipeline",
        "tail sampling",
        serde_json::json!({
            "percent": TAIL_PERCENT,
            "plain_kept": kept.len(),
            "plain_sent": TAIL_PLAIN,
            "bounds": [low, high],
            "errors_kept": errors.len(),
            "slow_kept": slow.len(),
        }),
    );

    // RED metrics come from every span, before the sampler: they count every
    // request, the dropped traces as well as the kept ones.
    let somework_calls = (plain.len() + slow_replies.len()) as f64;
    let (red, text) = wait_for_red(&collector, |scrape| {
        route_red(scrape, "somework", "/somework").calls >= somework_calls
            && route_red(scrape, "somework", "/errorwork").calls >= errors.len() as f64
    })
    .await;
    let somework = route_red(&red, "somework", "/somework");
    assert_eq!(
        (somework.calls, somework.errors, somework.duration_count),
        (somework_calls, 0.0, somework_calls),
        "RED of /somework, {} of whose traces were kept:\n{text}",
        kept.len() + slow.len()
    );
    let errorwork = route_red(&red, "somework", "/errorwork");
    let failures = errors.len() as f64;
    assert_eq!(
        (errorwork.calls, errorwork.errors, errorwork.duration_count),
        (failures, failures, failures),
        "RED of /errorwork:\n{text}"
    );

    let sent_ids: BTreeSet<&String> = errors
        .iter()
        .map(|(id, _)| id)
        .chain(&plain)
        .chain(slow_replies.iter().map(|(_, id)| id))
        .collect();
    let unknown: Vec<_> = traces.keys().filter(|id| !sent_ids.contains(id)).collect();
    assert!(unknown.is_empty(), "traces nobody sent: {unknown:?}");
}

#[test]
fn the_binomial_bounds_exclude_the_defaults() {
    let (low, high) = binomial_bounds(TAIL_PLAIN, f64::from(TAIL_PERCENT) / 100.0);
    // 10% is the config's default; 20% and 50% are plausible mix-ups.
    for wrong in [10, 20, 25, 50, 100] {
        let expected = TAIL_PLAIN * wrong / 100;
        assert!(
            !(low..=high).contains(&expected),
            "{wrong}% ({expected}) is inside {low}..={high}"
        );
    }
}
