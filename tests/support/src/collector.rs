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
//! the suite slower.) Free ports are found by binding port 0; if another process
//! takes one in the instant before the collector binds it, the start is retried on
//! fresh ports.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

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
const START_ATTEMPTS: usize = 3;

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

/// The loopback ports one collector listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ports {
    otlp_grpc: u16,
    otlp_http: u16,
    health: u16,
    metrics: u16,
    red_metrics: u16,
    zpages: u16,
}

impl Ports {
    /// Six distinct ports that are free right now.
    fn free() -> Self {
        // Hold all six listeners at once so the kernel hands out distinct ports.
        let listeners: Vec<_> = (0..6)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("cannot bind port 0"))
            .collect();
        let port = |i: usize| listeners[i].local_addr().expect("bound address").port();
        Self {
            otlp_grpc: port(0),
            otlp_http: port(1),
            health: port(2),
            metrics: port(3),
            red_metrics: port(4),
            zpages: port(5),
        }
    }

    /// The variables that `collector-config/loopback-ports.yaml`, merged
    /// over the config, reads the ports from.
    fn env(&self) -> [(&'static str, String); 6] {
        [
            ("OTLP_GRPC_PORT", self.otlp_grpc),
            ("OTLP_HTTP_PORT", self.otlp_http),
            ("COLLECTOR_HEALTH_PORT", self.health),
            ("COLLECTOR_METRICS_PORT", self.metrics),
            ("COLLECTOR_RED_PORT", self.red_metrics),
            ("COLLECTOR_ZPAGES_PORT", self.zpages),
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

    /// Starts the collector on free ports and waits until its health check
    /// reports ready.
    pub async fn start(self) -> Collector {
        let logs = ProcessOutput::default();
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            let ports = Ports::free();
            match launch(&self, ports, &logs).await {
                Ok(running) => {
                    return Collector {
                        builder: self,
                        ports,
                        running: Some(running),
                        logs,
                    };
                }
                Err(Launch::PortTaken(output)) => last_error = output,
                Err(Launch::Failed(output)) => panic!("the collector did not start:\n{output}"),
            }
        }
        panic!("the collector found its ports taken {START_ATTEMPTS} times:\n{last_error}")
    }
}

enum Launch {
    /// Another process took a port between `Ports::free` and the bind.
    PortTaken(String),
    Failed(String),
}

/// A collector process and the tasks reading its output.
#[derive(Debug)]
struct Running {
    child: Child,
    readers: OutputReaders,
}

async fn launch(
    builder: &CollectorBuilder,
    ports: Ports,
    logs: &ProcessOutput,
) -> Result<Running, Launch> {
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

    let health = format!("http://127.0.0.1:{}/", ports.health);
    let client = reqwest::Client::new();
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("cannot poll the collector") {
            readers.drained().await;
            let output = format!("exited with {status}; output:\n{}", output_since_start());
            return Err(if output.contains("address already in use") {
                Launch::PortTaken(output)
            } else {
                Launch::Failed(output)
            });
        }
        if let Ok(response) = client.get(&health).send().await
            && response.status().is_success()
        {
            return Ok(Running { child, readers });
        }
        if Instant::now() >= deadline {
            let _ = child.start_kill();
            return Err(Launch::Failed(format!(
                "not ready within {START_TIMEOUT:?}; output:\n{}",
                output_since_start()
            )));
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
        format!("http://127.0.0.1:{}", self.ports.otlp_grpc)
    }

    /// The OTLP/HTTP base URL, for `OTEL_EXPORTER_OTLP_ENDPOINT` with
    /// `OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf` (the exporter appends `/v1/traces`).
    pub fn otlp_http_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.otlp_http)
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
        reqwest::get(format!("http://127.0.0.1:{}/metrics", self.ports.metrics))
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
            self.ports.red_metrics
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
    /// after `stop` or `kill`, and waits until it is ready.
    pub async fn start_again(&mut self) {
        assert!(self.running.is_none(), "the collector is still running");
        self.logs
            .note("---- test harness: collector restarted ----");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match launch(&self.builder, self.ports, &self.logs).await {
                Ok(running) => {
                    self.running = Some(running);
                    return;
                }
                // The old process's sockets can linger for a moment after it died.
                Err(Launch::PortTaken(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(Launch::PortTaken(output) | Launch::Failed(output)) => {
                    panic!("the collector did not start again:\n{output}")
                }
            }
        }
    }
}
