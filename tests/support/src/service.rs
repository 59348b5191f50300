//! Runs the real `somework` binary as a child process.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::api::SomeworkApi;
use crate::process::{self, OutputReaders, ProcessOutput};

/// How long a test waits for the service to listen.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How often the socket table is read while the service starts.
const PORT_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Builder for a `somework` process. The child starts with an empty
/// environment, so settings on the test machine (an exported `OTEL_*` or
/// `SENTRY_DSN`) cannot leak into a test.
#[derive(Debug, Clone)]
pub struct ServiceBuilder {
    program: PathBuf,
    prefix: Vec<String>,
    env: BTreeMap<String, String>,
}

impl ServiceBuilder {
    /// `binary` is the test's `env!("CARGO_BIN_EXE_somework")`. Defaults:
    /// a random loopback port, JSON logs, no simulated sleep, no errors.
    pub fn new(binary: impl AsRef<Path>) -> Self {
        let mut env = BTreeMap::new();
        for (key, value) in [
            ("LISTEN_ADDR", "127.0.0.1:0"),
            ("LOG_FORMAT", "json"),
            ("WORK_SLEEP_MS", "0"),
            ("ERROR_RATE", "0"),
            ("OTEL_TRACES_SAMPLER", "always_on"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ] {
            env.insert(key.to_owned(), value.to_owned());
        }
        Self {
            program: binary.as_ref().to_path_buf(),
            prefix: Vec::new(),
            env,
        }
    }

    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.insert(key.to_owned(), value.into());
        self
    }

    pub fn remove_env(mut self, key: &str) -> Self {
        self.env.remove(key);
        self
    }

    /// Runs the binary through a wrapper, e.g. `["taskset", "-c", "0"]`.
    pub fn wrapped_in(mut self, wrapper: &[&str]) -> Self {
        self.prefix = wrapper.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    fn command(&self) -> Command {
        self.command_with_args(&[])
    }

    fn command_with_args(&self, args: &[&str]) -> Command {
        let mut command = match self.prefix.split_first() {
            Some((wrapper, args)) => {
                let mut command = Command::new(wrapper);
                command.args(args).arg(&self.program);
                command
            }
            None => Command::new(&self.program),
        };
        command.args(args);
        command
            .env_clear()
            .envs(&self.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// Runs the binary to completion (for configurations that must fail).
    pub async fn run_to_exit(&self) -> (ExitStatus, String, String) {
        self.run_to_exit_with_args(&[]).await
    }

    /// Runs the binary with `args` to completion.
    pub async fn run_to_exit_with_args(&self, args: &[&str]) -> (ExitStatus, String, String) {
        let output = tokio::time::timeout(START_TIMEOUT, self.command_with_args(args).output())
            .await
            .expect("somework did not exit")
            .expect("cannot run somework");
        (
            output.status,
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Starts the service and waits until it listens. The port is read from
    /// the kernel's socket table (see [`process::listening_addr`]), so the
    /// service binds `127.0.0.1:0` itself and no port is ever chosen early.
    pub async fn start(self) -> Service {
        let mut child = self.command().spawn().expect("cannot start somework");
        let output = ProcessOutput::default();
        let readers = output.capture(&mut child);
        let pid = child.id().expect("a child that was just spawned has a pid");
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = loop {
            if let Some(addr) = process::listening_addr(pid) {
                break addr;
            }
            let exited = child.try_wait().expect("cannot poll somework");
            if exited.is_some() || Instant::now() >= deadline {
                let _ = child.start_kill();
                let _ = child.wait().await;
                readers.drained().await;
                panic!(
                    "somework did not start listening ({}); output:\n{}",
                    exited.map_or("still running".to_owned(), |s| s.to_string()),
                    output.lines().join("\n")
                );
            }
            tokio::time::sleep(PORT_POLL_INTERVAL).await;
        };
        Service {
            child,
            addr,
            output,
            readers: Some(readers),
            http: reqwest::Client::new(),
        }
    }
}

/// A running `somework` process; killed when dropped.
#[derive(Debug)]
pub struct Service {
    child: Child,
    addr: SocketAddr,
    output: ProcessOutput,
    readers: Option<OutputReaders>,
    http: reqwest::Client,
}

impl SomeworkApi for Service {
    fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn http(&self) -> &reqwest::Client {
        &self.http
    }
}

impl Service {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every line the service printed so far, stdout and stderr.
    pub fn logs(&self) -> Vec<String> {
        self.output.lines()
    }

    /// Log lines parsed as JSON (the service runs with `LOG_FORMAT=json`).
    pub fn json_logs(&self) -> Vec<serde_json::Value> {
        json_lines(&self.logs())
    }

    /// Waits until a JSON log line satisfies `matches`, and returns it; panics
    /// with the whole log after `timeout`.
    pub async fn wait_for_log(
        &self,
        timeout: Duration,
        matches: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let lines = self
            .output
            .wait_for(timeout, |lines| json_lines(lines).iter().any(&matches))
            .await;
        json_lines(&lines)
            .into_iter()
            .find(|line| matches(line))
            .unwrap_or_else(|| {
                panic!(
                    "no such log line within {timeout:?}; output:\n{}",
                    lines.join("\n")
                )
            })
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("the service is running")
    }

    /// Sends SIGTERM, as Kubernetes does.
    pub fn sigterm(&self) {
        process::terminate(self.pid());
    }

    /// Sends SIGTERM and waits for the exit; returns the status and how long
    /// the shutdown took. Panics if the process outlives `limit`. Every line
    /// the process printed is read before this returns.
    pub async fn terminate(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let started = Instant::now();
        self.sigterm();
        let waited = tokio::time::timeout(limit, self.child.wait()).await;
        let took = started.elapsed();
        match waited {
            Ok(status) => {
                if let Some(readers) = self.readers.take() {
                    readers.drained().await;
                }
                (status.expect("cannot wait for somework"), took)
            }
            Err(_) => panic!(
                "somework did not exit within {limit:?} of SIGTERM; output:\n{}",
                self.logs().join("\n")
            ),
        }
    }
}

fn json_lines(lines: &[String]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}
