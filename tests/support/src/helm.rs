//! The Helm charts in `helm/`, rendered and checked with the real tools that
//! `scripts/install-k8s-tools.sh` installs: helm v4, kubernetes-validate and
//! (for the collector configuration) the ocb-built collector.
//!
//! Rendered manifests are parsed with `serde_norway` into JSON values, so a
//! test can look at any field, and into typed `k8s_openapi` objects where the
//! shape matters (containers, probes, security contexts).

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use k8s_openapi;
use serde::Deserialize as _;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::tools;

const INSTALL_HINT: &str = "run scripts/install-k8s-tools.sh";

/// The three charts, by directory name under `helm/`.
pub const CHARTS: [&str; 3] = ["otel-collector", "somework", "demo-backends"];

/// Kubernetes versions every render is validated against: the oldest the
/// charts support (`kubeVersion: >=1.30`, `lifecycle.preStop.sleep`) and a
/// current one.
pub const KUBERNETES_VERSIONS: [&str; 2] = ["1.30.0", "1.34.0"];

/// The namespaces the scripts install the charts into, as `scripts/lib.sh`
/// sets them: the one place that names them.
#[derive(Debug)]
pub struct Namespaces {
    /// `OBS_NS`: the collector and the zero-account backends.
    pub observability: String,
    /// `APP_NS`: the services.
    pub app: String,
}

/// Reads `OBS_NS=` and `APP_NS=` from `scripts/lib.sh`, once.
pub fn namespaces() -> &'static Namespaces {
    static NAMESPACES: std::sync::OnceLock<Namespaces> = std::sync::OnceLock::new();
    NAMESPACES.get_or_init(|| {
        let path = tools::repo_root().join("scripts/lib.sh");
        let lib = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let assigned = |name: &str| {
            lib.lines()
                .find_map(|line| line.strip_prefix(&format!("{name}=")))
                .map(str::to_owned)
                .unwrap_or_else(|| panic!("scripts/lib.sh sets no {name}"))
        };
        Namespaces {
            observability: assigned("OBS_NS"),
            app: assigned("APP_NS"),
        }
    })
}

/// The directory of a chart.
pub fn chart_dir(chart: &str) -> PathBuf {
    tools::repo_root().join("helm").join(chart)
}

/// A values file in a chart's `ci/` folder, `helm/<chart>/ci/<name>-values.yaml`,
/// as chart-testing and the upstream opentelemetry-helm-charts keep them:
/// the value sets the tests render, which helm tooling can use too.
#[derive(Clone, Debug)]
pub struct ValueSet {
    pub chart: &'static str,
    pub name: String,
    pub path: PathBuf,
}

impl ValueSet {
    /// `chart/name`, e.g. `otel-collector/sentry-otlp`.
    pub fn label(&self) -> String {
        format!("{}/{}", self.chart, self.name)
    }

    /// The chart installed as scripts/up.sh does, with this file's values.
    pub fn release(&self) -> Release {
        Release::new(self.chart).values(&self.path)
    }

    /// The file parsed, for tests that compare a render with what it was given.
    pub fn values(&self) -> Value {
        let text = std::fs::read_to_string(&self.path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", self.path.display()));
        yaml_value(&text)
    }
}

/// Every value set of every chart, in a stable order.
pub fn value_sets() -> Vec<ValueSet> {
    let mut sets = Vec::new();
    for chart in CHARTS {
        let dir = chart_dir(chart).join("ci");
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
            let file = path
                .file_name()
                .and_then(|f| f.to_str())
                .unwrap_or_default();
            if let Some(name) = file.strip_suffix("-values.yaml") {
                sets.push(ValueSet {
                    chart,
                    name: name.to_owned(),
                    path: path.clone(),
                });
            }
        }
    }
    sets.sort_by_key(ValueSet::label);
    sets
}

/// The value set labelled `chart/name`; panics naming the file it expected.
pub fn value_set(label: &str) -> ValueSet {
    value_sets()
        .into_iter()
        .find(|set| set.label() == label)
        .unwrap_or_else(|| {
            let (chart, name) = label.split_once('/').unwrap_or((label, ""));
            panic!("no value set {label}: expected helm/{chart}/ci/{name}-values.yaml")
        })
}

/// A chart installation to render: chart, release name, namespace, values.
#[derive(Clone, Debug)]
pub struct Release {
    pub chart: &'static str,
    pub name: &'static str,
    pub namespace: &'static str,
    /// `--values` files, in order.
    pub values: Vec<PathBuf>,
    /// `--set` assignments, `key=value`, applied after the files.
    pub set: Vec<String>,
    /// The chart's directory, when not `helm/<chart>` (a modified copy).
    pub dir: Option<PathBuf>,
}

impl Release {
    /// The release as scripts/up.sh installs it, with default values.
    pub fn new(chart: &'static str) -> Self {
        let namespaces = namespaces();
        let namespace = match chart {
            "somework" => namespaces.app.as_str(),
            _ => namespaces.observability.as_str(),
        };
        Self {
            chart,
            name: chart,
            namespace,
            values: Vec::new(),
            set: Vec::new(),
            dir: None,
        }
    }

    /// Renders the chart from `dir` instead of `helm/<chart>`.
    pub fn chart_at(mut self, dir: &Path) -> Self {
        self.dir = Some(dir.to_path_buf());
        self
    }

    /// The same release under another name.
    pub fn named(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// Adds a `--values` file.
    pub fn values(mut self, file: &Path) -> Self {
        self.values.push(file.to_path_buf());
        self
    }

    /// Adds a `--set key=value`.
    pub fn set(mut self, assignment: &str) -> Self {
        self.set.push(assignment.to_owned());
        self
    }

    /// `helm <verb...> <chart dir> --namespace <ns> <extra...> --set ...`.
    fn command(&self, verb: &[&str], extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = verb.iter().map(|s| (*s).to_owned()).collect();
        let dir = self.dir.clone().unwrap_or_else(|| chart_dir(self.chart));
        args.push(dir.display().to_string());
        args.extend(["--namespace".to_owned(), self.namespace.to_owned()]);
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        for file in &self.values {
            args.extend(["--values".to_owned(), file.display().to_string()]);
        }
        for assignment in &self.set {
            args.extend(["--set".to_owned(), assignment.clone()]);
        }
        args
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -n {}", self.chart, self.namespace)?;
        for file in &self.values {
            let shown = file.strip_prefix(tools::repo_root()).unwrap_or(file);
            write!(f, " -f {}", shown.display())?;
        }
        for s in &self.set {
            write!(f, " --set {s}")?;
        }
        Ok(())
    }
}

/// helm failed: its exit status and what it printed.
#[derive(Debug)]
pub struct HelmError {
    pub status: Option<i32>,
    pub stderr: String,
}

impl fmt::Display for HelmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "helm exited with {:?}: {}", self.status, self.stderr)
    }
}

/// The helm binary from the tools directory.
pub struct Helm {
    bin: PathBuf,
}

impl Helm {
    /// Finds helm, or returns None (the test skips) when it is not installed
    /// outside CI. Under CI=true a missing helm panics.
    pub fn find() -> Option<Self> {
        tools::require("bin/helm", INSTALL_HINT).map(|bin| Self { bin })
    }

    pub fn path(&self) -> &Path {
        &self.bin
    }

    fn run(&self, args: &[String]) -> Output {
        Command::new(&self.bin)
            .args(args)
            // No kubeconfig, no repositories: everything here works offline.
            .env("KUBECONFIG", "/dev/null")
            .env(
                "HELM_CACHE_HOME",
                std::env::temp_dir().join("somework-helm-cache"),
            )
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()))
    }

    /// `helm lint --strict` with the release's values.
    pub fn lint_strict(&self, release: &Release) -> Result<String, HelmError> {
        checked(self.run(&release.command(&["lint", "--strict"], &[])))
    }

    /// `helm template`, including the `helm test` hooks.
    pub fn template(&self, release: &Release) -> Result<String, HelmError> {
        checked(self.run(&release.command(&["template", release.name], &[])))
    }

    /// `helm template`, panicking with helm's message on failure.
    pub fn render(&self, release: &Release) -> Rendered {
        let yaml = self
            .template(release)
            .unwrap_or_else(|e| panic!("helm template {release}: {e}"));
        Rendered::parse(&yaml)
    }

    /// The NOTES.txt text of an install, from a client-side dry run.
    pub fn notes(&self, release: &Release) -> String {
        let args = release.command(&["install", release.name], &["--dry-run=client"]);
        let out = checked(self.run(&args))
            .unwrap_or_else(|e| panic!("helm install --dry-run {release}: {e}"));
        out.split_once("\nNOTES:\n")
            .map(|(_, notes)| notes.to_owned())
            .unwrap_or_else(|| panic!("no NOTES in the dry run of {release}:\n{out}"))
    }
}

fn checked(out: Output) -> Result<String, HelmError> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(HelmError {
            status: out.status.code(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// The objects of one render.
#[derive(Clone, Debug)]
pub struct Rendered {
    pub objects: Vec<Value>,
}

impl Rendered {
    /// Parses a multi-document YAML stream, skipping empty documents.
    pub fn parse(yaml: &str) -> Self {
        let objects = serde_norway::Deserializer::from_str(yaml)
            .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("bad YAML: {e}\n{yaml}")))
            .filter(|v| !v.is_null())
            .collect();
        Self { objects }
    }

    /// All objects of a kind.
    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects.iter().filter(move |o| o["kind"] == kind)
    }

    /// The object of a kind and name, if rendered.
    pub fn find(&self, kind: &str, name: &str) -> Option<&Value> {
        self.objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
    }

    /// The object of a kind and name as a typed k8s-openapi object.
    pub fn get<T: DeserializeOwned>(&self, kind: &str, name: &str) -> T {
        let value = self
            .find(kind, name)
            .unwrap_or_else(|| panic!("no {kind} {name} in the render; have {:?}", self.names()));
        typed(value)
    }

    /// `kind/name` of every object.
    pub fn names(&self) -> Vec<String> {
        self.objects
            .iter()
            .map(|o| {
                format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap_or("?"),
                    o["metadata"]["name"].as_str().unwrap_or("?")
                )
            })
            .collect()
    }

    /// The pod template of the Deployment `name`; panics if there is none.
    pub fn deployment_pod_spec(&self, name: &str) -> k8s_openapi::api::core::v1::PodSpec {
        let deployment = self
            .find("Deployment", name)
            .unwrap_or_else(|| panic!("no Deployment {name} in {:?}", self.names()));
        typed(&deployment["spec"]["template"]["spec"])
    }

    /// Every pod spec in the render (Deployments' templates and bare Pods),
    /// with the name of the object that holds it.
    pub fn pod_specs(&self) -> Vec<(String, k8s_openapi::api::core::v1::PodSpec)> {
        let mut specs = Vec::new();
        for o in &self.objects {
            let name = format!(
                "{}/{}",
                o["kind"].as_str().unwrap_or("?"),
                o["metadata"]["name"].as_str().unwrap_or("?")
            );
            let spec = match o["kind"].as_str() {
                Some("Pod") => &o["spec"],
                Some("Deployment" | "StatefulSet" | "DaemonSet" | "Job") => {
                    &o["spec"]["template"]["spec"]
                }
                _ => continue,
            };
            specs.push((name, typed(spec)));
        }
        specs
    }

    /// The `data` of a ConfigMap, or the decoded `stringData`/`data` of a Secret.
    pub fn string_data(&self, kind: &str, name: &str) -> BTreeMap<String, String> {
        let object = self
            .find(kind, name)
            .unwrap_or_else(|| panic!("no {kind} {name} in the render; have {:?}", self.names()));
        let field = if kind == "Secret" {
            "stringData"
        } else {
            "data"
        };
        serde_json::from_value(object[field].clone()).unwrap_or_default()
    }
}

/// Converts a JSON value into a typed object, panicking with the reason.
pub fn typed<T: DeserializeOwned>(value: &Value) -> T {
    serde_json::from_value(value.clone()).unwrap_or_else(|e| {
        panic!(
            "cannot read {} as {}: {e}",
            value["kind"].as_str().unwrap_or("object"),
            std::any::type_name::<T>()
        )
    })
}

/// The kubernetes-validate CLI (Python, in the tools venv).
pub struct KubernetesValidate {
    bin: PathBuf,
}

impl KubernetesValidate {
    pub fn find() -> Option<Self> {
        tools::require("bin/kubernetes-validate", INSTALL_HINT).map(|bin| Self { bin })
    }

    /// Validates manifests strictly (unknown fields are errors) against the
    /// schemas of one Kubernetes version. Returns the tool's output on failure.
    pub fn validate(&self, manifests: &[(String, String)], version: &str) -> Result<(), String> {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let mut files = Vec::new();
        for (label, yaml) in manifests {
            let file_name: String = label
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            let path = dir.path().join(format!("{file_name}.yaml"));
            let mut file = std::fs::File::create(&path).unwrap_or_else(|e| panic!("{e}"));
            file.write_all(yaml.as_bytes())
                .unwrap_or_else(|e| panic!("{e}"));
            files.push(path);
        }
        let out = Command::new(&self.bin)
            .args(["--strict", "--quiet", "--kubernetes-version", version])
            .args(&files)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()));
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }
}

/// Parses one YAML document (a values file, the ocb manifest) into JSON.
pub fn yaml_value(text: &str) -> Value {
    serde_norway::from_str(text).unwrap_or_else(|e| panic!("bad YAML: {e}"))
}

/// Parses YAML that may not be YAML (a string inside a manifest): the value,
/// or the parser's message.
pub fn parse_yaml(text: &str) -> Result<Value, String> {
    serde_norway::from_str(text).map_err(|e| e.to_string())
}

/// A scratch directory, removed when dropped.
pub fn scratch_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"))
}
