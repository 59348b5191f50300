//! HTTP to a Service's pod through the API server's port-forward (kube's
//! `portforward`, no kubectl and no local port), as in kube-rs's
//! `examples/pod_portforward_hyper_http.rs`.

use std::time::Duration;

use http_body_util::{BodyExt as _, Empty};
use hyper::Request;
use hyper::body::Bytes;
use hyper::header::{CONNECTION, HOST};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Api;

use super::cluster::{Access, Cluster, ClusterError};
use super::http::{Get, GetError, Reply};

/// How long the API server may take to report why a forward failed.
const FORWARD_ERROR_WAIT: Duration = Duration::from_secs(2);

/// Why a Service's port cannot be forwarded to.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("service {0} has no ready pod")]
    NoReadyPod(String),
    #[error("service {service} has no port named {port}")]
    NoSuchPort { service: String, port: String },
}

impl ForwardError {
    /// RBAC refused the request: the same refusal hits every other forward.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, Self::Cluster(error) if error.is_forbidden())
    }
}

/// Why one exchange over a port-forward's stream failed.
#[derive(Debug, thiserror::Error)]
enum ExchangeError {
    #[error("the port-forward opened no stream")]
    NoStream,
    #[error(transparent)]
    Request(#[from] hyper::http::Error),
    #[error(transparent)]
    Hyper(#[from] hyper::Error),
}

/// One port of one ready pod behind a Service.
#[derive(Clone)]
pub struct Forward {
    pods: Api<Pod>,
    url: String,
    namespace: String,
    pod: String,
    port: u16,
    /// `service/NAME:PORT in NAMESPACE (pod POD)`, for messages.
    pub target: String,
}

impl Forward {
    /// Resolves `service`'s port named `port` to a ready pod and its
    /// container port, the way `kubectl port-forward service/...` does.
    pub async fn to_service(
        cluster: &Cluster,
        namespace: &str,
        service: &str,
        port: &str,
    ) -> Result<Self, ForwardError> {
        let services: Api<Service> = Api::namespaced(cluster.client.clone(), namespace);
        let found = services.get(service).await.map_err(|error| {
            cluster
                .access("get", "services", namespace)
                .error(&cluster.url, error)
        })?;
        let spec = found.spec.unwrap_or_default();
        let service_port = spec
            .ports
            .iter()
            .flatten()
            .find(|candidate| candidate.name.as_deref() == Some(port))
            .ok_or_else(|| ForwardError::NoSuchPort {
                service: format!("{namespace}/{service}"),
                port: port.to_owned(),
            })?;
        let target_port = service_port
            .target_port
            .clone()
            .unwrap_or(IntOrString::Int(service_port.port));
        let selector = spec.selector.unwrap_or_default();
        let listed = cluster.pods_matching(namespace, &selector).await?;
        let no_pod = || ForwardError::NoReadyPod(format!("{namespace}/{service}"));
        let pod = listed.into_iter().find(is_ready).ok_or_else(no_pod)?;
        let container_port = match target_port {
            IntOrString::Int(number) => u16::try_from(number).ok(),
            IntOrString::String(name) => pod
                .spec
                .iter()
                .flat_map(|spec| &spec.containers)
                .flat_map(|container| container.ports.iter().flatten())
                .find(|candidate| candidate.name.as_deref() == Some(name.as_str()))
                .and_then(|candidate| u16::try_from(candidate.container_port).ok()),
        }
        .ok_or_else(|| ForwardError::NoSuchPort {
            service: format!("{namespace}/{service}"),
            port: port.to_owned(),
        })?;
        let pod = pod.metadata.name.unwrap_or_default();
        Ok(Self {
            target: format!("service/{service}:{port} in {namespace} (pod {pod})"),
            pods: cluster.pods(namespace),
            url: cluster.url.clone(),
            namespace: namespace.to_owned(),
            pod,
            port: container_port,
        })
    }

    pub fn pod(&self) -> &str {
        &self.pod
    }

    pub fn pods(&self) -> &Api<Pod> {
        &self.pods
    }

    /// One request over a port-forward opened for it alone.
    async fn exchange(
        &self,
        path_and_query: &str,
        headers: &[(&str, &str)],
    ) -> Result<Reply, GetError> {
        let access = Access {
            verb: "create",
            resource: "pods/portforward",
            namespace: &self.namespace,
        };
        let mut forwarder = self
            .pods
            .portforward(&self.pod, &[self.port])
            .await
            .map_err(|error| access.error(&self.url, error))?;
        let failure = forwarder.take_error(self.port);
        let result = match forwarder.take_stream(self.port) {
            Some(stream) => http_get(stream, path_and_query, headers).await,
            None => Err(ExchangeError::NoStream),
        };
        forwarder.abort();
        let reason = match result {
            Ok(reply) => return Ok(reply),
            Err(error) => error.to_string(),
        };
        // The API server says why a forward broke (nothing listens on the
        // port, the pod is gone) on the port's error channel.
        let explained = match failure {
            Some(failure) => tokio::time::timeout(FORWARD_ERROR_WAIT, failure)
                .await
                .ok()
                .flatten(),
            None => None,
        };
        Err(GetError::Http {
            target: self.target.clone(),
            reason: explained.unwrap_or(reason),
        })
    }
}

impl Get for Forward {
    fn target(&self) -> &str {
        &self.target
    }

    async fn get(
        &self,
        path_and_query: &str,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Reply, GetError> {
        tokio::time::timeout(timeout, self.exchange(path_and_query, headers))
            .await
            .map_err(|_| GetError::Timeout {
                target: self.target.clone(),
                timeout,
            })?
    }
}

async fn http_get(
    stream: tokio::io::DuplexStream,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> Result<Reply, ExchangeError> {
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let connection = tokio::spawn(connection);
    let mut request = Request::get(path_and_query)
        .header(HOST, "localhost")
        .header(CONNECTION, "close");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let outcome = async {
        let request = request.body(Empty::<Bytes>::new())?;
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Reply { status, body })
    }
    .await;
    connection.abort();
    outcome
}

fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|status| status.conditions.as_ref())
            .is_some_and(|conditions| {
                conditions
                    .iter()
                    .any(|condition| condition.type_ == "Ready" && condition.status == "True")
            })
}
