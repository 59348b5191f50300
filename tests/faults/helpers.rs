//! Starting services that point at faulty telemetry backends, and measuring
//! what the faults cost them.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use somework_testkit::api::SomeworkApi as _;
use somework_testkit::otlp::OtlpReceiver;
use somework_testkit::service::{Service, ServiceBuilder};
use tokio::sync::{Mutex, MutexGuard};

/// The shutdown bound the service promises.
pub const SHUTDOWN_BOUND: Duration = Duration::from_secs(10);
/// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`'s documented default: spans per export.
pub const MAX_EXPORT_BATCH: u64 = 512;

/// Held by every test of this suite for its whole run, so that no two of
/// them share the machine. A Tokio mutex, because each test has its own
/// runtime and holds the guard across awaits; it has no poisoning, so one
/// failed test does not fail the rest.
pub async fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::const_new(());
    SERIAL.lock().await
}

/// The service exporting spans to `endpoint`.
pub fn otlp(endpoint: impl Into<String>) -> ServiceBuilder {
    ServiceBuilder::new(env!("CARGO_BIN_EXE_somework")).env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
}

/// Sends `count` `/somework` requests, asserts that each was answered
/// whatever the collector is doing, and returns their trace ids.
pub async fn answered_traces(service: &Service, count: usize) -> Vec<String> {
    let mut traces = Vec::with_capacity(count);
    for _ in 0..count {
        let reply = service.get_somework().await;
        assert_eq!(reply.status, 200, "the service kept answering");
        traces.push(reply.trace_id());
    }
    traces
}

/// Waits up to `within` until `receiver` has a span of each of `traces`;
/// returns the ones that never arrived.
pub async fn missing_traces(
    receiver: &OtlpReceiver,
    traces: &[String],
    within: Duration,
) -> Vec<String> {
    let spans = receiver
        .wait_for(within, |spans| {
            let ids: HashSet<_> = spans.iter().map(|s| s.trace_id()).collect();
            traces.iter().all(|t| ids.contains(t))
        })
        .await;
    let ids: HashSet<_> = spans.iter().map(|s| s.trace_id()).collect();
    traces
        .iter()
        .filter(|t| !ids.contains(*t))
        .cloned()
        .collect()
}

/// Sends `rounds` requests to each service in turn and returns each one's
/// latencies, sorted.
pub async fn interleaved_latencies(
    services: &[&Service],
    path: &str,
    rounds: usize,
) -> Vec<Vec<Duration>> {
    let mut latencies = vec![Vec::with_capacity(rounds); services.len()];
    for _ in 0..rounds {
        for (service, samples) in services.iter().zip(&mut latencies) {
            let started = Instant::now();
            let reply = service.get(path).await;
            assert!(
                (200..300).contains(&reply.status),
                "{path}: {}",
                reply.status
            );
            samples.push(started.elapsed());
        }
    }
    for samples in &mut latencies {
        samples.sort();
    }
    latencies
}

fn p99(sorted: &[Duration]) -> Duration {
    sorted[(sorted.len() * 99 / 100).min(sorted.len() - 1)]
}

/// Keeps the figures a test measured (see `somework_testkit::results`): in
/// `target/test-results/faults.jsonl`, printed at the end of `make test`.
pub fn figures(test: &str, figures: serde_json::Value) {
    somework_testkit::results::record(env!("CARGO_TARGET_TMPDIR"), "faults", test, figures);
}

fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 10_000.0).round() / 10.0
}

/// Asserts that the faulty service's p99 stays within 3 times the healthy
/// one's (or 50 ms above it), and keeps both figures.
pub fn assert_near_healthy(label: &str, healthy: &[Duration], faulty: &[Duration]) {
    let (healthy, faulty) = (p99(healthy), p99(faulty));
    let bound = (healthy * 3).max(healthy + Duration::from_millis(50));
    figures(
        label,
        serde_json::json!({
            "p99_ms": millis(faulty),
            "healthy_p99_ms": millis(healthy),
            "bound_ms": millis(bound),
        }),
    );
    assert!(
        faulty <= bound,
        "{label}: p99 {faulty:?} exceeds {bound:?} (healthy p99 {healthy:?})"
    );
}

/// How many of the service's log lines have a message containing `message_part`.
pub fn count_logs(service: &Service, message_part: &str) -> usize {
    service
        .json_logs()
        .iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains(message_part))
        })
        .count()
}

/// The `<signal> export summary` line the service logs at shutdown, for
/// `span` or `log`.
pub fn export_summary(service: &Service, signal: &str) -> serde_json::Value {
    let message = format!("{signal} export summary");
    service
        .json_logs()
        .into_iter()
        .find(|l| l["message"] == message.as_str())
        .unwrap_or_else(|| panic!("no {message} in:\n{}", service.logs().join("\n")))
}

/// Waits for a log line whose message contains `message_part`.
pub async fn wait_for_message(service: &Service, message_part: &str) -> serde_json::Value {
    service
        .wait_for_log(Duration::from_secs(20), |l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains(message_part))
        })
        .await
}

/// Sends SIGTERM and asserts a clean exit within [`SHUTDOWN_BOUND`]; what
/// the service printed stays readable. Returns how long the exit took.
pub async fn assert_prompt_clean_exit(service: &mut Service) -> Duration {
    let (status, took) = service
        .terminate(SHUTDOWN_BOUND + Duration::from_secs(5))
        .await;
    assert!(status.success(), "exit status {status:?}");
    assert!(took < SHUTDOWN_BOUND, "shutdown took {took:?}");
    took
}
