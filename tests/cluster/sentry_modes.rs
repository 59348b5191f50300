//! The collector's `sentry` and `sentry-otlp` modes on the same cluster,
//! against the Sentry API test double running as a pod (Sentry itself cannot
//! run here). The services' errors keep going to the in-cluster Bugsink.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use somework_testkit::tools::repo_root;

use crate::cluster::{APP_NS, LocalCluster, OBS_NS, report};
use crate::demo::ARRIVAL;

const DOUBLE_NS: &str = "sentry-double";
/// The exporter drops a DSN's port (FIELD-NOTES), so the double's Service
/// listens on port 80 under this name, and its DSNs name it without a port.
const DOUBLE_HOST: &str = "sentry-double.sentry-double.svc.cluster.local";
const ORG: &str = "somework-org";
const TOKEN: &str = "in-cluster-test-token";
const PROJECT: &str = "somework";

pub async fn collector_sends_to_sentry_in_both_modes(cluster: &LocalCluster) {
    start_the_double(cluster);
    let readback = cluster.port_forward(DOUBLE_NS, "service/sentry-double", 8081);
    let client = reqwest::Client::new();
    let projects: Value = client
        .get(readback.url("/projects"))
        .send()
        .await
        .expect("the double's read-back port did not answer")
        .json()
        .await
        .expect("a JSON project list");
    let project = projects
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["slug"] == PROJECT)
        .unwrap_or_else(|| panic!("the double has no project {PROJECT}: {projects}"))
        .clone();

    // sentry: the exporter finds the project and its key through the API.
    replace_secret(
        cluster,
        &[
            ("SENTRY_AUTH_TOKEN", TOKEN),
            ("SENTRY_ORG", ORG),
            ("SENTRY_PROJECT", PROJECT),
        ],
    );
    cluster.helm(&collector_upgrade(&[
        "pipeline=sentry",
        &format!("sentry.url=http://{DOUBLE_HOST}"),
    ]));
    let trace_id = chain_trace(cluster).await;
    spans_reach_the_project(
        &client,
        &readback.url("/spans"),
        &trace_id,
        &project,
        "sentry",
    )
    .await;

    // sentry-otlp: Sentry's OTLP endpoint and key, derived from the DSN by
    // the same script `make up` uses.
    let dsn = project["dsn"].as_str().expect("a DSN");
    let settings = Command::new(repo_root().join("scripts/sentry-otlp-env.sh"))
        .arg(dsn)
        .env("SOMEWORK_BIN", env!("CARGO_BIN_EXE_somework"))
        .output()
        .expect("cannot run scripts/sentry-otlp-env.sh");
    assert!(
        settings.status.success(),
        "sentry-otlp-env.sh rejected {dsn}"
    );
    let settings = String::from_utf8_lossy(&settings.stdout).into_owned();
    let setting = |name: &str| {
        settings
            .lines()
            .find_map(|line| line.strip_prefix(&format!("export {name}=")))
            .map(|value| value.trim_matches(['\'', '"']).to_owned())
            .unwrap_or_else(|| panic!("sentry-otlp-env.sh printed no {name}: {settings}"))
    };
    let (traces_url, logs_url, public_key) = (
        setting("SENTRY_OTLP_TRACES_URL"),
        setting("SENTRY_OTLP_LOGS_URL"),
        setting("SENTRY_PUBLIC_KEY"),
    );
    replace_secret(
        cluster,
        &[
            ("SENTRY_OTLP_TRACES_URL", traces_url.as_str()),
            ("SENTRY_OTLP_LOGS_URL", logs_url.as_str()),
            ("SENTRY_PUBLIC_KEY", public_key.as_str()),
        ],
    );
    cluster.helm(&collector_upgrade(&["pipeline=sentry-otlp"]));
    let trace_id = chain_trace(cluster).await;
    spans_reach_the_project(
        &client,
        &readback.url("/spans"),
        &trace_id,
        &project,
        "sentry-otlp",
    )
    .await;
}

fn start_the_double(cluster: &LocalCluster) {
    let image = cluster.testkit_image("sentry-double");
    let labels = json!({"app.kubernetes.io/name": "sentry-double"});
    let manifests = [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": DOUBLE_NS}}),
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "sentry-double", "namespace": DOUBLE_NS},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "automountServiceAccountToken": false,
                        "securityContext": {
                            "runAsNonRoot": true,
                            "runAsUser": 65532,
                            "seccompProfile": {"type": "RuntimeDefault"}
                        },
                        "containers": [{
                            "name": "sentry-double",
                            "image": image,
                            "imagePullPolicy": "Never",
                            "env": [
                                {"name": "SENTRY_DOUBLE_AUTHORITY", "value": DOUBLE_HOST},
                                {"name": "SENTRY_DOUBLE_ORG", "value": ORG},
                                {"name": "SENTRY_DOUBLE_TOKEN", "value": TOKEN},
                                {"name": "SENTRY_DOUBLE_PROJECTS", "value": format!("other,{PROJECT}")}
                            ],
                            "ports": [
                                {"name": "api", "containerPort": 8080},
                                {"name": "readback", "containerPort": 8081}
                            ],
                            "readinessProbe": {"tcpSocket": {"port": "api"}, "periodSeconds": 1},
                            "securityContext": {
                                "allowPrivilegeEscalation": false,
                                "readOnlyRootFilesystem": true,
                                "capabilities": {"drop": ["ALL"]}
                            }
                        }]
                    }
                }
            }
        }),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "sentry-double", "namespace": DOUBLE_NS},
            "spec": {
                "selector": labels,
                "ports": [
                    {"name": "api", "port": 80, "targetPort": "api"},
                    {"name": "readback", "port": 8081, "targetPort": "readback"}
                ]
            }
        }),
    ];
    for manifest in manifests {
        cluster.kubectl_with_input(&["apply", "-f", "-"], &manifest.to_string());
    }
    cluster.kubectl(&[
        "--namespace",
        DOUBLE_NS,
        "rollout",
        "status",
        "deployment/sentry-double",
        "--timeout=120s",
    ]);
}

/// The Secret the collector chart reads in Sentry modes, replaced whole.
fn replace_secret(cluster: &LocalCluster, entries: &[(&str, &str)]) {
    let data: serde_json::Map<String, Value> = entries
        .iter()
        .map(|(key, value)| ((*key).to_owned(), Value::from(*value)))
        .collect();
    let secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "otel-collector-sentry", "namespace": OBS_NS},
        "stringData": data,
    });
    cluster.kubectl(&[
        "--namespace",
        OBS_NS,
        "delete",
        "secret",
        "otel-collector-sentry",
        "--ignore-not-found",
    ]);
    cluster.kubectl_with_input(&["apply", "-f", "-"], &secret.to_string());
}

fn collector_upgrade(sets: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "upgrade",
        "otel-collector",
        "helm/otel-collector",
        "--namespace",
        OBS_NS,
        "--reuse-values",
        "--set",
        "sentry.existingSecret=otel-collector-sentry",
        "--wait",
        "--timeout",
        "3m",
    ]
    .map(str::to_owned)
    .to_vec();
    for set in sets {
        args.push("--set".to_owned());
        args.push((*set).to_owned());
    }
    args
}

/// One /chain?hops=1 call from the host, after the collector's new pod is
/// serving; returns its trace id.
async fn chain_trace(cluster: &LocalCluster) -> String {
    let frontend = cluster.port_forward(APP_NS, "service/somework-frontend", 8080);
    let body: Value = reqwest::get(frontend.url("/chain?hops=1"))
        .await
        .expect("the frontend did not answer")
        .json()
        .await
        .expect("a JSON body");
    body["trace_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no trace id in {body}"))
        .to_owned()
}

async fn spans_reach_the_project(
    client: &reqwest::Client,
    spans_url: &str,
    trace_id: &str,
    project: &Value,
    mode: &str,
) {
    let deadline = Instant::now() + ARRIVAL;
    let spans = loop {
        let spans: Vec<Value> = client
            .get(spans_url)
            .send()
            .await
            .expect("the double's read-back port did not answer")
            .json()
            .await
            .expect("a JSON span list");
        let ours: Vec<Value> = spans
            .into_iter()
            .filter(|span| span["trace_id"] == trace_id)
            .collect();
        let servers = ours
            .iter()
            .filter(|s| s["kind"] == "SPAN_KIND_SERVER")
            .count();
        if servers >= 2 || Instant::now() > deadline {
            break ours;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let servers = spans
        .iter()
        .filter(|s| s["kind"] == "SPAN_KIND_SERVER")
        .count();
    assert_eq!(
        servers, 2,
        "{mode}: /chain?hops=1 must reach the double with 2 SERVER spans; got {spans:?}"
    );
    for span in &spans {
        assert_eq!(
            span["project_id"], project["id"],
            "{mode}: span went to the wrong project: {span}"
        );
        assert_eq!(
            span["sentry_key"], project["public_key"],
            "{mode}: span sent with the wrong key: {span}"
        );
    }
    report(&format!(
        "{mode} mode: the trace's {} spans reached project {} with its key",
        spans.len(),
        project["slug"]
    ));
}
