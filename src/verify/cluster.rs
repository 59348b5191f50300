//! The Kubernetes side: the client, and errors that say what to do.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::ListParams;
use kube::config::{KubeConfigOptions, KubeconfigError};
use kube::{Api, Client, Config};

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
    #[error("{verb} {resource} in namespace {namespace}: not found (404): {message}")]
    NotFound {
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

    /// The object asked for does not exist (404).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
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
            404 => ClusterError::NotFound {
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
    pub async fn namespace_exists(&self, namespace: &str) -> Option<bool> {
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
