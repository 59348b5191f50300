//! Every chart is complete and valid: lint, strict Kubernetes schemas over
//! every value set, its own values schema, standard labels, README and NOTES.

use somework_testkit::helm::{
    CHARTS, KUBERNETES_VERSIONS, KubernetesValidate, Release, chart_dir, yaml_value,
};

use crate::helpers::{Charts, read};

#[test]
fn lint_strict_passes_on_every_chart_and_value_set() {
    let Some(charts) = Charts::find() else { return };
    for set in charts.value_sets() {
        let (label, release) = (set.label(), set.release());
        let out = charts
            .helm
            .lint_strict(&release)
            .unwrap_or_else(|e| panic!("helm lint --strict {label} ({release}): {e}"));
        assert!(out.contains("0 chart(s) failed"), "{label}: {out}");
    }
}

#[test]
fn every_render_passes_kubernetes_validate_strict() {
    let Some(charts) = Charts::find() else { return };
    let Some(validator) = KubernetesValidate::find() else {
        return;
    };
    let renders: Vec<(String, String)> = charts
        .value_sets()
        .into_iter()
        .map(|set| {
            let yaml = charts
                .template(&set.release())
                .unwrap_or_else(|e| panic!("helm template {}: {e}", set.label()));
            (set.label(), yaml)
        })
        .collect();
    assert_eq!(renders.len(), 21);
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
fn schema_rejects_bad_values() {
    let Some(charts) = Charts::find() else { return };
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
        (
            Release::new("somework").set("otel.tls.existingSecret=otlp-tls"),
            "/otel/endpoint",
        ),
        (
            Release::new("somework")
                .set("otel.endpoint=https://collector:4317")
                .set("otel.tls.clientCertificate=true"),
            "/otel/tls/existingSecret",
        ),
        (Release::new("somework").set("replicas=3"), "replicas"),
        (
            Release::new("otel-collector").set("pipeline=bogus"),
            "/pipeline",
        ),
        (
            Release::new("otel-collector").set("tls.requireClientCertificate=true"),
            "/tls/existingSecret",
        ),
        (
            Release::new("otel-collector").set("resources.limits.memory=1G"),
            "/resources/limits/memory",
        ),
        (
            Release::new("otel-collector").set("redMetrics.serviceMonitor.interval=soon"),
            "/redMetrics/serviceMonitor/interval",
        ),
        (
            Release::new("otel-collector").set("redMetrics.scrapeAnnotations=yes"),
            "/redMetrics/scrapeAnnotations",
        ),
        (
            Release::new("otel-collector").set("config.exporterz.debug.verbosity=basic"),
            "/config",
        ),
        (
            Release::new("otel-collector").set("serviceAccount.create=maybe"),
            "/serviceAccount/create",
        ),
        (
            Release::new("somework").set("fullnameOverride=Not_A_Name"),
            "/fullnameOverride",
        ),
        (
            Release::new("demo-backends").set("bugsink.project.key=not-hex"),
            "/bugsink/project/key",
        ),
    ] {
        let err = charts
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

#[test]
fn every_object_has_the_standard_labels() {
    let Some(charts) = Charts::find() else { return };
    for set in charts.value_sets() {
        let (label, release) = (set.label(), set.release());
        let rendered = charts.render_release(&release);
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
    let Some(charts) = Charts::find() else { return };
    let notes = charts.notes("somework/defaults");
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
    let notes = charts.notes("somework/dsn");
    assert!(
        notes.contains("trace:<trace_id>") && !notes.contains("jaeger"),
        "{notes}"
    );
    let notes = charts.notes("otel-collector/defaults");
    assert!(
        notes.contains("zero-account") && notes.contains("16686"),
        "{notes}"
    );
    let notes = charts.notes("demo-backends/defaults");
    assert!(
        notes.contains("ADMIN_PASSWORD") && notes.contains("http://localhost:16686"),
        "{notes}"
    );
}
