//! somework: a reference service for distributed tracing with OpenTelemetry,
//! the OpenTelemetry Collector and Sentry.
//!
//! `main.rs` only parses the command line and hands over to a subcommand:
//! - [`serve`] runs the service: it alone reads the service's environment;
//! - [`config`] reads and validates that environment once;
//! - [`telemetry`] sets up logs, traces and Sentry, and flushes them on shutdown;
//! - [`routes`] holds the HTTP handlers, [`work`] the traced simulated work,
//!   [`downstream`] the client for `/chain`'s next hop;
//! - [`server`] runs the HTTP server with graceful shutdown;
//! - [`load`] is `somework load`, a load generator for the service.
//! - [`sentry_otlp`] is `somework sentry-otlp-env`, the collector's Sentry
//!   OTLP settings from a DSN.
//! - [`trace`] is `somework trace`, one trace drawn as a waterfall.
//! - `verify` (feature `verify`) checks a deployed demo end to end.

// Outside tests, a failure is handled or reported, never a panic.
#![warn(clippy::unwrap_used, clippy::expect_used)]
// The service needs no unsafe code; only the test harness has one audited block.
#![forbid(unsafe_code)]

pub mod config;
pub mod downstream;
mod error;
pub mod load;
pub mod routes;
pub mod sentry_otlp;
pub mod serve;
pub mod server;
pub mod telemetry;
pub mod trace;
#[cfg(feature = "verify")]
pub mod verify;
pub mod work;
