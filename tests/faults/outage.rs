//! Long and repeated collector outages: the service reconnects after a
//! restart, and through an outage its memory stays flat while every span is
//! accounted for (exported, failed, dropped or unsent at exit).

use std::time::{Duration, Instant};

use somework_testkit::api::SomeworkApi as _;
use somework_testkit::net::Blackhole;
use somework_testkit::otlp::OtlpReceiver;
use somework_testkit::process::rss_kib;

use somework_testkit::otlp::Behaviour;

use crate::helpers::{
    answered_traces, assert_prompt_clean_exit, count_logs, export_summary, figures, missing_traces,
    otlp, serial, wait_for_message,
};

#[tokio::test(flavor = "multi_thread")]
async fn the_service_reconnects_after_a_collector_restart() {
    let _serial = serial().await;
    let receiver = OtlpReceiver::start().await;
    let mut service = otlp(receiver.endpoint()).start().await;

    let before = answered_traces(&service, 1).await;
    receiver.trace(&before[0], 4, Duration::from_secs(10)).await;
    let port = receiver.kill().await;

    // The collector is gone: requests still succeed, and their export fails.
    answered_traces(&service, 50).await;
    wait_for_message(&service, "span export failed").await;

    let restarted = OtlpReceiver::start_on(port).await;
    let after = answered_traces(&service, 20).await;
    let missing = missing_traces(&restarted, &after, Duration::from_secs(20)).await;
    assert!(
        missing.is_empty(),
        "{} traces created after the restart never arrived",
        missing.len()
    );
    assert_prompt_clean_exit(&mut service).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_stays_flat_and_every_span_is_accounted_for_through_a_long_outage() {
    const QUEUE: usize = 1000;
    const CLIENTS: usize = 8;
    let _serial = serial().await;
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
    assert!(
        peak <= rss_warm + 32 * 1024,
        "RSS grew from {rss_warm} KiB to {peak} KiB during the outage"
    );

    assert_prompt_clean_exit(&mut service).await;

    // Every span ended is exported, failed, dropped, or unsent at exit.
    let summary = export_summary(&service, "span");
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
    figures(
        "span accounting through a long outage",
        serde_json::json!({
            "requests": answered,
            "rss_warm_kib": rss_warm,
            "rss_peak_kib": peak,
            "spans_exported": exported,
            "spans_failed": failed,
            "spans_dropped": dropped,
            "spans_unsent": unsent,
        }),
    );
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

/// Log lines at error level from the SDK's own targets.
fn sdk_errors(service: &somework_testkit::service::Service) -> Vec<serde_json::Value> {
    service
        .json_logs()
        .into_iter()
        .filter(|l| {
            l["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("opentelemetry"))
                && l["level"] == "ERROR"
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_outage_warns_once_and_its_end_is_logged_even_with_sdk_logs_asked_for() {
    let _serial = serial().await;
    let receiver = OtlpReceiver::start().await;
    receiver.set_behaviour(Behaviour::Unavailable);
    // A user's filter that enables every target under `opentelemetry`,
    // the SDK's included, must not bring back an error per failed export.
    let mut service = otlp(receiver.endpoint())
        .env("RUST_LOG", "info,opentelemetry=debug")
        .start()
        .await;
    let wait = Duration::from_secs(20);
    // An export makes at most four calls (the exporter retries three times),
    // one after another; nine calls are therefore three exports, two of
    // which have failed for good. A request before each call keeps spans
    // queued for the next export.
    let fail_exports = || {
        let (service, receiver) = (&service, &receiver);
        async move {
            let target = receiver.export_calls() + 9;
            while receiver.export_calls() < target {
                let calls = receiver.export_calls();
                assert_eq!(service.get_somework().await.status, 200);
                assert!(receiver.wait_for_export_calls(calls + 1, wait).await > calls);
            }
        }
    };

    fail_exports().await;
    wait_for_message(&service, "span export failed").await;
    receiver.set_behaviour(Behaviour::Accept);
    let trace = service.get_somework().await.trace_id();
    receiver.trace(&trace, 4, wait).await;
    wait_for_message(&service, "span export recovered").await;
    assert_eq!(count_logs(&service, "span export failed"), 1);

    receiver.set_behaviour(Behaviour::Unavailable);
    fail_exports().await;
    service
        .wait_for_log(wait, |_| count_logs(&service, "span export failed") == 2)
        .await;

    assert_prompt_clean_exit(&mut service).await;
    assert_eq!(
        count_logs(&service, "span export failed"),
        2,
        "one warning per outage"
    );
    assert_eq!(count_logs(&service, "span export recovered"), 1);
    assert_eq!(
        sdk_errors(&service),
        Vec::<serde_json::Value>::new(),
        "the SDK logged failed exports itself"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_queue_warns_once_even_under_rust_log_debug() {
    const QUEUE: usize = 8;
    let _serial = serial().await;
    let hung = Blackhole::start().await;
    let mut service = otlp(format!("http://{}", hung.addr()))
        .env("OTEL_BSP_MAX_QUEUE_SIZE", QUEUE.to_string())
        .env("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", QUEUE.to_string())
        .env("OTEL_EXPORTER_OTLP_TIMEOUT", "1000")
        .env("RUST_LOG", "debug")
        .start()
        .await;

    // Four spans per request: the third request overflows the queue, which
    // stays full until the hung export times out.
    for _ in 0..5 {
        assert_eq!(service.get_somework().await.status, 200);
    }
    let warning = wait_for_message(&service, "span queue full").await;
    assert_eq!(warning["level"], "WARN", "{warning}");
    assert_eq!(warning["capacity"], QUEUE, "{warning}");
    // The export that hangs times out: the SDK would log its error now.
    wait_for_message(&service, "span export failed").await;

    assert_prompt_clean_exit(&mut service).await;
    assert_eq!(
        count_logs(&service, "span queue full"),
        1,
        "one warning per episode"
    );
    let summary = export_summary(&service, "span");
    assert!(summary["spans.dropped"].as_u64() > Some(0), "{summary}");
    assert_eq!(
        sdk_errors(&service),
        Vec::<serde_json::Value>::new(),
        "the SDK logged failed exports itself"
    );
}
