//! `make bench` (scripts/bench.sh): what tracing costs the service, and what
//! the load tool itself can do. Writes the results into BENCHMARKS.md.
//!
//! Placement: the service alone on CPU 0; the load tool (`somework load`,
//! open loop, at a fixed rate well under saturation) and the real collector
//! (`otelcol-somework`, debug exporter at basic verbosity) on CPU 1. The
//! headline is the service's own CPU time per request, read from /proc, so
//! the load on the rest of the machine changes it little.
//!
//! The modes run side by side, one service process each, and take turns
//! round after round (A B C A B C ...), so that a noisy neighbour falls on
//! all of them alike. Ratios to the baseline are taken pair by pair within
//! a round; the report gives their median.
//!
//! Needs taskset, wrk (the `WRK` variable, set by scripts/bench.sh) and the
//! collector (`SOMEWORK_TOOLS_DIR`). `-- --quick` runs fewer, shorter rounds.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::time::TimeVal;
use nix::unistd::{SysconfVar, sysconf};
use serde_json::Value;
use somework_testkit::api::SomeworkApi as _;
use somework_testkit::collector::{self, Collector, CollectorBuilder};
use somework_testkit::service::{Service, ServiceBuilder};
use tokio::process::Command;

const BINARY: &str = env!("CARGO_BIN_EXE_somework");
const SERVICE_CPU: &str = "0";
const LOAD_CPU: &str = "1";
/// Where the results go, between these markers; the rest of the file is
/// written by hand.
const RESULTS_START: &str = "<!-- bench:start -->";
const RESULTS_END: &str = "<!-- bench:end -->";

struct Plan {
    rounds: usize,
    seconds: u64,
    /// Requests per second for /somework: about a tenth of what one core
    /// serves with tracing off, so every mode stays far from saturation.
    rate: u32,
    /// /chain?hops=3 runs four requests per call.
    chain_rate: u32,
    memory_seconds: u64,
    wrk_seconds: u64,
    wrk_rounds: usize,
    peer_rounds: usize,
    peer_seconds: u64,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                rounds: 3,
                seconds: 4,
                rate: 2000,
                chain_rate: 300,
                memory_seconds: 20,
                wrk_seconds: 3,
                wrk_rounds: 2,
                peer_rounds: 2,
                peer_seconds: 3,
            }
        } else {
            Self {
                rounds: 5,
                seconds: 10,
                rate: 2000,
                chain_rate: 300,
                memory_seconds: 60,
                // Many short turns: one client's rate moves by a third from
                // one round to the next on a shared machine, so the median
                // of many pairs is what holds still.
                wrk_seconds: 3,
                wrk_rounds: 10,
                // Issue 21's table: three interleaved rounds, medians.
                peer_rounds: 3,
                peer_seconds: 10,
            }
        }
    }
}

/// A tracing configuration under test.
struct Mode {
    name: &'static str,
    env: &'static [(&'static str, &'static str)],
}

const MODES: [Mode; 3] = [
    Mode {
        name: "`OTEL_SDK_DISABLED=true` (baseline)",
        env: &[("OTEL_SDK_DISABLED", "true")],
    },
    Mode {
        name: "`parentbased_traceidratio` 0.1",
        env: &[
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.1"),
        ],
    },
    Mode {
        name: "`parentbased_always_on`",
        env: &[("OTEL_TRACES_SAMPLER", "parentbased_always_on")],
    },
];

/// What serves the requests: the service, issue 9's reference (a plain axum
/// handler with the same spans instrumented as opentelemetry-rust's examples
/// do it, `examples/reference.rs`), or one of the peers under
/// `benches/peers/` (built by scripts/bench.sh into `SOMEWORK_PEERS_DIR`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Subject {
    Somework,
    Reference,
    /// The reference with its batches dropped in-process instead of exported.
    ReferenceNoExport,
    /// axum and nothing else: the floor.
    AxumPlain,
    /// axum with tower-http's `TraceLayer` and `tracing-opentelemetry`.
    AxumTracing,
    /// gin with otelgin and the OpenTelemetry Go SDK.
    Gin,
}

impl Subject {
    fn binary(self) -> PathBuf {
        let program = match self {
            Self::Somework => return PathBuf::from(BINARY),
            Self::Reference | Self::ReferenceNoExport => {
                let reference = Path::new(BINARY)
                    .parent()
                    .expect("the binary is in a directory")
                    .join("examples")
                    .join("reference");
                assert!(
                    reference.exists(),
                    "no {}: run the benchmark with make bench (scripts/bench.sh builds examples/reference.rs)",
                    reference.display()
                );
                return reference;
            }
            Self::AxumPlain => "peer-axum-plain",
            Self::AxumTracing => "peer-axum-tracing-opentelemetry",
            Self::Gin => "peer-gin-otel",
        };
        let peer = std::env::var_os("SOMEWORK_PEERS_DIR")
            .map(PathBuf::from)
            .expect("SOMEWORK_PEERS_DIR is not set: run the benchmark with make bench (scripts/bench.sh builds the peers)")
            .join(program);
        assert!(
            peer.exists(),
            "no {}: run the benchmark with make bench (scripts/bench.sh builds the peers)",
            peer.display()
        );
        peer
    }

    fn env(self) -> &'static [(&'static str, &'static str)] {
        match self {
            // Spans only, as the reference: an exported log record costs
            // more than two spans' export, and a sampled request writes one.
            // What logs cost is measured on its own, with
            // `--only instructions --set OTEL_LOGS_EXPORTER=otlp`.
            Self::Somework => &[("OTEL_LOGS_EXPORTER", "none")],
            Self::ReferenceNoExport => &[("REFERENCE_EXPORTER", "discard")],
            Self::Reference | Self::AxumPlain | Self::AxumTracing | Self::Gin => &[],
        }
    }

    /// Names the callgrind dumps.
    fn slug(self) -> &'static str {
        match self {
            Self::Somework => "somework",
            Self::Reference => "reference",
            Self::ReferenceNoExport => "reference-no-export",
            Self::AxumPlain => "axum-plain",
            Self::AxumTracing => "axum-tracing-opentelemetry",
            Self::Gin => "gin-otel",
        }
    }

    /// How the peers table names it.
    fn title(self) -> &'static str {
        match self {
            Self::Somework => "somework",
            Self::Reference => "`examples/reference.rs`",
            Self::ReferenceNoExport => "`examples/reference.rs`, batches dropped in-process",
            Self::AxumPlain => "plain axum, no tracing (the floor)",
            Self::AxumTracing => {
                "axum + tower-http `TraceLayer` + `tracing-opentelemetry` 0.34 (the usual Rust way)"
            }
            Self::Gin => {
                "gin + otelgin + otel-go 1.47, batch OTLP/gRPC (the stack of the Go article's example)"
            }
        }
    }
}

/// The reference's runs beside the service's: every mode, and without
/// export the modes that export.
const REFERENCE_RUNS: [(Subject, usize); 5] = [
    (Subject::Reference, 0),
    (Subject::Reference, 1),
    (Subject::Reference, 2),
    (Subject::ReferenceNoExport, 1),
    (Subject::ReferenceNoExport, 2),
];

/// The Rust peers in the instruction count: the floor, and the usual Rust
/// way with tracing off and always-on.
const INSTRUCTION_PEER_RUNS: [(Subject, usize); 3] = [
    (Subject::AxumPlain, 0),
    (Subject::AxumTracing, 0),
    (Subject::AxumTracing, 2),
];
/// The peers' table: every implementation in every mode it has, taking
/// turns in the same rounds. Plain axum has no tracing to switch on.
const PEER_RUNS: [(Subject, usize); 13] = [
    (Subject::AxumPlain, 0),
    (Subject::AxumTracing, 0),
    (Subject::AxumTracing, 1),
    (Subject::AxumTracing, 2),
    (Subject::Gin, 0),
    (Subject::Gin, 1),
    (Subject::Gin, 2),
    (Subject::Reference, 0),
    (Subject::Reference, 1),
    (Subject::Reference, 2),
    (Subject::Somework, 0),
    (Subject::Somework, 1),
    (Subject::Somework, 2),
];
/// The implementations of the peers' table, in its order.
const PEER_SUBJECTS: [Subject; 5] = [
    Subject::AxumTracing,
    Subject::Gin,
    Subject::Reference,
    Subject::Somework,
    Subject::AxumPlain,
];
/// wrk's connections in the peers' rounds: enough to keep one core busy.
const PEER_CONNECTIONS: &str = "16";
/// After each peer run: two batch schedules (200 ms, set for every program
/// of the table) and the export, so that the run's spans reach the collector
/// and their export is charged to the run before the next one starts.
const PEER_SETTLE: Duration = Duration::from_millis(1000);

fn clock_ticks_per_second() -> f64 {
    match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(ticks)) if ticks > 0 => ticks as f64,
        _ => 100.0,
    }
}

/// User plus system CPU time of a process, threads that already exited
/// included, from /proc/PID/stat.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // The command name may contain spaces; the fields after it do not.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("stat format")
        .1
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15; `fields` starts at field 3.
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    ticks as f64 / clock_ticks_per_second()
}

/// A `VmRSS`/`VmHWM`-style line of /proc/PID/status, in MiB.
fn status_mib(pid: u32, field: &str) -> f64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .expect("status field");
    kib / 1024.0
}

/// CPU time used by children that were waited for, in seconds.
fn children_cpu_seconds() -> f64 {
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN).expect("getrusage(RUSAGE_CHILDREN)");
    let seconds = |t: TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    seconds(usage.user_time()) + seconds(usage.system_time())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Runs `somework load` on the load CPU and returns its JSON report and the
/// CPU time it used.
async fn load(args: &[String]) -> (Value, f64) {
    let before = children_cpu_seconds();
    let output = Command::new("taskset")
        .args(["-c", LOAD_CPU, BINARY, "load", "--json"])
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .await
        .expect("cannot run somework load");
    assert!(
        output.status.success(),
        "somework load failed: {}",
        output.status
    );
    let report = serde_json::from_slice(&output.stdout).expect("the load tool's JSON");
    (report, children_cpu_seconds() - before)
}

fn field(report: &Value, path: &[&str]) -> f64 {
    let mut value = report;
    for key in path {
        value = &value[*key];
    }
    value.as_f64().unwrap_or(f64::NAN)
}

async fn start_service(collector: &str, extra: &[(&str, &str)]) -> Service {
    start_subject(Subject::Somework, collector, extra).await
}

async fn start_subject(subject: Subject, collector: &str, extra: &[(&str, &str)]) -> Service {
    let mut builder = ServiceBuilder::new(subject.binary())
        .wrapped_in(&["taskset", "-c", SERVICE_CPU])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", collector)
        // The SDK's default batch schedule, not the tests' short one.
        .remove_env("OTEL_BSP_SCHEDULE_DELAY")
        .remove_env("OTEL_TRACES_SAMPLER");
    for (key, value) in extra.iter().chain(subject.env()) {
        builder = builder.env(key, *value);
    }
    builder.start().await
}

/// The service's span counts from its shutdown summary (zero with tracing off).
async fn stop_service(mut service: Service) -> SpanCounts {
    let (status, _) = service.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "the service failed: {status}");
    let summary = service
        .json_logs()
        .into_iter()
        .find(|line| line["message"] == "span export summary");
    let count = |key: &str| {
        summary
            .as_ref()
            .and_then(|line| line[key].as_u64())
            .unwrap_or(0)
    };
    SpanCounts {
        exported: count("spans.exported"),
        failed: count("spans.failed"),
        dropped: count("spans.dropped"),
        unsent: count("spans.unsent"),
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct SpanCounts {
    exported: u64,
    failed: u64,
    dropped: u64,
    unsent: u64,
}

impl SpanCounts {
    fn created(&self) -> u64 {
        self.exported + self.failed + self.dropped + self.unsent
    }
}

/// One mode's measurements over the rounds.
#[derive(Default)]
struct Measured {
    cpu_per_request: Vec<f64>,
    rate: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    late: Vec<f64>,
}

/// Interleaved rounds over the three modes; returns one `Measured` per mode.
async fn interleaved(services: &[Service], plan: &Plan, load_args: &[String]) -> Vec<Measured> {
    let rounds = plan.rounds;
    let mut measured: Vec<Measured> = services.iter().map(|_| Measured::default()).collect();
    // One warm-up run each, not counted: connections, allocator, caches.
    for service in services {
        let mut args = load_args.to_vec();
        args.extend(["--target".into(), service.url("")]);
        args.extend(["--duration".into(), "1s".into()]);
        load(&args).await;
    }
    for round in 0..rounds {
        for (service, measured) in services.iter().zip(&mut measured) {
            let mut args = load_args.to_vec();
            args.extend(["--target".into(), service.url("")]);
            args.extend(["--duration".into(), format!("{}s", plan.seconds)]);
            let before = cpu_seconds(service.pid());
            let (report, _) = load(&args).await;
            let cpu = cpu_seconds(service.pid()) - before;
            let finished = field(&report, &["finished"]);
            measured.cpu_per_request.push(cpu / finished * 1e6);
            measured.rate.push(field(&report, &["achieved_rate"]));
            measured
                .p50
                .push(field(&report, &["all", "latency_ms", "p50"]));
            measured
                .p99
                .push(field(&report, &["all", "latency_ms", "p99"]));
            measured.late.push(field(&report, &["late"]));
        }
        eprintln!("round {} of {rounds} done", round + 1);
    }
    measured
}

/// Median over rounds of `baseline[r] / mode[r]` (or the inverse).
fn paired_ratio(baseline: &[f64], mode: &[f64], baseline_over_mode: bool) -> f64 {
    let mut ratios: Vec<f64> = baseline
        .iter()
        .zip(mode)
        .map(|(b, m)| if baseline_over_mode { b / m } else { m / b })
        .collect();
    median(&mut ratios)
}

fn overhead_table(
    out: &mut String,
    measured: &mut [Measured],
    spans: &[SpanCounts],
    peak_rss: &[f64],
    unit: &str,
) {
    let _ = writeln!(
        out,
        "| mode | CPU per {unit} (µs) | off / mode (CPU) | req/s | p50 ms | p99 ms | p99 / off | peak RSS MiB | spans created | exported | dropped | failed |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    let baseline_cpu = measured[0].cpu_per_request.clone();
    let baseline_p99 = measured[0].p99.clone();
    for (i, mode) in MODES.iter().enumerate() {
        let m = &mut measured[i];
        let cpu_ratio = paired_ratio(&baseline_cpu, &m.cpu_per_request, true);
        let p99_ratio = paired_ratio(&baseline_p99, &m.p99, false);
        let _ = writeln!(
            out,
            "| {} | {:.1} | {:.2} | {:.0} | {:.3} | {:.3} | {:.2} | {:.1} | {} | {} | {} | {} |",
            mode.name,
            median(&mut m.cpu_per_request.clone()),
            cpu_ratio,
            median(&mut m.rate.clone()),
            median(&mut m.p50.clone()),
            median(&mut m.p99.clone()),
            p99_ratio,
            peak_rss[i],
            spans[i].created(),
            spans[i].exported,
            spans[i].dropped,
            spans[i].failed,
        );
    }
    let _ = writeln!(
        out,
        "\nPer round, CPU µs per {unit} (off, 10%, always-on): {}",
        (0..measured[0].cpu_per_request.len())
            .map(|r| {
                format!(
                    "{:.1} / {:.1} / {:.1}",
                    measured[0].cpu_per_request[r],
                    measured[1].cpu_per_request[r],
                    measured[2].cpu_per_request[r]
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    );
}

/// The modes side by side against one endpoint; with `with_reference`, the
/// reference's runs ([`REFERENCE_RUNS`]) take their turns in the same rounds.
async fn overhead(
    out: &mut String,
    plan: &Plan,
    collector: &Collector,
    title: &str,
    unit: &str,
    load_args: &[String],
    with_reference: bool,
) {
    let endpoint = collector.otlp_grpc_endpoint();
    let mut runs: Vec<(Subject, usize)> =
        (0..MODES.len()).map(|i| (Subject::Somework, i)).collect();
    if with_reference {
        runs.extend(REFERENCE_RUNS);
    }
    let mut services = Vec::new();
    for &(subject, mode) in &runs {
        services.push(start_subject(subject, &endpoint, MODES[mode].env).await);
    }
    let mut measured = interleaved(&services, plan, load_args).await;
    let peak_rss: Vec<f64> = services
        .iter()
        .map(|service| status_mib(service.pid(), "VmHWM:"))
        .collect();
    let mut spans = Vec::new();
    for service in services {
        spans.push(stop_service(service).await);
    }
    let _ = writeln!(out, "### {title}\n");
    overhead_table(out, &mut measured[..MODES.len()], &spans, &peak_rss, unit);
    let late: f64 = measured.iter().flat_map(|m| m.late.iter()).sum();
    let _ = writeln!(
        out,
        "\nRequests the load tool sent more than 1 ms late, all rounds and modes: {late:.0}.\n"
    );
    if with_reference {
        reference_cpu_table(out, &runs, &measured);
    }
}

/// somework beside the reference, CPU per request, from the same rounds.
fn reference_cpu_table(out: &mut String, runs: &[(Subject, usize)], measured: &[Measured]) {
    let cpu = |subject: Subject, mode: usize| {
        runs.iter()
            .position(|run| *run == (subject, mode))
            .map(|i| &measured[i].cpu_per_request)
    };
    let _ = writeln!(
        out,
        "#### The reference in the same rounds\n\nIssue 9's reference (`examples/reference.rs`): a plain axum handler with the same four spans, three span events and attributes, instrumented as opentelemetry-rust's examples do it, exporting to the same collector; \"no export\" is the same handler with its batches dropped in-process. CPU µs per request, median over rounds; the tracing cost is the paired difference to the same program with tracing off.\n"
    );
    let _ = writeln!(
        out,
        "| mode | somework | reference | reference, no export | off / mode, somework | off / mode, reference | tracing's cost, somework | tracing's cost, reference | tracing's cost, reference, no export |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    let cell = |values: Option<&Vec<f64>>| {
        values.map_or("–".to_owned(), |v| {
            format!("{:.1}", median(&mut v.clone()))
        })
    };
    let ratio = |subject: Subject, mode: usize| match (cpu(subject, 0), cpu(subject, mode)) {
        (Some(off), Some(on)) => format!("{:.2}", paired_ratio(off, on, true)),
        _ => "–".to_owned(),
    };
    let cost = |subject: Subject, off_subject: Subject, mode: usize| match (
        cpu(off_subject, 0),
        cpu(subject, mode),
    ) {
        (Some(off), Some(on)) if mode > 0 => {
            let mut differences: Vec<f64> = off.iter().zip(on).map(|(o, m)| m - o).collect();
            format!("{:.1}", median(&mut differences))
        }
        _ => "–".to_owned(),
    };
    for (i, mode) in MODES.iter().enumerate() {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            mode.name,
            cell(cpu(Subject::Somework, i)),
            cell(cpu(Subject::Reference, i)),
            cell(cpu(Subject::ReferenceNoExport, i)),
            ratio(Subject::Somework, i),
            ratio(Subject::Reference, i),
            cost(Subject::Somework, Subject::Somework, i),
            cost(Subject::Reference, Subject::Reference, i),
            cost(Subject::ReferenceNoExport, Subject::Reference, i),
        );
    }
    let _ = writeln!(out);
}

/// Issue 21's table: somework beside its peers (`benches/peers/`) and the
/// reference, each pinned to the service CPU, wrk closed loop on the load
/// CPU, every implementation and mode taking turns in the same rounds. The
/// figure is the program's CPU time per request answered, its export to the
/// real collector included (each run ends once its spans are received).
async fn peers(out: &mut String, plan: &Plan, collector: &Collector, wrk: &Path) {
    let endpoint = collector.otlp_grpc_endpoint();
    let mut services = Vec::new();
    for &(subject, mode) in &PEER_RUNS {
        let mut extra = MODES[mode].env.to_vec();
        extra.push(("OTEL_BSP_SCHEDULE_DELAY", "200"));
        services.push(start_subject(subject, &endpoint, &extra).await);
    }
    for service in &services {
        wrk_run(wrk, &service.url("/somework"), PEER_CONNECTIONS, 1).await;
    }
    tokio::time::sleep(PEER_SETTLE).await;
    let mut cpu_per_request: Vec<Vec<f64>> = vec![Vec::new(); services.len()];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); services.len()];
    let mut requests = vec![0.0; services.len()];
    let mut received = vec![0.0; services.len()];
    for round in 0..plan.peer_rounds {
        for (i, service) in services.iter().enumerate() {
            let cpu_before = cpu_seconds(service.pid());
            let received_before = spans_received(collector).await;
            let run = wrk_run(
                wrk,
                &service.url("/somework"),
                PEER_CONNECTIONS,
                plan.peer_seconds,
            )
            .await;
            tokio::time::sleep(PEER_SETTLE).await;
            cpu_per_request[i].push((cpu_seconds(service.pid()) - cpu_before) / run.requests * 1e6);
            rates[i].push(run.rate);
            requests[i] += run.requests;
            received[i] += spans_received(collector).await - received_before;
        }
        eprintln!("peers: round {} of {} done", round + 1, plan.peer_rounds);
    }
    let mut somework_spans = SpanCounts::default();
    for (service, &(subject, mode)) in services.into_iter().zip(&PEER_RUNS) {
        let spans = stop_service(service).await;
        if subject == Subject::Somework && mode == 2 {
            somework_spans = spans;
        }
    }

    let run = |subject: Subject, mode: usize| PEER_RUNS.iter().position(|r| *r == (subject, mode));
    let median_of = |values: &[f64]| median(&mut values.to_vec());
    // Tracing's cost: the paired difference to the same program with
    // tracing off, round by round, then the median.
    let cost = |subject: Subject, mode: usize| {
        let (off, on) = (run(subject, 0)?, run(subject, mode)?);
        let differences: Vec<f64> = cpu_per_request[off]
            .iter()
            .zip(&cpu_per_request[on])
            .map(|(off, on)| on - off)
            .collect();
        Some(median_of(&differences))
    };
    let off = |subject: Subject| run(subject, 0).map(|i| median_of(&cpu_per_request[i]));
    let ratio_to_floor = |subject: Subject| {
        let (floor, this) = (run(Subject::AxumPlain, 0)?, run(subject, 0)?);
        let ratios: Vec<f64> = cpu_per_request[this]
            .iter()
            .zip(&cpu_per_request[floor])
            .map(|(this, floor)| this / floor)
            .collect();
        Some(median_of(&ratios))
    };
    let cell = |value: Option<f64>, plus: bool| match value {
        Some(value) if plus => format!("{value:+.1}"),
        Some(value) => format!("{value:.1}"),
        None => "–".to_owned(),
    };
    let _ = writeln!(
        out,
        "### somework beside its peers\n\n`/somework` (SERVER span, `somework`, `MiddleWork` with three events, `ErrorWork`; no sleep, no error) from each implementation pinned to CPU {SERVICE_CPU}; wrk (`-t1 -c{PEER_CONNECTIONS}`, closed loop) and the real collector on CPU {LOAD_CPU}; {} interleaved rounds of {} s, every program and mode taking its turn in each round; batch export every 200 ms for every program, and each run's CPU time counted until its spans have reached the collector. CPU µs per request: median over rounds; \"+ mode\" is the median of the paired differences to the same program with tracing off. The peers write no request log line and have no limits, JSON fallbacks or export accounting; somework exports spans only (`OTEL_LOGS_EXPORTER=none`), as the others. What each peer is: BENCHMARKS.md, \"The peers\".\n",
        plan.peer_rounds, plan.peer_seconds
    );
    let _ = writeln!(
        out,
        "| implementation | off | + always-on | + 10 % | off / plain axum | req/s, off | spans received per always-on request |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for subject in PEER_SUBJECTS {
        let spans_per_request = run(subject, 2).map_or("–".to_owned(), |i| {
            format!("{:.2}", received[i] / requests[i])
        });
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {spans_per_request} |",
            subject.title(),
            cell(off(subject), false),
            cell(cost(subject, 2), true),
            cell(cost(subject, 1), true),
            ratio_to_floor(subject).map_or("–".to_owned(), |r| format!("{r:.2}")),
            run(subject, 0).map_or("–".to_owned(), |i| format!("{:.0}", median_of(&rates[i]))),
        );
    }
    let somework_cost = cost(Subject::Somework, 2);
    let best_peer = [Subject::AxumTracing, Subject::Gin]
        .into_iter()
        .filter_map(|peer| cost(peer, 2).map(|cost| (peer, cost)))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    let quotient = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => format!("{:.2}", a / b),
        _ => "–".to_owned(),
    };
    let _ = writeln!(
        out,
        "\nsomework with tracing off / plain axum: **{}** (paired per round; issue 21's bound: at most 1.3). somework's always-on cost / the best peer's ({}): **{}** (at most 0.5). somework's always-on cost / the reference's: **{}** (at most 1.2). somework's spans at always-on: {} created, {} dropped, {} failed.",
        ratio_to_floor(Subject::Somework).map_or("–".to_owned(), |r| format!("{r:.2}")),
        best_peer.map_or("–", |(peer, _)| peer.slug()),
        quotient(somework_cost, best_peer.map(|(_, cost)| cost)),
        quotient(somework_cost, cost(Subject::Reference, 2)),
        somework_spans.created(),
        somework_spans.dropped,
        somework_spans.failed,
    );
    let _ = writeln!(
        out,
        "\nPer round, CPU µs per request: {}\n",
        PEER_RUNS
            .iter()
            .zip(&cpu_per_request)
            .map(|((subject, mode), values)| format!(
                "{} {}: {}",
                subject.slug(),
                ["off", "10%", "always-on"][*mode],
                values
                    .iter()
                    .map(|value| format!("{value:.1}"))
                    .collect::<Vec<_>>()
                    .join(" / ")
            ))
            .collect::<Vec<_>>()
            .join("; ")
    );
}

/// RSS before and after a long run with always-on sampling and no collector.
async fn memory_with_collector_down(out: &mut String, plan: &Plan) {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address")
    };
    let service = start_service(
        &format!("http://{closed}"),
        &[("OTEL_TRACES_SAMPLER", "parentbased_always_on")],
    )
    .await;
    let args = |service: &Service, seconds: u64| {
        vec![
            "--target".to_owned(),
            service.url(""),
            "--rps".to_owned(),
            plan.rate.to_string(),
            "--duration".to_owned(),
            format!("{seconds}s"),
            "--mix".to_owned(),
            "somework=1".to_owned(),
            "--no-traceparent".to_owned(),
        ]
    };
    load(&args(&service, 5)).await;
    let before = status_mib(service.pid(), "VmRSS:");
    let (report, _) = load(&args(&service, plan.memory_seconds)).await;
    let after = status_mib(service.pid(), "VmRSS:");
    let spans = stop_service(service).await;
    // The same load on a service with tracing off, right after: whether a
    // slow tail comes from the down collector or from the machine.
    let baseline = start_service(
        &format!("http://{closed}"),
        &[("OTEL_SDK_DISABLED", "true")],
    )
    .await;
    load(&args(&baseline, 5)).await;
    let (baseline_report, _) = load(&args(&baseline, plan.memory_seconds)).await;
    stop_service(baseline).await;
    let p99 = field(&report, &["all", "latency_ms", "p99"]);
    let baseline_p99 = field(&baseline_report, &["all", "latency_ms", "p99"]);
    let _ = writeln!(
        out,
        "### Memory with the collector down\n\n`parentbased_always_on`, the exporter pointed at a closed port, {} req/s of `/somework`:\n",
        plan.rate
    );
    let _ = writeln!(
        out,
        "| RSS after 5 s warm-up | RSS after {} s more | growth | requests | p99 ms | p99 ms, tracing off, same load after | p99 / off | spans dropped (queue full) | failed (export) |",
        plan.memory_seconds
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    let _ = writeln!(
        out,
        "| {before:.1} MiB | {after:.1} MiB | {:.1} MiB | {:.0} | {p99:.3} | {baseline_p99:.3} | {:.2} | {} | {} |\n",
        after - before,
        field(&report, &["finished"]),
        p99 / baseline_p99,
        spans.dropped,
        spans.failed
    );
}

/// What one wrk run reports.
struct WrkRun {
    requests: f64,
    rate: f64,
}

/// Runs wrk, one thread, closed loop, on the load CPU against `url`.
async fn wrk_run(wrk: &Path, url: &str, connections: &str, seconds: u64) -> WrkRun {
    let output = Command::new("taskset")
        .args(["-c", LOAD_CPU])
        .arg(wrk)
        .args(["-t1", "-c", connections, "-d", &format!("{seconds}s"), url])
        .output()
        .await
        .expect("cannot run wrk");
    let text = String::from_utf8_lossy(&output.stdout);
    let requests: f64 = text
        .lines()
        .find_map(|line| line.trim().split_once(" requests in "))
        .and_then(|(count, _)| count.trim().parse().ok())
        .unwrap_or_else(|| panic!("cannot read wrk's output:\n{text}"));
    let rate: f64 = text
        .lines()
        .find_map(|line| line.strip_prefix("Requests/sec:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("cannot read wrk's output:\n{text}"));
    assert!(
        !text.contains("Non-2xx or 3xx responses"),
        "{url} answered errors under wrk:\n{text}"
    );
    WrkRun { requests, rate }
}

/// The load tool's own speed against wrk's, on the same core, same target.
async fn load_tool_against_wrk(out: &mut String, plan: &Plan, wrk: &Path) {
    let service = start_service("http://127.0.0.1:9", &[("OTEL_SDK_DISABLED", "true")]).await;
    let url = service.url("/healthz");
    let connections = "32";
    let seconds = plan.wrk_seconds.to_string();
    let mut wrk_rates = Vec::new();
    let mut wrk_cpu = Vec::new();
    let mut tool_rates = Vec::new();
    let mut tool_cpu = Vec::new();
    for _ in 0..plan.wrk_rounds {
        let before = children_cpu_seconds();
        let run = wrk_run(wrk, &url, connections, plan.wrk_seconds).await;
        let cpu = children_cpu_seconds() - before;
        wrk_rates.push(run.rate);
        wrk_cpu.push(cpu / run.requests * 1e6);

        let (report, cpu) = load(&[
            "--target".to_owned(),
            service.url(""),
            "--concurrency".to_owned(),
            connections.to_owned(),
            "--duration".to_owned(),
            format!("{seconds}s"),
            "--mix".to_owned(),
            "healthz=1".to_owned(),
            "--no-traceparent".to_owned(),
        ])
        .await;
        tool_rates.push(field(&report, &["achieved_rate"]));
        tool_cpu.push(cpu / field(&report, &["finished"]) * 1e6);
    }
    let wrk_rate = median(&mut wrk_rates.clone());
    let target_rate = (wrk_rate * 0.9).floor();
    let (open, _) = load(&[
        "--target".to_owned(),
        service.url(""),
        "--rps".to_owned(),
        target_rate.to_string(),
        "--connections".to_owned(),
        connections.to_owned(),
        "--duration".to_owned(),
        format!("{seconds}s"),
        "--mix".to_owned(),
        "healthz=1".to_owned(),
        "--no-traceparent".to_owned(),
    ])
    .await;
    drop(service);
    let ratio = paired_ratio(&wrk_rates, &tool_rates, false);
    let per_round: Vec<String> = wrk_rates
        .iter()
        .zip(&tool_rates)
        .map(|(wrk, tool)| format!("{:.2}", tool / wrk))
        .collect();
    let _ = writeln!(
        out,
        "### The load tool against wrk\n\n`/healthz` of the service (tracing off) on CPU {SERVICE_CPU}; the client on CPU {LOAD_CPU}, {connections} connections, {} rounds of {seconds} s, taking turns.\n",
        plan.wrk_rounds
    );
    let _ = writeln!(
        out,
        "| client | req/s (median) | client CPU per request (µs) |"
    );
    let _ = writeln!(out, "|---|---|---|");
    let _ = writeln!(
        out,
        "| wrk 4.1 (`-t1 -c{connections}`) | {wrk_rate:.0} | {:.1} |",
        median(&mut wrk_cpu)
    );
    let _ = writeln!(
        out,
        "| `somework load --concurrency {connections}` | {:.0} | {:.1} |",
        median(&mut tool_rates),
        median(&mut tool_cpu)
    );
    let _ = writeln!(
        out,
        "\nClosed loop, `somework load` / wrk, paired per round, median: **{ratio:.2}** (per round: {}). Open loop at 90% of wrk's rate ({target_rate:.0} req/s, {connections} connections): achieved {:.0} req/s, {:.0} of {:.0} requests sent more than 1 ms late, p99 {:.3} ms.\n",
        per_round.join(", "),
        field(&open, &["achieved_rate"]),
        field(&open, &["late"]),
        field(&open, &["sent"]),
        field(&open, &["all", "latency_ms", "p99"]),
    );
}

/// Instructions the service executes per request in each mode, counted by
/// callgrind: unlike CPU time, the count does not move with the load on the
/// machine, so it shows changes of a few per cent that the CPU figures of a
/// busy machine hide. The service runs under valgrind; the counters are
/// zeroed after a warm-up and dumped once the load tool has sent `requests`
/// requests and the batch export thread has exported their spans.
async fn instructions(
    out: &mut String,
    collector: &Collector,
    requests: u32,
    settings: &[(String, String)],
) {
    // `OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf` among the settings sends
    // the spans to the collector's OTLP/HTTP receiver instead.
    let endpoint = if settings
        .iter()
        .any(|(key, value)| key == "OTEL_EXPORTER_OTLP_PROTOCOL" && value == "http/protobuf")
    {
        collector.otlp_http_endpoint()
    } else {
        collector.otlp_grpc_endpoint()
    };
    // Exports happen while counting, not at shutdown: every 200 ms unless
    // the settings say otherwise. The waits below cover two schedules.
    let schedule_ms: u64 = settings
        .iter()
        .find(|(key, _)| key == "OTEL_BSP_SCHEDULE_DELAY")
        .map_or(200, |(_, value)| {
            value
                .parse()
                .expect("OTEL_BSP_SCHEDULE_DELAY in milliseconds")
        });
    // Kept after the run, beside the binary, for `callgrind_annotate`.
    let dir = Path::new(BINARY)
        .parent()
        .expect("the binary is in a directory")
        .join("callgrind");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("callgrind output directory");
    let runs: Vec<(Subject, usize)> = (0..MODES.len())
        .map(|i| (Subject::Somework, i))
        .chain(REFERENCE_RUNS)
        .chain(INSTRUCTION_PEER_RUNS)
        .collect();
    let mut per_request = Vec::new();
    let mut spans_in_window = Vec::new();
    for &(subject, i) in &runs {
        let mode = &MODES[i];
        let dump = format!("{}-{i}.out", subject.slug());
        let out_file = dir.join(&dump);
        let out_arg = format!("--callgrind-out-file={}", out_file.display());
        let mut builder = ServiceBuilder::new(subject.binary())
            .wrapped_in(&["valgrind", "--tool=callgrind", &out_arg])
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
            .env("OTEL_BSP_SCHEDULE_DELAY", schedule_ms.to_string())
            .env("TOKIO_WORKER_THREADS", "1")
            .remove_env("OTEL_TRACES_SAMPLER");
        for (key, value) in mode.env.iter().chain(subject.env()) {
            builder = builder.env(key, *value);
        }
        for (key, value) in settings {
            builder = builder.env(key, value.as_str());
        }
        let service = builder.start().await;
        let pid = service.pid().to_string();
        // Warm-up: connections, allocator, lazily built state.
        load(&[
            "--target".to_owned(),
            service.url(""),
            "--requests".to_owned(),
            "50".to_owned(),
            "--rps".to_owned(),
            "100".to_owned(),
            "--mix".to_owned(),
            "somework=1".to_owned(),
            "--no-traceparent".to_owned(),
        ])
        .await;
        let control = |args: &[&str]| {
            let status = std::process::Command::new("callgrind_control")
                .args(args)
                .arg(&pid)
                .stdout(Stdio::null())
                .status()
                .expect("callgrind_control");
            assert!(status.success(), "callgrind_control {args:?} failed");
        };
        // The warm-up's spans are exported before counting starts: without
        // this wait about 200 of them were exported inside the window and
        // counted against the measured requests.
        let received_before = exports_settled(collector, schedule_ms).await;
        control(&["--zero"]);
        let (report, _) = load(&[
            "--target".to_owned(),
            service.url(""),
            "--requests".to_owned(),
            requests.to_string(),
            "--rps".to_owned(),
            "100".to_owned(),
            "--connections".to_owned(),
            "4".to_owned(),
            "--mix".to_owned(),
            "somework=1".to_owned(),
            "--no-traceparent".to_owned(),
        ])
        .await;
        assert_eq!(
            field(&report, &["all", "status", "2xx"]),
            f64::from(requests)
        );
        // Until the last spans are exported and counted.
        exports_settled(collector, schedule_ms).await;
        control(&["--dump"]);
        drop(service);
        let received = spans_received(collector).await - received_before;
        // A count is only worth reading if the export it counts happened:
        // with every trace sampled, exactly the measured requests' spans.
        if i == 2 && subject != Subject::ReferenceNoExport {
            assert_eq!(
                received,
                f64::from(4 * requests),
                "{} ({}): the collector did not receive the measured requests' spans in the counting window",
                subject.slug(),
                mode.name
            );
        }
        spans_in_window.push(received);
        let totals: f64 = std::fs::read_dir(&dir)
            .expect("callgrind output")
            .filter_map(Result::ok)
            .filter(|entry| entry.file_name().to_string_lossy().starts_with(&dump))
            .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
            .filter_map(|text| {
                text.lines()
                    .find_map(|line| {
                        line.strip_prefix("summary:")
                            .or(line.strip_prefix("totals:"))
                    })
                    .and_then(|value| value.trim().parse::<f64>().ok())
            })
            .sum();
        per_request.push(totals / f64::from(requests));
    }
    eprintln!("callgrind dumps: {}", dir.display());
    let count = |subject: Subject, mode: usize| {
        runs.iter()
            .position(|run| *run == (subject, mode))
            .map(|i| per_request[i])
    };
    let settings_note = if settings.is_empty() {
        String::new()
    } else {
        format!(
            " Settings for every run: {}.",
            settings
                .iter()
                .map(|(key, value)| format!("`{key}={value}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let _ = writeln!(
        out,
        "### Instructions per request (callgrind)\n\n`/somework`, {requests} requests at 100 req/s after a warm-up, one Tokio worker, batch export every {schedule_ms} ms. The count starts once the warm-up's spans are exported and ends once the measured requests' spans are, so exactly their export is counted. Beside the service, issue 9's reference (`examples/reference.rs`: a plain axum handler with the same spans, events and attributes, instrumented as opentelemetry-rust's examples do it), and the reference with its batches dropped in-process instead of exported.{settings_note}\n"
    );
    let _ = writeln!(
        out,
        "| mode | somework | reference | reference, no export | off / mode, somework | off / mode, reference | off / mode, reference, no export | somework − reference |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    let number = |value: Option<f64>| value.map_or("–".to_owned(), |v| format!("{v:.0}"));
    let ratio = |off: Option<f64>, on: Option<f64>| match (off, on) {
        (Some(off), Some(on)) => format!("{:.2}", off / on),
        _ => "–".to_owned(),
    };
    for (i, mode) in MODES.iter().enumerate() {
        let somework = count(Subject::Somework, i);
        let reference = count(Subject::Reference, i);
        // Tracing off exports nothing: the reference without export is the
        // reference itself.
        let no_export = count(Subject::ReferenceNoExport, i).or(reference.filter(|_| i == 0));
        let reference_off = count(Subject::Reference, 0);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            mode.name,
            number(somework),
            number(reference),
            number(no_export),
            ratio(count(Subject::Somework, 0), somework),
            ratio(reference_off, reference),
            ratio(reference_off, no_export),
            number(somework.zip(reference).map(|(s, r)| s - r)),
        );
    }
    let _ = writeln!(
        out,
        "\nThe Rust peers in the same count: plain axum {}; axum + `TraceLayer` + `tracing-opentelemetry` {} with tracing off, {} always-on. somework with tracing off / plain axum: **{}**.",
        number(count(Subject::AxumPlain, 0)),
        number(count(Subject::AxumTracing, 0)),
        number(count(Subject::AxumTracing, 2)),
        ratio(count(Subject::Somework, 0), count(Subject::AxumPlain, 0)),
    );
    let _ = writeln!(
        out,
        "\nSpans the collector received in each counting window (somework off, 10%, always-on; reference the same; reference without export 10%, always-on; plain axum; the usual Rust way off, always-on): {}.\n",
        spans_in_window
            .iter()
            .map(|count| format!("{count:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// Waits until the collector's count of accepted spans has stood still for
/// three batch schedules (at least a second), and returns it: under
/// valgrind on a busy machine an export can come seconds after its spans
/// ended, so a fixed pause is not enough.
async fn exports_settled(collector: &Collector, schedule_ms: u64) -> f64 {
    let pause = Duration::from_millis(1000.max(3 * schedule_ms));
    let mut last = spans_received(collector).await;
    for _ in 0..30 {
        tokio::time::sleep(pause).await;
        let now = spans_received(collector).await;
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("the collector's span count still moves after 30 pauses of {pause:?}")
}

/// Spans the collector has accepted so far, over both OTLP receivers, from
/// its own metrics.
async fn spans_received(collector: &Collector) -> f64 {
    collector
        .metrics()
        .await
        .lines()
        .filter(|line| line.starts_with("otelcol_receiver_accepted_spans{"))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

fn command_output(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|name| name.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    format!(
        "{} CPUs ({model}), {}, kernel {}",
        command_output("nproc", &["--all"]),
        command_output(
            "sh",
            &["-c", "free -g | awk '/Mem:/ {print $2 \" GiB RAM\"}'"]
        ),
        command_output("uname", &["-r"]),
    )
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|avg| avg.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn write_results(results: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    let section = format!("{RESULTS_START}\n{results}{RESULTS_END}");
    let updated = match (current.find(RESULTS_START), current.find(RESULTS_END)) {
        (Some(start), Some(end)) if start < end => format!(
            "{}{section}{}",
            &current[..start],
            &current[end + RESULTS_END.len()..]
        ),
        _ => format!("{current}\n{section}\n"),
    };
    std::fs::write(&path, updated).expect("cannot write BENCHMARKS.md");
    eprintln!("wrote {}", path.display());
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|arg| arg == "--quick");
    // `--only somework` (or peers, wrk, chain, instructions, memory) runs one section, e.g. to
    // measure one change quickly.
    let only = args
        .iter()
        .position(|arg| arg == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    let runs = |section: &str| only.as_deref().is_none_or(|only| only == section);
    // `--set KEY=VALUE` (repeatable): an environment setting for every
    // program the instruction count runs, to measure one setting at a time
    // (say `OTEL_BSP_MAX_EXPORT_BATCH_SIZE=128`).
    let settings: Vec<(String, String)> = args
        .windows(2)
        .filter(|pair| pair[0] == "--set")
        .map(|pair| {
            pair[1]
                .split_once('=')
                .map(|(key, value)| (key.to_owned(), value.to_owned()))
                .unwrap_or_else(|| panic!("--set takes KEY=VALUE, not {:?}", pair[1]))
        })
        .collect();
    let plan = Plan::new(quick);
    let collector_bin = collector::binary().expect(
        "no collector: run scripts/build-collector.sh or set SOMEWORK_TOOLS_DIR (make bench does)",
    );
    let wrk = std::env::var_os("WRK")
        .map(PathBuf::from)
        .expect("WRK is not set: run the benchmark with make bench (scripts/bench.sh unpacks wrk)");

    let started = command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let load_before = load_average();
    let mut out = String::new();

    let mut collector = CollectorBuilder::new(&collector_bin, "local")
        .set("exporters.debug.verbosity", "basic")
        .start()
        .await;
    let collector_pid = collector.pid().expect("the collector runs").to_string();
    let pinned = std::process::Command::new("taskset")
        .args(["-a", "-cp", LOAD_CPU, &collector_pid])
        .stdout(Stdio::null())
        .status()
        .expect("taskset");
    assert!(
        pinned.success(),
        "cannot pin the collector to CPU {LOAD_CPU}"
    );

    if runs("peers") {
        peers(&mut out, &plan, &collector, &wrk).await;
    }
    if runs("wrk") {
        load_tool_against_wrk(&mut out, &plan, &wrk).await;
    }

    let somework = |rate: u32, mix: &str| {
        vec![
            "--rps".to_owned(),
            rate.to_string(),
            "--mix".to_owned(),
            mix.to_owned(),
            "--hops".to_owned(),
            "3".to_owned(),
            "--connections".to_owned(),
            "16".to_owned(),
            "--no-traceparent".to_owned(),
        ]
    };
    if runs("somework") {
        overhead(
            &mut out,
            &plan,
            &collector,
            &format!(
                "`/somework`, open loop at {} req/s, {} rounds of {} s",
                plan.rate, plan.rounds, plan.seconds
            ),
            "request",
            &somework(plan.rate, "somework=1"),
            true,
        )
        .await;
    }
    if runs("chain") {
        overhead(
        &mut out,
        &plan,
        &collector,
        &format!(
            "`/chain?hops=3` (four requests to the same service per call), open loop at {} calls/s, {} rounds of {} s",
            plan.chain_rate, plan.rounds, plan.seconds
        ),
        "call",
        &somework(plan.chain_rate, "chain=1"),
        false,
    )
    .await;
    }
    if runs("instructions") {
        instructions(
            &mut out,
            &collector,
            if quick { 300 } else { 1000 },
            &settings,
        )
        .await;
    }
    if runs("memory") {
        memory_with_collector_down(&mut out, &plan).await;
    }
    collector.stop().await;

    let header = format!(
        "## Latest run\n\n- Date: {started}\n- Machine: {}\n- Command: `make bench`{}{}\n- Load average (1, 5, 15 min) at the start: {load_before}; at the end: {}\n\n",
        machine(),
        if quick { " (`--quick`)" } else { "" },
        only.map(|only| format!(" (`--only {only}`)"))
            .unwrap_or_default(),
        load_average()
    );
    let results = format!("{header}{out}");
    println!("{results}");
    write_results(&results);
}
