//! Where the traces and errors end up: Jaeger's and Bugsink's APIs in
//! zero-account mode, Sentry's events API when credentials are given.

pub mod bugsink;
pub mod jaeger;
pub mod sentry;

use std::time::Duration;

/// Pause between two looks at a backend that has not got everything yet.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// One request to a backend's API.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
