//! Where the traces and errors end up: Jaeger's and Bugsink's APIs in
//! zero-account mode, Sentry's events API when credentials are given.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::AttachParams;
use serde_json::Value;
use tokio::io::AsyncReadExt as _;
use tokio::time::Instant;

use super::cluster::{Access, ClusterError};
use super::forward::Forward;
use super::report::Check;
use super::traffic::{ENDPOINTS, Sent, TraceShape};

/// Pause between two looks at a backend that has not got everything yet.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// One request to a backend's API.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Looks every trace up in Jaeger until each has its full shape or
/// `deadline` passes; one row per endpoint.
pub async fn check_jaeger(jaeger: &Forward, sent: &[Sent], deadline: Instant) -> Vec<Check> {
    let mut verdicts: HashMap<&str, Result<(), String>> = HashMap::new();
    loop {
        for request in sent {
            if matches!(verdicts.get(request.trace_id.as_str()), Some(Ok(()))) {
                continue;
            }
            let path = format!("/api/traces/{}", request.trace_id);
            let verdict = match jaeger.get(&path, &[], REQUEST_TIMEOUT).await {
                Ok(reply) if reply.status == 200 => serde_json::from_slice::<Value>(&reply.body)
                    .map_err(|error| format!("Jaeger answered no JSON: {error}"))
                    .and_then(|body| judge_trace(&body, request, &request.endpoint.shape)),
                Ok(reply) if reply.status == 404 => Err("not in Jaeger".to_owned()),
                Ok(reply) => Err(format!("Jaeger answered {}", reply.status)),
                Err(error) => Err(error.to_string()),
            };
            verdicts.insert(&request.trace_id, verdict);
        }
        let done = verdicts.values().all(Result::is_ok);
        if done || Instant::now() + POLL_INTERVAL >= deadline {
            break;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    ENDPOINTS
        .iter()
        .map(|endpoint| {
            let ours: Vec<&Sent> = sent
                .iter()
                .filter(|request| request.endpoint.path == endpoint.path)
                .collect();
            let complete = ours
                .iter()
                .filter(|request| matches!(verdicts.get(request.trace_id.as_str()), Some(Ok(()))))
                .count();
            let shape = &endpoint.shape;
            let mut check = Check::judged(
                complete == ours.len(),
                format!("Jaeger: traces of {}", endpoint.path),
                format!(
                    "{} traces, one tree each, {} SERVER span(s), services {}",
                    ours.len(),
                    shape.server_spans,
                    shape.services.join("+")
                ),
                format!("{complete} of {} complete", ours.len()),
            );
            for request in &ours {
                if let Some(Err(problem)) = verdicts.get(request.trace_id.as_str()) {
                    check
                        .details
                        .push(format!("trace {}: {problem}", request.trace_id));
                }
            }
            check
        })
        .collect()
}

/// Checks a Jaeger `/api/traces/{id}` answer against the expected shape:
/// one tree whose root is the child of our `traceparent`'s span, the SERVER
/// spans, services and span names of the endpoint.
pub fn judge_trace(body: &Value, request: &Sent, shape: &TraceShape) -> Result<(), String> {
    let trace = &body["data"][0];
    let spans = trace["spans"]
        .as_array()
        .filter(|spans| !spans.is_empty())
        .ok_or("no spans")?;
    let processes = &trace["processes"];
    let ids: HashSet<&str> = spans.iter().filter_map(|s| s["spanID"].as_str()).collect();
    let mut roots = Vec::new();
    let mut services = BTreeSet::new();
    let mut names = BTreeSet::new();
    let mut server_spans = 0;
    for span in spans {
        if span["traceID"].as_str() != Some(request.trace_id.as_str()) {
            return Err(format!("a span has trace id {}", span["traceID"]));
        }
        let parent = span["references"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|reference| reference["refType"] == "CHILD_OF")
            .and_then(|reference| reference["spanID"].as_str());
        if !parent.is_some_and(|parent| ids.contains(parent)) {
            roots.push((span["operationName"].as_str().unwrap_or(""), parent));
        }
        let process = span["processID"].as_str().unwrap_or("");
        if let Some(service) = processes[process]["serviceName"].as_str() {
            services.insert(service);
        }
        names.insert(span["operationName"].as_str().unwrap_or(""));
        if tag(span, "span.kind") == Some("server") {
            server_spans += 1;
        }
    }
    match roots.as_slice() {
        [(_, Some(parent))] if *parent == request.parent_span_id => {}
        [(name, parent)] => {
            return Err(format!(
                "root span {name:?} has parent {parent:?}, not our traceparent's {}",
                request.parent_span_id
            ));
        }
        _ => {
            let names: Vec<&str> = roots.iter().map(|(name, _)| *name).collect();
            return Err(format!(
                "{} spans without a parent in the trace ({}): the tree is broken or incomplete",
                roots.len(),
                names.join(", ")
            ));
        }
    }
    let expected_services: BTreeSet<&str> = shape.services.iter().copied().collect();
    if services != expected_services {
        return Err(format!(
            "services {services:?}, expected {expected_services:?}"
        ));
    }
    if server_spans != shape.server_spans {
        return Err(format!(
            "{server_spans} SERVER spans, expected {}",
            shape.server_spans
        ));
    }
    if let Some(missing) = shape.span_names.iter().find(|name| !names.contains(**name)) {
        return Err(format!("no span named {missing:?} (spans: {names:?})"));
    }
    if let Some(error_span) = shape.error_span {
        let has_error = spans.iter().any(|span| {
            span["operationName"] == error_span && tag(span, "otel.status_code") == Some("ERROR")
        });
        if !has_error {
            return Err(format!("span {error_span:?} has no error status"));
        }
    }
    Ok(())
}

fn tag<'a>(span: &'a Value, key: &str) -> Option<&'a str> {
    span["tags"]
        .as_array()?
        .iter()
        .find(|tag| tag["key"] == key)
        .and_then(|tag| tag["value"].as_str())
}

/// Bugsink's API needs a token; `bugsink-manage create_auth_token`, run
/// inside its pod, makes one.
pub async fn bugsink_token(
    pods: &Api<Pod>,
    pod: &str,
    access: Access<'_>,
    url: &str,
) -> Result<String, ClusterError> {
    let params = AttachParams::default().container("bugsink").stderr(false);
    let mut process = pods
        .exec(pod, ["bugsink-manage", "create_auth_token"], &params)
        .await
        .map_err(|error| access.error(url, error))?;
    let mut output = String::new();
    if let Some(mut stdout) = process.stdout() {
        let _ = stdout.read_to_string(&mut output).await;
    }
    let _ = process.join().await;
    output
        .lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| ClusterError::Api {
            verb: access.verb,
            resource: access.resource,
            namespace: access.namespace.to_owned(),
            reason: "bugsink-manage create_auth_token printed no token".to_owned(),
        })
}

/// Where an error event was found: Bugsink's issue and event ids.
#[derive(Debug, Clone)]
pub struct FoundEvent {
    pub issue: String,
    pub event: String,
}

/// Finds, for each `/errorwork` trace, a Bugsink event whose
/// `contexts.trace.trace_id` is that trace id.
pub async fn check_bugsink(
    bugsink: &Forward,
    token: &str,
    sent: &[Sent],
    deadline: Instant,
) -> (Check, HashMap<String, FoundEvent>) {
    let wanted: BTreeSet<&str> = sent
        .iter()
        .filter(|request| request.endpoint.reports_error)
        .map(|request| request.trace_id.as_str())
        .collect();
    let auth = format!("Bearer {token}");
    let api = |path: String| {
        let auth = auth.clone();
        async move {
            let reply = bugsink
                .get(&path, &[("authorization", auth.as_str())], REQUEST_TIMEOUT)
                .await
                .map_err(|error| error.to_string())?;
            if reply.status != 200 {
                return Err(format!("Bugsink answered {} to {path}", reply.status));
            }
            serde_json::from_slice::<Value>(&reply.body)
                .map_err(|error| format!("Bugsink answered no JSON to {path}: {error}"))
        }
    };
    let mut found: HashMap<String, FoundEvent> = HashMap::new();
    let mut read_events: HashSet<String> = HashSet::new();
    let mut last_problem;
    loop {
        let round = async {
            let projects = api("/api/canonical/0/projects/".to_owned()).await?;
            for project in results(&projects) {
                let Some(project) = project["id"].as_i64() else {
                    continue;
                };
                let issues = api(format!(
                    "/api/canonical/0/issues/?project={project}&sort=last_seen&order=desc"
                ))
                .await?;
                for issue in results(&issues) {
                    let Some(issue) = issue["id"].as_str() else {
                        continue;
                    };
                    let events =
                        api(format!("/api/canonical/0/events/?issue={issue}&order=desc")).await?;
                    for event in results(&events) {
                        let Some(id) = event["id"].as_str() else {
                            continue;
                        };
                        if read_events.contains(id) {
                            continue;
                        }
                        let detail = api(format!("/api/canonical/0/events/{id}/")).await?;
                        read_events.insert(id.to_owned());
                        let trace = detail["data"]["contexts"]["trace"]["trace_id"].as_str();
                        if let Some(trace) = trace.filter(|trace| wanted.contains(trace)) {
                            let event = FoundEvent {
                                issue: issue.to_owned(),
                                event: id.to_owned(),
                            };
                            found.insert(trace.to_owned(), event);
                        }
                    }
                }
            }
            Ok::<(), String>(())
        }
        .await;
        last_problem = round.err();
        if found.len() == wanted.len() || Instant::now() + POLL_INTERVAL >= deadline {
            break;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    let mut check = Check::judged(
        found.len() == wanted.len(),
        "Bugsink: errors of /errorwork".to_owned(),
        format!(
            "{} events with contexts.trace.trace_id = ours",
            wanted.len()
        ),
        format!("{} of {} found", found.len(), wanted.len()),
    );
    for trace in wanted.iter().filter(|trace| !found.contains_key(**trace)) {
        check.details.push(format!("no event for trace {trace}"));
    }
    if let Some(problem) = last_problem {
        check.details.push(problem);
    }
    (check, found)
}

fn results(page: &Value) -> impl Iterator<Item = &Value> {
    page["results"].as_array().into_iter().flatten()
}

/// Sentry's events API, for the error trace ids: used when both
/// `SENTRY_AUTH_TOKEN` and `SENTRY_ORG` are set.
pub struct SentryApi {
    pub url: String,
    pub org: String,
    pub token: String,
}

impl SentryApi {
    pub fn from_env() -> Option<Self> {
        let var = |name| {
            std::env::var(name)
                .ok()
                .filter(|value: &String| !value.is_empty())
        };
        Some(Self {
            url: var("SENTRY_URL").unwrap_or_else(|| "https://sentry.io".to_owned()),
            org: var("SENTRY_ORG")?,
            token: var("SENTRY_AUTH_TOKEN")?,
        })
    }

    /// Looks each `/errorwork` trace id up with
    /// `GET /api/0/organizations/{org}/events/?query=trace:{id}`.
    pub async fn check(&self, sent: &[Sent], deadline: Instant) -> Check {
        let wanted: Vec<&str> = sent
            .iter()
            .filter(|request| request.endpoint.reports_error)
            .map(|request| request.trace_id.as_str())
            .collect();
        let client = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build();
        let mut found: BTreeMap<&str, bool> = wanted.iter().map(|trace| (*trace, false)).collect();
        let mut last_problem = None;
        if let Ok(client) = client {
            loop {
                for (trace, seen) in found.iter_mut().filter(|(_, seen)| !**seen) {
                    let base = format!(
                        "{}/api/0/organizations/{}/events/",
                        self.url.trim_end_matches('/'),
                        self.org
                    );
                    let query = [
                        ("dataset", "errors"),
                        ("field", "id"),
                        ("field", "trace"),
                        ("statsPeriod", "1h"),
                        ("query", &format!("trace:{trace}")),
                    ];
                    let url = match url::Url::parse_with_params(&base, query) {
                        Ok(url) => url,
                        Err(error) => {
                            last_problem = Some(format!("SENTRY_URL {:?}: {error}", self.url));
                            break;
                        }
                    };
                    let reply = client
                        .get(url)
                        .bearer_auth(&self.token)
                        .send()
                        .await
                        .and_then(reqwest::Response::error_for_status);
                    match reply {
                        Ok(reply) => {
                            let body: Value = reply.json().await.unwrap_or_default();
                            *seen = body["data"].as_array().is_some_and(|rows| !rows.is_empty());
                        }
                        Err(error) => last_problem = Some(format!("Sentry events API: {error}")),
                    }
                }
                let done = found.values().all(|seen| *seen);
                if done || Instant::now() + POLL_INTERVAL >= deadline {
                    break;
                }
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        }
        let count = found.values().filter(|seen| **seen).count();
        let mut check = Check::judged(
            count == wanted.len(),
            format!("Sentry ({}): errors of /errorwork", self.org),
            format!("{} error events with our trace ids", wanted.len()),
            format!("{count} of {} found", wanted.len()),
        );
        check.details.extend(last_problem);
        check
    }
}
