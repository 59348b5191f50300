//! The real collector (built with ocb) running the pipelines of `helm/otel-collector/pipelines/`,
//! between the real `somework` binary and a Sentry test double.
//!
//! Each test starts its own collector on free ports (see `somework_testkit::collector`),
//! so the tests run in parallel.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use somework_testkit::api::SomeworkApi;
use somework_testkit::collector::{self, Collector, CollectorBuilder};
use somework_testkit::sentry_double::{IngestedSpan, SentryDouble};
use somework_testkit::service::ServiceBuilder;
use somework_testkit::tools;

use crate::helpers::{
    PROJECT, RED_FLUSH, STRAY, WAIT, assert_delivered, by_trace, complete, metric, metric_sum,
    names, request, route_red, sentry_env, service, span_names, spawn_collector_app, wait_for_red,
};

#[test]
fn every_config_validates() {
    let Some(binary) = collector::binary() else {
        return;
    };
    // SENTRY_URL is left out: the configs default it to https://sentry.io.
    let sentry = [
        ("SENTRY_ORG", "my-org"),
        ("SENTRY_AUTH_TOKEN", "sntrys_token"),
        ("SENTRY_PROJECT", "somework"),
    ];
    let otlp = [
        (
            "SENTRY_OTLP_TRACES_URL",
            "https://o1.ingest.sentry.io/api/4505/integration/otlp/v1/traces/",
        ),
        (
            "SENTRY_OTLP_LOGS_URL",
            "https://o1.ingest.sentry.io/api/4505/integration/otlp/v1/logs/",
        ),
        ("SENTRY_PUBLIC_KEY", "abc123"),
    ];
    for (config, env) in [
        ("sentry", &sentry[..]),
        ("tail-sampling", &sentry[..]),
        ("sentry-otlp", &otlp[..]),
        ("local", &[][..]),
        ("zero-account", &[][..]),
    ] {
        let output = collector::validate(&binary, &collector::config(config), env);
        assert!(
            output.status.success(),
            "{config} does not validate: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn validate_rejects_a_sentry_config_without_its_settings() {
    let Some(binary) = collector::binary() else {
        return;
    };
    let output = collector::validate(
        &binary,
        &collector::config("sentry"),
        &[
            ("SENTRY_AUTH_TOKEN", "token"),
            ("SENTRY_PROJECT", "somework"),
        ],
    );
    assert!(!output.status.success(), "validated without SENTRY_ORG");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("org_slug"), "unexpected error: {stderr}");
}

/// Sends one OTLP request with four resources straight to the collector:
/// two mapped service names, one unmapped, and one without `service.name`.
async fn send_foreign_resources(collector: &Collector) -> BTreeMap<&'static str, String> {
    let mut trace_ids = BTreeMap::new();
    let mut resource_spans = Vec::new();
    for (i, service_name) in [
        Some("somework-frontend"),
        Some("somework-backend"),
        Some(STRAY),
        None,
    ]
    .into_iter()
    .enumerate()
    {
        let trace_id: Vec<u8> = (0..16).map(|b| (b as u8) ^ (0xa0 + i as u8)).collect();
        let label = service_name.unwrap_or("(none)");
        trace_ids.insert(label, trace_id.iter().map(|b| format!("{b:02x}")).collect());
        let attributes = service_name
            .map(|name| KeyValue {
                key: "service.name".to_owned(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(name.to_owned())),
                }),
                ..Default::default()
            })
            .into_iter()
            .collect();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos() as u64;
        resource_spans.push(ResourceSpans {
            resource: Some(Resource {
                attributes,
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id,
                    span_id: vec![1, 2, 3, 4, 5, 6, 7, i as u8 + 1],
                    name: format!("span of {label}"),
                    start_time_unix_nano: now - 1_000_000,
                    end_time_unix_nano: now,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    let mut client = TraceServiceClient::connect(collector.otlp_grpc_endpoint())
        .await
        .expect("cannot connect to the collector");
    client
        .export(ExportTraceServiceRequest { resource_spans })
        .await
        .expect("the collector refused the export");
    trace_ids
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sentry_exporter_routes_every_span_to_the_mapped_project() {
    let Some(binary) = collector::binary() else {
        return;
    };
    // A page size of 1 makes the exporter follow the Link header's cursor.
    let double = SentryDouble::builder()
        .project(STRAY)
        .project(PROJECT)
        .project("unrelated")
        .page_size(1)
        .start()
        .await;
    let app = spawn_collector_app(&binary, "sentry", double).await;
    let double = &app.double;

    let mut wanted = Vec::new();
    for route in [
        "/somework",
        "/errorwork",
        "/somework",
        "/errorwork",
        "/somework",
    ] {
        let (status, trace_id) = app.call(route).await;
        assert_eq!(status, if route == "/errorwork" { 500 } else { 200 });
        wanted.push((trace_id, route));
    }
    let foreign = send_foreign_resources(&app.collector).await;
    let foreign_ids: Vec<String> = ["somework-frontend", "somework-backend", STRAY]
        .iter()
        .map(|name| foreign[name].clone())
        .collect();

    let spans = double
        .wait_for(WAIT, |spans| {
            let arrived: BTreeSet<_> = spans.iter().map(|s| s.span.trace_id()).collect();
            complete(spans, &wanted) && foreign_ids.iter().all(|id| arrived.contains(id))
        })
        .await;

    let project = double.project(PROJECT);
    assert_delivered(&spans, &wanted, project.id, &project.public_key);

    let traces = by_trace(&spans);
    let only = |label: &str| -> &IngestedSpan {
        let trace = traces
            .get(&foreign[label])
            .unwrap_or_else(|| panic!("the span of {label} never arrived"));
        assert_eq!(trace.len(), 1, "the span of {label} arrived more than once");
        trace[0]
    };
    for mapped in ["somework-frontend", "somework-backend"] {
        let span = only(mapped);
        assert_eq!(
            span.project_id, project.id,
            "{mapped} is mapped to {PROJECT}"
        );
        assert_eq!(span.sentry_key, project.public_key);
        assert_eq!(span.span.name(), format!("span of {mapped}"));
    }
    // Not mapped: the service name itself is the project slug, never PROJECT.
    let stray = double.project(STRAY);
    let span = only(STRAY);
    assert_eq!(
        span.project_id, stray.id,
        "an unmapped service goes to its own project"
    );
    assert_eq!(span.sentry_key, stray.public_key);
    // No service.name: dropped, in the same batch as the three delivered above.
    assert!(
        !traces.contains_key(&foreign["(none)"]),
        "a resource without service.name was delivered"
    );
    let unrelated = double.project("unrelated").id;
    assert!(spans.iter().all(|s| s.project_id != unrelated));

    // The exchange itself: token on the management API, the project's key and
    // gzip on ingest, the cursor followed, nothing unexpected.
    let requests = double.requests();
    for r in &requests {
        assert!(
            (200..300).contains(&r.status),
            "the double answered {}: {r:?}",
            r.status
        );
        if let Some((id, _)) = &r.ingest {
            assert_eq!(r.method, "POST");
            // The URL the exporter built from the DSN http://{key}@127.0.0.1:{port}/{id}:
            // scheme and host, no port (see sentry_collector).
            assert_eq!(
                r.uri,
                format!("http://127.0.0.1/api/{id}/integration/otlp/v1/traces/"),
                "if the exporter now keeps the DSN's port, drop the proxy in \
                 sentry_collector and the note in collector-config/README.md"
            );
            assert_eq!(r.header("content-encoding"), Some("gzip"));
            assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
            assert_eq!(
                r.header("authorization"),
                None,
                "ingest must not carry the token"
            );
        } else if let Some((id, _)) = &r.logs_ingest {
            // The services' own log records, routed like their spans.
            assert_eq!(
                r.uri,
                format!("http://127.0.0.1/api/{id}/integration/otlp/v1/logs/")
            );
            assert_eq!(r.header("authorization"), None);
        } else {
            assert_eq!(r.method, "GET");
            assert_eq!(
                r.header("authorization"),
                Some(format!("Bearer {}", double.token()).as_str())
            );
        }
    }
    let paths: Vec<_> = requests.iter().map(|r| r.path.as_str()).collect();
    let org = double.org();
    assert!(paths.contains(&format!("/api/0/organizations/{org}/projects/").as_str()));
    assert!(paths.contains(&format!("/api/0/organizations/{org}/project-keys/").as_str()));
    // Three projects, one per page: the first page and two more by cursor.
    let project_pages: Vec<_> = requests
        .iter()
        .filter(|r| r.path == format!("/api/0/organizations/{org}/projects/"))
        .map(|r| r.query.clone())
        .collect();
    assert_eq!(project_pages.len(), 3, "pages requested: {project_pages:?}");
    assert!(
        project_pages[1..]
            .iter()
            .all(|q| q.as_deref().is_some_and(|q| q.starts_with("cursor=")))
    );
}

#[test]
fn the_dsn_script_prints_the_otlp_settings() {
    let script = tools::repo_root().join("scripts/sentry-otlp-env.sh");
    let run = |args: &[&str]| {
        std::process::Command::new("bash")
            .arg(&script)
            .args(args)
            .env("SOMEWORK_BIN", env!("CARGO_BIN_EXE_somework"))
            .output()
            .expect("cannot run bash")
    };
    for (dsn, otlp, key) in [
        (
            "https://abc123@o1.ingest.sentry.io/4505",
            "https://o1.ingest.sentry.io/api/4505/integration/otlp",
            "abc123",
        ),
        // Legacy secret key, self-hosted port and path prefix, trailing slash.
        (
            "http://pub:sec@127.0.0.1:9000/sentry/42/",
            "http://127.0.0.1:9000/sentry/api/42/integration/otlp",
            "pub",
        ),
    ] {
        let output = run(&[dsn]);
        assert!(output.status.success(), "{dsn}: {output:?}");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            format!(
                "export SENTRY_OTLP_TRACES_URL='{otlp}/v1/traces/'\n\
                 export SENTRY_OTLP_LOGS_URL='{otlp}/v1/logs/'\n\
                 export SENTRY_PUBLIC_KEY='{key}'\n"
            ),
            "{dsn}"
        );
    }
    for bad in [
        &["https://host/42"][..],
        &["https://key@host/"],
        &["ftp://key@host/42"],
        &["https://key@host/42'; rm -rf ~"],
        &[],
        &["https://a@b/1", "extra"],
    ] {
        let output = run(bad);
        assert_eq!(output.status.code(), Some(2), "{bad:?} must be rejected");
        assert!(output.stdout.is_empty(), "{bad:?} printed {output:?}");
    }
}

/// Parses the script's `export NAME='value'` lines.
fn exports(stdout: &[u8]) -> BTreeMap<String, String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|line| {
            let (name, value) = line.strip_prefix("export ")?.split_once('=')?;
            Some((name.to_owned(), value.trim_matches('\'').to_owned()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sentry_otlp_config_sends_every_span_to_the_dsn_project() {
    let Some(binary) = collector::binary() else {
        return;
    };
    let double = SentryDouble::builder()
        .project("other")
        .project(PROJECT)
        .start()
        .await;
    // The DSN the user copies from Sentry, turned into the config's settings by the script.
    let output = std::process::Command::new("bash")
        .arg(tools::repo_root().join("scripts/sentry-otlp-env.sh"))
        .arg(double.dsn(PROJECT))
        .env("SOMEWORK_BIN", env!("CARGO_BIN_EXE_somework"))
        .output()
        .expect("cannot run bash");
    assert!(output.status.success(), "{output:?}");
    let mut builder =
        CollectorBuilder::new(&binary, "sentry-otlp").set("processors.batch.timeout", "200ms");
    for (name, value) in exports(&output.stdout) {
        builder = builder.env(&name, value);
    }
    let collector = builder.start().await;
    // Routing does not depend on the service name here.
    let service = service(&collector, "any-service-name").await;

    let mut wanted = Vec::new();
    for route in ["/somework", "/errorwork", "/somework", "/errorwork"] {
        let (_, trace_id) = request(&service, route).await;
        wanted.push((trace_id, route));
    }
    let spans = double
        .wait_for(WAIT, |spans| complete(spans, &wanted))
        .await;

    let project = double.project(PROJECT);
    assert_delivered(&spans, &wanted, project.id, &project.public_key);
    // Each request's log line, at the project's logs endpoint with its key.
    let logs = double
        .wait_for_logs(WAIT, |logs| {
            wanted.iter().all(|(trace_id, _)| {
                logs.iter()
                    .any(|l| l.log.trace_id() == *trace_id && l.log.body() == "request")
            })
        })
        .await;
    for (trace_id, route) in &wanted {
        let line = logs
            .iter()
            .find(|l| l.log.trace_id() == *trace_id && l.log.body() == "request")
            .unwrap_or_else(|| panic!("no request line of {route} {trace_id}"));
        assert_eq!(
            (line.project_id, line.sentry_key.as_str()),
            (project.id, project.public_key.as_str())
        );
    }
    let requests = double.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        assert!(
            r.is_ingest() || r.is_logs_ingest(),
            "unexpected request (no management API here): {r:?}"
        );
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.header("authorization"), None);
    }
}

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

#[tokio::test(flavor = "multi_thread")]
async fn the_service_survives_collector_restarts_and_reconnects() {
    let Some(binary) = collector::binary() else {
        return;
    };
    let double = SentryDouble::builder().project(PROJECT).start().await;
    let mut app = spawn_collector_app(&binary, "sentry", double).await;
    let project = app.double.project(PROJECT);

    let (_, before) = app.call("/somework").await;
    let wanted = [(before, "/somework")];
    let spans = app.delivered(&wanted).await;
    assert_delivered(&spans, &wanted, project.id, &project.public_key);

    // A rollout (SIGTERM), then a crash (SIGKILL). While the collector is down the
    // service keeps answering, promptly, and only its exports fail.
    for crash in [false, true] {
        if crash {
            app.collector.kill().await;
        } else {
            app.collector.stop().await;
        }
        for _ in 0..5 {
            let started = std::time::Instant::now();
            let (status, _) = app.call("/somework").await;
            assert_eq!(status, 200);
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "the service stalled without its collector: {:?}",
                started.elapsed()
            );
        }

        app.collector.start_again().await;
        let mut after = Vec::new();
        for route in ["/somework", "/errorwork", "/somework"] {
            let (_, trace_id) = app.call(route).await;
            after.push((trace_id, route));
        }
        let spans = app.delivered(&after).await;
        assert_delivered(&spans, &after, project.id, &project.public_key);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_local_config_prints_every_span() {
    let Some(binary) = collector::binary() else {
        return;
    };
    let collector = CollectorBuilder::new(&binary, "local")
        .set("processors.batch.timeout", "200ms")
        .start()
        .await;
    let service = service(&collector, "somework").await;
    let (_, trace_id) = request(&service, "/somework").await;

    let printed = collector
        .wait_for_logs(WAIT, |lines| {
            let logs = lines.join("\n");
            logs.contains(&trace_id)
                && span_names("/somework")
                    .iter()
                    .all(|name| logs.contains(&format!("Name           : {name}\n")))
        })
        .await
        .join("\n");
    assert!(
        printed.contains(&format!("Trace ID       : {trace_id}")),
        "{printed}"
    );
    for name in span_names("/somework") {
        assert!(
            printed.contains(&format!("Name           : {name}\n")),
            "{name} not printed"
        );
    }
}

#[test]
fn the_build_script_fails_clearly_without_go() {
    // A PATH with only what the script needs before it looks for Go.
    let bin = std::env::temp_dir().join(format!("somework-no-go-{}", std::process::id()));
    std::fs::create_dir_all(&bin).expect("cannot create a temporary directory");
    let dirname = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("dirname"))
        .find(|path| path.exists())
        .expect("dirname is on PATH");
    let link = bin.join("dirname");
    if !link.exists() {
        std::os::unix::fs::symlink(dirname, &link).expect("cannot link dirname");
    }
    let output = std::process::Command::new("/bin/bash")
        .arg(tools::repo_root().join("scripts/build-collector.sh"))
        .env_clear()
        .env("PATH", &bin)
        .env("HOME", &bin)
        .env("SOMEWORK_TOOLS_DIR", bin.join("tools"))
        .output()
        .expect("cannot run bash");
    let installed_anything = bin.join("tools").exists();
    std::fs::remove_dir_all(&bin).expect("cannot remove the temporary directory");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("go is not installed") && stderr.contains("Install Go"),
        "unclear message: {stderr}"
    );
    assert!(!installed_anything, "nothing may be installed without Go");
}
