//! The real binary against the endpoint catalogue (`routes::catalog`): each
//! endpoint's example request answers the catalogued status, and exports the
//! catalogued trace, or none for a probe.
//!
//! The catalogue is the expected side only. The names the service gives its
//! spans come from where the work happens (`src/work.rs`, `routes/work.rs`,
//! the SERVER span middleware), so a span renamed there, or in the
//! catalogue alone, fails this test.

use std::collections::BTreeSet;

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use somework::routes::catalog::Endpoint;
use somework_testkit::api::SomeworkApi as _;
use somework_testkit::otlp::{ReceivedSpan, names};

use crate::helpers::spawn_app;

/// Whether `spans` hold a whole trace of `endpoint`'s catalogued shape:
/// every name, and as many SERVER spans.
fn complete(spans: &[&ReceivedSpan], endpoint: Endpoint) -> bool {
    let Some(shape) = &endpoint.spec().trace else {
        return true;
    };
    let servers = spans.iter().filter(|s| s.kind() == SpanKind::Server);
    let received: BTreeSet<&str> = names(spans.iter().copied()).into_iter().collect();
    servers.count() >= shape.server_spans
        && shape.span_names.iter().all(|name| received.contains(name))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_catalogued_example_answers_its_status_and_exports_its_trace() {
    let app = spawn_app().await;

    // The probes first: by the time the traced requests' spans arrive, a
    // probe's span would have arrived too.
    let mut endpoints = Endpoint::ALL.to_vec();
    endpoints.sort_by_key(|endpoint| endpoint.spec().trace.is_some());
    let mut traced = Vec::new();
    for endpoint in endpoints {
        let spec = endpoint.spec();
        let method = reqwest::Method::from_bytes(spec.method.as_str().as_bytes()).expect("method");
        let reply = app.send(app.request(method, spec.example)).await;
        assert_eq!(
            reply.status,
            spec.status.as_u16(),
            "{} {}: {}",
            spec.method,
            spec.example,
            reply.body
        );
        assert_eq!(
            reply.content_type.as_deref(),
            Some("application/json"),
            "{}",
            spec.example
        );
        if spec.trace.is_some() {
            traced.push((endpoint, reply.trace_id()));
        }
    }

    let spans = app
        .spans_until(|spans| {
            traced.iter().all(|(endpoint, trace_id)| {
                let trace: Vec<&ReceivedSpan> =
                    spans.iter().filter(|s| s.trace_id() == *trace_id).collect();
                complete(&trace, *endpoint)
            })
        })
        .await;

    for (endpoint, trace_id) in &traced {
        let spec = endpoint.spec();
        let shape = spec.trace.as_ref().expect("traced");
        let trace: Vec<&ReceivedSpan> =
            spans.iter().filter(|s| s.trace_id() == *trace_id).collect();
        let received: BTreeSet<&str> = names(trace.iter().copied()).into_iter().collect();
        let expected: BTreeSet<&str> = shape.span_names.iter().copied().collect();
        assert_eq!(received, expected, "span names of {}", spec.example);
        let servers: Vec<_> = trace
            .iter()
            .filter(|s| s.kind() == SpanKind::Server)
            .collect();
        assert_eq!(
            servers.len(),
            shape.server_spans,
            "SERVER spans of {}",
            spec.example
        );
        assert!(
            servers.iter().all(|s| s.name() == shape.span_names[0]
                && s.attr("http.route").as_deref() == Some(spec.route)),
            "SERVER spans of {}: {:?}",
            spec.example,
            names(trace.iter().copied())
        );
        // The failing span and every span up from it to the root: Error.
        let mut failing = BTreeSet::new();
        if let Some(error_span) = shape.error_span {
            let mut at = trace.iter().find(|s| s.name() == error_span);
            assert!(at.is_some(), "no {error_span} span in {}", spec.example);
            while let Some(span) = at {
                failing.insert(span.span_id());
                at = span
                    .parent_span_id()
                    .and_then(|parent| trace.iter().find(|s| s.span_id() == parent));
            }
        }
        for span in &trace {
            let expected = if failing.contains(&span.span_id()) {
                StatusCode::Error
            } else {
                StatusCode::Unset
            };
            assert_eq!(
                span.status_code(),
                expected,
                "status of {} in {}",
                span.name(),
                spec.example
            );
        }
    }

    let probes: Vec<&str> = Endpoint::ALL
        .into_iter()
        .map(Endpoint::spec)
        .filter(|spec| spec.trace.is_none())
        .map(|spec| spec.example)
        .collect();
    assert!(!probes.is_empty(), "the catalogue has probes");
    let traced_probes: Vec<_> = spans
        .iter()
        .filter(|s| {
            s.attr("url.path")
                .is_some_and(|path| probes.contains(&path.as_str()))
        })
        .map(ReceivedSpan::name)
        .collect();
    assert!(
        traced_probes.is_empty(),
        "probes are untraced: {traced_probes:?}"
    );
}
