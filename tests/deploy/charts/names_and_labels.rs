//! What every chart shares with the upstream collector chart: names made
//! from the release (the releases `make up` installs keep the documented
//! names), pod templates labelled with their selector only, so that a chart
//! upgrade alone restarts no pod, and `serviceAccount.create/name`.

use std::collections::BTreeSet;

use serde_json::Value;
use somework_testkit::helm::{CHARTS, Release, Rendered, chart_dir, scratch_dir};

use crate::helpers::{Charts, copy_dir, deployment_container, env_value, read};

/// `kind/name` of every object a render makes.
fn object_names(rendered: &Rendered) -> BTreeSet<String> {
    rendered.names().into_iter().collect()
}

/// The pod templates of a render, by `kind/name` of their owner.
fn pod_templates(rendered: &Rendered) -> Vec<(String, Value)> {
    rendered
        .objects
        .iter()
        .filter(|o| {
            matches!(
                o["kind"].as_str(),
                Some("Deployment" | "StatefulSet" | "DaemonSet" | "Job")
            )
        })
        .map(|o| {
            let owner = format!(
                "{}/{}",
                o["kind"].as_str().unwrap_or("?"),
                o["metadata"]["name"].as_str().unwrap_or("?")
            );
            (owner, o["spec"]["template"].clone())
        })
        .collect()
}

#[test]
fn names_follow_the_release_and_keep_the_documented_defaults() {
    let Some(charts) = Charts::find() else { return };
    // The releases scripts/up.sh installs keep the names the other charts'
    // defaults and the docs address.
    for (chart, expected) in [
        (
            "otel-collector",
            &["Service/otel-collector", "Deployment/otel-collector"][..],
        ),
        (
            "somework",
            &["Service/somework-frontend", "Deployment/somework-backend"][..],
        ),
        (
            "demo-backends",
            &[
                "Service/jaeger",
                "Service/bugsink",
                "Service/victoria-logs",
                "Service/prometheus",
            ][..],
        ),
    ] {
        let defaults = object_names(&charts.render_release(&Release::new(chart)));
        for name in expected {
            assert!(
                defaults.contains(*name),
                "{chart}: no {name} in {defaults:?}"
            );
        }
        // A second release in the same namespace collides with none of them.
        let canary = charts.render_release(&Release::new(chart).named("canary"));
        let clashes: Vec<_> = object_names(&canary)
            .intersection(&defaults)
            .cloned()
            .collect();
        assert!(
            clashes.is_empty(),
            "{chart}: release canary reuses {clashes:?}"
        );
        for name in object_names(&canary) {
            assert!(
                name.contains("/canary-"),
                "{chart}: {name} ignores the release"
            );
        }
    }

    // Upstream's rule: a release whose name holds the chart's is the name;
    // fullnameOverride wins over both.
    let names = |release: Release| object_names(&charts.render_release(&release));
    assert!(
        names(Release::new("otel-collector").named("otel-collector-canary"))
            .contains("Service/otel-collector-canary")
    );
    assert!(
        names(Release::new("otel-collector").set("fullnameOverride=collector"))
            .contains("Service/collector")
    );

    // Inside a renamed release, the objects find each other.
    let canary = charts.render_release(&Release::new("somework").named("canary"));
    let frontend = deployment_container(&canary, "canary-somework-frontend");
    assert_eq!(
        env_value(&frontend, "DOWNSTREAM_URL"),
        "http://canary-somework-backend:8080"
    );
    let canary = charts.render_release(&Release::new("otel-collector").named("canary"));
    let spec = canary.deployment_pod_spec("canary-otel-collector");
    assert_eq!(
        spec.service_account_name.as_deref(),
        Some("canary-otel-collector")
    );
    let config_volume = spec
        .volumes
        .unwrap_or_default()
        .into_iter()
        .find(|v| v.name == "config");
    assert_eq!(
        config_volume.and_then(|v| v.config_map).map(|c| c.name),
        Some("canary-otel-collector".to_owned())
    );
    let backends = charts.render_release(&Release::new("demo-backends").named("canary"));
    let jaeger = backends.string_data("ConfigMap", "canary-jaeger")["config.yaml"].clone();
    assert!(
        jaeger.contains("http://canary-prometheus."),
        "Jaeger reads another release's Prometheus:\n{jaeger}"
    );
}

#[test]
fn pod_templates_carry_their_selector_labels_only() {
    let Some(charts) = Charts::find() else { return };
    let mut checked = 0;
    for set in charts.value_sets() {
        let rendered = charts.render_release(&set.release());
        for object in rendered.of_kind("Deployment") {
            let name = &object["metadata"]["name"];
            let selector = &object["spec"]["selector"]["matchLabels"];
            let labels = &object["spec"]["template"]["metadata"]["labels"];
            assert_eq!(labels, selector, "{}: Deployment {name}", set.label());
            // The object itself keeps the standard labels.
            assert!(object["metadata"]["labels"]["helm.sh/chart"].is_string());
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} Deployments rendered");
}

/// Every pod template of every value set is the same after a bump of the
/// chart's version, so `helm upgrade` to a new chart version alone restarts
/// no pod. (The cluster suite's `upgrade` test checks the pods' UIDs.)
#[test]
fn a_chart_version_bump_changes_no_pod_template() {
    let Some(charts) = Charts::find() else { return };
    let work = scratch_dir();
    for chart in CHARTS {
        let bumped = work.path().join(chart);
        copy_dir(&chart_dir(chart), &bumped);
        let manifest = bumped.join("Chart.yaml");
        let text = read(&manifest);
        let version = text
            .lines()
            .find_map(|line| line.strip_prefix("version: "))
            .unwrap_or_else(|| panic!("{chart}: Chart.yaml has no version"));
        let next = format!("{version}-bumped");
        std::fs::write(
            &manifest,
            text.replace(&format!("version: {version}"), &format!("version: {next}")),
        )
        .unwrap_or_else(|e| panic!("{e}"));

        for set in charts.value_sets().into_iter().filter(|s| s.chart == chart) {
            let before = charts.render_release(&set.release());
            let after = charts.render_release(&set.release().chart_at(&bumped));
            let templates = pod_templates(&before);
            assert!(!templates.is_empty(), "{}: no pod template", set.label());
            assert_eq!(
                templates,
                pod_templates(&after),
                "{}: a chart version bump changes a pod template",
                set.label()
            );
            // The bump is real: the objects' own labels carry it.
            let chart_label = |rendered: &Rendered| {
                rendered
                    .of_kind("Deployment")
                    .next()
                    .map(|d| d["metadata"]["labels"]["helm.sh/chart"].clone())
            };
            assert_eq!(
                chart_label(&after),
                Some(Value::String(format!("{chart}-{next}"))),
                "{}",
                set.label()
            );
            assert_ne!(chart_label(&before), chart_label(&after));
        }
    }
}

#[test]
fn service_account_create_and_name() {
    let Some(charts) = Charts::find() else { return };
    let accounts = |rendered: &Rendered| -> BTreeSet<String> {
        rendered
            .of_kind("ServiceAccount")
            .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_owned))
            .collect()
    };
    let used = |rendered: &Rendered| -> BTreeSet<String> {
        rendered
            .objects
            .iter()
            .filter(|o| o["kind"] == "Deployment")
            .map(|o| {
                o["spec"]["template"]["spec"]["serviceAccountName"]
                    .as_str()
                    .unwrap_or_else(|| {
                        panic!("{} has no serviceAccountName", o["metadata"]["name"])
                    })
                    .to_owned()
            })
            .collect()
    };
    for chart in CHARTS {
        // By default the chart makes the account its pods run as.
        let defaults = charts.render_release(&Release::new(chart));
        assert_eq!(accounts(&defaults).len(), 1, "{chart}");
        assert_eq!(used(&defaults), accounts(&defaults), "{chart}");

        let named =
            charts.render_release(&Release::new(chart).set("serviceAccount.name=collector-sa"));
        assert_eq!(
            accounts(&named),
            BTreeSet::from(["collector-sa".to_owned()]),
            "{chart}"
        );
        assert_eq!(used(&named), accounts(&named), "{chart}");

        for (sets, expected) in [
            (
                &["serviceAccount.create=false", "serviceAccount.name=shared"][..],
                "shared",
            ),
            (&["serviceAccount.create=false"][..], "default"),
        ] {
            let release = sets.iter().fold(Release::new(chart), |r, s| r.set(s));
            let rendered = charts.render_release(&release);
            assert!(accounts(&rendered).is_empty(), "{chart} {sets:?}");
            assert_eq!(
                used(&rendered),
                BTreeSet::from([expected.to_owned()]),
                "{chart} {sets:?}"
            );
        }
    }
}
