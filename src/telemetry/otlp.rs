//! The OTLP exporters of every signal, over gRPC (tonic) or HTTP/protobuf
//! (reqwest's blocking client, which the SDK's batch processors drive from
//! their own threads), with the settings resolved in `config::otel`.

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry_otlp::{
    Compression, Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig,
};
use tokio::runtime::Runtime;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::TelemetryError;
use crate::config::{OtlpCompression, OtlpConfig, OtlpProtocol};

/// Where a gRPC exporter's connection runs: a one-worker runtime of its own,
/// whose thread (`thread_name`) encodes and writes every batch. In the
/// service's runtime, tonic would do that work on a request worker, and
/// requests would wait behind it (BENCHMARKS.md, "The gRPC exporter on a
/// runtime of its own"). The HTTP exporter needs none: reqwest's blocking
/// client has a thread of its own. Stop it with [`ExportRuntime::stop`] once
/// the provider is flushed.
pub(super) struct ExportRuntime(Option<Runtime>);

impl ExportRuntime {
    /// Builds an exporter for `config` with `build`, inside a runtime of its
    /// own for gRPC.
    pub(super) fn build<E>(
        config: &OtlpConfig,
        thread_name: &str,
        build: impl FnOnce(&OtlpConfig) -> Result<E, TelemetryError>,
    ) -> Result<(E, Self), TelemetryError> {
        match config.protocol {
            OtlpProtocol::Grpc => {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name(thread_name)
                    .enable_all()
                    .build()
                    .map_err(TelemetryError::ExportRuntime)?;
                let built = {
                    let _entered = runtime.enter();
                    build(config)
                };
                match built {
                    Ok(exporter) => Ok((exporter, Self(Some(runtime)))),
                    Err(error) => {
                        // Dropping a runtime blocks, which panics when the
                        // caller is itself on a runtime, as `serve` is.
                        runtime.shutdown_background();
                        Err(error)
                    }
                }
            }
            OtlpProtocol::HttpProtobuf => Ok((build(config)?, Self(None))),
        }
    }

    /// Stops the runtime without waiting for its tasks, so the flush's own
    /// bound stays the only wait: an export still in flight fails and lets
    /// the flush thread end.
    pub(super) fn stop(self) {
        if let Some(runtime) = self.0 {
            runtime.shutdown_background();
        }
    }
}

/// The OTLP span exporter for `config`.
pub(super) fn span_exporter(
    config: &OtlpConfig,
) -> Result<opentelemetry_otlp::SpanExporter, TelemetryError> {
    let builder = opentelemetry_otlp::SpanExporter::builder();
    let built = match config.protocol {
        OtlpProtocol::Grpc => with_tonic_settings(builder.with_tonic(), config)?.build(),
        OtlpProtocol::HttpProtobuf => with_http_settings(builder.with_http(), config)?.build(),
    };
    built.map_err(|source| TelemetryError::Exporter {
        signal: "span",
        source,
    })
}

/// The OTLP log exporter for `config`.
pub(super) fn log_exporter(
    config: &OtlpConfig,
) -> Result<opentelemetry_otlp::LogExporter, TelemetryError> {
    let builder = opentelemetry_otlp::LogExporter::builder();
    let built = match config.protocol {
        OtlpProtocol::Grpc => with_tonic_settings(builder.with_tonic(), config)?.build(),
        OtlpProtocol::HttpProtobuf => with_http_settings(builder.with_http(), config)?.build(),
    };
    built.map_err(|source| TelemetryError::Exporter {
        signal: "log",
        source,
    })
}

/// How long a connection to the collector may stay silent while an export
/// waits on it before it is pinged. A collector gone without a FIN (a pod
/// deleted, a node lost) would otherwise hold every export for TCP's
/// minutes of retransmits; with the ping unanswered within
/// [`KEEPALIVE_TIMEOUT`], the connection is dropped and the export retried on
/// a new one within its timeout. Pings go only while an export waits, so a
/// gRPC server's keepalive enforcement (`too_many_pings`) never trips.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);

/// How long the ping may go unanswered before the connection is dropped.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(3);

/// The gRPC channel to the collector, built here for what the exporter does
/// not set: a connect timeout of a third of the export's (tonic's request
/// timeout starts only once connected, so unanswered SYNs would hold the
/// export for the kernel's retries; it bounds the TLS handshake too), the
/// keepalive above, and for `https://` the configured certificates, else the
/// platform's roots, as [`http_client`] does. Lazy, so a collector that is
/// not up yet never delays startup.
fn grpc_channel(config: &OtlpConfig) -> Result<Channel, TelemetryError> {
    let connect_timeout = config.timeout / 3;
    let endpoint = Endpoint::from_shared(config.endpoint.clone())
        .map_err(TelemetryError::GrpcEndpoint)?
        .timeout(config.timeout)
        .connect_timeout(connect_timeout)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(false);
    let endpoint = if endpoint.uri().scheme_str() == Some("https") {
        let tls = ClientTlsConfig::new().timeout(connect_timeout);
        let tls = match &config.tls.trusted_certificates {
            Some(pem) => tls.ca_certificate(Certificate::from_pem(pem)),
            None => tls.with_native_roots(),
        };
        let tls = match &config.tls.client_identity {
            Some(client) => tls.identity(Identity::from_pem(
                &client.certificate_chain,
                &client.private_key,
            )),
            None => tls,
        };
        endpoint
            .tls_config(tls)
            .map_err(TelemetryError::GrpcEndpoint)?
    } else {
        endpoint
    };
    Ok(endpoint.connect_lazy())
}

fn with_tonic_settings<B: WithExportConfig + WithTonicConfig>(
    builder: B,
    config: &OtlpConfig,
) -> Result<B, TelemetryError> {
    let builder = builder
        .with_channel(grpc_channel(config)?)
        .with_timeout(config.timeout)
        .with_metadata(config.headers.to_metadata());
    Ok(match compression(config.compression) {
        Some(compression) => builder.with_compression(compression),
        None => builder,
    })
}

fn with_http_settings<B: WithExportConfig + WithHttpConfig>(
    builder: B,
    config: &OtlpConfig,
) -> Result<B, TelemetryError> {
    let headers: HashMap<String, String> = config
        .headers
        .iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
    let builder = builder
        .with_http_client(http_client(config)?)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(config.endpoint.clone())
        .with_timeout(config.timeout)
        .with_headers(headers);
    Ok(match compression(config.compression) {
        Some(compression) => builder.with_compression(compression),
        None => builder,
    })
}

/// The HTTP exporter's client, built here for the TLS files the exporter
/// does not read: the certificates of `OTEL_EXPORTER_OTLP_CERTIFICATE` in
/// place of the platform's roots, and the client certificate. The timeout
/// bounds each export, connect and TLS included.
fn http_client(config: &OtlpConfig) -> Result<reqwest::blocking::Client, TelemetryError> {
    let mut builder = reqwest::blocking::Client::builder().timeout(config.timeout);
    if let Some(pem) = &config.tls.trusted_certificates {
        let certificates =
            reqwest::Certificate::from_pem_bundle(pem).map_err(TelemetryError::HttpClient)?;
        builder = builder.tls_certs_only(certificates);
    }
    if let Some(client) = &config.tls.client_identity {
        let pem = [
            client.private_key.as_slice(),
            b"\n",
            &client.certificate_chain,
        ]
        .concat();
        let identity = reqwest::Identity::from_pem(&pem).map_err(TelemetryError::HttpClient)?;
        builder = builder.identity(identity);
    }
    // The blocking client waits for a runtime thread of its own to start,
    // which panics on a runtime's thread, and `serve` builds the exporters
    // on one.
    std::thread::Builder::new()
        .name("otel-http-client".to_owned())
        .spawn(move || builder.build())
        .map_err(TelemetryError::HttpClientThread)?
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        .map_err(TelemetryError::HttpClient)
}

fn compression(config: OtlpCompression) -> Option<Compression> {
    match config {
        OtlpCompression::Gzip => Some(Compression::Gzip),
        OtlpCompression::None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{OtlpHeaders, OtlpTls};

    fn grpc_config() -> OtlpConfig {
        OtlpConfig {
            protocol: OtlpProtocol::Grpc,
            endpoint: "http://127.0.0.1:4317".to_owned(),
            timeout: Duration::from_secs(10),
            compression: OtlpCompression::None,
            headers: OtlpHeaders::default(),
            tls: OtlpTls::default(),
        }
    }

    /// `serve` builds its exporters on its own runtime, where dropping the
    /// exporter's runtime the plain way panics instead of reporting.
    #[tokio::test]
    async fn a_failed_build_on_a_runtime_returns_its_error() {
        let built = ExportRuntime::build(&grpc_config(), "otel-export-test", |_| {
            Err::<(), _>(TelemetryError::TracesInitTwice)
        });
        assert!(matches!(built, Err(TelemetryError::TracesInitTwice)));
    }

    #[tokio::test]
    async fn an_https_endpoint_gets_a_grpc_channel() {
        let config = OtlpConfig {
            endpoint: "https://collector.example:4317".to_owned(),
            ..grpc_config()
        };
        let (exporter, runtime) =
            ExportRuntime::build(&config, "otel-export-test", span_exporter).unwrap();
        drop(exporter);
        runtime.stop();
    }
}
