//! `somework verify` against a cluster: the Deployments, then traffic
//! through the API server's port-forwards, the collector's counters and
//! span metrics, and the traces and errors in Jaeger, Bugsink and Sentry.

use std::collections::HashMap;
use std::time::Duration;

use kube::api::LogParams;
use tokio::time::Instant;

use super::args::VerifyArgs;
use super::backends::bugsink::{self, FoundEvent};
use super::backends::jaeger;
use super::backends::sentry::SentryApi;
use super::check::{Check, TraceRef};
use super::cluster::{CONNECT_TIMEOUT, Cluster, ClusterError};
use super::collector_log;
use super::forward::Forward;
use super::http::Get;
use super::progress::Step;
use super::red::{EndpointRed, RedReport, SpanMetrics};
use super::report::Report;
use super::scrape;
use super::sentry_delivery;
use super::steps::{self, REQUEST_TIMEOUT};
use super::traffic::{BACKEND, ENDPOINTS, FRONTEND, Sent};
use super::workload::{self, Workload, WorkloadState};

/// The collector chart's Deployment and Service name (`fullnameOverride`).
const COLLECTOR: &str = "otel-collector";
/// The demo-backends chart's Deployments and Services.
const JAEGER: &str = "jaeger";
const BUGSINK: &str = "bugsink";
/// How long the span metrics get to count our requests after the flush:
/// the connector flushes every 5 s, and shows a new series first at 0.
const RED_WAIT: Duration = Duration::from_secs(15);
/// The span metrics page, as the rows name it.
const SPAN_METRICS: &str = "Prometheus text on :8889/metrics";

/// The Deployments `verify` looks at.
struct Workloads {
    collector: WorkloadState,
    jaeger: WorkloadState,
    bugsink: WorkloadState,
    frontend: WorkloadState,
    backend: WorkloadState,
}

/// The port-forwards the traffic and the look-ups go through.
struct Forwards {
    frontend: Forward,
    collector: Option<Forward>,
    span_metrics: Option<Forward>,
    jaeger: Option<Forward>,
    bugsink: Option<Forward>,
}

pub async fn verify(args: &VerifyArgs, step: &Step) -> Result<Report, ClusterError> {
    let (started, deadline) = steps::deadline(args.timeout);
    step.set("connecting to the Kubernetes API server");
    // Two timers ending together would race for the message: a hung server
    // is named after CONNECT_TIMEOUT only when --timeout is well past it.
    let connect_timeout = (args.timeout >= 2 * CONNECT_TIMEOUT).then_some(CONNECT_TIMEOUT);
    let cluster = Cluster::connect(args.context.as_deref(), connect_timeout).await?;
    let mut report = Report {
        context: args.context.clone(),
        api_server: cluster.url.clone(),
        ..Report::default()
    };
    step.set("checking the Deployments");
    let workloads = check_workloads(&cluster, args, &mut report).await?;
    if let Some(forwards) = open_forwards(&cluster, args, step, &workloads, &mut report).await {
        exercise(&cluster, args, (step, deadline), &forwards, &mut report).await;
    }
    step.set("reading the services' Sentry delivery counts from their logs");
    for (service, state) in [
        (FRONTEND, &workloads.frontend),
        (BACKEND, &workloads.backend),
    ] {
        if state.exists {
            let check =
                sentry_delivery::check_pods(&cluster, &args.app_namespace, service, state).await;
            report.checks.push(check);
        }
    }
    Ok(steps::finish(report, started))
}

async fn check_workloads(
    cluster: &Cluster,
    args: &VerifyArgs,
    report: &mut Report,
) -> Result<Workloads, ClusterError> {
    let app = args.app_namespace.as_str();
    let obs = args.collector_namespace.as_str();
    let (collector, jaeger, bugsink, frontend, backend) = tokio::join!(
        workload::check_workload(cluster, deployment(obs, COLLECTOR, "otel-collector")),
        workload::check_workload(cluster, deployment(obs, JAEGER, "demo-backends")),
        workload::check_workload(cluster, deployment(obs, BUGSINK, "demo-backends")),
        workload::check_workload(cluster, deployment(app, FRONTEND, "somework")),
        workload::check_workload(cluster, deployment(app, BACKEND, "somework")),
    );
    let workloads = Workloads {
        collector: collector?,
        jaeger: jaeger?,
        bugsink: bugsink?,
        frontend: frontend?,
        backend: backend?,
    };
    for state in [
        &workloads.collector,
        &workloads.frontend,
        &workloads.backend,
    ] {
        report.checks.push(state.check.clone());
    }
    // Jaeger and Bugsink are optional: a pipeline to Sentry runs without them.
    for state in [&workloads.jaeger, &workloads.bugsink] {
        if state.exists {
            report.checks.push(state.check.clone());
        }
    }
    Ok(workloads)
}

/// The Deployment `name` in `namespace`, which the chart `release` installs.
fn deployment<'a>(namespace: &'a str, name: &'static str, release: &'static str) -> Workload<'a> {
    Workload {
        namespace,
        name,
        release,
    }
}

/// The rows of everything after the Deployments, skipped.
fn skip_the_rest(report: &mut Report, because: &str) {
    for name in ["traffic", "collector counters", "backends"] {
        report
            .checks
            .push(Check::skip(name.to_owned(), "", because));
    }
}

/// The port-forwards to the frontend and to each available backend, each
/// with its row; `None` (the rest skipped) without one to the frontend.
async fn open_forwards(
    cluster: &Cluster,
    args: &VerifyArgs,
    step: &Step,
    workloads: &Workloads,
    report: &mut Report,
) -> Option<Forwards> {
    if !workloads.frontend.available {
        skip_the_rest(report, "the frontend is not available");
        return None;
    }
    step.set("opening port-forwards through the API server");
    let app = args.app_namespace.as_str();
    let (frontend, check) = open_forward(cluster, app, (FRONTEND, "http", "/readyz")).await;
    report.checks.push(check);
    let frontend = match frontend {
        Ok(frontend) => frontend,
        Err(Refused::Forbidden) => {
            // The same refusal would hit every other forward.
            skip_the_rest(report, "port-forwards are forbidden");
            return None;
        }
        Err(Refused::Other) => {
            skip_the_rest(report, "no port-forward to the frontend");
            return None;
        }
    };
    let obs = args.collector_namespace.as_str();
    let mut optional = async |workload: &WorkloadState, port| {
        if !workload.available {
            return None;
        }
        let (forward, check) = open_forward(cluster, obs, port).await;
        report.checks.push(check);
        forward.ok()
    };
    let collector = optional(&workloads.collector, (COLLECTOR, "metrics", "/metrics")).await;
    let jaeger = optional(&workloads.jaeger, (JAEGER, "ui", "/api/services")).await;
    let bugsink = optional(&workloads.bugsink, (BUGSINK, "http", "/health/ready")).await;
    let red_port = (COLLECTOR, "metrics-red", "/metrics");
    let span_metrics = optional(&workloads.collector, red_port).await;
    Some(Forwards {
        frontend,
        collector,
        span_metrics,
        jaeger,
        bugsink,
    })
}

/// Why a port-forward could not be opened, as far as the next ones care.
enum Refused {
    /// RBAC refused it: every other forward would be refused too.
    Forbidden,
    Other,
}

/// A port-forward to `service`'s `port_name`, proved by a GET of `probe`,
/// and the check that says how that went.
async fn open_forward(
    cluster: &Cluster,
    namespace: &str,
    (service, port_name, probe): (&str, &str, &str),
) -> (Result<Forward, Refused>, Check) {
    let name = format!("port-forward {namespace}/{service}:{port_name}");
    let expected = format!("GET {probe} answers 200");
    let refused = |forbidden: bool| {
        if forbidden {
            Refused::Forbidden
        } else {
            Refused::Other
        }
    };
    let forward = match Forward::to_service(cluster, namespace, service, port_name).await {
        Ok(forward) => forward,
        Err(error) => {
            let check = Check::fail(name, expected, error.to_string());
            return (Err(refused(error.is_forbidden())), check);
        }
    };
    match forward.get(probe, &[], REQUEST_TIMEOUT).await {
        Ok(reply) if reply.status == 200 => {
            let seen = format!("200 from pod {}", forward.pod());
            (Ok(forward), Check::pass(name, expected, seen))
        }
        Ok(reply) => {
            let seen = format!("{} answered {}", forward.target, reply.status);
            (Err(Refused::Other), Check::fail(name, expected, seen))
        }
        Err(error) => {
            let check = Check::fail(name, expected, error.to_string());
            (Err(refused(error.is_forbidden())), check)
        }
    }
}

/// The traffic and everything that follows it: the collector's counters
/// and span metrics, then the backends, then the links to the traces.
async fn exercise(
    cluster: &Cluster,
    args: &VerifyArgs,
    (step, deadline): (&Step, Instant),
    forwards: &Forwards,
    report: &mut Report,
) {
    let collector_before = match &forwards.collector {
        Some(collector) => steps::read_collector_before(collector, step, report).await,
        None => None,
    };
    let red_before = match &forwards.span_metrics {
        Some(forward) => {
            steps::read_before::<SpanMetrics>(forward, "span metrics", SPAN_METRICS, report)
                .await
                .map(|before| (before, Instant::now()))
        }
        None => None,
    };
    let sent = steps::send_traffic(&forwards.frontend, args.requests, step, report).await;
    let answered = steps::answered(&sent);
    let collector_ok = match (&forwards.collector, &collector_before) {
        (Some(collector), Some(before)) => {
            let explain = async |exporter: &str| {
                let log = collector_pod_log(collector).await;
                collector_log::exporter_failures(&log, exporter, steps::EXPORTER_LOG_LINES)
            };
            let answered = &answered;
            steps::collector_counters(collector, before, answered, deadline, step, report, explain)
                .await
        }
        _ => {
            let because = "the collector's metrics cannot be read";
            report
                .checks
                .push(Check::skip("collector counters".to_owned(), "", because));
            false
        }
    };
    match (&forwards.span_metrics, &red_before) {
        (Some(forward), Some((before, read_at))) => {
            step.set("waiting for the span metrics to count the requests");
            let red_deadline = deadline.min(Instant::now() + RED_WAIT);
            let red = read_red(report, forward, (before, *read_at), &sent, red_deadline).await;
            report.red = Some(red);
        }
        _ => report.checks.push(Check::skip(
            "RED per endpoint".to_owned(),
            "",
            "the span metrics cannot be read",
        )),
    }
    let backend_deadline = steps::backend_deadline(deadline);
    let obs = args.collector_namespace.as_str();
    let looked_up = (forwards, answered.as_slice(), collector_ok);
    let links = look_up_backends(cluster, obs, (step, backend_deadline), looked_up, report).await;
    report.traces = links.traces(&sent);
    report.hints = links.hints(obs);
}

/// The end of the log of the collector pod behind `collector`; empty when
/// it cannot be read.
async fn collector_pod_log(collector: &Forward) -> String {
    let params = LogParams {
        tail_lines: Some(500),
        ..LogParams::default()
    };
    collector
        .pods()
        .logs(collector.pod(), &params)
        .await
        .unwrap_or_default()
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
    (before, read_at): (&SpanMetrics, Instant),
    sent: &[Sent],
    deadline: Instant,
) -> RedReport {
    let counted = |delta: &SpanMetrics| {
        ENDPOINTS.iter().all(|endpoint| {
            let (answered, failed) = answered_and_failed(sent, endpoint.path);
            EndpointRed::from_delta(delta, FRONTEND, endpoint.path, read_at.elapsed())
                .counted(answered, failed)
        })
    };
    let delta = scrape::poll(forward, before, counted, deadline).await;
    let window = read_at.elapsed();
    let delta = match delta {
        Ok(delta) => delta,
        Err(problem) => {
            let name = "span metrics".to_owned();
            let check = Check::fail(name, SPAN_METRICS, problem.to_string());
            report.checks.push(check);
            SpanMetrics::default()
        }
    };
    let endpoints: Vec<EndpointRed> = ENDPOINTS
        .iter()
        .map(|endpoint| EndpointRed::from_delta(&delta, FRONTEND, endpoint.path, window))
        .collect();
    for endpoint in &endpoints {
        let (answered, failed) = answered_and_failed(sent, &endpoint.endpoint);
        report.checks.push(endpoint.check(answered, failed));
    }
    RedReport {
        window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
        endpoints,
    }
}

/// Where the traces and errors were looked up, for the links.
#[derive(Default)]
struct Links {
    jaeger: bool,
    bugsink_events: HashMap<String, FoundEvent>,
    sentry: Option<SentryApi>,
}

impl Links {
    /// Each trace sent, with a link to it in each backend that has it.
    fn traces(&self, sent: &[Sent]) -> Vec<TraceRef> {
        sent.iter()
            .map(|request| {
                let mut open = Vec::new();
                if self.jaeger {
                    open.push(format!("http://localhost:16686/trace/{}", request.trace_id));
                }
                if let Some(found) = self.bugsink_events.get(&request.trace_id) {
                    open.push(format!(
                        "http://localhost:8000/issues/issue/{}/event/{}/",
                        found.issue, found.event
                    ));
                }
                if let Some(sentry) = &self.sentry {
                    open.push(sentry.issues_link(&request.trace_id));
                }
                TraceRef {
                    request: request.endpoint.path.to_owned(),
                    trace_id: request.trace_id.clone(),
                    status: request.status,
                    open,
                }
            })
            .collect()
    }

    /// How to open the localhost links.
    fn hints(&self, obs: &str) -> Vec<String> {
        let mut hints = Vec::new();
        if self.jaeger {
            hints.push(format!(
                "Jaeger: kubectl -n {obs} port-forward service/{JAEGER} 16686:16686"
            ));
        }
        if !self.bugsink_events.is_empty() {
            hints.push(format!(
                "Bugsink: kubectl -n {obs} port-forward service/{BUGSINK} 8000:8000"
            ));
        }
        hints
    }
}

/// Jaeger (once the collector works), Bugsink, and Sentry when its
/// credentials are set, each by `backend_deadline`.
async fn look_up_backends(
    cluster: &Cluster,
    obs: &str,
    (step, backend_deadline): (&Step, Instant),
    (forwards, answered, collector_ok): (&Forwards, &[Sent], bool),
    report: &mut Report,
) -> Links {
    let mut links = Links::default();
    if let Some(jaeger) = &forwards.jaeger {
        links.jaeger = true;
        if collector_ok {
            step.set("looking the traces up in Jaeger");
            let checks = jaeger::check_jaeger(jaeger, answered, backend_deadline).await;
            report.checks.extend(checks);
        } else {
            let because = "the collector is not working";
            let check = Check::skip("Jaeger: traces".to_owned(), "", because);
            report.checks.push(check);
        }
    }
    if let Some(bugsink) = &forwards.bugsink {
        step.set("looking the errors up in Bugsink");
        let access = cluster.access("create", "pods/exec", obs);
        match bugsink::bugsink_token(bugsink.pods(), bugsink.pod(), access, &cluster.url).await {
            Ok(token) => {
                links.bugsink_events =
                    steps::bugsink_errors(bugsink, &token, answered, backend_deadline, report)
                        .await;
            }
            Err(error) => report.checks.push(Check::fail(
                "Bugsink: errors of /errorwork".to_owned(),
                "an API token from bugsink-manage",
                error.to_string(),
            )),
        }
    }
    links.sentry = SentryApi::from_env();
    if let Some(sentry) = &links.sentry {
        step.set("looking the errors up through Sentry's events API");
        report
            .checks
            .push(sentry.check(answered, backend_deadline).await);
    }
    links
}
