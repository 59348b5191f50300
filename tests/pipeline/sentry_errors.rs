//! The real collector's `sentry` exporter (contrib v0.161.0) when Sentry
//! answers ingest with an error, through the Sentry API test double.
//!
//! What the exporter does, read in its source (`sentry_exporter.go`,
//! `ratelimit.go`, `internal/ratelimit`) and asserted here:
//! - A 429 (or any answer) with `X-Sentry-Rate-Limits` sets a deadline per key
//!   and category (`transaction` for traces). Until it passes, the exporter
//!   sends nothing for that key and drops the data offered to it, logging
//!   "Dropping data due to active rate limit"; after it, data flows again.
//! - Every failed send ends in a permanent error (`consumererror.NewPermanent`
//!   in `routeByProject`): the exporter does not retry a 5xx, by design ("a
//!   single collector batch can route to multiple projects", its README). The
//!   batch is dropped and counted in `otelcol_exporter_send_failed_spans`.
//! - A 403 whose body names `ProjectId` evicts the project from the cache,
//!   looks its keys up again once and sends once more; a second rejection
//!   drops the batch.

use std::time::{Duration, Instant};

use somework_testkit::collector;
use somework_testkit::sentry_double::{IngestFailure, RecordedRequest, SentryDouble};

use crate::helpers::{
    CollectorApp, PROJECT, WAIT, assert_delivered, by_trace, metric_sum, spawn_collector_app,
};

/// The service and the collector in front of a double with one project, with
/// one trace delivered: the exporter knows the project's endpoint.
async fn warm_app() -> Option<CollectorApp> {
    let binary = collector::binary()?;
    let double = SentryDouble::builder().project(PROJECT).start().await;
    let app = spawn_collector_app(&binary, "sentry", double).await;
    let (_, trace_id) = app.call("/somework").await;
    let wanted = [(trace_id, "/somework")];
    let spans = app.delivered(&wanted).await;
    let project = app.double.project(PROJECT);
    assert_delivered(&spans, &wanted, project.id, &project.public_key);
    Some(app)
}

/// The ingest requests whose body carries a span of `trace_id`.
fn carrying(requests: &[RecordedRequest], trace_id: &str) -> Vec<RecordedRequest> {
    requests
        .iter()
        .filter(|r| r.trace_ids().iter().any(|id| id == trace_id))
        .cloned()
        .collect()
}

/// Waits for a collector log line containing `text`; panics with the log if
/// none comes.
async fn logged(app: &CollectorApp, text: &str) -> String {
    let lines = app
        .collector
        .wait_for_logs(WAIT, |lines| lines.iter().any(|l| l.contains(text)))
        .await;
    lines
        .iter()
        .find(|l| l.contains(text))
        .cloned()
        .unwrap_or_else(|| panic!("the collector never logged {text:?}:\n{}", lines.join("\n")))
}

/// The spans of failed sends, from the collector's own metrics (whatever
/// labels it adds; only the sentry exporter can fail here).
async fn failed_spans(app: &CollectorApp) -> f64 {
    metric_sum(
        &app.collector.metrics().await,
        "otelcol_exporter_send_failed_spans",
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rate_limit_stops_the_exporter_for_its_window_and_data_after_it_arrives() {
    let Some(app) = warm_app().await else {
        return;
    };
    let double = &app.double;
    const WINDOW: Duration = Duration::from_secs(4);
    double.fail_next_ingest(IngestFailure::RateLimited {
        seconds: WINDOW.as_secs(),
        categories: "transaction".to_owned(),
    });

    let (_, limited) = app.call("/somework").await;
    let requests = double
        .wait_for_requests(WAIT, |r| r.iter().any(|r| r.status == 429))
        .await;
    let answer = requests
        .iter()
        .find(|r| r.status == 429)
        .expect("the exporter never sent the trace that met the rate limit");
    assert!(answer.trace_ids().contains(&limited), "{answer:?}");
    let window_ends = answer.at + WINDOW;

    // Offered to the exporter inside the window: dropped without a request.
    let (_, during) = app.call("/somework").await;
    let line = logged(&app, "Dropping data due to active rate limit").await;
    assert!(
        line.replace(' ', "").contains(r#""category":"trace""#),
        "{line}"
    );
    assert!(
        Instant::now() < window_ends,
        "the test was too slow to send inside the window"
    );

    // A second past the exporter's deadline (it rounds up to whole seconds,
    // counted from when it read the answer).
    tokio::time::sleep_until((window_ends + Duration::from_secs(1)).into()).await;
    let (_, after) = app.call("/somework").await;
    let wanted = [(after.clone(), "/somework")];
    let spans = app.delivered(&wanted).await;
    let project = double.project(PROJECT);
    assert_delivered(&spans, &wanted, project.id, &project.public_key);

    let ingest = double.ingest_requests();
    let in_window: Vec<_> = ingest
        .iter()
        .filter(|r| r.at > answer.at && r.at < window_ends)
        .collect();
    assert!(
        in_window.is_empty(),
        "the exporter sent during the rate limit: {in_window:?}"
    );
    assert_eq!(ingest.iter().filter(|r| r.status == 429).count(), 1);
    // Neither trace is retried after the window: the exporter dropped both.
    let accepted = double.spans();
    let traces = by_trace(&accepted);
    for (what, trace_id) in [("limited", &limited), ("during", &during)] {
        assert!(!traces.contains_key(trace_id), "the {what} trace arrived");
    }
    assert!(carrying(&ingest, &during).is_empty());
    assert_eq!(carrying(&ingest, &limited).len(), 1);
    // Four spans per /somework trace, both traces counted as failed.
    assert_eq!(failed_spans(&app).await, 8.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_error_drops_the_batch_without_a_retry_and_the_next_one_arrives() {
    let Some(app) = warm_app().await else {
        return;
    };
    let double = &app.double;
    double.fail_next_ingest(IngestFailure::ServerError(503));

    let (_, failed) = app.call("/somework").await;
    let requests = double
        .wait_for_requests(WAIT, |r| r.iter().any(|r| r.status == 503))
        .await;
    assert!(
        requests.iter().any(|r| r.status == 503),
        "the exporter never sent the trace: {requests:?}"
    );
    let line = logged(&app, "Failed to send data to project").await;
    assert!(line.contains("status 503"), "{line}");

    let (_, next) = app.call("/somework").await;
    let wanted = [(next, "/somework")];
    let spans = app.delivered(&wanted).await;
    let project = double.project(PROJECT);
    assert_delivered(&spans, &wanted, project.id, &project.public_key);

    let sends = carrying(&double.ingest_requests(), &failed);
    let statuses: Vec<_> = sends.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [503], "the failed trace was sent again");
    assert!(!by_trace(&double.spans()).contains_key(&failed));
    assert_eq!(failed_spans(&app).await, 4.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_project_id_rejection_refreshes_the_project_once() {
    let Some(app) = warm_app().await else {
        return;
    };
    let double = &app.double;
    let project = double.project(PROJECT);
    let keys_path = format!("/api/0/projects/{}/{PROJECT}/keys/", double.org());
    let key_lookups = || {
        double
            .requests()
            .iter()
            .filter(|r| r.path == keys_path)
            .count()
    };
    // The start-up lookup found the project through the org's key list.
    assert_eq!(key_lookups(), 0);

    // One rejection: evicted, looked up again, sent again, delivered once.
    double.fail_next_ingest(IngestFailure::ProjectIdRejected);
    let (_, refreshed) = app.call("/somework").await;
    let wanted = [(refreshed.clone(), "/somework")];
    let spans = app.delivered(&wanted).await;
    assert_delivered(&spans, &wanted, project.id, &project.public_key);
    logged(
        &app,
        "Project may have been deleted, removing from cache and retrying",
    )
    .await;
    let sends = carrying(&double.ingest_requests(), &refreshed);
    let statuses: Vec<_> = sends.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [403, 200]);
    assert_eq!(key_lookups(), 1, "one lookup after the rejection");
    let lookup = double
        .requests()
        .into_iter()
        .find(|r| r.path == keys_path)
        .expect("looked up above");
    assert!(sends[0].at < lookup.at && lookup.at < sends[1].at);

    // Rejected again after the refresh: given up, not looked up a second time.
    double.fail_next_ingest(IngestFailure::ProjectIdRejected);
    double.fail_next_ingest(IngestFailure::ProjectIdRejected);
    let (_, rejected) = app.call("/somework").await;
    logged(&app, "Failed to send data to project on retry").await;
    let (_, next) = app.call("/somework").await;
    let wanted = [(next, "/somework")];
    let spans = app.delivered(&wanted).await;
    assert_delivered(&spans, &wanted, project.id, &project.public_key);
    let statuses: Vec<_> = carrying(&double.ingest_requests(), &rejected)
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [403, 403]);
    assert_eq!(key_lookups(), 2, "one lookup per rejected batch");
    assert!(!by_trace(&double.spans()).contains_key(&rejected));
}
