//! The usual Rust way to trace an axum service, as a peer of `make bench`:
//! tower-http's `TraceLayer` makes a `tracing` span per request, the handler's
//! work is `#[instrument]`ed with `tracing` events, and `tracing-opentelemetry`
//! turns spans and events into OpenTelemetry spans and span events, exported
//! by the SDK's batch processor over OTLP/gRPC. The span tree is somework's:
//! a SERVER span `GET /somework` continuing the caller's W3C context, then
//! `somework`, `MiddleWork` with its three events, and `ErrorWork`.
//!
//! Environment: `LISTEN_ADDR`, and what the SDK reads itself
//! (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_TRACES_SAMPLER`,
//! `OTEL_TRACES_SAMPLER_ARG`, `OTEL_BSP_*`). With `OTEL_SDK_DISABLED=true`
//! the subscriber has no OpenTelemetry layer: the `tracing` spans are still
//! made, and recorded by the registry alone.

use std::time::Duration;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::routing::get;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry::{KeyValue, global};
use opentelemetry_http::HeaderExtractor;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use somework_peers_axum::{listen_addr, sdk_disabled, terminated, work_reply};
use tower_http::trace::TraceLayer;
use tracing::{Span, field, info, info_span, instrument};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

fn init_traces() -> anyhow::Result<Option<SdkTracerProvider>> {
    let registry = tracing_subscriber::registry().with(LevelFilter::INFO);
    if sdk_disabled() {
        registry.init();
        return Ok(None);
    }
    let resource = Resource::builder()
        .with_service_name("somework-peer-axum-tracing-opentelemetry")
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()?;
    let provider = SdkTracerProvider::builder()
        .with_resource(resource)
        .with_batch_exporter(exporter)
        .build();
    global::set_text_map_propagator(TraceContextPropagator::new());
    let tracer = provider.tracer("somework-peer-axum-tracing-opentelemetry");
    registry
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .init();
    Ok(Some(provider))
}

/// The SERVER span, with the attributes of the HTTP semantic conventions
/// somework sets, continuing the context the request carries.
fn request_span(request: &Request) -> Span {
    let method = request.method().as_str();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("", MatchedPath::as_str);
    let span = info_span!(
        "request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = field::Empty,
        url.path = request.uri().path(),
        url.scheme = "http",
        network.protocol.version = "1.1",
        http.request.method = method,
        http.route = route,
        http.response.status_code = field::Empty,
    );
    let parent = global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(request.headers()))
    });
    // Fails only when the span is disabled (tracing off).
    let _ = span.set_parent(parent);
    span
}

#[instrument(name = "somework")]
async fn somework() -> axum::Json<serde_json::Value> {
    let failed = middle_work().await;
    let trace_id = Span::current().context().span().span_context().trace_id();
    work_reply(Some(trace_id.to_string()), failed)
}

#[instrument(name = "MiddleWork")]
async fn middle_work() -> bool {
    info!(sleep.duration_ms = 0_i64, "started the sleep");
    tokio::time::sleep(Duration::ZERO).await;
    info!("completed the sleep");
    let failed = error_work().await;
    info!(error_work.failed = failed, "Out of Error!");
    failed
}

#[instrument(name = "ErrorWork")]
async fn error_work() -> bool {
    false
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let provider = init_traces()?;
    let listener = tokio::net::TcpListener::bind(listen_addr()).await?;
    let app = Router::new().route("/somework", get(somework)).layer(
        TraceLayer::new_for_http()
            .make_span_with(request_span)
            .on_response(
                |response: &axum::response::Response, _latency: Duration, span: &Span| {
                    span.record("http.response.status_code", response.status().as_u16());
                    if response.status().is_server_error() {
                        span.record("otel.status_code", "ERROR");
                    }
                },
            ),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(terminated())
        .await?;
    if let Some(provider) = provider {
        provider.shutdown()?;
    }
    Ok(())
}
