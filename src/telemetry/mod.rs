//! The service's telemetry: logs (on stdout and as OpenTelemetry log
//! records), OpenTelemetry traces and Sentry errors, owned by one
//! [`Telemetry`] value from startup to the ordered flush at shutdown.
//!
//! As in opentelemetry-rust's `basic-otlp` example, each signal has one init
//! and one shutdown. The order matters: logging first (everything else
//! reports through it), Sentry before the Tokio runtime starts (so every
//! worker thread inherits its hub), the OTLP exporters inside the runtime (the
//! gRPC exporters on a runtime of their own, off the request workers), the
//! log exporter then joining the logging that already runs.

mod export_queue;
pub mod http;
mod json_line;
mod log_export;
mod otlp;
pub mod propagation;
mod resource;
mod sentry_delivery;
mod sentry_errors;
mod sentry_transport;
mod stdout_log;
mod traces;

use std::time::Duration;

use opentelemetry_sdk::error::OTelSdkResult;

pub use log_export::{Logs, LogsBridge};
pub use sentry_delivery::{DELIVERY_LINE, DELIVERY_SUMMARY_LINE, DeliveryCounts};
use sentry_errors::Sentry;
pub use sentry_errors::{ErrorOrigin, Handled, capture_error};
pub use stdout_log::{StdoutFlush, init_logging};
pub use traces::{Recorded, Traces, current_trace_id, in_span, start_span};

use crate::config::TelemetryConfig;

/// How long shutdown waits for the last spans, and beside them the last log
/// records, to reach the collector.
pub const SPAN_FLUSH_TIMEOUT: Duration = Duration::from_secs(3);
/// How long shutdown waits for queued Sentry events to be sent.
pub const SENTRY_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// A telemetry pipeline that cannot start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot build the OTLP {signal} exporter")]
    Exporter {
        signal: &'static str,
        source: opentelemetry_otlp::ExporterBuildError,
    },
    #[error("cannot set up the gRPC connection to the OTLP endpoint")]
    GrpcEndpoint(#[source] tonic::transport::Error),
    #[error("cannot build the OTLP HTTP client")]
    HttpClient(#[source] reqwest::Error),
    #[error("cannot start the thread that builds the OTLP HTTP client")]
    HttpClientThread(#[source] std::io::Error),
    #[error("cannot start the span exporter's runtime")]
    ExportRuntime(#[source] std::io::Error),
    #[error("the tracer provider was installed twice")]
    TracesInitTwice,
    #[error("the logs bridge was connected twice")]
    LogsInitTwice,
}

/// Every telemetry pipeline of the service, one field per signal.
/// [`Telemetry::shutdown`] flushes them in order, each within its bound.
#[must_use = "dropping Telemetry without calling shutdown loses buffered spans"]
pub struct Telemetry {
    /// `None` until [`Telemetry::init_exporters`], and with `OTEL_SDK_DISABLED=true`.
    traces: Option<Traces>,
    /// Connected to [`Telemetry::logs`] by [`Telemetry::init_exporters`].
    bridge: LogsBridge,
    /// `None` until [`Telemetry::init_exporters`], with `OTEL_LOGS_EXPORTER=none`
    /// and with `OTEL_SDK_DISABLED=true`.
    logs: Option<Logs>,
    /// `None` when `SENTRY_DSN` is unset.
    sentry: Option<Sentry>,
}

impl Telemetry {
    /// Starts what must exist before the Tokio runtime: logging, then Sentry,
    /// so that every worker thread's hub is derived from the configured main
    /// hub. Also returns the guard that writes the stdout lines still queued:
    /// keep it past [`Telemetry::shutdown`] and the last line logged.
    pub fn init(config: &TelemetryConfig) -> (Self, StdoutFlush) {
        let (bridge, stdout) =
            init_logging(config.logging.format, config.logging.filter.as_deref());
        let telemetry = Self {
            traces: None,
            bridge,
            logs: None,
            sentry: Sentry::init(config.sentry.as_ref()),
        };
        (telemetry, stdout)
    }

    /// Starts the OTLP exporters. Must run inside the Tokio runtime.
    pub fn init_exporters(&mut self, config: &TelemetryConfig) -> Result<(), TelemetryError> {
        match &config.traces {
            Some(traces) => self.traces = Some(Traces::init(traces, &config.resource)?),
            None => tracing::info!("OTEL_SDK_DISABLED=true: no spans are created or exported"),
        }
        if let Some(logs) = &config.otel_logs {
            self.logs = Logs::init(logs, &config.resource, &self.bridge)?;
        }
        Ok(())
    }

    /// Flushes spans and log records side by side, then Sentry events, each
    /// within its own time bound.
    ///
    /// Both SDKs flush with blocking calls, which must not hold a Tokio
    /// worker: a 1-CPU pod has a single one. So each flush runs on a plain OS
    /// thread while this task only awaits its result, with a deadline, so an
    /// unreachable collector or Sentry cannot hold the process past its bound.
    pub async fn shutdown(self) {
        let traces = async {
            if let Some(traces) = self.traces {
                traces.shutdown().await;
            }
        };
        let logs = async {
            if let Some(logs) = self.logs {
                logs.shutdown().await;
            }
        };
        tokio::join!(traces, logs);
        if let Some(sentry) = self.sentry {
            sentry.shutdown().await;
        }
    }
}

/// Shuts a signal's provider down with `shutdown` within
/// [`SPAN_FLUSH_TIMEOUT`], then stops its exporter's runtime, and logs how the
/// flush of `what` ("spans", "log records") ended.
async fn flush(
    what: &'static str,
    shutdown: impl FnOnce() -> OTelSdkResult + Send + 'static,
    export_runtime: Option<otlp::ExportRuntime>,
) {
    match off_runtime(SPAN_FLUSH_TIMEOUT, shutdown).await {
        Some(Ok(())) => tracing::info!("{what} flushed"),
        Some(Err(error)) => {
            tracing::warn!(%error, "{what} flush incomplete; unsent {what} are lost")
        }
        None => tracing::warn!("{what} flush timed out; unsent {what} are lost"),
    }
    // The flush is over or out of time: nothing is left to send.
    if let Some(runtime) = export_runtime {
        runtime.stop();
    }
}

/// Runs a blocking call on its own thread and waits at most `timeout` (plus a
/// small margin) for it. `None` means the call did not finish in time; its
/// thread is left to end with the process.
async fn off_runtime<T: Send + 'static>(
    timeout: Duration,
    call: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("telemetry-shutdown".into())
        .spawn(move || {
            let _ = sender.send(call());
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "could not start the telemetry shutdown thread");
        return None;
    }
    const MARGIN: Duration = Duration::from_millis(500);
    tokio::time::timeout(timeout + MARGIN, receiver)
        .await
        .ok()
        .and_then(Result::ok)
}
