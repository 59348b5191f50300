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
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider,
};

use super::export_queue::{AdmissionProcessor, ExportStats, ReportingExporter, SPANS};
use super::otlp::ExportRuntime;
use super::resource::otel_resource;
use super::{SPAN_FLUSH_TIMEOUT, TelemetryError, flush, otlp, propagation};
use crate::config::{ExporterConfig, ResourceConfig, SamplerConfig, TracesConfig};

/// The instrumentation scope of every span this service creates.
const TRACER_NAME: &str = "somework";

static TRACER: OnceLock<CachedTracer> = OnceLock::new();

/// The tracer and the sampler it was configured with.
struct CachedTracer {
    tracer: SdkTracer,
    sampler: SamplerConfig,
}

/// The tracer every span of this service starts from, created once by
/// [`Traces::init`], as opentelemetry-rust's `tracing-http-propagator`
/// example does. It is the SDK's own tracer, not the global `BoxedTracer`,
/// which boxes every span it starts. `None` without a provider
/// (`OTEL_SDK_DISABLED=true`, or a subcommand that exports no spans): then
/// no span is started at all.
fn tracer() -> Option<&'static CachedTracer> {
    TRACER.get()
}

/// What a span records beyond its builder's name and kind, built only for a
/// span that records: a more precise name, and its attributes.
pub struct Recorded {
    pub name: Option<String>,
    pub attributes: Vec<KeyValue>,
}

impl From<Vec<KeyValue>> for Recorded {
    fn from(attributes: Vec<KeyValue>) -> Self {
        Self {
            name: None,
            attributes,
        }
    }
}

/// Starts the span `builder` describes as a child of `parent` and returns
/// `parent` with it as the current span; `None` when tracing is off.
///
/// `record` builds the span's name and attributes only if it records: the
/// samplers decide on the trace id and the parent alone, so a span that is
/// not sampled pays for none of it, and is kept as its span context alone
/// (it has nothing to end). When the sampler is sure to record it
/// ([`certainly_records`]), they go in the builder, so the SDK keeps the
/// attribute vector as it is instead of growing one.
pub fn start_span(
    builder: SpanBuilder,
    parent: &Context,
    record: impl FnOnce() -> Recorded,
) -> Option<Context> {
    let CachedTracer { tracer, sampler } = tracer()?;
    let (builder, record) = if certainly_records(*sampler, parent) {
        let Recorded { name, attributes } = record();
        let builder = SpanBuilder {
            name: name.map_or(builder.name, Into::into),
            attributes: Some(attributes),
            ..builder
        };
        (builder, None)
    } else {
        (builder, Some(record))
    };
    let mut span = tracer.build_with_context(builder, parent);
    if !span.is_recording() {
        return Some(parent.with_remote_span_context(span.span_context().clone()));
    }
    if let Some(record) = record {
        let Recorded { name, attributes } = record();
        if let Some(name) = name {
            span.update_name(name);
        }
        span.set_attributes(attributes);
    }
    Some(parent.with_span(span))
}

/// Whether `sampler` records a span whose parent is `parent`, whatever its
/// trace id, as the SDK's samplers decide it: a parent-based sampler follows
/// the parent's sampled flag when the context has a span, and decides with
/// its root sampler otherwise. `false` also means "not known before the
/// trace id": the span then gets its attributes after the decision. A wrong
/// `true` would only build attributes for a span that drops them; the test
/// below checks each case against the SDK's own samplers.
fn certainly_records(sampler: SamplerConfig, parent: &Context) -> bool {
    let parent_sampled = parent
        .has_active_span()
        .then(|| parent.span().span_context().is_sampled());
    match sampler {
        SamplerConfig::AlwaysOn => true,
        SamplerConfig::ParentBasedAlwaysOn => parent_sampled.unwrap_or(true),
        SamplerConfig::ParentBasedAlwaysOff | SamplerConfig::ParentBasedTraceIdRatio(_) => {
            parent_sampled == Some(true)
        }
        SamplerConfig::AlwaysOff | SamplerConfig::TraceIdRatio(_) => false,
    }
}

/// The trace pipeline: the provider, the counts of what happened to its
/// spans and, for OTLP/gRPC, the runtime its exporter's connection runs on.
/// Shut down with [`Traces::shutdown`].
pub struct Traces {
    provider: SdkTracerProvider,
    stats: ExportStats,
    export_runtime: Option<ExportRuntime>,
}

impl Traces {
    /// Builds the tracer provider and installs it, with the propagators of
    /// `OTEL_PROPAGATORS`, as the global ones; caches [`tracer`].
    ///
    /// The gRPC exporter is built inside a runtime of its own (see
    /// [`ExportRuntime`]). The channel connects lazily, so an unreachable
    /// collector does not delay startup.
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
        let mut export_runtime = None;
        let provider = SdkTracerProvider::builder()
            .with_sampler(sampler(config.sampler))
            .with_resource(otel_resource(resource));
        let provider = match &config.exporter {
            ExporterConfig::Otlp(otlp) => {
                let (exporter, runtime) =
                    ExportRuntime::build(otlp, "otel-export", otlp::span_exporter)?;
                export_runtime = Some(runtime);
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
            .set(CachedTracer {
                tracer: provider.tracer(TRACER_NAME),
                sampler: config.sampler,
            })
            .map_err(|_| TelemetryError::TracesInitTwice)?;
        tracing::info!(
            exporter = ?config.exporter,
            sampler = ?config.sampler,
            propagators = ?config.propagators,
            service.name = %resource.service_name,
            "tracing started"
        );
        Ok(Self {
            provider,
            stats,
            export_runtime,
        })
    }

    /// Flushes the queued spans within [`SPAN_FLUSH_TIMEOUT`], stops the
    /// exporter's runtime and logs what happened to every span since startup.
    pub async fn shutdown(self) {
        let Self {
            provider,
            stats,
            export_runtime,
        } = self;
        flush(
            "spans",
            move || provider.shutdown_with_timeout(SPAN_FLUSH_TIMEOUT),
            export_runtime,
        )
        .await;
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
    let started =
        Context::map_current(|current| start_span(builder, current, || attributes().into()));
    let Some(cx) = started else {
        return work.await;
    };
    let result = work.with_context(cx.clone()).await;
    let span = cx.span();
    // Ending a span that does not record does nothing; only the error's
    // message is worth checking for first.
    if let Err(error) = &result
        && span.is_recording()
    {
        span.set_status(Status::error(error.to_string()));
    }
    span.end();
    result
}

/// The trace id of the current span, or `None` when there is no valid span
/// (for example with `OTEL_SDK_DISABLED=true` and no incoming trace context).
pub fn current_trace_id() -> Option<String> {
    Context::map_current(|cx| {
        let span = cx.span();
        let span_context = span.span_context();
        span_context
            .is_valid()
            .then(|| span_context.trace_id().to_string())
    })
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    use opentelemetry_sdk::trace::{SamplingDecision, ShouldSample as _};

    use super::*;

    fn remote_parent(flags: TraceFlags) -> Context {
        Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
            SpanId::from(0x00f0_67aa_0ba9_02b7),
            flags,
            true,
            TraceState::default(),
        ))
    }

    /// `certainly_records` may say "not known" too often, never "records"
    /// wrongly: a span it vouches for is recorded by the SDK's own sampler of
    /// the same configuration, whatever its trace id.
    #[test]
    fn a_span_certain_to_record_is_recorded_by_the_sdks_sampler() {
        let parents = [
            ("no parent", Context::new()),
            ("sampled parent", remote_parent(TraceFlags::SAMPLED)),
            ("unsampled parent", remote_parent(TraceFlags::default())),
        ];
        let configs = [
            SamplerConfig::AlwaysOn,
            SamplerConfig::AlwaysOff,
            SamplerConfig::TraceIdRatio(0.5),
            SamplerConfig::ParentBasedAlwaysOn,
            SamplerConfig::ParentBasedAlwaysOff,
            SamplerConfig::ParentBasedTraceIdRatio(0.5),
        ];
        let mut certain = Vec::new();
        for config in configs {
            for (parent_name, parent) in &parents {
                if !certainly_records(config, parent) {
                    continue;
                }
                certain.push((config, *parent_name));
                for seed in 1..=256_u128 {
                    let trace_id =
                        TraceId::from(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835));
                    let decision = sampler(config)
                        .should_sample(Some(parent), trace_id, "span", &SpanKind::Server, &[], &[])
                        .decision;
                    assert_eq!(
                        decision,
                        SamplingDecision::RecordAndSample,
                        "{config:?} with {parent_name}, trace id {trace_id}"
                    );
                }
            }
        }
        assert_eq!(
            certain,
            [
                (SamplerConfig::AlwaysOn, "no parent"),
                (SamplerConfig::AlwaysOn, "sampled parent"),
                (SamplerConfig::AlwaysOn, "unsampled parent"),
                (SamplerConfig::ParentBasedAlwaysOn, "no parent"),
                (SamplerConfig::ParentBasedAlwaysOn, "sampled parent"),
                (SamplerConfig::ParentBasedAlwaysOff, "sampled parent"),
                (
                    SamplerConfig::ParentBasedTraceIdRatio(0.5),
                    "sampled parent"
                ),
            ]
        );
    }
}
