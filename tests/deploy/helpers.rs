//! `Charts`, the suite's `TestApp`: helm and the value sets in `helm/*/ci/`,
//! rendered into typed objects, with the lookups the chart tests share.

use std::path::Path;

use serde_json::Value;

use somework_testkit::helm::k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec};
use somework_testkit::helm::{
    Helm, HelmError, Release, Rendered, ValueSet, chart_dir, value_set, value_sets, yaml_value,
};

/// The helm that the tests render with; `None` (the test skips) when it is
/// not installed outside CI.
pub struct Charts {
    pub helm: Helm,
}

impl Charts {
    pub fn find() -> Option<Self> {
        Helm::find().map(|helm| Self { helm })
    }

    /// Every value set of every chart, labelled `chart/name`.
    pub fn value_sets(&self) -> Vec<ValueSet> {
        value_sets()
    }

    /// The release of the value set `label` (`chart/name`), to render as is
    /// or with more `--set`s.
    pub fn release(&self, label: &str) -> Release {
        value_set(label).release()
    }

    /// The value set `label`, rendered; panics with helm's message on failure.
    pub fn render(&self, label: &str) -> Rendered {
        self.helm.render(&self.release(label))
    }

    pub fn render_release(&self, release: &Release) -> Rendered {
        self.helm.render(release)
    }

    pub fn template(&self, release: &Release) -> Result<String, HelmError> {
        self.helm.template(release)
    }

    /// The only container of the Deployment `deployment` in the value set `label`.
    pub fn container(&self, label: &str, deployment: &str) -> Container {
        deployment_container(&self.render(label), deployment)
    }

    /// NOTES.txt as an install of the value set `label` prints it.
    pub fn notes(&self, label: &str) -> String {
        self.helm.notes(&self.release(label))
    }
}

/// The collector's pipelines, from the one place that names them all: the
/// `pipeline` enum of the otel-collector chart's values schema (less `""`,
/// which means "chosen by the credentials"). `one_source` checks that every
/// other file names only these.
pub fn pipelines() -> Vec<String> {
    let schema: serde_json::Value = serde_json::from_str(&read(
        &chart_dir("otel-collector").join("values.schema.json"),
    ))
    .unwrap_or_else(|e| panic!("values.schema.json: {e}"));
    let pipelines: Vec<String> = schema["properties"]["pipeline"]["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("the schema has no pipeline enum"))
        .iter()
        .filter_map(|p| p.as_str())
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    assert!(pipelines.len() >= 4, "only {pipelines:?} in the schema");
    pipelines
}

/// The credential values the value sets give (`sentry.*` credentials): each
/// must show up in a Secret and nowhere else.
pub fn sentinels() -> Vec<String> {
    let mut sentinels = Vec::new();
    for set in value_sets() {
        let sentry = &set.values()["sentry"];
        for key in [
            "authToken",
            "org",
            "project",
            "publicKey",
            "otlpTracesUrl",
            "otlpLogsUrl",
            "dsn",
        ] {
            if let Some(value) = sentry[key].as_str() {
                sentinels.push(value.to_owned());
            }
        }
    }
    sentinels
}

/// The value at `pointer` (e.g. `/sentry/authToken`) in the value set `label`.
pub fn given(label: &str, pointer: &str) -> String {
    value_set(label)
        .values()
        .pointer(pointer)
        .and_then(|v| v.as_str())
        .unwrap_or_else(|| panic!("{label} sets no {pointer}"))
        .to_owned()
}

pub fn env_of<'a>(container: &'a Container, name: &str) -> Option<&'a EnvVar> {
    container.env.iter().flatten().find(|e| e.name == name)
}

pub fn env_value(container: &Container, name: &str) -> String {
    env_of(container, name)
        .and_then(|e| e.value.clone())
        .unwrap_or_else(|| panic!("container {} has no literal env {name}", container.name))
}

/// The file at `path` in a container: the Secret whose volume is mounted
/// read-only at its directory, the key it is read from, and the volume's mode.
#[derive(Debug, PartialEq)]
pub struct SecretFile {
    pub secret: String,
    pub key: String,
    pub default_mode: Option<i32>,
}

/// Where the file at `path` in `container` comes from; panics when its
/// directory is not a read-only mount of a Secret volume of `spec`.
pub fn secret_file(spec: &PodSpec, container: &Container, path: &str) -> SecretFile {
    let (dir, key) = path
        .rsplit_once('/')
        .unwrap_or_else(|| panic!("{path} is not an absolute path"));
    let mount = container
        .volume_mounts
        .iter()
        .flatten()
        .find(|mount| mount.mount_path == dir)
        .unwrap_or_else(|| panic!("{}: nothing is mounted at {dir}", container.name));
    assert_eq!(mount.read_only, Some(true), "{}: {dir}", container.name);
    let volume = spec
        .volumes
        .iter()
        .flatten()
        .find(|volume| volume.name == mount.name)
        .unwrap_or_else(|| panic!("no volume {}", mount.name));
    let source = volume
        .secret
        .as_ref()
        .unwrap_or_else(|| panic!("volume {} is not a Secret", volume.name));
    SecretFile {
        secret: source.secret_name.clone().unwrap_or_default(),
        key: key.to_owned(),
        default_mode: source.default_mode,
    }
}

pub fn only_container(spec: &PodSpec) -> &Container {
    assert_eq!(spec.containers.len(), 1, "expected one container");
    &spec.containers[0]
}

pub fn deployment_container(rendered: &Rendered, name: &str) -> Container {
    only_container(&rendered.deployment_pod_spec(name)).clone()
}

/// The collector's `--config` files in a render, in the order the collector
/// merges them: (ConfigMap key, text) for each `--config=/conf/<key>` of the
/// collector Deployment `name`.
pub fn collector_files(rendered: &Rendered, name: &str) -> Vec<(String, String)> {
    let data = rendered.string_data("ConfigMap", name);
    deployment_container(rendered, name)
        .args
        .unwrap_or_default()
        .iter()
        .map(|arg| {
            let key = arg
                .strip_prefix("--config=/conf/")
                .unwrap_or_else(|| panic!("{name}: {arg} is not a --config from the ConfigMap"));
            let text = data
                .get(key)
                .unwrap_or_else(|| panic!("{name}: the ConfigMap has no {key}"));
            (key.to_owned(), text.clone())
        })
        .collect()
}

/// The configuration the collector `name` of a render runs: its `--config`
/// files merged as the collector merges them ([`merge_config`]).
pub fn collector_config(rendered: &Rendered, name: &str) -> Value {
    collector_files(rendered, name)
        .into_iter()
        .fold(Value::Null, |mut merged, (_, text)| {
            merge_config(&mut merged, yaml_value(&text));
            merged
        })
}

/// Merges `overlay` over `base` as the collector merges its `--config`
/// files: maps key by key, anything else (a list too) replaced whole.
/// `the_merge_the_tests_read_is_the_collectors` checks it against the real
/// collector.
pub fn merge_config(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                merge_config(base.entry(key).or_insert(Value::Null), value);
            }
        }
        (base, overlay) => *base = overlay,
    }
}

/// Copies the directory `from` to `to`, recursively.
pub fn copy_dir(from: &Path, to: &Path) {
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

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}
