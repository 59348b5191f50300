//! `somework verify` against the real local cluster (scripts/local-cluster.sh)
//! with the demo installed in zero-account mode (`make up CLUSTER=local`):
//! the healthy demo passes and its JSON agrees with what this test reads
//! itself; each broken state fails with the line that names it.
//!
//! The tests change the cluster (scale, upgrade, RBAC), so they run one at a
//! time and put everything back, even when they fail. They only ever use the
//! local cluster's own kubeconfig, never the user's.
//!
//! Belongs to the `cluster` suite once the suites are regrouped.

use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;
use somework_testkit::tools::{in_ci, repo_root, require};
use tokio::sync::Mutex;

const BINARY: &str = env!("CARGO_BIN_EXE_somework");
const APP: &str = "somework";
const OBS: &str = "observability";
/// Requests per endpoint: enough to see every path, few enough to be quick.
const REQUESTS: &str = "2";

/// One broken state at a time.
static CLUSTER: Mutex<()> = Mutex::const_new(());

struct Tools {
    kubeconfig: PathBuf,
    kubectl: PathBuf,
    helm: PathBuf,
}

/// The running local cluster, or `None` (a skip, a failure under CI).
fn local_cluster() -> Option<Tools> {
    let kubectl = require("bin/kubectl", "run scripts/install-k8s-tools.sh")?;
    let helm = require("bin/helm", "run scripts/install-k8s-tools.sh")?;
    let script = repo_root().join("scripts/local-cluster.sh");
    let output = std::process::Command::new(&script)
        .arg("kubeconfig")
        .output()
        .ok()
        .filter(|output| output.status.success());
    let kubeconfig = output.and_then(|output| {
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .last()
            .map(|line| PathBuf::from(line.trim()))
    });
    match kubeconfig.filter(|path| path.is_file()) {
        Some(kubeconfig) => Some(Tools {
            kubeconfig,
            kubectl,
            helm,
        }),
        None => {
            let message =
                "the local cluster is not running; start it with the demo: make up CLUSTER=local";
            assert!(
                !in_ci(),
                "{message} (CI=true: a missing cluster fails the run)"
            );
            eprintln!("SKIPPED: {message}");
            None
        }
    }
}

impl Tools {
    fn run(&self, program: &PathBuf, args: &[&str]) -> String {
        let output = std::process::Command::new(program)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .output()
            .unwrap_or_else(|error| panic!("{}: {error}", program.display()));
        assert!(
            output.status.success(),
            "{} {args:?}: {}",
            program.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn kubectl(&self, args: &[&str]) -> String {
        self.run(&self.kubectl, args)
    }

    fn helm(&self, args: &[&str]) -> String {
        self.run(&self.helm, args)
    }

    /// GET through the API server's service proxy: what this test sees,
    /// independently of verify's own port-forwards.
    fn proxy_get(&self, namespace: &str, service_port: &str, path: &str) -> String {
        let raw = format!("/api/v1/namespaces/{namespace}/services/{service_port}/proxy{path}");
        self.kubectl(&["get", "--raw", &raw])
    }

    /// Polls `condition` every second for up to `limit`.
    fn wait_until(&self, what: &str, limit: Duration, condition: impl Fn() -> bool) {
        let started = Instant::now();
        while !condition() {
            assert!(
                started.elapsed() < limit,
                "{what} did not happen within {limit:?}"
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    fn rollout(&self, namespace: &str, deployment: &str) {
        self.kubectl(&[
            "-n",
            namespace,
            "rollout",
            "status",
            &format!("deployment/{deployment}"),
            "--timeout=180s",
        ]);
    }
}

/// Puts the cluster back when a test ends, passed or failed.
struct Restore<'a> {
    tools: &'a Tools,
    undo: Box<dyn Fn(&Tools) + 'a>,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        (self.undo)(self.tools);
    }
}

async fn verify(kubeconfig: &PathBuf, args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let output = tokio::process::Command::new(BINARY)
        .arg("verify")
        .args(["--requests", REQUESTS, "--timeout", "90s"])
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("SENTRY_AUTH_TOKEN")
        .env_remove("SENTRY_ORG")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), output)
        .await
        .expect("verify did not exit within 120 s")
        .expect("cannot run somework verify");
    (output, started.elapsed())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The `verify: FAIL ...` lines of a failed run's table.
fn failure_lines(output: &Output) -> Vec<String> {
    text(&output.stdout)
        .lines()
        .filter(|line| line.starts_with("verify: FAIL "))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn the_healthy_demo_passes_and_its_json_matches_the_cluster() {
    let _one_at_a_time = CLUSTER.lock().await;
    let Some(tools) = local_cluster() else {
        return;
    };
    let (output, elapsed) = verify(&tools.kubeconfig, &["--json"]).await;
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    eprintln!("verify on the healthy local cluster: {elapsed:?}");
    let report: Value = serde_json::from_str(&stdout).expect("one JSON report");
    assert_eq!(report["passed"], true);
    let checks = report["checks"].as_array().expect("checks");
    for check in checks {
        assert_eq!(check["outcome"], "pass", "{check:#}");
    }
    let names: Vec<&str> = checks.iter().filter_map(|c| c["name"].as_str()).collect();
    for expected in [
        "deployment observability/otel-collector",
        "deployment somework/somework-frontend",
        "deployment somework/somework-backend",
        "deployment observability/jaeger",
        "deployment observability/bugsink",
        "GET /somework (frontend)",
        "GET /errorwork (frontend)",
        "GET /chain?hops=2 (frontend)",
        "collector receivers",
        "collector exporter otlp_grpc/jaeger",
        "Jaeger: traces of /chain?hops=2",
        "Bugsink: errors of /errorwork",
    ] {
        assert!(
            names.contains(&expected),
            "no check {expected:?} in {names:#?}"
        );
    }

    // The trace ids verify reports are in Jaeger, as this test reads it.
    let traces = report["traces"].as_array().expect("traces");
    assert_eq!(traces.len(), 6, "{traces:#?}");
    for trace in traces {
        let id = trace["trace_id"].as_str().expect("trace id");
        assert_eq!(id.len(), 32);
        let body = tools.proxy_get(OBS, "jaeger:16686", &format!("/api/traces/{id}"));
        let jaeger: Value = serde_json::from_str(&body).expect("Jaeger JSON");
        let spans = jaeger["data"][0]["spans"].as_array().expect("spans");
        assert!(!spans.is_empty(), "trace {id}");
        let servers = spans
            .iter()
            .filter(|span| {
                span["tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|tag| tag["key"] == "span.kind" && tag["value"] == "server")
            })
            .count();
        let expected_servers = if trace["request"] == "/chain?hops=2" {
            3
        } else {
            1
        };
        assert_eq!(servers, expected_servers, "trace {id}: {trace:#}");
        let status = trace["status"].as_u64();
        let expected_status = if trace["request"] == "/errorwork" {
            500
        } else {
            200
        };
        assert_eq!(status, Some(expected_status), "{trace:#}");
    }

    // The collector's counters as this test reads them cover verify's deltas.
    let page = tools.proxy_get(OBS, "otel-collector:8888", "/metrics");
    let accepted_total: f64 = page
        .lines()
        .filter(|line| line.starts_with("otelcol_receiver_accepted_spans{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    let accepted_delta = report["collector"]["receivers"]["otlp"]["accepted"]
        .as_f64()
        .expect("accepted delta");
    assert!(accepted_delta >= 22.0, "{:#}", report["collector"]);
    assert!(
        accepted_total >= accepted_delta,
        "{accepted_total} < {accepted_delta}"
    );
}

#[tokio::test]
async fn a_collector_scaled_to_zero_is_named() {
    let _one_at_a_time = CLUSTER.lock().await;
    let Some(tools) = local_cluster() else {
        return;
    };
    let _restore = Restore {
        tools: &tools,
        undo: Box::new(|tools| {
            tools.kubectl(&[
                "-n",
                OBS,
                "scale",
                "deployment/otel-collector",
                "--replicas=1",
            ]);
            tools.rollout(OBS, "otel-collector");
        }),
    };
    tools.kubectl(&[
        "-n",
        OBS,
        "scale",
        "deployment/otel-collector",
        "--replicas=0",
    ]);
    tools.wait_until("the collector pods to go", Duration::from_secs(60), || {
        tools
            .kubectl(&[
                "-n",
                OBS,
                "get",
                "pods",
                "-l",
                "app.kubernetes.io/name=otel-collector",
                "-o",
                "name",
            ])
            .trim()
            .is_empty()
    });
    let (output, _) = verify(&tools.kubeconfig, &[]).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stdout));
    let failures = failure_lines(&output);
    assert_eq!(
        failures.first().map(String::as_str),
        Some("verify: FAIL deployment observability/otel-collector: scaled to 0 replicas"),
        "{}",
        text(&output.stdout)
    );
}

#[tokio::test]
async fn an_exporter_pointed_at_a_closed_port_is_named_with_its_counts() {
    let _one_at_a_time = CLUSTER.lock().await;
    let Some(tools) = local_cluster() else {
        return;
    };
    let chart = repo_root().join("helm/otel-collector");
    let chart = chart.to_str().expect("UTF-8 path");
    let _restore = Restore {
        tools: &tools,
        undo: Box::new(|tools| {
            tools.helm(&["rollback", "otel-collector", "--namespace", OBS, "--wait"]);
            tools.rollout(OBS, "otel-collector");
        }),
    };
    // Jaeger's Service has no port 4999: connections there are refused.
    tools.helm(&[
        "upgrade",
        "otel-collector",
        chart,
        "--namespace",
        OBS,
        "--reuse-values",
        "--set",
        "jaeger.endpoint=jaeger.observability.svc.cluster.local:4999",
        "--wait",
    ]);
    tools.rollout(OBS, "otel-collector");
    let (output, _) = verify(&tools.kubeconfig, &[]).await;
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let failures = failure_lines(&output);
    let line = failures
        .iter()
        .find(|line| line.starts_with("verify: FAIL collector exporter otlp_grpc/jaeger: "))
        .unwrap_or_else(|| panic!("no exporter failure in {stdout}"));
    assert!(
        line.contains("exporter otlp_grpc/jaeger failing: 0 of ")
            && line.contains("accepted spans sent"),
        "{line}"
    );
    // The collector's own words about it, quoted under the row.
    assert!(stdout.contains("Exporting failed"), "{stdout}");
    // Errors go straight to Bugsink, so that check still passes.
    assert!(
        !failures.iter().any(|line| line.contains("Bugsink")),
        "{failures:#?}"
    );
}

#[tokio::test]
async fn an_image_that_does_not_exist_is_named() {
    let _one_at_a_time = CLUSTER.lock().await;
    let Some(tools) = local_cluster() else {
        return;
    };
    let chart = repo_root().join("helm/somework");
    let chart = chart.to_str().expect("UTF-8 path");
    let _restore = Restore {
        tools: &tools,
        undo: Box::new(|tools| {
            tools.helm(&["rollback", "somework", "--namespace", APP, "--wait"]);
            tools.rollout(APP, "somework-frontend");
            tools.rollout(APP, "somework-backend");
        }),
    };
    tools.helm(&[
        "upgrade",
        "somework",
        chart,
        "--namespace",
        APP,
        "--reuse-values",
        "--set",
        "image.tag=does-not-exist",
    ]);
    tools.wait_until("an image pull to fail", Duration::from_secs(90), || {
        let pods = tools.kubectl(&["-n", APP, "get", "pods", "-o", "json"]);
        pods.contains("ErrImagePull") || pods.contains("ImagePullBackOff")
    });
    let (output, _) = verify(&tools.kubeconfig, &[]).await;
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let failures = failure_lines(&output);
    let line = failures
        .iter()
        .find(|line| line.starts_with("verify: FAIL deployment somework/somework-"))
        .unwrap_or_else(|| panic!("no deployment failure in {stdout}"));
    assert!(
        line.contains("ErrImagePull") || line.contains("ImagePullBackOff"),
        "{line}"
    );
    assert!(line.contains("does-not-exist"), "{line}");
}

#[tokio::test]
async fn a_service_account_without_rights_to_pods_is_told_which_verb_and_resource() {
    let _one_at_a_time = CLUSTER.lock().await;
    let Some(tools) = local_cluster() else {
        return;
    };
    let name = format!("verify-no-pods-{}", std::process::id());
    let _restore = Restore {
        tools: &tools,
        undo: Box::new(|tools| {
            for namespace in [APP, OBS] {
                tools.kubectl(&[
                    "-n",
                    namespace,
                    "delete",
                    "role,rolebinding",
                    &name,
                    "--ignore-not-found",
                ]);
            }
            tools.kubectl(&[
                "-n",
                "default",
                "delete",
                "serviceaccount",
                &name,
                "--ignore-not-found",
            ]);
        }),
    };
    tools.kubectl(&["-n", "default", "create", "serviceaccount", &name]);
    // Deployments and Services may be read, pods not at all.
    for namespace in [APP, OBS] {
        tools.kubectl(&[
            "-n",
            namespace,
            "create",
            "role",
            &name,
            "--verb=get,list",
            "--resource=deployments.apps,services",
        ]);
        tools.kubectl(&[
            "-n",
            namespace,
            "create",
            "rolebinding",
            &name,
            &format!("--role={name}"),
            &format!("--serviceaccount=default:{name}"),
        ]);
    }
    let token = tools.kubectl(&["-n", "default", "create", "token", &name, "--duration=10m"]);
    let dir = tempfile::tempdir().expect("temporary directory");
    let kubeconfig = dir.path().join("kubeconfig");
    // The cluster's own kubeconfig with the service account's token as user.
    let server = tools.kubectl(&[
        "config",
        "view",
        "--minify",
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    ]);
    let ca = tools.kubectl(&[
        "config",
        "view",
        "--minify",
        "--raw",
        "-o",
        "jsonpath={.clusters[0].cluster.certificate-authority-data}",
    ]);
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: {name}\n  user:\n    token: {}\ncontexts:\n- name: {name}\n  context:\n    cluster: local\n    user: {name}\ncurrent-context: {name}\n",
            token.trim()
        ),
    )
    .expect("write the kubeconfig");

    let (output, elapsed) = verify(&kubeconfig, &[]).await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(elapsed < Duration::from_secs(90), "{elapsed:?}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].starts_with("verify: forbidden (RBAC): cannot list pods in namespace "),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains(&format!("system:serviceaccount:default:{name}")),
        "{}",
        lines[0]
    );
}

#[tokio::test]
async fn a_refused_token_and_a_missing_namespace_are_named() {
    let _one_at_a_time = CLUSTER.lock().await;
    let Some(tools) = local_cluster() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temporary directory");
    let kubeconfig = dir.path().join("kubeconfig");
    let server = tools.kubectl(&[
        "config",
        "view",
        "--minify",
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    ]);
    let ca = tools.kubectl(&[
        "config",
        "view",
        "--minify",
        "--raw",
        "-o",
        "jsonpath={.clusters[0].cluster.certificate-authority-data}",
    ]);
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: nobody\n  user:\n    token: not-a-token\ncontexts:\n- name: local\n  context:\n    cluster: local\n    user: nobody\ncurrent-context: local\n"
        ),
    )
    .expect("write the kubeconfig");
    let (output, _) = verify(&kubeconfig, &[]).await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("verify: the Kubernetes API server at ")
            && stderr.contains("refused the credentials (401 Unauthorized)"),
        "{stderr}"
    );

    let (output, _) = verify(&tools.kubeconfig, &["--app-namespace", "no-such-namespace"]).await;
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        failure_lines(&output).contains(
            &"verify: FAIL deployment no-such-namespace/somework-frontend: namespace no-such-namespace does not exist"
                .to_owned()
        ),
        "{stdout}"
    );
}
