//! A Sentry that refuses connections or never answers costs requests no
//! latency and the shutdown no time, even through an error storm larger than
//! the transport's queue; and every error is accounted for, sent, dropped by
//! reason or unsent at exit.

use std::time::{Duration, Instant};

use somework_testkit::api::SomeworkApi as _;
use somework_testkit::bugsink::Bugsink;
use somework_testkit::net::{Blackhole, closed_port};
use somework_testkit::otlp::OtlpReceiver;
use somework_testkit::service::{Service, ServiceBuilder};
use somework_testkit::storm::{DeliverySummary, paced_gets};

use crate::helpers::{
    assert_near_healthy, assert_prompt_clean_exit, figures, interleaved_latencies, otlp, serial,
};

/// More errors than the transport's queue (1,000) and its requests in
/// flight (8) hold.
const STORM: usize = 1200;

/// Waits until Bugsink digested `count` events.
async fn wait_for_stored(bugsink: &Bugsink, count: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let stored = bugsink.digested_event_count().await;
        if stored >= count || Instant::now() >= deadline {
            return stored;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Stops each service within the shutdown bound and returns the summaries.
async fn stop_all(services: Vec<Service>) -> Vec<DeliverySummary> {
    let mut summaries = Vec::new();
    for mut service in services {
        assert_prompt_clean_exit(&mut service).await;
        summaries.push(DeliverySummary::of(&service));
    }
    summaries
}

/// A healthy Sentry (a real Bugsink), one refusing connections and one that
/// accepts and never answers, each behind its own service with an error on
/// every request.
async fn three_sentries(
    bugsink: &Bugsink,
    receiver: &OtlpReceiver,
    hung: &Blackhole,
) -> [Service; 3] {
    // ERROR_RATE=1: every request sends a Sentry event.
    let reporting_to = |dsn: String| {
        otlp(receiver.endpoint())
            .env("ERROR_RATE", "1")
            .env("SENTRY_DSN", dsn)
    };
    let closed = closed_port();
    [
        reporting_to(bugsink.dsn()).start().await,
        reporting_to(format!("http://public@{}/1", closed.addr()))
            .start()
            .await,
        reporting_to(format!("http://public@{}/1", hung.addr()))
            .start()
            .await,
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_or_hung_sentry_does_not_affect_requests_or_shutdown() {
    let _serial = serial().await;
    // The baseline reports to a healthy Sentry (a real Bugsink), so the
    // comparison measures what a broken Sentry costs, not what reporting does.
    let Some(bugsink) = Bugsink::start().await else {
        return;
    };
    let receiver = OtlpReceiver::start().await;
    let hung = Blackhole::start().await;
    let [healthy, refused, hanging] = three_sentries(&bugsink, &receiver, &hung).await;

    const ROUNDS: usize = 200;
    let latencies =
        interleaved_latencies(&[&healthy, &refused, &hanging], "/somework", ROUNDS).await;
    assert_near_healthy("Sentry refusing connections", &latencies[0], &latencies[1]);
    assert_near_healthy("Sentry hanging", &latencies[0], &latencies[2]);
    // The baseline really reported: all its events reached Bugsink (only
    // the healthy service can), at Bugsink's pace, through the queue.
    let stored = wait_for_stored(&bugsink, ROUNDS as u64).await;
    figures(
        "healthy Sentry baseline",
        serde_json::json!({ "errors_reported": ROUNDS, "events_stored": stored }),
    );
    assert_eq!(stored, ROUNDS as u64);

    let [healthy, refused, hanging] = stop_all(vec![healthy, refused, hanging])
        .await
        .try_into()
        .expect("three summaries");
    assert_eq!(healthy.sent, ROUNDS as u64, "{healthy:?}");
    assert_eq!(refused.network_error, ROUNDS as u64, "{refused:?}");
    // The hung Sentry's requests time out or are still waiting at exit.
    assert_eq!(hanging.sent, 0, "{hanging:?}");
    assert_eq!(hanging.reported, ROUNDS as u64, "{hanging:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_error_storm_into_a_refusing_or_hung_sentry_costs_no_latency() {
    let _serial = serial().await;
    let Some(bugsink) = Bugsink::start().await else {
        return;
    };
    let receiver = OtlpReceiver::start().await;
    let hung = Blackhole::start().await;
    let [healthy, refused, hanging] = three_sentries(&bugsink, &receiver, &hung).await;

    let latencies =
        interleaved_latencies(&[&healthy, &refused, &hanging], "/somework", STORM).await;
    assert_near_healthy("error storm, Sentry refusing", &latencies[0], &latencies[1]);
    assert_near_healthy("error storm, Sentry hanging", &latencies[0], &latencies[2]);

    let [healthy, refused, hanging] = stop_all(vec![healthy, refused, hanging])
        .await
        .try_into()
        .expect("three summaries");
    for (label, summary) in [
        ("healthy", &healthy),
        ("refused", &refused),
        ("hanging", &hanging),
    ] {
        figures(&format!("error storm, Sentry {label}"), summary.figures());
        assert_eq!(summary.reported, STORM as u64, "{label}: {summary:?}");
    }
    assert!(refused.network_error > 0, "{refused:?}");
    // Nothing leaves a hung Sentry's queue: it overflows, and says so.
    assert!(hanging.queue_full > 0, "{hanging:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn on_one_cpu_an_error_storm_into_a_hung_sentry_still_exits_in_time() {
    let _serial = serial().await;
    let hung = Blackhole::start().await;
    let mut service = ServiceBuilder::new(env!("CARGO_BIN_EXE_somework"))
        .env("OTEL_SDK_DISABLED", "true")
        .env("TOKIO_WORKER_THREADS", "1")
        .env("SENTRY_DSN", format!("http://public@{}/1", hung.addr()))
        .wrapped_in(&["taskset", "-c", "0"])
        .start()
        .await;

    let statuses = paced_gets(&service.url("/errorwork"), STORM, 400).await;
    assert!(statuses.iter().all(|&s| s == 500), "{statuses:?}");
    let took = assert_prompt_clean_exit(&mut service).await;
    let summary = DeliverySummary::of(&service);
    figures(
        "error storm into a hung Sentry, SIGTERM on one CPU",
        serde_json::json!({ "exit_ms": took.as_millis(), "summary": summary.figures() }),
    );
    assert_eq!(summary.reported, STORM as u64, "{summary:?}");
    assert!(summary.queue_full > 0 && summary.unsent > 0, "{summary:?}");
}
