//! The somework chart against the real service: both Deployments' rendered
//! environments start the real binary (so the service's strict config accepts
//! every value the chart sets), the frontend calls the backend, and the
//! chart's `helm test` script passes against them, run with the real curl.
//! The downward API and `$(VAR)` expansion are done here as the kubelet would.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use somework_testkit::api::SomeworkApi as _;
use somework_testkit::helm::k8s_openapi::api::core::v1::PodSpec;
use somework_testkit::helm::{Rendered, scratch_dir, typed};
use somework_testkit::otlp::OtlpReceiver;
use somework_testkit::service::{Service, ServiceBuilder};
use somework_testkit::tools;

use crate::helpers::Charts;

/// What the downward API would give each pod.
fn field_value(deployment: &str, field_path: &str) -> String {
    match field_path {
        "metadata.name" => format!("{deployment}-5d4f7c9b8-x2x7q"),
        "metadata.namespace" => "somework".to_owned(),
        "spec.nodeName" => "minikube".to_owned(),
        other => panic!("unexpected downward API field {other}"),
    }
}

/// Replaces `$(NAME)` with earlier variables, as Kubernetes does.
fn expand(value: &str, earlier: &BTreeMap<String, String>) -> String {
    earlier
        .iter()
        .fold(value.to_owned(), |v, (name, resolved)| {
            v.replace(&format!("$({name})"), resolved)
        })
}

/// Starts the real service with a Deployment's rendered environment. Only
/// what cannot hold outside a cluster changes: the listen address, the
/// collector (a local OTLP receiver) and the backend's address. Secret-backed
/// variables (SENTRY_DSN) stay unset, so Sentry is off.
async fn start_from_chart(
    rendered: &Rendered,
    name: &str,
    receiver: &OtlpReceiver,
    downstream: Option<String>,
) -> Service {
    let spec = rendered.deployment_pod_spec(name);
    let mut env = BTreeMap::new();
    for var in spec.containers[0].env.iter().flatten() {
        let value = match (&var.value, var.value_from.as_ref()) {
            (Some(v), _) => expand(v, &env),
            (None, Some(from)) if from.field_ref.is_some() => field_value(
                name,
                &from
                    .field_ref
                    .as_ref()
                    .map(|f| f.field_path.clone())
                    .unwrap_or_default(),
            ),
            (None, Some(from)) if from.secret_key_ref.is_some() => continue,
            _ => panic!(
                "{name}: env {} has neither a value nor a known source",
                var.name
            ),
        };
        env.insert(var.name.clone(), value);
    }
    assert_eq!(
        env["LISTEN_ADDR"], "0.0.0.0:8080",
        "{name} listens on all interfaces in the pod"
    );
    env.insert("LISTEN_ADDR".into(), "127.0.0.1:0".into());
    env.insert("OTEL_EXPORTER_OTLP_ENDPOINT".into(), receiver.endpoint());
    match downstream {
        Some(url) => {
            assert!(
                env.contains_key("DOWNSTREAM_URL"),
                "{name} has no DOWNSTREAM_URL"
            );
            env.insert("DOWNSTREAM_URL".into(), url);
        }
        None => assert!(
            !env.contains_key("DOWNSTREAM_URL"),
            "{name} should call itself"
        ),
    }
    let mut builder = ServiceBuilder::new(env!("CARGO_BIN_EXE_somework"));
    for (key, value) in &env {
        builder = builder.env(key, value.clone());
    }
    builder.start().await
}

#[tokio::test(flavor = "multi_thread")]
async fn chart_environment_runs_the_service_and_helm_test_passes() {
    let Some(charts) = Charts::find() else { return };
    if Command::new("curl").arg("--version").output().is_err() {
        tools::skip("curl is not installed; the helm test script needs it");
        return;
    }
    let rendered = charts.render("somework/defaults");
    let receiver = OtlpReceiver::start().await;
    let backend = start_from_chart(&rendered, "somework-backend", &receiver, None).await;
    let frontend = start_from_chart(
        &rendered,
        "somework-frontend",
        &receiver,
        Some(backend.url("")),
    )
    .await;

    // The helm test pod's own command, pointed at the local frontend.
    let pod = rendered
        .of_kind("Pod")
        .find(|p| p["metadata"]["annotations"]["helm.sh/hook"] == "test")
        .unwrap_or_else(|| panic!("no helm test pod"));
    let spec: PodSpec = typed(&pod["spec"]);
    let container = &spec.containers[0];
    let tmp = scratch_dir();
    let out =
        tokio::process::Command::new(container.command.clone().unwrap_or_default()[0].clone())
            .args(
                container.command.clone().unwrap_or_default()[1..]
                    .iter()
                    .chain(container.args.iter().flatten()),
            )
            .env("FRONTEND", frontend.url(""))
            .env("TMPDIR", tmp.path())
            .output()
            .await
            .unwrap_or_else(|e| panic!("run the helm test script: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "helm test script failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "/somework -> 200",
        "/errorwork -> 500",
        "/chain?hops=2 -> 200",
        "all endpoints answered as expected",
    ] {
        assert!(stdout.contains(line), "missing `{line}` in:\n{stdout}");
    }

    // The chain crossed both services, and each reported the pod's identity
    // from the chart's OTEL_RESOURCE_ATTRIBUTES.
    let spans = receiver
        .wait_for(Duration::from_secs(10), |spans| {
            ["somework-frontend", "somework-backend"].iter().all(|svc| {
                spans
                    .iter()
                    .any(|s| s.resource.get("service.name").map(String::as_str) == Some(svc))
            })
        })
        .await;
    for name in ["somework-frontend", "somework-backend"] {
        let span = spans
            .iter()
            .find(|s| s.resource.get("service.name").map(String::as_str) == Some(name))
            .unwrap_or_else(|| panic!("no span from {name}; got {} spans", spans.len()));
        let resource = &span.resource;
        assert_eq!(
            resource.get("k8s.pod.name"),
            Some(&field_value(name, "metadata.name")),
            "{name}"
        );
        assert_eq!(
            resource.get("k8s.namespace.name").map(String::as_str),
            Some("somework"),
            "{name}"
        );
        assert_eq!(
            resource.get("k8s.node.name").map(String::as_str),
            Some("minikube"),
            "{name}"
        );
        assert_eq!(
            resource.get("k8s.deployment.name").map(String::as_str),
            Some(name),
            "{name}"
        );
        assert_eq!(
            resource.get("service.version").map(String::as_str),
            Some("0.1.0"),
            "{name}"
        );
    }
    drop(frontend);
    drop(backend);
}
