//! Telemetry never harms the service: collector and Sentry faults cost no
//! latency, shutdown stays within its bound, and a long outage neither grows
//! memory nor loses count of a span.
//!
//! These tests measure time and memory, so they run one at a time (see
//! `helpers::serial`): a latency or shutdown bound measured while another
//! test floods the machine would measure the flood.

mod connection;
mod helpers;
mod latency;
mod logs;
mod outage;
mod sentry;
mod shutdown;
mod timeout;
