//! The service on its own: the spans and log records it exports, its sampling, its
//! configuration, its answers to bad requests, and what it never leaks.
//! Most tests run the real binary against an in-process OTLP receiver
//! (`helpers::spawn_app`); `router` calls the axum Router in-process where
//! no socket is needed; `wire` checks what goes to the next hop and the
//! collector.

mod bad_requests;
mod config;
mod endpoints;
mod helpers;
mod load;
mod logs;
mod otel_env;
mod router;
mod sampling;
mod security;
mod spans;
mod wire;
