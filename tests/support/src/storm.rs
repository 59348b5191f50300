//! An error storm and its accounting: requests sent at a fixed rate whatever
//! the answers take (an open-loop load, as a storm of real users is), and the
//! service's own count of what became of every error it reported to Sentry.

use std::time::Duration;

use serde_json::Value;

use crate::service::Service;

/// Sends `count` GETs to `url` at `per_second`, each on its own task so
/// that a slow answer never delays the next, and returns the statuses in
/// the order sent.
pub async fn paced_gets(url: &str, count: usize, per_second: u32) -> Vec<u16> {
    let http = reqwest::Client::new();
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / per_second);
    let mut sent = Vec::with_capacity(count);
    for _ in 0..count {
        ticks.tick().await;
        let request = http.get(url).send();
        sent.push(tokio::spawn(async move {
            request
                .await
                .map_or(0, |response| response.status().as_u16())
        }));
    }
    let mut statuses = Vec::with_capacity(count);
    for request in sent {
        statuses.push(request.await.expect("a request task"));
    }
    statuses
}

/// The service's `sentry delivery summary` line, logged at shutdown. The
/// service counts `reported` as errors come and `unsent` as what is neither
/// sent nor dropped at exit, so the tests hold `reported` against the errors
/// they caused and `sent` against what the server stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliverySummary {
    pub reported: u64,
    pub sent: u64,
    pub queue_full: u64,
    pub rate_limited: u64,
    pub network_error: u64,
    pub send_error: u64,
    pub unsent: u64,
}

impl DeliverySummary {
    /// Reads the summary from the logs of a service that has exited.
    pub fn of(service: &Service) -> Self {
        let line = service
            .json_logs()
            .into_iter()
            .find(|l| l["message"] == "sentry delivery summary")
            .unwrap_or_else(|| {
                panic!(
                    "no sentry delivery summary in:\n{}",
                    service.logs().join("\n")
                )
            });
        let count = |field: &str| {
            line[field]
                .as_u64()
                .unwrap_or_else(|| panic!("no {field} in {line}"))
        };
        Self {
            reported: count("errors.reported"),
            sent: count("errors.sent"),
            queue_full: count("errors.dropped.queue_full"),
            rate_limited: count("errors.dropped.rate_limited"),
            network_error: count("errors.dropped.network_error"),
            send_error: count("errors.dropped.send_error"),
            unsent: count("errors.unsent"),
        }
    }

    /// Every error counted as dropped, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.queue_full + self.rate_limited + self.network_error + self.send_error
    }

    pub fn figures(&self) -> Value {
        serde_json::json!({
            "reported": self.reported,
            "sent": self.sent,
            "dropped_queue_full": self.queue_full,
            "dropped_rate_limited": self.rate_limited,
            "dropped_network_error": self.network_error,
            "dropped_send_error": self.send_error,
            "unsent": self.unsent,
        })
    }
}
