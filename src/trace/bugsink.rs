//! The errors of a trace in Bugsink: the events whose `contexts.trace`
//! carries the trace id, each with the span it happened in and its page.
//!
//! Bugsink's API cannot search events by tag, so this walks the projects'
//! issues, most recently seen first, and reads only the events whose time
//! falls near the trace's: a few requests for a fresh trace.

use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_json::Value;

use super::http::Endpoint;

/// Leeway around the trace's time span: an event is stamped by the service
/// when it is captured, an issue's `last_seen` by Bugsink when it digests it.
const CLOCK_SLACK: Duration = Duration::from_secs(300);

/// A Bugsink reached through its API, and the address its pages are read at.
pub struct Bugsink {
    pub api: Endpoint,
    pub token: String,
    /// Where a browser reaches Bugsink, for the links (often the API's own).
    pub public_url: String,
    /// What to run before the links open, when they need a port-forward.
    pub open_hint: Option<String>,
}

/// An error event of the trace.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ErrorLink {
    /// The span the error was captured in, from `contexts.trace.span_id`.
    pub span_id: Option<String>,
    /// The issue's title, e.g. `WorkError: ErrorWork failed: ...`.
    pub title: String,
    pub url: String,
}

#[derive(Debug, Deserialize)]
struct Page<T> {
    #[serde(default = "Vec::new")]
    results: Vec<T>,
}

#[derive(Debug, Deserialize)]
struct Project {
    id: Value,
}

#[derive(Debug, Deserialize)]
struct Issue {
    id: String,
    last_seen: String,
    #[serde(default)]
    calculated_type: String,
    #[serde(default)]
    calculated_value: String,
}

#[derive(Debug, Deserialize)]
struct ListedEvent {
    id: String,
    timestamp: String,
}

impl Bugsink {
    /// The error events of `trace_id`, whose spans ran from `start` to `end`.
    pub async fn errors_of(
        &self,
        trace_id: &str,
        start: SystemTime,
        end: SystemTime,
    ) -> Result<Vec<ErrorLink>, String> {
        let earliest = start.checked_sub(CLOCK_SLACK).unwrap_or(start);
        let latest = end + CLOCK_SLACK;
        let mut links = Vec::new();
        let projects: Page<Project> = self.get("/api/canonical/0/projects/").await?;
        for project in projects.results {
            let project = match project.id {
                Value::String(id) => id,
                other => other.to_string(),
            };
            let issues: Page<Issue> = self
                .get(&format!(
                    "/api/canonical/0/issues/?project={project}&sort=last_seen&order=desc"
                ))
                .await?;
            for issue in issues.results {
                if time(&issue.last_seen)? < earliest {
                    break;
                }
                let events: Page<ListedEvent> = self
                    .get(&format!(
                        "/api/canonical/0/events/?issue={}&order=desc",
                        issue.id
                    ))
                    .await?;
                for event in events.results {
                    let stamped = time(&event.timestamp)?;
                    if stamped > latest {
                        continue;
                    }
                    if stamped < earliest {
                        break;
                    }
                    let detail: Value = self
                        .get(&format!("/api/canonical/0/events/{}/", event.id))
                        .await?;
                    let trace = &detail["data"]["contexts"]["trace"];
                    if trace["trace_id"].as_str() != Some(trace_id) {
                        continue;
                    }
                    links.push(ErrorLink {
                        span_id: trace["span_id"].as_str().map(str::to_owned),
                        title: format!("{}: {}", issue.calculated_type, issue.calculated_value),
                        url: format!(
                            "{}/issues/issue/{}/event/{}/",
                            self.public_url.trim_end_matches('/'),
                            issue.id,
                            event.id
                        ),
                    });
                }
            }
        }
        Ok(links)
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, String> {
        let auth = format!("Bearer {}", self.token);
        let reply = self
            .api
            .get(path, &[("authorization", auth.as_str())])
            .await?;
        let where_ = self.api.describe();
        match reply.status {
            200 => serde_json::from_slice(&reply.body).map_err(|error| {
                format!("Bugsink at {where_} answered {path} with unexpected JSON: {error}")
            }),
            401 | 403 => Err(format!(
                "Bugsink at {where_} refused the token ({}): check --bugsink-token",
                reply.status
            )),
            status => Err(format!("Bugsink at {where_} answered {status} to {path}")),
        }
    }
}

/// Bugsink's times, e.g. `2026-12-07T21:40:00.123456Z`.
fn time(text: &str) -> Result<SystemTime, String> {
    humantime::parse_rfc3339_weak(text.trim_end_matches('Z'))
        .map_err(|error| format!("Bugsink sent the time {text:?}: {error}"))
}
