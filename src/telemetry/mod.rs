//! Telemetry setup: logs, OpenTelemetry traces and Sentry errors, and the
//! guard that flushes them on shutdown.
//!
//! Each `init_*` function has one job, as in the opentelemetry-rust examples.
//! The order matters: logging first (everything else reports through it),
//! Sentry before the Tokio runtime starts (so every worker thread inherits its
//! hub), OpenTelemetry inside the runtime (the tonic exporter needs it).

mod errors;
mod export_stats;
pub mod http;
mod logging;
pub mod propagation;
mod traces;

use std::time::Duration;

use opentelemetry_sdk::trace::SdkTracerProvider;

pub use errors::{ErrorOrigin, Handled, capture_error, init_sentry};
pub use export_stats::{ExportCounts, ExportStats};
pub use logging::init_logging;
pub use traces::{TRACER_NAME, current_trace_id, in_span, init_tracing};

/// How long shutdown waits for the last spans to reach the collector.
pub const SPAN_FLUSH_TIMEOUT: Duration = Duration::from_secs(3);
/// How long shutdown waits for queued Sentry events to be sent.
pub const SENTRY_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Owns the exporters; [`TelemetryGuard::shutdown`] flushes them in order.
#[must_use = "dropping the guard without calling shutdown loses buffered spans"]
pub struct TelemetryGuard {
    tracing: Option<(SdkTracerProvider, ExportStats)>,
    sentry: Option<sentry::ClientInitGuard>,
}

impl TelemetryGuard {
    pub fn new(
        tracing: Option<(SdkTracerProvider, ExportStats)>,
        sentry: Option<sentry::ClientInitGuard>,
    ) -> Self {
        Self { tracing, sentry }
    }

    /// Flushes spans, then Sentry events, each within its own time bound.
    ///
    /// Both SDKs flush with blocking calls. Run on a Tokio worker they can
    /// deadlock: the tonic exporter needs that same runtime to make progress,
    /// and a 1-CPU pod has a single worker. So each flush runs on a plain OS
    /// thread while this task only awaits its result, with a deadline, so an
    /// unreachable collector or Sentry cannot hold the process past its bound.
    pub async fn shutdown(self) {
        if let Some((provider, stats)) = self.tracing {
            let flushed = off_runtime(SPAN_FLUSH_TIMEOUT, move || {
                provider.shutdown_with_timeout(SPAN_FLUSH_TIMEOUT)
            })
            .await;
            match flushed {
                Some(Ok(())) => tracing::info!("spans flushed"),
                Some(Err(error)) => {
                    tracing::warn!(%error, "span flush incomplete; unsent spans are lost")
                }
                None => tracing::warn!("span flush timed out; unsent spans are lost"),
            }
            let counts = stats.counts();
            tracing::info!(
                spans.exported = counts.exported,
                spans.failed = counts.failed,
                spans.dropped = counts.dropped,
                spans.unsent = counts.pending,
                "span export summary"
            );
        }
        if let Some(sentry) = self.sentry {
            // Dropping the init guard flushes and closes the client, bounded
            // by `shutdown_timeout`.
            match off_runtime(SENTRY_FLUSH_TIMEOUT, move || drop(sentry)).await {
                Some(()) => tracing::info!("sentry flushed"),
                None => tracing::warn!("sentry flush timed out; unsent events are lost"),
            }
        }
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
