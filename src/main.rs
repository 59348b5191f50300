//! Wiring only: parse the command line and the environment, set up
//! telemetry, run the server.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use somework::config::Config;
use somework::{server, telemetry};

/// A reference service for distributed tracing: OpenTelemetry -> Collector -> Sentry.
///
/// All configuration comes from the environment; see the README.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API (the default).
    Serve,
    Load(somework::load::LoadArgs),
}

/// How long the runtime waits for stray blocking tasks (such as a DNS lookup)
/// once the server has shut down.
const RUNTIME_SHUTDOWN_TIMEOUT: Duration = Duration::from_millis(500);

fn main() -> ExitCode {
    match Cli::parse().command.unwrap_or(Command::Serve) {
        Command::Serve => serve(),
        // Reads none of the service's environment.
        Command::Load(args) => somework::load::run(args),
    }
}

fn serve() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("somework: {error}");
            return ExitCode::from(2);
        }
    };
    telemetry::init_logging(config.log_format, config.log_filter.as_deref());
    run_server(config)
}

fn run_server(config: Config) -> ExitCode {
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
