//! The local cluster under test: started and deployed by the README's command,
//! driven with the cluster's own kubectl, removed by `down` even when a phase
//! panics.

use std::fs;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

use somework_testkit::tools::{self, in_ci, repo_root};

/// What the kubelet changes machine-wide, and `down` must restore.
const KUBELET_SYSCTLS: [&str; 6] = [
    "kernel/panic",
    "kernel/panic_on_oops",
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
];

pub const APP_NS: &str = "somework";
pub const OBS_NS: &str = "observability";

/// Progress on the test's stderr handle (libtest captures the print macros).
pub fn report(message: &str) {
    let _ = writeln!(std::io::stderr(), "cluster e2e: {message}");
}

pub struct LocalCluster {
    id: String,
    run_dir: PathBuf,
    kubeconfig: PathBuf,
    helm: PathBuf,
    sysctls_before: Vec<(String, String)>,
    is_down: bool,
}

impl LocalCluster {
    /// Builds what is missing, starts a cluster of the test's own (its id
    /// never collides with a user's `make up CLUSTER=local`) and deploys the
    /// demo with `CLUSTER=local scripts/up.sh`. `None` when skipped.
    pub fn up() -> Option<Self> {
        if let Some(missing) = missing_capability() {
            let message = format!("the local-cluster end-to-end test needs {missing}");
            if in_ci() {
                panic!("{message} (CI=true: a missing capability fails the run)");
            }
            let _ = writeln!(std::io::stderr(), "SKIPPED: {message}");
            return None;
        }
        let helm = tools::require("bin/helm", "run scripts/install-k8s-tools.sh")?;
        tools::require("bin/otelcol-somework", "run scripts/build-collector.sh")?;
        let id = format!("e2e{}", std::process::id() % 100_000);
        let mut cluster = LocalCluster {
            run_dir: PathBuf::new(),
            kubeconfig: PathBuf::new(),
            helm,
            sysctls_before: machine_sysctls(),
            is_down: false,
            id,
        };
        let started = Instant::now();
        let log = std::env::temp_dir().join(format!("somework-cluster-{}-up.log", cluster.id));
        let status = Command::new(repo_root().join("scripts/up.sh"))
            .env("CLUSTER", "local")
            .env("LOCAL_CLUSTER_ID", &cluster.id)
            .env_remove("SENTRY_DSN")
            .env_remove("SENTRY_AUTH_TOKEN")
            .env_remove("SENTRY_ORG")
            .env_remove("SENTRY_PROJECT")
            .current_dir(repo_root())
            .stdout(log_file(&log))
            .stderr(log_file(&log))
            .status()
            .expect("cannot run scripts/up.sh");
        let output = fs::read_to_string(&log).unwrap_or_default();
        assert!(
            status.success(),
            "CLUSTER=local scripts/up.sh failed ({status}):\n{output}"
        );
        report(&format!(
            "built what was missing, started the cluster and deployed the demo (make up CLUSTER=local) in {:.0?}",
            started.elapsed()
        ));
        cluster.kubeconfig = PathBuf::from(last_line(&cluster.script(&["kubeconfig"])));
        cluster.run_dir = cluster
            .kubeconfig
            .parent()
            .expect("the kubeconfig lies in the run's folder")
            .to_path_buf();
        Some(cluster)
    }

    /// A testkit program (`tests/support/src/bin`) as an image in the
    /// cluster, built like the service's: from the release binary.
    pub fn testkit_image(&self, program: &str) -> String {
        let binary = testkit_binary(program);
        let binary = binary.to_str().expect("a UTF-8 target path");
        last_line(&self.script(&["image", program, binary])).to_owned()
    }

    /// The cluster's kubeconfig (admin), for programs run against it.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// `scripts/local-cluster.sh ARGS` for this cluster; panics on failure.
    pub fn script(&self, args: &[&str]) -> String {
        let output = Command::new(repo_root().join("scripts/local-cluster.sh"))
            .args(args)
            .env("LOCAL_CLUSTER_ID", &self.id)
            .output()
            .expect("cannot run scripts/local-cluster.sh");
        checked(
            &format!("scripts/local-cluster.sh {}", args.join(" ")),
            output,
        )
    }

    /// The cluster's own kubectl (built with it, at its version).
    pub fn kubectl(&self, args: &[&str]) -> String {
        let output = self
            .kubectl_command(args)
            .output()
            .expect("cannot run kubectl");
        checked(&format!("kubectl {}", args.join(" ")), output)
    }

    /// kubectl with `input` on its stdin (`apply -f -`).
    pub fn kubectl_with_input(&self, args: &[&str], input: &str) -> String {
        let mut child = self
            .kubectl_command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot run kubectl");
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(input.as_bytes())
            .expect("cannot write to kubectl");
        let output = child.wait_with_output().expect("kubectl did not finish");
        checked(&format!("kubectl {}", args.join(" ")), output)
    }

    fn kubectl_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(repo_root().join("scripts/local-cluster.sh"));
        command
            .arg("kubectl")
            .args(args)
            .env("LOCAL_CLUSTER_ID", &self.id);
        command
    }

    pub fn helm(&self, args: &[impl AsRef<str>]) -> String {
        let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
        let output = Command::new(&self.helm)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(&args)
            .current_dir(repo_root())
            .output()
            .expect("cannot run helm");
        checked(&format!("helm {}", args.join(" ")), output)
    }

    /// `kubectl port-forward` from a free loopback port of the host.
    pub fn port_forward(&self, namespace: &str, target: &str, port: u16) -> PortForward {
        let mut child = self
            .kubectl_command(&[
                "--namespace",
                namespace,
                "port-forward",
                target,
                &format!(":{port}"),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run kubectl port-forward");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // "Forwarding from 127.0.0.1:40123 -> 8080"
                if let Some(port) = line
                    .strip_prefix("Forwarding from 127.0.0.1:")
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|port| port.parse::<u16>().ok())
                {
                    let _ = sender.send(port);
                }
            }
        });
        let local_port = receiver
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("kubectl port-forward {target} did not start"));
        PortForward { child, local_port }
    }

    /// Runs `down` and checks that nothing of the run is left on the machine.
    pub fn down_and_check_nothing_is_left(mut self) {
        let started = Instant::now();
        self.script(&["down"]);
        self.is_down = true;
        report(&format!("down in {:.0?}", started.elapsed()));
        let netns = format!("somework-{}", self.id);
        let namespaces = String::from_utf8_lossy(
            &Command::new("ip")
                .args(["netns", "list"])
                .output()
                .expect("cannot run ip netns list")
                .stdout,
        )
        .into_owned();
        assert!(
            !namespaces
                .lines()
                .any(|line| line.split_whitespace().next() == Some(&netns)),
            "network namespace {netns} is left: {namespaces}"
        );
        let cgroups: Vec<PathBuf> = fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
            .map(|hierarchy| hierarchy.path().join(&netns))
            .filter(|cgroup| cgroup.exists())
            .collect();
        assert!(cgroups.is_empty(), "cgroups are left: {cgroups:?}");
        let run_dir = self.run_dir.to_string_lossy().into_owned();
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let left: Vec<&str> = mounts.lines().filter(|m| m.contains(&run_dir)).collect();
        assert!(left.is_empty(), "mounts are left: {left:?}");
        let processes = processes_mentioning(&run_dir);
        assert!(processes.is_empty(), "processes are left: {processes:?}");
        assert!(!self.run_dir.exists(), "{} is left", self.run_dir.display());
        // The last run to go down restores them; while another runs, the
        // record of the machine's values must still be there.
        let now = if local_cluster_cache().join("sysctls.before").exists() {
            machine_sysctls()
        } else {
            read_sysctls()
        };
        assert_eq!(
            now, self.sysctls_before,
            "the sysctls the kubelet changed are not restored (nor recorded for the last run to restore)"
        );
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if !self.is_down {
            // A phase panicked: leave nothing behind all the same.
            let _ = Command::new(repo_root().join("scripts/local-cluster.sh"))
                .arg("down")
                .env("LOCAL_CLUSTER_ID", &self.id)
                .status();
        }
    }
}

/// A running `kubectl port-forward`; stopped when dropped.
pub struct PortForward {
    child: Child,
    local_port: u16,
}

impl PortForward {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.local_port)
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds the testkit's programs once (release, the test's own target
/// directory) and returns the path of one.
fn testkit_binary(program: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let release_dir = BUILT.get_or_init(|| {
        // This test runs from <target>/release/deps/.
        let release_dir = std::env::current_exe()
            .expect("the test binary's path")
            .ancestors()
            .nth(2)
            .expect("<target>/release")
            .to_path_buf();
        let target_dir = release_dir.parent().expect("<target>").to_path_buf();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let output = Command::new(cargo)
            .args([
                "build",
                "--release",
                "--locked",
                "--package",
                "somework-testkit",
                "--bins",
            ])
            .arg("--target-dir")
            .arg(&target_dir)
            .current_dir(repo_root())
            .output()
            .expect("cannot run cargo");
        checked("cargo build --package somework-testkit --bins", output);
        release_dir
    });
    release_dir.join(program)
}

fn missing_capability() -> Option<&'static str> {
    if !cfg!(target_os = "linux") {
        return Some("Linux (network namespaces and cgroups)");
    }
    let is_root = fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| {
            ids.split_whitespace()
                .nth(1)
                .map(|effective| effective == "0")
        })
        .unwrap_or(false);
    (!is_root).then_some("root (network namespaces, cgroups and mounts)")
}

/// The machine's own values: while another local cluster runs, its kubelet's
/// values are in force and the first run's record holds the machine's.
fn machine_sysctls() -> Vec<(String, String)> {
    let record = local_cluster_cache().join("sysctls.before");
    match fs::read_to_string(record) {
        Ok(saved) => saved
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect(),
        Err(_) => read_sysctls(),
    }
}

fn local_cluster_cache() -> PathBuf {
    let cache = std::env::var_os("SOMEWORK_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("somework")))
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/somework")
        });
    cache.join("local-cluster")
}

fn read_sysctls() -> Vec<(String, String)> {
    KUBELET_SYSCTLS
        .iter()
        .map(|key| {
            let value = fs::read_to_string(Path::new("/proc/sys").join(key))
                .unwrap_or_default()
                .trim()
                .to_owned();
            (key.replace('/', "."), value)
        })
        .collect()
}

fn processes_mentioning(text: &str) -> Vec<String> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let cmdline = fs::read(entry.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline
                .contains(text)
                .then(|| format!("{}: {cmdline}", entry.file_name().to_string_lossy()))
        })
        .collect()
}

fn log_file(path: &Path) -> fs::File {
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()))
}

fn checked(what: &str, output: Output) -> String {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn last_line(text: &str) -> &str {
    text.lines().last().unwrap_or_default().trim()
}
