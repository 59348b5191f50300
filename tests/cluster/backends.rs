//! The zero-account backends beside Jaeger and Bugsink, read from the host
//! through port-forwards: VictoriaLogs finds log records by trace id,
//! Prometheus holds the collector's RED metrics of /somework and /errorwork,
//! and Jaeger's Monitor tab (SPM) shows them per operation.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cluster::{APP_NS, LocalCluster, OBS_NS, report};
use crate::demo::ARRIVAL;

/// Prometheus scrapes every 15 s (the chart's default), and a target is
/// `up` only after its first scrape.
const SCRAPED: Duration = Duration::from_secs(90);

pub async fn logs_and_red_metrics_reach_their_backends(cluster: &LocalCluster) {
    let frontend = cluster.port_forward(APP_NS, "service/somework-frontend", 8080);
    let client = reqwest::Client::new();
    let response = client
        .get(frontend.url("/errorwork"))
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .expect("the frontend did not answer");
    assert_eq!(response.status().as_u16(), 500, "/errorwork must fail");
    let body: Value = response.json().await.expect("a JSON body");
    let trace_id = body["trace_id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        trace_id.len(),
        32,
        "no trace id in /errorwork's answer: {body}"
    );

    services_error_record_is_found_by_its_trace_id(cluster, &client, &trace_id).await;
    log_record_is_found_by_its_trace_id(cluster, &client, &trace_id).await;
    prometheus_holds_the_red_metrics(cluster, &client).await;
    jaeger_monitor_tab_shows_the_operations(cluster, &client).await;
}

/// The frontend's own ERROR record of the /errorwork failure, bridged from
/// `tracing` and exported over OTLP, comes back from VictoriaLogs by the
/// request's trace id, with the span it was written in.
async fn services_error_record_is_found_by_its_trace_id(
    cluster: &LocalCluster,
    client: &reqwest::Client,
    trace_id: &str,
) {
    let is_service_error = |r: &Value| {
        r["service.name"] == "somework-frontend"
            && r["severity"] == "ERROR"
            && r["span_id"].as_str().is_some_and(|s| s.len() == 16)
    };
    let records = records_of_trace(cluster, client, trace_id, |records| {
        records.iter().any(is_service_error)
    })
    .await;
    assert!(
        records.iter().any(is_service_error),
        "VictoriaLogs has no ERROR record of somework-frontend for /errorwork's trace {trace_id}: {records:#?}"
    );
    report("the frontend's ERROR record of /errorwork is in VictoriaLogs under its trace id");
}

/// A log record with the /errorwork request's trace id, sent to the
/// collector's OTLP/HTTP receiver as a service would, comes back from
/// VictoriaLogs by that trace id with its span id, severity and resource.
async fn log_record_is_found_by_its_trace_id(
    cluster: &LocalCluster,
    client: &reqwest::Client,
    trace_id: &str,
) {
    let collector = cluster.port_forward(OBS_NS, "service/otel-collector", 4318);
    let span_id = "00f067aa0ba902b7";
    let message = format!("cluster e2e: a record of trace {trace_id}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
        .to_string();
    let export = json!({"resourceLogs": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "somework-cluster-e2e"}}
        ]},
        "scopeLogs": [{"scope": {"name": "somework-cluster-e2e"}, "logRecords": [{
            "timeUnixNano": now,
            "severityNumber": 17,
            "severityText": "ERROR",
            "body": {"stringValue": message},
            "traceId": trace_id,
            "spanId": span_id
        }]}]
    }]});
    let accepted = client
        .post(collector.url("/v1/logs"))
        .json(&export)
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .expect("the collector's OTLP/HTTP receiver did not answer");
    assert!(
        accepted.status().is_success(),
        "the collector refused the log record: {}",
        accepted.status()
    );

    let records = records_of_trace(cluster, client, trace_id, |records| {
        records.iter().any(|r| r["_msg"] == message)
    })
    .await;
    let record = records
        .iter()
        .find(|r| r["_msg"] == message)
        .unwrap_or_else(|| {
            panic!(
                "VictoriaLogs has no record {message:?} for trace {trace_id}; it has: {records:?}"
            )
        });
    assert_eq!(record["trace_id"], trace_id, "{record}");
    assert_eq!(record["span_id"], span_id, "{record}");
    assert_eq!(record["severity"], "ERROR", "{record}");
    assert_eq!(record["service.name"], "somework-cluster-e2e", "{record}");
    report("a log record sent through the collector is in VictoriaLogs under its trace id");
}

/// VictoriaLogs' records whose `trace_id` field is `trace_id` (LogsQL),
/// polled until `done` holds or the spans' arrival time passes.
pub async fn records_of_trace(
    cluster: &LocalCluster,
    client: &reqwest::Client,
    trace_id: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let victoria_logs = cluster.port_forward(OBS_NS, "service/victoria-logs", 9428);
    let deadline = Instant::now() + ARRIVAL;
    loop {
        let response = client
            .get(with_query(
                &victoria_logs.url("/select/logsql/query"),
                &[("query", &format!("trace_id:=\"{trace_id}\""))],
            ))
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .expect("VictoriaLogs did not answer");
        assert!(
            response.status().is_success(),
            "VictoriaLogs refused the query: {}",
            response.status()
        );
        // One JSON object per line.
        let text = response.text().await.unwrap_or_default();
        let records: Vec<Value> = text
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect();
        if done(&records) || Instant::now() > deadline {
            return records;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Prometheus's HTTP API (the binary built from the Go module has no UI
/// assets) returns both collector targets as up, and the span metrics of
/// the frontend's SERVER spans for /somework (no errors) and /errorwork (all
/// errors), which this test and the one before it requested.
async fn prometheus_holds_the_red_metrics(cluster: &LocalCluster, client: &reqwest::Client) {
    for job in ["otel-collector", "otel-collector-spanmetrics"] {
        let query = format!(r#"up{{job="{job}"}}"#);
        let up = prometheus_query(cluster, client, &query, |result| {
            result.iter().any(|series| series["value"][1] == "1")
        })
        .await;
        assert!(
            up.iter().any(|series| series["value"][1] == "1"),
            "Prometheus does not scrape the collector's job {job}: {up:?}"
        );
    }
    let query = r#"sum by (http_route, status_code) (traces_span_metrics_calls_total{service_name="somework-frontend", span_kind="SPAN_KIND_SERVER", http_route=~"/somework|/errorwork"})"#;
    let calls = |result: &[Value], route: &str, status: &str| -> f64 {
        result
            .iter()
            .filter(|s| s["metric"]["http_route"] == route && s["metric"]["status_code"] == status)
            .filter_map(|s| s["value"][1].as_str()?.parse::<f64>().ok())
            .sum()
    };
    let complete = |result: &[Value]| {
        calls(result, "/somework", "STATUS_CODE_UNSET") > 0.0
            && calls(result, "/errorwork", "STATUS_CODE_ERROR") >= 2.0
    };
    let result = prometheus_query(cluster, client, query, complete).await;
    assert!(
        complete(&result),
        "Prometheus lacks the RED series of /somework and /errorwork (2 failed requests so far): {result:#?}"
    );
    assert_eq!(
        calls(&result, "/somework", "STATUS_CODE_ERROR"),
        0.0,
        "/somework counted as an error: {result:#?}"
    );
    assert_eq!(
        calls(&result, "/errorwork", "STATUS_CODE_UNSET"),
        0.0,
        "/errorwork counted as a success: {result:#?}"
    );
    report("Prometheus scrapes the collector and holds the RED series of /somework and /errorwork");
}

/// The series of an instant query, polled until `done` holds.
pub async fn prometheus_query(
    cluster: &LocalCluster,
    client: &reqwest::Client,
    query: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let prometheus = cluster.port_forward(OBS_NS, "service/prometheus", 9090);
    let deadline = Instant::now() + SCRAPED;
    loop {
        let body: Value = client
            .get(with_query(
                &prometheus.url("/api/v1/query"),
                &[("query", query)],
            ))
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .expect("Prometheus did not answer")
            .json()
            .await
            .expect("a JSON body from Prometheus");
        assert_eq!(body["status"], "success", "query {query}: {body}");
        let result = body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if done(&result) || Instant::now() > deadline {
            return result;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The Monitor tab's API (Jaeger querying Prometheus) returns a call rate
/// for the frontend's /somework and /errorwork operations.
async fn jaeger_monitor_tab_shows_the_operations(cluster: &LocalCluster, client: &reqwest::Client) {
    let jaeger = cluster.port_forward(OBS_NS, "service/jaeger", 16686);
    let url = with_query(
        &jaeger.url("/api/metrics/calls"),
        &[
            ("service", "somework-frontend"),
            ("groupByOperation", "true"),
            ("spanKind", "server"),
        ],
    );
    let operations = |body: &Value| -> Vec<String> {
        body["metrics"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|metric| metric["labels"].as_array().into_iter().flatten())
            .filter(|label| label["name"] == "operation")
            .filter_map(|label| label["value"].as_str().map(str::to_owned))
            .collect()
    };
    let expected = ["GET /somework", "GET /errorwork"];
    // A rate needs two scrapes of the counters.
    let deadline = Instant::now() + SCRAPED;
    let body = loop {
        let response = client
            .get(url.clone())
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .expect("Jaeger did not answer");
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("a JSON body from Jaeger");
        assert_eq!(status, 200, "Jaeger's /api/metrics/calls: {body}");
        assert_eq!(body["name"], "service_operation_call_rate", "{body}");
        let found = operations(&body);
        if expected.iter().all(|op| found.iter().any(|f| f == op)) || Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let found = operations(&body);
    for operation in expected {
        assert!(
            found.iter().any(|f| f == operation),
            "Jaeger's Monitor tab has no call rate for {operation}; it has {found:?}: {body}"
        );
    }
    report("Jaeger's Monitor tab shows the call rate of GET /somework and GET /errorwork");
}

/// `base` with `params` percent-encoded as its query string.
fn with_query(base: &str, params: &[(&str, &str)]) -> reqwest::Url {
    reqwest::Url::parse_with_params(base, params)
        .unwrap_or_else(|e| panic!("not a URL: {base}: {e}"))
}
