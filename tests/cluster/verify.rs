//! `somework verify` on the local cluster: the healthy demo passes and its
//! JSON agrees with what this test reads itself (through the API server's
//! service proxy, not verify's port-forwards); each broken state fails with
//! the line that names it, and is put back even when an assertion fails.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;
use somework_testkit::tools::repo_root;

use crate::cluster::{APP_NS, LocalCluster, OBS_NS, report};

const BINARY: &str = env!("CARGO_BIN_EXE_somework");
/// Requests per endpoint: every path seen, quickly.
const REQUESTS: &str = "2";

async fn verify(kubeconfig: &Path, args: &[&str]) -> (Output, Duration) {
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

/// GET through the API server's service proxy.
fn proxy_get(cluster: &LocalCluster, namespace: &str, service_port: &str, path: &str) -> String {
    let raw = format!("/api/v1/namespaces/{namespace}/services/{service_port}/proxy{path}");
    cluster.kubectl(&["get", "--raw", &raw])
}

fn wait_until(what: &str, limit: Duration, condition: impl Fn() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < limit,
            "{what} did not happen within {limit:?}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn rollout(cluster: &LocalCluster, namespace: &str, deployment: &str) {
    cluster.kubectl(&[
        "-n",
        namespace,
        "rollout",
        "status",
        &format!("deployment/{deployment}"),
        "--timeout=180s",
    ]);
}

/// Runs `undo` when dropped: a broken state is put back even when the
/// phase's assertions fail.
struct Restore<'a> {
    cluster: &'a LocalCluster,
    undo: fn(&LocalCluster),
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        (self.undo)(self.cluster);
    }
}

pub async fn passes_on_the_healthy_demo_and_agrees_with_the_cluster(cluster: &LocalCluster) {
    let (output, elapsed) = verify(cluster.kubeconfig(), &["--json"]).await;
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    report(&format!(
        "somework verify passed on the healthy demo in {elapsed:.1?}"
    ));
    let json: Value = serde_json::from_str(&stdout).expect("one JSON report");
    assert_eq!(json["passed"], true);
    let checks = json["checks"].as_array().expect("checks");
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
        "Sentry delivery: somework-frontend",
        "Sentry delivery: somework-backend",
    ] {
        assert!(
            names.contains(&expected),
            "no check {expected:?} in {names:#?}"
        );
    }

    // Every trace id verify reports is in Jaeger with the SERVER spans of
    // its request, as this test reads Jaeger itself.
    let traces = json["traces"].as_array().expect("traces");
    assert_eq!(traces.len(), 6, "{traces:#?}");
    for trace in traces {
        let id = trace["trace_id"].as_str().expect("trace id");
        let body = proxy_get(
            cluster,
            OBS_NS,
            "jaeger:16686",
            &format!("/api/traces/{id}"),
        );
        let jaeger: Value = serde_json::from_str(&body).expect("Jaeger JSON");
        let spans = jaeger["data"][0]["spans"].as_array().expect("spans");
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
        let (expected_servers, expected_status) = match trace["request"].as_str() {
            Some("/chain?hops=2") => (3, 200),
            Some("/errorwork") => (1, 500),
            _ => (1, 200),
        };
        assert_eq!(servers, expected_servers, "trace {id}: {trace:#}");
        assert_eq!(trace["status"].as_u64(), Some(expected_status), "{trace:#}");
    }

    // The collector's counters, as this test reads them, cover verify's deltas.
    let page = proxy_get(cluster, OBS_NS, "otel-collector:8888", "/metrics");
    let accepted_total: f64 = page
        .lines()
        .filter(|line| line.starts_with("otelcol_receiver_accepted_spans{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    let accepted = json["collector"]["receivers"]["otlp"]["accepted"]
        .as_f64()
        .expect("the otlp receiver's delta");
    // 2 requests x (4 + 4 + at least 3 spans).
    assert!(accepted >= 22.0, "{:#}", json["collector"]);
    assert!(accepted_total >= accepted, "{accepted_total} < {accepted}");

    // RED per endpoint from the collector's span metrics: every request
    // verify sent counted, each /errorwork one as an error, with a rate and
    // a p99; and the RED port, read by this test, has the error series.
    let red = json["red"]["endpoints"]
        .as_array()
        .expect("RED per endpoint");
    assert_eq!(red.len(), 3, "{red:#?}");
    for endpoint in red {
        let path = endpoint["endpoint"].as_str().expect("endpoint");
        let sent = traces.iter().filter(|t| t["request"] == path).count() as f64;
        let calls = endpoint["calls"].as_f64().expect("calls");
        let errors = endpoint["errors"].as_f64().expect("errors");
        assert!(sent > 0.0 && calls >= sent, "{endpoint:#}");
        if path == "/errorwork" {
            assert!(
                errors >= sent,
                "/errorwork requests are errors: {endpoint:#}"
            );
        } else {
            assert_eq!(errors, 0.0, "{endpoint:#}");
        }
        assert_eq!(endpoint["service"], "somework-frontend", "{endpoint:#}");
        assert!(endpoint["rate_per_s"].as_f64() > Some(0.0), "{endpoint:#}");
        assert!(endpoint["p99_ms"].as_f64() > Some(0.0), "{endpoint:#}");
        let route = endpoint["route"].as_str().expect("route");
        let check = format!("RED {route} (somework-frontend)");
        assert!(names.contains(&check.as_str()), "no check {check:?}");
    }
    let red_page = proxy_get(cluster, OBS_NS, "otel-collector:8889", "/metrics");
    assert!(
        red_page.lines().any(|line| {
            line.starts_with("traces_span_metrics_calls_total{")
                && line.contains(r#"http_route="/errorwork""#)
                && line.contains(r#"service_name="somework-frontend""#)
                && line.contains(r#"status_code="STATUS_CODE_ERROR""#)
        }),
        "no /errorwork error series on :8889:\n{red_page}"
    );
}

pub async fn names_each_broken_state(cluster: &LocalCluster) {
    collector_scaled_to_zero(cluster).await;
    exporter_pointed_at_a_closed_port(cluster).await;
    image_that_does_not_exist(cluster).await;
    service_account_without_rights_to_pods(cluster).await;
    refused_token_and_missing_namespace(cluster).await;
}

async fn collector_scaled_to_zero(cluster: &LocalCluster) {
    let _restore = Restore {
        cluster,
        undo: |cluster| {
            cluster.kubectl(&[
                "-n",
                OBS_NS,
                "scale",
                "deployment/otel-collector",
                "--replicas=1",
            ]);
            rollout(cluster, OBS_NS, "otel-collector");
        },
    };
    cluster.kubectl(&[
        "-n",
        OBS_NS,
        "scale",
        "deployment/otel-collector",
        "--replicas=0",
    ]);
    wait_until("the collector pods to go", Duration::from_secs(60), || {
        cluster
            .kubectl(&[
                "-n",
                OBS_NS,
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
    let (output, _) = verify(cluster.kubeconfig(), &[]).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stdout));
    assert_eq!(
        failure_lines(&output).first().map(String::as_str),
        Some("verify: FAIL deployment observability/otel-collector: scaled to 0 replicas"),
        "{}",
        text(&output.stdout)
    );
    report("verify names a collector scaled to 0");
}

async fn exporter_pointed_at_a_closed_port(cluster: &LocalCluster) {
    let chart = repo_root().join("helm/otel-collector");
    let chart = chart.to_str().expect("a UTF-8 path");
    let _restore = Restore {
        cluster,
        undo: |cluster| {
            cluster.helm(&[
                "rollback",
                "otel-collector",
                "--namespace",
                OBS_NS,
                "--wait",
            ]);
            rollout(cluster, OBS_NS, "otel-collector");
        },
    };
    // Jaeger's Service has no port 4999: every connection there is refused.
    cluster.helm(&[
        "upgrade",
        "otel-collector",
        chart,
        "--namespace",
        OBS_NS,
        "--reuse-values",
        "--set",
        "jaeger.endpoint=jaeger.observability.svc.cluster.local:4999",
        "--wait",
    ]);
    rollout(cluster, OBS_NS, "otel-collector");
    let (output, _) = verify(cluster.kubeconfig(), &[]).await;
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let failures = failure_lines(&output);
    let line = failures
        .iter()
        .find(|line| line.starts_with("verify: FAIL collector exporter otlp_grpc/jaeger: "))
        .unwrap_or_else(|| panic!("no exporter failure in {stdout}"));
    assert!(
        line.contains("exporter otlp_grpc/jaeger failing: 0 of ")
            && line.contains(" accepted spans sent"),
        "{line}"
    );
    // The collector's own words, quoted under the row.
    assert!(stdout.contains("Exporting failed"), "{stdout}");
    // Errors go from the service straight to Bugsink: that check still passes.
    assert!(
        !failures.iter().any(|line| line.contains("Bugsink")),
        "{failures:#?}"
    );
    // RED comes from the spans inside the collector, whatever the exporter
    // does: every endpoint still counted, /errorwork as errors.
    assert!(
        !failures.iter().any(|line| line.contains("FAIL RED ")),
        "{failures:#?}"
    );
    assert!(stdout.contains("RED per endpoint"), "{stdout}");
    report("verify names an exporter pointed at a closed port, with its counts");
}

async fn image_that_does_not_exist(cluster: &LocalCluster) {
    let chart = repo_root().join("helm/somework");
    let chart = chart.to_str().expect("a UTF-8 path");
    let _restore = Restore {
        cluster,
        undo: |cluster| {
            cluster.helm(&["rollback", "somework", "--namespace", APP_NS, "--wait"]);
            rollout(cluster, APP_NS, "somework-frontend");
            rollout(cluster, APP_NS, "somework-backend");
        },
    };
    cluster.helm(&[
        "upgrade",
        "somework",
        chart,
        "--namespace",
        APP_NS,
        "--reuse-values",
        "--set",
        "image.tag=does-not-exist",
    ]);
    wait_until("an image pull to fail", Duration::from_secs(90), || {
        let pods = cluster.kubectl(&["-n", APP_NS, "get", "pods", "-o", "json"]);
        // ErrImageNeverPull on the local cluster (pull policy Never), ErrImagePull
        // or ImagePullBackOff where a registry is asked.
        pods.contains("ErrImage") || pods.contains("ImagePullBackOff")
    });
    let (output, _) = verify(cluster.kubeconfig(), &[]).await;
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let failures = failure_lines(&output);
    let line = failures
        .iter()
        .find(|line| line.starts_with("verify: FAIL deployment somework/somework-"))
        .unwrap_or_else(|| panic!("no deployment failure in {stdout}"));
    assert!(
        line.contains("ErrImage") || line.contains("ImagePullBackOff"),
        "{line}"
    );
    assert!(line.contains("does-not-exist"), "{line}");
    report("verify names an image that does not exist");
}

/// A kubeconfig for the cluster's API server with `token` as the user.
fn kubeconfig_with_token(
    cluster: &LocalCluster,
    dir: &Path,
    user: &str,
    token: &str,
) -> std::path::PathBuf {
    let view = |path: &str| {
        cluster.kubectl(&[
            "config",
            "view",
            "--minify",
            "--raw",
            "--flatten",
            "-o",
            &format!("jsonpath={path}"),
        ])
    };
    let server = view("{.clusters[0].cluster.server}");
    let ca = view("{.clusters[0].cluster.certificate-authority-data}");
    let path = dir.join(format!("{user}.kubeconfig"));
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: {user}\n  user:\n    token: {token}\ncontexts:\n- name: local\n  context:\n    cluster: local\n    user: {user}\ncurrent-context: local\n"
        ),
    )
    .expect("write the kubeconfig");
    path
}

const NO_PODS: &str = "verify-no-pods";

async fn service_account_without_rights_to_pods(cluster: &LocalCluster) {
    let _restore = Restore {
        cluster,
        undo: |cluster| {
            for namespace in [APP_NS, OBS_NS] {
                cluster.kubectl(&[
                    "-n",
                    namespace,
                    "delete",
                    "role,rolebinding",
                    NO_PODS,
                    "--ignore-not-found",
                ]);
            }
            cluster.kubectl(&[
                "-n",
                "default",
                "delete",
                "serviceaccount",
                NO_PODS,
                "--ignore-not-found",
            ]);
        },
    };
    cluster.kubectl(&["-n", "default", "create", "serviceaccount", NO_PODS]);
    // Deployments and Services may be read; pods not at all.
    for namespace in [APP_NS, OBS_NS] {
        cluster.kubectl(&[
            "-n",
            namespace,
            "create",
            "role",
            NO_PODS,
            "--verb=get,list",
            "--resource=deployments.apps,services",
        ]);
        cluster.kubectl(&[
            "-n",
            namespace,
            "create",
            "rolebinding",
            NO_PODS,
            &format!("--role={NO_PODS}"),
            &format!("--serviceaccount=default:{NO_PODS}"),
        ]);
    }
    let token = cluster.kubectl(&[
        "-n",
        "default",
        "create",
        "token",
        NO_PODS,
        "--duration=10m",
    ]);
    let dir = tempfile::tempdir().expect("temporary directory");
    let kubeconfig = kubeconfig_with_token(cluster, dir.path(), NO_PODS, token.trim());
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
        lines[0].contains(&format!("system:serviceaccount:default:{NO_PODS}")),
        "{}",
        lines[0]
    );
    report("verify names the verb and resource a ServiceAccount may not use");
}

async fn refused_token_and_missing_namespace(cluster: &LocalCluster) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let kubeconfig = kubeconfig_with_token(cluster, dir.path(), "nobody", "not-a-token");
    let (output, _) = verify(&kubeconfig, &[]).await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("verify: the Kubernetes API server at ")
            && stderr.contains("refused the credentials (401 Unauthorized)"),
        "{stderr}"
    );

    let (output, _) = verify(
        cluster.kubeconfig(),
        &["--app-namespace", "no-such-namespace"],
    )
    .await;
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let expected = "verify: FAIL deployment no-such-namespace/somework-frontend: \
                    namespace no-such-namespace does not exist";
    assert!(
        failure_lines(&output).iter().any(|line| line == expected),
        "{stdout}"
    );
    report("verify names a refused token and a missing namespace");
}
