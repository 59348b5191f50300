//! Errors to Sentry through the sentry crate, each linked to the OTel span it
//! happened in, and to the logs: one line per error, written in that span.
//!
//! Sentry has no OpenTelemetry integration for Rust that works with this SDK
//! version, and its OTLP ingestion drops span events, so an `exception` event
//! on a span never becomes a Sentry issue. Errors therefore go to Sentry as
//! ordinary error events, and each carries `contexts.trace` with the trace and
//! span id of its OTel span: Sentry then shows the error inside the trace that
//! reached it through the collector. The error's log line carries the same
//! ids and the event's id, so in Sentry Logs it sits beside both.

use std::error::Error;
use std::sync::{Arc, LazyLock};

use backtrace::Backtrace;
use opentelemetry::trace::{SpanContext, TraceContextExt as _};
use sentry::integrations::backtrace::backtrace_to_stacktrace;
use sentry::protocol::{Context, Event, Mechanism, Stacktrace, TraceContext};
use sentry::types::Uuid;
use tokio_util::task::TaskTracker;

use super::sentry_delivery::DeliveryStats;
use super::sentry_transport::SentryTransport;
use super::{SENTRY_FLUSH_TIMEOUT, off_runtime};
use crate::config::SentryConfig;

/// Errors whose stack trace is still being resolved on Tokio's blocking pool,
/// not yet handed to the Sentry transport. Shutdown waits for them before
/// the last flush, so that an error made just before SIGTERM is delivered:
/// the first resolution loads the binary's debug info, which can take longer
/// than the rest of the shutdown. The tracker counts a task until it ends,
/// panicking or not.
static RESOLVING: LazyLock<TaskTracker> = LazyLock::new(TaskTracker::new);

/// What became of every error reported to Sentry since startup. Global, as
/// the Sentry hub that `capture_error` reports through is.
static DELIVERY: LazyLock<DeliveryStats> = LazyLock::new(DeliveryStats::default);

/// The running Sentry client: flushed, and its counts logged, at shutdown.
pub struct Sentry {
    guard: sentry::ClientInitGuard,
}

impl Sentry {
    /// Starts the Sentry client, or says once that errors stay local.
    ///
    /// Call it before the Tokio runtime starts, so that every worker thread's
    /// hub is derived from the configured main hub.
    pub fn init(config: Option<&SentryConfig>) -> Option<Self> {
        let Some(config) = config else {
            tracing::info!(
                "SENTRY_DSN is not set: errors are logged and traced, not sent to Sentry"
            );
            return None;
        };
        let transport = match SentryTransport::start(&config.dsn, DELIVERY.clone()) {
            Ok(transport) => transport,
            Err(error) => {
                let error = anyhow::Error::from(error);
                tracing::error!(
                    error = format!("{error:#}"),
                    "errors are logged and traced, not sent to Sentry"
                );
                return None;
            }
        };
        let mut options = sentry::ClientOptions::new()
            .maybe_release(
                config
                    .release
                    .clone()
                    .or_else(|| sentry::release_name!().map(Into::into)),
            )
            .attach_stacktrace(true)
            // Only this crate's frames are "in app": Sentry groups issues on
            // them, so grouping must not change with a dependency upgrade.
            .in_app_include(vec![env!("CARGO_CRATE_NAME")])
            // No request headers, cookies, IPs or user data: the events are built
            // here from errors alone and carry nothing from the request.
            .send_default_pii(false)
            .shutdown_timeout(SENTRY_FLUSH_TIMEOUT);
        options.dsn = Some(config.dsn.clone());
        options.transport = Some(transport.factory());
        if let Some(environment) = &config.environment {
            options = options.environment(environment.clone());
        }
        let guard = sentry::init(options);
        tracing::info!(
            host = config.dsn.host(),
            project = %config.dsn.project_id(),
            "sending errors to Sentry"
        );
        Some(Self { guard })
    }

    /// Waits for errors still resolving their stack trace, then flushes the
    /// transport, all within [`SENTRY_FLUSH_TIMEOUT`], and logs what became
    /// of every error reported since startup.
    ///
    /// The flush blocks, so it runs on a thread of its own while this task
    /// awaits it with a deadline: a hung Sentry cannot hold the process.
    pub async fn shutdown(self) {
        let started = tokio::time::Instant::now();
        RESOLVING.close();
        if tokio::time::timeout(SENTRY_FLUSH_TIMEOUT, RESOLVING.wait())
            .await
            .is_err()
        {
            tracing::warn!("stack traces still resolving at shutdown; those errors are lost");
        }
        let remaining = SENTRY_FLUSH_TIMEOUT.saturating_sub(started.elapsed());
        let guard = self.guard;
        let flushed = off_runtime(remaining, move || {
            // Losses not yet carried by an error go out as a client report
            // of their own, then the init guard's drop flushes and closes
            // the client, bounded by `shutdown_timeout`.
            if let Some(client) = sentry::Hub::main().client() {
                client.send_envelope(sentry::Envelope::new());
            }
            drop(guard);
        })
        .await;
        match flushed {
            Some(()) => tracing::info!("sentry flushed"),
            None => tracing::warn!("sentry flush timed out; unsent events are lost"),
        }
        DELIVERY.log_summary();
    }
}

/// Whether the service recovered from an error (a handled error) or it ended
/// the request (an unhandled one). Sentry shows the two differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    Yes,
    No,
}

/// Where an error happened: the stack and the current OTel span at that
/// point. Errors carry it so that whoever finally reports them reports the
/// place of the failure, not the place of the report.
#[derive(Debug, Clone)]
pub struct ErrorOrigin {
    /// The return addresses only: symbols, files and lines are looked up
    /// when the error is reported, off the request path.
    backtrace: Arc<Backtrace>,
    span_context: SpanContext,
}

impl ErrorOrigin {
    /// Captures the current stack and span. Only errors pay for the capture.
    pub fn here() -> Self {
        Self {
            backtrace: Arc::new(Backtrace::new_unresolved()),
            span_context: opentelemetry::Context::current()
                .span()
                .span_context()
                .clone(),
        }
    }

    pub fn span_context(&self) -> &SpanContext {
        &self.span_context
    }

    /// The stack as Sentry shows it, outermost frame first, ending in the
    /// function that created the error.
    ///
    /// The `backtrace` crate reports every function of a physical frame,
    /// those inlined into it included, each with its own file and line (from
    /// the release profile's debug info, see Cargo.toml), so a function that
    /// the optimizer folded into its caller keeps its frame.
    /// `std::backtrace::Backtrace` offers the same frames only as text, which
    /// the sentry crate parses back with a regular expression, losing their
    /// addresses. In-app files are named relative to the crate, `src/work.rs`,
    /// as in the repository.
    fn stacktrace(&self) -> Option<Stacktrace> {
        let mut backtrace = Backtrace::clone(&self.backtrace);
        backtrace.resolve();
        let mut stacktrace = backtrace_to_stacktrace(&backtrace)?;
        // The innermost frames are the capture itself: `here`, inlined or
        // not, and the backtrace crate's own when its trimming misses them.
        let here = std::any::type_name_of_val(&Self::here);
        if let Some(capture) = stacktrace
            .frames
            .iter()
            .rposition(|frame| frame.function.as_deref() == Some(here))
        {
            stacktrace.frames.truncate(capture);
        }
        let crate_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/");
        for frame in &mut stacktrace.frames {
            if let Some(path) = frame
                .abs_path
                .as_deref()
                .and_then(|p| p.strip_prefix(crate_dir))
            {
                frame.filename = Some(path.to_owned());
            }
        }
        (!stacktrace.frames.is_empty()).then_some(stacktrace)
    }
}

/// Logs `error` (one line, written in the span it happened in) and, when
/// Sentry is on, sends it to Sentry with the stack trace captured where it
/// happened and the ids of that span.
///
/// Nothing here waits on the request path: resolving the stack trace's
/// symbols (milliseconds in a release build, tens of them in a debug build)
/// and handing the event to the transport run on Tokio's blocking pool, and
/// the transport's bounded queue drops (and counts) the event if Sentry is
/// slower than the errors come.
pub fn capture_error(error: &(dyn Error + 'static), origin: &ErrorOrigin, handled: Handled) {
    if sentry::Hub::current().client().is_none() {
        log_error(error, origin, handled, None);
        return;
    }
    let mut event: Event<'static> = sentry::event_from_error(error);
    log_error(error, origin, handled, Some(event.event_id));
    if let Some(exception) = event.exception.values.last_mut() {
        exception.mechanism = Some(Mechanism {
            ty: "somework".into(),
            handled: Some(handled == Handled::Yes),
            ..Default::default()
        });
    }
    let span = &origin.span_context;
    if span.is_valid() {
        let trace = TraceContext {
            trace_id: span.trace_id().to_bytes().into(),
            span_id: span.span_id().to_bytes().into(),
            ..Default::default()
        };
        event
            .contexts
            .insert("trace".into(), Context::Trace(Box::new(trace)));
    }
    let origin = origin.clone();
    let resolve = move || {
        if let Some(exception) = event.exception.values.last_mut() {
            exception.stacktrace = origin.stacktrace();
        }
        event
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            DELIVERY.resolving();
            let resolving = move || {
                let event = resolve();
                DELIVERY.hand_over(|| {
                    sentry::capture_event(event);
                });
            };
            drop(RESOLVING.spawn_blocking_on(resolving, &runtime));
        }
        Err(_) => {
            sentry::capture_event(resolve());
        }
    }
}

/// Logs one line for `error`, with the OTel span it happened in made current
/// so that its log record carries that span's trace and span id, the ones its
/// Sentry event carries. Handled errors are warnings, unhandled ones errors.
fn log_error(
    error: &(dyn Error + 'static),
    origin: &ErrorOrigin,
    handled: Handled,
    sentry_event_id: Option<Uuid>,
) {
    let span = &origin.span_context;
    let valid = span.is_valid();
    let _current = valid.then(|| {
        opentelemetry::Context::current()
            .with_remote_span_context(span.clone())
            .attach()
    });
    // For the stdout line; the log record has them as its own fields.
    let trace_id = valid.then(|| tracing::field::display(span.trace_id()));
    let span_id = valid.then(|| tracing::field::display(span.span_id()));
    let sentry_event_id = sentry_event_id.map(|id| tracing::field::display(id.simple()));
    match handled {
        Handled::Yes => tracing::warn!(
            handled = true,
            sentry.event_id = sentry_event_id,
            trace_id,
            span_id,
            "{error}"
        ),
        Handled::No => tracing::error!(
            handled = false,
            sentry.event_id = sentry_event_id,
            trace_id,
            span_id,
            "{error}"
        ),
    }
}
