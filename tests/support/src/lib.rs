//! Test harness shared by the integration tests in `tests/`.
//!
//! Everything here starts or talks to real processes: the `somework` binary,
//! the collector built with ocb, Bugsink, helm. The only hand-written stand-ins
//! are named as test doubles, for what cannot run on a test machine. The one
//! exception, `in_process`, builds the state of the service's Router for
//! the tests that call it in-process.

pub mod api;
pub mod bugsink;
pub mod collector;
pub mod helm;
pub mod in_process;
pub mod net;
pub mod otlp;
pub mod process;
pub mod results;
pub mod sentry_double;
pub mod service;
pub mod storm;
pub mod tls;
pub mod tools;
pub mod wait;
