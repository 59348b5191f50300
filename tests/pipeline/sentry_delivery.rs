//! The service's Sentry transport against the Sentry test double, which can
//! answer as Sentry does when things go wrong: a rate limit stops sending for
//! its window, a server error is a send error, a Sentry too slow for the
//! storm overflows the queue; each loss is counted in the service's summary
//! and reaches Sentry as a client report with its reason and quantity.

use std::time::Duration;

use somework::verify::check::{Check, Outcome};
use somework::verify::sentry_delivery::{self, DeliveryLine};
use somework_testkit::api::SomeworkApi as _;
use somework_testkit::net::closed_port;
use somework_testkit::sentry_double::{IngestFailure, RecordedRequest, SentryDouble};
use somework_testkit::service::{Service, ServiceBuilder};
use somework_testkit::storm::{DeliverySummary, paced_gets};

use crate::helpers::WAIT;

const PROJECT: &str = "somework";
/// The service's bound on SIGTERM, with the margin the faults suite allows.
const EXIT_WITHIN: Duration = Duration::from_secs(15);

async fn double() -> SentryDouble {
    SentryDouble::builder().project(PROJECT).start().await
}

/// The service reporting its errors to `double`, with no OTLP export.
async fn reporting_to(double: &SentryDouble) -> Service {
    ServiceBuilder::new(env!("CARGO_BIN_EXE_somework"))
        .env("OTEL_SDK_DISABLED", "true")
        .env("SENTRY_DSN", double.dsn(PROJECT))
        .start()
        .await
}

async fn error_work(service: &Service) {
    assert_eq!(service.get("/errorwork").await.status, 500);
}

async fn wait_for_message(service: &Service, part: &str) {
    service
        .wait_for_log(WAIT, |l| {
            l["message"].as_str().is_some_and(|m| m.contains(part))
        })
        .await;
}

/// Waits until the double accepted `count` envelopes carrying an event.
async fn accepted_events(double: &SentryDouble, count: usize) {
    let carries_event = |r: &RecordedRequest| {
        r.accepted()
            && r.envelope
                .as_ref()
                .is_some_and(|(_, e)| !e.items_of("event").is_empty())
    };
    let requests = double
        .wait_for_requests(WAIT, |r| {
            r.iter().filter(|r| carries_event(r)).count() >= count
        })
        .await;
    let accepted = requests.iter().filter(|r| carries_event(r)).count();
    assert!(accepted >= count, "{accepted} of {count} events accepted");
}

/// Stops the service and returns its summary.
async fn stop(mut service: Service) -> DeliverySummary {
    let (status, _) = service.terminate(EXIT_WITHIN).await;
    assert!(status.success(), "exit status {status:?}");
    DeliverySummary::of(&service)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_with_retry_after_stops_sending_for_its_window_and_counts_the_drops() {
    const WINDOW: u64 = 3;
    const IN_WINDOW: u64 = 5;
    let double = double().await;
    double.fail_next_envelope(IngestFailure::TooManyRequests {
        retry_after: WINDOW,
    });
    let service = reporting_to(&double).await;

    error_work(&service).await;
    wait_for_message(&service, "Sentry rate-limited this service").await;
    for _ in 0..IN_WINDOW {
        error_work(&service).await;
    }
    // Long enough for the transport to offer them, well inside the window.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = double.envelope_requests();
    assert_eq!(during.len(), 1, "nothing is sent inside the window");
    assert_eq!(during[0].status, 429);

    tokio::time::sleep(Duration::from_secs(WINDOW)).await;
    error_work(&service).await;
    accepted_events(&double, 1).await;
    // The 429 itself is Sentry's to count; the errors dropped while backing
    // off are the client's, and the next envelope carries them.
    assert_eq!(double.discarded("error", "ratelimit_backoff"), IN_WINDOW);
    assert_eq!(double.discarded("error", "send_error"), 0);

    let summary = stop(service).await;
    assert_eq!(
        summary,
        DeliverySummary {
            reported: IN_WINDOW + 2,
            sent: 1,
            queue_full: 0,
            rate_limited: IN_WINDOW + 1,
            network_error: 0,
            send_error: 0,
            unsent: 0,
        }
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_503_is_a_send_error_reported_by_the_next_envelope() {
    let double = double().await;
    double.fail_next_envelope(IngestFailure::ServerError(503));
    let service = reporting_to(&double).await;

    error_work(&service).await;
    wait_for_message(&service, "sentry send failed").await;
    error_work(&service).await;
    accepted_events(&double, 1).await;
    wait_for_message(&service, "sentry delivery recovered").await;
    assert_eq!(double.discarded("error", "send_error"), 1);

    let requests = double.envelope_requests();
    assert_eq!(
        requests.iter().map(|r| r.status).collect::<Vec<_>>(),
        [503, 200],
        "no retry of the failed envelope"
    );
    let envelope_bytes: u64 = requests[0]
        .header("content-length")
        .and_then(|length| length.parse().ok())
        .expect("a content-length");
    somework_testkit::results::record(
        env!("CARGO_TARGET_TMPDIR"),
        "pipeline",
        "sentry envelope of one /errorwork error",
        serde_json::json!({ "gzip_bytes": envelope_bytes }),
    );

    let summary = stop(service).await;
    assert_eq!((summary.reported, summary.sent), (2, 1));
    assert_eq!((summary.send_error, summary.dropped()), (1, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sentry_too_slow_for_the_storm_overflows_the_queue_and_every_drop_is_reported() {
    // More than the queue (1,000) and the requests in flight (8) hold.
    const STORM: usize = 1200;
    let double = double().await;
    double.hold_envelopes();
    let service = reporting_to(&double).await;

    let statuses = paced_gets(&service.url("/errorwork"), STORM, 400).await;
    assert!(statuses.iter().all(|&s| s == 500), "{statuses:?}");
    wait_for_message(&service, "sentry queue full").await;
    double.release_envelopes();
    // Everything queued is sent before the service is stopped, so the
    // shutdown's 2 s flush is not what the test measures.
    accepted_events(&double, 1000).await;

    let summary = stop(service).await;
    assert_eq!(summary.reported, STORM as u64);
    assert!(summary.queue_full > 0, "{summary:?}");
    assert_eq!(summary.unsent, 0, "{summary:?}");
    // What was queued reached Sentry, and what was not is in its client
    // reports, the last of them sent on its own at shutdown.
    let events = double.accepted_items("event");
    assert_eq!(events.len() as u64, summary.sent);
    assert_eq!(
        double.discarded("error", "queue_overflow"),
        summary.queue_full,
        "{summary:?}"
    );
    assert_eq!(summary.sent + summary.queue_full, STORM as u64);
}

/// What `somework verify` makes of a log: the latest delivery line in it,
/// and the row it adds.
fn verify_row(service: &Service) -> (Option<DeliveryLine>, Check) {
    let log = service.logs().join("\n");
    let latest = sentry_delivery::latest(&log).expect("a JSON log");
    let logs = [(
        "service".to_owned(),
        sentry_delivery::latest_of(Ok::<_, std::io::Error>(log)),
    )];
    (latest, sentry_delivery::check("service", &logs))
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_reads_the_errors_lost_to_an_unreachable_sentry_from_the_summary() {
    let sentry = closed_port();
    let mut service = ServiceBuilder::new(env!("CARGO_BIN_EXE_somework"))
        .env("OTEL_SDK_DISABLED", "true")
        .env("SENTRY_DSN", format!("http://public@{}/1", sentry.addr()))
        .start()
        .await;
    let (before, check) = verify_row(&service);
    assert_eq!(before, None, "a delivery line before any error");
    assert_eq!(check.outcome, Outcome::Pass, "{check:?}");
    assert!(check.seen.starts_with("none lost since start"), "{check:?}");

    error_work(&service).await;
    error_work(&service).await;
    wait_for_message(&service, "sentry send failed").await;
    let (status, _) = service.terminate(EXIT_WITHIN).await;
    assert!(status.success(), "exit status {status:?}");

    let (latest, check) = verify_row(&service);
    let latest = latest.expect("the shutdown summary");
    assert!(latest.at_shutdown);
    assert_eq!(latest.counts.reported, 2);
    let summary = DeliverySummary::of(&service);
    assert_eq!(latest.counts.network_error, summary.network_error);
    assert!(summary.network_error >= 1, "{summary:?}");
    assert_eq!(summary.dropped() + summary.unsent, 2, "{summary:?}");
    assert_eq!(check.outcome, Outcome::Fail, "{check:?}");
    assert!(check.seen.starts_with("2 of 2 errors lost: "), "{check:?}");
    assert!(check.seen.contains(" network error"), "{check:?}");
    assert!(
        check.details.iter().any(|line| line.contains("SENTRY_DSN")),
        "{check:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_passes_a_service_whose_errors_all_reached_sentry() {
    let double = double().await;
    let mut service = reporting_to(&double).await;
    error_work(&service).await;
    accepted_events(&double, 1).await;
    let (status, _) = service.terminate(EXIT_WITHIN).await;
    assert!(status.success(), "exit status {status:?}");

    let (latest, check) = verify_row(&service);
    let counts = latest.expect("the shutdown summary").counts;
    assert_eq!((counts.reported, counts.sent, counts.lost()), (1, 1, 0));
    assert_eq!(check.outcome, Outcome::Pass, "{check:?}");
    assert_eq!(check.seen, "none lost: 1 reported, 1 sent, 0 on their way");
}
