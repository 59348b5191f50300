//! Log export against a collector that is down: requests are not slowed, and
//! stdout gets one warning per outage, not one per record or per batch. The
//! services export logs only (`OTEL_TRACES_EXPORTER=none`), so what is
//! measured is the log path; the queue is small, so it overflows.

use std::collections::BTreeMap;
use std::time::Duration;

use somework_testkit::net::{Blackhole, closed_port};
use somework_testkit::otlp::OtlpReceiver;
use somework_testkit::service::{Service, ServiceBuilder};

use crate::helpers::{
    assert_near_healthy, assert_prompt_clean_exit, export_summary, interleaved_latencies, otlp,
    serial, wait_for_message,
};

/// Log records the queue holds: four requests' worth of lines overflow it
/// within one schedule delay.
const QUEUE: &str = "8";

fn logs_only(endpoint: String) -> ServiceBuilder {
    otlp(endpoint)
        .env("OTEL_TRACES_EXPORTER", "none")
        .env("OTEL_BLRP_MAX_QUEUE_SIZE", QUEUE)
        .env("OTEL_BLRP_SCHEDULE_DELAY", "100")
        .env("OTEL_EXPORTER_OTLP_TIMEOUT", "300")
        .env("ERROR_RATE", "0.5")
}

/// The warning and error lines the service printed, by message.
fn warnings(service: &Service) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in service.json_logs() {
        if line["level"] == "WARN" || line["level"] == "ERROR" {
            let message = line["message"].as_str().unwrap_or_default();
            // Handled errors of the simulated work are not about export.
            if !message.starts_with("ErrorWork failed") {
                *counts.entry(message.to_owned()).or_default() += 1;
            }
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread")]
async fn a_down_or_hung_collector_costs_logging_requests_nothing_and_warns_once() {
    let _serial = serial().await;
    let receiver = OtlpReceiver::start().await;
    let mut healthy = logs_only(receiver.endpoint()).start().await;
    let closed = closed_port();
    let down = logs_only(format!("http://{}", closed.addr())).start().await;
    // Accepts the connection and never answers: each export waits out its timeout.
    let blackhole = Blackhole::start().await;
    let hung = logs_only(format!("http://{}", blackhole.addr()))
        .start()
        .await;

    let latencies = interleaved_latencies(&[&healthy, &down, &hung], "/somework", 300).await;
    assert_near_healthy("logs, collector down", &latencies[0], &latencies[1]);
    assert_near_healthy("logs, collector hung", &latencies[0], &latencies[2]);
    assert!(
        receiver
            .wait_for_logs(Duration::from_secs(10), |logs| logs
                .iter()
                .any(|l| l.body() == "request"))
            .await
            .iter()
            .any(|l| l.body() == "request"),
        "the healthy service's records never arrived: the test proves nothing"
    );

    for mut service in [down, hung] {
        wait_for_message(&service, "log export failed").await;
        assert_prompt_clean_exit(&mut service).await;
        let summary = export_summary(&service, "log");
        let failed = summary["logs.failed"].as_u64().unwrap_or_default();
        let dropped = summary["logs.dropped"].as_u64().unwrap_or_default();
        assert!(
            failed > 8 && dropped > 100,
            "the outage had occasion to repeat its warnings: {summary}"
        );
        // 300 requests, hundreds of records lost: one warning of each kind.
        let warnings = warnings(&service);
        let repeated: Vec<_> = warnings.iter().filter(|(_, n)| **n > 1).collect();
        assert!(repeated.is_empty(), "repeated warnings: {warnings:#?}");
        assert!(
            warnings.keys().any(|m| m.starts_with("log queue full")),
            "{warnings:#?}"
        );
        assert!(warnings.len() <= 4, "{warnings:#?}");
    }
    assert_prompt_clean_exit(&mut healthy).await;
}
