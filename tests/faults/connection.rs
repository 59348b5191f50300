//! Connections to the collector that fail without a word: no FIN, no RST,
//! no refusal, as a pod deleted behind a Service can leave them. The
//! exporter must notice on its own, or every export waits on them.

use std::time::{Duration, Instant};

use somework_testkit::api::SomeworkApi as _;
use somework_testkit::net::{Relay, UnansweredSyns};
use somework_testkit::otlp::OtlpReceiver;

use crate::helpers::{
    answered_traces, assert_prompt_clean_exit, figures, missing_traces, otlp, serial,
    wait_for_message,
};

/// The exporter's HTTP/2 keepalive pings a connection that an export waits
/// on (after 5 s without a frame, 3 s to answer), so that bounds how long a
/// silent connection is used; the rest is the 5 s batch delay and a retry.
const SILENT_CONNECTION_DROPPED_WITHIN: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_whose_peer_vanished_is_dropped_and_exports_resume() {
    let _serial = serial().await;
    let receiver = OtlpReceiver::start().await;
    let relay = Relay::start(receiver.addr()).await;
    let mut service = otlp(format!("http://{}", relay.addr())).start().await;

    let before = answered_traces(&service, 1).await;
    receiver.trace(&before[0], 4, Duration::from_secs(10)).await;
    assert_eq!(
        relay.connections(),
        1,
        "one connection carried the first trace"
    );

    relay.go_silent();
    let silent_at = Instant::now();
    let after = answered_traces(&service, 20).await;
    let missing = missing_traces(&receiver, &after, SILENT_CONNECTION_DROPPED_WITHIN).await;
    let arrived_after = silent_at.elapsed();
    assert!(
        missing.is_empty(),
        "{} of {} traces made after the connection went silent never arrived within {SILENT_CONNECTION_DROPPED_WITHIN:?}: \
         exports kept waiting on the dead connection; service output:\n{}",
        missing.len(),
        after.len(),
        service.logs().join("\n")
    );
    assert!(
        relay.connections() >= 2,
        "the spans arrived without a new connection"
    );
    figures(
        "silent_connection",
        serde_json::json!({ "arrived_after_s": arrived_after.as_secs_f64() }),
    );
    assert_prompt_clean_exit(&mut service).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connect_whose_syns_go_unanswered_fails_the_export_within_its_timeout() {
    const EXPORT_TIMEOUT: Duration = Duration::from_secs(1);
    let _serial = serial().await;
    let unanswered = UnansweredSyns::start();
    let mut service = otlp(format!("http://{}", unanswered.addr()))
        .env(
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            EXPORT_TIMEOUT.as_millis().to_string(),
        )
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .start()
        .await;

    let started = Instant::now();
    assert_eq!(service.get_somework().await.status, 200);
    // Without a connect timeout the export would wait out the kernel's SYN
    // retries (about 2 minutes); the helper gives up after 20 s.
    wait_for_message(&service, "span export failed").await;
    let failed_after = started.elapsed();
    figures(
        "unanswered_syns",
        serde_json::json!({ "export_failed_after_s": failed_after.as_secs_f64() }),
    );
    assert_prompt_clean_exit(&mut service).await;
}
