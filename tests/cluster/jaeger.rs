//! Reading traces back from Jaeger's HTTP API (the one its UI uses), through
//! a port-forward from the host.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::Value;

/// One span as Jaeger stores it, with its process's tags (the resource).
#[derive(Debug, Clone)]
pub struct JaegerSpan {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub name: String,
    pub kind: String,
    pub service: String,
    pub resource: HashMap<String, String>,
}

pub struct Jaeger {
    base: String,
    client: reqwest::Client,
}

impl Jaeger {
    pub fn new(base: String) -> Self {
        Jaeger {
            base,
            client: reqwest::Client::new(),
        }
    }

    /// The spans of one trace (empty while Jaeger does not know it).
    pub async fn trace(&self, trace_id: &str) -> Vec<JaegerSpan> {
        match self.get(&format!("/api/traces/{trace_id}")).await {
            Some(body) => spans_of(&body),
            None => Vec::new(),
        }
    }

    /// Polls one trace until `done` holds or `timeout` passes; returns what
    /// arrived either way, for the caller's assertion message.
    pub async fn wait_for_trace(
        &self,
        trace_id: &str,
        timeout: Duration,
        done: impl Fn(&[JaegerSpan]) -> bool,
    ) -> Vec<JaegerSpan> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.trace(trace_id).await;
            if done(&spans) || Instant::now() > deadline {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Trace ids with a SERVER span of `service` in the last `lookback`.
    pub async fn server_trace_ids(&self, service: &str, lookback: Duration) -> HashSet<String> {
        let end = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let start = end.saturating_sub(lookback);
        let path = format!(
            "/api/traces?service={service}&spanKind=server&limit=100000&start={}&end={}",
            start.as_micros(),
            end.as_micros()
        );
        let body = self.get(&path).await.unwrap_or(Value::Null);
        spans_of(&body)
            .into_iter()
            .filter(|span| span.kind == "server" && span.service == service)
            .map(|span| span.trace_id)
            .collect()
    }

    async fn get(&self, path: &str) -> Option<Value> {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.json().await.ok()
    }
}

fn spans_of(body: &Value) -> Vec<JaegerSpan> {
    let mut spans = Vec::new();
    for trace in body["data"].as_array().into_iter().flatten() {
        let processes = &trace["processes"];
        for span in trace["spans"].as_array().into_iter().flatten() {
            let process = &processes[span["processID"].as_str().unwrap_or_default()];
            let tags = |tags: &Value| -> HashMap<String, String> {
                tags.as_array()
                    .into_iter()
                    .flatten()
                    .map(|tag| {
                        let value = match &tag["value"] {
                            Value::String(text) => text.clone(),
                            other => other.to_string(),
                        };
                        (tag["key"].as_str().unwrap_or_default().to_owned(), value)
                    })
                    .collect()
            };
            let span_tags = tags(&span["tags"]);
            let parent_span_id = span["references"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|reference| reference["refType"] == "CHILD_OF")
                .and_then(|reference| reference["spanID"].as_str())
                .map(str::to_owned);
            spans.push(JaegerSpan {
                trace_id: span["traceID"].as_str().unwrap_or_default().to_owned(),
                span_id: span["spanID"].as_str().unwrap_or_default().to_owned(),
                parent_span_id,
                name: span["operationName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                kind: span_tags.get("span.kind").cloned().unwrap_or_default(),
                service: process["serviceName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                resource: tags(&process["tags"]),
            });
        }
    }
    spans
}
