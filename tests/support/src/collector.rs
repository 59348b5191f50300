//! Runs the real OpenTelemetry Collector that `scripts/build-collector.sh` builds
//! with ocb (`.tools/bin/otelcol-somework`), with the pipelines of the otel-collector
//! chart ([`PIPELINES_DIR`]), merged as the chart merges them.
//!
//! The configs bind fixed ports (4317, 4318, 13133, 8888, 8889, 55679), as a deployment
//! should. Tests move every one of them to free loopback ports with the overlay
//! `collector-config/loopback-ports.yaml` (a second `--config`, as `make run` uses
//! it), so any number of collectors can run at once: in one test
//! binary, in several, or beside a collector a developer left running. (Serialising
//! the tests on a lock instead would only work within one test binary and would make
//! the suite slower.) Each port is reserved for the collector's whole life
//! ([`ReservedPort`]): no other process can take it before the collector binds it,
//! nor while it restarts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::net::{ReservedPort, reserve_port};
use crate::process::{self, OutputReaders, ProcessOutput};
use crate::tools;

/// Where the collector binary is, below the tools directory.
pub const BINARY: &str = "bin/otelcol-somework";
/// What to run when it is missing.
pub const INSTALL_HINT: &str = "run scripts/build-collector.sh (needs Go)";

/// The overlay that moves every listener to the ports in [`Ports::env`].
const LOOPBACK_PORTS: &str = "collector-config/loopback-ports.yaml";
/// How long a collector may take to report ready.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a collector may take to shut down after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// The installed collector, or `None` (the test skips) when it is not built;
/// panics under `CI=true`.
pub fn binary() -> Option<PathBuf> {
    tools::require(BINARY, INSTALL_HINT)
}

/// Where the collector's pipelines live, the one home that the chart, `make run`
/// and the tests read: `base.yaml`, and one overlay per pipeline.
pub const PIPELINES_DIR: &str = "helm/otel-collector/pipelines";

/// The files of `pipeline` (e.g. `"sentry"`, `"local"`), in the order the
/// collector merges them, one `--config` each, as the chart runs them:
/// `base.yaml`, the overlay of every folder on the way to the pipeline's own
/// file, then that file (`"tail-sampling"`: base.yaml, sentry.yaml,
/// sentry/tail-sampling.yaml). Panics when no file has the pipeline's name.
pub fn config(pipeline: &str) -> Vec<PathBuf> {
    let dir = tools::repo_root().join(PIPELINES_DIR);
    let own = find_file(&dir, &format!("{pipeline}.yaml"))
        .unwrap_or_else(|| panic!("no {pipeline}.yaml under {}", dir.display()));
    let mut files = vec![dir.join("base.yaml")];
    let mut folder = dir.clone();
    let steps = own
        .parent()
        .and_then(|parent| parent.strip_prefix(&dir).ok())
        .map(Path::to_path_buf)
        .unwrap_or_default();
    for step in steps.components() {
        folder.push(step);
        files.push(folder.with_extension("yaml"));
    }
    files.push(own);
    files
}

/// The file named `name` in `dir` or a folder below it.
fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).ok()?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else if path.file_name().is_some_and(|file| file == name) {
                return Some(path);
            }
        }
    }
    None
}

/// `--config=<file>` for each of `configs`, in order.
fn config_args(configs: &[PathBuf]) -> Vec<String> {
    configs
        .iter()
        .map(|config| format!("--config={}", config.display()))
        .collect()
}

/// Runs `otelcol-somework validate` over `configs` (merged in order) with exactly `env`.
pub fn validate(binary: &Path, configs: &[PathBuf], env: &[(&str, &str)]) -> Output {
    std::process::Command::new(binary)
        .arg("validate")
        .args(config_args(configs))
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("cannot run the collector")
}

/// The loopback ports one collector listens on, reserved for it.
#[derive(Debug)]
struct Ports {
    otlp_grpc: ReservedPort,
    otlp_http: ReservedPort,
    health: ReservedPort,
    metrics: ReservedPort,
    red_metrics: ReservedPort,
    zpages: ReservedPort,
}

impl Ports {
    fn reserve() -> Self {
        Self {
            otlp_grpc: reserve_port(),
            otlp_http: reserve_port(),
            health: reserve_port(),
            metrics: reserve_port(),
            red_metrics: reserve_port(),
            zpages: reserve_port(),
        }
    }

    /// The variables that `collector-config/loopback-ports.yaml`, merged
    /// over the config, reads the ports from.
    fn env(&self) -> [(&'static str, String); 6] {
        [
            ("OTLP_GRPC_PORT", self.otlp_grpc.port()),
            ("OTLP_HTTP_PORT", self.otlp_http.port()),
            ("COLLECTOR_HEALTH_PORT", self.health.port()),
            ("COLLECTOR_METRICS_PORT", self.metrics.port()),
            ("COLLECTOR_RED_PORT", self.red_metrics.port()),
            ("COLLECTOR_ZPAGES_PORT", self.zpages.port()),
        ]
        .map(|(name, port)| (name, port.to_string()))
    }
}

/// Builder for a collector process. It starts with an empty environment plus
/// what the test sets, so nothing on the test machine leaks into the config.
#[derive(Debug, Clone)]
pub struct CollectorBuilder {
    binary: PathBuf,
    configs: Vec<PathBuf>,
    env: BTreeMap<String, String>,
    sets: Vec<String>,
}

impl CollectorBuilder {
    /// `pipeline` names a pipeline in [`PIPELINES_DIR`], e.g. `"sentry"` (see [`config`]).
    pub fn new(binary: impl AsRef<Path>, pipeline: &str) -> Self {
        Self {
            binary: binary.as_ref().to_path_buf(),
            configs: config(pipeline),
            env: BTreeMap::new(),
            sets: Vec::new(),
        }
    }

    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.insert(key.to_owned(), value.into());
        self
    }

    /// Overrides one config value, e.g. `set("processors.batch.timeout", "200ms")`.
    pub fn set(mut self, key: &str, value: &str) -> Self {
        self.sets.push(format!("--set={key}={value}"));
        self
    }

    /// Starts the collector on ports reserved for it and waits until its
    /// health check reports ready.
    pub async fn start(self) -> Collector {
        let logs = ProcessOutput::default();
        let ports = Ports::reserve();
        let running = launch(&self, &ports, &logs)
            .await
            .unwrap_or_else(|output| panic!("the collector did not start: {output}"));
        Collector {
            builder: self,
            ports,
            running: Some(running),
            logs,
        }
    }
}

/// A collector process and the tasks reading its output.
#[derive(Debug)]
struct Running {
    child: Child,
    readers: OutputReaders,
}

/// Starts the collector on `ports`; the error is why it did not become ready,
/// with its output.
async fn launch(
    builder: &CollectorBuilder,
    ports: &Ports,
    logs: &ProcessOutput,
) -> Result<Running, String> {
    let mut child = Command::new(&builder.binary)
        .args(config_args(&builder.configs))
        .arg(format!(
            "--config={}",
            tools::repo_root().join(LOOPBACK_PORTS).display()
        ))
        .args(&builder.sets)
        .env_clear()
        .envs(&builder.env)
        .envs(ports.env())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot start the collector");
    let first_line = logs.len();
    let readers = logs.capture(&mut child);
    let output_since_start = || logs.lines_since(first_line).join("\n");

    let health = format!("http://127.0.0.1:{}/", ports.health.port());
    let client = reqwest::Client::new();
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("cannot poll the collector") {
            readers.drained().await;
            return Err(format!(
                "exited with {status}; output:\n{}",
                output_since_start()
            ));
        }
        if let Ok(response) = client.get(&health).send().await
            && response.status().is_success()
        {
            return Ok(Running { child, readers });
        }
        if Instant::now() >= deadline {
            let _ = child.start_kill();
            return Err(format!(
                "not ready within {START_TIMEOUT:?}; output:\n{}",
                output_since_start()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A running collector; killed when dropped.
#[derive(Debug)]
pub struct Collector {
    builder: CollectorBuilder,
    ports: Ports,
    running: Option<Running>,
    logs: ProcessOutput,
}

impl Collector {
    /// The OTLP/gRPC endpoint, for the service's `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn otlp_grpc_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.otlp_grpc.port())
    }

    /// The OTLP/HTTP base URL, for `OTEL_EXPORTER_OTLP_ENDPOINT` with
    /// `OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf` (the exporter appends `/v1/traces`).
    pub fn otlp_http_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.otlp_http.port())
    }

    /// The process id while it runs, e.g. to pin it to a CPU.
    pub fn pid(&self) -> Option<u32> {
        self.running.as_ref().and_then(|running| running.child.id())
    }

    /// Everything the collector printed so far, over all its runs.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lines()
    }

    /// Waits until `done` holds for the collector's output so far, or
    /// `timeout` passes; returns the output either way.
    pub async fn wait_for_logs(
        &self,
        timeout: Duration,
        done: impl Fn(&[String]) -> bool,
    ) -> Vec<String> {
        self.logs.wait_for(timeout, done).await
    }

    /// The collector's own metrics, in Prometheus text format.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!(
            "http://127.0.0.1:{}/metrics",
            self.ports.metrics.port()
        ))
        .await
        .expect("cannot reach the collector's metrics")
        .text()
        .await
        .expect("metrics body")
    }

    /// The RED metrics that the `span_metrics` connector derives from the
    /// spans, as the `prometheus` exporter serves them (Prometheus text format).
    pub async fn red_metrics(&self) -> String {
        reqwest::get(format!(
            "http://127.0.0.1:{}/metrics",
            self.ports.red_metrics.port()
        ))
        .await
        .expect("cannot reach the collector's RED metrics")
        .text()
        .await
        .expect("RED metrics body")
    }

    /// Sends SIGTERM, as Kubernetes does on a rollout, and waits for the exit.
    pub async fn stop(&mut self) {
        let Some(Running { mut child, readers }) = self.running.take() else {
            return;
        };
        if let Some(pid) = child.id() {
            process::terminate(pid);
        }
        match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
            Ok(status) => {
                status.expect("cannot wait for the collector");
                readers.drained().await;
            }
            Err(_) => panic!(
                "the collector did not exit within {STOP_TIMEOUT:?} of SIGTERM; output:\n{}",
                self.logs().join("\n")
            ),
        }
    }

    /// Kills the collector abruptly (SIGKILL), as a crash or an OOM kill would.
    pub async fn kill(&mut self) {
        if let Some(Running { mut child, readers }) = self.running.take() {
            child.kill().await.expect("cannot kill the collector");
            readers.drained().await;
        }
    }

    /// Starts the collector again with the same config, environment and ports,
    /// after `stop` or `kill`, and waits until it is ready. The ports stayed
    /// reserved while it was down, so they are still its own.
    pub async fn start_again(&mut self) {
        assert!(self.running.is_none(), "the collector is still running");
        self.logs
            .note("---- test harness: collector restarted ----");
        let running = launch(&self.builder, &self.ports, &self.logs)
            .await
            .unwrap_or_else(|output| panic!("the collector did not start again: {output}"));
        self.running = Some(running);
    }
}
