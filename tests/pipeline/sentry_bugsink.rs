//! What the real binary sends to Sentry, as stored by a real Bugsink (a
//! Sentry-compatible server). Spans go to an in-process OTLP receiver, so each
//! error can be matched to the exported span it happened in.

use serde_json::Value;
use somework_testkit::api::SomeworkApi as _;

use crate::helpers::{ENVIRONMENT, pretty, spawn_bugsink_app};

const ERROR_TYPE: &str = "WorkError";
const ERROR_MESSAGE: &str = "ErrorWork failed: the simulated dependency is unavailable";

/// The lines of `async fn error_work` in src/work.rs: from its signature to
/// the closing brace at the start of a line.
fn error_work_lines() -> std::ops::RangeInclusive<u64> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/work.rs");
    let source = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let lines: Vec<&str> = source.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with("async fn error_work("))
        .unwrap_or_else(|| panic!("no `async fn error_work(` in {path}"));
    let end = start
        + lines[start..]
            .iter()
            .position(|l| *l == "}")
            .unwrap_or_else(|| panic!("error_work has no closing brace in {path}"));
    // Lines count from 1.
    (start as u64 + 1)..=(end as u64 + 1)
}

/// One line per frame, innermost last: function, file, line and in-app flag.
fn frame_list(frames: &[Value]) -> String {
    frames
        .iter()
        .map(|f| {
            format!(
                "{} {}:{} in_app={}",
                f["function"], f["filename"], f["lineno"], f["in_app"]
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Asserts what every ErrorWork failure carries, and returns its exception.
fn assert_error_work_event(data: &Value, release: &str) -> Value {
    let exceptions = data["exception"]["values"]
        .as_array()
        .unwrap_or_else(|| panic!("no exception in {data:#}"));
    let exception = exceptions.last().expect("one exception at least").clone();
    assert_eq!(exception["type"], ERROR_TYPE, "{data:#}");
    assert_eq!(exception["value"], ERROR_MESSAGE, "{data:#}");
    // The protocol's default level is "error", which the SDK leaves out.
    assert!(
        data.get("level").is_none_or(|level| level == "error"),
        "{data:#}"
    );
    assert_eq!(data["environment"], ENVIRONMENT, "{data:#}");
    assert_eq!(data["release"], release, "{data:#}");

    let frames = exception["stacktrace"]["frames"]
        .as_array()
        .unwrap_or_else(|| panic!("no stack frames in {exception:#}"));
    // Only the service's own frames are in-app, so Sentry's grouping does not
    // depend on the versions of axum, tokio or the OTel SDK.
    let in_app: Vec<&Value> = frames.iter().filter(|f| f["in_app"] == true).collect();
    let listed = frame_list(frames);
    assert!(!in_app.is_empty(), "no in-app frame:\n{listed}");
    for frame in &in_app {
        assert!(
            frame["function"]
                .as_str()
                .is_some_and(|f| f.starts_with("somework::")),
            "a frame outside somework is marked in-app: {frame:#}\n{listed}"
        );
        assert!(
            frame["filename"].is_string() && frame["lineno"].is_u64(),
            "an in-app frame without file and line: {frame:#}\n{listed}"
        );
    }
    // Sentry lists frames outermost first and shows the last one as where the
    // error happened: ErrorWork, where the error is made, not the capture
    // helper (ErrorOrigin::here) and not MiddleWork, into which the optimizer
    // may inline it.
    let innermost = in_app.last().expect("checked non-empty");
    assert!(
        innermost["function"]
            .as_str()
            .is_some_and(|f| f.starts_with("somework::work::error_work")),
        "the innermost in-app frame is not error_work: {innermost:#}\n{listed}"
    );
    assert_eq!(
        frames.last(),
        Some(*innermost),
        "frames of the capture machinery are left inside error_work's:\n{listed}"
    );
    assert_eq!(innermost["filename"], "src/work.rs", "{innermost:#}");
    let lines = error_work_lines();
    let line = innermost["lineno"].as_u64().unwrap_or_default();
    assert!(
        lines.contains(&line),
        "the innermost frame's line {line} is outside error_work (lines {lines:?} of src/work.rs)"
    );
    exception
}

#[tokio::test(flavor = "multi_thread")]
async fn errorwork_sends_each_failure_as_an_unhandled_error_linked_to_its_span() {
    let Some(app) = spawn_bugsink_app(|s| s.env("SENTRY_RELEASE", "somework@test-release")).await
    else {
        return;
    };

    let mut trace_ids = Vec::new();
    for _ in 0..2 {
        let reply = app.get_errorwork().await;
        assert_eq!(reply.status, 500, "{}", reply.body);
        trace_ids.push(reply.trace_id());
    }
    assert_ne!(trace_ids[0], trace_ids[1]);

    let events = app.events(2).await;
    assert_eq!(events.len(), 2, "{}", pretty(&events));
    for trace_id in &trace_ids {
        let data = &app.event_of_trace(&events, trace_id)["data"];
        let exception = assert_error_work_event(data, "somework@test-release");
        assert_eq!(exception["mechanism"]["handled"], false, "{exception:#}");
        assert_eq!(
            data["contexts"]["trace"]["span_id"],
            app.error_work_span_id(trace_id).await,
            "the event must point at the ErrorWork span: {data:#}"
        );
    }

    // The same failure twice is one issue in Sentry, with two events.
    let issues = app.bugsink.issues().await;
    assert_eq!(issues.len(), 1, "{}", pretty(&issues));
    assert_eq!(issues[0]["calculated_type"], ERROR_TYPE);
    assert_eq!(issues[0]["calculated_value"], ERROR_MESSAGE);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handled_failure_on_somework_is_reported_while_the_request_succeeds() {
    let Some(app) =
        spawn_bugsink_app(|s| s.env("ERROR_RATE", "1").remove_env("SENTRY_RELEASE")).await
    else {
        return;
    };

    let reply = app.get_somework().await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.body["error_work"], "failed_and_handled",
        "{}",
        reply.body
    );
    let trace_id = reply.trace_id();

    let events = app.events(1).await;
    assert_eq!(events.len(), 1, "{}", pretty(&events));
    let data = &app.event_of_trace(&events, &trace_id)["data"];
    // Without SENTRY_RELEASE the release is the crate's name and version.
    let default_release = concat!("somework@", env!("CARGO_PKG_VERSION"));
    let exception = assert_error_work_event(data, default_release);
    assert_eq!(exception["mechanism"]["handled"], true, "{exception:#}");
    assert_eq!(
        data["contexts"]["trace"]["span_id"],
        app.error_work_span_id(&trace_id).await,
        "{data:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_request_data_reaches_sentry() {
    const SECRET: &str = "PLANTED-SECRET-5e1b7d";
    let Some(app) = spawn_bugsink_app(|s| s.env("ERROR_RATE", "1")).await else {
        return;
    };

    let mut trace_ids = Vec::new();
    for (path, expected_status) in [
        (format!("/errorwork?password={SECRET}"), 500),
        (format!("/somework?token={SECRET}"), 200),
    ] {
        let secret_headers = [
            ("authorization", format!("Bearer {SECRET}")),
            ("cookie", format!("session={SECRET}")),
            ("x-api-key", SECRET.to_owned()),
            ("baggage", format!("user.email={SECRET}")),
        ];
        let headers: Vec<(&str, &str)> = secret_headers
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        let reply = app.get_with_headers(&path, &headers).await;
        assert_eq!(reply.status, expected_status, "{path}: {}", reply.body);
        trace_ids.push(reply.trace_id());
    }

    let events = app.events(2).await;
    assert_eq!(events.len(), 2, "{}", pretty(&events));
    for trace_id in &trace_ids {
        let event = app.event_of_trace(&events, trace_id);
        assert!(
            !event.to_string().contains(SECRET),
            "the secret reached Sentry: {event:#}"
        );
        let data = &event["data"];
        for field in ["request", "user"] {
            assert!(
                data.get(field).is_none(),
                "{field} reached Sentry: {data:#}"
            );
        }
    }
}
