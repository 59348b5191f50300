//! Human-readable or JSON log lines on stdout through `tracing-subscriber`,
//! and, through the [`LogsBridge`], the same events as OpenTelemetry log
//! records.
//!
//! Two things here are about cost, since every request writes a line:
//!
//! - JSON lines are written by [`JsonLine`] (`json_line.rs`), the format of
//!   `tracing-subscriber`'s own JSON formatter byte for byte, at a third of
//!   its cost.
//! - Lines go to stdout through `tracing-appender`'s non-blocking writer: a
//!   request hands its line to a thread that writes whatever has queued up
//!   in one `write`, instead of making a system call of its own. Nothing is
//!   dropped (a full queue makes the caller wait, as a full pipe did), and the
//!   [`StdoutFlush`] guard writes the rest before the process exits.

use std::fmt;
use std::io::{BufWriter, IsTerminal as _};

use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::fmt::format::JsonFields;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use super::json_line::JsonLine;
use super::log_export::LogsBridge;
use crate::config::LogFormat;

/// The filter used when `RUST_LOG` is unset. The OpenTelemetry SDK reports
/// every failed export at error level; [`super::export_queue`] turns those
/// into one warning per outage instead, so the SDK's own logs are muted.
/// The HTTP and gRPC stacks are kept quiet for the same reason.
const DEFAULT_FILTER: &str = "info,opentelemetry=off,opentelemetry_sdk=off,opentelemetry-otlp=off,h2=warn,hyper=warn,hyper_util=warn,tonic=warn,tower=warn,reqwest=warn";

/// The targets of the SDK's own logs, which include an error per failed
/// export. A `RUST_LOG` such as `debug` or `info,opentelemetry=debug` would
/// bring those back (a directive matches every target it prefixes), so they
/// stay muted unless `RUST_LOG` names them.
const SDK_TARGETS: [&str; 2] = ["opentelemetry_sdk", "opentelemetry-otlp"];

/// What the writer thread collects before it writes: a burst of lines goes
/// out in one `write` of up to this size.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// Writes the lines still queued for stdout when dropped, waiting up to a
/// second for the writer thread. Keep it until the last line is logged.
#[must_use = "dropping the guard stops the stdout writer: later lines are lost"]
pub struct StdoutFlush {
    _writer: WorkerGuard,
}

impl fmt::Debug for StdoutFlush {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StdoutFlush")
    }
}

/// Installs the global log subscriber and returns its bridge to
/// OpenTelemetry logs, not yet connected, and the guard that flushes stdout.
/// `filter` is a validated `RUST_LOG`; it decides what reaches stdout and the
/// bridge alike.
pub fn init_logging(format: LogFormat, filter: Option<&str>) -> (LogsBridge, StdoutFlush) {
    let filter = filter
        .map(with_sdk_muted)
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new(DEFAULT_FILTER));
    let (writer, guard) = stdout_writer();
    let stdout = tracing_subscriber::fmt::layer().with_writer(writer);
    let stdout = match format {
        // Colour codes only for a person at a terminal, not for a log file
        // or a log collector.
        LogFormat::Text => stdout.with_ansi(std::io::stdout().is_terminal()).boxed(),
        LogFormat::Json => stdout
            .fmt_fields(JsonFields::new())
            .event_format(JsonLine)
            .boxed(),
    };
    let bridge = LogsBridge::default();
    tracing_subscriber::registry()
        .with(filter)
        .with(stdout)
        .with(bridge.clone())
        .init();
    (bridge, StdoutFlush { _writer: guard })
}

/// stdout behind a writer thread. Lossless: when the queue is full the
/// logging thread waits, as it would on a full pipe.
fn stdout_writer() -> (NonBlocking, WorkerGuard) {
    NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("stdout-log")
        .finish(BufWriter::with_capacity(
            WRITE_BUFFER_BYTES,
            std::io::stdout(),
        ))
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
