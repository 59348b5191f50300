//! `helm upgrade` to a new version of each chart, and nothing else changed,
//! restarts no pod: the pod templates carry no chart version (the deploy
//! suite's `a_chart_version_bump_changes_no_pod_template` checks the
//! renders; this checks the pods' UIDs on the real cluster).

use std::collections::BTreeMap;
use std::path::Path;

use somework_testkit::tools::repo_root;

use crate::cluster::{APP_NS, LocalCluster, OBS_NS, report};

/// The releases `make up` installs, and their namespaces.
const RELEASES: [(&str, &str); 3] = [
    ("otel-collector", OBS_NS),
    ("demo-backends", OBS_NS),
    ("somework", APP_NS),
];

pub fn a_chart_version_bump_restarts_no_pod(cluster: &LocalCluster) {
    let work = tempfile::tempdir().expect("a temp dir");
    for (release, namespace) in RELEASES {
        let before = pods(cluster, namespace, release);
        assert!(!before.is_empty(), "release {release} has no pods");
        let generations_before = generations(cluster, namespace, release);

        let chart = work.path().join(release);
        let version = bumped_copy(&repo_root().join("helm").join(release), &chart);
        cluster.helm(&[
            "upgrade",
            release,
            &chart.display().to_string(),
            "--namespace",
            namespace,
            "--reuse-values",
            "--wait",
            "--timeout",
            "3m",
        ]);

        // The upgrade took: every Deployment says the new chart version...
        let charts = cluster.kubectl(&[
            "--namespace",
            namespace,
            "get",
            "deployments",
            "--selector",
            &format!("app.kubernetes.io/instance={release}"),
            "--output",
            "jsonpath={range .items[*]}{.metadata.labels.helm\\.sh/chart}{\"\\n\"}{end}",
        ]);
        let expected = format!("{release}-{version}");
        assert!(
            !charts.trim().is_empty() && charts.lines().all(|line| line == expected),
            "{release}: the Deployments do not carry {expected}: {charts}"
        );
        // ...and no pod template changed, so no pod was replaced.
        assert_eq!(
            generations(cluster, namespace, release),
            generations_before,
            "{release}: a Deployment's spec changed"
        );
        assert_eq!(
            pods(cluster, namespace, release),
            before,
            "{release}: the upgrade replaced pods"
        );
        report(&format!(
            "helm upgrade {release} to chart {version}: {} pods, none restarted",
            before.len()
        ));
    }
}

/// Copies the chart at `from` to `to` with its version bumped; returns the
/// new version.
fn bumped_copy(from: &Path, to: &Path) -> String {
    copy_dir(from, to);
    let manifest = to.join("Chart.yaml");
    let text = std::fs::read_to_string(&manifest).expect("Chart.yaml");
    let version = text
        .lines()
        .find_map(|line| line.strip_prefix("version: "))
        .expect("a version in Chart.yaml")
        .to_owned();
    let next = format!("{version}-upgrade");
    std::fs::write(
        &manifest,
        text.replace(&format!("version: {version}"), &format!("version: {next}")),
    )
    .expect("write Chart.yaml");
    next
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read the chart") {
        let path = entry.expect("an entry").path();
        let target = to.join(path.file_name().expect("a file name"));
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copy");
        }
    }
}

/// The release's pods: name to UID.
fn pods(cluster: &LocalCluster, namespace: &str, release: &str) -> BTreeMap<String, String> {
    pairs(&cluster.kubectl(&[
        "--namespace",
        namespace,
        "get",
        "pods",
        "--selector",
        &format!("app.kubernetes.io/instance={release}"),
        "--output",
        "jsonpath={range .items[*]}{.metadata.name} {.metadata.uid}{\"\\n\"}{end}",
    ]))
}

/// The release's Deployments: name to `metadata.generation`, which grows
/// with every change to the spec (its pod template included).
fn generations(cluster: &LocalCluster, namespace: &str, release: &str) -> BTreeMap<String, String> {
    pairs(&cluster.kubectl(&[
        "--namespace",
        namespace,
        "get",
        "deployments",
        "--selector",
        &format!("app.kubernetes.io/instance={release}"),
        "--output",
        "jsonpath={range .items[*]}{.metadata.name} {.metadata.generation}{\"\\n\"}{end}",
    ]))
}

fn pairs(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}
