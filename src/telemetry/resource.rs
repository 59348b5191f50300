//! The OpenTelemetry resource every signal of the service carries.

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;
use opentelemetry_semantic_conventions::resource::SERVICE_VERSION;

use crate::config::ResourceConfig;

/// The resource: `OTEL_RESOURCE_ATTRIBUTES`, then `service.name` (from
/// `OTEL_SERVICE_NAME`, which wins), `service.version` (the crate version unless
/// given), and the SDK's `telemetry.sdk.*` attributes.
pub(super) fn otel_resource(config: &ResourceConfig) -> Resource {
    let has_version = config
        .attributes
        .iter()
        .any(|(key, _)| key == SERVICE_VERSION);
    let version = (!has_version).then(|| KeyValue::new(SERVICE_VERSION, env!("CARGO_PKG_VERSION")));
    Resource::builder_empty()
        .with_detector(Box::new(
            opentelemetry_sdk::resource::TelemetryResourceDetector,
        ))
        .with_attributes(
            config
                .attributes
                .iter()
                .map(|(key, value)| KeyValue::new(key.clone(), value.clone()))
                .chain(version),
        )
        .with_service_name(config.service_name.clone())
        .build()
}
