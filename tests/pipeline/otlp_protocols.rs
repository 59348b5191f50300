//! `OTEL_EXPORTER_OTLP_PROTOCOL` and `..._COMPRESSION` against the real
//! collector's `otlp` receiver: each protocol reaches its own port, the HTTP
//! endpoint follows the specification's path rules, gzip is accepted,
//! `https://` endpoints are verified against the trusted roots or
//! `OTEL_EXPORTER_OTLP_CERTIFICATE`, and a client certificate is sent to a
//! collector that asks for one.

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
    let collector = CollectorBuilder::new(&binary, "local")
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
    let other = if transport == "http" { "grpc" } else { "http" };
    let before = (
        accepted_over(collector, transport).await,
        accepted_over(collector, other).await,
    );
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
    let spans = 2.0 * span_names("/somework").len() as f64;
    assert_eq!(accepted_over(collector, transport).await - before.0, spans);
    assert_eq!(accepted_over(collector, other).await - before.1, 0.0);
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

/// A collector whose `otlp` receivers serve TLS with the test CA's server
/// certificate and, when `mutual`, take only clients whose certificate the
/// CA signed. `None` when the collector is not built.
async fn tls_collector(certificates: &TestCertificates, mutual: bool) -> Option<Collector> {
    let binary = collector::binary()?;
    let mut files = vec![
        ("cert_file", certificates.server_cert_file()),
        ("key_file", certificates.server_key_file()),
    ];
    if mutual {
        files.push(("client_ca_file", certificates.ca_file()));
    }
    let mut builder =
        CollectorBuilder::new(&binary, "local").set("processors.batch.timeout", "200ms");
    for protocol in ["grpc", "http"] {
        for (setting, file) in &files {
            builder = builder.set(
                &format!("receivers.otlp.protocols.{protocol}.tls.{setting}"),
                &file.display().to_string(),
            );
        }
    }
    Some(builder.start().await)
}

/// The settings that send to `collector`'s `https://` endpoint over `transport`.
fn https_settings(collector: &Collector, transport: &str) -> Vec<(&'static str, String)> {
    let (protocol, endpoint) = match transport {
        "grpc" => ("grpc", collector.otlp_grpc_endpoint()),
        _ => ("http/protobuf", collector.otlp_http_endpoint()),
    };
    vec![
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_owned()),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            endpoint.replacen("http://", "https://", 1),
        ),
    ]
}

/// Sends one request from a service with `env` and checks that its export
/// failed and that `collector` took nothing in over `transport`.
async fn assert_refused(collector: &Collector, transport: &str, env: Vec<(&'static str, String)>) {
    let before = accepted_over(collector, transport).await;
    let mut service =
        ServiceBuilder::new(env!("CARGO_BIN_EXE_somework")).env("OTEL_BSP_SCHEDULE_DELAY", "100");
    for (key, value) in env {
        service = service.env(key, value);
    }
    let service = service.start().await;
    request(&service, "/somework").await;
    service
        .wait_for_log(WAIT, |line| {
            line["message"]
                .as_str()
                .is_some_and(|m| m.contains("span export failed"))
        })
        .await;
    assert_eq!(
        accepted_over(collector, transport).await - before,
        0.0,
        "spans were taken in over {transport} from a service that should have been refused"
    );
}

fn file_setting(var: &'static str, file: std::path::PathBuf) -> (&'static str, String) {
    (var, file.display().to_string())
}

/// Over `https://`, each protocol verifies the collector's certificate: with
/// only the platform's roots the export fails and nothing is taken in; with
/// the collector's CA in `SSL_CERT_FILE`, or in
/// `OTEL_EXPORTER_OTLP_CERTIFICATE` alone, the spans arrive.
async fn tls_is_verified_over(transport: &str) {
    let certificates = TestCertificates::new();
    let Some(collector) = tls_collector(&certificates, false).await else {
        return;
    };
    let https = https_settings(&collector, transport);
    assert_refused(&collector, transport, https.clone()).await;

    let ssl_cert_file = file_setting("SSL_CERT_FILE", certificates.ca_file());
    assert_delivered(
        &collector,
        transport,
        [https.clone(), vec![ssl_cert_file]].concat(),
    )
    .await;

    let certificate = file_setting("OTEL_EXPORTER_OTLP_CERTIFICATE", certificates.ca_file());
    assert_delivered(&collector, transport, [https, vec![certificate]].concat()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_over_tls_trusts_only_the_trusted_roots() {
    tls_is_verified_over("grpc").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn http_protobuf_over_tls_trusts_only_the_trusted_roots() {
    tls_is_verified_over("http").await;
}

/// A collector that asks for a client certificate refuses a service that
/// trusts it but has none, and takes the spans of one that sends the
/// certificate of `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` and `..._KEY`.
async fn client_certificate_is_sent_over(transport: &str) {
    let certificates = TestCertificates::new();
    let Some(collector) = tls_collector(&certificates, true).await else {
        return;
    };
    let trusting = [
        https_settings(&collector, transport),
        vec![file_setting(
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            certificates.ca_file(),
        )],
    ]
    .concat();
    assert_refused(&collector, transport, trusting.clone()).await;

    let client = vec![
        file_setting(
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            certificates.client_cert_file(),
        ),
        file_setting(
            "OTEL_EXPORTER_OTLP_CLIENT_KEY",
            certificates.client_key_file(),
        ),
    ];
    assert_delivered(&collector, transport, [trusting, client].concat()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_with_mutual_tls_sends_the_client_certificate() {
    client_certificate_is_sent_over("grpc").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn http_protobuf_with_mutual_tls_sends_the_client_certificate() {
    client_certificate_is_sent_over("http").await;
}
