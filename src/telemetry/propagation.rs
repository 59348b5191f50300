//! The propagators of `OTEL_PROPAGATORS`, and W3C trace-context propagation
//! that rejects malformed `traceparent` headers.
//!
//! `opentelemetry_sdk`'s `TraceContextPropagator` (0.33) parses the fields
//! with `from_str_radix` but does not check their lengths, so a 31-digit trace
//! id or a `+1` flags field is accepted and the request joins a trace that its
//! caller never started. This wrapper checks the header against the grammar
//! of the W3C Trace Context spec (section 3.2) first and drops the whole
//! context when it does not match, which is what the spec asks of a receiver.

use opentelemetry::Context;
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{
    Extractor, Injector, TextMapCompositePropagator, TextMapPropagator,
};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};

use crate::config::PropagatorConfig;

/// The propagators of `OTEL_PROPAGATORS`, in its order: extraction tries
/// each, and injection writes every one of them.
pub fn from_config(config: &[PropagatorConfig]) -> TextMapCompositePropagator {
    TextMapCompositePropagator::new(
        config
            .iter()
            .map(|propagator| -> Box<dyn TextMapPropagator + Send + Sync> {
                match propagator {
                    PropagatorConfig::TraceContext => Box::new(StrictTraceContextPropagator::new()),
                    PropagatorConfig::Baggage => Box::new(BaggagePropagator::new()),
                }
            })
            .collect(),
    )
}

const TRACEPARENT: &str = "traceparent";
/// `00-` + 32 + `-` + 16 + `-` + 2.
const VERSION_00_LENGTH: usize = 55;

/// [`TraceContextPropagator`] with strict `traceparent` validation.
#[derive(Debug, Default)]
pub struct StrictTraceContextPropagator {
    inner: TraceContextPropagator,
}

impl StrictTraceContextPropagator {
    pub fn new() -> Self {
        Self::default()
    }
}

impl TextMapPropagator for StrictTraceContextPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        self.inner.inject_context(cx, injector);
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        match extractor.get(TRACEPARENT) {
            Some(header) if is_valid_traceparent(header) => {
                self.inner.extract_with_context(cx, extractor)
            }
            _ => cx.clone(),
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        self.inner.fields()
    }
}

/// Checks `version-traceid-parentid-flags` per W3C Trace Context level 1:
/// lowercase hex fields of exactly 2, 32, 16 and 2 digits; version `ff` is
/// invalid; version `00` has nothing after the flags, while a later version
/// may append fields after another `-`. All-zero ids are rejected downstream
/// by the SDK's validity check.
pub fn is_valid_traceparent(header: &str) -> bool {
    let header = header.as_bytes();
    if header.len() < VERSION_00_LENGTH {
        return false;
    }
    let (fields, rest) = header.split_at(VERSION_00_LENGTH);
    let well_formed = fields
        .split(|byte| *byte == b'-')
        .map(|field| {
            field
                .iter()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                .then_some(field.len())
        })
        .collect::<Option<Vec<_>>>()
        .is_some_and(|lengths| lengths == [2, 32, 16, 2]);
    if !well_formed || &fields[..2] == b"ff" {
        return false;
    }
    match &fields[..2] {
        b"00" => rest.is_empty(),
        _ => rest.is_empty() || rest[0] == b'-',
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };

    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn extract(headers: &[(&str, &str)]) -> SpanContext {
        let carrier: HashMap<String, String> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let cx = StrictTraceContextPropagator::new().extract(&carrier);
        cx.span().span_context().clone()
    }

    #[test]
    fn a_valid_traceparent_and_its_tracestate_are_extracted() {
        let span = extract(&[("traceparent", VALID), ("tracestate", "vendor=value")]);
        assert!(span.is_remote());
        assert_eq!(
            span.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(span.span_id().to_string(), "00f067aa0ba902b7");
        assert!(span.is_sampled());
        assert_eq!(span.trace_state().header(), "vendor=value");
    }

    #[test]
    fn an_invalid_traceparent_leaves_the_context_empty() {
        let span = extract(&[
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            ),
            ("tracestate", "vendor=value"),
        ]);
        assert!(!span.is_valid());
        assert!(!extract(&[]).is_valid());
    }

    #[test]
    fn the_current_span_is_injected_with_its_tracestate() {
        let span = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("hex"),
            SpanId::from_hex("00f067aa0ba902b7").expect("hex"),
            TraceFlags::SAMPLED,
            true,
            TraceState::from_key_value([("vendor", "value")]).expect("valid state"),
        );
        let cx = Context::new().with_remote_span_context(span);
        let mut carrier: HashMap<String, String> = HashMap::new();
        StrictTraceContextPropagator::new().inject_context(&cx, &mut carrier);
        assert_eq!(carrier.get("traceparent").map(String::as_str), Some(VALID));
        assert_eq!(
            carrier.get("tracestate").map(String::as_str),
            Some("vendor=value")
        );
    }

    #[test]
    fn the_fields_are_the_w3c_headers() {
        let propagator = StrictTraceContextPropagator::new();
        let fields: Vec<&str> = propagator.fields().collect();
        assert_eq!(fields, ["traceparent", "tracestate"]);
    }

    #[test]
    fn accepts_the_spec_examples() {
        assert!(is_valid_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        assert!(is_valid_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
        ));
        // A future version may add fields.
        assert!(is_valid_traceparent(
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future"
        ));
    }

    #[test]
    fn rejects_what_the_sdk_parser_lets_through() {
        for header in [
            // 31-digit trace id, 15-digit span id: from_str_radix pads them.
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
            // A sign is accepted by from_str_radix.
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-+1",
            "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // Trailing data on version 00.
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(!is_valid_traceparent(header), "{header}");
        }
    }

    #[test]
    fn rejects_malformed_headers() {
        for header in [
            "",
            "garbage",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0é",
        ] {
            assert!(!is_valid_traceparent(header), "{header}");
        }
    }
}
