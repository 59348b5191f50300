//! `spawn_app` -> `TestApp`: the real binary exporting to an in-process OTLP
//! receiver, spoken to through its API.

use std::process::ExitStatus;
use std::time::Duration;

use somework_testkit::api::SomeworkApi;
use somework_testkit::otlp::{self, OtlpReceiver, ReceivedSpan};
use somework_testkit::service::{Service, ServiceBuilder};

/// How long spans may take to reach the receiver.
pub const WAIT: Duration = Duration::from_secs(10);
/// How long a shutdown may take before the test fails.
pub const SHUTDOWN_LIMIT: Duration = Duration::from_secs(15);

/// The service and the receiver of its spans.
pub struct TestApp {
    pub service: Service,
    pub receiver: OtlpReceiver,
}

/// The service with the harness's defaults (every trace sampled, no sleep,
/// no errors), exporting to a fresh receiver.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|builder| builder).await
}

/// Like [`spawn_app`], with the settings `configure` adds.
pub async fn spawn_app_with(configure: impl FnOnce(ServiceBuilder) -> ServiceBuilder) -> TestApp {
    let receiver = OtlpReceiver::start().await;
    let service = configure(service().env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()))
        .start()
        .await;
    TestApp { service, receiver }
}

/// A builder for the binary under test, for tests that run it to its exit.
pub fn service() -> ServiceBuilder {
    ServiceBuilder::new(env!("CARGO_BIN_EXE_somework"))
}

impl SomeworkApi for TestApp {
    fn base_url(&self) -> String {
        self.service.base_url()
    }

    fn http(&self) -> &reqwest::Client {
        self.service.http()
    }
}

impl TestApp {
    /// Waits for at least `count` spans of `trace_id` and returns them.
    pub async fn spans_of(&self, trace_id: &str, count: usize) -> Vec<ReceivedSpan> {
        self.receiver.trace(trace_id, count, WAIT).await
    }

    /// Waits until `done` holds for every span received so far.
    pub async fn spans_until(&self, done: impl Fn(&[ReceivedSpan]) -> bool) -> Vec<ReceivedSpan> {
        self.receiver.wait_for(WAIT, done).await
    }

    /// SIGTERM, then the exit status and how long the shutdown took.
    pub async fn terminate(&mut self) -> (ExitStatus, Duration) {
        self.service.terminate(SHUTDOWN_LIMIT).await
    }
}

/// Exactly one span called `name`, or a panic naming what arrived.
pub fn one<'a>(spans: &'a [ReceivedSpan], name: &str) -> &'a ReceivedSpan {
    let matching: Vec<_> = spans.iter().filter(|s| s.name() == name).collect();
    assert_eq!(
        matching.len(),
        1,
        "expected one {name:?} span in {:#?}",
        otlp::names(spans)
    );
    matching[0]
}

pub fn assert_child_of(child: &ReceivedSpan, parent: &ReceivedSpan) {
    assert_eq!(
        child.parent_span_id().as_deref(),
        Some(parent.span_id().as_str()),
        "{} should be a child of {}",
        child.name(),
        parent.name()
    );
}
