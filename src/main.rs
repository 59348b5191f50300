//! Wiring only: parse the command line, then hand over to the subcommand.
//! Each subcommand reads its own settings and sets up only what it needs.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use somework::{load, sentry_otlp, serve, trace};

/// A reference service for distributed tracing: OpenTelemetry -> Collector -> Sentry.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API (the default).
    Serve(serve::ServeArgs),
    /// Send load to a running service: open loop by default, HDR latency per endpoint.
    Load(Box<load::LoadArgs>),
    /// Print the collector's Sentry OTLP settings for a DSN, as shell exports.
    SentryOtlpEnv(sentry_otlp::SentryOtlpArgs),
    /// Draw one trace as a waterfall (from make run's record, Jaeger, or the cluster's Jaeger).
    Trace(Box<trace::TraceArgs>),
    /// Check a deployed demo: workloads, collector counters, Jaeger, Bugsink, Sentry.
    #[cfg(feature = "verify")]
    Verify(Box<somework::verify::VerifyArgs>),
}

fn main() -> ExitCode {
    let command = Cli::parse()
        .command
        .unwrap_or_else(|| Command::Serve(serve::ServeArgs::default()));
    match command {
        Command::Serve(args) => serve::run(args),
        Command::Load(args) => load::run(*args),
        Command::SentryOtlpEnv(args) => sentry_otlp::run(&args),
        Command::Trace(args) => trace::run(*args),
        #[cfg(feature = "verify")]
        Command::Verify(args) => somework::verify::run(*args),
    }
}
