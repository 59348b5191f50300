//! The `sentry` exporter (`otel-collector.yaml`): every span routed to the
//! Sentry project its service is mapped to, through the management API and
//! the ingest endpoint as the exporter's source uses them.

use std::collections::{BTreeMap, BTreeSet};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use somework_testkit::collector::{self, Collector};
use somework_testkit::sentry_double::{IngestedSpan, SentryDouble};

use crate::helpers::{
    PROJECT, STRAY, WAIT, assert_delivered, by_trace, complete, spawn_collector_app,
};

/// Sends one OTLP request with four resources straight to the collector:
/// two mapped service names, one unmapped, and one without `service.name`.
async fn send_foreign_resources(collector: &Collector) -> BTreeMap<&'static str, String> {
    let mut trace_ids = BTreeMap::new();
    let mut resource_spans = Vec::new();
    for (i, service_name) in [
        Some("somework-frontend"),
        Some("somework-backend"),
        Some(STRAY),
        None,
    ]
    .into_iter()
    .enumerate()
    {
        let trace_id: Vec<u8> = (0..16).map(|b| (b as u8) ^ (0xa0 + i as u8)).collect();
        let label = service_name.unwrap_or("(none)");
        trace_ids.insert(label, trace_id.iter().map(|b| format!("{b:02x}")).collect());
        let attributes = service_name
            .map(|name| KeyValue {
                key: "service.name".to_owned(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(name.to_owned())),
                }),
                ..Default::default()
            })
            .into_iter()
            .collect();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos() as u64;
        resource_spans.push(ResourceSpans {
            resource: Some(Resource {
                attributes,
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id,
                    span_id: vec![1, 2, 3, 4, 5, 6, 7, i as u8 + 1],
                    name: format!("span of {label}"),
                    start_time_unix_nano: now - 1_000_000,
                    end_time_unix_nano: now,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    let mut client = TraceServiceClient::connect(collector.otlp_grpc_endpoint())
        .await
        .expect("cannot connect to the collector");
    client
        .export(ExportTraceServiceRequest { resource_spans })
        .await
        .expect("the collector refused the export");
    trace_ids
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sentry_exporter_routes_every_span_to_the_mapped_project() {
    let Some(binary) = collector::binary() else {
        return;
    };
    // A page size of 1 makes the exporter follow the Link header's cursor.
    let double = SentryDouble::builder()
        .project(STRAY)
        .project(PROJECT)
        .project("unrelated")
        .page_size(1)
        .start()
        .await;
    let app = spawn_collector_app(&binary, "sentry", double).await;
    let double = &app.double;

    let mut wanted = Vec::new();
    for route in [
        "/somework",
        "/errorwork",
        "/somework",
        "/errorwork",
        "/somework",
    ] {
        let (status, trace_id) = app.call(route).await;
        assert_eq!(status, if route == "/errorwork" { 500 } else { 200 });
        wanted.push((trace_id, route));
    }
    let foreign = send_foreign_resources(&app.collector).await;
    let foreign_ids: Vec<String> = ["somework-frontend", "somework-backend", STRAY]
        .iter()
        .map(|name| foreign[name].clone())
        .collect();

    let spans = double
        .wait_for(WAIT, |spans| {
            let arrived: BTreeSet<_> = spans.iter().map(|s| s.span.trace_id()).collect();
            complete(spans, &wanted) && foreign_ids.iter().all(|id| arrived.contains(id))
        })
        .await;

    let project = double.project(PROJECT);
    assert_delivered(&spans, &wanted, project.id, &project.public_key);

    let traces = by_trace(&spans);
    let only = |label: &str| -> &IngestedSpan {
        let trace = traces
            .get(&foreign[label])
            .unwrap_or_else(|| panic!("the span of {label} never arrived"));
        assert_eq!(trace.len(), 1, "the span of {label} arrived more than once");
        trace[0]
    };
    for mapped in ["somework-frontend", "somework-backend"] {
        let span = only(mapped);
        assert_eq!(
            span.project_id, project.id,
            "{mapped} is mapped to {PROJECT}"
        );
        assert_eq!(span.sentry_key, project.public_key);
        assert_eq!(span.span.name(), format!("span of {mapped}"));
    }
    // Not mapped: the service name itself is the project slug, never PROJECT.
    let stray = double.project(STRAY);
    let span = only(STRAY);
    assert_eq!(
        span.project_id, stray.id,
        "an unmapped service goes to its own project"
    );
    assert_eq!(span.sentry_key, stray.public_key);
    // No service.name: dropped, in the same batch as the three delivered above.
    assert!(
        !traces.contains_key(&foreign["(none)"]),
        "a resource without service.name was delivered"
    );
    let unrelated = double.project("unrelated").id;
    assert!(spans.iter().all(|s| s.project_id != unrelated));

    // The exchange itself: token on the management API, the project's key and
    // gzip on ingest, the cursor followed, nothing unexpected.
    let requests = double.requests();
    for r in &requests {
        assert!(
            (200..300).contains(&r.status),
            "the double answered {}: {r:?}",
            r.status
        );
        if let Some((id, _)) = &r.ingest {
            assert_eq!(r.method, "POST");
            // The URL the exporter built from the DSN http://{key}@127.0.0.1:{port}/{id}:
            // scheme and host, no port (see sentry_collector).
            assert_eq!(
                r.uri,
                format!("http://127.0.0.1/api/{id}/integration/otlp/v1/traces/"),
                "if the exporter now keeps the DSN's port, drop the proxy in \
                 sentry_collector and the note in collector-config/README.md"
            );
            assert_eq!(r.header("content-encoding"), Some("gzip"));
            assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
            assert_eq!(
                r.header("authorization"),
                None,
                "ingest must not carry the token"
            );
        } else if let Some((id, _)) = &r.logs_ingest {
            // The services' own log records, routed like their spans.
            assert_eq!(
                r.uri,
                format!("http://127.0.0.1/api/{id}/integration/otlp/v1/logs/")
            );
            assert_eq!(r.header("authorization"), None);
        } else {
            assert_eq!(r.method, "GET");
            assert_eq!(
                r.header("authorization"),
                Some(format!("Bearer {}", double.token()).as_str())
            );
        }
    }
    let paths: Vec<_> = requests.iter().map(|r| r.path.as_str()).collect();
    let org = double.org();
    assert!(paths.contains(&format!("/api/0/organizations/{org}/projects/").as_str()));
    assert!(paths.contains(&format!("/api/0/organizations/{org}/project-keys/").as_str()));
    // Three projects, one per page: the first page and two more by cursor.
    let project_pages: Vec<_> = requests
        .iter()
        .filter(|r| r.path == format!("/api/0/organizations/{org}/projects/"))
        .map(|r| r.query.clone())
        .collect();
    assert_eq!(project_pages.len(), 3, "pages requested: {project_pages:?}");
    assert!(
        project_pages[1..]
            .iter()
            .all(|q| q.as_deref().is_some_and(|q| q.starts_with("cursor=")))
    );
}
