//! `somework serve`: the HTTP service. The only subcommand that reads the
//! service's environment ([`Config::from_env`]) and starts its logging and
//! telemetry.

use std::process::ExitCode;
use std::time::Duration;

use crate::config::Config;
use crate::{server, telemetry};

/// Serve the HTTP API until SIGTERM or SIGINT.
///
/// All configuration comes from the environment; see the README.
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
    telemetry::init_logging(config.log_format, config.log_filter.as_deref());
    let sentry = telemetry::init_sentry(config.sentry.as_ref());
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
    let result = runtime.block_on(server::serve(config, sentry));
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_TIMEOUT);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}
