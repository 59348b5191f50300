//! The first hour of a new user, as the README leads it: `make run`
//! (`scripts/run-local.sh`) brings Bugsink, the real collector and the service
//! up, and every trace id and error it prints can be found where it says; and
//! the Go version the README asks for is the one the scripts enforce.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use somework_testkit::net::{ReservedPort, reserve_port};
use somework_testkit::tools;

/// Starting from an empty data dir includes Bugsink's first migration.
const START_TIMEOUT: Duration = Duration::from_secs(180);
/// The script gives each process 10 s to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(40);
/// How long the rest of a trace may trail its first span in the collector.
const SPANS_TIMEOUT: Duration = Duration::from_secs(15);
const READY_LINE: &str = "Ctrl-C stops everything.";

/// The port variables of run-local.sh, each given a port reserved for it.
const PORT_VARIABLES: [&str; 7] = [
    "SERVICE_PORT",
    "BUGSINK_PORT",
    "OTLP_GRPC_PORT",
    "OTLP_HTTP_PORT",
    "COLLECTOR_HEALTH_PORT",
    "COLLECTOR_METRICS_PORT",
    "COLLECTOR_RED_PORT",
];

/// The calls the script makes, with the spans each trace has: the three-span
/// work tree under the server span; for /chain?hops=2, three server spans and
/// the two client spans between them.
const CALLS: [(&str, usize); 3] = [("/somework", 4), ("/errorwork", 4), ("/chain?hops=2", 5)];

/// What the script printed about one call.
#[derive(Debug)]
struct Call {
    path: String,
    trace_id: String,
    /// The collector's output file and the line of the trace's first span.
    spans_at: Option<(PathBuf, usize)>,
}

/// What the script printed: the calls, and the /errorwork error in Bugsink.
#[derive(Debug, Default)]
struct Summary {
    calls: Vec<Call>,
    issue_url: Option<String>,
    trace_command: Option<String>,
}

impl Summary {
    fn parse(lines: &[String]) -> Self {
        let mut summary = Self::default();
        let mut lines = lines.iter().map(String::as_str);
        while let Some(line) = lines.next() {
            if let Some(path) = line.strip_prefix("GET ") {
                summary.calls.push(Call {
                    path: path.to_owned(),
                    trace_id: String::new(),
                    spans_at: None,
                });
            } else if let Some(id) = line.trim().strip_prefix("trace_id") {
                if let Some(call) = summary.calls.last_mut() {
                    call.trace_id = id.trim().to_owned();
                }
            } else if let Some(rest) = line.trim().strip_prefix("spans") {
                let location = rest.split_whitespace().next().unwrap_or_default();
                let parsed = location
                    .rsplit_once(':')
                    .and_then(|(file, line)| Some((PathBuf::from(file), line.parse().ok()?)));
                if let Some(call) = summary.calls.last_mut() {
                    call.spans_at = parsed;
                }
            } else if let Some(url) = line.trim().strip_prefix("issue") {
                summary.issue_url = Some(url.trim().to_owned());
            } else if line.contains("contexts.trace beside the response's trace id") {
                summary.trace_command = lines.next().map(|l| l.trim().to_owned());
            }
        }
        summary
    }

    fn trace_of(&self, path: &str) -> &str {
        &self
            .calls
            .iter()
            .find(|call| call.path == path)
            .unwrap_or_else(|| panic!("no {path} in {self:#?}"))
            .trace_id
    }
}

/// One run of scripts/run-local.sh with ports of its own.
struct RunLocal {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: PathBuf,
}

impl RunLocal {
    fn start(data_dir: &Path, ports: &[(&str, ReservedPort)], args: &[&str]) -> Self {
        let stderr = data_dir.join("run-local.stderr");
        let mut command = Command::new(tools::repo_root().join("scripts/run-local.sh"));
        command
            .arg("--data-dir")
            .arg(data_dir)
            .args(args)
            .env("SOMEWORK_TOOLS_DIR", tools::tools_dir())
            .env("SOMEWORK_BIN", env!("CARGO_BIN_EXE_somework"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("cannot create the stderr file"));
        for (name, port) in ports {
            command.env(name, port.port().to_string());
        }
        let mut child = command.spawn().expect("cannot run scripts/run-local.sh");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        Self {
            child,
            stdout: receiver,
            stderr,
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The lines printed until `last` (or the end of the output), within `timeout`.
    fn read_until(&self, last: &str, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => {
                    let done = line == last;
                    lines.push(line);
                    if done {
                        return lines;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return lines,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "run-local.sh printed no {last:?} within {timeout:?}:\n{}\nstderr:\n{}",
                    lines.join("\n"),
                    self.stderr()
                ),
            }
        }
    }

    fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("cannot wait for the script") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "run-local.sh did not exit within {timeout:?}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Ctrl-C, as a terminal sends it.
    fn interrupt(&self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("cannot run kill");
        assert!(status.success(), "kill -INT failed");
    }
}

impl Drop for RunLocal {
    fn drop(&mut self) {
        // A failed test must not leave the script's processes behind: SIGTERM
        // runs the same cleanup as Ctrl-C.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let _ = self.wait(STOP_TIMEOUT);
        }
    }
}

/// A directory of this test's own, deleted when dropped.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("somework-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("cannot create a scratch directory");
        Self(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback port per port variable, reserved for the script's servers for
/// the whole test (both runs): the service, the collector and gunicorn all
/// bind with `SO_REUSEADDR`, as a [`ReservedPort`] needs.
fn reserved_ports() -> Vec<(&'static str, ReservedPort)> {
    PORT_VARIABLES
        .iter()
        .map(|name| (*name, reserve_port()))
        .collect()
}

/// How many spans of `trace_id` the collector's output holds.
fn spans_in(collector_log: &Path, trace_id: &str) -> usize {
    trace_id_lines(collector_log, trace_id, " ")
}

/// How many log records of the trace `trace_id` the debug exporter printed:
/// a record's line is `Trace ID: <id>`, a span's pads the name before the colon.
fn log_records_in(collector_log: &Path, trace_id: &str) -> usize {
    trace_id_lines(collector_log, trace_id, ":")
}

/// The lines `Trace ID<separator>...<trace_id>` in the collector's output.
fn trace_id_lines(collector_log: &Path, trace_id: &str, separator: &str) -> usize {
    std::fs::read_to_string(collector_log)
        .unwrap_or_default()
        .lines()
        .filter(|line| {
            line.trim()
                .strip_prefix("Trace ID")
                .filter(|rest| rest.starts_with(separator))
                .is_some_and(|rest| rest.trim_start_matches([' ', ':']) == trace_id)
        })
        .count()
}

/// Checks every call of `summary` against the collector's output: the printed
/// line is the trace's, and the whole trace arrives.
fn assert_traces_in_collector_output(summary: &Summary, printed: &str) {
    assert_eq!(
        summary
            .calls
            .iter()
            .map(|call| call.path.as_str())
            .collect::<Vec<_>>(),
        CALLS.map(|(path, _)| path),
        "{printed}"
    );
    for (call, (_, span_count)) in summary.calls.iter().zip(CALLS) {
        assert!(
            call.trace_id.len() == 32 && call.trace_id.chars().all(|c| c.is_ascii_hexdigit()),
            "{}: not a trace id: {:?}\n{printed}",
            call.path,
            call.trace_id
        );
        let (log, line) = call
            .spans_at
            .as_ref()
            .unwrap_or_else(|| panic!("{}: no collector line printed\n{printed}", call.path));
        let output = std::fs::read_to_string(log)
            .unwrap_or_else(|e| panic!("{}: {e}\n{printed}", log.display()));
        let printed_line = output.lines().nth(line - 1).unwrap_or_default();
        assert!(
            printed_line.contains("Trace ID") && printed_line.contains(&call.trace_id),
            "{}: line {line} of {} is {printed_line:?}, not the trace's\n{printed}",
            call.path,
            log.display()
        );
        let deadline = Instant::now() + SPANS_TIMEOUT;
        while spans_in(log, &call.trace_id) < span_count && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(
            spans_in(log, &call.trace_id),
            span_count,
            "{}: the spans of trace {} in {}",
            call.path,
            call.trace_id,
            log.display()
        );
        // And the request's log line, through the logs pipeline.
        while log_records_in(log, &call.trace_id) == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(
            log_records_in(log, &call.trace_id) > 0,
            "{}: no log record of trace {} in {}",
            call.path,
            call.trace_id,
            log.display()
        );
    }
    let ids: std::collections::BTreeSet<&str> =
        summary.calls.iter().map(|c| c.trace_id.as_str()).collect();
    assert_eq!(
        ids.len(),
        CALLS.len(),
        "three calls, three traces: {printed}"
    );
}

#[test]
fn make_run_shows_each_trace_in_the_collector_and_the_error_in_bugsink_until_ctrl_c() {
    let (Some(_), Some(_)) = (
        tools::require("bin/otelcol-somework", "run scripts/build-collector.sh"),
        tools::require(
            "bugsink-venv/bin/bugsink-manage",
            "run scripts/install-bugsink.sh",
        ),
    ) else {
        return;
    };
    let data_dir = ScratchDir::new("run-local");
    let ports = reserved_ports();
    let port = |name: &str| {
        ports
            .iter()
            .find(|(n, _)| *n == name)
            .expect("a port")
            .1
            .port()
    };

    let mut run = RunLocal::start(data_dir.path(), &ports, &[]);
    let lines = run.read_until(READY_LINE, START_TIMEOUT);
    let printed = lines.join("\n");
    assert_eq!(
        lines.last().map(String::as_str),
        Some(READY_LINE),
        "{printed}\nstderr:\n{}",
        run.stderr()
    );
    let summary = Summary::parse(&lines);
    assert_traces_in_collector_output(&summary, &printed);
    // The service's own count of the errors lost on the way to Sentry
    // (Bugsink here), read from its log: none.
    assert!(
        printed.lines().any(|line| {
            let line = line.trim_start();
            line.starts_with("ok") && line.contains("Sentry delivery: service")
        }),
        "no passing Sentry delivery row: {printed}"
    );

    // The error: its issue in Bugsink, and the printed command that puts the
    // stored event's contexts.trace beside the response's trace id.
    let error_trace = summary.trace_of("/errorwork");
    let issue_url = summary.issue_url.as_deref().unwrap_or_default();
    assert!(
        issue_url.starts_with(&format!(
            "http://127.0.0.1:{}/issues/issue/",
            port("BUGSINK_PORT")
        )),
        "no Bugsink issue URL: {printed}"
    );
    let command = summary
        .trace_command
        .as_deref()
        .unwrap_or_else(|| panic!("no contexts.trace command: {printed}"));
    let output = Command::new("bash")
        .args(["-c", command])
        .output()
        .expect("cannot run bash");
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{command}: {output:?}");
    let (echoed, event) = shown
        .split_once('\n')
        .unwrap_or_else(|| panic!("{command} printed:\n{shown}"));
    assert_eq!(
        echoed,
        format!("response trace_id: {error_trace}"),
        "{command}"
    );
    let event: serde_json::Value = serde_json::from_str(event)
        .unwrap_or_else(|e| panic!("{command} printed no event ({e}):\n{shown}"));
    assert_eq!(
        event["data"]["contexts"]["trace"]["trace_id"], error_trace,
        "{command} printed:\n{shown}"
    );

    // Ctrl-C stops the script and everything it started.
    run.interrupt();
    let status = run.wait(STOP_TIMEOUT);
    assert_eq!(status.code(), Some(130), "stderr:\n{}", run.stderr());
    for name in ["SERVICE_PORT", "BUGSINK_PORT", "OTLP_GRPC_PORT"] {
        assert!(
            TcpStream::connect(("127.0.0.1", port(name))).is_err(),
            "{name} {} still answers after Ctrl-C; stderr:\n{}",
            port(name),
            run.stderr()
        );
    }

    // Headless, as CI or a script would run it: the same, and then it exits 0.
    let mut headless = RunLocal::start(data_dir.path(), &ports, &["--headless"]);
    let lines = headless.read_until(READY_LINE, START_TIMEOUT);
    let status = headless.wait(STOP_TIMEOUT);
    let printed = lines.join("\n");
    assert!(
        status.success(),
        "{status}\n{printed}\nstderr:\n{}",
        headless.stderr()
    );
    assert!(!printed.contains(READY_LINE), "{printed}");
    assert_traces_in_collector_output(&Summary::parse(&lines), &printed);
}

/// The Go version of the README's requirements is GO_MIN_VERSION in
/// scripts/lib.sh, which the scripts enforce, and it is the version that the
/// collector's modules declare in the go.mod that ocb generated.
#[test]
fn the_readme_asks_for_the_go_version_that_the_collector_needs() {
    let root = tools::repo_root();
    let lib = std::fs::read_to_string(root.join("scripts/lib.sh")).expect("scripts/lib.sh");
    let version = lib
        .lines()
        .find_map(|line| line.strip_prefix("GO_MIN_VERSION="))
        .expect("GO_MIN_VERSION= in scripts/lib.sh")
        .trim();
    for doc in ["README.md", "collector-config/README.md"] {
        let text = std::fs::read_to_string(root.join(doc)).expect(doc);
        let stated: Vec<&str> = text
            .match_indices("Go 1.")
            .map(|(at, _)| {
                let digits = text[at + 5..]
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(0);
                &text[at + 3..at + 5 + digits]
            })
            .collect();
        assert!(!stated.is_empty(), "{doc} names no Go version");
        assert!(
            stated.iter().all(|v| *v == version),
            "{doc} names Go {stated:?}, scripts/lib.sh {version}"
        );
    }

    let cache = std::env::var_os("SOMEWORK_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(|dir| PathBuf::from(dir).join("somework"))
                .or_else(|| {
                    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/somework"))
                })
        })
        .expect("HOME is set");
    let go_mod = cache.join("otelcol-somework-build/otelcol-somework/go.mod");
    let Ok(go_mod_text) = std::fs::read_to_string(&go_mod) else {
        assert!(
            !tools::in_ci(),
            "{} is missing: scripts/build-collector.sh runs before the tests",
            go_mod.display()
        );
        // Not eprintln!: libtest captures it for passing tests, and a skip must be seen.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {} is missing; run scripts/build-collector.sh",
            go_mod.display()
        );
        return;
    };
    let declared = go_mod_text
        .lines()
        .find_map(|line| line.strip_prefix("go "))
        .unwrap_or_else(|| panic!("no go directive in {}", go_mod.display()));
    assert!(
        declared == version || declared.starts_with(&format!("{version}.")),
        "the collector's go.mod declares go {declared}; scripts/lib.sh says {version}"
    );
}
