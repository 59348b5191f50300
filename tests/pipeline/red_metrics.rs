//! RED metrics from the spans, through the real collector: the `span_metrics`
//! connector counts every request per route, its errors and its durations,
//! and the `prometheus` exporter serves them on a port of their own (8889),
//! with labels that stay bounded whatever the requests carry.

use std::collections::BTreeSet;

use prometheus_parse::Value;
use somework_testkit::collector;
use somework_testkit::sentry_double::SentryDouble;

use crate::helpers::{
    PROJECT, RED_CALLS, RED_DURATION, RED_FLUSH, parse_red, request, route_red,
    sentry_collector_builder, service_builder, wait_for_red,
};

/// Requests of each kind; the counts must come back exactly.
const SOMEWORK: usize = 7;
/// `/somework` with a query string: counted under the route, never the path.
const SOMEWORK_WITH_QUERY: usize = 2;
const ERRORWORK: usize = 4;
/// Paths no route matches: their SERVER spans are named just `GET`.
const UNMATCHED: usize = 2;
/// A user id in the paths and queries; it must reach no label.
const USER_ID: &str = "424242";

/// The labels a RED series may carry: the connector's dimensions
/// (`service.name`, `span.name`, `span.kind`, `status.code`, the collector's
/// instance id, and the two the configs add), `job` from the resource's
/// `service.name`, and the instrumentation scope of the connector.
const ALLOWED_LABELS: [&str; 11] = [
    "service_name",
    "span_name",
    "span_kind",
    "status_code",
    "http_route",
    "http_response_status_code",
    "collector_instance_id",
    "job",
    "otel_scope_name",
    "otel_scope_version",
    "otel_scope_schema_url",
];

/// The buckets of the configs (in ms), and `+Inf`.
const BUCKETS: [f64; 15] = [
    2.0,
    5.0,
    10.0,
    25.0,
    50.0,
    75.0,
    100.0,
    150.0,
    250.0,
    500.0,
    1000.0,
    2500.0,
    5000.0,
    10000.0,
    f64::INFINITY,
];

#[tokio::test(flavor = "multi_thread")]
async fn red_metrics_count_every_request_and_error_per_route_with_bounded_labels() {
    let Some(binary) = collector::binary() else {
        return;
    };
    let double = SentryDouble::builder().project(PROJECT).start().await;
    let collector = sentry_collector_builder(&binary, "sentry", &double)
        .set("connectors.span_metrics.metrics_flush_interval", RED_FLUSH)
        .start()
        .await;
    let service = service_builder(&collector, "somework")
        .env("OTEL_TRACES_SAMPLER", "always_on")
        .env("ERROR_RATE", "0")
        .start()
        .await;

    let mut paths = Vec::new();
    paths.extend(std::iter::repeat_n("/somework".to_owned(), SOMEWORK));
    paths.extend(std::iter::repeat_n(
        format!("/somework?user_id={USER_ID}&q=a%20b"),
        SOMEWORK_WITH_QUERY,
    ));
    paths.extend(std::iter::repeat_n("/errorwork".to_owned(), ERRORWORK));
    paths.extend(std::iter::repeat_n(
        format!("/users/{USER_ID}/orders"),
        UNMATCHED,
    ));
    let mut trace_ids = Vec::new();
    for path in &paths {
        let (status, trace_id) = request(&service, path).await;
        let expected = match path.as_str() {
            "/errorwork" => 500,
            p if p.starts_with("/users/") => 404,
            _ => 200,
        };
        assert_eq!(status, expected, "GET {path}");
        trace_ids.push(trace_id);
    }

    let somework_calls = (SOMEWORK + SOMEWORK_WITH_QUERY) as f64;
    let (scrape, text) = wait_for_red(&collector, |scrape| {
        route_red(scrape, "somework", "/somework").calls >= somework_calls
            && route_red(scrape, "somework", "/errorwork").calls >= ERRORWORK as f64
    })
    .await;

    let somework = route_red(&scrape, "somework", "/somework");
    assert_eq!(
        (somework.calls, somework.errors),
        (somework_calls, 0.0),
        "calls and errors of /somework:\n{text}"
    );
    assert_eq!(
        (somework.durations, somework.duration_count),
        (somework_calls, somework_calls),
        "durations of /somework:\n{text}"
    );
    let errorwork = route_red(&scrape, "somework", "/errorwork");
    assert_eq!(
        (errorwork.calls, errorwork.errors),
        (ERRORWORK as f64, ERRORWORK as f64),
        "calls and errors of /errorwork:\n{text}"
    );
    assert_eq!(
        (errorwork.durations, errorwork.duration_count),
        (ERRORWORK as f64, ERRORWORK as f64),
        "durations of /errorwork:\n{text}"
    );

    let server_calls: Vec<_> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == RED_CALLS && s.labels.get("span_kind") == Some("SPAN_KIND_SERVER"))
        .collect();
    // Unmatched paths: one series named after the method, with no route.
    let unmatched: f64 = server_calls
        .iter()
        .filter(|s| s.labels.get("http_route").is_none())
        .map(|s| {
            assert_eq!(s.labels.get("span_name"), Some("GET"), "{text}");
            assert_eq!(s.labels.get("http_response_status_code"), Some("404"));
            counter(&s.value)
        })
        .sum();
    assert_eq!(unmatched, UNMATCHED as f64, "unmatched paths:\n{text}");
    let routes: BTreeSet<&str> = server_calls
        .iter()
        .filter_map(|s| s.labels.get("http_route"))
        .collect();
    assert_eq!(
        routes,
        BTreeSet::from(["/somework", "/errorwork"]),
        "{text}"
    );
    let span_names: BTreeSet<&str> = server_calls
        .iter()
        .filter_map(|s| s.labels.get("span_name"))
        .collect();
    assert_eq!(
        span_names,
        BTreeSet::from(["GET", "GET /somework", "GET /errorwork"]),
        "SERVER spans are named after the route, not the path:\n{text}"
    );

    // Every series: only the allowed labels, and none holds a trace id, the
    // user id or a query string.
    let red_series: Vec<_> = scrape
        .samples
        .iter()
        .filter(|s| s.metric.starts_with("traces_span_metrics_"))
        .collect();
    assert!(!red_series.is_empty(), "{text}");
    for sample in &red_series {
        for (label, value) in sample.labels.iter() {
            assert!(
                ALLOWED_LABELS.contains(&label.as_str()),
                "unexpected label {label}={value:?} on {}:\n{text}",
                sample.metric
            );
            assert!(
                !value.contains(USER_ID) && !value.contains('?'),
                "label {label}={value:?} holds a path or a user id"
            );
            for trace_id in &trace_ids {
                assert!(
                    !value.contains(trace_id.as_str()),
                    "label {label} holds trace id {trace_id}"
                );
            }
        }
    }
    // The names Jaeger's Monitor tab queries, and the configured buckets.
    let metrics: BTreeSet<&str> = red_series.iter().map(|s| s.metric.as_str()).collect();
    let count = format!("{RED_DURATION}_count");
    let sum = format!("{RED_DURATION}_sum");
    assert_eq!(
        metrics,
        BTreeSet::from([RED_CALLS, RED_DURATION, count.as_str(), sum.as_str()]),
        "{text}"
    );
    for sample in red_series.iter().filter(|s| s.metric == RED_DURATION) {
        let Value::Histogram(buckets) = &sample.value else {
            panic!("{RED_DURATION} is not a histogram:\n{text}");
        };
        let bounds: Vec<f64> = buckets.iter().map(|b| b.less_than).collect();
        assert_eq!(bounds, BUCKETS, "buckets of {:?}", sample.labels);
    }

    // Each port serves its own metrics.
    assert!(
        !text.contains("otelcol_"),
        "the RED port serves the collector's own metrics"
    );
    let own = parse_red(&collector.metrics().await);
    assert!(
        own.samples
            .iter()
            .all(|s| !s.metric.starts_with("traces_span_metrics_")),
        "the collector's own metrics port serves the RED metrics"
    );
}

fn counter(value: &Value) -> f64 {
    match value {
        Value::Counter(v) | Value::Untyped(v) => *v,
        other => panic!("not a counter: {other:?}"),
    }
}
