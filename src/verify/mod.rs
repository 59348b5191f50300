//! `somework verify`: proves, against a live cluster, that the workloads
//! run, that spans leave the collector, and that traces and errors reach
//! their backends; `somework verify local` proves the same of the pipeline
//! `scripts/run-local.sh` starts on this machine.
//!
//! The seams: [`check`] (the rows every step adds: a leaf), [`cluster`]
//! (client, errors), [`workload`] (the Deployments and their pods), [`forward`] and [`http`] (a GET
//! through the API server's port-forward or straight to loopback),
//! [`traffic`] (requests with our own trace ids), [`scrape`] (one reader of
//! Prometheus pages) for [`metrics`] (the collector's counters) and [`red`]
//! (RED per endpoint from its span metrics), [`backends`] (Jaeger, Bugsink,
//! Sentry), [`sentry_delivery`] (the service's own count of errors lost on
//! the way to Sentry, from its log), the runs that put them together (`deployed`, `local`, over the
//! shared `steps`), and [`report`] (table and JSON).
//! Built only with the `verify` feature: the service image leaves it out.

mod args;
pub mod backends;
pub mod check;
pub mod cluster;
pub mod collector_log;
mod deployed;
pub mod forward;
pub mod http;
mod local;
pub mod metrics;
mod progress;
pub mod red;
pub mod report;
pub mod scrape;
pub mod sentry_delivery;
mod steps;
pub mod traffic;
pub mod workload;

use std::fmt::Display;
use std::process::ExitCode;
use std::time::Duration;

pub use self::args::{LocalArgs, VerifyArgs, VerifyCommand};
use self::progress::Step;
use self::report::Report;

/// Runs `verify` (or `verify local`) on a runtime of its own and prints the
/// report; exit 0 only when every check passed.
pub fn run(args: VerifyArgs) -> ExitCode {
    match &args.command {
        Some(VerifyCommand::Local(local)) => run_until(local.timeout, false, async |step| {
            local::verify(local, step).await
        }),
        None => run_until(args.timeout, args.json, async |step| {
            deployed::verify(&args, step).await
        }),
    }
}

fn run_until<E: Display>(
    timeout: Duration,
    json: bool,
    verify: impl AsyncFnOnce(&Step) -> Result<Report, E>,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fatal(json, &format!("cannot start the Tokio runtime: {error}")),
    };
    let step = Step::default();
    let outcome = runtime.block_on(async { tokio::time::timeout(timeout, verify(&step)).await });
    // Port-forward tasks still draining must not hold the exit up.
    runtime.shutdown_timeout(Duration::from_millis(200));
    match outcome {
        Ok(Ok(report)) => print(&report, json),
        Ok(Err(error)) => fatal(json, &error.to_string()),
        Err(_) => fatal(
            json,
            &format!(
                "gave up after --timeout {timeout:?} while {}",
                step.current()
            ),
        ),
    }
}

fn print(report: &Report, json: bool) -> ExitCode {
    if json {
        match serde_json::to_string_pretty(report) {
            Ok(text) => println!("{text}"),
            Err(error) => return fatal(json, &format!("cannot write the JSON: {error}")),
        }
    } else {
        print!("{}", report.render());
    }
    if report.passed {
        return ExitCode::SUCCESS;
    }
    if json {
        for check in report.failures() {
            eprintln!("verify: FAIL {}: {}", check.name, check.seen);
        }
    }
    ExitCode::FAILURE
}

/// The one line for a run that could not check anything.
fn fatal(json: bool, line: &str) -> ExitCode {
    eprintln!("verify: {line}");
    if json {
        println!("{}", serde_json::json!({ "passed": false, "error": line }));
    }
    ExitCode::FAILURE
}
