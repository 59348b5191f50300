//! HTTP instrumentation following the OpenTelemetry HTTP semantic conventions:
//! a SERVER span per incoming request, continuing the caller's W3C trace
//! context, and a CLIENT span per outgoing request, whose context goes out
//! with it.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, Method, StatusCode, Version};
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{SpanBuilder, SpanKind, Status, TraceContextExt as _};
use opentelemetry::{Context, KeyValue, global};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_semantic_conventions::attribute::{
    ERROR_TYPE, HTTP_REQUEST_METHOD, HTTP_REQUEST_METHOD_ORIGINAL, HTTP_RESPONSE_STATUS_CODE,
    HTTP_ROUTE, NETWORK_PROTOCOL_VERSION, SERVER_ADDRESS, SERVER_PORT, URL_FULL, URL_PATH,
    URL_SCHEME,
};
use url::Url;

use super::{Recorded, start_span};

/// Axum middleware: wraps each request in a SERVER span named
/// `{METHOD} {route}` (just `{METHOD}` when no route matched, to keep span
/// names low-cardinality) and logs one line per request with its trace id.
///
/// A malformed `traceparent` is ignored by the propagator, so such a request
/// starts a fresh trace instead of failing.
pub async fn trace_requests(request: Request, next: Next) -> Response {
    let parent = global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(request.headers()))
    });
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let path = request.uri().path().to_owned();

    // The samplers OTEL_TRACES_SAMPLER offers decide on the trace id and the
    // parent alone, so the name is formatted, like the attributes, only for
    // a span that records.
    let method_name = known_method(&method).unwrap_or("HTTP");
    let builder = SpanBuilder::from_name(method_name).with_kind(SpanKind::Server);
    let cx = start_span(builder, &parent, || {
        // Room for every request attribute, and for the response's status
        // code and error type set when it ends.
        let mut attributes = Vec::with_capacity(8);
        attributes.extend([
            KeyValue::new(URL_PATH, path.clone()),
            KeyValue::new(URL_SCHEME, "http"),
            KeyValue::new(
                NETWORK_PROTOCOL_VERSION,
                protocol_version(request.version()),
            ),
        ]);
        push_method_attributes(&mut attributes, &method);
        let name = route.as_ref().map(|route| {
            attributes.push(KeyValue::new(HTTP_ROUTE, route.as_str().to_owned()));
            [method_name, " ", route.as_str()].concat()
        });
        Recorded { name, attributes }
    })
    .unwrap_or(parent);
    let started = Instant::now();

    let response = next.run(request).with_context(cx.clone()).await;

    let status = response.status();
    let span = cx.span();
    span.set_attribute(KeyValue::new(
        HTTP_RESPONSE_STATUS_CODE,
        i64::from(status.as_u16()),
    ));
    // Server spans are errors on 5xx only: a 4xx is the client's mistake.
    if status.is_server_error() {
        span.set_attribute(KeyValue::new(ERROR_TYPE, status.as_str().to_owned()));
        span.set_status(Status::error(""));
    }
    let span_context = span.span_context();
    // The request's context is current only while the handler is polled; made
    // current again, it gives the log record this span's ids.
    let _current = cx.clone().attach();
    // Strings rather than `%` (Display) values: the same text, without
    // `core::fmt`'s padding and dispatch on every request.
    let trace_id = LowerHex::<32>::new(&span_context.trace_id().to_bytes());
    let span_id = LowerHex::<16>::new(&span_context.span_id().to_bytes());
    tracing::info!(
        trace_id = trace_id.as_str(),
        span_id = span_id.as_str(),
        sampled = span_context.is_sampled(),
        method = method.as_str(),
        path = path.as_str(),
        status = status.as_u16(),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    span.end();
    response
}

/// An id's bytes as lowercase hex, `N` digits: what the `Display` of
/// `TraceId` (`N` = 32) and `SpanId` (16) writes.
struct LowerHex<const N: usize>([u8; N]);

impl<const N: usize> LowerHex<N> {
    fn new(bytes: &[u8]) -> Self {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hex = [b'0'; N];
        for (pair, byte) in hex.chunks_exact_mut(2).zip(bytes) {
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 0x0f)];
        }
        Self(hex)
    }

    fn as_str(&self) -> &str {
        // ASCII digits only.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// A CLIENT span for one outgoing HTTP request, a child of the current span.
///
/// Send the request inside [`ClientSpan::context`] with the headers from
/// [`ClientSpan::inject`], so that the next service continues the trace and
/// errors made meanwhile are linked to this span; then record the outcome
/// and [`ClientSpan::end`] it.
#[derive(Debug)]
pub struct ClientSpan {
    cx: Context,
}

impl ClientSpan {
    /// Starts the span, named after the method, with the request attributes
    /// of the semantic conventions.
    pub fn start(method: &Method, url: &Url) -> Self {
        let builder = SpanBuilder::from_name(known_method(method).unwrap_or("HTTP"))
            .with_kind(SpanKind::Client);
        let started = Context::map_current(|current| {
            start_span(builder, current, || {
                // Room for the response's status code and error type too.
                let mut attributes = Vec::with_capacity(8);
                attributes.push(KeyValue::new(URL_FULL, url.to_string()));
                push_method_attributes(&mut attributes, method);
                if let Some(host) = url.host_str() {
                    attributes.push(KeyValue::new(SERVER_ADDRESS, host.to_owned()));
                }
                if let Some(port) = url.port_or_known_default() {
                    attributes.push(KeyValue::new(SERVER_PORT, i64::from(port)));
                }
                attributes.into()
            })
        });
        Self {
            cx: started.unwrap_or_else(Context::current),
        }
    }

    /// The context to send the request in.
    pub fn context(&self) -> &Context {
        &self.cx
    }

    /// Writes this span's trace context into the request's headers.
    pub fn inject(&self, headers: &mut HeaderMap) {
        inject_context(&self.cx, headers);
    }

    pub fn record_status(&self, status: StatusCode) {
        self.cx.span().set_attribute(KeyValue::new(
            HTTP_RESPONSE_STATUS_CODE,
            i64::from(status.as_u16()),
        ));
    }

    /// Marks the request failed: `error_type` is the status code, or a
    /// low-cardinality name such as `timeout` when no response came.
    pub fn record_failure(&self, error_type: impl Into<String>, description: impl Into<String>) {
        let span = self.cx.span();
        span.set_attribute(KeyValue::new(ERROR_TYPE, error_type.into()));
        span.set_status(Status::error(description.into()));
    }

    pub fn end(self) {
        self.cx.span().end();
    }
}

/// Writes the trace context `cx` into outgoing request headers, through the
/// global propagators (W3C `traceparent`, `tracestate` and `baggage`).
pub fn inject_context(cx: &Context, headers: &mut HeaderMap) {
    global::get_text_map_propagator(|propagator| {
        propagator.inject_context(cx, &mut HeaderInjector(headers));
    });
}

/// `http.request.method`, plus `http.request.method_original` for methods
/// outside the HTTP spec.
fn push_method_attributes(attributes: &mut Vec<KeyValue>, method: &Method) {
    match known_method(method) {
        Some(known) => attributes.push(KeyValue::new(HTTP_REQUEST_METHOD, known)),
        None => {
            attributes.push(KeyValue::new(HTTP_REQUEST_METHOD, "_OTHER"));
            attributes.push(KeyValue::new(
                HTTP_REQUEST_METHOD_ORIGINAL,
                method.to_string(),
            ));
        }
    }
}

/// The method as the semantic conventions name it, or `None` for methods
/// outside the HTTP spec (reported as `_OTHER`).
fn known_method(method: &Method) -> Option<&'static str> {
    Some(match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::CONNECT => "CONNECT",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::PATCH => "PATCH",
        _ => return None,
    })
}

fn protocol_version(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    use super::*;

    fn method_attributes(method: &Method) -> Vec<KeyValue> {
        let mut attributes = Vec::new();
        push_method_attributes(&mut attributes, method);
        attributes
    }

    #[test]
    fn the_nine_http_methods_keep_their_names_and_any_other_is_other() {
        for (method, name) in [
            (Method::GET, "GET"),
            (Method::HEAD, "HEAD"),
            (Method::POST, "POST"),
            (Method::PUT, "PUT"),
            (Method::DELETE, "DELETE"),
            (Method::CONNECT, "CONNECT"),
            (Method::OPTIONS, "OPTIONS"),
            (Method::TRACE, "TRACE"),
            (Method::PATCH, "PATCH"),
        ] {
            assert_eq!(
                method_attributes(&method),
                [KeyValue::new(HTTP_REQUEST_METHOD, name)]
            );
        }
        let purge = Method::from_bytes(b"PURGE").unwrap();
        assert_eq!(
            method_attributes(&purge),
            [
                KeyValue::new(HTTP_REQUEST_METHOD, "_OTHER"),
                KeyValue::new(HTTP_REQUEST_METHOD_ORIGINAL, "PURGE"),
            ]
        );
    }

    /// Without a tracer (tracing off) no CLIENT span starts, and the request
    /// goes out in the caller's context: its trace is still the one errors
    /// made during the call are linked to.
    #[test]
    fn without_a_tracer_a_client_span_keeps_the_callers_context() {
        let caller = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let _attached = Context::new()
            .with_remote_span_context(caller.clone())
            .attach();
        let url = Url::parse("http://next-hop.test/chain?hops=1").unwrap();

        let span = ClientSpan::start(&Method::GET, &url);

        assert_eq!(span.context().span().span_context(), &caller);
    }

    #[test]
    fn ids_are_logged_as_their_display_writes_them() {
        for trace_id in [
            TraceId::INVALID,
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            TraceId::from_bytes([0xff; 16]),
        ] {
            let hex = LowerHex::<32>::new(&trace_id.to_bytes());
            assert_eq!(hex.as_str(), trace_id.to_string());
        }
        for span_id in [
            SpanId::INVALID,
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            SpanId::from_bytes([0xff; 8]),
        ] {
            let hex = LowerHex::<16>::new(&span_id.to_bytes());
            assert_eq!(hex.as_str(), span_id.to_string());
        }
    }

    #[test]
    fn protocol_versions_are_named_as_the_semantic_conventions_name_them() {
        for (version, name) in [
            (Version::HTTP_09, "0.9"),
            (Version::HTTP_10, "1.0"),
            (Version::HTTP_11, "1.1"),
            (Version::HTTP_2, "2"),
            (Version::HTTP_3, "3"),
        ] {
            assert_eq!(protocol_version(version), name);
        }
    }
}
