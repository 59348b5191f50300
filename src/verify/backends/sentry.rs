//! Sentry's events API, for the error trace ids: used when both
//! `SENTRY_AUTH_TOKEN` and `SENTRY_ORG` are set.

use std::collections::BTreeMap;

use serde_json::Value;
use tokio::time::Instant;

use super::{POLL_INTERVAL, REQUEST_TIMEOUT};
use crate::verify::check::Check;
use crate::verify::traffic::Sent;

#[derive(Debug, thiserror::Error)]
enum SentryError {
    #[error("SENTRY_URL {url:?}: {source}")]
    Url {
        url: String,
        source: url::ParseError,
    },
    #[error("Sentry events API: {0}")]
    Api(#[from] reqwest::Error),
}

pub struct SentryApi {
    pub url: String,
    pub org: String,
    pub token: String,
}

impl SentryApi {
    pub fn from_env() -> Option<Self> {
        let var = |name| {
            std::env::var(name)
                .ok()
                .filter(|value: &String| !value.is_empty())
        };
        Some(Self {
            url: var("SENTRY_URL").unwrap_or_else(|| "https://sentry.io".to_owned()),
            org: var("SENTRY_ORG")?,
            token: var("SENTRY_AUTH_TOKEN")?,
        })
    }

    /// Where to see the errors of a trace in Sentry's UI.
    pub fn issues_link(&self, trace_id: &str) -> String {
        format!(
            "{}/organizations/{}/issues/?query=trace:{trace_id}",
            self.url.trim_end_matches('/'),
            self.org
        )
    }

    /// Looks each `/errorwork` trace id up with
    /// `GET /api/0/organizations/{org}/events/?query=trace:{id}`.
    pub async fn check(&self, sent: &[Sent], deadline: Instant) -> Check {
        let wanted: Vec<&str> = sent
            .iter()
            .filter(|request| request.endpoint.reports_error)
            .map(|request| request.trace_id.as_str())
            .collect();
        let mut found: BTreeMap<&str, bool> = wanted.iter().map(|trace| (*trace, false)).collect();
        let mut last_problem = None;
        match reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build() {
            Ok(client) => loop {
                for (trace, seen) in found.iter_mut().filter(|(_, seen)| !**seen) {
                    match self.has_events(&client, trace).await {
                        Ok(has) => *seen = has,
                        Err(problem) => last_problem = Some(problem),
                    }
                }
                let done = found.values().all(|seen| *seen);
                let bad_url = matches!(last_problem, Some(SentryError::Url { .. }));
                if done || bad_url || Instant::now() + POLL_INTERVAL >= deadline {
                    break;
                }
                tokio::time::sleep(POLL_INTERVAL).await;
            },
            Err(error) => last_problem = Some(SentryError::Api(error)),
        }
        let count = found.values().filter(|seen| **seen).count();
        let mut check = Check::judged(
            count == wanted.len(),
            format!("Sentry ({}): errors of /errorwork", self.org),
            format!("{} error events with our trace ids", wanted.len()),
            format!("{count} of {} found", wanted.len()),
        );
        check
            .details
            .extend(last_problem.map(|problem| problem.to_string()));
        check
    }

    /// Whether Sentry holds an error event of `trace`.
    async fn has_events(&self, client: &reqwest::Client, trace: &str) -> Result<bool, SentryError> {
        let base = format!(
            "{}/api/0/organizations/{}/events/",
            self.url.trim_end_matches('/'),
            self.org
        );
        let query = [
            ("dataset", "errors"),
            ("field", "id"),
            ("field", "trace"),
            ("statsPeriod", "1h"),
            ("query", &format!("trace:{trace}")),
        ];
        let url = url::Url::parse_with_params(&base, query).map_err(|source| SentryError::Url {
            url: self.url.clone(),
            source,
        })?;
        let reply = client
            .get(url)
            .bearer_auth(&self.token)
            .send()
            .await?
            .error_for_status()?;
        let body: Value = reply.json().await.unwrap_or_default();
        Ok(body["data"].as_array().is_some_and(|rows| !rows.is_empty()))
    }
}
