//! Traces: the OpenTelemetry tracer provider (OTLP or console exporter, batch
//! processor, sampler, resource), the propagators, and the one tracer
//! every span of this service starts from.

use std::fmt::Display;
use std::future::Future;
use std::sync::OnceLock;

use opentelemetry::context::FutureExt as _;
use opentelemetry::global;
use opentelemetry::trace::{
    Span as _, SpanBuilder, SpanKind, Status, TraceContextExt as _, Tracer as _,
    TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider, Span,
};

use super::export_stats::{AdmissionProcessor, ExportStats, ReportingExporter, SPANS};
use super::resource::otel_resource;
use super::{SPAN_FLUSH_TIMEOUT, TelemetryError, off_runtime, otlp, propagation};
use crate::config::{ExporterConfig, ResourceConfig, SamplerConfig, TracesConfig};

/// The instrumentation scope of every span this service creates.
const TRACER_NAME: &str = "somework";

static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// The tracer every span of this service starts from, created once instead
/// of once per span, as opentelemetry-rust's `tracing-http-propagator`
/// example does.
///
/// It is the SDK's own tracer, not the global `BoxedTracer`: that one boxes
/// every span it starts, sampled or not, and putting a span in a `Context`
/// boxes it again.
///
/// [`Traces::init`] creates it from the provider it installs. Without that
/// (`OTEL_SDK_DISABLED=true`, or a subcommand that exports no spans) there is
/// none, and no span is started at all.
fn tracer() -> Option<&'static SdkTracer> {
    TRACER.get()
}

/// Starts the span `builder` describes as a child of `parent` and returns
/// `parent` with it as the current span; `None` when tracing is off.
///
/// `record` gives the span its attributes, and anything else that costs
/// allocations, only if it records: the samplers `OTEL_TRACES_SAMPLER`
/// offers decide on the trace id and the parent alone, so a span that is not
/// sampled pays for none of it. Such a span is kept as its span context
/// alone (its ids, for children and for propagation): a span that does not
/// record has nothing to end, and the context need not box it.
pub fn start_span(
    builder: SpanBuilder,
    parent: &Context,
    record: impl FnOnce(&mut Span),
) -> Option<Context> {
    let mut span = tracer()?.build_with_context(builder, parent);
    if !span.is_recording() {
        return Some(parent.with_remote_span_context(span.span_context().clone()));
    }
    record(&mut span);
    Some(parent.with_span(span))
}

/// The trace pipeline: the provider and the counts of what happened to its
/// spans. Shut down with [`Traces::shutdown`].
pub struct Traces {
    provider: SdkTracerProvider,
    stats: ExportStats,
}

impl Traces {
    /// Builds the tracer provider and installs it, with the propagators of
    /// `OTEL_PROPAGATORS`, as the global ones; caches [`tracer`].
    ///
    /// Must run inside a Tokio runtime: the tonic channel spawns its connection
    /// task there. The channel connects lazily, so an unreachable collector does
    /// not delay startup.
    pub fn init(config: &TracesConfig, resource: &ResourceConfig) -> Result<Self, TelemetryError> {
        // Every value is set explicitly, so the processor runs with exactly
        // the validated configuration.
        let batch = || {
            BatchConfigBuilder::default()
                .with_scheduled_delay(config.batch.scheduled_delay)
                .with_max_queue_size(config.batch.max_queue_size)
                .with_max_export_batch_size(config.batch.max_export_batch_size)
                .build()
        };
        let stats = ExportStats::new(SPANS);
        let provider = SdkTracerProvider::builder()
            .with_sampler(sampler(config.sampler))
            .with_resource(otel_resource(resource));
        let provider = match &config.exporter {
            ExporterConfig::Otlp(otlp) => {
                let exporter = otlp::span_exporter(otlp)?;
                let exporter =
                    ReportingExporter::new(exporter, otlp.endpoint.clone(), stats.clone());
                provider.with_span_processor(AdmissionProcessor::new(
                    BatchSpanProcessor::builder(exporter)
                        .with_batch_config(batch())
                        .build(),
                    config.batch.max_queue_size,
                    stats.clone(),
                ))
            }
            ExporterConfig::Console => provider.with_span_processor(
                BatchSpanProcessor::builder(opentelemetry_stdout::SpanExporter::default())
                    .with_batch_config(batch())
                    .build(),
            ),
            ExporterConfig::None => provider,
        }
        .build();

        global::set_text_map_propagator(propagation::from_config(&config.propagators));
        global::set_tracer_provider(provider.clone());
        TRACER
            .set(provider.tracer(TRACER_NAME))
            .map_err(|_| TelemetryError::TracesInitTwice)?;
        tracing::info!(
            exporter = ?config.exporter,
            sampler = ?config.sampler,
            propagators = ?config.propagators,
            service.name = %resource.service_name,
            "tracing started"
        );
        Ok(Self { provider, stats })
    }

    /// Flushes the queued spans within [`SPAN_FLUSH_TIMEOUT`] and logs what
    /// happened to every span since startup.
    pub async fn shutdown(self) {
        let Self { provider, stats } = self;
        let flushed = off_runtime(SPAN_FLUSH_TIMEOUT, move || {
            provider.shutdown_with_timeout(SPAN_FLUSH_TIMEOUT)
        })
        .await;
        match flushed {
            Some(Ok(())) => tracing::info!("spans flushed"),
            Some(Err(error)) => {
                tracing::warn!(%error, "span flush incomplete; unsent spans are lost")
            }
            None => tracing::warn!("span flush timed out; unsent spans are lost"),
        }
        let counts = stats.counts();
        tracing::info!(
            spans.exported = counts.exported,
            spans.failed = counts.failed,
            spans.dropped = counts.dropped,
            spans.unsent = counts.pending,
            "span export summary"
        );
    }
}

fn sampler(config: SamplerConfig) -> Sampler {
    match config {
        SamplerConfig::AlwaysOn => Sampler::AlwaysOn,
        SamplerConfig::AlwaysOff => Sampler::AlwaysOff,
        SamplerConfig::TraceIdRatio(ratio) => Sampler::TraceIdRatioBased(ratio),
        SamplerConfig::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        SamplerConfig::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        SamplerConfig::ParentBasedTraceIdRatio(ratio) => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio)))
        }
    }
}

/// Runs `work` inside a new INTERNAL span named `name`, a child of the
/// current span, and ends the span when `work` completes. `attributes` are
/// built only if the span records (see [`start_span`]).
///
/// The span is current while `work` is polled, on whichever worker thread
/// that happens, so context survives `.await` points. A span whose work
/// returns an error gets status Error: the error passed through it.
pub async fn in_span<T, E, F>(
    name: &'static str,
    attributes: impl FnOnce() -> Vec<KeyValue>,
    work: F,
) -> Result<T, E>
where
    E: Display,
    F: Future<Output = Result<T, E>>,
{
    let builder = SpanBuilder::from_name(name).with_kind(SpanKind::Internal);
    let started = Context::map_current(|current| {
        start_span(builder, current, |span| span.set_attributes(attributes()))
    });
    let Some(cx) = started else {
        return work.await;
    };
    let result = work.with_context(cx.clone()).await;
    let span = cx.span();
    if span.is_recording() {
        if let Err(error) = &result {
            span.set_status(Status::error(error.to_string()));
        }
        span.end();
    }
    result
}

/// The trace id of the current span, or `None` when there is no valid span
/// (for example with `OTEL_SDK_DISABLED=true` and no incoming trace context).
pub fn current_trace_id() -> Option<String> {
    let cx = Context::current();
    let span_context = cx.span().span_context().clone();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}
