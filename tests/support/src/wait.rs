//! Waiting for data that a test server records as it arrives.

use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Takes `snapshot()` each time `arrived` is notified, until `done` holds for
/// it or `timeout` passes, and returns the last snapshot either way, so the
/// caller's assertion shows what did arrive.
pub async fn until<T>(
    arrived: &Notify,
    timeout: Duration,
    snapshot: impl Fn() -> Vec<T>,
    done: impl Fn(&[T]) -> bool,
) -> Vec<T> {
    let deadline = Instant::now() + timeout;
    loop {
        // Registered before the snapshot, so an arrival in between is not missed.
        let notified = arrived.notified();
        let items = snapshot();
        if done(&items) || Instant::now() >= deadline {
            return items;
        }
        let _ = tokio::time::timeout_at(deadline.into(), notified).await;
    }
}
