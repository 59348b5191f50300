//! Test harness shared by the integration tests in `tests/`.
//!
//! Everything here starts or talks to real processes: the `somework` binary,
//! the collector built with ocb, Bugsink, helm. The only hand-written stand-ins
//! are the ones named `*_double`, for what cannot run on a test machine.

pub mod tools;
