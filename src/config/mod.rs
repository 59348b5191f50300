//! The service's configuration (`somework serve`), read from the environment
//! once at startup and validated.
//!
//! Every variable is either valid or the process refuses to start: a typo in a
//! sampling ratio should fail the rollout, not silently sample at the SDK's
//! default. [`env`] holds the mechanics, [`otel`] the OpenTelemetry SDK
//! variables, [`sentry`] the Sentry SDK's; the service's own settings are here.

mod env;
mod otel;
mod sentry;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use url::Url;

pub use self::env::ConfigError;
use self::env::{Env, parse_http_url, parse_millis, parse_probability};
pub use self::otel::{
    BatchConfig, ClientIdentity, DEFAULT_OTLP_GRPC_ENDPOINT, DEFAULT_OTLP_HTTP_ENDPOINT,
    ExporterConfig, LogsConfig, OtlpCompression, OtlpConfig, OtlpHeaders, OtlpProtocol, OtlpTls,
    PropagatorConfig, ResourceConfig, SamplerConfig, TracesConfig,
};
pub use self::sentry::{DSN_FORM, SentryConfig, parse_dsn};

const DEFAULT_LISTEN_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8080);
const DEFAULT_WORK_SLEEP: Duration = Duration::from_millis(100);
const DEFAULT_ERROR_RATE: f64 = 0.1;

/// The whole configuration of the service.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen_addr: SocketAddr,
    /// Where `/chain` sends its next hop; `None` means this service itself.
    pub downstream_url: Option<Url>,
    pub work: WorkConfig,
    pub telemetry: TelemetryConfig,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkConfig {
    /// Upper bound of MiddleWork's simulated work; zero means no sleep.
    pub max_sleep: Duration,
    /// Probability in `0..=1` that ErrorWork fails on `/somework`.
    pub error_rate: f64,
}

/// Everything the service reports through: logs, the OpenTelemetry signals
/// and Sentry.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    pub logging: LoggingConfig,
    pub resource: ResourceConfig,
    /// `None` when `OTEL_SDK_DISABLED=true`: no spans are created or exported.
    pub traces: Option<TracesConfig>,
    /// The log lines as OpenTelemetry log records; `None` when
    /// `OTEL_SDK_DISABLED=true`: they are printed but not exported.
    pub otel_logs: Option<LogsConfig>,
    /// `None` when `SENTRY_DSN` is unset: errors are only logged and traced.
    pub sentry: Option<SentryConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggingConfig {
    pub format: LogFormat,
    /// `RUST_LOG`, already checked to be a valid filter.
    pub filter: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| {
            std::env::var_os(name).map(|value| value.to_string_lossy().into_owned())
        })
    }

    /// Reads the configuration through `lookup`, which maps a variable name to
    /// its value. Empty values count as unset, as the OpenTelemetry spec asks.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(lookup);
        let listen_addr = env.parse_or(
            "LISTEN_ADDR",
            "a socket address such as 0.0.0.0:8080",
            DEFAULT_LISTEN_ADDR,
            |v| SocketAddr::from_str(v).ok(),
        )?;
        let logging = LoggingConfig::from_env(&env)?;
        otel::refuse_unsupported(&env)?;
        let (traces, otel_logs) = if otel::sdk_disabled(&env)? {
            (None, None)
        } else {
            (
                Some(TracesConfig::from_env(&env)?),
                Some(LogsConfig::from_env(&env)?),
            )
        };
        let work = WorkConfig {
            max_sleep: env.parse_or(
                "WORK_SLEEP_MS",
                "a whole number of milliseconds",
                DEFAULT_WORK_SLEEP,
                parse_millis,
            )?,
            error_rate: env.parse_or(
                "ERROR_RATE",
                "a probability between 0 and 1",
                DEFAULT_ERROR_RATE,
                parse_probability,
            )?,
        };
        let downstream_url = env.parse_opt(
            "DOWNSTREAM_URL",
            "an http:// or https:// URL such as http://somework-backend:8080",
            parse_http_url,
        )?;
        let telemetry = TelemetryConfig {
            logging,
            resource: ResourceConfig::from_env(&env)?,
            traces,
            otel_logs,
            sentry: SentryConfig::from_env(&env)?,
        };

        Ok(Config {
            listen_addr,
            downstream_url,
            work,
            telemetry,
        })
    }
}

impl LoggingConfig {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let format = env.parse_or("LOG_FORMAT", "text or json", LogFormat::Text, |v| {
            match v.to_ascii_lowercase().as_str() {
                "text" => Some(LogFormat::Text),
                "json" => Some(LogFormat::Json),
                _ => None,
            }
        })?;
        let filter = env.parse_opt(
            "RUST_LOG",
            "ASCII tracing-subscriber filter directives such as info,somework=debug",
            // tracing-subscriber 0.3.23 panics on some non-ASCII input (found
            // by `cargo fuzz run config`), so only ASCII reaches its parser.
            |v| {
                (v.is_ascii() && tracing_subscriber::EnvFilter::try_new(v).is_ok())
                    .then(|| v.to_owned())
            },
        )?;
        Ok(Self { format, filter })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(move |name| env.get(name).cloned())
    }

    /// The values of the README's configuration table, written out here
    /// rather than taken from the constants they are meant to check. The
    /// OpenTelemetry defaults are checked in `otel/`.
    #[test]
    fn defaults_match_the_documentation() {
        let config = parse(&[]).expect("defaults are valid");
        assert_eq!(config.listen_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(config.downstream_url, None);
        assert_eq!(
            config.work,
            WorkConfig {
                max_sleep: Duration::from_millis(100),
                error_rate: 0.1
            }
        );
        let telemetry = config.telemetry;
        assert_eq!(
            telemetry.logging,
            LoggingConfig {
                format: LogFormat::Text,
                filter: None
            }
        );
        assert_eq!(telemetry.resource.service_name, "somework");
        assert!(telemetry.traces.is_some(), "tracing is on by default");
        assert!(telemetry.otel_logs.is_some(), "log export is on by default");
        assert!(telemetry.sentry.is_none());
    }

    /// The README's configuration table is the documentation users read: for
    /// each row whose default is a literal value, setting the variable to it
    /// must give the same configuration as leaving it unset.
    #[test]
    fn every_default_in_the_readme_is_the_real_default() {
        let readme = include_str!("../../README.md");
        let documented: Vec<(&str, &str)> = readme
            .lines()
            .filter_map(|line| {
                let mut cells = line.strip_prefix("| `")?.split(" | ");
                let name = cells.next()?.split('`').next()?;
                let is_variable = name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
                // A cell that is one literal, or one literal and a note in
                // parentheses ("`...:4317` (`:4318` for HTTP)"). Anything
                // else ("`info`, with the SDK's own logs muted") says the
                // default is more than a value of the variable.
                let (default, rest) = cells.next()?.strip_prefix('`')?.split_once('`')?;
                (is_variable && (rest.is_empty() || rest.starts_with(" (")))
                    .then_some((name, default))
            })
            .collect();
        let names: Vec<&str> = documented.iter().map(|(name, _)| *name).collect();
        for expected in [
            "LISTEN_ADDR",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            "OTEL_TRACES_SAMPLER",
            "OTEL_TRACES_SAMPLER_ARG",
            "OTEL_SERVICE_NAME",
            "OTEL_SDK_DISABLED",
            "OTEL_BSP_SCHEDULE_DELAY",
            "OTEL_BSP_MAX_QUEUE_SIZE",
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
            "OTEL_LOGS_EXPORTER",
            "OTEL_BLRP_SCHEDULE_DELAY",
            "OTEL_BLRP_MAX_QUEUE_SIZE",
            "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
            "WORK_SLEEP_MS",
            "ERROR_RATE",
            "LOG_FORMAT",
        ] {
            assert!(names.contains(&expected), "{expected} not in {names:?}");
        }
        let defaults = format!("{:?}", parse(&[]).expect("defaults are valid"));
        for (name, value) in documented {
            let set = parse(&[(name, value)])
                .unwrap_or_else(|e| panic!("the README's {name}={value} is refused: {e}"));
            assert_eq!(
                format!("{set:?}"),
                defaults,
                "{name}={value}, documented as the default, is not the default"
            );
        }
    }

    #[test]
    fn empty_values_count_as_unset() {
        let config = parse(&[
            ("SENTRY_DSN", ""),
            ("ERROR_RATE", ""),
            ("OTEL_SDK_DISABLED", ""),
        ])
        .expect("empty is unset");
        assert!(config.telemetry.sentry.is_none());
        assert_eq!(config.work.error_rate, 0.1);
        assert!(config.telemetry.traces.is_some());
    }

    #[test]
    fn sdk_disabled_turns_traces_and_log_export_off_but_keeps_the_service_name() {
        let config = parse(&[
            ("OTEL_SDK_DISABLED", "TRUE"),
            ("OTEL_SERVICE_NAME", "frontend"),
        ])
        .expect("valid");
        assert!(config.telemetry.traces.is_none());
        assert!(config.telemetry.otel_logs.is_none());
        assert_eq!(config.telemetry.resource.service_name, "frontend");
    }

    #[test]
    fn log_formats_are_text_or_json_in_any_case() {
        for (value, format) in [("TEXT", LogFormat::Text), ("Json", LogFormat::Json)] {
            let config = parse(&[("LOG_FORMAT", value)]).expect("valid");
            assert_eq!(config.telemetry.logging.format, format, "{value}");
        }
        let error = parse(&[("LOG_FORMAT", "yaml")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid LOG_FORMAT=\"yaml\": expected text or json"
        );
    }

    #[test]
    fn a_non_ascii_log_filter_is_refused_before_it_can_panic() {
        // Found by `cargo fuzz run config`: EnvFilter::try_new("\nɦ[") panics.
        // Refused whether or not tracing-subscriber would parse it: both
        // conditions hold, ASCII and a valid filter.
        for refused in ["\nɦ[", "é=info", "info,[", "somework=loud"] {
            let error = parse(&[("RUST_LOG", refused)]).unwrap_err();
            assert!(error.to_string().contains("RUST_LOG"), "{refused}: {error}");
        }
        let config = parse(&[("RUST_LOG", "info,somework=debug")]).expect("valid");
        assert_eq!(
            config.telemetry.logging.filter.as_deref(),
            Some("info,somework=debug")
        );
    }

    #[test]
    fn downstream_must_be_an_http_url() {
        let config = parse(&[("DOWNSTREAM_URL", "http://backend:8080")]).expect("valid");
        assert_eq!(
            config.downstream_url.map(String::from).as_deref(),
            Some("http://backend:8080/")
        );
        assert!(parse(&[("DOWNSTREAM_URL", "backend:8080")]).is_err());
    }
}
