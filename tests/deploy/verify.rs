//! `somework verify` without a cluster: every way of not reaching one ends
//! in one clear line and a non-zero exit within `--timeout`, and the
//! collector's metrics pages (captured from the real `otelcol-somework`) are
//! read into the counters and the RED figures the report uses.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use somework::verify::check::Outcome;
use somework::verify::cluster::CONNECT_TIMEOUT;
use somework::verify::metrics::CollectorMetrics;
use somework::verify::red::{EndpointRed, RedReport, RouteCounts, SpanMetrics};
use somework_testkit::net::{Blackhole, closed_port};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpListener;

const BINARY: &str = env!("CARGO_BIN_EXE_somework");

/// Runs `somework verify ARGS` with only the given kubeconfig (never the
/// user's, never an in-cluster one) and returns its output and run time.
async fn verify(kubeconfig: &Path, args: &[&str]) -> (Output, Duration) {
    let home = tempfile::tempdir().expect("temporary HOME");
    let started = Instant::now();
    let output = tokio::process::Command::new(BINARY)
        .arg("verify")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("KUBECONFIG", kubeconfig)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), output)
        .await
        .expect("verify did not exit within 60 s")
        .expect("cannot run somework verify");
    (output, started.elapsed())
}

fn stderr_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Asserts a failed run that printed exactly one line, starting with `prefix`.
fn assert_one_line_failure(output: &Output, elapsed: Duration, limit: Duration, prefix: &str) {
    let lines = stderr_lines(output);
    assert_eq!(output.status.code(), Some(1), "{lines:#?}");
    assert!(
        elapsed < limit,
        "took {elapsed:?} (limit {limit:?}): {lines:#?}"
    );
    assert_eq!(lines.len(), 1, "expected one line, got {lines:#?}");
    assert!(
        lines[0].starts_with(prefix),
        "expected a line starting with {prefix:?}, got {:?}",
        lines[0]
    );
    assert!(
        output.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

/// A kubeconfig with one context for `server`, a bearer token, and
/// certificate checks off (the servers here are not Kubernetes).
fn kubeconfig(dir: &Path, server: &str) -> PathBuf {
    let path = dir.join("kubeconfig");
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: {server}
    insecure-skip-tls-verify: true
users:
- name: test
  user:
    token: not-a-real-token
contexts:
- name: test
  context:
    cluster: test
    user: test
current-context: test
"
    );
    std::fs::write(&path, text).expect("write the kubeconfig");
    path
}

#[tokio::test]
async fn no_kubeconfig_fails_with_one_line() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let missing = dir.path().join("no-such-kubeconfig");
    let (output, elapsed) = verify(&missing, &["--timeout", "10s"]).await;
    assert_one_line_failure(
        &output,
        elapsed,
        Duration::from_secs(10),
        "verify: no Kubernetes configuration:",
    );
    let line = &stderr_lines(&output)[0];
    assert!(line.contains("no-such-kubeconfig"), "{line}");
    assert!(line.contains("KUBECONFIG"), "{line}");
}

#[tokio::test]
async fn an_unknown_context_is_named() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = kubeconfig(dir.path(), "https://127.0.0.1:1");
    let (output, elapsed) = verify(&config, &["--context", "elsewhere", "--timeout", "10s"]).await;
    assert_one_line_failure(
        &output,
        elapsed,
        Duration::from_secs(10),
        "verify: no Kubernetes configuration: the kubeconfig has no context \"elsewhere\"",
    );
}

#[tokio::test]
async fn a_closed_api_server_port_fails_with_one_line_within_the_timeout() {
    // Held until the test ends, so no other process can take the port.
    let closed = closed_port();
    let addr = closed.addr();
    let dir = tempfile::tempdir().expect("temporary directory");
    let server = format!("https://{addr}");
    let config = kubeconfig(dir.path(), &server);
    let (output, elapsed) = verify(&config, &["--timeout", "10s"]).await;
    assert_one_line_failure(
        &output,
        elapsed,
        Duration::from_secs(10),
        &format!("verify: cannot reach the Kubernetes API server at {server}/: "),
    );
    let line = &stderr_lines(&output)[0];
    assert!(line.to_lowercase().contains("connection refused"), "{line}");
}

#[tokio::test]
async fn a_hung_api_server_is_given_up_on_at_the_timeout() {
    let blackhole = Blackhole::start().await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = kubeconfig(dir.path(), &format!("https://{}", blackhole.addr()));
    let (output, elapsed) = verify(&config, &["--timeout", "3s"]).await;
    assert_one_line_failure(
        &output,
        elapsed,
        Duration::from_secs(5),
        "verify: gave up after --timeout 3s while connecting to the Kubernetes API server",
    );
    assert!(elapsed >= Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test]
async fn a_hung_api_server_is_named_unreachable_after_the_connect_timeout() {
    let blackhole = Blackhole::start().await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let server = format!("https://{}", blackhole.addr());
    let config = kubeconfig(dir.path(), &server);
    let (output, elapsed) = verify(&config, &["--timeout", "60s"]).await;
    assert_one_line_failure(
        &output,
        elapsed,
        CONNECT_TIMEOUT + Duration::from_secs(5),
        &format!(
            "verify: cannot reach the Kubernetes API server at {server}/: \
             no answer to TCP and TLS within {CONNECT_TIMEOUT:?}"
        ),
    );
    assert!(elapsed >= CONNECT_TIMEOUT, "{elapsed:?}");
}

#[tokio::test]
async fn an_api_server_without_tls_is_a_tls_failure() {
    // Answers every connection with plain HTTP, as a misconfigured port would.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let server = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let _ = socket
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    });
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = kubeconfig(dir.path(), &format!("https://{addr}"));
    let (output, elapsed) = verify(&config, &["--timeout", "10s"]).await;
    server.abort();
    assert_one_line_failure(
        &output,
        elapsed,
        Duration::from_secs(10),
        &format!("verify: TLS with the Kubernetes API server at https://{addr}/ failed: "),
    );
}

#[tokio::test]
async fn json_mode_prints_the_failure_as_json_too() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let missing = dir.path().join("absent");
    let (output, _) = verify(&missing, &["--json", "--timeout", "10s"]).await;
    assert_eq!(output.status.code(), Some(1));
    let json: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("stdout is one JSON object");
    assert_eq!(json["passed"], false);
    let error = json["error"].as_str().expect("an error string");
    assert_eq!(format!("verify: {error}"), stderr_lines(&output)[0]);
}

#[tokio::test]
async fn bad_flags_exit_2_naming_the_flag() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let missing = dir.path().join("absent");
    for (args, flag) in [
        (&["--timeout", "soon"][..], "--timeout"),
        (&["--timeout", "0s"][..], "--timeout"),
        (&["--requests", "0"][..], "--requests"),
        (&["local", "--timeout", "2x"][..], "--timeout"),
        (&["local", "--service", "not a url"][..], "--service"),
        (&["local", "--requests", "101"][..], "--requests"),
    ] {
        let (output, _) = verify(&missing, args).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
}

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn metrics(name: &str) -> CollectorMetrics {
    CollectorMetrics::parse(&fixture(&format!("collector-metrics/{name}.prom")))
        .unwrap_or_else(|error| panic!("{name}: {error}"))
}

#[test]
fn the_real_collectors_page_gives_one_number_per_receiver_and_exporter() {
    let healthy = metrics("healthy");
    let otlp = healthy.receivers["otlp"];
    assert_eq!((otlp.accepted, otlp.refused, otlp.failed), (7.0, 0.0, 0.0));
    assert_eq!(healthy.receivers.len(), 1, "{healthy:#?}");
    let jaeger = healthy.exporters["otlp_grpc/jaeger"];
    assert_eq!(jaeger.sent, 7.0);
    assert_eq!(jaeger.send_failed, 0.0);
    assert_eq!(jaeger.queue_batches, Some(0.0));
    assert_eq!(jaeger.in_flight, Some(0.0));
    // The debug exporter has no sending queue, so no queue gauge.
    let debug = healthy.exporters["debug"];
    assert_eq!((debug.sent, debug.queue_batches), (7.0, None));
    assert_eq!(healthy.exporters.len(), 2, "{healthy:#?}");
    assert!(!healthy.samples_traces);
}

#[test]
fn a_retrying_exporter_is_named_with_its_queue() {
    let delta = metrics("retrying").since(&metrics("healthy"));
    assert_eq!(delta.accepted(), 5.0);
    let jaeger = delta.exporters["otlp_grpc/jaeger"];
    assert_eq!((jaeger.sent, jaeger.send_failed), (0.0, 0.0));
    assert_eq!(
        (jaeger.queue_batches, jaeger.in_flight),
        (Some(1.0), Some(1.0))
    );
    assert_eq!(delta.exporters["debug"].sent, 5.0);
    assert!(!delta.exporters_caught_up());

    let rows = somework::verify::metrics::checks(&delta, 5.0, Duration::from_secs(20));
    let failing: Vec<_> = rows
        .iter()
        .filter(|row| row.outcome == Outcome::Fail)
        .collect();
    assert_eq!(failing.len(), 1, "{rows:#?}");
    assert_eq!(failing[0].name, "collector exporter otlp_grpc/jaeger");
    assert_eq!(
        failing[0].seen,
        "exporter otlp_grpc/jaeger failing: 0 of 5 accepted spans sent within 20s, \
         0 failed to send, 1 batch(es) queued, 1 request(s) in flight"
    );
}

#[test]
fn an_exporter_that_gave_up_is_named_with_its_failure_count() {
    let delta = metrics("send-failed").since(&CollectorMetrics::default());
    let jaeger = delta.exporters["otlp_grpc/jaeger"];
    assert_eq!((jaeger.sent, jaeger.send_failed), (0.0, 6.0));
    // Nothing is left to wait for: every span was sent or dropped.
    assert!(delta.exporters_caught_up());

    let rows = somework::verify::metrics::checks(&delta, 6.0, Duration::from_secs(3));
    let outcomes: Vec<(&str, Outcome)> = rows
        .iter()
        .map(|row| (row.name.as_str(), row.outcome))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("collector receivers", Outcome::Pass),
            ("collector exporter debug", Outcome::Pass),
            ("collector exporter otlp_grpc/jaeger", Outcome::Fail),
        ]
    );
    assert!(
        rows[2].seen.contains("0 of 6 accepted spans sent")
            && rows[2].seen.contains("6 failed to send"),
        "{}",
        rows[2].seen
    );
}

#[test]
fn a_healthy_delta_passes_and_too_few_spans_do_not() {
    let before = metrics("healthy");
    let mut after = before.clone();
    for receiver in after.receivers.values_mut() {
        receiver.accepted += 11.0;
    }
    for exporter in after.exporters.values_mut() {
        exporter.sent += 11.0;
    }
    let delta = after.since(&before);
    assert!(delta.exporters_caught_up());
    let rows = somework::verify::metrics::checks(&delta, 11.0, Duration::from_secs(2));
    assert!(
        rows.iter().all(|row| row.outcome == Outcome::Pass),
        "{rows:#?}"
    );

    let rows = somework::verify::metrics::checks(&delta, 12.0, Duration::from_secs(2));
    assert_eq!(rows[0].outcome, Outcome::Fail, "{rows:#?}");
}

#[test]
fn a_restarted_collector_counts_from_zero() {
    let fresh = metrics("send-failed");
    let delta = fresh.since(&metrics("retrying"));
    // accepted went from 12 to 6: the counters restarted, so 6 are new.
    assert_eq!(delta.accepted(), 6.0);
}

#[test]
fn a_page_without_collector_metrics_is_refused() {
    let error = CollectorMetrics::parse("# HELP up Up.\n# TYPE up gauge\nup 1\n").unwrap_err();
    assert_eq!(
        error.to_string(),
        "the page has no otelcol_ metrics: is this the collector's metrics port?"
    );
}

/// A span-metrics page of the real collector (the local pipeline)
/// with a frontend and a backend service, read before and after the traffic
/// `verify` sends: 3 x /somework, 3 x /errorwork, 3 x /chain?hops=2.
fn span_metrics(name: &str) -> SpanMetrics {
    SpanMetrics::parse(&fixture(&format!("span-metrics/{name}.prom")))
        .unwrap_or_else(|error| panic!("{name}: {error}"))
}

fn assert_close(seen: Option<f64>, expected: f64, what: &str) {
    let seen = seen.unwrap_or_else(|| panic!("{what}: no value"));
    assert!(
        (seen - expected).abs() < 1e-9,
        "{what}: {seen}, expected {expected}"
    );
}

#[test]
fn the_span_metrics_give_calls_errors_and_p99_per_route_from_bucket_deltas() {
    let delta = span_metrics("after").since(&span_metrics("before"));
    let route = |service: &str, route: &str| -> &RouteCounts {
        delta
            .route(service, route)
            .unwrap_or_else(|| panic!("no {service} {route} in {delta:#?}"))
    };
    let somework = route("somework-frontend", "/somework");
    assert_eq!((somework.calls, somework.errors), (3.0, 0.0));
    // Bucket deltas: 1 in (10, 25], 2 in (50, 75]. The 0.99 rank, 2.97, lies
    // in (50, 75] at (2.97 - 1) / 2 of its width.
    assert_close(somework.quantile_ms(0.99), 74.625, "p99 of /somework");
    assert_close(somework.quantile_ms(0.5), 50.0 + 25.0 * 0.5 / 2.0, "p50");
    let errorwork = route("somework-frontend", "/errorwork");
    assert_eq!((errorwork.calls, errorwork.errors), (3.0, 3.0));
    assert_close(
        errorwork.quantile_ms(0.99),
        75.0 + 25.0 * 0.97,
        "p99 of /errorwork",
    );
    assert_eq!(errorwork.error_ratio(), Some(1.0));
    // /chain?hops=2: one SERVER span at the frontend, two at the backend.
    assert_eq!(route("somework-frontend", "/chain").calls, 3.0);
    assert_eq!(route("somework-backend", "/chain").calls, 6.0);
    // Only routes: the unrouted and non-SERVER spans are not rows.
    assert_eq!(delta.routes.len(), 4, "{delta:#?}");
    // The whole history, without the before page.
    let all = span_metrics("after");
    assert_eq!(
        all.route("somework-frontend", "/somework").map(|r| r.calls),
        Some(5.0)
    );
}

#[test]
fn endpoint_red_passes_only_when_every_request_and_failure_is_counted() {
    let delta = span_metrics("after").since(&span_metrics("before"));
    let window = Duration::from_secs(12);
    let red =
        |endpoint: &str| EndpointRed::from_delta(&delta, "somework-frontend", endpoint, window);

    let errorwork = red("/errorwork");
    assert_eq!((errorwork.calls, errorwork.errors), (3.0, 3.0));
    assert!((errorwork.rate_per_s - 0.25).abs() < 1e-9);
    assert_eq!(errorwork.error_rate, Some(1.0));
    let check = errorwork.check(3, 3);
    assert_eq!(check.outcome, Outcome::Pass, "{check:#?}");
    assert_eq!(check.name, "RED /errorwork (somework-frontend)");
    assert_eq!(check.seen, "3 calls (0.25/s), 3 errors (100%), p99 99 ms");
    // One request more than counted, or a failure the metrics missed: FAIL.
    assert_eq!(errorwork.check(4, 3).outcome, Outcome::Fail);
    assert_eq!(red("/somework").check(3, 1).outcome, Outcome::Fail);

    let chain = red("/chain?hops=2");
    assert_eq!(
        (chain.route.as_str(), chain.calls, chain.errors),
        ("/chain", 3.0, 0.0)
    );
    assert_eq!(chain.error_rate, Some(0.0));
    assert_eq!(chain.check(3, 0).outcome, Outcome::Pass);

    // A route the metrics never saw: zero calls, no rates, and a failure.
    let missing = red("/nosuch");
    assert_eq!(
        (missing.calls, missing.error_rate, missing.p99_ms),
        (0.0, None, None)
    );
    assert_eq!(missing.check(1, 0).outcome, Outcome::Fail);

    let report = RedReport {
        window_ms: 12_000,
        endpoints: vec![red("/somework"), errorwork, chain],
    };
    let table = report.render();
    assert!(table.contains("over 12.0s"), "{table}");
    let errorwork_row = table
        .lines()
        .find(|line| line.trim_start().starts_with("/errorwork"))
        .unwrap_or_else(|| panic!("no /errorwork row:\n{table}"));
    let cells: Vec<&str> = errorwork_row.split_whitespace().collect();
    assert_eq!(
        cells,
        [
            "/errorwork",
            "somework-frontend",
            "3",
            "0.25",
            "3",
            "100.0%",
            "99.2",
            "ms"
        ],
        "{table}"
    );
    let json = serde_json::to_value(&report).expect("RED as JSON");
    assert_eq!(json["endpoints"][1]["errors"], 3.0);
    assert_eq!(json["endpoints"][1]["p99_ms"], 99.25);
    assert_eq!(json["endpoints"][2]["route"], "/chain");
}

#[test]
fn restarted_span_metrics_count_from_zero() {
    // The after page read first: every count went down, as after a restart.
    let delta = span_metrics("before").since(&span_metrics("after"));
    let errorwork = delta
        .route("somework-frontend", "/errorwork")
        .cloned()
        .unwrap_or_default();
    assert_eq!((errorwork.calls, errorwork.errors), (2.0, 2.0));
    assert_eq!(errorwork.buckets.last().map(|b| b.1), Some(2.0));
}

#[test]
fn quantiles_follow_histogram_quantile_at_the_edges() {
    let counts = |buckets: &[(f64, f64)]| RouteCounts {
        calls: buckets.last().map_or(0.0, |b| b.1),
        errors: 0.0,
        buckets: buckets.to_vec(),
    };
    // No observations: no quantile.
    assert_eq!(
        counts(&[(10.0, 0.0), (f64::INFINITY, 0.0)]).quantile_ms(0.99),
        None
    );
    assert_eq!(counts(&[]).quantile_ms(0.99), None);
    // In the first bucket, from 0.
    assert_close(
        counts(&[(10.0, 4.0), (f64::INFINITY, 4.0)]).quantile_ms(0.5),
        5.0,
        "p50",
    );
    // In +Inf: the highest finite bound.
    assert_close(
        counts(&[(10.0, 1.0), (100.0, 1.0), (f64::INFINITY, 10.0)]).quantile_ms(0.99),
        100.0,
        "p99 in +Inf",
    );
}

#[test]
fn an_empty_span_metrics_page_has_no_routes() {
    // A collector that has seen no span yet serves an empty page.
    assert_eq!(SpanMetrics::parse("").map(|m| m.routes.len()).ok(), Some(0));
}
