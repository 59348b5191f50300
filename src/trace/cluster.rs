//! The demo's Jaeger and Bugsink in a cluster, reached the way `verify`
//! reaches them: port-forwards through the Kubernetes API server, and a
//! Bugsink API token made by `bugsink-manage` inside its pod.

use super::bugsink::Bugsink;
use super::http::Endpoint;
use super::source::Source;
use super::{Failure, TraceArgs};
use crate::verify::backends::bugsink::bugsink_token;
use crate::verify::cluster::{CONNECT_TIMEOUT, Cluster};
use crate::verify::forward::{Forward, ForwardError};

/// The demo-backends chart's Services and their ports.
const JAEGER: (&str, &str) = ("jaeger", "ui");
const BUGSINK: (&str, &str) = ("bugsink", "http");
/// Where a browser reaches Bugsink after
/// `kubectl port-forward service/bugsink 8000:8000`, the command printed
/// beside the links.
const BUGSINK_LOCAL_URL: &str = "http://localhost:8000";

/// Jaeger in `--namespace`, and, unless `--bugsink` names one, the Bugsink
/// beside it when there is one.
pub(super) async fn connect(
    args: &TraceArgs,
    bugsink: Option<Bugsink>,
) -> Result<(Source, Option<Bugsink>), Failure> {
    let namespace = args.namespace.as_str();
    let cluster = Cluster::connect(args.context.as_deref(), Some(CONNECT_TIMEOUT))
        .await
        .map_err(|error| {
            Failure::Source(format!(
                "{error} (or read a trace with --file PATH or --jaeger URL)"
            ))
        })?;
    let (service, port) = JAEGER;
    let jaeger = Forward::to_service(&cluster, namespace, service, port)
        .await
        .map_err(|error| Failure::Source(format!("Jaeger: {error}")))?;
    let bugsink = match bugsink {
        Some(bugsink) => Some(bugsink),
        None => in_cluster_bugsink(&cluster, namespace).await?,
    };
    Ok((Source::Jaeger(Endpoint::Forward(Box::new(jaeger))), bugsink))
}

async fn in_cluster_bugsink(
    cluster: &Cluster,
    namespace: &str,
) -> Result<Option<Bugsink>, Failure> {
    let (service, port) = BUGSINK;
    let forward = match Forward::to_service(cluster, namespace, service, port).await {
        Ok(forward) => forward,
        // No Bugsink in this demo (it may send errors to Sentry): no links.
        Err(ForwardError::Cluster(error)) if error.is_not_found() => return Ok(None),
        Err(ForwardError::NoReadyPod(_)) => return Ok(None),
        Err(error) => return Err(Failure::Source(format!("Bugsink: {error}"))),
    };
    let access = cluster.access("create", "pods/exec", namespace);
    let token = bugsink_token(forward.pods(), forward.pod(), access, &cluster.url)
        .await
        .map_err(|error| Failure::Source(format!("Bugsink: {error}")))?;
    Ok(Some(Bugsink {
        api: Endpoint::Forward(Box::new(forward)),
        token,
        public_url: BUGSINK_LOCAL_URL.to_owned(),
        open_hint: Some(format!(
            "the Bugsink links open after: kubectl -n {namespace} port-forward service/{service} 8000:8000"
        )),
    }))
}
