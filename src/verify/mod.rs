//! `somework verify`: proves, against a live cluster, that the workloads
//! run, that spans leave the collector, and that traces and errors reach
//! their backends.
//!
//! The seams: [`cluster`] (client, errors, workload checks), [`forward`]
//! (HTTP through the API server's port-forward), [`traffic`] (requests with
//! our own trace ids), [`metrics`] (the collector's counters), [`red`]
//! (RED per endpoint from the collector's span metrics), [`backends`]
//! (Jaeger, Bugsink, Sentry) and [`report`] (table and JSON).
//! Built only with the `verify` feature: the service image leaves it out.

pub mod backends;
pub mod cluster;
pub mod forward;
pub mod metrics;
pub mod red;
pub mod report;
pub mod traffic;

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use self::cluster::{CONNECT_TIMEOUT, Cluster, ClusterError, Workload, WorkloadState};
use self::forward::Forward;
use self::report::{Check, Report, TraceRef};
use self::traffic::{BACKEND, ENDPOINTS, FRONTEND, Sent};

/// The collector chart's Deployment and Service name (`fullnameOverride`).
const COLLECTOR: &str = "otel-collector";
/// The demo-backends chart's Deployments and Services.
const JAEGER: &str = "jaeger";
const BUGSINK: &str = "bugsink";

/// How long the receivers and exporters get to take in and send our spans:
/// the service's batch delay (5 s) plus the collector's (1 s), with room.
const FLUSH_WAIT: Duration = Duration::from_secs(20);
/// How long the span metrics get to count our requests after that: the
/// connector flushes every 5 s, and shows a new series first at 0.
const RED_WAIT: Duration = Duration::from_secs(15);
/// How long Jaeger, Bugsink and Sentry get to show everything.
const BACKEND_WAIT: Duration = Duration::from_secs(30);
/// One request to the frontend (it sleeps on purpose; /chain makes hops).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Kept free at the end of `--timeout` to print the report.
const REPORT_RESERVE: Duration = Duration::from_secs(2);
/// Lines of the collector's log quoted for a failing exporter.
const EXPORTER_LOG_LINES: usize = 3;

/// Check that the demo runs and that traces and errors arrive.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
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
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

fn parse_duration(value: &str) -> Result<Duration, String> {
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{value:?} is not a duration like 90s, 2m or 1500ms"))?;
    let duration = match unit {
        "ms" => Duration::from_millis(number),
        "s" | "" => Duration::from_secs(number),
        "m" => Duration::from_secs(number * 60),
        _ => {
            return Err(format!(
                "{value:?} is not a duration like 90s, 2m or 1500ms"
            ));
        }
    };
    if duration.is_zero() {
        return Err("the timeout must be longer than 0".to_owned());
    }
    Ok(duration)
}

/// Runs `verify` on a runtime of its own and prints the report; exit 0 only
/// when every check passed.
pub fn run(args: VerifyArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fatal(&args, &format!("cannot start the Tokio runtime: {error}")),
    };
    let step = Step::default();
    let outcome =
        runtime.block_on(async { tokio::time::timeout(args.timeout, verify(&args, &step)).await });
    // Port-forward tasks still draining must not hold the exit up.
    runtime.shutdown_timeout(Duration::from_millis(200));
    match outcome {
        Ok(Ok(report)) => {
            if args.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(json) => println!("{json}"),
                    Err(error) => return fatal(&args, &format!("cannot write the JSON: {error}")),
                }
            } else {
                print!("{}", report.render());
            }
            if report.passed {
                ExitCode::SUCCESS
            } else {
                if args.json {
                    for check in report.failures() {
                        eprintln!("verify: FAIL {}: {}", check.name, check.seen);
                    }
                }
                ExitCode::FAILURE
            }
        }
        Ok(Err(error)) => fatal(&args, &error.to_string()),
        Err(_) => fatal(
            &args,
            &format!(
                "gave up after --timeout {:?} while {}",
                args.timeout,
                step.current()
            ),
        ),
    }
}

/// The one line for a run that could not check anything.
fn fatal(args: &VerifyArgs, line: &str) -> ExitCode {
    eprintln!("verify: {line}");
    if args.json {
        println!("{}", serde_json::json!({ "passed": false, "error": line }));
    }
    ExitCode::FAILURE
}

/// What `verify` is doing now, for the timeout message, and as progress
/// lines when stderr is a terminal (logs and scripts get only the result).
#[derive(Clone, Default)]
struct Step(Arc<Mutex<String>>);

impl Step {
    fn set(&self, doing: impl Into<String>) {
        let doing = doing.into();
        if std::io::stderr().is_terminal() {
            eprintln!("verify: {doing}...");
        }
        if let Ok(mut current) = self.0.lock() {
            *current = doing;
        }
    }

    fn current(&self) -> String {
        self.0
            .lock()
            .map(|current| current.clone())
            .unwrap_or_default()
    }
}

async fn verify(args: &VerifyArgs, step: &Step) -> Result<Report, ClusterError> {
    let started = Instant::now();
    let deadline = started + args.timeout.saturating_sub(REPORT_RESERVE);
    let app = args.app_namespace.as_str();
    let obs = args.collector_namespace.as_str();

    step.set("connecting to the Kubernetes API server");
    // Two timers ending together would race for the message: a hung server
    // is named after CONNECT_TIMEOUT only when --timeout is well past it.
    let connect_timeout = (args.timeout >= 2 * CONNECT_TIMEOUT).then_some(CONNECT_TIMEOUT);
    let cluster = Cluster::connect(args.context.as_deref(), connect_timeout).await?;

    step.set("checking the Deployments");
    let (collector, jaeger, bugsink, frontend, backend) = tokio::join!(
        cluster::check_workload(&cluster, workload(obs, COLLECTOR, "otel-collector")),
        cluster::check_workload(&cluster, workload(obs, JAEGER, "demo-backends")),
        cluster::check_workload(&cluster, workload(obs, BUGSINK, "demo-backends")),
        cluster::check_workload(&cluster, workload(app, FRONTEND, "somework")),
        cluster::check_workload(&cluster, workload(app, BACKEND, "somework")),
    );
    let (collector, jaeger, bugsink) = (collector?, jaeger?, bugsink?);
    let (frontend, backend) = (frontend?, backend?);
    let mut checks = Vec::new();
    for state in [&collector, &frontend, &backend] {
        checks.push(state.check.clone());
    }
    for state in [&jaeger, &bugsink] {
        if state.exists {
            checks.push(state.check.clone());
        }
    }

    let mut report = Report {
        passed: false,
        context: args.context.clone(),
        api_server: cluster.url.clone(),
        elapsed_ms: 0,
        checks,
        traces: Vec::new(),
        collector: None,
        red: None,
        hints: Vec::new(),
    };
    run_traffic_and_backends(
        &cluster,
        args,
        step,
        deadline,
        &mut report,
        Workloads {
            collector: &collector,
            jaeger: &jaeger,
            bugsink: &bugsink,
            frontend: &frontend,
        },
    )
    .await?;
    report.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let passed = report.failures().next().is_none();
    report.passed = passed;
    Ok(report)
}

fn workload<'a>(namespace: &'a str, name: &'static str, release: &'static str) -> Workload<'a> {
    Workload {
        namespace,
        name,
        release,
    }
}

struct Workloads<'a> {
    collector: &'a WorkloadState,
    jaeger: &'a WorkloadState,
    bugsink: &'a WorkloadState,
    frontend: &'a WorkloadState,
}

/// A port-forward to `service`'s `port_name`, proved by a GET of `probe`,
/// and the check that says how that went.
async fn open_forward(
    cluster: &Cluster,
    namespace: &str,
    service: &str,
    port_name: &str,
    probe: &str,
) -> (Option<Forward>, Check) {
    let name = format!("port-forward {namespace}/{service}:{port_name}");
    let expected = format!("GET {probe} answers 200");
    let forward = match Forward::to_service(cluster, namespace, service, port_name).await {
        Ok(forward) => forward,
        Err(error) => return (None, Check::fail(name, expected, error.to_string())),
    };
    match forward.get(probe, &[], REQUEST_TIMEOUT).await {
        Ok(reply) if reply.status == 200 => {
            let seen = format!("200 from pod {}", forward.pod());
            (Some(forward), Check::pass(name, expected, seen))
        }
        Ok(reply) => {
            let seen = format!("{} answered {}", forward.target, reply.status);
            (None, Check::fail(name, expected, seen))
        }
        Err(error) => (None, Check::fail(name, expected, error.to_string())),
    }
}

/// [`open_forward`] for a workload that may be missing: nothing when it is
/// not available, and its check in the report otherwise.
async fn open_optional_forward(
    cluster: &Cluster,
    report: &mut Report,
    workload: &WorkloadState,
    namespace: &str,
    (service, port_name, probe): (&str, &str, &str),
) -> Option<Forward> {
    if !workload.available {
        return None;
    }
    let (forward, check) = open_forward(cluster, namespace, service, port_name, probe).await;
    report.checks.push(check);
    forward
}

async fn run_traffic_and_backends(
    cluster: &Cluster,
    args: &VerifyArgs,
    step: &Step,
    deadline: Instant,
    report: &mut Report,
    workloads: Workloads<'_>,
) -> Result<(), ClusterError> {
    let obs = args.collector_namespace.as_str();
    let skip_all = |report: &mut Report, because: &str| {
        for name in ["traffic", "collector counters", "backends"] {
            report
                .checks
                .push(Check::skip(name.to_owned(), "", because));
        }
    };
    if !workloads.frontend.available {
        skip_all(report, "the frontend is not available");
        return Ok(());
    }
    step.set("opening port-forwards through the API server");
    let (frontend, check) =
        open_forward(cluster, &args.app_namespace, FRONTEND, "http", "/readyz").await;
    let forbidden = check.seen.starts_with("forbidden");
    report.checks.push(check);
    let Some(frontend) = frontend else {
        if forbidden {
            // The same refusal would hit every other forward.
            skip_all(report, "port-forwards are forbidden");
        } else {
            skip_all(report, "no port-forward to the frontend");
        }
        return Ok(());
    };
    let collector_port = (COLLECTOR, "metrics", "/metrics");
    let collector =
        open_optional_forward(cluster, report, workloads.collector, obs, collector_port).await;
    let jaeger_port = (JAEGER, "ui", "/api/services");
    let jaeger = open_optional_forward(cluster, report, workloads.jaeger, obs, jaeger_port).await;
    let bugsink_port = (BUGSINK, "http", "/health/ready");
    let bugsink =
        open_optional_forward(cluster, report, workloads.bugsink, obs, bugsink_port).await;
    let span_metrics_port = (COLLECTOR, "metrics-red", "/metrics");
    let red_forward =
        open_optional_forward(cluster, report, workloads.collector, obs, span_metrics_port).await;

    let before = match &collector {
        Some(collector) => {
            step.set("reading the collector's metrics");
            match metrics::read(collector).await {
                Ok(before) => Some(before),
                Err(problem) => {
                    report.checks.push(Check::fail(
                        "collector metrics".to_owned(),
                        "Prometheus text on :8888/metrics",
                        problem,
                    ));
                    None
                }
            }
        }
        None => None,
    };

    let red_before = match &red_forward {
        Some(forward) => match red::read(forward).await {
            Ok(before) => Some((before, Instant::now())),
            Err(problem) => {
                report.checks.push(Check::fail(
                    "span metrics".to_owned(),
                    "Prometheus text on :8889/metrics",
                    problem,
                ));
                None
            }
        },
        None => None,
    };

    step.set(format!(
        "sending {} requests each to {}",
        args.requests,
        ENDPOINTS.map(|endpoint| endpoint.path).join(", ")
    ));
    let sent = traffic::send(&frontend, args.requests, REQUEST_TIMEOUT).await;
    report.checks.extend(traffic::checks(&sent));
    let answered: Vec<Sent> = sent
        .iter()
        .filter(|request| request.status.is_some())
        .cloned()
        .collect();

    let min_spans: usize = answered
        .iter()
        .map(|request| {
            let shape = &request.endpoint.shape;
            shape.span_names.len().max(shape.server_spans)
        })
        .sum();
    let collector_delta = match (&collector, &before) {
        (Some(collector), Some(before)) => {
            step.set("waiting for the collector to export the spans");
            let flush_deadline = deadline.min(Instant::now() + FLUSH_WAIT);
            let waited_from = Instant::now();
            match metrics::wait_for_flush(collector, before, min_spans as f64, flush_deadline).await
            {
                Ok(delta) => {
                    let mut rows = metrics::checks(&delta, min_spans as f64, waited_from.elapsed());
                    for row in rows
                        .iter_mut()
                        .filter(|row| row.outcome == report::Outcome::Fail)
                    {
                        if let Some(exporter) = row.name.strip_prefix("collector exporter ") {
                            row.details = cluster::exporter_failures(
                                collector.pods(),
                                collector.pod(),
                                exporter,
                                EXPORTER_LOG_LINES,
                            )
                            .await;
                        }
                    }
                    report.checks.extend(rows);
                    Some(delta)
                }
                Err(problem) => {
                    report.checks.push(Check::fail(
                        "collector counters".to_owned(),
                        "Prometheus text on :8888/metrics",
                        problem,
                    ));
                    None
                }
            }
        }
        _ => {
            report.checks.push(Check::skip(
                "collector counters".to_owned(),
                "",
                "the collector's metrics cannot be read",
            ));
            None
        }
    };
    let collector_ok = collector_delta.is_some();
    report.collector = collector_delta;

    match (&red_forward, &red_before) {
        (Some(forward), Some((before, read_at))) => {
            step.set("waiting for the span metrics to count the requests");
            let red_deadline = deadline.min(Instant::now() + RED_WAIT);
            report.red =
                Some(read_red(report, forward, before, *read_at, &sent, red_deadline).await);
        }
        _ => report.checks.push(Check::skip(
            "RED per endpoint".to_owned(),
            "",
            "the span metrics cannot be read",
        )),
    }

    let backend_deadline = deadline.min(Instant::now() + BACKEND_WAIT);
    let mut bugsink_events = std::collections::HashMap::new();
    if let Some(jaeger) = &jaeger {
        if collector_ok {
            step.set("looking the traces up in Jaeger");
            report
                .checks
                .extend(backends::check_jaeger(jaeger, &answered, backend_deadline).await);
        } else {
            report.checks.push(Check::skip(
                "Jaeger: traces".to_owned(),
                "",
                "the collector is not working",
            ));
        }
    }
    if let Some(bugsink) = &bugsink {
        step.set("looking the errors up in Bugsink");
        let access = cluster.access("create", "pods/exec", obs);
        match backends::bugsink_token(bugsink.pods(), bugsink.pod(), access, &cluster.url).await {
            Ok(token) => {
                let (check, found) =
                    backends::check_bugsink(bugsink, &token, &answered, backend_deadline).await;
                report.checks.push(check);
                bugsink_events = found;
            }
            Err(error) => report.checks.push(Check::fail(
                "Bugsink: errors of /errorwork".to_owned(),
                "an API token from bugsink-manage",
                error.to_string(),
            )),
        }
    }
    let sentry = backends::SentryApi::from_env();
    if let Some(sentry) = &sentry {
        step.set("looking the errors up through Sentry's events API");
        report
            .checks
            .push(sentry.check(&answered, backend_deadline).await);
    }

    if jaeger.is_some() {
        report.hints.push(format!(
            "Jaeger: kubectl -n {obs} port-forward service/{JAEGER} 16686:16686"
        ));
    }
    if !bugsink_events.is_empty() {
        report.hints.push(format!(
            "Bugsink: kubectl -n {obs} port-forward service/{BUGSINK} 8000:8000"
        ));
    }
    report.traces = sent
        .iter()
        .map(|request| {
            let mut open = Vec::new();
            if jaeger.is_some() {
                open.push(format!("http://localhost:16686/trace/{}", request.trace_id));
            }
            if let Some(found) = bugsink_events.get(&request.trace_id) {
                open.push(format!(
                    "http://localhost:8000/issues/issue/{}/event/{}/",
                    found.issue, found.event
                ));
            }
            if let Some(sentry) = &sentry {
                open.push(format!(
                    "{}/organizations/{}/issues/?query=trace:{}",
                    sentry.url.trim_end_matches('/'),
                    sentry.org,
                    request.trace_id
                ));
            }
            TraceRef {
                request: request.endpoint.path.to_owned(),
                trace_id: request.trace_id.clone(),
                status: request.status,
                open,
            }
        })
        .collect();
    Ok(())
}

/// Requests answered and answered with a 5xx, of one endpoint.
fn answered_and_failed(sent: &[Sent], path: &str) -> (usize, usize) {
    let ours = sent
        .iter()
        .filter(|request| request.endpoint.path == path)
        .filter_map(|request| request.status);
    ours.fold((0, 0), |(answered, failed), status| {
        (answered + 1, failed + usize::from(status >= 500))
    })
}

/// Waits until the span metrics count every answered request of each
/// endpoint and its failures; one row per endpoint, and the RED section.
async fn read_red(
    report: &mut Report,
    forward: &Forward,
    before: &red::SpanMetrics,
    read_at: Instant,
    sent: &[Sent],
    deadline: Instant,
) -> red::RedReport {
    let counted = |delta: &red::SpanMetrics| {
        ENDPOINTS.iter().all(|endpoint| {
            let (answered, failed) = answered_and_failed(sent, endpoint.path);
            red::EndpointRed::from_delta(delta, FRONTEND, endpoint.path, read_at.elapsed())
                .counted(answered, failed)
        })
    };
    let delta = red::wait_for(forward, before, counted, deadline).await;
    let window = read_at.elapsed();
    let delta = match delta {
        Ok(delta) => delta,
        Err(problem) => {
            report.checks.push(Check::fail(
                "span metrics".to_owned(),
                "Prometheus text on :8889/metrics",
                problem,
            ));
            red::SpanMetrics::default()
        }
    };
    let endpoints: Vec<red::EndpointRed> = ENDPOINTS
        .iter()
        .map(|endpoint| red::EndpointRed::from_delta(&delta, FRONTEND, endpoint.path, window))
        .collect();
    for endpoint in &endpoints {
        let (answered, failed) = answered_and_failed(sent, &endpoint.endpoint);
        report.checks.push(endpoint.check(answered, failed));
    }
    red::RedReport {
        window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
        endpoints,
    }
}
