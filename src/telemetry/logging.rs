//! Human-readable or JSON logs through `tracing-subscriber`.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The filter used when `RUST_LOG` is unset. The OpenTelemetry SDK reports
/// every failed export at error level; [`super::export_stats`] turns those
/// into one warning per outage instead, so the SDK's own logs are muted.
/// The HTTP and gRPC stacks are kept quiet for the same reason.
const DEFAULT_FILTER: &str = "info,opentelemetry=off,opentelemetry_sdk=off,opentelemetry-otlp=off,h2=warn,hyper=warn,hyper_util=warn,tonic=warn,tower=warn,reqwest=warn";

/// The targets of the SDK's own logs, which include an error per failed
/// export. A `RUST_LOG` such as `debug` or `info,opentelemetry=debug` would
/// bring those back (a directive matches every target it prefixes), so they
/// stay muted unless `RUST_LOG` names them.
const SDK_TARGETS: [&str; 2] = ["opentelemetry_sdk", "opentelemetry-otlp"];

/// Installs the global log subscriber. `filter` is a validated `RUST_LOG`.
pub fn init_logging(format: LogFormat, filter: Option<&str>) {
    let filter = filter
        .map(with_sdk_muted)
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    match format {
        // Colour codes only for a person at a terminal, not for a log file
        // or a log collector.
        LogFormat::Text => builder.with_ansi(std::io::stdout().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
}

/// `directives` with every SDK target it does not name turned off.
fn with_sdk_muted(directives: &str) -> String {
    SDK_TARGETS
        .iter()
        .filter(|target| !directives.contains(*target))
        .fold(directives.to_owned(), |filter, target| {
            format!("{filter},{target}=off")
        })
}
