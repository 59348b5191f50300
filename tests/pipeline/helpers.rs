//! The pipeline's pieces around the real binary: the real collector with a
//! Sentry API test double behind it, or a real Bugsink for the service's
//! error events, with an in-process OTLP receiver for its spans.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use serde_json::Value;
use somework::routes::catalog::{Endpoint, TraceShape};
use somework_testkit::api::SomeworkApi;
use somework_testkit::bugsink::Bugsink;
use somework_testkit::collector::{Collector, CollectorBuilder};
use somework_testkit::otlp::{self, OtlpReceiver};
use somework_testkit::sentry_double::{IngestedSpan, SentryDouble};
use somework_testkit::service::{Service, ServiceBuilder};

/// The project that the default configs map the demo's services to.
pub const PROJECT: &str = "somework-demo";
/// A project named like a service that the configs do not map.
pub const STRAY: &str = "stray-service";
/// How long spans may take through the collector to the double.
pub const WAIT: Duration = Duration::from_secs(20);

/// The catalogued trace of the endpoint whose example request is `path`
/// (such as `/somework` or `/errorwork`): the expected side, which the
/// spans the service exports are compared with.
pub fn trace_shape(path: &str) -> &'static TraceShape {
    Endpoint::ALL
        .into_iter()
        .map(Endpoint::spec)
        .find(|spec| spec.example == path)
        .and_then(|spec| spec.trace.as_ref())
        .unwrap_or_else(|| panic!("no traced endpoint in the catalogue has the example {path}"))
}

/// The span names of one request to `path` (see [`trace_shape`]).
pub fn span_names(path: &str) -> BTreeSet<String> {
    trace_shape(path)
        .span_names
        .iter()
        .map(|name| (*name).to_owned())
        .collect()
}

/// The environment the Sentry-exporting configs need, pointing at `double`.
pub fn sentry_env(double: &SentryDouble) -> Vec<(&'static str, String)> {
    vec![
        ("SENTRY_URL", double.url()),
        ("SENTRY_ORG", double.org().to_owned()),
        ("SENTRY_AUTH_TOKEN", double.token().to_owned()),
        ("SENTRY_PROJECT", PROJECT.to_owned()),
    ]
}

/// A collector running `config` that exports to `double`.
///
/// The `sentry` exporter builds each project's ingest URL from the DSN's scheme
/// and host only (sentry-go's `Dsn.GetHost()`), dropping the port: it posts to
/// `http://127.0.0.1/api/{id}/...` for the double's `http://key@127.0.0.1:PORT/id`.
/// So the test sends the exporter's HTTP client through the double as its HTTP
/// proxy (`http.proxy_url`, a standard confighttp setting), which delivers every
/// request to the double with the exact URL the exporter computed.
pub async fn sentry_collector(binary: &Path, config: &str, double: &SentryDouble) -> Collector {
    sentry_collector_builder(binary, config, double)
        .start()
        .await
}

/// The builder of [`sentry_collector`], for a test that changes more.
pub fn sentry_collector_builder(
    binary: &Path,
    config: &str,
    double: &SentryDouble,
) -> CollectorBuilder {
    let mut builder = CollectorBuilder::new(binary, config)
        .set("exporters.sentry.http.proxy_url", &double.url())
        .set("processors.batch.timeout", "200ms");
    for (key, value) in sentry_env(double) {
        builder = builder.env(key, value);
    }
    builder
}

/// The service exporting its spans to `collector` as `service_name`.
pub async fn service(collector: &Collector, service_name: &str) -> Service {
    service_builder(collector, service_name).start().await
}

/// [`service`], not started yet, for tests that set more of its environment.
pub fn service_builder(collector: &Collector, service_name: &str) -> ServiceBuilder {
    ServiceBuilder::new(env!("CARGO_BIN_EXE_somework"))
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            collector.otlp_grpc_endpoint(),
        )
        .env("OTEL_SERVICE_NAME", service_name)
}

/// GETs `path` and returns the status and the trace id the service answered with.
pub async fn request(service: &Service, path: &str) -> (u16, String) {
    let reply = service.get(path).await;
    (reply.status, reply.trace_id())
}

/// The accepted spans grouped by trace id.
pub fn by_trace(spans: &[IngestedSpan]) -> BTreeMap<String, Vec<&IngestedSpan>> {
    let mut traces: BTreeMap<String, Vec<&IngestedSpan>> = BTreeMap::new();
    for span in spans {
        traces.entry(span.span.trace_id()).or_default().push(span);
    }
    traces
}

/// The distinct span names of one trace.
pub fn names(spans: &[&IngestedSpan]) -> BTreeSet<String> {
    otlp::names(spans.iter().map(|s| &s.span))
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// True when every trace in `wanted` arrived with all its spans.
pub fn complete(spans: &[IngestedSpan], wanted: &[(String, &str)]) -> bool {
    let traces = by_trace(spans);
    wanted.iter().all(|(trace_id, route)| {
        traces
            .get(trace_id)
            .is_some_and(|t| names(t) == span_names(route))
    })
}

/// Asserts that each trace arrived whole, once, at `project` with its key, and that
/// the traces of a failing endpoint (`/errorwork`) kept their Error status.
pub fn assert_delivered(
    spans: &[IngestedSpan],
    wanted: &[(String, &str)],
    project_id: u64,
    key: &str,
) {
    let traces = by_trace(spans);
    for (trace_id, route) in wanted {
        let trace = traces
            .get(trace_id)
            .unwrap_or_else(|| panic!("trace {trace_id} of {route} never arrived"));
        let mut names: Vec<_> = trace.iter().map(|s| s.span.name().to_owned()).collect();
        names.sort();
        let mut expected: Vec<_> = span_names(route).into_iter().collect();
        expected.sort();
        assert_eq!(names, expected, "spans of {route} trace {trace_id}");
        for span in trace {
            assert_eq!(
                span.project_id,
                project_id,
                "project of {}",
                span.span.name()
            );
            assert_eq!(
                span.sentry_key,
                key,
                "x-sentry-auth key of {}",
                span.span.name()
            );
            // The catalogued shapes of these routes fail, if at all, in
            // every span, from the failing one up to the SERVER span.
            let expected_status = if trace_shape(route).error_span.is_some() {
                StatusCode::Error
            } else {
                StatusCode::Unset
            };
            assert_eq!(
                span.span.status_code(),
                expected_status,
                "status of {} in {route}",
                span.span.name()
            );
        }
    }
}

/// The value of one series in Prometheus text format, e.g.
/// `metric(text, r#"up{job="x"}"#)`.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

/// The sum over every series of the metric `name`, whatever its labels.
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let rest = rest.strip_prefix("_total").unwrap_or(rest);
            let value = match rest.strip_prefix('{') {
                Some(labelled) => labelled.split_once('}')?.1,
                None => rest.strip_prefix(' ')?,
            };
            value.trim().parse::<f64>().ok()
        })
        .sum()
}

/// The RED metric names that Jaeger's Monitor tab queries (its Prometheus
/// reader with `normalize_calls` and `normalize_duration`).
pub const RED_CALLS: &str = "traces_span_metrics_calls_total";
pub const RED_DURATION: &str = "traces_span_metrics_duration_milliseconds";
/// How often the tests let the `span_metrics` connector flush (5 s in the configs).
pub const RED_FLUSH: &str = "1s";

/// What the RED metrics say about the SERVER spans of one service and route,
/// summed over the other labels.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RouteRed {
    pub calls: f64,
    /// Calls with `status_code="STATUS_CODE_ERROR"`.
    pub errors: f64,
    /// The duration histogram's `+Inf` bucket.
    pub durations: f64,
    /// The duration histogram's `_count`.
    pub duration_count: f64,
}

/// Parses a RED metrics page with a Prometheus text parser.
pub fn parse_red(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|line| Ok(line.to_owned())))
        .unwrap_or_else(|error| panic!("not Prometheus text: {error}\n{text}"))
}

/// The RED numbers of the SERVER spans of `service` on `route`.
pub fn route_red(scrape: &prometheus_parse::Scrape, service: &str, route: &str) -> RouteRed {
    use prometheus_parse::Value;
    let mut red = RouteRed::default();
    let ours = scrape.samples.iter().filter(|sample| {
        sample.labels.get("service_name") == Some(service)
            && sample.labels.get("span_kind") == Some("SPAN_KIND_SERVER")
            && sample.labels.get("http_route") == Some(route)
    });
    for sample in ours {
        let error = sample.labels.get("status_code") == Some("STATUS_CODE_ERROR");
        match (&sample.value, sample.metric.as_str()) {
            (Value::Counter(calls), RED_CALLS) => {
                red.calls += calls;
                if error {
                    red.errors += calls;
                }
            }
            (Value::Histogram(buckets), RED_DURATION) => {
                red.durations += buckets
                    .iter()
                    .find(|bucket| bucket.less_than == f64::INFINITY)
                    .map_or(0.0, |bucket| bucket.count);
            }
            (Value::Untyped(count), name) if name == format!("{RED_DURATION}_count") => {
                red.duration_count += count;
            }
            _ => {}
        }
    }
    red
}

/// Reads the collector's RED metrics until `done` holds for them or `WAIT`
/// passes; returns the last page, parsed, and its text.
pub async fn wait_for_red(
    collector: &Collector,
    done: impl Fn(&prometheus_parse::Scrape) -> bool,
) -> (prometheus_parse::Scrape, String) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let text = collector.red_metrics().await;
        let scrape = parse_red(&text);
        if done(&scrape) || std::time::Instant::now() >= deadline {
            return (scrape, text);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `spawn_app` for the trace side: the service exporting to the real
/// collector, which exports to a Sentry API test double.
pub struct CollectorApp {
    pub service: Service,
    pub collector: Collector,
    pub double: SentryDouble,
}

/// Starts the collector with `config` (a Sentry-exporting pipeline of
/// `helm/otel-collector/pipelines/`) in front of `double`, and the service named
/// `somework` exporting to it.
pub async fn spawn_collector_app(
    binary: &Path,
    config: &str,
    double: SentryDouble,
) -> CollectorApp {
    let collector = sentry_collector(binary, config, &double).await;
    let service = service(&collector, "somework").await;
    CollectorApp {
        service,
        collector,
        double,
    }
}

impl SomeworkApi for CollectorApp {
    fn base_url(&self) -> String {
        self.service.base_url()
    }

    fn http(&self) -> &reqwest::Client {
        self.service.http()
    }
}

impl CollectorApp {
    /// GETs `route`; returns the status and the trace id answered.
    pub async fn call(&self, route: &str) -> (u16, String) {
        request(&self.service, route).await
    }

    /// Waits until every trace in `wanted` reached the double whole; returns
    /// every span the double accepted.
    pub async fn delivered(&self, wanted: &[(String, &str)]) -> Vec<IngestedSpan> {
        self.double
            .wait_for(WAIT, |spans| complete(spans, wanted))
            .await
    }
}

/// `spawn_app` for the error-reporting side: the service reporting to a real
/// Bugsink, with its spans in an in-process receiver so that each event can
/// be matched to the span it happened in.
pub struct BugsinkApp {
    pub service: Service,
    pub receiver: OtlpReceiver,
    pub bugsink: Bugsink,
}

/// How long an event may take to be stored by Bugsink.
pub const EVENT_WAIT: Duration = Duration::from_secs(15);
/// The `SENTRY_ENVIRONMENT` the service reports.
pub const ENVIRONMENT: &str = "test";

/// Starts Bugsink and the service reporting to it with the settings that
/// `configure` adds; `None` when Bugsink is not installed (outside CI).
pub async fn spawn_bugsink_app(
    configure: impl FnOnce(ServiceBuilder) -> ServiceBuilder,
) -> Option<BugsinkApp> {
    let bugsink = Bugsink::start().await?;
    let receiver = OtlpReceiver::start().await;
    let service = configure(
        ServiceBuilder::new(env!("CARGO_BIN_EXE_somework"))
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
            .env("SENTRY_DSN", bugsink.dsn())
            .env("SENTRY_ENVIRONMENT", ENVIRONMENT),
    )
    .start()
    .await;
    Some(BugsinkApp {
        service,
        receiver,
        bugsink,
    })
}

impl SomeworkApi for BugsinkApp {
    fn base_url(&self) -> String {
        self.service.base_url()
    }

    fn http(&self) -> &reqwest::Client {
        self.service.http()
    }
}

impl BugsinkApp {
    /// Waits until Bugsink stored at least `count` events; returns them all.
    pub async fn events(&self, count: usize) -> Vec<Value> {
        self.bugsink.wait_for_events(count, EVENT_WAIT).await
    }

    /// The stored event (Bugsink's record, the client's event under `"data"`)
    /// whose `contexts.trace.trace_id` is `trace_id`.
    pub fn event_of_trace<'a>(&self, events: &'a [Value], trace_id: &str) -> &'a Value {
        events
            .iter()
            .find(|e| e["data"]["contexts"]["trace"]["trace_id"] == trace_id)
            .unwrap_or_else(|| {
                panic!(
                    "no stored event has contexts.trace.trace_id {trace_id}: {}\n\
                     Bugsink log:\n{}",
                    pretty(events),
                    self.bugsink.server_log()
                )
            })
    }

    /// The id of the exported `ErrorWork` span of `trace_id`.
    pub async fn error_work_span_id(&self, trace_id: &str) -> String {
        let spans = self.receiver.trace(trace_id, 4, EVENT_WAIT).await;
        spans
            .iter()
            .find(|s| s.name() == "ErrorWork")
            .unwrap_or_else(|| panic!("no ErrorWork span in trace {trace_id}: {spans:#?}"))
            .span_id()
    }
}

pub fn pretty(values: &[Value]) -> String {
    serde_json::to_string_pretty(values).unwrap_or_default()
}
