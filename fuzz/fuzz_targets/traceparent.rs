//! Untrusted `traceparent`/`tracestate`/`baggage` headers: extraction never
//! panics, and a context is adopted only from a header that the W3C grammar
//! accepts, with exactly the ids written in it.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use somework::telemetry::propagation::{StrictTraceContextPropagator, is_valid_traceparent};

struct Headers(HashMap<&'static str, String>);

impl Extractor for Headers {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().copied().collect()
    }
}

fuzz_target!(|input: (String, String, String)| {
    let (traceparent, tracestate, baggage) = input;
    let headers = Headers(HashMap::from([
        ("traceparent", traceparent.clone()),
        ("tracestate", tracestate),
        ("baggage", baggage),
    ]));
    let cx = StrictTraceContextPropagator::new().extract(&headers);
    let span_context = cx.span().span_context().clone();
    if span_context.is_valid() {
        assert!(is_valid_traceparent(&traceparent), "adopted {traceparent:?}");
        let fields: Vec<&str> = traceparent.split('-').collect();
        assert_eq!(span_context.trace_id().to_string(), fields[1]);
        assert_eq!(span_context.span_id().to_string(), fields[2]);
    }
});
