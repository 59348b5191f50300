//! Error storms against a real Bugsink, whose ingest is slow (about 40 events
//! a second on this machine): every error either reaches it or is counted by
//! reason in the service's summary, and a burst the sentry crate's own
//! transport could not carry (about 300 of 1,000 stored) is carried whole,
//! at the server's pace.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use somework_testkit::api::SomeworkApi as _;
use somework_testkit::bugsink::Bugsink;
use somework_testkit::process::rss_kib;
use somework_testkit::service::ServiceBuilder;
use somework_testkit::storm::{DeliverySummary, paced_gets};

/// How long Bugsink's count may stay still before the queue counts as drained.
const SETTLED: Duration = Duration::from_secs(5);
/// The longest a drain may take: 1,000 events at Bugsink's slowest pace.
const DRAIN_LIMIT: Duration = Duration::from_secs(120);

/// What one storm came to.
struct Storm {
    summary: DeliverySummary,
    stored: u64,
}

/// Sends `count` `/errorwork` requests at `per_second` to the release binary
/// reporting to a fresh Bugsink, keeps the service running until Bugsink's
/// count stops growing, then stops it. `None` when Bugsink is not installed.
async fn storm(count: usize, per_second: u32) -> Option<Storm> {
    let bugsink = Bugsink::start().await?;
    let mut service = ServiceBuilder::new(env!("CARGO_BIN_EXE_somework"))
        .env("OTEL_SDK_DISABLED", "true")
        .env("SENTRY_DSN", bugsink.dsn())
        .start()
        .await;
    let pid = service.pid();
    let rss_before_kib = rss_kib(pid);
    let peak = Arc::new(AtomicU64::new(rss_before_kib));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = tokio::spawn({
        let (peak, sampling) = (peak.clone(), sampling.clone());
        async move {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });

    let statuses = paced_gets(&service.url("/errorwork"), count, per_second).await;
    assert!(statuses.iter().all(|&s| s == 500), "{statuses:?}");

    let deadline = Instant::now() + DRAIN_LIMIT;
    let (mut stored, mut still_since) = (0, Instant::now());
    while still_since.elapsed() < SETTLED && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = bugsink.digested_event_count().await;
        if now != stored {
            (stored, still_since) = (now, Instant::now());
        }
    }
    sampling.store(false, Ordering::Relaxed);
    sampler.await.expect("the RSS sampler");

    let (status, _) = service.terminate(Duration::from_secs(15)).await;
    assert!(status.success(), "exit status {status:?}");
    let summary = DeliverySummary::of(&service);
    let stored = bugsink.digested_event_count().await;
    somework_testkit::results::record(
        env!("CARGO_TARGET_TMPDIR"),
        "pipeline",
        &format!("sentry storm: {count} errors at {per_second}/s into Bugsink"),
        serde_json::json!({
            "stored": stored,
            "summary": summary.figures(),
            "rss_before_kib": rss_before_kib,
            "rss_peak_kib": peak.load(Ordering::Relaxed),
        }),
    );
    assert_eq!(summary.reported, count as u64, "{summary:?}");
    assert_eq!(summary.unsent, 0, "the queue drained: {summary:?}");
    assert_eq!(
        stored,
        summary.sent,
        "Bugsink stored exactly what it accepted: {summary:?}\n{}",
        bugsink.server_log()
    );
    Some(Storm { summary, stored })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_beyond_one_sender_is_carried_whole_at_the_servers_pace() {
    const SENT: u64 = 1000;
    let Some(storm) = storm(SENT as usize, 100).await else {
        return;
    };
    assert!(
        storm.stored * 100 >= SENT * 95,
        "stored {} of {SENT}: {:?}",
        storm.stored,
        storm.summary
    );
    assert_eq!(storm.stored + storm.summary.dropped(), SENT);
}

#[tokio::test(flavor = "multi_thread")]
async fn sustained_overload_loses_errors_only_counted_by_reason() {
    const SENT: u64 = 2000;
    let Some(storm) = storm(SENT as usize, 400).await else {
        return;
    };
    let summary = storm.summary;
    // 400 a second for 5 s is more than the queue and Bugsink hold.
    assert!(summary.queue_full > 0, "{summary:?}");
    assert_eq!(storm.stored + summary.dropped(), SENT, "{summary:?}");
}
