//! The workload checks: each Deployment Available and rolled out, and why
//! each pod that is not ready is not, with the log lines that show it.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ContainerStatus, Event, Pod};
use kube::Api;
use kube::api::{ListParams, LogParams};

use super::check::Check;
use super::cluster::{Cluster, ClusterError};

/// Lines of a bad container's log shown in the report.
const LOG_LINES: i64 = 5;

/// A Deployment that `verify` expects, and what it is for.
#[derive(Debug, Clone, Copy)]
pub struct Workload<'a> {
    pub namespace: &'a str,
    pub name: &'static str,
    /// Shown when it is missing: which chart installs it.
    pub release: &'static str,
}

/// The state of one Deployment, as a report row.
pub struct WorkloadState {
    pub check: Check,
    pub available: bool,
    /// The Deployment exists (an optional backend that does not exist is
    /// not an error).
    pub exists: bool,
    /// The Deployment's `matchLabels`, to find its pods; empty when it
    /// does not exist.
    pub selector: BTreeMap<String, String>,
}

/// Checks that the Deployment exists, is Available and rolled out, and that
/// every one of its pods is ready; names the reason and shows the last log
/// lines of each pod that is not.
pub async fn check_workload(
    cluster: &Cluster,
    workload: Workload<'_>,
) -> Result<WorkloadState, ClusterError> {
    let Workload {
        namespace,
        name,
        release,
    } = workload;
    let title = format!("deployment {namespace}/{name}");
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), namespace);
    let deployment = deployments.get_opt(name).await.map_err(|error| {
        cluster
            .access("get", "deployments", namespace)
            .error(&cluster.url, error)
    })?;
    let Some(deployment) = deployment else {
        let seen = match cluster.namespace_exists(namespace).await {
            Some(false) => format!("namespace {namespace} does not exist"),
            _ => "not found".to_owned(),
        };
        return Ok(WorkloadState {
            check: Check::fail(title, "Available", seen).detail(format!(
                "install the {release} chart into namespace {namespace} (helm list -n {namespace})"
            )),
            available: false,
            exists: false,
            selector: BTreeMap::new(),
        });
    };
    let rollout = Rollout::of(&deployment);
    let selector = match_labels(&deployment);
    let expected = format!("Available, {0}/{0} ready and up to date", rollout.replicas);
    if rollout.replicas == 0 {
        let check = Check::fail(title, expected, "scaled to 0 replicas".to_owned()).detail(
            format!("kubectl -n {namespace} scale deployment/{name} --replicas=1"),
        );
        return Ok(WorkloadState {
            check,
            available: false,
            exists: true,
            selector,
        });
    }
    let (problems, details) = pod_problems(cluster, namespace, &deployment).await?;
    let healthy = rollout.complete() && problems.is_empty();
    let seen = if problems.is_empty() {
        rollout.describe()
    } else {
        problems.join("; ")
    };
    let mut check = Check::judged(healthy, title, expected, seen);
    check.details = details;
    Ok(WorkloadState {
        check,
        available: rollout.available && rollout.ready > 0,
        exists: true,
        selector,
    })
}

/// A Deployment's replicas as its spec and status count them.
struct Rollout {
    /// Wanted by the spec.
    replicas: i32,
    ready: i32,
    updated: i32,
    total: i32,
    /// The `Available` condition holds.
    available: bool,
}

impl Rollout {
    fn of(deployment: &Deployment) -> Self {
        let status = deployment.status.clone().unwrap_or_default();
        Self {
            replicas: deployment
                .spec
                .as_ref()
                .and_then(|spec| spec.replicas)
                .unwrap_or(1),
            ready: status.ready_replicas.unwrap_or(0),
            updated: status.updated_replicas.unwrap_or(0),
            total: status.replicas.unwrap_or(0),
            available: status
                .conditions
                .iter()
                .flatten()
                .any(|condition| condition.type_ == "Available" && condition.status == "True"),
        }
    }

    /// Available, and every replica ready and up to date.
    fn complete(&self) -> bool {
        let wanted = self.replicas;
        self.available && self.ready == wanted && self.updated == wanted && self.total == wanted
    }

    fn describe(&self) -> String {
        let (ready, wanted, updated) = (self.ready, self.replicas, self.updated);
        if self.complete() {
            format!("Available, {ready}/{wanted} ready")
        } else {
            let available = if self.available {
                ""
            } else {
                "not Available, "
            };
            format!("{available}{ready}/{wanted} ready, {updated} up to date")
        }
    }
}

fn match_labels(deployment: &Deployment) -> BTreeMap<String, String> {
    deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.selector.match_labels.clone())
        .unwrap_or_default()
}

/// Why each pod of the Deployment that is not being deleted is not ready,
/// and the log lines that show it.
async fn pod_problems(
    cluster: &Cluster,
    namespace: &str,
    deployment: &Deployment,
) -> Result<(Vec<String>, Vec<String>), ClusterError> {
    let pods = cluster.pods(namespace);
    let listed = cluster
        .pods_matching(namespace, &match_labels(deployment))
        .await?;
    let mut problems = Vec::new();
    let mut details = Vec::new();
    for pod in &listed {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if let Some(problem) = diagnose(cluster, &pods, pod).await {
            problems.push(problem.summary);
            details.extend(problem.details);
        }
    }
    Ok((problems, details))
}

struct PodProblem {
    summary: String,
    details: Vec<String>,
}

/// Why a pod is not ready, from its status (and its events for a failing
/// probe), with the last lines of the log of the container at fault.
async fn diagnose(cluster: &Cluster, pods: &Api<Pod>, pod: &Pod) -> Option<PodProblem> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let status = pod.status.as_ref()?;
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|condition| condition.type_ == "Ready" && condition.status == "True");
    if ready {
        return None;
    }
    let containers = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for container in containers {
        if let Some(reason) = container_reason(container) {
            let crashed = container.restart_count > 0;
            let mut details = Vec::new();
            // An image that never started has no log to show.
            if !reason.contains("ImagePull") && !reason.contains("ErrImage") {
                details = last_log_lines(pods, &name, &container.name, crashed).await;
            }
            return Some(PodProblem {
                summary: format!("pod {name}: {reason}"),
                details,
            });
        }
    }
    if let Some(reason) = status.conditions.iter().flatten().find_map(|condition| {
        (condition.type_ == "PodScheduled" && condition.status == "False").then(|| {
            format!(
                "{}: {}",
                condition.reason.as_deref().unwrap_or("not scheduled"),
                condition.message.as_deref().unwrap_or("")
            )
        })
    }) {
        return Some(PodProblem {
            summary: format!("pod {name}: {reason}"),
            details: Vec::new(),
        });
    }
    let probe = failing_probe(cluster, pod).await;
    let container = status
        .container_statuses
        .iter()
        .flatten()
        .find(|container| !container.ready)
        .map(|container| container.name.clone());
    let details = match &container {
        Some(container) => last_log_lines(pods, &name, container, false).await,
        None => Vec::new(),
    };
    Some(PodProblem {
        summary: format!(
            "pod {name}: not ready ({})",
            probe.unwrap_or_else(|| status.phase.clone().unwrap_or_else(|| "Unknown".into()))
        ),
        details,
    })
}

/// `CrashLoopBackOff (last exit: OOMKilled, code 137)`, `ImagePullBackOff:
/// Back-off pulling image "..."`, or `None` for a container that runs.
fn container_reason(container: &ContainerStatus) -> Option<String> {
    let state = container.state.as_ref()?;
    let last_exit = container
        .last_state
        .as_ref()
        .and_then(|last| last.terminated.as_ref())
        .map(|terminated| {
            format!(
                " (last exit: {}, code {})",
                terminated.reason.as_deref().unwrap_or("Error"),
                terminated.exit_code
            )
        })
        .unwrap_or_default();
    if let Some(waiting) = &state.waiting {
        let reason = waiting.reason.as_deref().unwrap_or("Waiting");
        if reason == "PodInitializing" || reason == "ContainerCreating" {
            return Some(format!("container {} is starting", container.name));
        }
        let message = waiting
            .message
            .as_deref()
            .map(|message| format!(": {message}"))
            .unwrap_or_default();
        return Some(format!(
            "container {} {reason}{last_exit}{message}",
            container.name
        ));
    }
    if let Some(terminated) = &state.terminated
        && terminated.exit_code != 0
    {
        return Some(format!(
            "container {} terminated: {}, code {}",
            container.name,
            terminated.reason.as_deref().unwrap_or("Error"),
            terminated.exit_code
        ));
    }
    None
}

/// The latest "probe failed" event of the pod, when this user may read events.
async fn failing_probe(cluster: &Cluster, pod: &Pod) -> Option<String> {
    let namespace = pod.metadata.namespace.as_deref()?;
    let name = pod.metadata.name.as_deref()?;
    let events: Api<Event> = Api::namespaced(cluster.client.clone(), namespace);
    let params = ListParams::default().fields(&format!("involvedObject.name={name}"));
    let listed = events.list(&params).await.ok()?;
    listed
        .items
        .into_iter()
        .filter(|event| event.reason.as_deref() == Some("Unhealthy"))
        .max_by_key(|event| event.last_timestamp.clone().map(|time| time.0))
        .and_then(|event| event.message)
        .map(|message| message.trim().to_owned())
}

/// The last lines of a container's log (of its previous run after a
/// crash), indented for the report; empty when they cannot be read.
async fn last_log_lines(
    pods: &Api<Pod>,
    pod: &str,
    container: &str,
    previous: bool,
) -> Vec<String> {
    let params = LogParams {
        container: Some(container.to_owned()),
        previous,
        tail_lines: Some(LOG_LINES),
        ..LogParams::default()
    };
    match pods.logs(pod, &params).await {
        Ok(log) => log
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                format!(
                    "{pod}/{container}{}: {line}",
                    if previous { " (previous run)" } else { "" }
                )
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}
