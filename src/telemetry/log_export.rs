//! Logs over OpenTelemetry: the service's `tracing` events, bridged into the
//! OpenTelemetry logs SDK by `opentelemetry-appender-tracing`, batched and
//! exported beside the spans. The stdout logs (`stdout_log`) are unchanged.
//!
//! The subscriber is installed before the Tokio runtime starts, the OTLP
//! exporter only inside it (tonic needs it). So [`LogsBridge`] is a layer
//! that exists from the start and forwards events once [`Logs::init`] has
//! connected it to its provider; until then (and with `OTEL_LOGS_EXPORTER=none`)
//! it costs one atomic load per event.
//!
//! Each record carries the trace and span id of the OpenTelemetry span that
//! is current when it is written: the SDK's logger reads
//! `opentelemetry::Context::current()`. This service starts its spans with the
//! SDK, not through `tracing` spans, so it makes its span context current
//! (`FutureExt::with_context`, `Context::attach`) wherever it logs.

use std::sync::{Arc, OnceLock};

use opentelemetry::Context;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_sdk::logs::{
    BatchConfigBuilder, BatchLogProcessor, SdkLogger, SdkLoggerProvider,
};
use tracing::{Level, Subscriber};
use tracing_log::NormalizeEvent as _;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

use super::export_queue::{AdmissionProcessor, ExportStats, LOGS, ReportingExporter};
use super::otlp::ExportRuntime;
use super::resource::otel_resource;
use super::{SPAN_FLUSH_TIMEOUT, TelemetryError, flush, otlp};
use crate::config::{ExporterConfig, LogsConfig, ResourceConfig};

type Bridge = OpenTelemetryTracingBridge<SdkLoggerProvider, SdkLogger>;

/// The subscriber layer that hands events to the OpenTelemetry logs bridge
/// once [`Logs::init`] has connected it.
#[derive(Clone, Default)]
pub struct LogsBridge(Arc<OnceLock<Bridge>>);

impl<S> Layer<S> for LogsBridge
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &tracing::Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let Some(bridge) = self.0.get() else {
            return;
        };
        // Records of the `log` crate arrive with the target `log`; theirs is
        // in the normalized metadata.
        let exporter_stack = match event.normalized_metadata() {
            Some(metadata) => is_exporter_target(metadata.target()),
            None => is_exporter_target(event.metadata().target()),
        };
        if !exporter_stack && (*event.metadata().level() <= Level::WARN || in_sampled_trace()) {
            bridge.on_event(event, ctx);
        }
    }
}

/// Trace-based filtering, as the logs SDK specification's `trace_based`
/// logger option defines it: a record written in a trace that is not sampled
/// is dropped with its spans. It applies below WARN only, to the per-request
/// lines whose export would otherwise cost every request, sampled or not,
/// more than its spans; warnings and errors are kept whatever the sampling,
/// beside their Sentry event. A record outside any trace is kept.
fn in_sampled_trace() -> bool {
    Context::map_current(|cx| {
        let span = cx.span();
        let span_context = span.span_context();
        !span_context.is_valid() || span_context.is_sampled()
    })
}

/// True for the log targets of the exporters' own stack: the OpenTelemetry
/// crates (`opentelemetry_sdk`, `opentelemetry-otlp`, ...) and the HTTP, gRPC
/// and TLS crates under them. A failed export logs through them; bridged,
/// that log would queue another export, which would fail and log again.
fn is_exporter_target(target: &str) -> bool {
    const STACK: [&str; 10] = [
        "h2",
        "hyper",
        "hyper_rustls",
        "hyper_util",
        "reqwest",
        "rustls",
        "rustls_platform_verifier",
        "tokio_rustls",
        "tonic",
        "tower",
    ];
    let crate_name = target.split("::").next().unwrap_or(target);
    STACK.contains(&crate_name)
        || crate_name == "opentelemetry"
        || crate_name.starts_with("opentelemetry_")
        || crate_name.starts_with("opentelemetry-")
}

/// The log pipeline: the provider behind the bridge and the counts of what
/// happened to its records. Shut down with [`Logs::shutdown`].
pub struct Logs {
    provider: SdkLoggerProvider,
    /// `None` for the console exporter, which cannot fail.
    stats: Option<ExportStats>,
    export_runtime: Option<ExportRuntime>,
}

impl Logs {
    /// Builds the logger provider and connects `bridge` to it; `None` with
    /// `OTEL_LOGS_EXPORTER=none`, when the bridge stays unconnected.
    ///
    /// The gRPC exporter is built inside a runtime of its own (see
    /// [`ExportRuntime`]). It connects lazily, so an unreachable collector
    /// does not delay startup.
    pub fn init(
        config: &LogsConfig,
        resource: &ResourceConfig,
        bridge: &LogsBridge,
    ) -> Result<Option<Self>, TelemetryError> {
        // Every value is set explicitly: the SDK's builder would otherwise
        // read OTEL_BLRP_* itself, without validation.
        let batch = || {
            BatchConfigBuilder::default()
                .with_scheduled_delay(config.batch.scheduled_delay)
                .with_max_queue_size(config.batch.max_queue_size)
                .with_max_export_batch_size(config.batch.max_export_batch_size)
                .build()
        };
        let provider = SdkLoggerProvider::builder().with_resource(otel_resource(resource));
        let (provider, stats, export_runtime) = match &config.exporter {
            ExporterConfig::Otlp(otlp) => {
                let stats = ExportStats::new(LOGS);
                let (exporter, runtime) =
                    ExportRuntime::build(otlp, "otel-export-log", otlp::log_exporter)?;
                let exporter =
                    ReportingExporter::new(exporter, otlp.endpoint.clone(), stats.clone());
                let processor = AdmissionProcessor::new(
                    BatchLogProcessor::builder(exporter)
                        .with_batch_config(batch())
                        .build(),
                    config.batch.max_queue_size,
                    stats.clone(),
                );
                (
                    provider.with_log_processor(processor),
                    Some(stats),
                    Some(runtime),
                )
            }
            ExporterConfig::Console => {
                let processor =
                    BatchLogProcessor::builder(opentelemetry_stdout::LogExporter::default())
                        .with_batch_config(batch())
                        .build();
                (provider.with_log_processor(processor), None, None)
            }
            ExporterConfig::None => {
                tracing::info!("OTEL_LOGS_EXPORTER=none: logs are printed, not exported");
                return Ok(None);
            }
        };
        let provider = provider.build();
        bridge
            .0
            .set(OpenTelemetryTracingBridge::new(&provider))
            .map_err(|_| TelemetryError::LogsInitTwice)?;
        tracing::info!(exporter = ?config.exporter, "log export started");
        Ok(Some(Self {
            provider,
            stats,
            export_runtime,
        }))
    }

    /// Flushes the queued records within [`SPAN_FLUSH_TIMEOUT`] (it runs
    /// beside the span flush, so both fit in the same budget) and logs what
    /// happened to every record since startup.
    ///
    /// The bridge stays connected to the shut-down provider, which drops
    /// what is written later: the lines logged from here on go to stdout.
    pub async fn shutdown(self) {
        let Self {
            provider,
            stats,
            export_runtime,
        } = self;
        flush(
            "log records",
            move || provider.shutdown_with_timeout(SPAN_FLUSH_TIMEOUT),
            export_runtime,
        )
        .await;
        if let Some(stats) = stats {
            let counts = stats.counts();
            tracing::info!(
                logs.exported = counts.exported,
                logs.failed = counts.failed,
                logs.dropped = counts.dropped,
                logs.unsent = counts.pending,
                "log export summary"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exporter_stack_is_never_bridged() {
        for target in [
            "h2",
            "h2::codec",
            "hyper",
            "hyper_util::client::legacy",
            "tonic::transport",
            "tower::buffer::worker",
            "reqwest::connect",
            "rustls::client",
            "rustls_platform_verifier::verification::others",
            "opentelemetry",
            "opentelemetry_sdk",
            "opentelemetry_sdk::logs",
            "opentelemetry-otlp",
            "opentelemetry-appender-tracing",
        ] {
            assert!(is_exporter_target(target), "{target}");
        }
        for target in [
            "somework",
            "somework::work",
            "somework::telemetry::export_queue::admission",
            "hyperlocal",
            "tower_http::catch_panic",
            "towering",
        ] {
            assert!(!is_exporter_target(target), "{target}");
        }
    }
}
