//! The OpenTelemetry variables beyond the endpoint: propagators and the
//! choice of exporter, honoured by the real binary. (Refused values are in
//! `config`; the OTLP protocols against the real collector in the pipeline
//! suite.)

use somework_testkit::api::SomeworkApi;

use crate::helpers::spawn_app_with;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN_ID: &str = "00f067aa0ba902b7";

/// With `OTEL_PROPAGATORS=none` the service neither joins its caller's
/// trace nor passes its own to the next hop of `/chain`.
#[tokio::test(flavor = "multi_thread")]
async fn no_propagators_means_no_context_in_or_out() {
    let app = spawn_app_with(|service| service.env("OTEL_PROPAGATORS", "none")).await;

    let traceparent = format!("00-{TRACE_ID}-{SPAN_ID}-01");
    let reply = app
        .get_with_headers("/chain?hops=1", &[("traceparent", &traceparent)])
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_ne!(reply.trace_id(), TRACE_ID, "joined the caller's trace");
    let spans = app
        .spans_until(|spans| spans.iter().filter(|s| s.name() == "GET /chain").count() == 2)
        .await;
    let servers: Vec<_> = spans.iter().filter(|s| s.name() == "GET /chain").collect();
    assert_eq!(servers.len(), 2, "{servers:#?}");
    assert_ne!(
        servers[0].trace_id(),
        servers[1].trace_id(),
        "the next hop joined the trace without a propagator"
    );
    assert!(servers.iter().all(|s| s.parent_span_id().is_none()));
}

/// The default propagators, written out, join the caller's trace.
#[tokio::test(flavor = "multi_thread")]
async fn tracecontext_joins_the_callers_trace() {
    let app = spawn_app_with(|service| service.env("OTEL_PROPAGATORS", "tracecontext")).await;

    let traceparent = format!("00-{TRACE_ID}-{SPAN_ID}-01");
    let reply = app
        .get_with_headers("/somework", &[("traceparent", &traceparent)])
        .await;
    assert_eq!(reply.trace_id(), TRACE_ID);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_exporter_prints_spans_instead_of_sending_them() {
    let mut app = spawn_app_with(|service| service.env("OTEL_TRACES_EXPORTER", "console")).await;

    let trace_id = app.get_somework().await.trace_id();
    let (status, _) = app.terminate().await;
    assert!(status.success(), "{status:?}");

    let stdout = app.service.logs().join("\n");
    for name in ["GET /somework", "MiddleWork", "ErrorWork"] {
        assert!(stdout.contains(name), "{name} not printed:\n{stdout}");
    }
    assert!(
        stdout.contains(&trace_id),
        "{trace_id} not printed:\n{stdout}"
    );
    assert!(app.receiver.spans().is_empty(), "spans went over OTLP too");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_none_exporter_sends_nothing_but_still_traces() {
    let mut app = spawn_app_with(|service| service.env("OTEL_TRACES_EXPORTER", "none")).await;

    let reply = app.get_somework().await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.trace_id().len(), 32, "a trace id is still answered");
    let (status, _) = app.terminate().await;
    assert!(status.success(), "{status:?}");
    assert_eq!(app.receiver.export_calls(), 0, "something was exported");
}
