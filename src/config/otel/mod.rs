//! The OpenTelemetry SDK environment variables this service reads, with the
//! names, forms and defaults of the SDK environment variable specification.
//! Here is what every signal shares: the resource, the signal configs and the
//! names of each signal's variables. Each concept has a file of its own:
//! [`otlp`] (the exporter), [`headers`] and [`tls`] (its files) for OTLP,
//! [`sampler`], [`batch`] and [`propagators`].

mod batch;
mod headers;
mod otlp;
mod propagators;
mod sampler;
mod tls;

use crate::config::env::{ConfigError, Env, parse_bool, parse_key_values};

pub use self::batch::BatchConfig;
use self::batch::{BLRP, BSP};
pub use self::headers::OtlpHeaders;
pub use self::otlp::{
    DEFAULT_OTLP_GRPC_ENDPOINT, DEFAULT_OTLP_HTTP_ENDPOINT, ExporterConfig, OtlpCompression,
    OtlpConfig, OtlpProtocol,
};
pub use self::propagators::PropagatorConfig;
pub use self::sampler::SamplerConfig;
pub use self::tls::{ClientIdentity, OtlpTls};

const DEFAULT_SERVICE_NAME: &str = "somework";

/// `OTEL_SDK_DISABLED`: when true, no spans are created and no spans or
/// log records are exported.
pub(super) fn sdk_disabled(env: &Env<'_>) -> Result<bool, ConfigError> {
    env.parse_or("OTEL_SDK_DISABLED", "true or false", false, parse_bool)
}

/// Variables of the SDK specification that this service does not implement,
/// with what to do instead. Setting one stops the service: ignoring it would
/// leave the operator believing it took effect.
const UNSUPPORTED: &[(&str, &str)] = &[
    (
        "OTEL_EXPORTER_OTLP_INSECURE",
        "leave it unset: the endpoint's scheme decides, http:// is plaintext",
    ),
    (
        "OTEL_EXPORTER_OTLP_TRACES_INSECURE",
        "leave it unset: the endpoint's scheme decides, http:// is plaintext",
    ),
    (
        "OTEL_EXPORTER_OTLP_LOGS_INSECURE",
        "leave it unset: the endpoint's scheme decides, http:// is plaintext",
    ),
    (
        "OTEL_BSP_EXPORT_TIMEOUT",
        "leave it unset and use OTEL_EXPORTER_OTLP_TIMEOUT: the exporter's timeout bounds each export",
    ),
    // The SDK's thread-based batch log processor ignores it (its docs say
    // so); only the experimental async-runtime one reads it.
    (
        "OTEL_BLRP_EXPORT_TIMEOUT",
        "leave it unset and use OTEL_EXPORTER_OTLP_LOGS_TIMEOUT or OTEL_EXPORTER_OTLP_TIMEOUT: the exporter's timeout bounds each export",
    ),
];

/// Refuses the variables in [`UNSUPPORTED`], and an `OTEL_METRICS_EXPORTER`
/// other than `none`: the service exports no metrics (the collector derives
/// them from the spans).
pub(super) fn refuse_unsupported(env: &Env<'_>) -> Result<(), ConfigError> {
    for (var, instead) in UNSUPPORTED {
        if let Some(value) = env.get(var) {
            return Err(ConfigError::Unsupported {
                var,
                value,
                instead,
            });
        }
    }
    env.parse_opt(
        "OTEL_METRICS_EXPORTER",
        "none: this service exports no metrics",
        |v| v.eq_ignore_ascii_case("none").then_some(()),
    )?;
    Ok(())
}

/// What every signal says about the service that emits it. Read even with
/// `OTEL_SDK_DISABLED=true`: the service name is also the name `/chain`
/// answers with.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceConfig {
    /// `OTEL_SERVICE_NAME`, else a `service.name` in `OTEL_RESOURCE_ATTRIBUTES`,
    /// else `somework`.
    pub service_name: String,
    /// `OTEL_RESOURCE_ATTRIBUTES`, decoded, in the order given.
    pub attributes: Vec<(String, String)>,
}

impl ResourceConfig {
    pub(super) fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let attributes = env
            .parse_opt(
                "OTEL_RESOURCE_ATTRIBUTES",
                "comma-separated key=value pairs, values percent-encoded",
                parse_key_values,
            )?
            .unwrap_or_default();
        let service_name = env
            .get("OTEL_SERVICE_NAME")
            .or_else(|| {
                attributes
                    .iter()
                    .find(|(key, _)| key == "service.name")
                    .map(|(_, value)| value.clone())
            })
            .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned());
        Ok(Self {
            service_name,
            attributes,
        })
    }
}

/// How spans are sampled, batched, propagated and exported.
#[derive(Debug, Clone, PartialEq)]
pub struct TracesConfig {
    /// `OTEL_TRACES_EXPORTER`, with the OTLP settings when it is `otlp`.
    pub exporter: ExporterConfig,
    pub sampler: SamplerConfig,
    pub batch: BatchConfig,
    pub propagators: Vec<PropagatorConfig>,
}

impl TracesConfig {
    pub(super) fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            exporter: ExporterConfig::from_env(env, &TRACES_VARS)?,
            sampler: SamplerConfig::from_env(env)?,
            batch: BatchConfig::from_env(env, &BSP)?,
            propagators: PropagatorConfig::from_env(env)?,
        })
    }
}

/// How log records are batched and exported: the service's `tracing` events,
/// bridged into OpenTelemetry logs.
#[derive(Debug, Clone, PartialEq)]
pub struct LogsConfig {
    /// `OTEL_LOGS_EXPORTER`, with the OTLP settings when it is `otlp`.
    pub exporter: ExporterConfig,
    pub batch: BatchConfig,
}

impl LogsConfig {
    pub(super) fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            exporter: ExporterConfig::from_env(env, &LOGS_VARS)?,
            batch: BatchConfig::from_env(env, &BLRP)?,
        })
    }
}

/// The names of one signal's variables, and the path its OTLP/HTTP endpoint
/// gets when it is derived from the generic `OTEL_EXPORTER_OTLP_ENDPOINT`.
pub(super) struct SignalVars {
    exporter: &'static str,
    endpoint: &'static str,
    protocol: &'static str,
    timeout: &'static str,
    headers: &'static str,
    compression: &'static str,
    certificate: &'static str,
    client_certificate: &'static str,
    client_key: &'static str,
    http_path: &'static str,
}

pub(super) const TRACES_VARS: SignalVars = SignalVars {
    exporter: "OTEL_TRACES_EXPORTER",
    endpoint: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    protocol: "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    timeout: "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    headers: "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    compression: "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
    certificate: "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
    client_certificate: "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
    client_key: "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
    http_path: "/v1/traces",
};

pub(super) const LOGS_VARS: SignalVars = SignalVars {
    exporter: "OTEL_LOGS_EXPORTER",
    endpoint: "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
    protocol: "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
    timeout: "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT",
    headers: "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
    compression: "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION",
    certificate: "OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE",
    client_certificate: "OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE",
    client_key: "OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY",
    http_path: "/v1/logs",
};

/// The signal's variable if set, else the generic one; both are validated.
fn signal_or_generic<T>(
    env: &Env<'_>,
    signal: &'static str,
    generic: &'static str,
    expected: &'static str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>, ConfigError> {
    let generic = env.parse_opt(generic, expected, &parse)?;
    Ok(env.parse_opt(signal, expected, &parse)?.or(generic))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;

    pub(super) fn env(pairs: &[(&str, &str)]) -> Env<'static> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Env::new(move |name| env.get(name).cloned())
    }

    pub(super) fn traces(pairs: &[(&str, &str)]) -> Result<TracesConfig, ConfigError> {
        TracesConfig::from_env(&env(pairs))
    }

    pub(super) fn otlp(pairs: &[(&str, &str)]) -> OtlpConfig {
        match traces(pairs).expect("valid").exporter {
            ExporterConfig::Otlp(otlp) => otlp,
            other => panic!("not OTLP: {other:?}"),
        }
    }

    pub(super) fn logs(pairs: &[(&str, &str)]) -> Result<LogsConfig, ConfigError> {
        LogsConfig::from_env(&env(pairs))
    }

    pub(super) fn logs_otlp(pairs: &[(&str, &str)]) -> OtlpConfig {
        match logs(pairs).expect("valid").exporter {
            ExporterConfig::Otlp(otlp) => otlp,
            other => panic!("not OTLP: {other:?}"),
        }
    }

    pub(super) fn resource(pairs: &[(&str, &str)]) -> Result<ResourceConfig, ConfigError> {
        ResourceConfig::from_env(&env(pairs))
    }

    /// The values of the README's configuration table, written out here
    /// rather than taken from the constants they are meant to check.
    #[test]
    fn defaults_match_the_documentation() {
        let traces = traces(&[]).expect("defaults are valid");
        assert_eq!(
            traces.exporter,
            ExporterConfig::Otlp(OtlpConfig {
                protocol: OtlpProtocol::Grpc,
                endpoint: "http://otel-collector.observability.svc.cluster.local:4317".to_owned(),
                timeout: Duration::from_millis(10000),
                headers: OtlpHeaders::default(),
                compression: OtlpCompression::None,
                tls: OtlpTls::default(),
            })
        );
        assert_eq!(
            traces.propagators,
            [PropagatorConfig::TraceContext, PropagatorConfig::Baggage]
        );
        assert_eq!(traces.sampler, SamplerConfig::ParentBasedTraceIdRatio(0.2));
        assert_eq!(
            traces.batch,
            BatchConfig {
                scheduled_delay: Duration::from_millis(5000),
                max_queue_size: 2048,
                max_export_batch_size: 512,
            }
        );
        let logs = logs(&[]).expect("defaults are valid");
        assert_eq!(logs.exporter, traces.exporter, "the same collector");
        assert_eq!(
            logs.batch,
            BatchConfig {
                scheduled_delay: Duration::from_millis(1000),
                max_queue_size: 2048,
                max_export_batch_size: 512,
            }
        );
        let resource = resource(&[]).expect("defaults are valid");
        assert_eq!(resource.service_name, "somework");
        assert!(resource.attributes.is_empty());
        assert_eq!(sdk_disabled(&env(&[])), Ok(false));
    }

    #[test]
    fn unsupported_spec_variables_are_refused_by_name() {
        for (var, value) in [
            ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
            ("OTEL_BSP_EXPORT_TIMEOUT", "30000"),
            ("OTEL_BLRP_EXPORT_TIMEOUT", "30000"),
            ("OTEL_EXPORTER_OTLP_LOGS_INSECURE", "false"),
            ("OTEL_METRICS_EXPORTER", "otlp"),
        ] {
            let error = refuse_unsupported(&env(&[(var, value)]))
                .unwrap_err()
                .to_string();
            assert!(error.contains(var), "{var}: {error}");
        }
        assert_eq!(
            refuse_unsupported(&env(&[("OTEL_METRICS_EXPORTER", "none")])),
            Ok(())
        );
    }

    #[test]
    fn service_name_precedence() {
        let from_attributes =
            resource(&[("OTEL_RESOURCE_ATTRIBUTES", "service.name=a,team=b")]).expect("valid");
        assert_eq!(from_attributes.service_name, "a");
        let explicit = resource(&[
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=a"),
            ("OTEL_SERVICE_NAME", "c"),
        ])
        .expect("valid");
        assert_eq!(explicit.service_name, "c");
    }

    #[test]
    fn resource_attributes_must_be_percent_encoded() {
        assert!(resource(&[("OTEL_RESOURCE_ATTRIBUTES", "k=50%")]).is_err());
    }

    #[test]
    fn sdk_disabled_is_true_or_false() {
        assert_eq!(
            sdk_disabled(&env(&[("OTEL_SDK_DISABLED", "TRUE")])),
            Ok(true)
        );
        assert_eq!(
            sdk_disabled(&env(&[("OTEL_SDK_DISABLED", "false")])),
            Ok(false)
        );
        assert!(sdk_disabled(&env(&[("OTEL_SDK_DISABLED", "yes")])).is_err());
    }
}
