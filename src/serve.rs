//! `somework serve`: the HTTP service. The only subcommand that reads the
//! service's environment ([`Config::from_env`]) and starts its logging and
//! telemetry.
//!
//! The order, as zero-to-production's `startup.rs` keeps it: configuration,
//! telemetry that must precede the runtime, the runtime, the exporters inside
//! it, the server built and then run, and telemetry flushed last.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use crate::config::Config;
use crate::server::Server;
use crate::telemetry::Telemetry;

/// Options of `somework serve`: none, the environment configures the
/// service (see the README's configuration table).
#[derive(Debug, Default, clap::Args)]
pub struct ServeArgs {}

/// How long the runtime waits for stray blocking tasks (such as a DNS lookup)
/// once the server has shut down.
const RUNTIME_SHUTDOWN_TIMEOUT: Duration = Duration::from_millis(500);

/// Runs the service. Exit status 2 means the environment holds a value the
/// service cannot use; the message names the variable.
pub fn run(_args: ServeArgs) -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("somework: {error}");
            return ExitCode::from(2);
        }
    };
    // Dropped last, when `run` returns: it writes the lines still queued
    // for stdout, the error below included.
    let (telemetry, _stdout_flush) = Telemetry::init(&config.telemetry);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the Tokio runtime");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(serve(config, telemetry));
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_TIMEOUT);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Serves until a shutdown signal, then flushes telemetry, whether or not the
/// server could start.
async fn serve(config: Config, mut telemetry: Telemetry) -> anyhow::Result<()> {
    telemetry
        .init_exporters(&config.telemetry)
        .context("cannot start telemetry")?;
    let result = match Server::build(&config).await {
        Ok(server) => server.run_until_stopped().await,
        Err(error) => Err(error),
    };
    telemetry.shutdown().await;
    result
}
