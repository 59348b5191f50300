//! Where each signal goes: the exporter choice and, for OTLP, the transport,
//! endpoint, timeout, headers, compression and TLS files.

use std::time::Duration;

use super::headers::OtlpHeaders;
use super::tls::{OtlpTls, TlsFiles};
use super::{SignalVars, signal_or_generic};
use crate::config::env::{ConfigError, Env, parse_http_url, parse_millis};

/// Where the service sends its signals when no OTLP endpoint is configured:
/// the collector Service of the `helm/otel-collector` chart, on the default
/// port of each OTLP protocol.
pub const DEFAULT_OTLP_GRPC_ENDPOINT: &str =
    "http://otel-collector.observability.svc.cluster.local:4317";
pub const DEFAULT_OTLP_HTTP_ENDPOINT: &str =
    "http://otel-collector.observability.svc.cluster.local:4318";
const DEFAULT_OTLP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a signal goes: `OTEL_TRACES_EXPORTER` or `OTEL_LOGS_EXPORTER`.
#[derive(Debug, Clone, PartialEq)]
pub enum ExporterConfig {
    Otlp(OtlpConfig),
    /// Printed to stdout by the SDK's stdout exporter, for local debugging.
    Console,
    /// Not exported. Spans are still created and their context propagated.
    None,
}

impl ExporterConfig {
    /// The OTLP settings are validated whatever the exporter: a bad endpoint
    /// is a mistake waiting to matter the day the exporter is switched back.
    pub(super) fn from_env(env: &Env<'_>, vars: &SignalVars) -> Result<Self, ConfigError> {
        let otlp = OtlpConfig::from_env(env, vars)?;
        let kind = env.parse_or(vars.exporter, "one of otlp, console, none", "otlp", |v| {
            ["otlp", "console", "none"]
                .into_iter()
                .find(|kind| v.eq_ignore_ascii_case(kind))
        })?;
        Ok(match kind {
            "console" => Self::Console,
            "none" => Self::None,
            _ => Self::Otlp(otlp),
        })
    }
}

/// `OTEL_EXPORTER_OTLP_PROTOCOL`: the two OTLP transports with protobuf
/// payloads. `http/json` is not supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    Grpc,
    HttpProtobuf,
}

/// `OTEL_EXPORTER_OTLP_COMPRESSION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpCompression {
    None,
    Gzip,
}

/// One signal's OTLP exporter, resolved as the specification says: the
/// signal's variable wins over the generic one, and the endpoint is final.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpConfig {
    pub protocol: OtlpProtocol,
    /// The URL the exporter sends to, as written for gRPC; with the signal's
    /// path for HTTP (`/v1/traces` or `/v1/logs` appended to a generic
    /// endpoint, a signal-specific one used as is).
    pub endpoint: String,
    pub timeout: Duration,
    pub headers: OtlpHeaders,
    pub compression: OtlpCompression,
    pub tls: OtlpTls,
}

impl OtlpConfig {
    fn from_env(env: &Env<'_>, vars: &SignalVars) -> Result<Self, ConfigError> {
        let protocol = signal_or_generic(
            env,
            vars.protocol,
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "grpc or http/protobuf",
            |v| match v.to_ascii_lowercase().as_str() {
                "grpc" => Some(OtlpProtocol::Grpc),
                "http/protobuf" => Some(OtlpProtocol::HttpProtobuf),
                _ => None,
            },
        )?
        .unwrap_or(OtlpProtocol::Grpc);

        const ENDPOINT_FORM: &str = "an http:// or https:// URL such as http://otel-collector:4317";
        // The exporter takes the endpoint as a string; keep it as written.
        let endpoint_string = |v: &str| parse_http_url(v).map(|_| v.to_owned());
        let endpoint = match env.parse_opt(vars.endpoint, ENDPOINT_FORM, endpoint_string)? {
            Some(endpoint) => endpoint,
            None => {
                let generic = env.parse_opt(
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    ENDPOINT_FORM,
                    endpoint_string,
                )?;
                match protocol {
                    OtlpProtocol::Grpc => {
                        generic.unwrap_or_else(|| DEFAULT_OTLP_GRPC_ENDPOINT.to_owned())
                    }
                    OtlpProtocol::HttpProtobuf => {
                        let base = generic.unwrap_or_else(|| DEFAULT_OTLP_HTTP_ENDPOINT.to_owned());
                        format!("{}{}", base.trim_end_matches('/'), vars.http_path)
                    }
                }
            }
        };

        let timeout = signal_or_generic(
            env,
            vars.timeout,
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            "a whole number of milliseconds",
            parse_millis,
        )?
        .unwrap_or(DEFAULT_OTLP_TIMEOUT);

        const HEADERS_FORM: &str =
            "comma-separated key=value pairs with lowercase keys, values percent-encoded";
        let mut headers = env
            .parse_opt(
                "OTEL_EXPORTER_OTLP_HEADERS",
                HEADERS_FORM,
                OtlpHeaders::parse,
            )?
            .unwrap_or_default();
        if let Some(signal_headers) =
            env.parse_opt(vars.headers, HEADERS_FORM, OtlpHeaders::parse)?
        {
            headers.override_with(signal_headers);
        }

        let compression = signal_or_generic(
            env,
            vars.compression,
            "OTEL_EXPORTER_OTLP_COMPRESSION",
            "gzip or none",
            |v| match v.to_ascii_lowercase().as_str() {
                "gzip" => Some(OtlpCompression::Gzip),
                "none" => Some(OtlpCompression::None),
                _ => None,
            },
        )?
        .unwrap_or(OtlpCompression::None);

        // Last, once every other variable parsed: the files are read here.
        let tls = TlsFiles::from_env(env, vars).load(&endpoint)?;

        Ok(Self {
            protocol,
            endpoint,
            timeout,
            headers,
            compression,
            tls,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::otel::tests::{logs, logs_otlp, otlp, traces};

    #[test]
    fn signal_specific_otlp_variables_win() {
        let traces = otlp(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://traces:4317"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "2500"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "a=1,b=2"),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "b=3,c=x%20y"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "none"),
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip"),
        ]);
        assert_eq!(traces.protocol, OtlpProtocol::Grpc);
        assert_eq!(traces.compression, OtlpCompression::Gzip);
        assert_eq!(traces.endpoint, "https://traces:4317");
        assert_eq!(traces.timeout, Duration::from_millis(2500));
        assert_eq!(
            traces.headers.iter().collect::<Vec<_>>(),
            [("a", "1"), ("b", "3"), ("c", "x y")]
        );
    }

    #[test]
    fn http_endpoints_follow_the_per_signal_path_rules() {
        let http = ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf");
        assert_eq!(
            otlp(&[http]).endpoint,
            "http://otel-collector.observability.svc.cluster.local:4318/v1/traces"
        );
        for (generic, expected) in [
            ("http://c:4318", "http://c:4318/v1/traces"),
            ("http://c:4318/", "http://c:4318/v1/traces"),
            ("https://c/prefix/", "https://c/prefix/v1/traces"),
        ] {
            let endpoint = otlp(&[http, ("OTEL_EXPORTER_OTLP_ENDPOINT", generic)]).endpoint;
            assert_eq!(endpoint, expected, "{generic}");
        }
        // A signal-specific endpoint is used as is, even without a path.
        let endpoint = otlp(&[
            http,
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/custom"),
        ])
        .endpoint;
        assert_eq!(endpoint, "http://c:4318/custom");
        // gRPC endpoints never get a path.
        let grpc = otlp(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317")]);
        assert_eq!(
            (grpc.protocol, grpc.endpoint.as_str()),
            (OtlpProtocol::Grpc, "http://c:4317")
        );
    }

    #[test]
    fn logs_follow_the_same_rules_with_their_own_variables_and_path() {
        let http = ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf");
        assert_eq!(
            logs_otlp(&[http, ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")]).endpoint,
            "http://c:4318/v1/logs"
        );
        let pairs = [
            http,
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4318"),
            (
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                "http://logs:4318/custom",
            ),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
            ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "2500"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "a=1,b=2"),
            ("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "b=3"),
            ("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "gzip"),
        ];
        let logs = logs_otlp(&pairs);
        assert_eq!(logs.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(logs.endpoint, "http://logs:4318/custom");
        assert_eq!(logs.timeout, Duration::from_millis(2500));
        assert_eq!(
            logs.headers.iter().collect::<Vec<_>>(),
            [("a", "1"), ("b", "3")]
        );
        assert_eq!(logs.compression, OtlpCompression::Gzip);
        // The logs' variables leave the traces alone.
        let traces = otlp(&pairs);
        assert_eq!(traces.endpoint, "http://generic:4318/v1/traces");
        assert_eq!(traces.timeout, Duration::from_millis(1000));
        assert_eq!(traces.compression, OtlpCompression::None);
        let grpc = logs_otlp(&[("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "grpc"), http]);
        assert_eq!(
            grpc.endpoint,
            "http://otel-collector.observability.svc.cluster.local:4317"
        );
    }

    #[test]
    fn the_logs_exporter_is_otlp_console_or_none() {
        for (value, expected) in [
            ("console", ExporterConfig::Console),
            ("NONE", ExporterConfig::None),
        ] {
            let exporter = logs(&[("OTEL_LOGS_EXPORTER", value)])
                .expect("valid")
                .exporter;
            assert_eq!(exporter, expected, "{value}");
        }
        for bad in ["logging", "otlp,console"] {
            let error = logs(&[("OTEL_LOGS_EXPORTER", bad)])
                .unwrap_err()
                .to_string();
            assert_eq!(
                error,
                format!("invalid OTEL_LOGS_EXPORTER={bad:?}: expected one of otlp, console, none")
            );
        }
        for (var, value) in [
            ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "http/json"),
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "collector:4317"),
            ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "2s"),
            ("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "Bad Key=1"),
            ("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "zstd"),
        ] {
            // Checked even with the logs exporter off.
            let error = logs(&[("OTEL_LOGS_EXPORTER", "none"), (var, value)])
                .unwrap_err()
                .to_string();
            assert!(error.starts_with(&format!("invalid {var}=")), "{error}");
        }
    }

    #[test]
    fn protocols_and_compressions_outside_the_supported_ones_are_refused() {
        for (var, value, form) in [
            (
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                "http/json",
                "grpc or http/protobuf",
            ),
            (
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                "http",
                "grpc or http/protobuf",
            ),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd", "gzip or none"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
                "deflate",
                "gzip or none",
            ),
            ("OTEL_TRACES_EXPORTER", "zipkin", "otlp, console, none"),
            (
                "OTEL_TRACES_EXPORTER",
                "otlp,console",
                "otlp, console, none",
            ),
        ] {
            let error = traces(&[(var, value)]).unwrap_err().to_string();
            assert!(
                error.contains(var) && error.contains(form),
                "{var}={value}: {error}"
            );
        }
    }

    #[test]
    fn the_exporter_is_otlp_console_or_none() {
        for (value, console, none) in [("CONSOLE", true, false), ("none", false, true)] {
            let exporter = traces(&[("OTEL_TRACES_EXPORTER", value)])
                .expect("valid")
                .exporter;
            assert_eq!(exporter == ExporterConfig::Console, console, "{value}");
            assert_eq!(exporter == ExporterConfig::None, none, "{value}");
        }
        // The OTLP settings are checked even when another exporter is chosen.
        assert!(
            traces(&[
                ("OTEL_TRACES_EXPORTER", "none"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ])
            .is_err()
        );
    }
}
