//! Proves the Bugsink harness on its own: an error sent by the real `sentry`
//! crate is stored by a real Bugsink and read back through its API, with the
//! fields the service's Sentry tests rely on.

use std::sync::Arc;
use std::time::Duration;

use sentry::protocol::{Context, TraceContext};
use sentry::{ClientOptions, Hub, Scope};
use serde_json::Value;
use somework_testkit::bugsink::Bugsink;

const WAIT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
#[error("the harness's test error: {0}")]
struct HarnessError(&'static str);

/// Sends one error to `dsn` with its own client and hub (never the process's
/// global hub, which parallel tests would share), and waits until it is sent.
async fn send_error(dsn: String, trace: TraceContext) {
    tokio::task::spawn_blocking(move || {
        let options = ClientOptions::new()
            .dsn(&dsn)
            .environment("harness")
            .release("harness@1.2.3");
        let client = Arc::new(sentry::Client::from(sentry::apply_defaults(options)));
        let hub = Hub::new(Some(client.clone()), Arc::new(Scope::default()));
        hub.configure_scope(|scope| {
            scope.set_context("trace", Context::Trace(Box::new(trace)));
        });
        hub.capture_error(&HarnessError("it broke"));
        assert!(
            client.close(Some(WAIT)),
            "the sentry client did not send its queue within {WAIT:?}"
        );
    })
    .await
    .expect("the sending task panicked");
}

#[tokio::test]
async fn an_error_from_the_sentry_crate_is_stored_with_its_exception_and_trace_context() {
    let Some(bugsink) = Bugsink::start().await else {
        return;
    };
    let trace = TraceContext {
        trace_id: [0x4b; 16].into(),
        span_id: [0x2c; 8].into(),
        ..Default::default()
    };
    send_error(bugsink.dsn(), trace).await;

    let events = bugsink.wait_for_events(1, WAIT).await;
    assert_eq!(events.len(), 1, "{events:#?}");
    let data = &events[0]["data"];
    let log = bugsink.server_log();
    let exception = data["exception"]["values"]
        .as_array()
        .and_then(|values| values.last())
        .unwrap_or_else(|| panic!("no exception in {data:#}\nBugsink log:\n{log}"));
    assert_eq!(exception["type"], "HarnessError", "{data:#}");
    assert_eq!(exception["value"], "the harness's test error: it broke");
    assert_eq!(data["environment"], "harness");
    assert_eq!(data["release"], "harness@1.2.3");
    assert_eq!(
        data["contexts"]["trace"]["trace_id"],
        "4b".repeat(16),
        "{data:#}"
    );
    assert_eq!(data["contexts"]["trace"]["span_id"], "2c".repeat(8));

    let issues = bugsink.issues().await;
    assert_eq!(issues.len(), 1, "{issues:#?}");
    assert_eq!(issues[0]["calculated_type"], "HarnessError");
    assert_eq!(issues[0]["project"], bugsink.project_id());
}

#[tokio::test]
async fn instances_are_isolated_from_each_other() {
    let (Some(first), Some(second)) = tokio::join!(Bugsink::start(), Bugsink::start()) else {
        return;
    };
    assert_ne!(first.dsn(), second.dsn());
    send_error(first.dsn(), TraceContext::default()).await;

    assert_eq!(first.wait_for_events(1, WAIT).await.len(), 1);
    let elsewhere: Vec<Value> = second.events().await;
    assert!(elsewhere.is_empty(), "{elsewhere:#?}");
}
