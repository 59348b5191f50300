//! The telemetry pipeline end to end, with real components: the collector
//! built with ocb between the service and a Sentry API test double (the one
//! piece that cannot run here), and a real Bugsink receiving the service's
//! error events through the `sentry` crate, and its log records beside both.

mod bugsink_harness;
mod collector;
mod first_hour;
mod helpers;
mod otlp_protocols;
mod red_metrics;
mod sentry_bugsink;
mod sentry_burst;
mod sentry_delivery;
mod sentry_errors;
mod sentry_logs;
mod sentry_paths;
mod trace_cli;
mod trace_waterfall;
