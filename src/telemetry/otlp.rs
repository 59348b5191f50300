//! The OTLP exporters of every signal, over gRPC (tonic) or HTTP/protobuf
//! (reqwest's blocking client, which the SDK's batch processors drive from
//! their own threads), with the settings resolved in `config::otel`.

use std::collections::HashMap;

use opentelemetry_otlp::{
    Compression, Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig,
};
use tokio::runtime::Runtime;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};

use super::TelemetryError;
use crate::config::{OtlpCompression, OtlpConfig, OtlpHeaders, OtlpProtocol};

/// Where a gRPC exporter's connection runs: a one-worker runtime of its own,
/// whose thread (`thread_name`) then encodes every batch (`prost`, about
/// 6 900 instructions per span, some 3.5 million for a batch of 512) and
/// writes it. Built in the service's runtime, tonic would spawn that work on
/// a request worker, where requests waited behind it: on a 1-CPU pod, the
/// only worker. The HTTP exporter needs none: reqwest's blocking client runs
/// on a thread of its own. Stop it with [`ExportRuntime::stop`] once the
/// provider is flushed.
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
                let exporter = {
                    let _entered = runtime.enter();
                    build(config)?
                };
                Ok((exporter, Self(Some(runtime))))
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
        OtlpProtocol::HttpProtobuf => with_http_settings(builder.with_http(), config).build(),
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
        OtlpProtocol::HttpProtobuf => with_http_settings(builder.with_http(), config).build(),
    };
    built.map_err(|source| TelemetryError::Exporter {
        signal: "log",
        source,
    })
}

fn with_tonic_settings<B: WithExportConfig + WithTonicConfig>(
    builder: B,
    config: &OtlpConfig,
) -> Result<B, TelemetryError> {
    let builder = builder
        .with_endpoint(config.endpoint.clone())
        .with_timeout(config.timeout)
        .with_metadata(metadata(&config.headers)?);
    Ok(match compression(config.compression) {
        Some(compression) => builder.with_compression(compression),
        None => builder,
    })
}

fn with_http_settings<B: WithExportConfig + WithHttpConfig>(builder: B, config: &OtlpConfig) -> B {
    let headers: HashMap<String, String> = config
        .headers
        .iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
    let builder = builder
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(config.endpoint.clone())
        .with_timeout(config.timeout)
        .with_headers(headers);
    match compression(config.compression) {
        Some(compression) => builder.with_compression(compression),
        None => builder,
    }
}

fn compression(config: OtlpCompression) -> Option<Compression> {
    match config {
        OtlpCompression::Gzip => Some(Compression::Gzip),
        OtlpCompression::None => None,
    }
}

/// The validated `OTEL_EXPORTER_OTLP_*HEADERS` as tonic's gRPC metadata.
fn metadata(headers: &OtlpHeaders) -> Result<MetadataMap, TelemetryError> {
    let mut metadata = MetadataMap::new();
    for (key, value) in headers.iter() {
        let invalid = || TelemetryError::OtlpHeader(key.to_owned());
        let key = MetadataKey::from_bytes(key.as_bytes()).map_err(|_| invalid())?;
        let value = MetadataValue::try_from(value).map_err(|_| invalid())?;
        metadata.insert(key, value);
    }
    Ok(metadata)
}
