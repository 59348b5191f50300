//! One source for each fact that many files must agree on, and a test that
//! fails when one of them drifts:
//! - the collector's pipelines: the `pipeline` enum of the otel-collector
//!   chart's values schema (`helpers::pipelines`), one file each in the
//!   chart's `pipelines/`, picked by the chart alone;
//! - the namespaces: `OBS_NS` and `APP_NS` in `scripts/lib.sh`
//!   (`somework_testkit::helm::namespaces`), which the scripts use and
//!   every in-cluster address and `kubectl -n` must name.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use somework_testkit::collector::PIPELINES_DIR;
use somework_testkit::helm::{chart_dir, namespaces};
use somework_testkit::tools::repo_root;

use crate::helpers::{pipelines, read};

/// The words (`[a-z][a-z0-9-]*`) that follow each `marker` in `text`.
fn words_after(text: &str, marker: &str) -> Vec<String> {
    text.match_indices(marker)
        .map(|(at, _)| {
            text[at + marker.len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
                .collect::<String>()
        })
        .filter(|word| word.starts_with(|c: char| c.is_ascii_lowercase()))
        .collect()
}

/// The words after `marker` where it is a Kubernetes namespace flag: the
/// command on that line before it is neither `grep` nor containerd's `ctr`.
fn kubernetes_namespace_flags(text: &str, marker: &str) -> Vec<String> {
    text.lines()
        .filter(|line| {
            line.split(marker)
                .next()
                .is_some_and(|command| !command.contains("grep") && !command.contains("ctr "))
        })
        .flat_map(|line| words_after(line, marker))
        .collect()
}

fn files_under(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, found);
        } else {
            found.push(path);
        }
    }
}

/// Every text file of the project that can name a pipeline or a namespace.
fn project_files() -> Vec<(PathBuf, String)> {
    let root = repo_root();
    let mut paths = Vec::new();
    for dir in [
        "src",
        "helm",
        "collector-config",
        "k8s",
        "scripts",
        ".github",
        "tests",
    ] {
        files_under(&root.join(dir), &mut paths);
    }
    for file in ["README.md", "Makefile"] {
        paths.push(root.join(file));
    }
    paths
        .into_iter()
        .filter_map(|path| {
            let text = std::fs::read_to_string(&path).ok()?;
            Some((
                path.strip_prefix(&root).unwrap_or(&path).to_path_buf(),
                text,
            ))
        })
        .collect()
}

#[test]
fn every_file_names_only_the_pipelines_of_the_schema() {
    let pipelines: BTreeSet<String> = pipelines().into_iter().collect();

    // Each pipeline has its file in the one home of the pipelines, and every
    // file there is a pipeline's, but base.yaml (under all of them) and
    // local.yaml (make run's).
    let mut files = Vec::new();
    files_under(&repo_root().join(PIPELINES_DIR), &mut files);
    let overlays: BTreeSet<String> = files
        .iter()
        .filter_map(|path| path.file_stem())
        .map(|stem| stem.to_string_lossy().into_owned())
        .filter(|stem| stem != "base" && stem != "local")
        .collect();
    assert_eq!(
        overlays, pipelines,
        "{PIPELINES_DIR} holds other pipelines than the schema names"
    );

    // The chart's templates compare the pipeline only with known names, and
    // pick only known ones.
    let templates = chart_dir("otel-collector").join("templates");
    let mut named = Vec::new();
    for entry in std::fs::read_dir(&templates).unwrap_or_else(|e| panic!("{e}")) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        let text = read(&path);
        for marker in ["$pipeline \"", "\"otel-collector.pipeline\" .) \""] {
            for word in words_after(&text, marker) {
                named.push((path.display().to_string(), word));
            }
        }
    }
    let helpers = read(&templates.join("_helpers.tpl"));
    let picker = helpers
        .split("{{- define \"otel-collector.pipeline\" -}}")
        .nth(1)
        .and_then(|rest| rest.split("{{- end -}}\n{{- end -}}").next())
        .unwrap_or_else(|| panic!("_helpers.tpl defines no otel-collector.pipeline"));
    for line in picker.lines().map(str::trim) {
        if !line.is_empty() && !line.starts_with("{{") {
            named.push(("_helpers.tpl".to_owned(), line.to_owned()));
        }
    }
    assert!(named.len() >= 4, "too few pipeline names found: {named:?}");
    let unknown: Vec<_> = named
        .iter()
        .filter(|(_, p)| !pipelines.contains(p))
        .collect();
    assert!(
        unknown.is_empty(),
        "pipelines the schema does not know (helm/otel-collector/values.schema.json): {unknown:?}"
    );

    // The chart is the only place that picks one: scripts/up.sh passes
    // credentials and reads the chart's pick back.
    let up = read(&repo_root().join("scripts/up.sh"));
    for marker in ["pipeline=", "mode="] {
        assert!(
            !up.contains(marker),
            "scripts/up.sh picks a pipeline ({marker}); give the chart credentials instead"
        );
    }
}

/// The namespace each chart's Services live in, by Service name.
fn namespace_of_service(service: &str) -> Option<&'static str> {
    let namespaces = namespaces();
    match service {
        "otel-collector" | "jaeger" | "bugsink" | "victoria-logs" | "prometheus" => {
            Some(&namespaces.observability)
        }
        s if s.starts_with("somework-") => Some(&namespaces.app),
        _ => None,
    }
}

#[test]
fn every_in_cluster_address_and_namespace_flag_names_the_scripts_namespaces() {
    let namespaces = namespaces();
    let known = [namespaces.observability.as_str(), namespaces.app.as_str()];
    let mut checked = 0;
    let mut wrong = Vec::new();
    for (path, text) in project_files() {
        let at = |what: String| format!("{}: {what}", path.display());
        // <service>.<namespace>.svc.cluster.local
        for (end, _) in text.match_indices(".svc.cluster.local") {
            let host: String = text[..end]
                .chars()
                .rev()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let Some((service, namespace)) = host.rsplit_once('.') else {
                continue; // a templated name, e.g. {{ $ns }}.svc.cluster.local
            };
            let service = service.rsplit('.').next().unwrap_or(service);
            if let Some(expected) = namespace_of_service(service) {
                checked += 1;
                if namespace != expected {
                    wrong.push(at(format!(
                        "{host}.svc.cluster.local (expected {expected})"
                    )));
                }
            }
        }
        // kubectl -n NS, helm --namespace NS (not grep's -n, nor ctr's
        // containerd namespace); kube-system is Kubernetes' own (CoreDNS).
        for marker in [" -n ", " --namespace "] {
            for word in kubernetes_namespace_flags(&text, marker) {
                checked += 1;
                if word != "kube-system" && !known.contains(&word.as_str()) {
                    wrong.push(at(format!("{}{word}", marker.trim_start())));
                }
            }
        }
        // The NetworkPolicy's default scrape namespace.
        for word in words_after(&text, "kubernetes.io/metadata.name: ") {
            checked += 1;
            if word != namespaces.observability {
                wrong.push(at(format!("metadata.name: {word}")));
            }
        }
    }
    assert!(checked >= 30, "only {checked} namespace mentions found");
    assert!(
        wrong.is_empty(),
        "files disagree with OBS_NS={} and APP_NS={} in scripts/lib.sh:\n{}",
        namespaces.observability,
        namespaces.app,
        wrong.join("\n")
    );
}
