//! The somework chart: the frontend calls the backend's Service, the pods
//! describe themselves through the downward API, and the `helm test` pod
//! checks the endpoints.

use std::process::Command;

use somework_testkit::helm::k8s_openapi::api::apps::v1::Deployment;
use somework_testkit::helm::k8s_openapi::api::core::v1::{PodSpec, Service};
use somework_testkit::helm::typed;
use somework_testkit::tools;

use crate::helpers::{
    Charts, SecretFile, deployment_container, env_of, env_value, given, only_container, read,
    secret_file,
};

#[test]
fn frontend_calls_the_backend_service() {
    let Some(charts) = Charts::find() else { return };
    let rendered = charts.render("somework/defaults");
    let frontend = deployment_container(&rendered, "somework-frontend");
    let backend = deployment_container(&rendered, "somework-backend");
    let service: Service = rendered.get("Service", "somework-backend");
    let port = service
        .spec
        .clone()
        .and_then(|s| s.ports)
        .unwrap_or_default()[0]
        .port;
    assert_eq!(
        env_value(&frontend, "DOWNSTREAM_URL"),
        format!(
            "http://{}:{port}",
            service.metadata.name.unwrap_or_default()
        )
    );
    // The backend Service selects the backend pods only.
    let deployment: Deployment = rendered.get("Deployment", "somework-backend");
    let pod_labels = deployment
        .spec
        .and_then(|s| s.template.metadata)
        .and_then(|m| m.labels)
        .unwrap_or_default();
    let selector = service.spec.and_then(|s| s.selector).unwrap_or_default();
    assert!(!selector.is_empty());
    for (k, v) in &selector {
        assert_eq!(
            pod_labels.get(k),
            Some(v),
            "backend pods lack selector label {k}"
        );
    }
    assert_eq!(selector["app.kubernetes.io/component"], "backend");
    // The backend is the end of the chain: it calls itself by default.
    assert!(env_of(&backend, "DOWNSTREAM_URL").is_none());
    assert_eq!(
        env_value(&frontend, "OTEL_SERVICE_NAME"),
        "somework-frontend"
    );
    assert_eq!(env_value(&backend, "OTEL_SERVICE_NAME"), "somework-backend");
}

#[test]
fn loadgen_runs_somework_load_against_the_frontend_service() {
    let Some(charts) = Charts::find() else { return };
    let defaults = charts.render("somework/defaults");
    assert!(defaults.find("Deployment", "somework-loadgen").is_none());

    let rendered = charts.render("somework/loadgen");
    let loadgen = deployment_container(&rendered, "somework-loadgen");
    let frontend = deployment_container(&rendered, "somework-frontend");
    assert_eq!(loadgen.image, frontend.image, "the same binary");
    assert!(loadgen.ports.is_none());
    let args = loadgen.args.clone().unwrap_or_default();
    let service: Service = rendered.get("Service", "somework-frontend");
    let port = service.spec.and_then(|s| s.ports).unwrap_or_default()[0].port;
    assert_eq!(
        args,
        [
            "load",
            "--target",
            &format!("http://somework-frontend:{port}"),
            "--rps",
            "2.5",
            "--mix",
            "somework=60,users=20,chain=20"
        ]
    );

    // The real binary accepts those arguments. The Service's name does not
    // resolve here, so the one request fails; what matters is the exit 0
    // (a refused flag exits 2).
    let output = Command::new(env!("CARGO_BIN_EXE_somework"))
        .args(&args)
        .args(["--requests", "1", "--timeout", "2s"])
        .env_clear()
        .output()
        .expect("cannot run somework load");
    assert!(
        output.status.success(),
        "{:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// With `otel.tls`, each OTLP TLS variable names a file the Secret's volume
/// puts in the container, read-only, under the key cert-manager writes; by
/// default there is neither the variables nor the volume.
#[test]
fn otlp_tls_files_come_from_the_mounted_secret() {
    let Some(charts) = Charts::find() else { return };
    let label = "somework/otlp-tls";
    let rendered = charts.render(label);
    let secret = given(label, "/otel/tls/existingSecret");
    for deployment in ["somework-frontend", "somework-backend"] {
        let spec = rendered.deployment_pod_spec(deployment);
        let container = only_container(&spec);
        for (var, key) in [
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "ca.crt"),
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "tls.crt"),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "tls.key"),
        ] {
            assert_eq!(
                secret_file(&spec, container, &env_value(container, var)),
                SecretFile {
                    secret: secret.clone(),
                    key: key.to_owned(),
                    // 0440: the key is for the service's group only.
                    default_mode: Some(0o440),
                },
                "{deployment}: {var}"
            );
            let security = spec
                .security_context
                .as_ref()
                .expect("a pod security context");
            assert_eq!(security.fs_group, security.run_as_group);
        }
        assert!(
            env_value(container, "OTEL_EXPORTER_OTLP_ENDPOINT").starts_with("https://"),
            "{deployment}"
        );
    }
    let defaults = charts.render("somework/defaults");
    let spec = defaults.deployment_pod_spec("somework-frontend");
    assert!(env_of(only_container(&spec), "OTEL_EXPORTER_OTLP_CERTIFICATE").is_none());
    assert!(spec.volumes.is_none(), "{:?}", spec.volumes);
}

#[test]
fn resource_attributes_come_from_the_downward_api() {
    let Some(charts) = Charts::find() else { return };
    let rendered = charts.render("somework/defaults");
    for name in ["somework-frontend", "somework-backend"] {
        let container = deployment_container(&rendered, name);
        let env = container.env.clone().unwrap_or_default();
        let attributes = env_value(&container, "OTEL_RESOURCE_ATTRIBUTES");
        let position = |n: &str| env.iter().position(|e| e.name == n);
        let attributes_at = position("OTEL_RESOURCE_ATTRIBUTES");
        for (attribute, var, field) in [
            ("k8s.pod.name", "K8S_POD_NAME", "metadata.name"),
            (
                "k8s.namespace.name",
                "K8S_NAMESPACE_NAME",
                "metadata.namespace",
            ),
            ("k8s.node.name", "K8S_NODE_NAME", "spec.nodeName"),
        ] {
            assert!(
                attributes
                    .split(',')
                    .any(|kv| kv == format!("{attribute}=$({var})")),
                "{name}: {attributes}"
            );
            let field_path = env_of(&container, var)
                .and_then(|e| e.value_from.clone())
                .and_then(|v| v.field_ref)
                .map(|f| f.field_path);
            assert_eq!(field_path.as_deref(), Some(field), "{name} {var}");
            // $(VAR) expands only to variables defined earlier in the list.
            assert!(
                position(var) < attributes_at,
                "{name}: {var} must precede OTEL_RESOURCE_ATTRIBUTES"
            );
        }
        assert!(
            attributes
                .split(',')
                .any(|kv| kv == format!("k8s.deployment.name={name}")),
            "{attributes}"
        );
        assert_eq!(
            env_value(&container, "OTEL_TRACES_SAMPLER"),
            "parentbased_traceidratio"
        );
    }
    // The sampling ratio is a value.
    let rendered = charts.render_release(
        &charts
            .release("somework/defaults")
            .set("otel.samplingRatio=0.25"),
    );
    let container = deployment_container(&rendered, "somework-frontend");
    assert_eq!(env_value(&container, "OTEL_TRACES_SAMPLER_ARG"), "0.25");
}

#[test]
fn helm_test_pod_calls_the_endpoints() {
    let Some(charts) = Charts::find() else { return };
    let rendered = charts.render("somework/defaults");
    let test_pod = rendered
        .of_kind("Pod")
        .find(|p| p["metadata"]["annotations"]["helm.sh/hook"] == "test")
        .unwrap_or_else(|| panic!("no helm test pod in {:?}", rendered.names()));
    let spec: PodSpec = typed(&test_pod["spec"]);
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    let container = only_container(&spec);
    let script = container.args.clone().unwrap_or_default().join("\n");
    for expectation in [
        "expect /somework 200",
        "expect /errorwork 500",
        "expect '/chain?hops=2' 200",
    ] {
        assert!(
            script.contains(expectation),
            "test script lacks `{expectation}`:\n{script}"
        );
    }
    assert!(
        script.contains("set -eu") && script.contains("exit 1"),
        "the script must fail on a mismatch"
    );
    assert_eq!(
        env_value(container, "FRONTEND"),
        "http://somework-frontend:8080"
    );
    // The helm test hook is left out of the plain manifests.
    let plain = read(&tools::repo_root().join("k8s/30-somework.yaml"));
    assert!(!plain.contains("helm.sh/hook"));
}
