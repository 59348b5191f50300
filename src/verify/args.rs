//! The command line of `somework verify` and of `somework verify local`.

use std::path::PathBuf;
use std::time::Duration;

/// Check that the demo runs and that traces and errors arrive.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct VerifyArgs {
    #[command(subcommand)]
    pub command: Option<VerifyCommand>,
    /// The kubeconfig context (default: the current one, or the in-cluster config).
    #[arg(long)]
    pub context: Option<String>,
    /// Namespace of the somework release.
    #[arg(long, default_value = "somework")]
    pub app_namespace: String,
    /// Namespace of the otel-collector (and demo-backends) release.
    #[arg(long, default_value = "observability")]
    pub collector_namespace: String,
    /// Requests sent to each of /somework, /errorwork and /chain?hops=2.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub requests: u32,
    /// Give up after this long, e.g. 90s, 2m or 1500ms.
    #[arg(long, default_value = "120s", value_parser = parse_timeout)]
    pub timeout: Duration,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum VerifyCommand {
    /// Check the pipeline scripts/run-local.sh started on this machine: the
    /// service, the collector (its counters and its debug output) and Bugsink.
    Local(LocalArgs),
}

/// Where the processes of `scripts/run-local.sh` listen and write.
#[derive(Debug, clap::Args)]
pub struct LocalArgs {
    /// The service, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    pub service: url::Url,
    /// The collector's own metrics (its :8888), e.g. http://127.0.0.1:8888.
    #[arg(long)]
    pub collector_metrics: url::Url,
    /// The file the collector's output (its debug exporter) goes to.
    #[arg(long)]
    pub collector_output: PathBuf,
    /// The service's log (JSON lines, LOG_FORMAT=json), for its count of
    /// the errors that did not reach Sentry; without it, no such row.
    #[arg(long)]
    pub service_log: Option<PathBuf>,
    /// Bugsink, e.g. http://127.0.0.1:8000.
    #[arg(long)]
    pub bugsink: url::Url,
    /// The data directory of scripts/run-bugsink.sh (its api-token and
    /// admin-password files).
    #[arg(long)]
    pub bugsink_data_dir: PathBuf,
    /// Requests sent to each of /somework, /errorwork and /chain?hops=2.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub requests: u32,
    /// Give up after this long, e.g. 90s, 2m or 1500ms.
    #[arg(long, default_value = "120s", value_parser = parse_timeout)]
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum TimeoutError {
    #[error("{value:?} is not a duration like 90s, 2m or 1500ms: {source}")]
    Form {
        value: String,
        source: humantime::DurationError,
    },
    #[error("the timeout must be longer than 0")]
    Zero,
}

/// `--timeout`: a duration as humantime reads it, above zero. clap names
/// the flag and exits 2 on an error.
pub fn parse_timeout(value: &str) -> Result<Duration, TimeoutError> {
    let duration = humantime::parse_duration(value).map_err(|source| TimeoutError::Form {
        value: value.to_owned(),
        source,
    })?;
    if duration.is_zero() {
        return Err(TimeoutError::Zero);
    }
    Ok(duration)
}
