//! The Helm charts, rendered with the real helm v4 over a matrix of values and
//! checked with kubernetes-validate, the collector's own `validate`, and
//! assertions on the typed objects.
//!
//! Needs the tools from scripts/install-k8s-tools.sh (and, for the collector
//! check, scripts/build-collector.sh); each test skips locally without them
//! and fails under CI=true.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use somework_testkit::helm::k8s_openapi::api::apps::v1::Deployment;
use somework_testkit::helm::k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec, Service};
use somework_testkit::helm::{
    CHARTS, Helm, KUBERNETES_VERSIONS, KubernetesValidate, Release, Rendered, chart_dir,
    scratch_dir, yaml_value,
};
use somework_testkit::tools;

// Recognisable credential values: if one of them shows up anywhere but in a
// Secret, a credential leaked.
const AUTH_TOKEN: &str = "sntrys_sentinel-auth-token-0123456789";
const ORG: &str = "sentinel-org";
const PROJECT: &str = "sentinel-project";
const PUBLIC_KEY: &str = "5e471ne1pub11ck3y0000000000000000";
const OTLP_URL: &str = "https://o42.ingest.sentry.io/api/4242/integration/otlp/v1/traces/";
const DSN: &str = "https://5e471ne1d5nk3y000000000000000@o42.ingest.sentry.io/4242";
const SENTINELS: [&str; 6] = [AUTH_TOKEN, ORG, PROJECT, PUBLIC_KEY, OTLP_URL, DSN];

/// Every chart with every value set the tests render: defaults (zero-account
/// mode), real Sentry from an existing Secret or from values, tail sampling,
/// Sentry's OTLP endpoint, and the NetworkPolicy.
fn matrix() -> Vec<(&'static str, Release)> {
    let collector = || Release::new("otel-collector");
    let somework = || Release::new("somework");
    let backends = || Release::new("demo-backends");
    vec![
        ("collector-defaults", collector()),
        (
            "collector-zero-account",
            collector().set("pipeline=zero-account"),
        ),
        (
            "collector-sentry-existing-secret",
            collector().set("sentry.existingSecret=sentry-credentials"),
        ),
        (
            "collector-sentry-values",
            collector()
                .set(&format!("sentry.authToken={AUTH_TOKEN}"))
                .set(&format!("sentry.org={ORG}"))
                .set(&format!("sentry.project={PROJECT}")),
        ),
        (
            "collector-tail-sampling",
            collector()
                .set("pipeline=tail-sampling")
                .set("sentry.existingSecret=sentry-credentials"),
        ),
        (
            "collector-sentry-otlp",
            collector()
                .set(&format!("sentry.publicKey={PUBLIC_KEY}"))
                .set(&format!("sentry.otlpTracesUrl={OTLP_URL}")),
        ),
        (
            "collector-network-policy",
            collector().set("networkPolicy.enabled=true"),
        ),
        ("somework-defaults", somework()),
        (
            "somework-existing-secret",
            somework().set("sentry.existingSecret=somework-sentry-dsn"),
        ),
        ("somework-dsn", somework().set(&format!("sentry.dsn={DSN}"))),
        // The same values as helm/somework/ci/loadgen-values.yaml.
        (
            "somework-loadgen",
            somework()
                .set("loadgen.enabled=true")
                .set("loadgen.rps=2.5")
                .set("loadgen.mix=somework=60\\,users=20\\,chain=20"),
        ),
        ("demo-backends-defaults", backends()),
        (
            "demo-backends-existing-secret",
            backends().set("bugsink.existingSecret=bugsink-credentials"),
        ),
    ]
}

fn release(label: &str) -> Release {
    matrix()
        .into_iter()
        .find(|(l, _)| *l == label)
        .map(|(_, r)| r)
        .unwrap_or_else(|| panic!("no matrix entry {label}"))
}

fn env_of<'a>(container: &'a Container, name: &str) -> Option<&'a EnvVar> {
    container.env.iter().flatten().find(|e| e.name == name)
}

fn env_value(container: &Container, name: &str) -> String {
    env_of(container, name)
        .and_then(|e| e.value.clone())
        .unwrap_or_else(|| panic!("container {} has no literal env {name}", container.name))
}

fn only_container(spec: &PodSpec) -> &Container {
    assert_eq!(spec.containers.len(), 1, "expected one container");
    &spec.containers[0]
}

fn deployment_container(rendered: &Rendered, name: &str) -> Container {
    only_container(&rendered.deployment_pod_spec(name)).clone()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[test]
fn lint_strict_passes_on_every_chart_and_value_set() {
    let Some(helm) = Helm::find() else { return };
    for (label, release) in matrix() {
        let out = helm
            .lint_strict(&release)
            .unwrap_or_else(|e| panic!("helm lint --strict {label} ({release}): {e}"));
        assert!(out.contains("0 chart(s) failed"), "{label}: {out}");
    }
}

#[test]
fn every_render_passes_kubernetes_validate_strict() {
    let Some(helm) = Helm::find() else { return };
    let Some(validator) = KubernetesValidate::find() else {
        return;
    };
    let renders: Vec<(String, String)> = matrix()
        .into_iter()
        .map(|(label, release)| {
            let yaml = helm
                .template(&release)
                .unwrap_or_else(|e| panic!("helm template {label}: {e}"));
            (label.to_owned(), yaml)
        })
        .collect();
    assert_eq!(renders.len(), 13);
    for version in KUBERNETES_VERSIONS {
        if let Err(report) = validator.validate(&renders, version) {
            panic!("kubernetes-validate --strict -k {version} rejected a render:\n{report}");
        }
    }
    // The validator must be able to fail: a misspelt field is rejected.
    let (label, good) = &renders[0];
    let bad = good.replacen("imagePullPolicy:", "imagePullPolicyy:", 1);
    assert_ne!(&bad, good, "{label} has no imagePullPolicy to misspell");
    assert!(
        validator
            .validate(&[("misspelt".to_owned(), bad)], KUBERNETES_VERSIONS[0])
            .is_err(),
        "kubernetes-validate --strict accepted an unknown field"
    );
}

#[test]
fn collector_service_is_reachable_at_the_services_default_endpoint() {
    let Some(helm) = Helm::find() else { return };
    let collector = release("collector-defaults");
    let rendered = helm.render(&collector);
    let service: Service = rendered.get("Service", "otel-collector");
    let ports: BTreeMap<String, (i32, Option<String>)> = service
        .spec
        .and_then(|s| s.ports)
        .unwrap_or_default()
        .into_iter()
        .map(|p| (p.name.unwrap_or_default(), (p.port, p.app_protocol)))
        .collect();
    assert_eq!(ports["otlp-grpc"], (4317, Some("grpc".to_owned())));
    assert_eq!(ports["otlp-http"].0, 4318);
    assert_eq!(ports["metrics"].0, 8888);

    // The DNS name the Service gets is what the somework chart and the
    // service itself default to.
    let dns = format!(
        "http://{}.{}.svc.cluster.local:{}",
        service.metadata.name.unwrap_or_default(),
        service.metadata.namespace.unwrap_or_default(),
        ports["otlp-grpc"].0
    );
    assert_eq!(
        dns,
        "http://otel-collector.observability.svc.cluster.local:4317"
    );
    let somework = helm.render(&release("somework-defaults"));
    for name in ["somework-frontend", "somework-backend"] {
        let container = deployment_container(&somework, name);
        assert_eq!(env_value(&container, "OTEL_EXPORTER_OTLP_ENDPOINT"), dns);
    }
}

/// Pipeline name -> the chart file it runs.
const PIPELINE_FILES: [(&str, &str); 4] = [
    ("zero-account", "zero-account.yaml"),
    ("sentry", "otel-collector.yaml"),
    ("tail-sampling", "tail-sampling.yaml"),
    ("sentry-otlp", "sentry-otlp.yaml"),
];

#[test]
fn collector_runs_the_file_of_each_pipeline_verbatim() {
    let Some(helm) = Helm::find() else { return };
    let files = chart_dir("otel-collector").join("files");
    for (pipeline, file) in PIPELINE_FILES {
        let rendered = helm.render(
            &release("collector-sentry-existing-secret").set(&format!("pipeline={pipeline}")),
        );
        let data = rendered.string_data("ConfigMap", "otel-collector");
        assert_eq!(
            data.get("config.yaml").map(String::as_str),
            Some(read(&files.join(file)).as_str()),
            "pipeline {pipeline} must run files/{file} unchanged"
        );
        let container = deployment_container(&rendered, "otel-collector");
        assert_eq!(
            container.args,
            Some(vec!["--config=/conf/config.yaml".to_owned()])
        );
    }
}

#[test]
fn chart_copies_of_collector_config_match_the_originals() {
    let files = chart_dir("otel-collector").join("files");
    let originals = tools::repo_root().join("collector-config");
    for file in [
        "otel-collector.yaml",
        "tail-sampling.yaml",
        "sentry-otlp.yaml",
    ] {
        assert_eq!(
            read(&files.join(file)),
            read(&originals.join(file)),
            "helm/otel-collector/files/{file} drifted from collector-config/{file}: run scripts/render-k8s.sh"
        );
    }
}

#[test]
fn pipeline_follows_the_credentials_given() {
    let Some(helm) = Helm::find() else { return };
    let files = chart_dir("otel-collector").join("files");
    for (label, expected_file) in [
        ("collector-defaults", "zero-account.yaml"),
        ("collector-sentry-existing-secret", "otel-collector.yaml"),
        ("collector-sentry-values", "otel-collector.yaml"),
        ("collector-tail-sampling", "tail-sampling.yaml"),
        ("collector-sentry-otlp", "sentry-otlp.yaml"),
    ] {
        let rendered = helm.render(&release(label));
        let config = rendered.string_data("ConfigMap", "otel-collector");
        assert_eq!(
            config["config.yaml"],
            read(&files.join(expected_file)),
            "{label} should run {expected_file}"
        );
    }
    // Asking for a Sentry pipeline without credentials fails with a message.
    let err = helm
        .template(&release("collector-defaults").set("pipeline=sentry"))
        .expect_err("pipeline=sentry without credentials must fail");
    assert!(err.stderr.contains("SENTRY_AUTH_TOKEN"), "{}", err.stderr);
}

/// Env var names that carry credentials.
fn is_credential(name: &str) -> bool {
    [
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "DSN",
        "SUPERUSER",
        "PUBLIC_KEY",
        "OTLP_TRACES_URL",
        "SENTRY_ORG",
        "SENTRY_PROJECT",
    ]
    .iter()
    .any(|marker| name.contains(marker))
}

#[test]
fn credentials_reach_containers_only_through_secret_key_refs() {
    let Some(helm) = Helm::find() else { return };
    let mut secret_refs = 0;
    for (label, release) in matrix() {
        let yaml = helm
            .template(&release)
            .unwrap_or_else(|e| panic!("helm template {label}: {e}"));
        let rendered = Rendered::parse(&yaml);
        for (owner, spec) in rendered.pod_specs() {
            let containers = spec
                .containers
                .iter()
                .chain(spec.init_containers.iter().flatten());
            for container in containers {
                assert!(
                    container.env_from.is_none(),
                    "{label} {owner}: envFrom hides what is injected"
                );
                for env in container.env.iter().flatten() {
                    if let Some(value) = &env.value {
                        for sentinel in SENTINELS {
                            assert!(
                                !value.contains(sentinel),
                                "{label} {owner}: {} holds a credential literally",
                                env.name
                            );
                        }
                    }
                    if is_credential(&env.name) {
                        let secret_ref = env
                            .value_from
                            .as_ref()
                            .and_then(|v| v.secret_key_ref.as_ref())
                            .unwrap_or_else(|| {
                                panic!(
                                    "{label} {owner}: {} must come from a secretKeyRef",
                                    env.name
                                )
                            });
                        assert_eq!(secret_ref.key, env.name, "{label} {owner}");
                        secret_refs += 1;
                    }
                }
            }
        }
        // Credentials given as values live in a Secret, and only there.
        for object in &rendered.objects {
            let text = serde_json::to_string(object).unwrap_or_default();
            let in_secret = object["kind"] == "Secret";
            for sentinel in SENTINELS {
                if text.contains(sentinel) {
                    assert!(in_secret, "{label}: {} holds {sentinel}", object["kind"]);
                }
            }
        }
    }
    assert!(secret_refs >= 20, "only {secret_refs} secretKeyRefs seen");

    // The values given end up in the chart-made Secrets.
    let collector = helm.render(&release("collector-sentry-values"));
    let secret = collector.string_data("Secret", "otel-collector-sentry");
    assert_eq!(secret["SENTRY_AUTH_TOKEN"], AUTH_TOKEN);
    assert_eq!(secret["SENTRY_ORG"], ORG);
    assert_eq!(secret["SENTRY_PROJECT"], PROJECT);
    let somework = helm.render(&release("somework-dsn"));
    assert_eq!(
        somework.string_data("Secret", "somework-sentry")["SENTRY_DSN"],
        DSN
    );
    // With an existing Secret the charts create none and read the user's.
    for label in [
        "collector-sentry-existing-secret",
        "somework-existing-secret",
        "demo-backends-existing-secret",
    ] {
        let rendered = helm.render(&release(label));
        assert_eq!(
            rendered.of_kind("Secret").count(),
            0,
            "{label} must not create a Secret"
        );
    }
    let container = deployment_container(
        &helm.render(&release("somework-existing-secret")),
        "somework-frontend",
    );
    let dsn_ref = env_of(&container, "SENTRY_DSN")
        .and_then(|e| e.value_from.clone())
        .and_then(|v| v.secret_key_ref)
        .map(|r| r.name);
    assert_eq!(dsn_ref.as_deref(), Some("somework-sentry-dsn"));
}

#[test]
fn pods_are_hardened_and_probed() {
    let Some(helm) = Helm::find() else { return };
    let mut pods = 0;
    for (label, release) in matrix() {
        let rendered = helm.render(&release);
        for (owner, spec) in rendered.pod_specs() {
            pods += 1;
            let pod = spec.security_context.clone().unwrap_or_default();
            assert_eq!(pod.run_as_non_root, Some(true), "{label} {owner}");
            assert!(
                pod.run_as_user.is_some_and(|uid| uid > 0),
                "{label} {owner}: numeric non-root UID"
            );
            assert_eq!(
                pod.seccomp_profile.map(|p| p.type_),
                Some("RuntimeDefault".to_owned()),
                "{label} {owner}"
            );
            assert_eq!(
                spec.automount_service_account_token,
                Some(false),
                "{label} {owner}"
            );
            let is_test_pod = owner.starts_with("Pod/");
            let init = spec.init_containers.iter().flatten();
            for container in spec.containers.iter().chain(init) {
                let at = format!("{label} {owner} container {}", container.name);
                let sc = container.security_context.clone().unwrap_or_default();
                assert_eq!(sc.allow_privilege_escalation, Some(false), "{at}");
                assert_eq!(sc.read_only_root_filesystem, Some(true), "{at}");
                assert_eq!(
                    sc.capabilities.and_then(|c| c.drop),
                    Some(vec!["ALL".to_owned()]),
                    "{at}"
                );
                let limits = container
                    .resources
                    .as_ref()
                    .and_then(|r| r.limits.clone())
                    .unwrap_or_default();
                assert!(limits.contains_key("memory"), "{at}: no memory limit");
            }
            if !is_test_pod {
                // Whatever serves a port is probed; the load generator
                // serves nothing and has no port.
                for container in spec.containers.iter().filter(|c| c.ports.is_some()) {
                    let at = format!("{label} {owner} container {}", container.name);
                    assert!(
                        container.readiness_probe.is_some(),
                        "{at}: no readiness probe"
                    );
                    assert!(
                        container.liveness_probe.is_some(),
                        "{at}: no liveness probe"
                    );
                }
            }
        }
    }
    assert!(pods >= 20, "only {pods} pod specs checked");

    // The service's probes hit its health endpoints.
    let somework = helm.render(&release("somework-defaults"));
    for name in ["somework-frontend", "somework-backend"] {
        let c = deployment_container(&somework, name);
        let path = |p: &Option<somework_testkit::helm::k8s_openapi::api::core::v1::Probe>| {
            p.as_ref()
                .and_then(|p| p.http_get.as_ref())
                .and_then(|h| h.path.clone())
        };
        assert_eq!(
            path(&c.readiness_probe).as_deref(),
            Some("/readyz"),
            "{name}"
        );
        assert_eq!(
            path(&c.liveness_probe).as_deref(),
            Some("/healthz"),
            "{name}"
        );
    }
    // The collector's probes hit the health_check extension.
    let collector = deployment_container(
        &helm.render(&release("collector-defaults")),
        "otel-collector",
    );
    let port = collector
        .readiness_probe
        .and_then(|p| p.http_get)
        .map(|h| h.port);
    assert_eq!(
        port,
        Some(somework_testkit::helm::k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("health".to_owned()))
    );
    let health_port = collector
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some("health"));
    assert_eq!(health_port.map(|p| p.container_port), Some(13133));
}

#[test]
fn gomemlimit_is_derived_from_the_memory_limit() {
    let Some(helm) = Helm::find() else { return };
    for (limit, percent, expected) in [
        ("512Mi", "80", "409MiB"),
        ("1Gi", "80", "819MiB"),
        ("2Gi", "90", "1843MiB"),
    ] {
        let rendered = helm.render(
            &release("collector-defaults")
                .set(&format!("resources.limits.memory={limit}"))
                .set(&format!("goMemLimitPercent={percent}")),
        );
        let container = deployment_container(&rendered, "otel-collector");
        assert_eq!(
            env_value(&container, "GOMEMLIMIT"),
            expected,
            "{limit} at {percent}%"
        );
        let limits = container
            .resources
            .and_then(|r| r.limits)
            .unwrap_or_default();
        assert_eq!(limits["memory"].0, limit);
    }
}

#[test]
fn frontend_calls_the_backend_service() {
    let Some(helm) = Helm::find() else { return };
    let rendered = helm.render(&release("somework-defaults"));
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
    let Some(helm) = Helm::find() else { return };
    let defaults = helm.render(&release("somework-defaults"));
    assert!(defaults.find("Deployment", "somework-loadgen").is_none());

    let rendered = helm.render(&release("somework-loadgen"));
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

#[test]
fn resource_attributes_come_from_the_downward_api() {
    let Some(helm) = Helm::find() else { return };
    let rendered = helm.render(&release("somework-defaults"));
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
    let rendered = helm.render(&release("somework-defaults").set("otel.samplingRatio=0.25"));
    let container = deployment_container(&rendered, "somework-frontend");
    assert_eq!(env_value(&container, "OTEL_TRACES_SAMPLER_ARG"), "0.25");
}

#[test]
fn shutdown_fits_in_the_grace_period() {
    let Some(helm) = Helm::find() else { return };
    let rendered = helm.render(&release("somework-defaults"));
    for name in ["somework-frontend", "somework-backend"] {
        let spec = rendered.deployment_pod_spec(name);
        let sleep = only_container(&spec)
            .lifecycle
            .as_ref()
            .and_then(|l| l.pre_stop.as_ref())
            .and_then(|h| {
                assert!(
                    h.exec.is_none(),
                    "the distroless image has no shell for an exec hook"
                );
                h.sleep.as_ref()
            })
            .map(|s| s.seconds)
            .unwrap_or_else(|| panic!("{name}: no preStop sleep"));
        let grace = spec.termination_grace_period_seconds.unwrap_or(30);
        // preStop sleep, then SIGTERM: the service flushes within ~10 s.
        assert!(sleep >= 1, "{name}: endpoints need time to drain");
        assert!(
            grace >= sleep + 10 + 5,
            "{name}: grace {grace}s < sleep {sleep}s + 10s flush + margin"
        );
    }
}

#[test]
fn helm_test_pod_calls_the_endpoints() {
    let Some(helm) = Helm::find() else { return };
    let rendered = helm.render(&release("somework-defaults"));
    let test_pod = rendered
        .of_kind("Pod")
        .find(|p| p["metadata"]["annotations"]["helm.sh/hook"] == "test")
        .unwrap_or_else(|| panic!("no helm test pod in {:?}", rendered.names()));
    let spec: PodSpec = somework_testkit::helm::typed(&test_pod["spec"]);
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

#[test]
fn zero_account_mode_wires_jaeger_and_bugsink() {
    let Some(helm) = Helm::find() else { return };
    let backends = helm.render(&release("demo-backends-defaults"));
    let collector = helm.render(&release("collector-defaults"));
    let somework = helm.render(&release("somework-defaults"));

    // The collector exports to the Jaeger Service's OTLP/gRPC port.
    let jaeger: Service = backends.get("Service", "jaeger");
    let otlp = jaeger
        .spec
        .and_then(|s| s.ports)
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.name.as_deref() == Some("otlp-grpc"))
        .map(|p| p.port);
    let jaeger_endpoint = format!(
        "{}.{}.svc.cluster.local:{}",
        jaeger.metadata.name.unwrap_or_default(),
        jaeger.metadata.namespace.unwrap_or_default(),
        otlp.unwrap_or_default()
    );
    let container = deployment_container(&collector, "otel-collector");
    assert_eq!(
        env_value(&container, "JAEGER_OTLP_ENDPOINT"),
        jaeger_endpoint
    );
    let config = &collector.string_data("ConfigMap", "otel-collector")["config.yaml"];
    assert!(
        config.contains("endpoint: ${env:JAEGER_OTLP_ENDPOINT"),
        "{config}"
    );

    // The services' DSN is the Bugsink project the init container creates.
    let values = yaml_value(&read(&chart_dir("demo-backends").join("values.yaml")));
    let project = &values["bugsink"]["project"];
    let bugsink: Service = backends.get("Service", "bugsink");
    let port = bugsink.spec.and_then(|s| s.ports).unwrap_or_default()[0].port;
    let expected_dsn = format!(
        "http://{}@{}.{}.svc.cluster.local:{port}/{}",
        project["key"].as_str().unwrap_or_default(),
        bugsink.metadata.name.unwrap_or_default(),
        bugsink.metadata.namespace.unwrap_or_default(),
        project["id"]
    );
    assert_eq!(
        somework.string_data("Secret", "somework-sentry")["SENTRY_DSN"],
        expected_dsn
    );
    let spec = backends.deployment_pod_spec("bugsink");
    let create = spec
        .init_containers
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.name == "create-project")
        .unwrap_or_else(|| panic!("bugsink has no create-project init container"));
    assert_eq!(
        env_value(&create, "BUGSINK_PROJECT_KEY"),
        project["key"].as_str().unwrap_or_default()
    );
    assert_eq!(
        env_value(&create, "BUGSINK_PROJECT_ID"),
        project["id"].to_string()
    );
    assert_eq!(
        create.command.as_deref(),
        Some(
            &[
                "bugsink-manage".to_owned(),
                "shell".to_owned(),
                "--command".to_owned()
            ][..]
        )
    );
}

#[test]
fn schema_rejects_bad_values() {
    let Some(helm) = Helm::find() else { return };
    for (release, path) in [
        (
            Release::new("somework").set("otel.samplingRatio=2"),
            "/otel/samplingRatio",
        ),
        (
            Release::new("somework").set("otel.endpoint=otel-collector:4317"),
            "/otel/endpoint",
        ),
        (
            Release::new("somework").set("frontend.errorRate=1.5"),
            "/frontend/errorRate",
        ),
        (
            Release::new("somework").set("loadgen.rps=0"),
            "/loadgen/rps",
        ),
        (
            Release::new("somework").set("loadgen.mix=work=1"),
            "/loadgen/mix",
        ),
        (
            Release::new("somework").set("loadgen.enabled=maybe"),
            "/loadgen/enabled",
        ),
        (Release::new("somework").set("replicas=3"), "replicas"),
        (
            Release::new("otel-collector").set("pipeline=bogus"),
            "/pipeline",
        ),
        (
            Release::new("otel-collector").set("resources.limits.memory=1G"),
            "/resources/limits/memory",
        ),
        (
            Release::new("demo-backends").set("bugsink.project.key=not-hex"),
            "/bugsink/project/key",
        ),
    ] {
        let err = helm
            .template(&release)
            .expect_err(&format!("helm accepted {release}"));
        assert_ne!(err.status, Some(0));
        assert!(
            err.stderr
                .contains("values don't meet the specifications of the schema")
                && err.stderr.contains(path),
            "{release}: expected a schema error at {path}, got: {}",
            err.stderr
        );
    }
}

#[test]
fn collector_image_matches_the_builder_manifest() {
    let Some(helm) = Helm::find() else { return };
    let manifest = yaml_value(&read(
        &tools::repo_root().join("collector-config/builder-config.yaml"),
    ));
    let version = manifest["dist"]["version"].as_str().unwrap_or_default();
    assert!(!version.is_empty());
    let container = deployment_container(
        &helm.render(&release("collector-defaults")),
        "otel-collector",
    );
    assert_eq!(
        container.image.as_deref(),
        Some(format!("otel/opentelemetry-collector-contrib:{version}").as_str())
    );
}

#[test]
fn every_object_has_the_standard_labels() {
    let Some(helm) = Helm::find() else { return };
    for (label, release) in matrix() {
        let rendered = helm.render(&release);
        for object in &rendered.objects {
            let labels = &object["metadata"]["labels"];
            for key in [
                "app.kubernetes.io/name",
                "app.kubernetes.io/instance",
                "app.kubernetes.io/version",
                "app.kubernetes.io/managed-by",
                "helm.sh/chart",
            ] {
                assert!(
                    labels[key].is_string(),
                    "{label}: {} {} lacks {key}",
                    object["kind"],
                    object["metadata"]["name"]
                );
            }
            assert_eq!(
                object["metadata"]["namespace"], release.namespace,
                "{label}"
            );
        }
    }
}

#[test]
fn notes_say_where_to_look() {
    let Some(helm) = Helm::find() else { return };
    let notes = helm.notes(&release("somework-defaults"));
    for needle in [
        "helm test somework",
        "port-forward service/somework-frontend",
        "port-forward service/jaeger 16686",
        "port-forward service/bugsink 8000",
    ] {
        assert!(
            notes.contains(needle),
            "somework NOTES lack `{needle}`:\n{notes}"
        );
    }
    let notes = helm.notes(&release("somework-dsn"));
    assert!(
        notes.contains("trace:<trace_id>") && !notes.contains("jaeger"),
        "{notes}"
    );
    let notes = helm.notes(&release("collector-defaults"));
    assert!(
        notes.contains("zero-account") && notes.contains("16686"),
        "{notes}"
    );
    let notes = helm.notes(&release("demo-backends-defaults"));
    assert!(
        notes.contains("ADMIN_PASSWORD") && notes.contains("http://localhost:16686"),
        "{notes}"
    );
}

#[test]
fn rendered_collector_configs_pass_otelcol_validate() {
    let Some(helm) = Helm::find() else { return };
    let Some(otelcol) = tools::require("bin/otelcol-somework", "run scripts/build-collector.sh")
    else {
        return;
    };
    let dir = scratch_dir();
    for (pipeline, _) in PIPELINE_FILES {
        let rendered = helm.render(
            &release("collector-sentry-existing-secret").set(&format!("pipeline={pipeline}")),
        );
        let config = &rendered.string_data("ConfigMap", "otel-collector")["config.yaml"];
        let path = dir.path().join(format!("{pipeline}.yaml"));
        std::fs::write(&path, config).unwrap_or_else(|e| panic!("{e}"));
        // The values the Deployment would give it (credentials from the Secret).
        let container = deployment_container(&rendered, "otel-collector");
        let mut command = Command::new(&otelcol);
        command
            .arg("validate")
            .arg(format!("--config={}", path.display()));
        for env in container.env.iter().flatten() {
            let value = match (&env.value, &env.value_from) {
                (Some(v), _) => v.clone(),
                (None, Some(_)) if env.name == "SENTRY_OTLP_TRACES_URL" => OTLP_URL.to_owned(),
                (None, Some(_)) => format!("{}-from-secret", env.name.to_lowercase()),
                (None, None) => String::new(),
            };
            command.env(&env.name, value);
        }
        let out = command
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", otelcol.display()));
        assert!(
            out.status.success(),
            "otelcol-somework validate rejected the {pipeline} config: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // And it can fail: an unknown exporter is rejected.
    let path = dir.path().join("broken.yaml");
    let broken = read(&chart_dir("otel-collector").join("files/zero-account.yaml"))
        .replace("otlp_grpc/jaeger", "nosuchexporter/jaeger");
    std::fs::write(&path, broken).unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(&otelcol)
        .arg("validate")
        .arg(format!("--config={}", path.display()))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !out.status.success(),
        "validate accepted an unknown exporter"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("mkdir {}: {e}", to.display()));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()))
    {
        let entry = entry.unwrap_or_else(|e| panic!("{e}"));
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target)
                .unwrap_or_else(|e| panic!("copy {}: {e}", entry.path().display()));
        }
    }
}

fn render_k8s_check(root: &Path) -> std::process::Output {
    Command::new("bash")
        .arg(root.join("scripts/render-k8s.sh"))
        .arg("--check")
        .env("SOMEWORK_TOOLS_DIR", tools::tools_dir())
        .output()
        .unwrap_or_else(|e| panic!("run render-k8s.sh: {e}"))
}

#[test]
fn render_k8s_check_passes_and_catches_drift() {
    let Some(_helm) = Helm::find() else { return };
    let root = tools::repo_root();
    let out = render_k8s_check(&root);
    assert!(
        out.status.success(),
        "scripts/render-k8s.sh --check failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A copy of the repository's relevant parts, changed one way at a time.
    let work = scratch_dir();
    for dir in ["scripts", "helm", "collector-config", "k8s"] {
        copy_dir(&root.join(dir), &work.path().join(dir));
    }
    assert!(
        render_k8s_check(work.path()).status.success(),
        "the copy should be up to date"
    );
    for (file, change) in [
        ("k8s/30-somework.yaml", "# hand edit\n"),
        ("collector-config/otel-collector.yaml", "# drifted\n"),
        ("helm/somework/values.yaml", "logFormat: text\n"),
    ] {
        let path = work.path().join(file);
        let original = read(&path);
        std::fs::write(&path, format!("{original}{change}")).unwrap_or_else(|e| panic!("{e}"));
        let out = render_k8s_check(work.path());
        assert!(!out.status.success(), "--check missed a change to {file}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("stale"),
            "{file}"
        );
        std::fs::write(&path, original).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn workflows_pass_actionlint() {
    let Some(actionlint) = tools::require(
        "bin/actionlint",
        "run scripts/install-k8s-tools.sh (needs Go)",
    ) else {
        return;
    };
    let root = tools::repo_root();
    let mut command = Command::new(actionlint);
    command.current_dir(&root).arg("-no-color");
    // actionlint checks `run:` scripts with shellcheck when it finds it.
    let shellcheck = tools::tools_dir().join("bin/shellcheck");
    if shellcheck.exists() {
        command.arg(format!("-shellcheck={}", shellcheck.display()));
    }
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("run actionlint: {e}"));
    assert!(
        out.status.success(),
        "actionlint: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(root.join(".github/workflows/e2e-kind.yml").exists());
}

#[test]
fn every_chart_has_a_readme_schema_and_notes() {
    for chart in CHARTS {
        let dir = chart_dir(chart);
        for file in [
            "README.md",
            "values.schema.json",
            "templates/NOTES.txt",
            "Chart.yaml",
            "values.yaml",
        ] {
            assert!(dir.join(file).exists(), "helm/{chart}/{file} is missing");
        }
        // Every top-level value is documented in the README's values table.
        let values = yaml_value(&read(&dir.join("values.yaml")));
        let readme = read(&dir.join("README.md"));
        for key in values.as_object().into_iter().flatten().map(|(k, _)| k) {
            assert!(
                readme.contains(&format!("`{key}")),
                "helm/{chart}/README.md does not document `{key}`"
            );
        }
    }
}

/// Kills a child process when dropped, so a failing test leaves no server behind.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 exchange with a server on 127.0.0.1; returns the status code.
fn http_status(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<u16> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .ok()?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

/// Runs the Bugsink Deployment's `create-project` init container against the
/// real Bugsink release the image carries (from PyPI), with the image's own
/// settings template, and checks that the project it creates accepts events
/// sent with the somework chart's zero-account DSN.
#[test]
fn bugsink_init_container_creates_the_project_of_the_services_dsn() {
    let Some(helm) = Helm::find() else { return };
    let Some(manage) = tools::require(
        "bugsink-venv/bin/bugsink-manage",
        "run scripts/install-bugsink.sh",
    ) else {
        return;
    };
    let venv_bin = manage
        .parent()
        .unwrap_or_else(|| panic!("no parent of {}", manage.display()));
    let backends = helm.render(&release("demo-backends-defaults"));
    let spec = backends.deployment_pod_spec("bugsink");
    let init = spec
        .init_containers
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.name == "create-project")
        .unwrap_or_else(|| panic!("no create-project init container"));

    // The image's settings: Bugsink's docker template, which reads everything
    // from the environment. Only its fixed /tmp paths move into the scratch dir.
    let templates = std::fs::read_dir(venv_bin.join("../lib"))
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(Result::ok)
        .map(|python| {
            python
                .path()
                .join("site-packages/bugsink/conf_templates/docker.py.template")
        })
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("no docker.py.template in {}", venv_bin.display()));
    let dir = scratch_dir();
    let scratch = dir.path().display().to_string();
    let conf = read(&templates).replace(
        "/tmp/snappea.sqlite3",
        &format!("{scratch}/snappea.sqlite3"),
    ) + &format!("\nBUGSINK[\"INGEST_STORE_BASE_DIR\"] = \"{scratch}/ingestion\"\n");
    std::fs::write(dir.path().join("bugsink_conf.py"), conf).unwrap_or_else(|e| panic!("{e}"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"));

    // The init container's environment: literal values as rendered, Secret
    // values made up, paths and URL pointed at this machine.
    let mut env: Vec<(String, String)> = Vec::new();
    for var in init.env.iter().flatten() {
        let value = match (var.name.as_str(), &var.value) {
            ("DATABASE_PATH", _) => format!("{scratch}/db.sqlite3"),
            ("BASE_URL", _) => format!("http://127.0.0.1:{port}"),
            ("PORT", _) => port.to_string(),
            (_, Some(v)) => v.clone(),
            ("SECRET_KEY", None) => {
                "k".repeat(10) + "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"
            }
            (name, None) => panic!("unexpected Secret-backed env {name} in create-project"),
        };
        env.push((var.name.clone(), value));
    }
    let command = init.command.clone().unwrap_or_default();
    assert_eq!(command.first().map(String::as_str), Some("bugsink-manage"));
    let run = |program: &str, args: &[String]| {
        Command::new(venv_bin.join(program))
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("DJANGO_SETTINGS_MODULE", "bugsink_conf")
            .env("PYTHONPATH", dir.path())
            .current_dir(dir.path())
            .output()
            .unwrap_or_else(|e| panic!("run {program}: {e}"))
    };
    let init_args: Vec<String> = command[1..]
        .iter()
        .chain(init.args.iter().flatten())
        .cloned()
        .collect();

    let somework = helm.render(&release("somework-defaults"));
    let dsn = somework.string_data("Secret", "somework-sentry")["SENTRY_DSN"].clone();
    let (key, project_id) = dsn
        .strip_prefix("http://")
        .and_then(|rest| rest.split_once('@'))
        .and_then(|(key, rest)| {
            rest.rsplit_once('/')
                .map(|(_, id)| (key.to_owned(), id.to_owned()))
        })
        .unwrap_or_else(|| panic!("not a DSN: {dsn}"));

    for expected in ["created", "updated"] {
        let out = run("bugsink-manage", &init_args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "create-project failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains(&format!(
                "{expected} project somework DSN http://{key}@127.0.0.1:{port}/{project_id}"
            )),
            "second run must keep the project; got: {stdout}"
        );
    }

    // What the image's command does next: snappea's queue, then gunicorn.
    let out = run(
        "bugsink-manage",
        &[
            "migrate".into(),
            "snappea".into(),
            "--database=snappea".into(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = Command::new(venv_bin.join("gunicorn"))
        .args([
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--workers",
            "1",
            "bugsink.wsgi",
        ])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("DJANGO_SETTINGS_MODULE", "bugsink_conf")
        .env("PYTHONPATH", dir.path())
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(KillOnDrop)
        .unwrap_or_else(|e| panic!("start gunicorn: {e}"));
    let ready = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        http_status(port, "GET", "/health/ready", &[], "") == Some(200)
    });
    assert!(ready, "Bugsink did not become ready on port {port}");

    // An event with the services' DSN is accepted; a wrong key is refused.
    let event = r#"{"event_id":"4f2b3a6c1d8e4b5f9a0c7d6e5f4a3b2c","platform":"other","level":"error","message":"helm chart wiring check"}"#;
    let store = format!("/api/{project_id}/store/");
    let auth = |key: &str| {
        format!("Sentry sentry_version=7, sentry_client=somework-tests/1.0, sentry_key={key}")
    };
    let good = http_status(
        port,
        "POST",
        &store,
        &[
            ("Content-Type", "application/json"),
            ("X-Sentry-Auth", &auth(&key)),
        ],
        event,
    );
    assert_eq!(
        good,
        Some(200),
        "Bugsink refused an event sent with the services' DSN {dsn}"
    );
    let wrong = http_status(
        port,
        "POST",
        &store,
        &[
            ("Content-Type", "application/json"),
            ("X-Sentry-Auth", &auth("ffffffffffffffffffffffffffffffff")),
        ],
        event,
    );
    assert_eq!(wrong, Some(403), "Bugsink must refuse a wrong key");
    drop(server);
}
