//! Runs the real `somework` binary as a child process.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

/// How long a test waits for the service to log its listening address.
const START_TIMEOUT: Duration = Duration::from_secs(20);

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

    /// Starts the service and waits until it listens.
    pub async fn start(self) -> Service {
        let mut child = self.command().spawn().expect("cannot start somework");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = oneshot::channel();
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        tokio::spawn(collect_lines(stdout, logs.clone(), Some(addr_tx)));
        tokio::spawn(collect_lines(stderr, logs.clone(), None));
        let addr = match tokio::time::timeout(START_TIMEOUT, addr_rx).await {
            Ok(Ok(addr)) => addr,
            _ => {
                let _ = child.start_kill();
                panic!(
                    "somework did not log its listening address; output:\n{}",
                    logs.lock().unwrap().join("\n")
                );
            }
        };
        Service { child, addr, logs }
    }
}

async fn collect_lines(
    stream: impl tokio::io::AsyncRead + Unpin,
    logs: Arc<Mutex<Vec<String>>>,
    mut addr_tx: Option<oneshot::Sender<SocketAddr>>,
) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(tx) = addr_tx.take_if(|_| line.contains("\"listening\"")) {
            let addr = serde_json::from_str::<serde_json::Value>(&line)
                .ok()
                .and_then(|v| v["addr"].as_str().and_then(|a| a.parse().ok()));
            match addr {
                Some(addr) => {
                    let _ = tx.send(addr);
                }
                None => addr_tx = Some(tx),
            }
        }
        logs.lock().unwrap().push(line);
    }
}

/// A running `somework` process; killed when dropped.
#[derive(Debug)]
pub struct Service {
    child: Child,
    addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Service {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr, path_and_query)
    }

    /// Every line the service printed so far, stdout and stderr.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Log lines parsed as JSON (the service runs with `LOG_FORMAT=json`).
    pub fn json_logs(&self) -> Vec<serde_json::Value> {
        self.logs()
            .iter()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("the service is running")
    }

    /// Sends SIGTERM, as Kubernetes does.
    pub fn sigterm(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("cannot run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Sends SIGTERM and waits for the exit; returns the status and how long
    /// the shutdown took. Panics if the process outlives `limit`. The logs
    /// stay readable afterwards.
    pub async fn terminate(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let started = Instant::now();
        self.sigterm();
        let waited = tokio::time::timeout(limit, self.child.wait()).await;
        // Let the log readers drain what the process printed last.
        tokio::time::sleep(Duration::from_millis(50)).await;
        match waited {
            Ok(status) => (status.expect("cannot wait for somework"), started.elapsed()),
            Err(_) => panic!(
                "somework did not exit within {limit:?} of SIGTERM; output:\n{}",
                self.logs().join("\n")
            ),
        }
    }
}
