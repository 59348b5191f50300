//! `OTEL_EXPORTER_OTLP_HEADERS` and its per-signal variants.

use std::fmt;

use tonic::metadata::{Ascii, MetadataKey, MetadataMap, MetadataValue};

use crate::config::env::parse_key_values;

/// The headers sent with every export (`OTEL_EXPORTER_OTLP_HEADERS`),
/// checked once here as gRPC ASCII metadata, which the HTTP exporter accepts
/// too. Vendors put API keys here, so `Debug` shows only the keys.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct OtlpHeaders(Vec<OtlpHeader>);

#[derive(Clone, PartialEq, Eq)]
struct OtlpHeader {
    /// Lowercase.
    key: MetadataKey<Ascii>,
    /// Decoded, for the HTTP exporter, which takes strings.
    value: String,
    /// The same value as gRPC metadata.
    metadata: MetadataValue<Ascii>,
}

impl OtlpHeaders {
    /// Key-value pairs whose keys and values gRPC accepts as ASCII metadata.
    /// A key given twice keeps its last value.
    pub(super) fn parse(value: &str) -> Option<Self> {
        let mut headers = Self::default();
        for (key, value) in parse_key_values(value)? {
            headers.insert(OtlpHeader {
                key: MetadataKey::from_bytes(key.as_bytes()).ok()?,
                metadata: MetadataValue::try_from(value.as_str()).ok()?,
                value,
            });
        }
        Some(headers)
    }

    fn insert(&mut self, header: OtlpHeader) {
        self.0.retain(|existing| existing.key != header.key);
        self.0.push(header);
    }

    /// Signal-specific headers win over the generic ones, key by key.
    pub(super) fn override_with(&mut self, signal_headers: Self) {
        for header in signal_headers.0 {
            self.insert(header);
        }
    }

    /// The headers as strings, for the HTTP exporter.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .map(|header| (header.key.as_str(), header.value.as_str()))
    }

    /// The headers as gRPC metadata, for the gRPC exporter.
    pub fn to_metadata(&self) -> MetadataMap {
        let mut metadata = MetadataMap::with_capacity(self.0.len());
        for header in &self.0 {
            metadata.insert(header.key.clone(), header.metadata.clone());
        }
        metadata
    }
}

impl fmt::Debug for OtlpHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.0
                    .iter()
                    .map(|header| (header.key.as_str(), "<redacted>")),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use crate::config::otel::tests::{otlp, traces};

    #[test]
    fn header_values_stay_out_of_debug_output() {
        let traces = traces(&[("OTEL_EXPORTER_OTLP_HEADERS", "api-key=s3cr3t")]).expect("valid");
        let debug = format!("{traces:?}");
        assert!(debug.contains("api-key"), "{debug}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
    }

    #[test]
    fn header_keys_must_be_grpc_ascii_metadata() {
        for headers in ["Bad Key=1", "key-bin=1", "k=%0A"] {
            let error = traces(&[("OTEL_EXPORTER_OTLP_HEADERS", headers)]).unwrap_err();
            assert!(
                error.to_string().contains("OTEL_EXPORTER_OTLP_HEADERS"),
                "{headers}: {error}"
            );
        }
    }

    #[test]
    fn headers_are_the_same_as_strings_and_as_grpc_metadata() {
        let headers = otlp(&[
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=a,team=x%20y"),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "api-key=b"),
        ])
        .headers;
        assert_eq!(
            headers.iter().collect::<Vec<_>>(),
            [("team", "x y"), ("api-key", "b")]
        );
        let metadata = headers.to_metadata();
        assert_eq!(metadata.len(), 2);
        for (key, value) in headers.iter() {
            let sent = metadata.get(key).and_then(|value| value.to_str().ok());
            assert_eq!(sent, Some(value), "{key}");
        }
    }
}
