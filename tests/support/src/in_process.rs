//! The service's Router called in-process with `tower::ServiceExt::oneshot`,
//! as axum's `examples/testing` does: the handlers' state that every such
//! test builds, in one place.

use std::time::Duration;

use somework::config::WorkConfig;
use somework::downstream::Downstream;
use somework::routes::{AppState, Readiness};
use somework::work::Work;

/// `/chain`'s downstream for tests that never send a request that far: the
/// discard port, which nothing listens on in a test.
pub const UNCALLED_DOWNSTREAM: &str = "http://127.0.0.1:9";

/// The handlers' state: work with no simulated sleep or failure, the
/// service named `somework`, `readiness` as given, and `/chain` calling
/// `downstream`.
pub fn app_state(readiness: Readiness, downstream: &str) -> AppState {
    AppState {
        work: Work::new(WorkConfig {
            max_sleep: Duration::ZERO,
            error_rate: 0.0,
        }),
        downstream: Downstream::new(downstream.parse().expect("a valid URL"))
            .expect("an HTTP client"),
        service_name: "somework".into(),
        readiness,
    }
}
