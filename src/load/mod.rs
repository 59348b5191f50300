//! `somework load`: traffic for a running somework service, and what it
//! measured, per endpoint.
//!
//! Open loop by default: requests leave on a fixed schedule and latency is
//! counted from each request's scheduled time, so a stalling server cannot
//! hide its queueing (see [`schedule`]). Every request carries a W3C
//! `traceparent` the tool started, sampled, so that the slowest requests of
//! the report can be opened by trace id in the tracing backend.
//!
//! It needs nothing of the service's environment: it reads no `OTEL_*` or
//! `SENTRY_*` variable and sets up no telemetry of its own.

mod client;
mod mix;
mod progress;
mod record;
mod report;
mod schedule;

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio::task::JoinSet;

use self::client::{Connection, SendError, Target, TraceParent};
use self::mix::{Draw, Mix};
use self::progress::{Progress, Snapshot};
use self::record::{Measured, Outcome, Recorder};
use self::report::{Report, RunInfo, Totals};
use self::schedule::{Limit, Pace, Schedule};
use crate::routes::chain::MAX_HOPS;

/// The open-loop rate when neither `--rps` nor `--concurrency` is given.
const DEFAULT_RATE: f64 = 50.0;
const MAX_RATE: f64 = 1_000_000.0;
/// How often the progress is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);
/// A closed-loop connection that cannot connect waits this long before it
/// tries again, instead of spinning.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

/// Send traffic to a running service and report latencies per endpoint.
///
/// Open loop by default: requests leave at fixed intervals (--rps) and each
/// latency is measured from the request's scheduled time, so a stalling
/// server shows its stall. --concurrency switches to a closed loop. Runs
/// until --duration or --requests is reached, or until Ctrl-C or SIGTERM,
/// and then prints a table per endpoint (or JSON with --json).
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Base URL of the service, e.g. http://127.0.0.1:8080.
    #[arg(long, value_name = "URL")]
    target: Target,

    /// Requests per second, sent on a fixed schedule (open loop) [default: 50].
    #[arg(long, value_name = "N", value_parser = parse_rate, conflicts_with = "concurrency")]
    rps: Option<f64>,

    /// Closed loop instead: this many connections, each sending its next
    /// request as soon as the previous one answered.
    #[arg(long, value_name = "C", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    concurrency: Option<u32>,

    /// Open loop: connections to send on. A request due while all of them
    /// are busy waits (and counts as late).
    #[arg(long, value_name = "N", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=10_000),
          conflicts_with = "concurrency")]
    connections: u32,

    /// How long to send, e.g. 30s, 500ms, 5m [default: until Ctrl-C or SIGTERM].
    #[arg(long, value_name = "D", value_parser = parse_duration, conflicts_with = "requests")]
    duration: Option<Duration>,

    /// How many requests to send.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    requests: Option<u64>,

    /// Endpoints by name and their relative weights: somework, errorwork,
    /// users (known, unknown and invalid ids), chain, the probes; an unknown
    /// name is refused with the list of all.
    #[arg(
        long,
        value_name = "NAME=WEIGHT,...",
        default_value = "somework=70,errorwork=10,users=10,chain=10"
    )]
    mix: Mix,

    /// Seed for the mix, so that a run can be repeated [default: random, printed in the report].
    #[arg(long, value_name = "S")]
    seed: Option<u64>,

    /// Hops for `chain` requests (/chain?hops=N).
    #[arg(long, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u8).range(0..=i64::from(MAX_HOPS)))]
    hops: u8,

    /// Longest a request may take before it counts as an error.
    #[arg(long, value_name = "D", default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,

    /// Send no traceparent: the service's own sampler then decides, as for
    /// traffic from outside (the benchmark uses this).
    #[arg(long)]
    no_traceparent: bool,

    /// Write the report as JSON on stdout instead of the table.
    #[arg(long)]
    json: bool,

    /// Also write one JSON line per finished request on stderr: trace id,
    /// endpoint, status or error, scheduled time (Unix ms) and latency, so
    /// that every request, not only the slowest, can be looked up.
    #[arg(long)]
    log_requests: bool,
}

fn parse_rate(value: &str) -> Result<f64, String> {
    value
        .parse::<f64>()
        .ok()
        .filter(|rate| rate.is_finite() && *rate > 0.0 && *rate <= MAX_RATE)
        .ok_or_else(|| {
            format!("expected requests per second, a number above 0 and at most {MAX_RATE}")
        })
}

fn parse_duration(value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value)
        .ok()
        .filter(|duration| !duration.is_zero())
        .ok_or_else(|| "expected a duration above zero such as 30s, 500ms or 5m".to_owned())
}

/// Runs the load on a runtime of its own and prints the report.
pub fn run(args: LoadArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("somework load: cannot start the Tokio runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let json = args.json;
    let report = match runtime.block_on(drive(args)) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("somework load: {error}");
            return ExitCode::FAILURE;
        }
    };
    // Connection tasks may still be open; they are of no further use.
    runtime.shutdown_background();

    let mut stdout = std::io::stdout().lock();
    let written = if json {
        serde_json::to_writer_pretty(&mut stdout, &report)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(stdout))
    } else {
        write!(stdout, "{report}")
    };
    match written.and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("somework load: cannot write the report: {error}");
            ExitCode::FAILURE
        }
    }
}

/// What every connection shares.
struct Shared {
    schedule: Arc<Schedule>,
    target: Arc<Target>,
    recorder: Mutex<Recorder>,
    traceparent: bool,
    timeout: Duration,
    closed_loop: bool,
    interrupted: AtomicU64,
    log_requests: bool,
    /// The wall-clock time of the schedule's start, for `--log-requests`.
    started_unix: Duration,
}

async fn drive(args: LoadArgs) -> std::io::Result<Report> {
    let seed = args.seed.unwrap_or_else(rand::random);
    let pace = match args.concurrency {
        Some(_) => Pace::Closed,
        None => Pace::Open {
            rate: args.rps.unwrap_or(DEFAULT_RATE),
        },
    };
    let connections =
        usize::try_from(args.concurrency.unwrap_or(args.connections)).unwrap_or(usize::MAX);
    let limit = match (args.requests, args.duration) {
        (Some(count), _) => Limit::Requests(count),
        (None, Some(duration)) => Limit::Duration(duration),
        (None, None) => Limit::Unlimited,
    };
    let run = RunInfo {
        target: args.target.to_string(),
        mode: match pace {
            Pace::Open { .. } => "open",
            Pace::Closed => "closed",
        },
        rate: match pace {
            Pace::Open { rate } => Some(rate),
            Pace::Closed => None,
        },
        connections,
        mix: args.mix.to_string(),
        seed,
        traceparent: !args.no_traceparent,
    };

    // Signal handlers go in before the first request, so that an early
    // Ctrl-C stops the run instead of killing the process.
    let signals = Signals::new()?;
    // Taken next to the schedule's `Instant` start, microseconds apart.
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let shared = Arc::new(Shared {
        schedule: Arc::new(Schedule::new(
            pace,
            limit,
            Draw::new(&args.mix, seed, args.hops),
        )),
        target: Arc::new(args.target),
        recorder: Mutex::new(Recorder::default()),
        traceparent: !args.no_traceparent,
        timeout: args.timeout,
        closed_loop: pace == Pace::Closed,
        interrupted: AtomicU64::new(0),
        log_requests: args.log_requests,
        started_unix,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopper = tokio::spawn(stop_on_signal(signals, Arc::clone(&shared), stop_tx));

    let mut workers = JoinSet::new();
    for _ in 0..connections {
        workers.spawn(send_requests(Arc::clone(&shared), stop_rx.clone()));
    }
    let ticker = match pace {
        Pace::Open { .. } => Some(shared.schedule.spawn_ticker(connections)?),
        Pace::Closed => None,
    };
    let schedule = &shared.schedule;

    let mut progress = Progress::new(limit, schedule.start());
    let mut redraw = tokio::time::interval(PROGRESS_EVERY);
    loop {
        tokio::select! {
            joined = workers.join_next() => {
                if joined.is_none() {
                    break;
                }
            }
            _ = redraw.tick() => progress.update(snapshot(&shared)),
        }
    }
    let elapsed = schedule.start().elapsed();
    progress.finish();
    stopper.abort();
    let stopped_early = schedule.is_stopped();
    // Ends the ticker too, if it is still releasing requests.
    schedule.stop();
    if let Some(ticker) = ticker {
        let _ = tokio::task::spawn_blocking(move || ticker.join()).await;
    }

    let recorder = shared
        .recorder
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    Ok(Report::new(
        run,
        recorder,
        Totals {
            elapsed,
            sent: schedule.claimed(),
            interrupted: shared.interrupted.load(Ordering::Relaxed),
            stopped_early,
        },
    ))
}

fn snapshot(shared: &Shared) -> Snapshot {
    let recorder = shared
        .recorder
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    Snapshot {
        sent: shared.schedule.claimed(),
        finished: recorder.finished(),
        errors: recorder.errors(),
        late: recorder.late(),
    }
}

/// One connection's loop: claim the next request, send it when it is due,
/// record the outcome.
async fn send_requests(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut connection = Connection::new(Arc::clone(&shared.target));
    while let Some(slot) = shared.schedule.next().await {
        let trace = shared.traceparent.then(TraceParent::random);
        let sent = Instant::now();
        let exchange = tokio::time::timeout(
            shared.timeout,
            connection.get(slot.request.path.clone(), trace),
        );
        let result = tokio::select! {
            result = exchange => result,
            _ = stop.wait_for(|stopped| *stopped) => {
                shared.interrupted.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        let finished = Instant::now();
        let outcome = match &result {
            Ok(Ok(status)) => Outcome::Status(*status),
            Ok(Err(error)) => Outcome::Failed(error.kind()),
            Err(_elapsed) => Outcome::Failed("timeout"),
        };
        let from = slot.scheduled.unwrap_or(sent);
        if shared.log_requests {
            log_request(
                &shared,
                slot.request.path.as_str(),
                trace,
                &outcome,
                from,
                finished,
            );
        }
        shared
            .recorder
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(Measured {
                endpoint: slot.request.endpoint,
                path: slot.request.path.as_str(),
                outcome,
                latency: finished.saturating_duration_since(from),
                send_delay: slot
                    .scheduled
                    .map(|scheduled| sent.saturating_duration_since(scheduled)),
                trace_id: trace.map(|trace| trace.trace_id),
            });
        if shared.closed_loop && matches!(result, Ok(Err(SendError::Connect(_)))) {
            tokio::select! {
                () = tokio::time::sleep(RECONNECT_PAUSE) => {}
                _ = stop.wait_for(|stopped| *stopped) => return,
            }
        }
    }
}

/// One `--log-requests` line. The time is the schedule's (or the send's, in
/// a closed loop) on the wall clock, so that it can be compared with the
/// timestamps of other programs on the same machine.
fn log_request(
    shared: &Shared,
    path: &str,
    trace: Option<TraceParent>,
    outcome: &Outcome,
    from: Instant,
    finished: Instant,
) {
    let since_start = from.saturating_duration_since(shared.schedule.start());
    let scheduled_unix_ms = shared.started_unix.saturating_add(since_start).as_millis();
    let (status, error) = match outcome {
        Outcome::Status(status) => (Some(status.as_u16()), None),
        Outcome::Failed(kind) => (None, Some(*kind)),
    };
    let line = serde_json::json!({
        "trace_id": trace.map(|trace| format!("{:032x}", trace.trace_id)),
        "path": path,
        "status": status,
        "error": error,
        "scheduled_unix_ms": scheduled_unix_ms,
        "latency_ms": finished.saturating_duration_since(from).as_secs_f64() * 1e3,
    });
    // A line is written whole or not at all: stderr is unbuffered and
    // `eprintln!` holds its lock for the line.
    eprintln!("{line}");
}

/// SIGINT (Ctrl-C) and SIGTERM (Kubernetes).
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

/// The first signal stops the run; the report is still printed. A second
/// one quits at once.
async fn stop_on_signal(mut signals: Signals, shared: Arc<Shared>, stop: watch::Sender<bool>) {
    signals.recv().await;
    eprintln!("somework load: stopping; the report follows (signal again to quit at once)");
    shared.schedule.stop();
    let _ = stop.send(true);
    signals.recv().await;
    std::process::exit(130);
}
