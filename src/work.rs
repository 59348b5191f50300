//! The simulated work of the Go + Sentry article's example (see the README's
//! "Where it comes from"): `somework` -> `MiddleWork` -> `ErrorWork`, each a
//! span, with MiddleWork's span events.

use std::time::Duration;

use opentelemetry::trace::{Status, TraceContextExt as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_semantic_conventions::attribute::{EXCEPTION_MESSAGE, EXCEPTION_TYPE};
use serde::Serialize;

use crate::config::WorkConfig;
use crate::telemetry::{ErrorOrigin, Handled, capture_error, in_span};

/// How ErrorWork behaves on a request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Failure {
    /// Fails with the given probability; MiddleWork recovers from the failure
    /// (a handled error) and the request succeeds.
    Handled { rate: f64 },
    /// Always fails; the failure ends the request (an unhandled error).
    Unhandled,
}

/// ErrorWork's simulated failure.
#[derive(Debug, thiserror::Error)]
#[error("ErrorWork failed: the simulated dependency is unavailable")]
pub struct WorkError {
    origin: ErrorOrigin,
}

impl WorkError {
    pub fn origin(&self) -> &ErrorOrigin {
        &self.origin
    }
}

/// What a successful run did, returned to the client.
#[derive(Debug, Clone, Serialize)]
pub struct WorkReport {
    pub slept_ms: u64,
    pub error_work: ErrorWorkOutcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorWorkOutcome {
    Succeeded,
    FailedAndHandled,
}

#[derive(Debug, Clone, Copy)]
pub struct Work {
    config: WorkConfig,
}

impl Work {
    pub fn new(config: WorkConfig) -> Self {
        Self { config }
    }

    /// A failure that MiddleWork recovers from, at the configured rate.
    pub fn handled_failure(&self) -> Failure {
        Failure::Handled {
            rate: self.config.error_rate,
        }
    }

    /// The `somework` span and everything below it.
    pub async fn somework(&self, failure: Failure) -> Result<WorkReport, WorkError> {
        in_span("somework", Vec::new, self.middle_work(failure)).await
    }

    /// Sleeps a random time, then calls ErrorWork, recording span events
    /// around both as the Go + Sentry article's example does.
    pub async fn middle_work(&self, failure: Failure) -> Result<WorkReport, WorkError> {
        in_span("MiddleWork", Vec::new, async {
            let sleep = self.random_sleep();
            let slept_ms = u64::try_from(sleep.as_millis()).unwrap_or(u64::MAX);
            add_event("started the sleep", || {
                vec![KeyValue::new(
                    "sleep.duration_ms",
                    i64::try_from(slept_ms).unwrap_or(i64::MAX),
                )]
            });
            tokio::time::sleep(sleep).await;
            add_event("completed the sleep", Vec::new);

            let fails = match failure {
                Failure::Handled { rate } => rand::random_bool(rate),
                Failure::Unhandled => true,
            };
            let result = error_work(fails).await;
            let failed = result.is_err();
            add_event("Out of Error!", || {
                vec![KeyValue::new("error_work.failed", failed)]
            });

            match (result, failure) {
                (Ok(()), _) => Ok(WorkReport {
                    slept_ms,
                    error_work: ErrorWorkOutcome::Succeeded,
                }),
                (Err(error), Failure::Handled { .. }) => {
                    capture_error(&error, error.origin(), Handled::Yes);
                    Ok(WorkReport {
                        slept_ms,
                        error_work: ErrorWorkOutcome::FailedAndHandled,
                    })
                }
                (Err(error), Failure::Unhandled) => Err(error),
            }
        })
        .await
    }

    fn random_sleep(&self) -> Duration {
        let max = u64::try_from(self.config.max_sleep.as_millis()).unwrap_or(u64::MAX);
        if max == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(rand::random_range(0..=max))
    }
}

/// The `ErrorWork` span. On failure it records the exception as a span event
/// (type and message, per the semantic conventions) and its status is set to
/// Error by [`in_span`].
async fn error_work(fails: bool) -> Result<(), WorkError> {
    in_span("ErrorWork", Vec::new, async move {
        if !fails {
            return Ok(());
        }
        let error = WorkError {
            origin: ErrorOrigin::here(),
        };
        let cx = Context::current();
        let span = cx.span();
        span.add_event(
            "exception",
            vec![
                KeyValue::new(EXCEPTION_TYPE, std::any::type_name::<WorkError>()),
                KeyValue::new(EXCEPTION_MESSAGE, error.to_string()),
            ],
        );
        span.set_status(Status::error(error.to_string()));
        Err(error)
    })
    .await
}

/// Adds an event to the current span. Its attributes are built only when
/// the span records: a span that is not sampled would drop them.
fn add_event(name: &'static str, attributes: impl FnOnce() -> Vec<KeyValue>) {
    Context::map_current(|cx| {
        let span = cx.span();
        if span.is_recording() {
            span.add_event(name, attributes());
        }
    });
}
