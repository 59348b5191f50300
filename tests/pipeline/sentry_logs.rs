//! Logs in Sentry beside their error and their trace: the service's log
//! records through the real collector's `logs` pipeline to the Sentry API
//! test double's logs endpoint, its error events to a real Bugsink, and the
//! ids that join the three.

use std::collections::BTreeMap;

use serde_json::Value;
use somework_testkit::api::SomeworkApi as _;
use somework_testkit::bugsink::Bugsink;
use somework_testkit::collector::{self, CollectorBuilder};
use somework_testkit::otlp::{Attr, ReceivedLog};
use somework_testkit::sentry_double::{IngestedLog, IngestedSpan, SentryDouble};

use crate::helpers::{
    EVENT_WAIT, PROJECT, WAIT, by_trace, complete, pretty, sentry_collector, sentry_env,
    service_builder,
};

const ERROR_MESSAGE: &str = "ErrorWork failed: the simulated dependency is unavailable";

/// The log records of each trace in `wanted` once its request line and its
/// error line have both arrived.
fn complete_logs(logs: &[IngestedLog], wanted: &[(String, &str)]) -> bool {
    wanted.iter().all(|(trace_id, _)| {
        let of_trace = logs.iter().filter(|l| l.log.trace_id() == *trace_id);
        of_trace.count() >= 2
    })
}

/// The one record of `trace_id` whose body starts with `body`.
fn record<'a>(logs: &'a [IngestedLog], trace_id: &str, body: &str) -> &'a IngestedLog {
    let matching: Vec<_> = logs
        .iter()
        .filter(|l| l.log.trace_id() == trace_id && l.log.body().starts_with(body))
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "expected one {body:?} record of {trace_id}: {:#?}",
        logs.iter().map(|l| &l.log).collect::<Vec<&ReceivedLog>>()
    );
    matching[0]
}

fn span_id(spans: &[&IngestedSpan], name: &str) -> String {
    spans
        .iter()
        .find(|s| s.span.name() == name)
        .unwrap_or_else(|| panic!("no {name} span"))
        .span
        .span_id()
}

#[tokio::test(flavor = "multi_thread")]
async fn log_records_reach_sentry_logs_with_the_ids_of_their_error_event_and_spans() {
    let Some(binary) = collector::binary() else {
        return;
    };
    let Some(bugsink) = Bugsink::start().await else {
        return;
    };
    let double = SentryDouble::builder().project(PROJECT).start().await;
    let collector = sentry_collector(&binary, "sentry", &double).await;
    let service = service_builder(&collector, "somework")
        .env("OTEL_BLRP_SCHEDULE_DELAY", "100")
        .env("ERROR_RATE", "1")
        .env("SENTRY_DSN", bugsink.dsn())
        .start()
        .await;

    // One unhandled error, one handled (ErrorWork fails, MiddleWork recovers).
    let mut wanted = Vec::new();
    for (route, status) in [("/errorwork", 500), ("/somework", 200)] {
        let reply = service.get(route).await;
        assert_eq!(reply.status, status, "{route}: {}", reply.body);
        wanted.push((reply.trace_id(), route));
    }
    let spans = double
        .wait_for(WAIT, |spans| complete(spans, &wanted))
        .await;
    let project = double.project(PROJECT);
    // (Not `assert_delivered`: the handled failure leaves ErrorWork in Error
    // under a succeeding request.)
    assert!(
        spans.iter().all(|s| s.project_id == project.id),
        "{spans:#?}"
    );
    let logs = double
        .wait_for_logs(WAIT, |logs| complete_logs(logs, &wanted))
        .await;
    let events = bugsink.wait_for_events(2, EVENT_WAIT).await;
    let events_by_trace: BTreeMap<&str, &Value> = events
        .iter()
        .filter_map(|e| Some((e["data"]["contexts"]["trace"]["trace_id"].as_str()?, e)))
        .collect();

    let traces = by_trace(&spans);
    for (trace_id, route) in &wanted {
        let trace = &traces[trace_id];
        let event = events_by_trace
            .get(trace_id.as_str())
            .unwrap_or_else(|| panic!("no Bugsink event of {trace_id}: {}", pretty(&events)));
        let data = &event["data"];
        let error_work = span_id(trace, "ErrorWork");
        assert_eq!(data["contexts"]["trace"]["span_id"], error_work.as_str());

        // The error line: the event's trace and span, the event's id, the
        // error's message; a warning when handled, an error when not.
        let error = record(&logs, trace_id, ERROR_MESSAGE);
        assert_eq!(error.log.span_id(), error_work, "{route}: {error:#?}");
        let event_id = data["event_id"]
            .as_str()
            .unwrap_or_default()
            .replace('-', "");
        assert_eq!(event_id.len(), 32, "{data:#}");
        assert_eq!(
            error
                .log
                .attribute("sentry.event_id")
                .and_then(|id| id.as_str().map(|id| id.replace('-', ""))),
            Some(event_id),
            "{route}"
        );
        let handled = *route == "/somework";
        assert_eq!(error.log.attribute("handled"), Some(Attr::Bool(handled)));
        assert_eq!(
            error.log.severity_text(),
            if handled { "WARN" } else { "ERROR" }
        );

        // The request line: the SERVER span's ids.
        let request = record(&logs, trace_id, "request");
        assert_eq!(
            request.log.span_id(),
            span_id(trace, &format!("GET {route}"))
        );

        for log in [error, request] {
            assert_eq!(log.project_id, project.id, "routed like the spans");
            assert_eq!(log.sentry_key, project.public_key);
            assert_eq!(
                log.log.resource.get("service.name").map(String::as_str),
                Some("somework")
            );
        }
    }

    // The exchange: the exporter's logs URL (built, like the traces URL, from
    // the DSN's scheme and host), gzip'd protobuf, the project's key only.
    let logs_requests: Vec<_> = double
        .requests()
        .into_iter()
        .filter(|r| r.is_logs_ingest())
        .collect();
    assert!(!logs_requests.is_empty());
    for r in &logs_requests {
        assert_eq!(r.method, "POST");
        assert_eq!(
            r.uri,
            format!(
                "http://127.0.0.1/api/{}/integration/otlp/v1/logs/",
                project.id
            )
        );
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
        assert_eq!(r.header("authorization"), None);
        assert_eq!(r.status, 200, "{r:?}");
    }
}

/// `tail-sampling.yaml` samples traces only: a plain trace it drops still has
/// its log record delivered, beside an error trace it keeps.
#[tokio::test(flavor = "multi_thread")]
async fn tail_sampling_drops_a_plain_trace_but_never_its_logs() {
    let Some(binary) = collector::binary() else {
        return;
    };
    let double = SentryDouble::builder().project(PROJECT).start().await;
    let mut builder = CollectorBuilder::new(&binary, "tail-sampling")
        .set("exporters.sentry.http.proxy_url", &double.url())
        .set("processors.tail_sampling.decision_wait", "1s")
        .set("processors.batch.timeout", "200ms")
        // Keep errors only: no share of plain traces, no slow ones.
        .env("TAIL_SAMPLING_PERCENT", "0")
        .env("TAIL_SAMPLING_LATENCY_MS", "60000");
    for (key, value) in sentry_env(&double) {
        builder = builder.env(key, value);
    }
    let collector = builder.start().await;
    let service = service_builder(&collector, "somework")
        .env("OTEL_BLRP_SCHEDULE_DELAY", "100")
        .start()
        .await;

    let plain = service.get("/somework").await.trace_id();
    let error = service.get("/errorwork").await.trace_id();
    let kept = [(error.clone(), "/errorwork")];
    let spans = double.wait_for(WAIT, |spans| complete(spans, &kept)).await;
    let logs = double
        .wait_for_logs(WAIT, |logs| {
            [&plain, &error]
                .iter()
                .all(|id| logs.iter().any(|l| l.log.trace_id() == **id))
        })
        .await;
    assert!(
        !by_trace(&spans).contains_key(&plain),
        "the plain trace was kept: the test proves nothing"
    );
    for trace_id in [&plain, &error] {
        let request = record(&logs, trace_id, "request");
        assert_eq!(request.project_id, double.project(PROJECT).id);
    }
}
