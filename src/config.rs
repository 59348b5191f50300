//! Configuration, read from the environment once at startup and validated.
//!
//! Every variable is either valid or the process refuses to start: a typo in a
//! sampling ratio should fail the rollout, not silently sample at the SDK's
//! default. The OpenTelemetry variables follow the SDK environment variable
//! specification; `SENTRY_*` follow the Sentry SDK conventions.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use percent_encoding::percent_decode_str;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use url::Url;

/// Where the service sends spans when no OTLP endpoint is configured: the
/// collector Service of the `helm/otel-collector` chart.
pub const DEFAULT_OTLP_ENDPOINT: &str =
    "http://otel-collector.observability.svc.cluster.local:4317";
const DEFAULT_LISTEN_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8080);
const DEFAULT_SERVICE_NAME: &str = "somework";
const DEFAULT_SAMPLING_RATIO: f64 = 0.2;
const DEFAULT_OTLP_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_WORK_SLEEP: Duration = Duration::from_millis(100);
const DEFAULT_ERROR_RATE: f64 = 0.1;

/// A variable whose value cannot be used. The message names the variable and
/// the form it accepts, so it can be shown to an operator as is.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("invalid {var}={value:?}: expected {expected}")]
    Invalid {
        var: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("invalid {var}={value}: {reason}")]
    Inconsistent {
        var: &'static str,
        value: String,
        reason: String,
    },
}

/// The whole configuration of the service.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen_addr: SocketAddr,
    pub log_format: LogFormat,
    /// `RUST_LOG`, already checked to be a valid filter.
    pub log_filter: Option<String>,
    /// `None` when `OTEL_SDK_DISABLED=true`: no spans are created or exported.
    pub tracing: Option<TracingConfig>,
    /// `None` when `SENTRY_DSN` is unset: errors are only logged and traced.
    pub sentry: Option<SentryConfig>,
    pub work: WorkConfig,
    /// Where `/chain` sends its next hop; `None` means this service itself.
    pub downstream_url: Option<Url>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct TracingConfig {
    pub service_name: String,
    /// `OTEL_RESOURCE_ATTRIBUTES`, decoded, in the order given.
    pub resource_attributes: Vec<(String, String)>,
    pub endpoint: String,
    pub timeout: Duration,
    pub headers: MetadataMap,
    pub sampler: SamplerConfig,
    pub batch: BatchConfig,
}

/// The samplers of the SDK specification that this service supports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SamplerConfig {
    AlwaysOn,
    AlwaysOff,
    TraceIdRatio(f64),
    ParentBasedAlwaysOn,
    ParentBasedAlwaysOff,
    ParentBasedTraceIdRatio(f64),
}

/// The batch span processor settings (`OTEL_BSP_*`), defaulting to the
/// SDK's own defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    pub scheduled_delay: Duration,
    pub max_queue_size: usize,
    pub max_export_batch_size: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            scheduled_delay: Duration::from_millis(5000),
            max_queue_size: 2048,
            max_export_batch_size: 512,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SentryConfig {
    pub dsn: sentry::types::Dsn,
    pub environment: Option<String>,
    pub release: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkConfig {
    /// Upper bound of MiddleWork's simulated work; zero means no sleep.
    pub max_sleep: Duration,
    /// Probability in `0..=1` that ErrorWork fails on `/somework`.
    pub error_rate: f64,
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
        let env = Env(Box::new(move |name| lookup(name).filter(|v| !v.is_empty())));

        let listen_addr = env.parse_or(
            "LISTEN_ADDR",
            "a socket address such as 0.0.0.0:8080",
            DEFAULT_LISTEN_ADDR,
            |v| SocketAddr::from_str(v).ok(),
        )?;
        let log_format =
            env.parse_or("LOG_FORMAT", "text or json", LogFormat::Text, |v| {
                match v.to_ascii_lowercase().as_str() {
                    "text" => Some(LogFormat::Text),
                    "json" => Some(LogFormat::Json),
                    _ => None,
                }
            })?;
        let log_filter = env.parse_opt(
            "RUST_LOG",
            "tracing-subscriber filter directives such as info,somework=debug",
            |v| {
                tracing_subscriber::EnvFilter::try_new(v)
                    .ok()
                    .map(|_| v.to_owned())
            },
        )?;
        let sdk_disabled = env.parse_or("OTEL_SDK_DISABLED", "true or false", false, parse_bool)?;
        let tracing = if sdk_disabled {
            None
        } else {
            Some(TracingConfig::from_env(&env)?)
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

        Ok(Config {
            listen_addr,
            log_format,
            log_filter,
            tracing,
            sentry: SentryConfig::from_env(&env)?,
            work,
            downstream_url,
        })
    }
}

impl TracingConfig {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        const ENDPOINT_FORM: &str = "an http:// or https:// URL such as http://otel-collector:4317";
        // The exporter takes the endpoint as a string; keep it as written.
        let endpoint_string = |v: &str| parse_http_url(v).map(|_| v.to_owned());
        let endpoint = match env.parse_opt(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            ENDPOINT_FORM,
            endpoint_string,
        )? {
            Some(endpoint) => endpoint,
            None => env.parse_or(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                ENDPOINT_FORM,
                DEFAULT_OTLP_ENDPOINT.to_owned(),
                endpoint_string,
            )?,
        };

        const TIMEOUT_FORM: &str = "a whole number of milliseconds";
        let timeout = match env.parse_opt(
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
            TIMEOUT_FORM,
            parse_millis,
        )? {
            Some(timeout) => timeout,
            None => env.parse_or(
                "OTEL_EXPORTER_OTLP_TIMEOUT",
                TIMEOUT_FORM,
                DEFAULT_OTLP_TIMEOUT,
                parse_millis,
            )?,
        };

        const HEADERS_FORM: &str =
            "comma-separated key=value pairs with lowercase keys, values percent-encoded";
        let mut headers = env
            .parse_opt("OTEL_EXPORTER_OTLP_HEADERS", HEADERS_FORM, parse_metadata)?
            .unwrap_or_default()
            .into_headers();
        if let Some(signal_headers) = env.parse_opt(
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            HEADERS_FORM,
            parse_metadata,
        )? {
            // Signal-specific headers win over the generic ones, key by key.
            headers.extend(signal_headers.into_headers());
        }
        let headers = MetadataMap::from_headers(headers);

        let resource_attributes = env
            .parse_opt(
                "OTEL_RESOURCE_ATTRIBUTES",
                "comma-separated key=value pairs, values percent-encoded",
                parse_key_values,
            )?
            .unwrap_or_default();
        // OTEL_SERVICE_NAME wins over a service.name in OTEL_RESOURCE_ATTRIBUTES.
        let service_name = env
            .get("OTEL_SERVICE_NAME")
            .or_else(|| {
                resource_attributes
                    .iter()
                    .find(|(key, _)| key == "service.name")
                    .map(|(_, value)| value.clone())
            })
            .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned());

        Ok(TracingConfig {
            service_name,
            resource_attributes,
            endpoint,
            timeout,
            headers,
            sampler: SamplerConfig::from_env(env)?,
            batch: BatchConfig::from_env(env)?,
        })
    }
}

impl SamplerConfig {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        const SAMPLERS: &str = "one of always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio";
        let name = env
            .get("OTEL_TRACES_SAMPLER")
            .unwrap_or_else(|| "parentbased_traceidratio".to_owned());
        // Validated even for samplers that ignore it: a bad ratio is a mistake
        // waiting to matter the day the sampler is switched.
        let ratio = env.parse_or(
            "OTEL_TRACES_SAMPLER_ARG",
            "a sampling ratio between 0 and 1",
            DEFAULT_SAMPLING_RATIO,
            parse_probability,
        )?;
        Ok(match name.as_str() {
            "always_on" => SamplerConfig::AlwaysOn,
            "always_off" => SamplerConfig::AlwaysOff,
            "traceidratio" => SamplerConfig::TraceIdRatio(ratio),
            "parentbased_always_on" => SamplerConfig::ParentBasedAlwaysOn,
            "parentbased_always_off" => SamplerConfig::ParentBasedAlwaysOff,
            "parentbased_traceidratio" => SamplerConfig::ParentBasedTraceIdRatio(ratio),
            _ => {
                return Err(ConfigError::Invalid {
                    var: "OTEL_TRACES_SAMPLER",
                    value: name,
                    expected: SAMPLERS,
                });
            }
        })
    }
}

impl BatchConfig {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let defaults = BatchConfig::default();
        let max_queue_size = env.parse_or(
            "OTEL_BSP_MAX_QUEUE_SIZE",
            "a positive whole number",
            defaults.max_queue_size,
            parse_positive,
        )?;
        let max_export_batch_size = match env.parse_opt(
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
            "a positive whole number",
            parse_positive,
        )? {
            // The SDK would silently shrink an explicit batch; say so instead.
            Some(batch) if batch > max_queue_size => {
                return Err(ConfigError::Inconsistent {
                    var: "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
                    value: batch.to_string(),
                    reason: format!("must not exceed OTEL_BSP_MAX_QUEUE_SIZE ({max_queue_size})"),
                });
            }
            Some(batch) => batch,
            // A small queue alone is fine: the default batch shrinks to fit.
            None => defaults.max_export_batch_size.min(max_queue_size),
        };
        Ok(BatchConfig {
            scheduled_delay: env.parse_or(
                "OTEL_BSP_SCHEDULE_DELAY",
                "a whole number of milliseconds",
                defaults.scheduled_delay,
                parse_millis,
            )?,
            max_queue_size,
            max_export_batch_size,
        })
    }
}

impl SentryConfig {
    fn from_env(env: &Env<'_>) -> Result<Option<Self>, ConfigError> {
        let Some(dsn) = env.parse_opt(
            "SENTRY_DSN",
            "a Sentry DSN such as https://PUBLIC_KEY@o0.ingest.sentry.io/PROJECT_ID",
            |v| sentry::types::Dsn::from_str(v).ok(),
        )?
        else {
            return Ok(None);
        };
        Ok(Some(SentryConfig {
            dsn,
            environment: env.get("SENTRY_ENVIRONMENT"),
            release: env.get("SENTRY_RELEASE"),
        }))
    }
}

/// The environment as seen by the parser: unset and empty are both `None`.
struct Env<'a>(Lookup<'a>);

type Lookup<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

impl Env<'_> {
    fn get(&self, var: &str) -> Option<String> {
        (self.0)(var)
    }

    fn parse_opt<T>(
        &self,
        var: &'static str,
        expected: &'static str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, ConfigError> {
        let Some(value) = self.get(var) else {
            return Ok(None);
        };
        match parse(value.trim()) {
            Some(parsed) => Ok(Some(parsed)),
            None => Err(ConfigError::Invalid {
                var,
                value,
                expected,
            }),
        }
    }

    fn parse_or<T>(
        &self,
        var: &'static str,
        expected: &'static str,
        default: T,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, ConfigError> {
        Ok(self.parse_opt(var, expected, parse)?.unwrap_or(default))
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

fn parse_millis(value: &str) -> Option<Duration> {
    value.parse::<u64>().ok().map(Duration::from_millis)
}

fn parse_positive(value: &str) -> Option<usize> {
    value.parse::<usize>().ok().filter(|n| *n > 0)
}

fn parse_probability(value: &str) -> Option<f64> {
    value
        .parse::<f64>()
        .ok()
        .filter(|p| (0.0..=1.0).contains(p))
}

fn parse_http_url(value: &str) -> Option<Url> {
    Url::parse(value)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
}

/// Parses the W3C-baggage-like list used by `OTEL_RESOURCE_ATTRIBUTES` and
/// `OTEL_EXPORTER_OTLP_HEADERS`: `key=value,key2=value2`, values percent-encoded.
fn parse_key_values(value: &str) -> Option<Vec<(String, String)>> {
    value
        .split(',')
        .map(|pair| {
            let (key, value) = pair.split_once('=')?;
            let key = key.trim();
            if key.is_empty() {
                return None;
            }
            let value = value.trim();
            if !is_percent_encoded(value) {
                return None;
            }
            let value = percent_decode_str(value).decode_utf8().ok()?;
            Some((key.to_owned(), value.into_owned()))
        })
        .collect()
}

/// True when every `%` starts a `%XX` escape; `percent_decode_str` would
/// pass a stray `%` through unchanged, hiding a mistyped value.
fn is_percent_encoded(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.iter().enumerate().all(|(i, byte)| {
        *byte != b'%'
            || bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    })
}

fn parse_metadata(value: &str) -> Option<MetadataMap> {
    let mut map = MetadataMap::new();
    for (key, value) in parse_key_values(value)? {
        let key = MetadataKey::from_bytes(key.as_bytes()).ok()?;
        let value = MetadataValue::try_from(value.as_str()).ok()?;
        map.insert(key, value);
    }
    Some(map)
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

    fn tracing(pairs: &[(&str, &str)]) -> TracingConfig {
        parse(pairs).expect("valid").tracing.expect("tracing on")
    }

    #[test]
    fn defaults_match_the_documentation() {
        let config = parse(&[]).expect("defaults are valid");
        assert_eq!(config.listen_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(config.log_format, LogFormat::Text);
        assert!(config.sentry.is_none());
        assert_eq!(config.downstream_url, None);
        assert_eq!(
            config.work,
            WorkConfig {
                max_sleep: Duration::from_millis(100),
                error_rate: 0.1
            }
        );
        let tracing = config.tracing.expect("tracing is on by default");
        assert_eq!(tracing.endpoint, DEFAULT_OTLP_ENDPOINT);
        assert_eq!(tracing.service_name, "somework");
        assert_eq!(tracing.sampler, SamplerConfig::ParentBasedTraceIdRatio(0.2));
        assert_eq!(tracing.timeout, Duration::from_secs(10));
        assert_eq!(tracing.batch, BatchConfig::default());
    }

    #[test]
    fn signal_specific_otlp_variables_win() {
        let tracing = tracing(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://traces:4317"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "2500"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "a=1,b=2"),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "b=3,c=x%20y"),
        ]);
        assert_eq!(tracing.endpoint, "https://traces:4317");
        assert_eq!(tracing.timeout, Duration::from_millis(2500));
        let header = |key| tracing.headers.get(key).and_then(|v| v.to_str().ok());
        assert_eq!(header("a"), Some("1"));
        assert_eq!(header("b"), Some("3"));
        assert_eq!(header("c"), Some("x y"));
    }

    #[test]
    fn service_name_precedence() {
        let from_attributes = tracing(&[("OTEL_RESOURCE_ATTRIBUTES", "service.name=a,team=b")]);
        assert_eq!(from_attributes.service_name, "a");
        let explicit = tracing(&[
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=a"),
            ("OTEL_SERVICE_NAME", "c"),
        ]);
        assert_eq!(explicit.service_name, "c");
    }

    #[test]
    fn every_spec_sampler_is_understood() {
        for (name, expected) in [
            ("always_on", SamplerConfig::AlwaysOn),
            ("always_off", SamplerConfig::AlwaysOff),
            ("traceidratio", SamplerConfig::TraceIdRatio(0.5)),
            ("parentbased_always_on", SamplerConfig::ParentBasedAlwaysOn),
            (
                "parentbased_always_off",
                SamplerConfig::ParentBasedAlwaysOff,
            ),
            (
                "parentbased_traceidratio",
                SamplerConfig::ParentBasedTraceIdRatio(0.5),
            ),
        ] {
            let sampler = tracing(&[
                ("OTEL_TRACES_SAMPLER", name),
                ("OTEL_TRACES_SAMPLER_ARG", "0.5"),
            ])
            .sampler;
            assert_eq!(sampler, expected, "{name}");
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
        assert!(config.sentry.is_none());
        assert_eq!(config.work.error_rate, 0.1);
        assert!(config.tracing.is_some());
    }

    #[test]
    fn sdk_disabled_turns_tracing_off() {
        let config = parse(&[("OTEL_SDK_DISABLED", "TRUE")]).expect("valid");
        assert!(config.tracing.is_none());
    }

    #[test]
    fn a_bad_value_names_the_variable_and_the_form() {
        let error = parse(&[("OTEL_TRACES_SAMPLER_ARG", "1.5")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid OTEL_TRACES_SAMPLER_ARG=\"1.5\": expected a sampling ratio between 0 and 1"
        );
    }

    #[test]
    fn a_small_queue_alone_shrinks_the_default_batch() {
        // Found by `cargo fuzz run config`: the error used to blame
        // OTEL_BSP_MAX_EXPORT_BATCH_SIZE, which the operator never set.
        let batch = tracing(&[("OTEL_BSP_MAX_QUEUE_SIZE", "100")]).batch;
        assert_eq!(batch.max_queue_size, 100);
        assert_eq!(batch.max_export_batch_size, 100);
        let error = parse(&[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "200"),
        ])
        .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("invalid OTEL_BSP_MAX_EXPORT_BATCH_SIZE=200"),
            "{error}"
        );
    }

    #[test]
    fn stray_percent_signs_are_rejected() {
        assert!(is_percent_encoded("a%20b"));
        assert!(!is_percent_encoded("100%"));
        assert!(!is_percent_encoded("%zz"));
        assert!(parse(&[("OTEL_RESOURCE_ATTRIBUTES", "k=50%")]).is_err());
    }

    #[test]
    fn sentry_settings_are_read_together() {
        let config = parse(&[
            ("SENTRY_DSN", "https://public@o1.ingest.sentry.io/42"),
            ("SENTRY_ENVIRONMENT", "staging"),
            ("SENTRY_RELEASE", "somework@1.2.3"),
        ])
        .expect("valid");
        let sentry = config.sentry.expect("sentry on");
        assert_eq!(sentry.dsn.project_id().to_string(), "42");
        assert_eq!(sentry.environment.as_deref(), Some("staging"));
        assert_eq!(sentry.release.as_deref(), Some("somework@1.2.3"));
    }
}
