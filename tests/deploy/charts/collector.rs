//! The otel-collector chart: its Service is where the services send, each
//! pipeline runs its configuration file verbatim, the credentials choose the
//! pipeline, and the rendered configurations pass the collector's validate.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use somework_testkit::helm::k8s_openapi::api::core::v1::{Container, Service};
use somework_testkit::helm::{Release, chart_dir, scratch_dir, yaml_value};
use somework_testkit::tools;

use crate::helpers::{
    Charts, SecretFile, deployment_container, env_value, given, only_container, pipelines, read,
    secret_file,
};

/// The files in the chart's `files/`, by name.
fn chart_files() -> BTreeMap<String, String> {
    let dir = chart_dir("otel-collector").join("files");
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.unwrap_or_else(|e| panic!("{e}")).path())
        .map(|path| {
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            (name, read(&path))
        })
        .collect()
}

/// The collector with Sentry credentials from a Secret, running `pipeline`.
fn pipeline_release(charts: &Charts, pipeline: &str) -> Release {
    charts
        .release("otel-collector/sentry-existing-secret")
        .set(&format!("pipeline={pipeline}"))
}

/// The configuration the chart gives the collector for `pipeline`.
fn pipeline_config(charts: &Charts, pipeline: &str) -> String {
    let rendered = charts.render_release(&pipeline_release(charts, pipeline));
    rendered.string_data("ConfigMap", "otel-collector")["config.yaml"].clone()
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

#[test]
fn each_pipeline_runs_a_file_of_its_own_verbatim() {
    let Some(charts) = Charts::find() else { return };
    let files = chart_files();
    let mut runs: BTreeMap<String, String> = BTreeMap::new();
    for pipeline in pipelines() {
        let config = pipeline_config(&charts, &pipeline);
        let file = files
            .iter()
            .find(|(_, text)| **text == config)
            .map(|(name, _)| name.clone())
            .unwrap_or_else(|| panic!("pipeline {pipeline} runs no file of files/ unchanged"));
        let rendered = charts.render_release(&pipeline_release(&charts, &pipeline));
        let container = deployment_container(&rendered, "otel-collector");
        assert_eq!(
            container.args,
            Some(vec!["--config=/conf/config.yaml".to_owned()])
        );
        runs.insert(pipeline, file);
    }
    // One file per pipeline, and no file that no pipeline runs.
    let used: BTreeSet<&String> = runs.values().collect();
    assert_eq!(
        used.len(),
        runs.len(),
        "two pipelines share a file: {runs:?}"
    );
    let unused: Vec<_> = files.keys().filter(|f| !used.contains(f)).collect();
    assert!(
        unused.is_empty(),
        "files/ holds files no pipeline runs: {unused:?}"
    );
}

#[test]
fn chart_copies_of_collector_config_match_the_originals() {
    let originals = tools::repo_root().join("collector-config");
    let copies: Vec<(String, String)> = chart_files()
        .into_iter()
        .filter(|(name, _)| originals.join(name).exists())
        .collect();
    for (file, text) in &copies {
        assert_eq!(
            *text,
            read(&originals.join(file)),
            "helm/otel-collector/files/{file} drifted from collector-config/{file}: run scripts/render-k8s.sh"
        );
    }
    // Every pipeline but the in-cluster zero-account one runs such a copy.
    let Some(charts) = Charts::find() else { return };
    for pipeline in pipelines().into_iter().filter(|p| p != "zero-account") {
        let config = pipeline_config(&charts, &pipeline);
        assert!(
            copies.iter().any(|(_, text)| *text == config),
            "pipeline {pipeline} runs no copy of a file in collector-config/"
        );
    }
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
        let config = rendered.string_data("ConfigMap", "otel-collector");
        assert_eq!(
            config["config.yaml"],
            pipeline_config(&charts, pipeline),
            "{label} should run the {pipeline} pipeline"
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

/// `otelcol-somework validate` over `configs`, merged in order, with the
/// environment the Deployment gives `container` (credentials from the
/// Secret as placeholders).
fn otelcol_validate(
    otelcol: &std::path::Path,
    configs: &[std::path::PathBuf],
    container: &Container,
) -> std::process::Output {
    let mut command = Command::new(otelcol);
    command.arg("validate");
    for config in configs {
        command.arg(format!("--config={}", config.display()));
    }
    for env in container.env.iter().flatten() {
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
        command.env(&env.name, value);
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
    assert_eq!(
        container.args.clone().unwrap_or_default(),
        ["--config=/conf/config.yaml", "--config=/conf/tls.yaml"]
    );
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
    let configs = ["config.yaml", "tls.yaml"].map(|name| {
        let path = dir.path().join(name);
        std::fs::write(&path, &data[name]).unwrap_or_else(|e| panic!("{e}"));
        path
    });
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
    let spec = defaults.deployment_pod_spec("otel-collector");
    assert_eq!(
        only_container(&spec).args.clone().unwrap_or_default(),
        ["--config=/conf/config.yaml"]
    );
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
        let config = &rendered.string_data("ConfigMap", "otel-collector")["config.yaml"];
        let path = dir.path().join(format!("{pipeline}.yaml"));
        std::fs::write(&path, config).unwrap_or_else(|e| panic!("{e}"));
        let container = deployment_container(&rendered, "otel-collector");
        let out = otelcol_validate(&otelcol, &[path], &container);
        assert!(
            out.status.success(),
            "otelcol-somework validate rejected the {pipeline} config: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // And it can fail: an unknown exporter is rejected.
    let path = dir.path().join("broken.yaml");
    let broken = pipeline_config(&charts, "zero-account")
        .replace("otlp_grpc/jaeger", "nosuchexporter/jaeger");
    assert!(broken.contains("nosuchexporter"), "no exporter to break");
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

#[test]
fn collector_image_matches_the_builder_manifest() {
    let Some(charts) = Charts::find() else { return };
    let manifest = yaml_value(&read(
        &tools::repo_root().join("collector-config/builder-config.yaml"),
    ));
    let version = manifest["dist"]["version"].as_str().unwrap_or_default();
    assert!(!version.is_empty());
    let container = charts.container("otel-collector/defaults", "otel-collector");
    assert_eq!(
        container.image.as_deref(),
        Some(format!("otel/opentelemetry-collector-contrib:{version}").as_str())
    );
}
