//! Faults on the real cluster, under load from inside it (through the
//! frontend's Service: a port-forward would pin one pod).

use std::collections::HashSet;
use std::time::{Duration, Instant, UNIX_EPOCH};

use serde_json::Value;

use crate::cluster::{APP_NS, LocalCluster, OBS_NS, report};
use crate::demo::ARRIVAL;
use crate::jaeger::Jaeger;

const FRONTEND_URL: &str = "http://somework-frontend.somework.svc.cluster.local:8080";
const COLLECTOR_DEPLOYMENT: &str = "deployment/otel-collector";
const COLLECTOR_PODS: &str = "app.kubernetes.io/name=otel-collector";
/// How long a replaced pod may take to be Ready, as `rollout status` was given.
const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the load Job may take to get its first answer once its pod runs.
const LOAD_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the API server is asked again while a test waits on it.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The collector pod is deleted while requests flow: the service keeps
/// answering, and the spans of requests made once the new pod is ready arrive.
pub async fn collector_pod_deleted_under_load(cluster: &LocalCluster) {
    let load = LoadJob::start(cluster, "load-collector-restart", 10, 50);
    load.wait_until_answered(cluster).await;
    let replaced = pod_uids(cluster, OBS_NS, COLLECTOR_PODS);
    cluster.kubectl(&[
        "--namespace",
        OBS_NS,
        "delete",
        "pod",
        "--selector",
        COLLECTOR_PODS,
        "--wait=false",
    ]);
    let ready_at = replacements_ready_at(cluster, &replaced).await;
    let result = load.finish(cluster);
    assert_eq!(
        result.failed, 0,
        "requests failed while the collector pod was replaced: {:?}",
        result.failures
    );
    let after_ready: HashSet<String> = result
        .answers
        .iter()
        .filter(|(_, sent_at)| *sent_at >= ready_at)
        .map(|(trace_id, _)| trace_id.clone())
        .collect();
    assert!(
        after_ready.len() >= 50,
        "too few requests after the new collector was ready ({}) to judge",
        after_ready.len()
    );
    let missing = missing_server_spans(cluster, &after_ready).await;
    assert!(
        missing.is_empty(),
        "{} of {} requests made after the new collector pod was ready have no server span in Jaeger: {:?}",
        missing.len(),
        after_ready.len(),
        missing.iter().take(10).collect::<Vec<_>>()
    );
    report(&format!(
        "collector pod replaced under load: {} requests, 0 failed, {} spans after ready all arrived",
        result.answers.len(),
        after_ready.len()
    ));
}

/// A rolling restart of the frontend under steady load: not one request
/// fails, and every answered (sampled) request's server span arrives.
pub async fn rolling_restart_of_the_frontend_under_steady_load(cluster: &LocalCluster) {
    let load = LoadJob::start(cluster, "load-rolling-restart", 10, 60);
    load.wait_until_answered(cluster).await;
    let started = Instant::now();
    cluster.kubectl(&[
        "--namespace",
        APP_NS,
        "rollout",
        "restart",
        "deployment/somework-frontend",
    ]);
    cluster.kubectl(&[
        "--namespace",
        APP_NS,
        "rollout",
        "status",
        "deployment/somework-frontend",
        "--timeout=180s",
    ]);
    let rollout = started.elapsed();
    let result = load.finish(cluster);
    assert_eq!(
        result.failed, 0,
        "requests failed during the rolling restart: {:?}",
        result.failures
    );
    let answered: HashSet<String> = result.answers.iter().map(|(id, _)| id.clone()).collect();
    let missing = missing_server_spans(cluster, &answered).await;
    assert!(
        missing.is_empty(),
        "{} of {} answered requests have no server span in Jaeger: {:?}",
        missing.len(),
        answered.len(),
        missing.iter().take(10).collect::<Vec<_>>()
    );
    report(&format!(
        "rolling restart of somework-frontend ({rollout:.0?}) under load: {} requests, 0 failed, every server span arrived",
        answered.len()
    ));
}

/// The trace ids among `expected` that never get a frontend SERVER span in Jaeger.
async fn missing_server_spans(cluster: &LocalCluster, expected: &HashSet<String>) -> Vec<String> {
    let jaeger_ui = cluster.port_forward(OBS_NS, "service/jaeger", 16686);
    let jaeger = Jaeger::new(jaeger_ui.url(""));
    let deadline = Instant::now() + ARRIVAL;
    loop {
        let seen = jaeger
            .server_trace_ids("somework-frontend", Duration::from_secs(15 * 60))
            .await;
        let missing: Vec<String> = expected.difference(&seen).cloned().collect();
        if missing.is_empty() || Instant::now() > deadline {
            return missing;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The uids of the pods of `selector`.
fn pod_uids(cluster: &LocalCluster, namespace: &str, selector: &str) -> HashSet<String> {
    let uids = cluster.kubectl(&[
        "--namespace",
        namespace,
        "get",
        "pods",
        "--selector",
        selector,
        "--output",
        "jsonpath={.items[*].metadata.uid}",
    ]);
    uids.split_whitespace().map(str::to_owned).collect()
}

/// Waits, as the API server tells it, until as many collector pods as the
/// Deployment wants are Ready and none of them is among `replaced`; returns
/// when the last of them became Ready, in Unix milliseconds, from its Ready
/// condition. The condition's time has whole seconds, so the pod became
/// Ready within the second that follows it: a request made from then on was
/// made after the pod was Ready.
async fn replacements_ready_at(cluster: &LocalCluster, replaced: &HashSet<String>) -> u128 {
    let wanted: usize = cluster
        .kubectl(&[
            "--namespace",
            OBS_NS,
            "get",
            COLLECTOR_DEPLOYMENT,
            "--output",
            "jsonpath={.spec.replicas}",
        ])
        .trim()
        .parse()
        .expect("the Deployment's replicas as a number");
    let deadline = Instant::now() + ROLLOUT_TIMEOUT;
    loop {
        let pods: Value = serde_json::from_str(&cluster.kubectl(&[
            "--namespace",
            OBS_NS,
            "get",
            "pods",
            "--selector",
            COLLECTOR_PODS,
            "--output",
            "json",
        ]))
        .expect("kubectl prints the pods as JSON");
        let ready_since: Vec<u128> = pods["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|pod| {
                let uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
                !replaced.contains(uid) && pod["metadata"]["deletionTimestamp"].is_null()
            })
            .filter_map(ready_since_unix_ms)
            .collect();
        if ready_since.len() >= wanted {
            let last = ready_since
                .iter()
                .max()
                .expect("at least one pod is wanted");
            return last + 1_000;
        }
        assert!(
            Instant::now() < deadline,
            "{wanted} new collector pod(s) were not Ready within {ROLLOUT_TIMEOUT:?} of the deletion; \
             the pods: {:#}",
            pods["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|pod| serde_json::json!({
                    "name": pod["metadata"]["name"],
                    "phase": pod["status"]["phase"],
                    "conditions": pod["status"]["conditions"],
                }))
                .collect::<Value>()
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// When `pod` last became Ready (its Ready condition's `lastTransitionTime`,
/// in Unix milliseconds), or `None` while it is not Ready.
fn ready_since_unix_ms(pod: &Value) -> Option<u128> {
    let ready = pod["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|condition| condition["type"] == "Ready" && condition["status"] == "True")?;
    let since = ready["lastTransitionTime"].as_str()?;
    let since = humantime::parse_rfc3339(since)
        .unwrap_or_else(|e| panic!("the Ready condition's time {since:?}: {e}"));
    Some(
        since
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_millis(),
    )
}

/// Steady load from a Job inside the cluster: `somework load`, from the
/// service's own image, open loop on `/somework`, every request with a
/// sampled `traceparent` of its own and logged with `--log-requests`.
struct LoadJob {
    name: String,
}

struct LoadResult {
    failed: u64,
    failures: Vec<String>,
    /// (trace id, scheduled at in Unix milliseconds) of each answered request.
    answers: Vec<(String, u128)>,
}

impl LoadJob {
    fn start(cluster: &LocalCluster, name: &str, rate: u32, seconds: u32) -> Self {
        let image = cluster.kubectl(&[
            "--namespace",
            APP_NS,
            "get",
            "deployment/somework-frontend",
            "--output",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ]);
        let manifest = serde_json::json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name, "namespace": APP_NS},
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "metadata": {"labels": {"app.kubernetes.io/name": "somework-load"}},
                    "spec": {
                        "restartPolicy": "Never",
                        "automountServiceAccountToken": false,
                        "securityContext": {
                            "runAsNonRoot": true,
                            "runAsUser": 65532,
                            "seccompProfile": {"type": "RuntimeDefault"}
                        },
                        "containers": [{
                            "name": "load",
                            "image": image.trim(),
                            "imagePullPolicy": "Never",
                            "args": [
                                "load",
                                "--target", FRONTEND_URL,
                                "--rps", rate.to_string(),
                                "--duration", format!("{seconds}s"),
                                "--connections", "4",
                                "--mix", "somework=1",
                                "--log-requests",
                            ],
                            "securityContext": {
                                "allowPrivilegeEscalation": false,
                                "readOnlyRootFilesystem": true,
                                "capabilities": {"drop": ["ALL"]}
                            }
                        }]
                    }
                }
            }
        });
        cluster.kubectl_with_input(&["apply", "-f", "-"], &manifest.to_string());
        cluster.kubectl(&[
            "--namespace",
            APP_NS,
            "wait",
            "--for=condition=Ready",
            "pod",
            "--selector",
            &format!("job-name={name}"),
            "--timeout=60s",
        ]);
        LoadJob {
            name: name.to_owned(),
        }
    }

    /// Waits until the Job's first request is answered: the load is flowing
    /// through the frontend, not merely scheduled.
    async fn wait_until_answered(&self, cluster: &LocalCluster) {
        let job = format!("job/{}", self.name);
        let deadline = Instant::now() + LOAD_START_TIMEOUT;
        loop {
            let logs = cluster.kubectl(&["--namespace", APP_NS, "logs", &job]);
            if request_lines(&logs).iter().any(is_answered) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the load Job had no request answered within {LOAD_START_TIMEOUT:?} of its pod's start:\n{logs}"
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    fn finish(self, cluster: &LocalCluster) -> LoadResult {
        let job = format!("job/{}", self.name);
        cluster.kubectl(&[
            "--namespace",
            APP_NS,
            "wait",
            "--for=condition=Complete",
            &job,
            "--timeout=180s",
        ]);
        let logs = cluster.kubectl(&["--namespace", APP_NS, "logs", &job]);
        cluster.kubectl(&["--namespace", APP_NS, "delete", &job, "--wait=false"]);
        let requests = request_lines(&logs);
        assert!(
            !requests.is_empty(),
            "no request lines from the load Job:\n{logs}"
        );
        let (answered, failed): (Vec<&Value>, Vec<&Value>) =
            requests.iter().partition(|line| is_answered(line));
        LoadResult {
            failed: failed.len() as u64,
            failures: failed.iter().map(|line| line.to_string()).collect(),
            answers: answered
                .iter()
                .map(|line| {
                    (
                        line["trace_id"].as_str().unwrap_or_default().to_owned(),
                        line["scheduled_unix_ms"]
                            .as_u64()
                            .map(u128::from)
                            .unwrap_or_default(),
                    )
                })
                .collect(),
        }
    }
}

/// The per-request lines of the load Job's log (`--log-requests`); the
/// table at the end is for people.
fn request_lines(logs: &str) -> Vec<Value> {
    logs.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line.get("scheduled_unix_ms").is_some())
        .collect()
}

fn is_answered(request: &Value) -> bool {
    request["status"]
        .as_u64()
        .is_some_and(|status| (200..300).contains(&status))
}
