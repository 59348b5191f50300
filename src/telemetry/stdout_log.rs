//! Human-readable or JSON logs through `tracing-subscriber`, on stdout and,
//! through the [`LogsBridge`], as OpenTelemetry log records.

use std::io::IsTerminal as _;

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _, fmt};

use super::log_export::LogsBridge;
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

/// Installs the global log subscriber and returns its bridge to
/// OpenTelemetry logs, not yet connected. `filter` is a validated `RUST_LOG`;
/// it decides what reaches stdout and the bridge alike.
pub fn init_logging(format: LogFormat, filter: Option<&str>) -> LogsBridge {
    let filter = filter
        .map(with_sdk_muted)
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new(DEFAULT_FILTER));
    let stdout = fmt::layer().with_writer(std::io::stdout);
    let stdout = match format {
        // Colour codes only for a person at a terminal, not for a log file
        // or a log collector.
        LogFormat::Text => stdout.with_ansi(std::io::stdout().is_terminal()).boxed(),
        LogFormat::Json => stdout
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .boxed(),
    };
    let bridge = LogsBridge::default();
    tracing_subscriber::registry()
        .with(filter)
        .with(stdout)
        .with(bridge.clone())
        .init();
    bridge
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
