//! What a user checks after `make up CLUSTER=local`: the Deployments, `helm
//! test`, and from the host the traces in Jaeger and the error in Bugsink.

use std::time::Duration;

use serde_json::Value;

use crate::cluster::{APP_NS, LocalCluster, OBS_NS, report};
use crate::jaeger::{Jaeger, JaegerSpan};

const DEPLOYMENTS: [(&str, &str); 7] = [
    (OBS_NS, "jaeger"),
    (OBS_NS, "victoria-logs"),
    (OBS_NS, "prometheus"),
    (OBS_NS, "bugsink"),
    (OBS_NS, "otel-collector"),
    (APP_NS, "somework-frontend"),
    (APP_NS, "somework-backend"),
];

/// Spans reach Jaeger after the SDK's and the collector's batching.
pub const ARRIVAL: Duration = Duration::from_secs(60);

pub fn deployments_are_available_and_helm_test_passes(cluster: &LocalCluster) {
    for (namespace, name) in DEPLOYMENTS {
        let available = cluster.kubectl(&[
            "--namespace",
            namespace,
            "get",
            "deployment",
            name,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Available\")].status}",
        ]);
        assert_eq!(
            available, "True",
            "deployment {namespace}/{name} is not Available"
        );
    }
    let logs = cluster.helm(&["test", "somework", "--namespace", APP_NS, "--logs"]);
    assert!(
        logs.contains("all endpoints answered as expected"),
        "helm test somework did not report success:\n{logs}"
    );
}

pub async fn traces_and_errors_arrive_from_the_host(cluster: &LocalCluster) {
    let frontend = cluster.port_forward(APP_NS, "service/somework-frontend", 8080);
    let jaeger_ui = cluster.port_forward(OBS_NS, "service/jaeger", 16686);
    let jaeger = Jaeger::new(jaeger_ui.url(""));
    let client = reqwest::Client::new();

    let call = |path: &str, traceparent: Option<String>| {
        let mut request = client
            .get(frontend.url(path))
            .timeout(Duration::from_secs(20));
        if let Some(traceparent) = traceparent {
            request = request.header("traceparent", traceparent);
        }
        async move {
            let response = request.send().await.expect("the frontend did not answer");
            let status = response.status().as_u16();
            let body: Value = response.json().await.expect("a JSON body");
            let trace_id = body["trace_id"].as_str().unwrap_or_default().to_owned();
            (status, trace_id, body)
        }
    };

    let (status, somework_trace, body) = call("/somework", None).await;
    assert_eq!(status, 200, "/somework answered {status}: {body}");
    let (status, error_trace, body) = call("/errorwork", None).await;
    assert_eq!(status, 500, "/errorwork answered {status}: {body}");
    let (status, chain_trace, body) = call("/chain?hops=2", None).await;
    assert_eq!(status, 200, "/chain?hops=2 answered {status}: {body}");
    let chosen_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let chosen_parent = "00f067aa0ba902b7";
    let (status, echoed_trace, body) = call(
        "/somework",
        Some(format!("00-{chosen_trace}-{chosen_parent}-01")),
    )
    .await;
    assert_eq!(
        status, 200,
        "/somework with a traceparent answered {status}: {body}"
    );
    assert_eq!(
        echoed_trace, chosen_trace,
        "the service did not continue the chosen trace"
    );

    // Each whole tree: the span names of the README, one parent for all.
    for (trace_id, names) in [
        (
            &somework_trace,
            &["GET /somework", "somework", "MiddleWork", "ErrorWork"][..],
        ),
        (
            &error_trace,
            &["GET /errorwork", "somework", "MiddleWork", "ErrorWork"][..],
        ),
        (
            &chosen_trace.to_owned(),
            &["GET /somework", "somework", "MiddleWork", "ErrorWork"][..],
        ),
    ] {
        let spans = jaeger
            .wait_for_trace(trace_id, ARRIVAL, |spans| {
                names
                    .iter()
                    .all(|name| spans.iter().any(|s| s.name == *name))
            })
            .await;
        for name in names {
            assert!(
                spans.iter().any(|s| s.name == *name),
                "trace {trace_id}: no span {name:?} in Jaeger; spans: {:?}",
                names_of(&spans)
            );
        }
        assert_whole_tree(trace_id, &spans);
        assert_kubernetes_resource(&spans);
    }
    let chosen = jaeger.trace(chosen_trace).await;
    let root = chosen
        .iter()
        .find(|s| s.kind == "server")
        .expect("a SERVER span in the chosen trace");
    assert_eq!(
        root.parent_span_id.as_deref(),
        Some(chosen_parent),
        "the frontend's SERVER span must be the child of the caller's span"
    );

    // /chain?hops=2: frontend -> backend -> backend, one trace, three SERVER
    // spans, on both Deployments' pods.
    let spans = jaeger
        .wait_for_trace(&chain_trace, ARRIVAL, |spans| {
            spans.iter().filter(|s| s.kind == "server").count() >= 3
        })
        .await;
    let servers: Vec<&JaegerSpan> = spans.iter().filter(|s| s.kind == "server").collect();
    assert_eq!(
        servers.len(),
        3,
        "/chain?hops=2 must give 3 SERVER spans; spans: {:?}",
        names_of(&spans)
    );
    assert_whole_tree(&chain_trace, &spans);
    assert_kubernetes_resource(&spans);
    for deployment in ["somework-frontend", "somework-backend"] {
        assert!(
            servers.iter().any(
                |s| s.resource.get("k8s.deployment.name").map(String::as_str) == Some(deployment)
            ),
            "no SERVER span of /chain?hops=2 on a {deployment} pod"
        );
    }
    report(
        "traces of /somework, /errorwork, /chain?hops=2 and a chosen traceparent are whole in Jaeger",
    );

    error_is_in_bugsink(cluster, &error_trace).await;
}

/// One root, every other span's parent in the trace.
fn assert_whole_tree(trace_id: &str, spans: &[JaegerSpan]) {
    let roots: Vec<&JaegerSpan> = spans
        .iter()
        .filter(|s| {
            s.parent_span_id
                .as_ref()
                .is_none_or(|parent| !spans.iter().any(|p| &p.span_id == parent))
        })
        .collect();
    assert_eq!(
        roots.len(),
        1,
        "trace {trace_id} must be one tree; roots: {:?}",
        roots.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
}

fn assert_kubernetes_resource(spans: &[JaegerSpan]) {
    for span in spans {
        for key in ["k8s.namespace.name", "k8s.pod.name", "k8s.deployment.name"] {
            let value = span
                .resource
                .get(key)
                .map(String::as_str)
                .unwrap_or_default();
            assert!(
                !value.is_empty(),
                "span {:?} of {} has no {key}; resource: {:?}",
                span.name,
                span.service,
                span.resource
            );
        }
        assert_eq!(
            span.resource.get("k8s.namespace.name").map(String::as_str),
            Some(APP_NS),
            "span {:?} names the wrong namespace",
            span.name
        );
        assert!(
            span.resource["k8s.pod.name"].starts_with(&span.resource["k8s.deployment.name"]),
            "span {:?}: pod {} is not of deployment {}",
            span.name,
            span.resource["k8s.pod.name"],
            span.resource["k8s.deployment.name"]
        );
    }
}

fn names_of(spans: &[JaegerSpan]) -> Vec<(String, String)> {
    spans
        .iter()
        .map(|s| (s.name.clone(), s.kind.clone()))
        .collect()
}

/// Bugsink (through a port-forward, with an API token made in its pod) holds
/// the /errorwork error with a stack trace, linked to the trace.
async fn error_is_in_bugsink(cluster: &LocalCluster, trace_id: &str) {
    let token = cluster
        .kubectl(&[
            "--namespace",
            OBS_NS,
            "exec",
            "deployment/bugsink",
            "-c",
            "bugsink",
            "--",
            "bugsink-manage",
            "create_auth_token",
        ])
        .trim()
        .to_owned();
    let bugsink = cluster.port_forward(OBS_NS, "service/bugsink", 8000);
    let client = reqwest::Client::new();
    let get = |path: String| {
        let request = client
            .get(bugsink.url(&path))
            .bearer_auth(&token)
            .timeout(Duration::from_secs(20));
        async move {
            let response = request.send().await.expect("Bugsink did not answer");
            assert!(
                response.status().is_success(),
                "GET {path}: {}",
                response.status()
            );
            response.json::<Value>().await.expect("a JSON body")
        }
    };
    let deadline = std::time::Instant::now() + ARRIVAL;
    let event = loop {
        let mut found = None;
        let issues = get("/api/canonical/0/issues/?project=1".to_owned()).await;
        for issue in issues["results"].as_array().into_iter().flatten() {
            let issue_id = issue["id"].as_str().unwrap_or_default();
            let events = get(format!("/api/canonical/0/events/?issue={issue_id}")).await;
            for event in events["results"].as_array().into_iter().flatten() {
                let id = event["id"].as_str().unwrap_or_default();
                let event = get(format!("/api/canonical/0/events/{id}/")).await;
                if event["data"]["contexts"]["trace"]["trace_id"] == trace_id {
                    found = Some(event);
                }
            }
        }
        if let Some(event) = found {
            break event;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Bugsink has no event with contexts.trace.trace_id {trace_id}; issues: {issues}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let frames = event["data"]["exception"]["values"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|exception| {
            exception["stacktrace"]["frames"]
                .as_array()
                .into_iter()
                .flatten()
        })
        .count();
    assert!(
        frames > 0,
        "the /errorwork event has no stack trace: {event}"
    );
    report("the /errorwork error is in Bugsink with a stack trace and its trace id");
}
