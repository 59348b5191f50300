//! The OpenTelemetry SDK environment variables this service reads: the
//! resource, the OTLP exporters of traces and logs, the sampler and the batch
//! span and log record processors, with the names, forms and defaults of the
//! SDK environment variable specification.

use std::fmt;
use std::time::Duration;

use rustls::crypto::aws_lc_rs;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use tonic::metadata::{Ascii, MetadataKey, MetadataValue};

use super::env::{
    ConfigError, Env, parse_bool, parse_http_url, parse_key_values, parse_millis, parse_positive,
    parse_probability,
};

/// Where the service sends its signals when no OTLP endpoint is configured:
/// the collector Service of the `helm/otel-collector` chart, on the default
/// port of each OTLP protocol.
pub const DEFAULT_OTLP_GRPC_ENDPOINT: &str =
    "http://otel-collector.observability.svc.cluster.local:4317";
pub const DEFAULT_OTLP_HTTP_ENDPOINT: &str =
    "http://otel-collector.observability.svc.cluster.local:4318";
const DEFAULT_SERVICE_NAME: &str = "somework";
const DEFAULT_SAMPLING_RATIO: f64 = 0.2;
const DEFAULT_OTLP_TIMEOUT: Duration = Duration::from_secs(10);

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
            exporter: ExporterConfig::from_env(env, &TRACES)?,
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
            exporter: ExporterConfig::from_env(env, &LOGS)?,
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

pub(super) const TRACES: SignalVars = SignalVars {
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

pub(super) const LOGS: SignalVars = SignalVars {
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

        let tls = OtlpTls::from_env(env, vars, &endpoint)?;

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

/// The TLS files of one signal's exporter, read and checked at startup, so
/// that a wrong path stops the service instead of failing every export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OtlpTls {
    /// `OTEL_EXPORTER_OTLP_[SIGNAL_]CERTIFICATE`: PEM certificates that
    /// verify the collector in place of the platform's roots (a private CA).
    pub trusted_certificates: Option<Vec<u8>>,
    /// `..._CLIENT_CERTIFICATE` and `..._CLIENT_KEY`, for a collector that
    /// asks for a client certificate (mutual TLS).
    pub client_identity: Option<ClientIdentity>,
}

/// A client certificate chain and its private key, as PEM. `Debug` leaves
/// the key out.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    pub certificate_chain: Vec<u8>,
    pub private_key: Vec<u8>,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("certificate_chain", &self.certificate_chain.len())
            .finish_non_exhaustive()
    }
}

const CERTIFICATES_FORM: &str = "the path of a readable PEM file of one or more certificates";
const KEY_FORM: &str = "the path of a readable PEM file with a private key";

impl OtlpTls {
    fn from_env(env: &Env<'_>, vars: &SignalVars, endpoint: &str) -> Result<Self, ConfigError> {
        const CERTIFICATE: &str = "OTEL_EXPORTER_OTLP_CERTIFICATE";
        const CLIENT_CERTIFICATE: &str = "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE";
        const CLIENT_KEY: &str = "OTEL_EXPORTER_OTLP_CLIENT_KEY";
        let trusted = TlsFile::from_env(
            env,
            vars.certificate,
            CERTIFICATE,
            CERTIFICATES_FORM,
            read_certificates,
        )?;
        let client_certificate = TlsFile::from_env(
            env,
            vars.client_certificate,
            CLIENT_CERTIFICATE,
            CERTIFICATES_FORM,
            read_certificates,
        )?;
        let client_key =
            TlsFile::from_env(env, vars.client_key, CLIENT_KEY, KEY_FORM, read_private_key)?;

        let https = url::Url::parse(endpoint).is_ok_and(|url| url.scheme() == "https");
        if !https
            && let Some(file) = [&trusted, &client_certificate, &client_key]
                .into_iter()
                .flatten()
                .next()
        {
            return Err(file.inconsistent(format!(
                "the endpoint {endpoint} is plaintext; TLS files need an https:// one"
            )));
        }
        let client_identity = match (client_certificate, client_key) {
            (Some(certificate), Some(key)) => {
                check_key_pair(&certificate.pem, &key.pem)
                    .map_err(|reason| key.inconsistent(reason))?;
                Some(ClientIdentity {
                    certificate_chain: certificate.pem,
                    private_key: key.pem,
                })
            }
            (None, None) => None,
            (Some(certificate), None) => {
                return Err(certificate.inconsistent(format!(
                    "a client certificate needs its key: set {CLIENT_KEY} too"
                )));
            }
            (None, Some(key)) => {
                return Err(key.inconsistent(format!(
                    "a client key needs its certificate: set {CLIENT_CERTIFICATE} too"
                )));
            }
        };
        Ok(Self {
            trusted_certificates: trusted.map(|file| file.pem),
            client_identity,
        })
    }
}

/// One TLS file as the operator named it: the variable that won (the
/// signal's over the generic one), its path, and what the file holds.
struct TlsFile {
    var: &'static str,
    path: String,
    pem: Vec<u8>,
}

impl TlsFile {
    /// The signal's file if set, else the generic one; both are validated
    /// with `read`.
    fn from_env(
        env: &Env<'_>,
        signal: &'static str,
        generic: &'static str,
        expected: &'static str,
        read: fn(&str) -> Option<Vec<u8>>,
    ) -> Result<Option<Self>, ConfigError> {
        let named = |var: &'static str| {
            env.parse_opt(var, expected, |path| {
                Some(Self {
                    var,
                    path: path.to_owned(),
                    pem: read(path)?,
                })
            })
        };
        let generic = named(generic)?;
        Ok(named(signal)?.or(generic))
    }

    fn inconsistent(&self, reason: String) -> ConfigError {
        ConfigError::Inconsistent {
            var: self.var,
            value: self.path.clone(),
            reason,
        }
    }
}

/// The file at `path` if it holds one or more PEM certificates and nothing
/// malformed.
fn read_certificates(path: &str) -> Option<Vec<u8>> {
    let pem = std::fs::read(path).ok()?;
    let mut count = 0;
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        certificate.ok()?;
        count += 1;
    }
    (count > 0).then_some(pem)
}

/// Whether rustls can sign with `key` as the owner of the chain's first
/// certificate, as the TLS handshake will ask it to.
fn check_key_pair(certificate_chain: &[u8], key: &[u8]) -> Result<(), String> {
    let chain = CertificateDer::pem_slice_iter(certificate_chain)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| error.to_string())?;
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|error| error.to_string())?;
    match CertifiedKey::from_der(chain, key, &aws_lc_rs::default_provider()) {
        Ok(_) => Ok(()),
        Err(rustls::Error::InconsistentKeys(_)) => {
            Err("the key does not belong to the client certificate".to_owned())
        }
        Err(error) => Err(format!("the key cannot sign: {error}")),
    }
}

/// The file at `path` if it holds a PEM private key (PKCS#8, PKCS#1 or SEC1).
fn read_private_key(path: &str) -> Option<Vec<u8>> {
    let pem = std::fs::read(path).ok()?;
    PrivateKeyDer::from_pem_slice(&pem).ok()?;
    Some(pem)
}

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

/// `OTEL_PROPAGATORS`: how trace context travels in HTTP headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropagatorConfig {
    /// W3C `traceparent`/`tracestate`.
    TraceContext,
    /// W3C `baggage`.
    Baggage,
}

impl PropagatorConfig {
    /// A comma-separated list, duplicates ignored; `none` alone means no
    /// propagation at all. Default `tracecontext,baggage`.
    fn from_env(env: &Env<'_>) -> Result<Vec<Self>, ConfigError> {
        const VAR: &str = "OTEL_PROPAGATORS";
        if let Some(value) = env.get(VAR) {
            let names = value
                .split(',')
                .map(|name| name.trim().to_ascii_lowercase());
            if names
                .into_iter()
                .any(|name| name == "b3" || name == "b3multi")
            {
                return Err(ConfigError::Unsupported {
                    var: VAR,
                    value,
                    instead: "use tracecontext, baggage or none: the only B3 propagator for \
                              opentelemetry 0.33, in opentelemetry-zipkin, is deprecated with \
                              that crate",
                });
            }
        }
        let propagators = env.parse_opt(
            VAR,
            "a comma-separated list of tracecontext and baggage, or none alone",
            |v| {
                if v.eq_ignore_ascii_case("none") {
                    return Some(Vec::new());
                }
                let mut propagators = Vec::new();
                for name in v.split(',') {
                    let propagator = match name.trim().to_ascii_lowercase().as_str() {
                        "tracecontext" => Self::TraceContext,
                        "baggage" => Self::Baggage,
                        _ => return None,
                    };
                    if !propagators.contains(&propagator) {
                        propagators.push(propagator);
                    }
                }
                Some(propagators)
            },
        )?;
        Ok(propagators.unwrap_or_else(|| vec![Self::TraceContext, Self::Baggage]))
    }
}

/// gRPC metadata sent with every export (`OTEL_EXPORTER_OTLP_HEADERS`), as
/// validated strings with lowercase keys; the exporter setup turns them into
/// tonic's metadata. Vendors put API keys here, so `Debug` shows only the keys.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct OtlpHeaders(Vec<(String, String)>);

impl OtlpHeaders {
    /// Key-value pairs whose keys and values gRPC accepts as ASCII metadata.
    /// A key given twice keeps its last value.
    fn parse(value: &str) -> Option<Self> {
        let mut headers = Self::default();
        for (key, value) in parse_key_values(value)? {
            let key = MetadataKey::<Ascii>::from_bytes(key.as_bytes()).ok()?;
            MetadataValue::<Ascii>::try_from(value.as_str()).ok()?;
            headers.insert(key.as_str().to_owned(), value);
        }
        Some(headers)
    }

    fn insert(&mut self, key: String, value: String) {
        self.0.retain(|(existing, _)| *existing != key);
        self.0.push((key, value));
    }

    /// Signal-specific headers win over the generic ones, key by key.
    fn override_with(&mut self, signal_headers: Self) {
        for (key, value) in signal_headers.0 {
            self.insert(key, value);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
    }
}

impl fmt::Debug for OtlpHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(key, _)| (key, "<redacted>")))
            .finish()
    }
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

/// The settings of a batch processor: `OTEL_BSP_*` for spans, `OTEL_BLRP_*`
/// for log records, defaulting to the specification's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    pub scheduled_delay: Duration,
    pub max_queue_size: usize,
    pub max_export_batch_size: usize,
}

/// The names of one batch processor's variables, and its defaults.
pub(super) struct BatchVars {
    schedule_delay: &'static str,
    max_queue_size: &'static str,
    max_export_batch_size: &'static str,
    defaults: BatchConfig,
}

/// The batch span processor.
pub(super) const BSP: BatchVars = BatchVars {
    schedule_delay: "OTEL_BSP_SCHEDULE_DELAY",
    max_queue_size: "OTEL_BSP_MAX_QUEUE_SIZE",
    max_export_batch_size: "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    defaults: BatchConfig {
        scheduled_delay: Duration::from_millis(5000),
        max_queue_size: 2048,
        max_export_batch_size: 512,
    },
};

/// The batch log record processor: the same defaults but a 1 s delay.
pub(super) const BLRP: BatchVars = BatchVars {
    schedule_delay: "OTEL_BLRP_SCHEDULE_DELAY",
    max_queue_size: "OTEL_BLRP_MAX_QUEUE_SIZE",
    max_export_batch_size: "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
    defaults: BatchConfig {
        scheduled_delay: Duration::from_millis(1000),
        max_queue_size: 2048,
        max_export_batch_size: 512,
    },
};

impl BatchConfig {
    fn from_env(env: &Env<'_>, vars: &BatchVars) -> Result<Self, ConfigError> {
        let defaults = vars.defaults;
        let max_queue_size = env.parse_or(
            vars.max_queue_size,
            "a positive whole number",
            defaults.max_queue_size,
            parse_positive,
        )?;
        let max_export_batch_size = match env.parse_opt(
            vars.max_export_batch_size,
            "a positive whole number",
            parse_positive,
        )? {
            // The SDK would silently shrink an explicit batch; say so instead.
            Some(batch) if batch > max_queue_size => {
                return Err(ConfigError::Inconsistent {
                    var: vars.max_export_batch_size,
                    value: batch.to_string(),
                    reason: format!("must not exceed {} ({max_queue_size})", vars.max_queue_size),
                });
            }
            Some(batch) => batch,
            // A small queue alone is fine: the default batch shrinks to fit.
            None => defaults.max_export_batch_size.min(max_queue_size),
        };
        Ok(BatchConfig {
            scheduled_delay: env.parse_or(
                vars.schedule_delay,
                "a whole number of milliseconds",
                defaults.scheduled_delay,
                parse_millis,
            )?,
            max_queue_size,
            max_export_batch_size,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use somework_testkit::tls::TestCertificates;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env<'static> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Env::new(move |name| env.get(name).cloned())
    }

    fn traces(pairs: &[(&str, &str)]) -> Result<TracesConfig, ConfigError> {
        TracesConfig::from_env(&env(pairs))
    }

    fn otlp(pairs: &[(&str, &str)]) -> OtlpConfig {
        match traces(pairs).expect("valid").exporter {
            ExporterConfig::Otlp(otlp) => otlp,
            other => panic!("not OTLP: {other:?}"),
        }
    }

    fn logs(pairs: &[(&str, &str)]) -> Result<LogsConfig, ConfigError> {
        LogsConfig::from_env(&env(pairs))
    }

    fn logs_otlp(pairs: &[(&str, &str)]) -> OtlpConfig {
        match logs(pairs).expect("valid").exporter {
            ExporterConfig::Otlp(otlp) => otlp,
            other => panic!("not OTLP: {other:?}"),
        }
    }

    fn resource(pairs: &[(&str, &str)]) -> Result<ResourceConfig, ConfigError> {
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
    fn the_log_batch_variables_are_validated_like_the_span_ones() {
        let batch = logs(&[
            ("OTEL_BLRP_SCHEDULE_DELAY", "250"),
            ("OTEL_BLRP_MAX_QUEUE_SIZE", "100"),
            ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "100"),
        ])
        .expect("valid")
        .batch;
        assert_eq!(
            batch,
            BatchConfig {
                scheduled_delay: Duration::from_millis(250),
                max_queue_size: 100,
                max_export_batch_size: 100,
            }
        );
        assert_eq!(
            logs(&[("OTEL_BLRP_MAX_QUEUE_SIZE", "10")])
                .expect("valid")
                .batch
                .max_export_batch_size,
            10,
            "a small queue alone shrinks the default batch"
        );
        // The span processor's variables do not touch the log processor.
        assert_eq!(
            logs(&[("OTEL_BSP_MAX_QUEUE_SIZE", "10")])
                .expect("valid")
                .batch,
            logs(&[]).expect("valid").batch
        );
        for (var, value, expected) in [
            (
                "OTEL_BLRP_SCHEDULE_DELAY",
                "1s",
                "invalid OTEL_BLRP_SCHEDULE_DELAY=\"1s\": expected a whole number of milliseconds",
            ),
            (
                "OTEL_BLRP_MAX_QUEUE_SIZE",
                "0",
                "invalid OTEL_BLRP_MAX_QUEUE_SIZE=\"0\": expected a positive whole number",
            ),
            (
                "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
                "-1",
                "invalid OTEL_BLRP_MAX_EXPORT_BATCH_SIZE=\"-1\": expected a positive whole number",
            ),
        ] {
            let error = logs(&[(var, value)]).unwrap_err().to_string();
            assert_eq!(error, expected);
        }
        let error = logs(&[
            ("OTEL_BLRP_MAX_QUEUE_SIZE", "100"),
            ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "101"),
        ])
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid OTEL_BLRP_MAX_EXPORT_BATCH_SIZE=101: must not exceed OTEL_BLRP_MAX_QUEUE_SIZE (100)"
        );
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

    #[test]
    fn propagators_are_a_deduplicated_list_or_none() {
        let propagators =
            |value| traces(&[("OTEL_PROPAGATORS", value)]).map(|traces| traces.propagators);
        assert_eq!(
            propagators("baggage, TraceContext,baggage"),
            Ok(vec![
                PropagatorConfig::Baggage,
                PropagatorConfig::TraceContext
            ])
        );
        assert_eq!(propagators("none"), Ok(Vec::new()));
        for bad in [
            "jaeger",
            "xray",
            "tracecontext,none",
            "tracecontext,,baggage",
        ] {
            let error = propagators(bad).unwrap_err().to_string();
            assert!(
                error.contains("OTEL_PROPAGATORS") && error.contains("tracecontext and baggage"),
                "{bad}: {error}"
            );
        }
        for b3 in ["b3", "tracecontext,B3MULTI"] {
            let error = propagators(b3).unwrap_err().to_string();
            assert!(
                error.contains("OTEL_PROPAGATORS") && error.contains("deprecated"),
                "{b3}: {error}"
            );
        }
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

    fn path(file: std::path::PathBuf) -> String {
        file.into_os_string()
            .into_string()
            .expect("a UTF-8 temporary path")
    }

    #[test]
    fn tls_files_are_read_per_signal_over_the_generic_ones() {
        let files = TestCertificates::new();
        let (ca, server) = (path(files.ca_file()), path(files.server_cert_file()));
        let (client, key) = (
            path(files.client_cert_file()),
            path(files.client_key_file()),
        );
        let pairs = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", &ca),
            ("OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE", &server),
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &client),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &key),
        ];
        let read = |file: std::path::PathBuf| std::fs::read(file).expect("a test PEM file");
        let traces = otlp(&pairs).tls;
        assert_eq!(traces.trusted_certificates, Some(read(files.ca_file())));
        let client = traces.client_identity.expect("a client identity");
        assert_eq!(client.certificate_chain, read(files.client_cert_file()));
        assert_eq!(client.private_key, read(files.client_key_file()));
        assert!(!format!("{client:?}").contains("PRIVATE KEY"), "{client:?}");
        let logs = logs_otlp(&pairs).tls;
        assert_eq!(
            logs.trusted_certificates,
            Some(read(files.server_cert_file()))
        );
        assert!(logs.client_identity.is_some());
    }

    #[test]
    fn tls_files_that_are_missing_or_not_pem_are_refused_by_name() {
        let files = TestCertificates::new();
        let https = ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317");
        let key = &path(files.client_key_file());
        let certificate = &path(files.client_cert_file());
        for (var, value, form) in [
            (
                "OTEL_EXPORTER_OTLP_CERTIFICATE",
                "/nonexistent/ca.pem",
                CERTIFICATES_FORM,
            ),
            (
                "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
                key,
                CERTIFICATES_FORM,
            ),
            (
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                key,
                CERTIFICATES_FORM,
            ),
            (
                "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
                certificate,
                KEY_FORM,
            ),
        ] {
            let error = traces(&[https, (var, value)]).unwrap_err();
            assert_eq!(
                error,
                ConfigError::Invalid {
                    var,
                    value: value.to_owned(),
                    expected: form,
                }
            );
        }
    }

    #[test]
    fn half_a_client_identity_is_refused_naming_what_is_missing() {
        let files = TestCertificates::new();
        let https = ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317");
        let certificate = &path(files.client_cert_file());
        let key = &path(files.client_key_file());
        for (var, value, missing) in [
            (
                "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
                certificate,
                "OTEL_EXPORTER_OTLP_CLIENT_KEY",
            ),
            (
                "OTEL_EXPORTER_OTLP_CLIENT_KEY",
                key,
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            ),
        ] {
            match traces(&[https, (var, value)]).unwrap_err() {
                ConfigError::Inconsistent {
                    var: named,
                    value: shown,
                    reason,
                } => {
                    assert_eq!((named, shown.as_str()), (var, value.as_str()));
                    assert!(reason.contains(missing), "{reason}");
                }
                other => panic!("{var}: {other}"),
            }
        }
    }

    #[test]
    fn a_client_key_of_another_certificate_is_refused() {
        let files = TestCertificates::new();
        let server_key = &path(files.server_key_file());
        let error = traces(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317"),
            (
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                &path(files.client_cert_file()),
            ),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", server_key),
        ])
        .unwrap_err();
        assert_eq!(
            error,
            ConfigError::Inconsistent {
                var: "OTEL_EXPORTER_OTLP_CLIENT_KEY",
                value: server_key.clone(),
                reason: "the key does not belong to the client certificate".to_owned(),
            }
        );
    }

    #[test]
    fn tls_files_for_a_plaintext_endpoint_are_refused() {
        let files = TestCertificates::new();
        let ca = &path(files.ca_file());
        let error = traces(&[
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://collector:4317",
            ),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", ca),
        ])
        .unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("OTEL_EXPORTER_OTLP_CERTIFICATE")
                && message.contains("http://collector:4317")
                && message.contains("https://"),
            "{message}"
        );
        // The same file for an https:// signal is fine.
        let logs = logs_otlp(&[
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "https://collector:4317"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", ca),
        ]);
        assert!(logs.tls.trusted_certificates.is_some());
    }

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
            let sampler = traces(&[
                ("OTEL_TRACES_SAMPLER", name),
                ("OTEL_TRACES_SAMPLER_ARG", "0.5"),
            ])
            .expect("valid")
            .sampler;
            assert_eq!(sampler, expected, "{name}");
        }
    }

    #[test]
    fn a_bad_value_names_the_variable_and_the_form() {
        let error = traces(&[("OTEL_TRACES_SAMPLER_ARG", "1.5")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid OTEL_TRACES_SAMPLER_ARG=\"1.5\": expected a sampling ratio between 0 and 1"
        );
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

    #[test]
    fn the_export_batch_may_equal_the_queue_but_not_exceed_it() {
        let batch = |queue, export| {
            traces(&[
                ("OTEL_BSP_MAX_QUEUE_SIZE", queue),
                ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", export),
            ])
            .map(|traces| traces.batch)
        };
        let equal = batch("100", "100").expect("a batch as large as the queue");
        assert_eq!(
            (equal.max_queue_size, equal.max_export_batch_size),
            (100, 100)
        );
        let error = batch("100", "101").unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid OTEL_BSP_MAX_EXPORT_BATCH_SIZE=101: must not exceed OTEL_BSP_MAX_QUEUE_SIZE (100)"
        );
    }

    #[test]
    fn a_small_queue_alone_shrinks_the_default_batch() {
        // Found by `cargo fuzz run config`: the error used to blame
        // OTEL_BSP_MAX_EXPORT_BATCH_SIZE, which the operator never set.
        let batch = traces(&[("OTEL_BSP_MAX_QUEUE_SIZE", "100")])
            .expect("valid")
            .batch;
        assert_eq!(batch.max_queue_size, 100);
        assert_eq!(batch.max_export_batch_size, 100);
        let error = traces(&[
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
}
