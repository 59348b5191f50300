//! Logs as OpenTelemetry log records: each carries the ids of the span it was
//! written in, the error path logs one line per error, the exporter's own
//! crates never reach the bridge, and `OTEL_LOGS_EXPORTER` is honoured.
//! (Refused values are in `config`; through the real collector to Sentry in
//! the pipeline suite; a down collector in the faults suite.)

use somework_testkit::api::SomeworkApi as _;
use somework_testkit::otlp::{Attr, ReceivedLog, ReceivedSpan};

use crate::helpers::{TestApp, WAIT, one, spawn_app_with};

/// The record whose body is `body` in the trace `trace_id`.
fn record<'a>(logs: &'a [ReceivedLog], trace_id: &str, body: &str) -> &'a ReceivedLog {
    let matching: Vec<_> = logs
        .iter()
        .filter(|l| l.trace_id() == trace_id && l.body().contains(body))
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "expected one {body:?} record of {trace_id} in {logs:#?}"
    );
    matching[0]
}

/// The spans of `trace_id` and every log record of that trace, once both
/// the request line and the error line have arrived.
async fn trace_and_logs(app: &TestApp, trace_id: &str) -> (Vec<ReceivedSpan>, Vec<ReceivedLog>) {
    let spans = app.spans_of(trace_id, 4).await;
    let logs = app
        .receiver
        .wait_for_logs(WAIT, |logs| {
            logs.iter().filter(|l| l.trace_id() == trace_id).count() >= 2
        })
        .await;
    (spans, logs)
}

#[tokio::test(flavor = "multi_thread")]
async fn each_record_carries_the_ids_of_the_span_it_was_written_in() {
    // Every export stack's debug logs pass the filter, so that any of them
    // reaching the bridge would show.
    let app = spawn_app_with(|s| {
        s.env("ERROR_RATE", "1")
            .env("OTEL_BLRP_SCHEDULE_DELAY", "100")
            .env("OTEL_SERVICE_NAME", "logs-test")
            .env("RUST_LOG", "debug")
    })
    .await;

    for (path, handled, severity) in [("/somework", true, "WARN"), ("/errorwork", false, "ERROR")] {
        let reply = app.get(path).await;
        let trace_id = reply.trace_id();
        let (spans, logs) = trace_and_logs(&app, &trace_id).await;
        let server = one(&spans, &format!("GET {path}"));
        let error_work = one(&spans, "ErrorWork");

        // The request line: in the SERVER span, typed as written.
        let request = record(&logs, &trace_id, "request");
        assert_eq!(request.span_id(), server.span_id(), "{path}: {request:#?}");
        assert_eq!(request.severity_text(), "INFO");
        assert_eq!(
            request.attribute("status"),
            Some(Attr::Int(i64::from(reply.status)))
        );
        assert!(matches!(
            request.attribute("duration_ms"),
            Some(Attr::Double(_))
        ));
        assert_eq!(
            request.resource.get("service.name").map(String::as_str),
            Some("logs-test")
        );

        // The error line: in the span the error happened in, the one its
        // Sentry event names, with the error's message as its body.
        let error = record(&logs, &trace_id, "ErrorWork failed");
        assert_eq!(error.span_id(), error_work.span_id(), "{path}: {error:#?}");
        assert_eq!(error.severity_text(), severity, "{path}");
        assert_eq!(error.attribute("handled"), Some(Attr::Bool(handled)));
        assert_eq!(error.attribute("sentry.event_id"), None, "Sentry is off");
        let errors = logs
            .iter()
            .filter(|l| l.trace_id() == trace_id && l.body().contains("ErrorWork"))
            .count();
        assert_eq!(errors, 1, "{path}: one line per error");

        // stdout keeps its lines, with the same ids.
        let line = app
            .service
            .wait_for_log(WAIT, |l| {
                l["message"] == "request" && l["trace_id"] == trace_id.as_str()
            })
            .await;
        assert_eq!(line["span_id"], server.span_id().as_str());
        let line = app
            .service
            .wait_for_log(WAIT, |l| {
                l["trace_id"] == trace_id.as_str()
                    && l["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("ErrorWork failed"))
            })
            .await;
        assert_eq!(line["level"], severity);
        assert_eq!(line["span_id"], error_work.span_id().as_str());
        assert_eq!(line["handled"], handled);
    }

    // The export stack logged at debug level the whole time, on stdout only.
    let logs = app.receiver.logs();
    let stack: Vec<_> = logs
        .iter()
        .filter(|l| {
            // A `log` crate record keeps its real target in `log.target`.
            let target = l.attribute("log.target");
            let target = target.as_ref().and_then(Attr::as_str).unwrap_or(&l.scope);
            [
                "opentelemetry",
                "h2",
                "hyper",
                "tonic",
                "tower::",
                "reqwest",
                "rustls",
            ]
            .iter()
            .any(|prefix| target.starts_with(prefix))
        })
        .collect();
    assert!(stack.is_empty(), "bridged: {stack:#?}");
    let stdout = app.service.json_logs();
    assert!(
        stdout
            .iter()
            .any(|l| l["target"].as_str().is_some_and(|t| t.starts_with("h2"))),
        "the test needs the export stack's own logs on stdout"
    );
    assert!(
        logs.iter().all(|l| l.scope.starts_with("somework")),
        "scopes: {:#?}",
        logs.iter()
            .filter(|l| !l.scope.starts_with("somework"))
            .collect::<Vec<_>>()
    );
}

/// One traced `/somework` request with `OTEL_LOGS_EXPORTER=exporter`, its
/// spans received and the service stopped: the app and the trace id.
async fn one_request_then_stop(exporter: &str) -> (TestApp, String) {
    let mut app = spawn_app_with(|s| {
        s.env("OTEL_LOGS_EXPORTER", exporter)
            .env("OTEL_BLRP_SCHEDULE_DELAY", "100")
    })
    .await;
    let trace_id = app.get_somework().await.trace_id();
    app.spans_of(&trace_id, 4).await;
    let (status, _) = app.terminate().await;
    assert!(status.success(), "{status:?}");
    (app, trace_id)
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_exporter_none_exports_no_record_and_keeps_the_lines() {
    let (app, trace_id) = one_request_then_stop("none").await;
    assert_eq!(app.receiver.log_export_calls(), 0, "a log was exported");
    assert!(
        app.service
            .json_logs()
            .iter()
            .any(|l| l["message"] == "request" && l["trace_id"] == trace_id.as_str()),
        "the request line is still printed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_exporter_console_prints_records_instead_of_sending_them() {
    let (app, trace_id) = one_request_then_stop("console").await;
    assert_eq!(app.receiver.log_export_calls(), 0, "a log went over OTLP");
    let stdout = app.service.logs().join("\n");
    assert!(
        stdout.contains(&format!("TraceId: {trace_id}")),
        "no record of {trace_id} printed:\n{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trace_that_is_not_sampled_exports_its_error_record_but_not_its_request_record() {
    let app = spawn_app_with(|s| {
        s.env("ERROR_RATE", "1")
            .env("OTEL_BLRP_SCHEDULE_DELAY", "100")
            .env("OTEL_TRACES_SAMPLER", "always_off")
    })
    .await;

    let first = app.get("/errorwork").await.trace_id();
    let second = app.get("/errorwork").await.trace_id();
    // Records are exported in the order they were written, and both of the
    // first request's were written before it answered: once the second
    // request's error record is in, any request record of the first is too.
    let logs = app
        .receiver
        .wait_for_logs(WAIT, |logs| {
            logs.iter()
                .any(|l| l.trace_id() == second && l.body().contains("ErrorWork failed"))
        })
        .await;

    let error = record(&logs, &first, "ErrorWork failed");
    assert_eq!(error.severity_text(), "ERROR");
    assert_eq!(error.attribute("handled"), Some(Attr::Bool(false)));
    let requests: Vec<_> = logs.iter().filter(|l| l.body() == "request").collect();
    assert!(requests.is_empty(), "exported: {requests:#?}");
    assert!(app.receiver.spans().is_empty(), "no span is sampled");
}
