//! Bugsink's canonical API (`/api/canonical/0/`), read with an API token:
//! the error events of the traces `verify` started, found by their
//! `contexts.trace.trace_id`.

use std::collections::{BTreeSet, HashMap, HashSet};

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::AttachParams;
use serde_json::Value;
use tokio::io::AsyncReadExt as _;
use tokio::time::Instant;

use super::{POLL_INTERVAL, REQUEST_TIMEOUT};
use crate::verify::check::Check;
use crate::verify::cluster::{Access, ClusterError};
use crate::verify::http::{Get, GetError};
use crate::verify::traffic::Sent;

const API: &str = "/api/canonical/0";

#[derive(Debug, thiserror::Error)]
pub enum BugsinkError {
    #[error(transparent)]
    Get(#[from] GetError),
    #[error("Bugsink answered {status} to {path}")]
    Status { status: u16, path: String },
    #[error("Bugsink answered no JSON to {path}: {source}")]
    Json {
        path: String,
        source: serde_json::Error,
    },
    #[error("Bugsink answered no results list to {path}")]
    NoResults { path: String },
}

/// The order of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    OldestFirst,
    NewestFirst,
}

impl Order {
    fn param(self) -> &'static str {
        match self {
            Self::OldestFirst => "asc",
            Self::NewestFirst => "desc",
        }
    }
}

/// Where an error event was found: Bugsink's issue and event ids, and the
/// event's `contexts.trace` as stored.
#[derive(Debug, Clone)]
pub struct FoundEvent {
    pub issue: String,
    pub event: String,
    pub trace_context: Value,
}

/// The canonical API of one Bugsink, through any [`Get`].
pub struct BugsinkApi<'a, H> {
    http: &'a H,
    authorization: String,
}

impl<'a, H: Get> BugsinkApi<'a, H> {
    pub fn new(http: &'a H, token: &str) -> Self {
        Self {
            http,
            authorization: format!("Bearer {token}"),
        }
    }

    async fn get(&self, path: &str) -> Result<Value, BugsinkError> {
        let headers = [("authorization", self.authorization.as_str())];
        let reply = self.http.get(path, &headers, REQUEST_TIMEOUT).await?;
        if reply.status != 200 {
            return Err(BugsinkError::Status {
                status: reply.status,
                path: path.to_owned(),
            });
        }
        serde_json::from_slice(&reply.body).map_err(|source| BugsinkError::Json {
            path: path.to_owned(),
            source,
        })
    }

    /// Every result of a listing, following its `next` links.
    async fn list(&self, path: &str) -> Result<Vec<Value>, BugsinkError> {
        let mut results = Vec::new();
        let mut next = Some(path.to_owned());
        while let Some(path) = next.take() {
            let mut page = self.get(&path).await?;
            match page["results"].take() {
                Value::Array(items) => results.extend(items),
                _ => return Err(BugsinkError::NoResults { path }),
            }
            // `next` is an absolute URL; the same server answers its path.
            next = page["next"]
                .as_str()
                .and_then(|next| url::Url::parse(next).ok())
                .map(|next| match next.query() {
                    Some(query) => format!("{}?{query}", next.path()),
                    None => next.path().to_owned(),
                });
        }
        Ok(results)
    }

    pub async fn projects(&self) -> Result<Vec<Value>, BugsinkError> {
        self.list(&format!("{API}/projects/")).await
    }

    /// The project's issues, by when they were last seen.
    pub async fn issues(&self, project: &str, order: Order) -> Result<Vec<Value>, BugsinkError> {
        let order = order.param();
        self.list(&format!(
            "{API}/issues/?project={project}&sort=last_seen&order={order}"
        ))
        .await
    }

    /// The events of one issue (without their payload).
    pub async fn events(&self, issue: &str, order: Order) -> Result<Vec<Value>, BugsinkError> {
        let order = order.param();
        self.list(&format!("{API}/events/?issue={issue}&order={order}"))
            .await
    }

    /// One event by Bugsink's id; the event as the client sent it is under `"data"`.
    pub async fn event(&self, id: &str) -> Result<Value, BugsinkError> {
        self.get(&format!("{API}/events/{id}/")).await
    }

    /// Adds to `found` the events whose `contexts.trace.trace_id` is in
    /// `wanted`, reading each event (by id, in `read`) only once.
    pub async fn find_by_trace(
        &self,
        wanted: &BTreeSet<&str>,
        read: &mut HashSet<String>,
        found: &mut HashMap<String, FoundEvent>,
    ) -> Result<(), BugsinkError> {
        for project in self.projects().await? {
            let Some(project) = project["id"].as_i64() else {
                continue;
            };
            // The newest first: this run's errors are among them.
            for issue in self
                .issues(&project.to_string(), Order::NewestFirst)
                .await?
            {
                let Some(issue) = issue["id"].as_str() else {
                    continue;
                };
                for listed in self.events(issue, Order::NewestFirst).await? {
                    let Some(id) = listed["id"].as_str() else {
                        continue;
                    };
                    if read.contains(id) {
                        continue;
                    }
                    let mut event = self.event(id).await?;
                    read.insert(id.to_owned());
                    let trace_context = event["data"]["contexts"]["trace"].take();
                    if let Some(trace) = trace_context["trace_id"]
                        .as_str()
                        .filter(|trace| wanted.contains(trace))
                    {
                        let event = FoundEvent {
                            issue: issue.to_owned(),
                            event: id.to_owned(),
                            trace_context: trace_context.clone(),
                        };
                        found.insert(trace.to_owned(), event);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Finds, for each `/errorwork` trace, a Bugsink event whose
/// `contexts.trace.trace_id` is that trace id.
pub async fn check_bugsink(
    bugsink: &impl Get,
    token: &str,
    sent: &[Sent],
    deadline: Instant,
) -> (Check, HashMap<String, FoundEvent>) {
    let wanted: BTreeSet<&str> = sent
        .iter()
        .filter(|request| request.endpoint.reports_error)
        .map(|request| request.trace_id.as_str())
        .collect();
    let api = BugsinkApi::new(bugsink, token);
    let mut found = HashMap::new();
    let mut read = HashSet::new();
    let mut last_problem;
    loop {
        last_problem = api
            .find_by_trace(&wanted, &mut read, &mut found)
            .await
            .err();
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
        check.details.push(problem.to_string());
    }
    (check, found)
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
