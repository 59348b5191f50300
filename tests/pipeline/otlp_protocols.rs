//! `OTEL_EXPORTER_OTLP_PROTOCOL` and `..._COMPRESSION` against the real
//! collector's `otlp` receiver: each protocol reaches its own port, the HTTP
//! endpoint follows the specification's path rules, gzip is accepted, and
//! `https://` endpoints are verified against the trusted roots.

use somework_testkit::collector::{self, Collector, CollectorBuilder};
use somework_testkit::service::ServiceBuilder;
use somework_testkit::tls::TestCertificates;

use crate::helpers::{WAIT, request, span_names};

/// Spans the collector's `otlp` receiver accepted over `transport` (`grpc` or `http`).
async fn accepted_over(collector: &Collector, transport: &str) -> f64 {
    let label = format!("transport=\"{transport}\"");
    collector
        .metrics()
        .await
        .lines()
        .filter(|line| line.starts_with("otelcol_receiver_accepted_spans") && line.contains(&label))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// Sends one `/somework` and one `/errorwork` request with `env` and checks
/// that all their spans were printed by the collector and arrived over `transport`.
async fn delivers_over(
    transport: &str,
    env: impl FnOnce(&Collector) -> Vec<(&'static str, String)>,
) {
    let Some(binary) = collector::binary() else {
        return;
    };
    let collector = CollectorBuilder::new(&binary, "local.yaml")
        .set("processors.batch.timeout", "200ms")
        .start()
        .await;
    assert_delivered(&collector, transport, env(&collector)).await;
}

/// Sends one `/somework` and one `/errorwork` request from a service with
/// `env` and checks that `collector` printed all their spans and took them in
/// over `transport` only.
async fn assert_delivered(
    collector: &Collector,
    transport: &str,
    env: Vec<(&'static str, String)>,
) {
    let mut service = ServiceBuilder::new(env!("CARGO_BIN_EXE_somework"));
    for (key, value) in env {
        service = service.env(key, value);
    }
    let service = service.start().await;

    let mut wanted = Vec::new();
    for route in ["/somework", "/errorwork"] {
        let (_, trace_id) = request(&service, route).await;
        wanted.push((trace_id, route));
    }
    let printed = collector
        .wait_for_logs(WAIT, |lines| {
            let logs = lines.join("\n");
            wanted.iter().all(|(trace_id, route)| {
                logs.contains(&format!("Trace ID       : {trace_id}"))
                    && span_names(route)
                        .iter()
                        .all(|name| logs.contains(&format!("Name           : {name}\n")))
            })
        })
        .await
        .join("\n");
    for (trace_id, _) in &wanted {
        assert!(
            printed.contains(&format!("Trace ID       : {trace_id}")),
            "{trace_id} not delivered over {transport}; service output:\n{}\ncollector output:\n{printed}",
            service.logs().join("\n")
        );
    }
    let other = if transport == "http" { "grpc" } else { "http" };
    let spans = 2.0 * span_names("/somework").len() as f64;
    assert_eq!(accepted_over(collector, transport).await, spans);
    assert_eq!(accepted_over(collector, other).await, 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_with_gzip_reaches_the_grpc_port() {
    delivers_over("grpc", |collector| {
        vec![
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_owned()),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                collector.otlp_grpc_endpoint(),
            ),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip".to_owned()),
        ]
    })
    .await;
}

/// The generic endpoint is a base URL: the exporter appends `/v1/traces`.
#[tokio::test(flavor = "multi_thread")]
async fn http_protobuf_with_gzip_reaches_the_http_port_under_v1_traces() {
    delivers_over("http", |collector| {
        vec![
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_owned()),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                collector.otlp_http_endpoint(),
            ),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip".to_owned()),
        ]
    })
    .await;
}

/// The per-signal variables win, and the signal's endpoint is used as is.
#[tokio::test(flavor = "multi_thread")]
async fn per_signal_http_settings_win_over_generic_grpc_ones() {
    delivers_over("http", |collector| {
        vec![
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_owned()),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                collector.otlp_grpc_endpoint(),
            ),
            (
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                "http/protobuf".to_owned(),
            ),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                format!("{}/v1/traces", collector.otlp_http_endpoint()),
            ),
        ]
    })
    .await;
}

/// Over `https://`, each protocol verifies the collector's certificate
/// against the trusted roots: with its CA in `SSL_CERT_FILE` the spans
/// arrive; with only the platform's roots the export fails and nothing is
/// taken in.
async fn tls_is_verified_over(transport: &str) {
    let Some(binary) = collector::binary() else {
        return;
    };
    let certificates = TestCertificates::new();
    let (cert, key) = (
        certificates.server_cert_file(),
        certificates.server_key_file(),
    );
    let mut builder =
        CollectorBuilder::new(&binary, "local.yaml").set("processors.batch.timeout", "200ms");
    for protocol in ["grpc", "http"] {
        builder = builder
            .set(
                &format!("receivers.otlp.protocols.{protocol}.tls.cert_file"),
                &cert.display().to_string(),
            )
            .set(
                &format!("receivers.otlp.protocols.{protocol}.tls.key_file"),
                &key.display().to_string(),
            );
    }
    let collector = builder.start().await;
    let endpoint = match transport {
        "grpc" => collector.otlp_grpc_endpoint(),
        _ => collector.otlp_http_endpoint(),
    }
    .replacen("http://", "https://", 1);
    let protocol = match transport {
        "grpc" => "grpc",
        _ => "http/protobuf",
    };

    let untrusting = ServiceBuilder::new(env!("CARGO_BIN_EXE_somework"))
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .start()
        .await;
    request(&untrusting, "/somework").await;
    untrusting
        .wait_for_log(WAIT, |line| {
            line["message"]
                .as_str()
                .is_some_and(|m| m.contains("span export failed"))
        })
        .await;
    assert_eq!(
        accepted_over(&collector, transport).await,
        0.0,
        "spans were taken in from a service that does not trust the collector's CA"
    );

    assert_delivered(
        &collector,
        transport,
        vec![
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_owned()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.clone()),
            (
                "SSL_CERT_FILE",
                certificates.ca_file().display().to_string(),
            ),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_over_tls_trusts_only_the_trusted_roots() {
    tls_is_verified_over("grpc").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn http_protobuf_over_tls_trusts_only_the_trusted_roots() {
    tls_is_verified_over("http").await;
}
