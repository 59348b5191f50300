//! The Kubernetes side: the client, errors that say what to do, and the
//! workload checks (Deployments Available, and why each bad pod is bad).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ContainerStatus, Event, Namespace, Pod};
use kube::api::{ListParams, LogParams};
use kube::config::{KubeConfigOptions, KubeconfigError};
use kube::{Api, Client, Config};

use super::check::Check;

/// Lines of a bad container's log shown in the report.
const LOG_LINES: i64 = 5;
/// How long one connection to the API server gets for TCP and TLS, as
/// client-go gives its TLS handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why `verify` cannot talk to the cluster, or what the cluster refused.
/// Each variant prints as one line that says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("no Kubernetes configuration: {0}")]
    NoConfig(String),
    #[error("cannot reach the Kubernetes API server at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("TLS with the Kubernetes API server at {url} failed: {reason}")]
    Tls { url: String, reason: String },
    #[error(
        "the Kubernetes API server at {url} refused the credentials (401 Unauthorized): \
         log in again or fix the user of the kubeconfig context"
    )]
    Unauthorized { url: String },
    #[error("cannot get credentials for the Kubernetes API server: {0}")]
    Credentials(String),
    #[error(
        "forbidden (RBAC): cannot {verb} {resource} in namespace {namespace}: {message}; \
         grant the verb {verb} on {resource} to this user"
    )]
    Forbidden {
        verb: &'static str,
        resource: &'static str,
        namespace: String,
        message: String,
    },
    #[error("{verb} {resource} in namespace {namespace}: {reason}")]
    Api {
        verb: &'static str,
        resource: &'static str,
        namespace: String,
        reason: String,
    },
}

impl ClusterError {
    /// RBAC refused the request (403).
    pub fn is_forbidden(&self) -> bool {
        matches!(self, Self::Forbidden { .. })
    }
}

/// What a request was about, to turn a failure into a line that names it.
#[derive(Debug, Clone, Copy)]
pub struct Access<'a> {
    pub verb: &'static str,
    pub resource: &'static str,
    pub namespace: &'a str,
}

impl Access<'_> {
    pub fn error(&self, url: &str, error: kube::Error) -> ClusterError {
        let api = |reason: String| ClusterError::Api {
            verb: self.verb,
            resource: self.resource,
            namespace: self.namespace.to_owned(),
            reason,
        };
        let by_code = |code: u16, message: String| match code {
            401 => ClusterError::Unauthorized {
                url: url.to_owned(),
            },
            403 => ClusterError::Forbidden {
                verb: self.verb,
                resource: self.resource,
                namespace: self.namespace.to_owned(),
                message,
            },
            _ => api(format!("{code} {message}")),
        };
        match error {
            kube::Error::Api(status) => by_code(status.code, status.message),
            kube::Error::UpgradeConnection(
                kube::client::UpgradeConnectionError::ProtocolSwitch(status),
            ) => by_code(
                status.as_u16(),
                status.canonical_reason().unwrap_or("").to_owned(),
            ),
            kube::Error::Auth(error) => ClusterError::Credentials(innermost(&error)),
            kube::Error::HyperError(_) | kube::Error::Service(_) => {
                let reason = if connect_timed_out(&error) {
                    format!("no answer to TCP and TLS within {CONNECT_TIMEOUT:?}")
                } else {
                    innermost(&error)
                };
                if looks_like_tls(&error) {
                    ClusterError::Tls {
                        url: url.to_owned(),
                        reason,
                    }
                } else {
                    ClusterError::Unreachable {
                        url: url.to_owned(),
                        reason,
                    }
                }
            }
            other => api(innermost(&other)),
        }
    }
}

/// The message at the bottom of an error's source chain: "Connection
/// refused (os error 111)" rather than "ServiceError: client error (Connect)".
pub fn innermost(error: &dyn std::error::Error) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

/// Whether the chain holds the connect timeout's error: an io error of kind
/// `TimedOut` around tokio's `Elapsed` (a read timeout carries nothing).
fn connect_timed_out(error: &kube::Error) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(level) = current {
        if let Some(io) = level.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
            && io
                .get_ref()
                .is_some_and(|inner| inner.is::<tokio::time::error::Elapsed>())
        {
            return true;
        }
        current = level.source();
    }
    false
}

/// Whether the chain holds a rustls error. Boxes and io errors hide what
/// they wrap from `source()`, so each level is opened as well.
fn looks_like_tls(error: &kube::Error) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(level) = current {
        if is_tls(level) {
            return true;
        }
        current = level.source();
    }
    false
}

fn is_tls(error: &(dyn std::error::Error + 'static)) -> bool {
    if error.is::<rustls::Error>() {
        return true;
    }
    if let Some(inner) = error
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
    {
        return is_tls(inner);
    }
    false
}

/// A client for the kubeconfig's current context (or `context`), or the
/// in-cluster configuration, the way kubectl picks them.
pub struct Cluster {
    pub client: Client,
    pub url: String,
}

impl Cluster {
    /// Connects with `context`; `connect_timeout` bounds each connection's
    /// TCP and TLS, and `None` leaves that to the caller's own deadline.
    pub async fn connect(
        context: Option<&str>,
        connect_timeout: Option<Duration>,
    ) -> Result<Self, ClusterError> {
        let mut config = match context {
            Some(context) => {
                let options = KubeConfigOptions {
                    context: Some(context.to_owned()),
                    ..KubeConfigOptions::default()
                };
                Config::from_kubeconfig(&options)
                    .await
                    .map_err(|error| kubeconfig_error(&error, Some(context)))?
            }
            None => Config::infer().await.map_err(|error| {
                let kubeconfig = std::error::Error::source(&error)
                    .and_then(|source| source.downcast_ref::<KubeconfigError>())
                    .map_or_else(
                        || error.to_string(),
                        |source| kubeconfig_message(source, None),
                    );
                ClusterError::NoConfig(format!(
                    "{kubeconfig}, and this is not a pod with a service account. \
                     Set KUBECONFIG, create ~/.kube/config, or pass --context"
                ))
            })?,
        };
        config.connect_timeout = connect_timeout;
        let url = config.cluster_url.to_string();
        let client = Client::try_from(config).map_err(|error| ClusterError::Tls {
            url: url.clone(),
            reason: innermost(&error),
        })?;
        let cluster = Self { client, url };
        // One cheap request, so an unreachable server or refused TLS is
        // reported before anything else.
        cluster.client.apiserver_version().await.map_err(|error| {
            cluster
                .access("get", "version", "")
                .error(&cluster.url, error)
        })?;
        Ok(cluster)
    }

    pub fn access<'a>(
        &self,
        verb: &'static str,
        resource: &'static str,
        namespace: &'a str,
    ) -> Access<'a> {
        Access {
            verb,
            resource,
            namespace,
        }
    }

    pub fn pods(&self, namespace: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// The pods of `namespace` that carry every label of `selector` (a
    /// Deployment's `matchLabels`, a Service's selector).
    pub async fn pods_matching(
        &self,
        namespace: &str,
        selector: &BTreeMap<String, String>,
    ) -> Result<Vec<Pod>, ClusterError> {
        let selector = selector
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join(",");
        self.pods(namespace)
            .list(&ListParams::default().labels(&selector))
            .await
            .map(|listed| listed.items)
            .map_err(|error| {
                self.access("list", "pods", namespace)
                    .error(&self.url, error)
            })
    }

    /// Whether `namespace` exists; `None` when this user may not tell.
    async fn namespace_exists(&self, namespace: &str) -> Option<bool> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        namespaces
            .get_opt(namespace)
            .await
            .ok()
            .map(|ns| ns.is_some())
    }
}

fn kubeconfig_error(error: &KubeconfigError, context: Option<&str>) -> ClusterError {
    ClusterError::NoConfig(kubeconfig_message(error, context))
}

fn kubeconfig_message(error: &KubeconfigError, context: Option<&str>) -> String {
    match (error, context) {
        (KubeconfigError::LoadContext(_), Some(context)) => {
            format!(
                "the kubeconfig has no context {context:?} (kubectl config get-contexts lists them)"
            )
        }
        _ => error.to_string(),
    }
}

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
        });
    };
    let rollout = Rollout::of(&deployment);
    let expected = format!("Available, {0}/{0} ready and up to date", rollout.replicas);
    if rollout.replicas == 0 {
        let check = Check::fail(title, expected, "scaled to 0 replicas".to_owned()).detail(
            format!("kubectl -n {namespace} scale deployment/{name} --replicas=1"),
        );
        return Ok(WorkloadState {
            check,
            available: false,
            exists: true,
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

/// Why each pod of the Deployment that is not being deleted is not ready,
/// and the log lines that show it.
async fn pod_problems(
    cluster: &Cluster,
    namespace: &str,
    deployment: &Deployment,
) -> Result<(Vec<String>, Vec<String>), ClusterError> {
    let pods = cluster.pods(namespace);
    let selector = deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.selector.match_labels.clone())
        .unwrap_or_default();
    let listed = cluster.pods_matching(namespace, &selector).await?;
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
