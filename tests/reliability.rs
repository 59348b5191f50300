//! Telemetry never harms the service: collector and Sentry faults, shutdown
//! on one CPU and under load, and a bounded queue through a long outage.
//!
//! Latency is compared side by side: a healthy and a faulty service run at
//! the same time and take turns, so machine noise hits both alike. The
//! bounds are loose on purpose; the failure they catch is a request that
//! waits for an export, which costs seconds, not percent.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use serde_json::Value;
use somework_testkit::bugsink::Bugsink;
use somework_testkit::net::{Blackhole, closed_port};
use somework_testkit::otlp::{Behaviour, OtlpReceiver};
use somework_testkit::service::{Service, ServiceBuilder};

/// The shutdown bound the service promises.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(10);

fn service() -> ServiceBuilder {
    ServiceBuilder::new(env!("CARGO_BIN_EXE_somework"))
}

fn otlp(endpoint: impl Into<String>) -> ServiceBuilder {
    service().env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
}

/// Sends `rounds` requests to each service in turn and returns each one's
/// latencies, sorted.
async fn interleaved_latencies(
    services: &[&Service],
    path: &str,
    rounds: usize,
) -> Vec<Vec<Duration>> {
    let client = reqwest::Client::new();
    let mut latencies = vec![Vec::with_capacity(rounds); services.len()];
    for _ in 0..rounds {
        for (service, samples) in services.iter().zip(&mut latencies) {
            let started = Instant::now();
            let response = client.get(service.url(path)).send().await.expect("request");
            assert!(
                response.status().is_success(),
                "{path}: {}",
                response.status()
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

fn assert_near_healthy(label: &str, healthy: &[Duration], faulty: &[Duration]) {
    let (healthy, faulty) = (p99(healthy), p99(faulty));
    let bound = (healthy * 3).max(healthy + Duration::from_millis(50));
    eprintln!("{label}: p99 {faulty:?} against healthy {healthy:?}");
    assert!(
        faulty <= bound,
        "{label}: p99 {faulty:?} exceeds {bound:?} (healthy p99 {healthy:?})"
    );
}

fn count_logs(service: &Service, message_part: &str) -> usize {
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

async fn assert_prompt_clean_exit(mut service: Service) {
    let (status, took) = service
        .terminate(SHUTDOWN_BOUND + Duration::from_secs(5))
        .await;
    assert!(status.success(), "exit status {status:?}");
    assert!(took < SHUTDOWN_BOUND, "shutdown took {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_collector_down_at_startup_costs_no_latency_and_warns_once() {
    let receiver = OtlpReceiver::start().await;
    let healthy = otlp(receiver.endpoint()).start().await;
    let down = otlp(format!("http://{}", closed_port().await))
        .env("OTEL_EXPORTER_OTLP_TIMEOUT", "300")
        .start()
        .await;

    let latencies = interleaved_latencies(&[&healthy, &down], "/somework", 300).await;
    assert_near_healthy("collector down", &latencies[0], &latencies[1]);

    // Let several export cycles fail before counting the warnings.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        count_logs(&down, "span export failed"),
        1,
        "one warning per outage"
    );
    assert_prompt_clean_exit(down).await;
    assert_prompt_clean_exit(healthy).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_and_failing_collectors_do_not_slow_requests() {
    let healthy_receiver = OtlpReceiver::start().await;
    let slow_receiver = OtlpReceiver::start().await;
    slow_receiver.set_behaviour(Behaviour::Delay(Duration::from_secs(3)));
    let failing_receiver = OtlpReceiver::start().await;
    failing_receiver.set_behaviour(Behaviour::Unavailable);

    let healthy = otlp(healthy_receiver.endpoint()).start().await;
    let slow = otlp(slow_receiver.endpoint()).start().await;
    let failing = otlp(failing_receiver.endpoint()).start().await;

    let latencies = interleaved_latencies(&[&healthy, &slow, &failing], "/somework", 300).await;
    assert_near_healthy("slow collector", &latencies[0], &latencies[1]);
    assert_near_healthy("failing collector", &latencies[0], &latencies[2]);
    assert!(slow_receiver.export_calls() > 0 && failing_receiver.export_calls() > 0);

    for service in [healthy, slow, failing] {
        assert_prompt_clean_exit(service).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_service_reconnects_after_a_collector_restart() {
    let receiver = OtlpReceiver::start().await;
    let service = otlp(receiver.endpoint()).start().await;
    let client = reqwest::Client::new();
    let request = || async {
        let response = client
            .get(service.url("/somework"))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200, "the service kept answering");
        let body: Value = response.json().await.expect("JSON");
        body["trace_id"].as_str().expect("trace_id").to_owned()
    };

    let before = request().await;
    receiver.trace(&before, 4, Duration::from_secs(10)).await;
    let addr = receiver.kill().await;

    // The collector is gone: requests still succeed.
    for _ in 0..50 {
        request().await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let restarted = OtlpReceiver::start_on(addr).await;
    let mut after = Vec::new();
    for _ in 0..20 {
        after.push(request().await);
    }
    let spans = restarted
        .wait_for(Duration::from_secs(20), |spans| {
            let ids: HashSet<_> = spans.iter().map(|s| s.trace_id()).collect();
            after.iter().all(|t| ids.contains(t))
        })
        .await;
    let ids: HashSet<_> = spans.iter().map(|s| s.trace_id()).collect();
    let missing = after.iter().filter(|t| !ids.contains(*t)).count();
    assert_eq!(
        missing, 0,
        "{missing} traces created after the restart never arrived"
    );
    assert_prompt_clean_exit(service).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_or_hung_sentry_does_not_affect_requests_or_shutdown() {
    // The baseline reports to a healthy Sentry (a real Bugsink), so the
    // comparison measures what a broken Sentry costs, not what reporting does.
    let Some(bugsink) = Bugsink::start().await else {
        return;
    };
    let receiver = OtlpReceiver::start().await;
    let hung = Blackhole::start().await;
    // ERROR_RATE=1: every request sends a Sentry event.
    let reporting_to = |dsn: String| {
        otlp(receiver.endpoint())
            .env("ERROR_RATE", "1")
            .env("SENTRY_DSN", dsn)
    };
    let healthy = reporting_to(bugsink.dsn()).start().await;
    let refused = reporting_to(format!("http://public@{}/1", closed_port().await))
        .start()
        .await;
    let hanging = reporting_to(format!("http://public@{}/1", hung.addr()))
        .start()
        .await;

    let latencies = interleaved_latencies(&[&healthy, &refused, &hanging], "/somework", 200).await;
    assert_near_healthy("Sentry refusing connections", &latencies[0], &latencies[1]);
    assert_near_healthy("Sentry hanging", &latencies[0], &latencies[2]);

    for service in [healthy, refused, hanging] {
        assert_prompt_clean_exit(service).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn on_one_cpu_with_a_hung_collector_sigterm_exits_in_time() {
    // The known opentelemetry-rust trap: a blocking flush on the only Tokio
    // worker, while the exporter needs that worker, never returns.
    let hung = Blackhole::start().await;
    let service = otlp(format!("http://{}", hung.addr()))
        .env("TOKIO_WORKER_THREADS", "1")
        .env("OTEL_BSP_SCHEDULE_DELAY", "600000")
        .env("SENTRY_DSN", format!("http://public@{}/1", hung.addr()))
        .env("ERROR_RATE", "1")
        .wrapped_in(&["taskset", "-c", "0"])
        .start()
        .await;

    let client = reqwest::Client::new();
    for _ in 0..20 {
        let response = client
            .get(service.url("/somework"))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200);
    }
    assert_prompt_clean_exit(service).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_under_load_loses_no_span_of_an_answered_request() {
    const CLIENTS: usize = 8;
    let receiver = OtlpReceiver::start().await;
    let mut service = otlp(receiver.endpoint())
        .env("WORK_SLEEP_MS", "50")
        .env("OTEL_BSP_SCHEDULE_DELAY", "1000")
        .start()
        .await;
    let url = service.url("/somework");

    // Set just before SIGTERM is sent. A connection the kernel accepted
    // but the server never took from its backlog is reset when the listener
    // closes; the client cannot tell that from a cut request, so an error is
    // only acceptable once the signal is on its way.
    let signalled_at: Arc<OnceLock<Instant>> = Arc::new(OnceLock::new());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let url = url.clone();
            let signalled_at = signalled_at.clone();
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .pool_max_idle_per_host(0)
                    .build()
                    .expect("client");
                let mut answered = Vec::new();
                loop {
                    match client.get(&url).send().await {
                        Ok(response) => {
                            assert_eq!(response.status(), 200, "an accepted request must complete");
                            let body: Value = response.json().await.expect("a complete JSON body");
                            let trace_id = body["trace_id"].as_str().expect("trace_id").to_owned();
                            answered.push((trace_id, Instant::now()));
                        }
                        Err(error) => {
                            assert!(
                                signalled_at.get().is_some(),
                                "request failed before the shutdown: {error}"
                            );
                            break;
                        }
                    }
                }
                answered
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = signalled_at.set(Instant::now());
    let (status, took) = service
        .terminate(SHUTDOWN_BOUND + Duration::from_secs(5))
        .await;
    assert!(status.success(), "exit status {status:?}");
    assert!(took < SHUTDOWN_BOUND, "shutdown took {took:?}");

    let signalled_at = *signalled_at.get().expect("set above");
    let mut answered = HashSet::new();
    let mut finished_after_signal = 0;
    for client in clients {
        for (trace_id, finished) in client.await.expect("client task") {
            finished_after_signal += usize::from(finished > signalled_at);
            answered.insert(trace_id);
        }
    }
    // Each client had a 50 ms request in flight when the signal came.
    assert!(
        finished_after_signal > 0,
        "no in-flight request completed after SIGTERM"
    );
    let exported: HashSet<_> = receiver
        .spans()
        .iter()
        .filter(|s| s.kind() == SpanKind::Server)
        .map(|s| s.trace_id())
        .collect();
    eprintln!(
        "answered {} requests ({finished_after_signal} finished after SIGTERM), received {} server spans",
        answered.len(),
        exported.len()
    );
    assert!(
        answered.len() > 50,
        "the load was too light to mean anything"
    );
    assert_eq!(
        answered.len(),
        exported.len(),
        "answered and exported counts differ"
    );
    assert_eq!(
        answered, exported,
        "answered requests and exported server spans differ"
    );
}

/// Resident set size of a process, from /proc.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS in /proc status")
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_stays_flat_and_every_span_is_accounted_for_through_a_long_outage() {
    const QUEUE: usize = 1000;
    const CLIENTS: usize = 8;
    let hung = Blackhole::start().await;
    let mut service = otlp(format!("http://{}", hung.addr()))
        .env("OTEL_BSP_MAX_QUEUE_SIZE", QUEUE.to_string())
        .env("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "256")
        .env("OTEL_EXPORTER_OTLP_TIMEOUT", "2000")
        .start()
        .await;
    let pid = service.pid();
    let url = service.url("/somework");

    let run = |duration: Duration| {
        let url = url.clone();
        async move {
            let deadline = Instant::now() + duration;
            let tasks: Vec<_> = (0..CLIENTS)
                .map(|_| {
                    let url = url.clone();
                    tokio::spawn(async move {
                        let client = reqwest::Client::new();
                        let mut answered = 0u64;
                        while Instant::now() < deadline {
                            let response = client.get(&url).send().await.expect("request");
                            assert_eq!(response.status(), 200);
                            answered += 1;
                        }
                        answered
                    })
                })
                .collect();
            let mut answered = 0;
            for task in tasks {
                answered += task.await.expect("client task");
            }
            answered
        }
    };

    let warmup = run(Duration::from_secs(3)).await;
    let rss_warm = rss_kib(pid);
    let mut answered = warmup;
    let mut peak = rss_warm;
    for _ in 0..4 {
        answered += run(Duration::from_secs(3)).await;
        peak = peak.max(rss_kib(pid));
    }
    eprintln!("{answered} requests; RSS after warm-up {rss_warm} KiB, peak after {peak} KiB");
    assert!(
        peak <= rss_warm + 32 * 1024,
        "RSS grew from {rss_warm} KiB to {peak} KiB during the outage"
    );

    let (status, took) = service
        .terminate(SHUTDOWN_BOUND + Duration::from_secs(5))
        .await;
    assert!(
        status.success() && took < SHUTDOWN_BOUND,
        "{status:?} after {took:?}"
    );

    // Every span ended is exported, failed, dropped, or unsent at exit.
    let summary = service
        .json_logs()
        .into_iter()
        .find(|l| l["message"] == "span export summary")
        .expect("a span export summary at shutdown");
    let count = |field: &str| {
        summary[field]
            .as_u64()
            .unwrap_or_else(|| panic!("{field} in {summary}"))
    };
    let (exported, failed, dropped, unsent) = (
        count("spans.exported"),
        count("spans.failed"),
        count("spans.dropped"),
        count("spans.unsent"),
    );
    eprintln!("exported {exported}, failed {failed}, dropped {dropped}, unsent {unsent}");
    assert_eq!(exported, 0, "nothing can be exported to a hung collector");
    assert!(
        dropped > 0,
        "the queue never filled; the outage was too short to test anything"
    );
    assert!(
        unsent <= QUEUE as u64,
        "more than the queue was held: {unsent}"
    );
    assert_eq!(
        exported + failed + dropped + unsent,
        4 * answered,
        "spans went missing from the accounting"
    );
}
