//! Untrusted configuration values: parsing never panics; it accepts or names
//! the variable it rejects.
#![no_main]

use libfuzzer_sys::fuzz_target;
use somework::config::{Config, ConfigError};

const VARIABLES: &[&str] = &[
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_BSP_MAX_QUEUE_SIZE",
    "SENTRY_DSN",
    "LISTEN_ADDR",
    "DOWNSTREAM_URL",
    "RUST_LOG",
];

fuzz_target!(|input: (u8, String)| {
    let (which, value) = input;
    let variable = VARIABLES[usize::from(which) % VARIABLES.len()];
    match Config::from_lookup(|name| (name == variable).then(|| value.clone())) {
        Ok(_) => {}
        Err(
            ConfigError::Invalid { var, .. }
            | ConfigError::Inconsistent { var, .. }
            | ConfigError::Unsupported { var, .. },
        ) => {
            assert_eq!(var, variable);
        }
    }
});
