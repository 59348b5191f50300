//! Requests cost no latency when the collector is down, slow or failing (a
//! Sentry that refuses or hangs: `sentry.rs`). A healthy and a faulty
//! service run at the same time and take turns, so machine noise hits both
//! alike. The bounds are loose on purpose; the failure they catch is a
//! request that waits for an export, which costs seconds, not percent.

use std::time::Duration;

use somework_testkit::net::{Blackhole, closed_port};
use somework_testkit::otlp::{Behaviour, OtlpReceiver};

use crate::helpers::{
    MAX_EXPORT_BATCH, assert_near_healthy, assert_prompt_clean_exit, count_logs, export_summary,
    interleaved_latencies, otlp, serial, wait_for_message,
};

#[tokio::test(flavor = "multi_thread")]
async fn a_collector_down_at_startup_costs_no_latency_and_warns_once() {
    let _serial = serial().await;
    let receiver = OtlpReceiver::start().await;
    let mut healthy = otlp(receiver.endpoint()).start().await;
    let closed = closed_port();
    let mut down = otlp(format!("http://{}", closed.addr()))
        .env("OTEL_EXPORTER_OTLP_TIMEOUT", "300")
        .start()
        .await;

    let latencies = interleaved_latencies(&[&healthy, &down], "/somework", 300).await;
    assert_near_healthy("collector down", &latencies[0], &latencies[1]);

    wait_for_message(&down, "span export failed").await;
    // Counted once the process is gone, so every line it printed is read.
    assert_prompt_clean_exit(&mut down).await;
    let summary = export_summary(&down, "span");
    assert!(
        summary["spans.failed"].as_u64() > Some(MAX_EXPORT_BATCH),
        "more than one batch failed, so the warning had occasion to repeat: {summary}"
    );
    assert_eq!(
        count_logs(&down, "span export failed"),
        1,
        "one warning per outage"
    );
    assert_prompt_clean_exit(&mut healthy).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_failing_and_hung_collectors_do_not_slow_requests() {
    let _serial = serial().await;
    let healthy_receiver = OtlpReceiver::start().await;
    let slow_receiver = OtlpReceiver::start().await;
    slow_receiver.set_behaviour(Behaviour::Delay(Duration::from_secs(3)));
    let failing_receiver = OtlpReceiver::start().await;
    failing_receiver.set_behaviour(Behaviour::Unavailable);
    // Accepts the connection and never answers: each export waits out its
    // whole timeout.
    let hung_collector = Blackhole::start().await;

    let healthy = otlp(healthy_receiver.endpoint()).start().await;
    let slow = otlp(slow_receiver.endpoint()).start().await;
    let failing = otlp(failing_receiver.endpoint()).start().await;
    let hung = otlp(format!("http://{}", hung_collector.addr()))
        .start()
        .await;

    let latencies =
        interleaved_latencies(&[&healthy, &slow, &failing, &hung], "/somework", 300).await;
    assert_near_healthy("slow collector", &latencies[0], &latencies[1]);
    assert_near_healthy("failing collector", &latencies[0], &latencies[2]);
    assert_near_healthy("hung collector", &latencies[0], &latencies[3]);
    assert!(slow_receiver.export_calls() > 0 && failing_receiver.export_calls() > 0);
    assert!(
        hung_collector.accepted(1, Duration::ZERO).await > 0,
        "the service never connected to the hung collector"
    );

    for mut service in [healthy, slow, failing, hung] {
        assert_prompt_clean_exit(&mut service).await;
    }
}
