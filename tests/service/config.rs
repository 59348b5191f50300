//! Every configuration variable with a bad value stops the process with
//! exit status 2 and a one-line message naming the variable.

use crate::helpers::service;

/// (variable, bad value, a word the message must contain about the accepted form)
const BAD_VALUES: &[(&str, &str, &str)] = &[
    ("LISTEN_ADDR", "localhost", "socket address"),
    ("LISTEN_ADDR", "0.0.0.0:99999", "socket address"),
    ("LOG_FORMAT", "yaml", "text or json"),
    ("RUST_LOG", "info,[[", "filter"),
    ("OTEL_SDK_DISABLED", "yes", "true or false"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "otel-collector:4317", "URL"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://collector:4317", "URL"),
    ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "not a url", "URL"),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s", "milliseconds"),
    ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "-1", "milliseconds"),
    ("OTEL_EXPORTER_OTLP_HEADERS", "novalue", "key=value"),
    ("OTEL_EXPORTER_OTLP_HEADERS", "Bad Key=1", "key=value"),
    ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x=%ZZ%", "key=value"),
    (
        "OTEL_TRACES_SAMPLER",
        "sometimes",
        "parentbased_traceidratio",
    ),
    ("OTEL_TRACES_SAMPLER_ARG", "2", "between 0 and 1"),
    ("OTEL_TRACES_SAMPLER_ARG", "NaN", "between 0 and 1"),
    ("OTEL_RESOURCE_ATTRIBUTES", "=value", "key=value"),
    ("OTEL_BSP_SCHEDULE_DELAY", "5s", "milliseconds"),
    ("OTEL_BSP_MAX_QUEUE_SIZE", "0", "positive"),
    (
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
        "4096",
        "OTEL_BSP_MAX_QUEUE_SIZE",
    ),
    (
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "http/json",
        "grpc or http/protobuf",
    ),
    (
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "udp",
        "grpc or http/protobuf",
    ),
    ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd", "gzip or none"),
    (
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
        "br",
        "gzip or none",
    ),
    ("OTEL_TRACES_EXPORTER", "zipkin", "otlp, console, none"),
    ("OTEL_PROPAGATORS", "xray", "tracecontext and baggage"),
    ("OTEL_PROPAGATORS", "tracecontext,b3", "deprecated"),
    ("OTEL_PROPAGATORS", "b3multi", "deprecated"),
    ("OTEL_METRICS_EXPORTER", "otlp", "none"),
    (
        "OTEL_EXPORTER_OTLP_CERTIFICATE",
        "/nonexistent/ca.pem",
        "readable PEM file of one or more certificates",
    ),
    (
        "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
        "/nonexistent/key.pem",
        "readable PEM file with a private key",
    ),
    ("OTEL_EXPORTER_OTLP_INSECURE", "true", "scheme"),
    (
        "OTEL_BSP_EXPORT_TIMEOUT",
        "30000",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    ),
    ("OTEL_LOGS_EXPORTER", "logging", "otlp, console, none"),
    (
        "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
        "http/json",
        "grpc or http/protobuf",
    ),
    ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "collector:4318", "URL"),
    ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "5s", "milliseconds"),
    ("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "novalue", "key=value"),
    (
        "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION",
        "zstd",
        "gzip or none",
    ),
    ("OTEL_BLRP_SCHEDULE_DELAY", "1s", "milliseconds"),
    ("OTEL_BLRP_MAX_QUEUE_SIZE", "-1", "positive"),
    ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "0", "positive"),
    (
        "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
        "4096",
        "OTEL_BLRP_MAX_QUEUE_SIZE",
    ),
    (
        "OTEL_BLRP_EXPORT_TIMEOUT",
        "30000",
        "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT",
    ),
    ("OTEL_EXPORTER_OTLP_LOGS_INSECURE", "true", "scheme"),
    ("SENTRY_DSN", "not-a-dsn", "DSN"),
    ("WORK_SLEEP_MS", "-5", "milliseconds"),
    ("ERROR_RATE", "1.5", "between 0 and 1"),
    ("DOWNSTREAM_URL", "backend:8080", "URL"),
];

#[tokio::test]
async fn every_bad_value_exits_2_naming_the_variable() {
    let mut failures = Vec::new();
    for (var, value, form) in BAD_VALUES {
        let (status, stdout, stderr) = service()
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
            .env(var, *value)
            .run_to_exit()
            .await;
        let message = stderr.trim();
        let ok = status.code() == Some(2)
            && message.lines().count() == 1
            && message.contains(var)
            && message.contains(form)
            && !stdout.contains("listening");
        if !ok {
            failures.push(format!("{var}={value:?}: {status:?}, stderr {message:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "bad values not rejected properly:\n{}",
        failures.join("\n")
    );
}

#[tokio::test]
async fn an_unknown_subcommand_is_a_usage_error() {
    let (status, _, stderr) = service().run_to_exit_with_args(&["no-such-command"]).await;
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("no-such-command"), "{stderr}");
}

/// Only `serve` reads the service's environment: a value that stops the
/// service must not break `--help` (nor, later, other subcommands).
#[tokio::test]
async fn only_serve_reads_the_service_environment() {
    let builder = service()
        .env("SENTRY_DSN", "garbage")
        .env("OTEL_TRACES_SAMPLER", "bogus");

    for args in [&["--help"][..], &["serve", "--help"]] {
        let (status, stdout, stderr) = builder.run_to_exit_with_args(args).await;
        assert_eq!(status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stdout.contains("Usage:"), "{args:?}: {stdout}");
    }

    for args in [&[][..], &["serve"]] {
        let (status, stdout, stderr) = builder.run_to_exit_with_args(args).await;
        let message = stderr.trim();
        assert_eq!(status.code(), Some(2), "{args:?}: {message}");
        assert_eq!(message.lines().count(), 1, "{args:?}: {message}");
        assert!(
            message.contains("OTEL_TRACES_SAMPLER") && message.contains("bogus"),
            "{args:?}: {message}"
        );
        assert!(!stdout.contains("listening"), "{args:?}: {stdout}");
    }
}
