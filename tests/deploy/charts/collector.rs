//! The otel-collector chart: its Service is where the services send, each
//! pipeline runs its files from `pipelines/` verbatim, merged in the order
//! the tests and `make run` merge them too, the credentials choose the
//! pipeline, and the merged configurations
//! pass the collector's validate.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use somework_testkit::collector::{self, PIPELINES_DIR};
use somework_testkit::helm::k8s_openapi::api::apps::v1::Deployment;
use somework_testkit::helm::k8s_openapi::api::core::v1::{Container, Service};
use somework_testkit::helm::{Release, Rendered, scratch_dir, yaml_value};
use somework_testkit::tools;

use crate::helpers::{
    Charts, SecretFile, collector_files, deployment_container, env_value, given, only_container,
    pipelines, read, secret_file,
};

pub(super) const COLLECTOR: &str = "otel-collector";

/// The collector with Sentry credentials from a Secret, running `pipeline`.
pub(super) fn pipeline_release(charts: &Charts, pipeline: &str) -> Release {
    charts
        .release("otel-collector/sentry-existing-secret")
        .set(&format!("pipeline={pipeline}"))
}

/// The `--config` files the chart gives the collector for `pipeline`.
fn pipeline_files(charts: &Charts, pipeline: &str) -> Vec<(String, String)> {
    collector_files(
        &charts.render_release(&pipeline_release(charts, pipeline)),
        COLLECTOR,
    )
}

/// Writes the `--config` files of a render into `dir`, in order.
pub(super) fn write_files(dir: &Path, files: &[(String, String)]) -> Vec<PathBuf> {
    files
        .iter()
        .map(|(key, text)| {
            let path = dir.join(key);
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
            path
        })
        .collect()
}

/// The pipeline label the chart puts on the collector's Deployment.
pub(super) fn pipeline_label(rendered: &Rendered) -> String {
    let deployment: Deployment = rendered.get("Deployment", COLLECTOR);
    deployment
        .metadata
        .labels
        .unwrap_or_default()
        .remove("otel-collector/pipeline")
        .unwrap_or_else(|| panic!("the collector Deployment has no otel-collector/pipeline label"))
}

#[test]
fn collector_service_is_reachable_at_the_services_default_endpoint() {
    let Some(charts) = Charts::find() else { return };
    let collector = charts.release("otel-collector/defaults");
    let rendered = charts.render_release(&collector);
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
    let somework = charts.render("somework/defaults");
    for name in ["somework-frontend", "somework-backend"] {
        let container = deployment_container(&somework, name);
        assert_eq!(env_value(&container, "OTEL_EXPORTER_OTLP_ENDPOINT"), dns);
    }
}

/// Each pipeline runs the files that `somework_testkit::collector::config`
/// names for it, verbatim and in the same order (so the pipeline suite and
/// `make run` run what the chart runs), with a file of its own; every file in
/// `pipelines/` runs in some pipeline, but `local.yaml`, which is `make run`'s.
#[test]
fn each_pipeline_runs_its_files_verbatim_in_the_merge_order() {
    let Some(charts) = Charts::find() else { return };
    let mut own_files: BTreeMap<String, String> = BTreeMap::new();
    let mut used: BTreeSet<PathBuf> = BTreeSet::new();
    for pipeline in pipelines() {
        let files = pipeline_files(&charts, &pipeline);
        let expected = collector::config(&pipeline);
        assert_eq!(
            files.iter().map(|(key, _)| key.clone()).collect::<Vec<_>>(),
            expected
                .iter()
                .map(|path| path
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned())
                .collect::<Vec<_>>(),
            "pipeline {pipeline}: --config order"
        );
        for ((key, text), path) in files.iter().zip(&expected) {
            assert_eq!(
                *text,
                read(path),
                "pipeline {pipeline}: {key} is not verbatim"
            );
        }
        assert_eq!(files[0].0, "base.yaml", "pipeline {pipeline}");
        let own = files.last().map(|(key, _)| key.clone()).unwrap_or_default();
        assert_eq!(own, format!("{pipeline}.yaml"));
        own_files.insert(pipeline.clone(), own);
        used.extend(expected);
    }
    // One file per pipeline, and no file that no pipeline runs.
    let distinct: BTreeSet<&String> = own_files.values().collect();
    assert_eq!(distinct.len(), own_files.len(), "{own_files:?}");
    used.extend(collector::config("local"));
    let mut unused = Vec::new();
    let mut dirs = vec![tools::repo_root().join(PIPELINES_DIR)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{e}")) {
            let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
            if path.is_dir() {
                dirs.push(path);
            } else if !used.contains(&path) {
                unused.push(path);
            }
        }
    }
    assert!(
        unused.is_empty(),
        "{PIPELINES_DIR} holds files no pipeline runs: {unused:?}"
    );
}

/// One source per fact: no setting of the collector is written twice with
/// the same value (an overlay only adds or changes what its base says), and
/// `collector-config/` holds the collector's build and the overlay that moves
/// every listener to loopback ports for a run on one machine, no pipeline.
#[test]
fn no_collector_configuration_exists_twice() {
    fn leaves(value: &Value, path: String, found: &mut Vec<(String, String)>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    leaves(value, format!("{path}.{key}"), found);
                }
            }
            leaf => found.push((path, leaf.to_string())),
        }
    }
    let mut written: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut files: BTreeSet<PathBuf> = BTreeSet::new();
    for pipeline in pipelines().into_iter().chain(["local".to_owned()]) {
        files.extend(collector::config(&pipeline));
    }
    for file in &files {
        let mut found = Vec::new();
        leaves(&yaml_value(&read(file)), String::new(), &mut found);
        let name = file.display().to_string();
        for leaf in found {
            written.entry(leaf).or_default().push(name.clone());
        }
    }
    let twice: Vec<_> = written
        .iter()
        .filter(|(_, files)| files.len() > 1)
        .collect();
    assert!(twice.is_empty(), "settings written twice: {twice:#?}");
    assert!(written.len() > 60, "only {} settings found", written.len());

    let mut in_collector_config: Vec<String> =
        std::fs::read_dir(tools::repo_root().join("collector-config"))
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|entry| entry.unwrap_or_else(|e| panic!("{e}")).file_name())
            .map(|name| name.to_string_lossy().into_owned())
            .collect();
    in_collector_config.sort();
    assert_eq!(
        in_collector_config,
        ["README.md", "builder-config.yaml", "loopback-ports.yaml"]
    );
}

#[test]
fn pipeline_follows_the_credentials_given() {
    let Some(charts) = Charts::find() else { return };
    for (label, pipeline) in [
        ("otel-collector/defaults", "zero-account"),
        ("otel-collector/sentry-existing-secret", "sentry"),
        ("otel-collector/sentry-credentials", "sentry"),
        ("otel-collector/tail-sampling", "tail-sampling"),
        ("otel-collector/sentry-otlp", "sentry-otlp"),
    ] {
        let rendered = charts.render(label);
        assert_eq!(
            collector_files(&rendered, COLLECTOR),
            pipeline_files(&charts, pipeline),
            "{label} should run the {pipeline} pipeline"
        );
        // The chart says which one it picked, on the Deployment and the
        // ConfigMap, for tools such as `somework verify`.
        assert_eq!(pipeline_label(&rendered), pipeline, "{label}");
        let config_map = rendered
            .find("ConfigMap", COLLECTOR)
            .unwrap_or_else(|| panic!("{label}: no ConfigMap"));
        assert_eq!(
            config_map["metadata"]["labels"]["otel-collector/pipeline"], pipeline,
            "{label}"
        );
    }
    // Asking for a Sentry pipeline without credentials fails with a message.
    let err = charts
        .template(
            &charts
                .release("otel-collector/defaults")
                .set("pipeline=sentry"),
        )
        .expect_err("pipeline=sentry without credentials must fail");
    assert!(err.stderr.contains("SENTRY_AUTH_TOKEN"), "{}", err.stderr);
}

/// The pipeline's environment is what its files read: a `${env:NAME:-...}`
/// setting from its value, a `${env:NAME}` credential from the Secret, and
/// nothing else (no Sentry URL for zero-account, no Jaeger for Sentry).
#[test]
fn environment_is_what_the_pipeline_files_read() {
    let Some(charts) = Charts::find() else { return };
    let credentials = |container: &Container| -> BTreeSet<String> {
        container
            .env
            .iter()
            .flatten()
            .filter(|e| {
                e.value_from
                    .as_ref()
                    .is_some_and(|v| v.secret_key_ref.is_some())
            })
            .map(|e| e.name.clone())
            .collect()
    };
    let settings = |container: &Container| -> BTreeSet<String> {
        container
            .env
            .iter()
            .flatten()
            .filter(|e| e.value.is_some() && e.name != "GOMEMLIMIT")
            .map(|e| e.name.clone())
            .collect()
    };
    let names =
        |list: &[&str]| -> BTreeSet<String> { list.iter().map(|s| (*s).to_owned()).collect() };
    for (pipeline, expected_settings, expected_credentials) in [
        (
            "zero-account",
            names(&["JAEGER_OTLP_ENDPOINT", "VICTORIALOGS_OTLP_ENDPOINT"]),
            names(&[]),
        ),
        (
            "sentry",
            names(&["SENTRY_URL"]),
            names(&["SENTRY_AUTH_TOKEN", "SENTRY_ORG", "SENTRY_PROJECT"]),
        ),
        (
            "tail-sampling",
            names(&[
                "SENTRY_URL",
                "TAIL_SAMPLING_LATENCY_MS",
                "TAIL_SAMPLING_PERCENT",
            ]),
            names(&["SENTRY_AUTH_TOKEN", "SENTRY_ORG", "SENTRY_PROJECT"]),
        ),
        (
            "sentry-otlp",
            names(&[]),
            names(&[
                "SENTRY_OTLP_TRACES_URL",
                "SENTRY_OTLP_LOGS_URL",
                "SENTRY_PUBLIC_KEY",
            ]),
        ),
    ] {
        let rendered = charts.render_release(&pipeline_release(&charts, pipeline));
        let container = deployment_container(&rendered, COLLECTOR);
        assert_eq!(settings(&container), expected_settings, "{pipeline}");
        assert_eq!(credentials(&container), expected_credentials, "{pipeline}");
    }
    let rendered = charts
        .render_release(&pipeline_release(&charts, "tail-sampling").set("tailSampling.percent=25"));
    let container = deployment_container(&rendered, COLLECTOR);
    assert_eq!(env_value(&container, "TAIL_SAMPLING_PERCENT"), "25");
}

#[test]
fn gomemlimit_is_derived_from_the_memory_limit() {
    let Some(charts) = Charts::find() else { return };
    for (limit, percent, expected) in [
        ("512Mi", "80", "409MiB"),
        ("1Gi", "80", "819MiB"),
        ("2Gi", "90", "1843MiB"),
    ] {
        let rendered = charts.render_release(
            &charts
                .release("otel-collector/defaults")
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

/// The environment the Deployment gives `container`, credentials from the
/// Secret as placeholders.
pub(super) fn validate_env(container: &Container) -> Vec<(String, String)> {
    container
        .env
        .iter()
        .flatten()
        .map(|env| {
            let value = match (&env.value, &env.value_from) {
                (Some(v), _) => v.clone(),
                (None, Some(_)) if env.name == "SENTRY_OTLP_TRACES_URL" => {
                    given("otel-collector/sentry-otlp", "/sentry/otlpTracesUrl")
                }
                (None, Some(_)) if env.name == "SENTRY_OTLP_LOGS_URL" => {
                    given("otel-collector/sentry-otlp", "/sentry/otlpLogsUrl")
                }
                (None, Some(_)) => format!("{}-from-secret", env.name.to_lowercase()),
                (None, None) => String::new(),
            };
            (env.name.clone(), value)
        })
        .collect()
}

/// `otelcol-somework validate` over `configs`, merged in order, with the
/// environment the Deployment gives `container` (credentials from the
/// Secret as placeholders).
pub(super) fn otelcol_validate(
    otelcol: &std::path::Path,
    configs: &[std::path::PathBuf],
    container: &Container,
) -> std::process::Output {
    let mut command = Command::new(otelcol);
    command.arg("validate");
    for config in configs {
        command.arg(format!("--config={}", config.display()));
    }
    for (name, value) in validate_env(container) {
        command.env(name, value);
    }
    command
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", otelcol.display()))
}

/// With `tls`, a second `--config` merges TLS into both OTLP receivers
/// (the pipeline file stays verbatim), from files the Secret's volume puts
/// in the container read-only, under the keys cert-manager writes; the
/// merged configuration passes validate. By default there is neither.
#[test]
fn tls_receivers_read_the_mounted_secret() {
    let Some(charts) = Charts::find() else { return };
    let Some(otelcol) = tools::require("bin/otelcol-somework", "run scripts/build-collector.sh")
    else {
        return;
    };
    let label = "otel-collector/tls";
    let rendered = charts.render(label);
    let spec = rendered.deployment_pod_spec("otel-collector");
    let container = only_container(&spec);
    let files = collector_files(&rendered, COLLECTOR);
    let keys: Vec<&str> = files.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(keys, ["base.yaml", "zero-account.yaml", "tls.yaml"]);
    let data = rendered.string_data("ConfigMap", "otel-collector");
    let overlay = yaml_value(&data["tls.yaml"]);
    let secret = given(label, "/tls/existingSecret");
    for protocol in ["grpc", "http"] {
        let tls = &overlay["receivers"]["otlp"]["protocols"][protocol]["tls"];
        for (setting, key) in [
            ("cert_file", "tls.crt"),
            ("key_file", "tls.key"),
            ("client_ca_file", "ca.crt"),
        ] {
            let path = tls[setting]
                .as_str()
                .unwrap_or_else(|| panic!("{protocol}: no tls.{setting} in {overlay:?}"));
            assert_eq!(
                secret_file(&spec, container, path),
                SecretFile {
                    secret: secret.clone(),
                    key: key.to_owned(),
                    // 0440: the key is for the collector's group only.
                    default_mode: Some(0o440),
                },
                "{protocol}: tls.{setting}"
            );
        }
    }
    let security = spec
        .security_context
        .as_ref()
        .expect("a pod security context");
    assert_eq!(security.fs_group, security.run_as_group);

    let dir = scratch_dir();
    let configs = write_files(dir.path(), &files);
    let out = otelcol_validate(&otelcol, &configs, container);
    assert!(
        out.status.success(),
        "otelcol-somework validate rejected the TLS overlay: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Server TLS alone asks clients for no certificate.
    let server_only = charts.render_release(
        &charts
            .release(label)
            .set("tls.requireClientCertificate=false"),
    );
    let overlay = yaml_value(&server_only.string_data("ConfigMap", "otel-collector")["tls.yaml"]);
    let grpc = &overlay["receivers"]["otlp"]["protocols"]["grpc"]["tls"];
    assert!(
        grpc["cert_file"].is_string() && grpc["client_ca_file"].is_null(),
        "{overlay:?}"
    );

    let defaults = charts.render("otel-collector/defaults");
    assert!(
        !defaults
            .string_data("ConfigMap", "otel-collector")
            .contains_key("tls.yaml")
    );
    let keys: Vec<String> = collector_files(&defaults, COLLECTOR)
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    assert_eq!(keys, ["base.yaml", "zero-account.yaml"]);
}

#[test]
fn rendered_collector_configs_pass_otelcol_validate() {
    let Some(charts) = Charts::find() else { return };
    let Some(otelcol) = tools::require("bin/otelcol-somework", "run scripts/build-collector.sh")
    else {
        return;
    };
    let dir = scratch_dir();
    for pipeline in pipelines() {
        let rendered = charts.render_release(&pipeline_release(&charts, &pipeline));
        let pipeline_dir = dir.path().join(&pipeline);
        std::fs::create_dir_all(&pipeline_dir).unwrap_or_else(|e| panic!("{e}"));
        let configs = write_files(&pipeline_dir, &collector_files(&rendered, COLLECTOR));
        let container = deployment_container(&rendered, "otel-collector");
        let out = otelcol_validate(&otelcol, &configs, &container);
        assert!(
            out.status.success(),
            "otelcol-somework validate rejected the {pipeline} config: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // And it can fail: an unknown exporter is rejected.
    let mut files = pipeline_files(&charts, "zero-account");
    let (_, overlay) = files
        .iter_mut()
        .find(|(key, _)| key == "zero-account.yaml")
        .unwrap_or_else(|| panic!("no zero-account.yaml"));
    let broken = overlay.replace("otlp_grpc/jaeger", "nosuchexporter/jaeger");
    assert!(broken.contains("nosuchexporter"), "no exporter to break");
    *overlay = broken;
    let broken_dir = dir.path().join("broken");
    std::fs::create_dir_all(&broken_dir).unwrap_or_else(|e| panic!("{e}"));
    let configs = write_files(&broken_dir, &files);
    let out = collector::validate(&otelcol, &configs, &[]);
    assert!(
        !out.status.success(),
        "validate accepted an unknown exporter"
    );
}
