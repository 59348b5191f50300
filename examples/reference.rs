//! Issue 9's reference for `make bench`: a plain axum handler with the spans
//! and span events of somework's `/somework` (a SERVER span `GET /somework`,
//! then `somework`, `MiddleWork` with its three events, `ErrorWork`; the same
//! names and attributes), instrumented the way opentelemetry-rust's examples
//! do it and nothing more: one tracer provider with the batch exporter
//! (`basic-otlp`), the global tracer fetched once and the SERVER span started
//! from the extracted context (`tracing-http-propagator`), spans ended when
//! their context is dropped. No request log, limits or export accounting.
//!
//! The bench runs it beside the service, same load, same collector, to show
//! what the SDK itself costs per request; it is not part of the service.
//!
//! Environment: `LISTEN_ADDR`; what the SDK reads itself
//! (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_TRACES_SAMPLER`,
//! `OTEL_TRACES_SAMPLER_ARG`, `OTEL_BSP_*`, `OTEL_EXPORTER_OTLP_PROTOCOL`:
//! `grpc` or `http/protobuf`); `OTEL_SDK_DISABLED=true`
//! installs no provider, so the global tracer is the no-op one; and
//! `REFERENCE_EXPORTER=discard` hands the batches to an exporter that drops
//! them, so that the export's share of the cost shows.

use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::middleware::{Next, from_fn};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use opentelemetry::context::FutureExt as _;
use opentelemetry::global::{self, BoxedTracer};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt as _, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::HeaderExtractor;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use opentelemetry_semantic_conventions::attribute::{
    HTTP_REQUEST_METHOD, HTTP_RESPONSE_STATUS_CODE, HTTP_ROUTE, NETWORK_PROTOCOL_VERSION, URL_PATH,
    URL_SCHEME,
};
use serde_json::{Value, json};
use tokio::signal::unix::{SignalKind, signal};

fn tracer() -> &'static BoxedTracer {
    static TRACER: OnceLock<BoxedTracer> = OnceLock::new();
    TRACER.get_or_init(|| global::tracer("reference"))
}

/// Drops every batch: spans are still sampled, recorded, queued and batched.
#[derive(Debug)]
struct DiscardExporter;

impl SpanExporter for DiscardExporter {
    async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
        Ok(())
    }
}

fn init_traces() -> anyhow::Result<Option<SdkTracerProvider>> {
    if std::env::var("OTEL_SDK_DISABLED").is_ok_and(|disabled| disabled == "true") {
        return Ok(None);
    }
    let resource = Resource::builder()
        .with_service_name("somework-reference")
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let provider = SdkTracerProvider::builder().with_resource(resource);
    let exporter = opentelemetry_otlp::SpanExporter::builder();
    let provider = match std::env::var("REFERENCE_EXPORTER").as_deref() {
        Ok("discard") => provider.with_batch_exporter(DiscardExporter),
        _ if std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL").as_deref() == Ok("http/protobuf") => {
            provider.with_batch_exporter(exporter.with_http().build()?)
        }
        _ => provider.with_batch_exporter(exporter.with_tonic().build()?),
    }
    .build();
    global::set_text_map_propagator(TraceContextPropagator::new());
    global::set_tracer_provider(provider.clone());
    Ok(Some(provider))
}

async fn trace_requests(request: Request, next: Next) -> Response {
    let parent = global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(request.headers()))
    });
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(String::new, |route| route.as_str().to_owned());
    let span = tracer()
        .span_builder(format!("{method} {route}"))
        .with_kind(SpanKind::Server)
        .with_attributes([
            KeyValue::new(URL_PATH, request.uri().path().to_owned()),
            KeyValue::new(URL_SCHEME, "http"),
            KeyValue::new(NETWORK_PROTOCOL_VERSION, "1.1"),
            KeyValue::new(HTTP_REQUEST_METHOD, method),
            KeyValue::new(HTTP_ROUTE, route),
        ])
        .start_with_context(tracer(), &parent);
    let cx = parent.with_span(span);
    let response = next.run(request).with_context(cx.clone()).await;
    let span = cx.span();
    span.set_attribute(KeyValue::new(
        HTTP_RESPONSE_STATUS_CODE,
        i64::from(response.status().as_u16()),
    ));
    if response.status().is_server_error() {
        span.set_status(Status::error(""));
    }
    response
}

async fn somework() -> Json<Value> {
    let cx = Context::current_with_span(tracer().start("somework"));
    let failed = middle_work().with_context(cx).await;
    let trace_id = Context::map_current(|cx| cx.span().span_context().trace_id().to_string());
    Json(json!({
        "trace_id": trace_id,
        "slept_ms": 0,
        "error_work": if failed { "failed_and_handled" } else { "succeeded" },
    }))
}

async fn middle_work() -> bool {
    let cx = Context::current_with_span(tracer().start("MiddleWork"));
    async {
        let cx = Context::current();
        let span = cx.span();
        span.add_event(
            "started the sleep",
            vec![KeyValue::new("sleep.duration_ms", 0_i64)],
        );
        tokio::time::sleep(Duration::ZERO).await;
        span.add_event("completed the sleep", Vec::new());
        let failed = error_work().await;
        span.add_event(
            "Out of Error!",
            vec![KeyValue::new("error_work.failed", failed)],
        );
        failed
    }
    .with_context(cx)
    .await
}

async fn error_work() -> bool {
    let cx = Context::current_with_span(tracer().start("ErrorWork"));
    async { false }.with_context(cx).await
}

async fn terminated() {
    match signal(SignalKind::terminate()) {
        Ok(mut sigterm) => {
            sigterm.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let provider = init_traces()?;
    let addr = std::env::var("LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let app = Router::new()
        .route("/somework", get(somework))
        .layer(from_fn(trace_requests));
    axum::serve(listener, app)
        .with_graceful_shutdown(terminated())
        .await?;
    if let Some(provider) = provider {
        provider.shutdown()?;
    }
    Ok(())
}
