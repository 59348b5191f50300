//! The otel-collector chart's `config` value and its pipelines as a user
//! changes them: a user's `config` is merged last, the tests' merge is the
//! collector's own, the image carries the builder's components, and a new
//! backend is one overlay plus one schema entry.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use somework_testkit::helm::k8s_openapi::api::core::v1::Container;
use somework_testkit::helm::{Release, scratch_dir, yaml_value};
use somework_testkit::tools;

use super::collector::{
    COLLECTOR, otelcol_validate, pipeline_label, pipeline_release, validate_env, write_files,
};
use crate::helpers::{
    Charts, collector_config, collector_files, deployment_container, given, merge_config,
    pipelines, read,
};

/// A user's `config` (ci/config-values.yaml) goes last, so it wins: the
/// merged configuration keeps all of the pipeline and adds the user's
/// processor and exporter, and the real collector validates it. Without the
/// pipeline's files under it, the same `config` is refused: the collector
/// merges, it does not replace.
#[test]
fn user_config_is_merged_over_the_pipeline() {
    let Some(charts) = Charts::find() else { return };
    let label = "otel-collector/config";
    let rendered = charts.render(label);
    let files = collector_files(&rendered, COLLECTOR);
    let keys: Vec<&str> = files.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(keys, ["base.yaml", "zero-account.yaml", "config.yaml"]);

    let given = charts.release(label).values;
    let user = yaml_value(&read(&given[0]))["config"].clone();
    let pipeline = collector_config(&charts.render("otel-collector/defaults"), COLLECTOR);
    let merged = collector_config(&rendered, COLLECTOR);
    let traces = &merged["service"]["pipelines"]["traces"];
    assert_eq!(
        traces["processors"],
        serde_json::json!(["memory_limiter", "resource/cluster", "batch"])
    );
    assert_eq!(
        traces["exporters"],
        serde_json::json!([
            "otlp_grpc/jaeger",
            "otlp_http/archive",
            "debug",
            "span_metrics"
        ])
    );
    assert_eq!(
        merged["exporters"]["otlp_http/archive"],
        user["exporters"]["otlp_http/archive"]
    );
    // Everything else is the pipeline's, untouched.
    let mut expected = pipeline.clone();
    merge_config(&mut expected, user);
    assert_eq!(merged, expected);
    for kept in [
        "otlp_grpc/jaeger",
        "otlp_http/victorialogs",
        "prometheus",
        "debug",
    ] {
        assert_eq!(
            merged["exporters"][kept], pipeline["exporters"][kept],
            "{kept}"
        );
    }
    assert_eq!(merged["connectors"], pipeline["connectors"]);
    assert_eq!(
        merged["service"]["pipelines"]["logs"],
        pipeline["service"]["pipelines"]["logs"]
    );

    let Some(otelcol) = tools::require("bin/otelcol-somework", "run scripts/build-collector.sh")
    else {
        return;
    };
    let container = deployment_container(&rendered, COLLECTOR);
    let dir = scratch_dir();
    let configs = write_files(dir.path(), &files);
    let out = otelcol_validate(&otelcol, &configs, &container);
    assert!(
        out.status.success(),
        "otelcol-somework validate rejected the merged config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let alone = otelcol_validate(&otelcol, &configs[2..], &container);
    assert!(
        !alone.status.success(),
        "the user's config alone validated: the test proves no merge"
    );
}

/// `collector_config`, which these tests read, merges as the real collector
/// does: for every pipeline and for a user's `config`, the collector prints
/// the same resolved configuration for the chart's files as for the one
/// file that `collector_config` makes of them.
#[test]
fn the_merge_the_tests_read_is_the_collectors() {
    let Some(charts) = Charts::find() else { return };
    let Some(otelcol) = tools::require("bin/otelcol-somework", "run scripts/build-collector.sh")
    else {
        return;
    };
    let dir = scratch_dir();
    let mut releases: Vec<(String, Release)> = pipelines()
        .into_iter()
        .map(|pipeline| (pipeline.clone(), pipeline_release(&charts, &pipeline)))
        .collect();
    releases.push(("config".to_owned(), charts.release("otel-collector/config")));
    for (name, release) in releases {
        let rendered = charts.render_release(&release);
        let container = deployment_container(&rendered, COLLECTOR);
        let files_dir = dir.path().join(&name);
        std::fs::create_dir_all(&files_dir).unwrap_or_else(|e| panic!("{e}"));
        let files = write_files(&files_dir, &collector_files(&rendered, COLLECTOR));
        // JSON is YAML, so the collector reads the merged value as it is.
        let merged = dir.path().join(format!("{name}-merged.yaml"));
        let text = serde_json::to_string_pretty(&collector_config(&rendered, COLLECTOR))
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&merged, text).unwrap_or_else(|e| panic!("{e}"));
        let from_files = print_config(&otelcol, &files, &container);
        let from_merged = print_config(&otelcol, &[merged], &container);
        assert_eq!(from_files, from_merged, "{name}");
        assert!(from_files.contains("span_metrics"), "{name}: {from_files}");
    }
}

/// `otelcol-somework print-config` over `configs`: the resolved configuration.
fn print_config(otelcol: &Path, configs: &[PathBuf], container: &Container) -> String {
    let mut command = Command::new(otelcol);
    command.arg("print-config");
    for config in configs {
        command.arg(format!("--config={}", config.display()));
    }
    command.env_clear();
    for (name, value) in validate_env(container) {
        command.env(name, value);
    }
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", otelcol.display()));
    assert!(
        out.status.success(),
        "print-config failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
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

/// What a newcomer does to add a backend, done in a copy of the chart: one
/// overlay in `pipelines/` and one entry in the schema's `pipeline` enum, and
/// nothing else. The chart then runs it over base.yaml, reads its setting
/// from the file's default and its credential from the Secret, says it picked
/// it, and the real collector validates the result.
#[test]
fn adding_a_backend_is_one_overlay_and_one_schema_entry() {
    let Some(charts) = Charts::find() else { return };
    let work = scratch_dir();
    let chart = work.path().join("otel-collector");
    crate::helpers::copy_dir(&somework_testkit::helm::chart_dir("otel-collector"), &chart);

    // 1. The overlay: an OTLP backend with a token.
    let overlay = "\
# The tempo pipeline, over base.yaml: traces to Grafana Tempo.
exporters:
  otlp_grpc/tempo:
    endpoint: ${env:TEMPO_ENDPOINT:-tempo.observability.svc.cluster.local:4317}
    headers:
      authorization: Bearer ${env:TEMPO_TOKEN}
service:
  pipelines:
    traces:
      exporters: [otlp_grpc/tempo, debug, span_metrics]
";
    std::fs::write(chart.join("pipelines/tempo.yaml"), overlay).unwrap_or_else(|e| panic!("{e}"));
    // 2. The schema entry.
    let schema_path = chart.join("values.schema.json");
    let mut schema: Value =
        serde_json::from_str(&read(&schema_path)).unwrap_or_else(|e| panic!("{e}"));
    schema["properties"]["pipeline"]["enum"]
        .as_array_mut()
        .unwrap_or_else(|| panic!("no pipeline enum"))
        .push(Value::from("tempo"));
    std::fs::write(&schema_path, schema.to_string()).unwrap_or_else(|e| panic!("{e}"));

    let release = pipeline_release(&charts, "tempo").chart_at(&chart);
    let rendered = charts.render_release(&release);
    assert_eq!(pipeline_label(&rendered), "tempo");
    let files = collector_files(&rendered, COLLECTOR);
    let keys: Vec<&str> = files.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(keys, ["base.yaml", "tempo.yaml"]);
    assert_eq!(files[1].1, overlay);
    let container = deployment_container(&rendered, COLLECTOR);
    let token = container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "TEMPO_TOKEN")
        .and_then(|e| e.value_from.clone())
        .and_then(|v| v.secret_key_ref)
        .unwrap_or_else(|| panic!("TEMPO_TOKEN does not come from the Secret"));
    assert_eq!(token.key, "TEMPO_TOKEN");
    assert_eq!(
        token.name,
        given(
            "otel-collector/sentry-existing-secret",
            "/sentry/existingSecret"
        )
    );
    // A setting with a default and no chart value is left to the file.
    assert!(
        container
            .env
            .iter()
            .flatten()
            .all(|e| e.name != "TEMPO_ENDPOINT")
    );
    let merged = collector_config(&rendered, COLLECTOR);
    assert_eq!(
        merged["service"]["pipelines"]["traces"]["exporters"],
        serde_json::json!(["otlp_grpc/tempo", "debug", "span_metrics"])
    );

    let Some(otelcol) = tools::require("bin/otelcol-somework", "run scripts/build-collector.sh")
    else {
        return;
    };
    let dir = scratch_dir();
    let out = otelcol_validate(&otelcol, &write_files(dir.path(), &files), &container);
    assert!(
        out.status.success(),
        "the new backend does not validate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
