//! What the service itself counted of the errors that did not reach Sentry,
//! read from its JSON log: the latest `sentry delivery` line (written while
//! it runs, when errors were lost since the last one) or `sentry delivery
//! summary` (at shutdown). One row per service: none lost, or each reason
//! with its count and what to do about it.

use std::fmt::Display;

use kube::api::LogParams;
use serde_json::Value;

use super::check::Check;
use super::cluster::Cluster;
use super::workload::WorkloadState;
use crate::telemetry::{DELIVERY_LINE, DELIVERY_SUMMARY_LINE, DeliveryCounts};

/// Why a log does not say what became of the service's errors.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryLogError {
    #[error("a `{message}` line without the count {field}: {line}")]
    MissingCount {
        message: String,
        field: &'static str,
        line: String,
    },
    #[error(
        "the log has no JSON line: run the service with LOG_FORMAT=json \
         (the chart's logFormat: json) so its Sentry delivery counts can be read"
    )]
    NotJson,
}

/// Why one log could not be judged: it could not be read (`E`), or it
/// does not say.
#[derive(Debug, thiserror::Error)]
pub enum ReadError<E: std::error::Error + 'static> {
    #[error("cannot read the log: {0}")]
    Read(#[source] E),
    #[error(transparent)]
    Log(#[from] DeliveryLogError),
}

/// [`latest`] of a log that was read, or why it was not.
pub fn latest_of<E: std::error::Error + 'static>(
    log: Result<String, E>,
) -> Result<Option<DeliveryLine>, ReadError<E>> {
    let log = log.map_err(ReadError::Read)?;
    Ok(latest(&log)?)
}

/// The latest delivery line of one log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryLine {
    pub counts: DeliveryCounts,
    /// The shutdown summary: its `unsent` errors were never sent.
    pub at_shutdown: bool,
}

impl DeliveryLine {
    /// Errors that will never reach Sentry.
    fn lost(&self) -> u64 {
        let never_sent = if self.at_shutdown {
            self.counts.unsent
        } else {
            0
        };
        self.counts.lost() + never_sent
    }
}

/// The latest delivery line of `log`, `None` when there is none (nothing
/// was lost since the service started).
pub fn latest(log: &str) -> Result<Option<DeliveryLine>, DeliveryLogError> {
    let mut json_lines = 0_usize;
    let mut latest = None;
    for line in log.lines() {
        let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        json_lines += 1;
        let at_shutdown = match fields.get("message").and_then(Value::as_str) {
            Some(DELIVERY_LINE) => false,
            Some(DELIVERY_SUMMARY_LINE) => true,
            _ => continue,
        };
        let counts = counts(&fields, line)?;
        latest = Some(DeliveryLine {
            counts,
            at_shutdown,
        });
    }
    if json_lines == 0 && !log.trim().is_empty() {
        return Err(DeliveryLogError::NotJson);
    }
    Ok(latest)
}

fn counts(
    fields: &serde_json::Map<String, Value>,
    line: &str,
) -> Result<DeliveryCounts, DeliveryLogError> {
    let count = |field: &'static str| {
        fields
            .get(field)
            .and_then(Value::as_u64)
            .ok_or_else(|| DeliveryLogError::MissingCount {
                message: fields
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                field,
                line: line.to_owned(),
            })
    };
    Ok(DeliveryCounts {
        reported: count("errors.reported")?,
        sent: count("errors.sent")?,
        queue_full: count("errors.dropped.queue_full")?,
        rate_limited: count("errors.dropped.rate_limited")?,
        network_error: count("errors.dropped.network_error")?,
        send_error: count("errors.dropped.send_error")?,
        unsent: count("errors.unsent")?,
    })
}

/// The row of `service`, from the latest line of each of its logs (one per
/// pod, or the one file of a local run), named by the first of each pair.
pub fn check<E: Display>(
    service: &str,
    logs: &[(String, Result<Option<DeliveryLine>, E>)],
) -> Check {
    let name = format!("Sentry delivery: {service}");
    let expected = "no error lost on the way to Sentry (the service's own counts)";
    if logs.is_empty() {
        return Check::skip(name, expected, "no pod to read the log of");
    }
    let mut lines = Vec::new();
    for (source, read) in logs {
        match read {
            Ok(Some(line)) => lines.push((source, *line)),
            Ok(None) => {}
            Err(error) => return Check::fail(name, expected, format!("{source}: {error}")),
        }
    }
    let lost: u64 = lines.iter().map(|(_, line)| line.lost()).sum();
    if lines.is_empty() {
        let seen = format!("none lost since start (no `{DELIVERY_LINE}` line)");
        return Check::pass(name, expected, seen);
    }
    let total = |count: fn(&DeliveryCounts) -> u64| -> u64 {
        lines.iter().map(|(_, line)| count(&line.counts)).sum()
    };
    let reported = total(|counts| counts.reported);
    if lost == 0 {
        let (sent, unsent) = (total(|c| c.sent), total(|c| c.unsent));
        let seen = format!("none lost: {reported} reported, {sent} sent, {unsent} on their way");
        return Check::pass(name, expected, seen);
    }
    let reasons = reasons(&lines.iter().map(|(_, line)| *line).collect::<Vec<_>>());
    let counted: Vec<String> = reasons
        .iter()
        .map(|(count, reason, _)| format!("{count} {reason}"))
        .collect();
    let seen = format!("{lost} of {reported} errors lost: {}", counted.join(", "));
    let mut check = Check::fail(name, expected, seen);
    for (_, reason, remedy) in &reasons {
        check = check.detail(format!("{reason}: {remedy}"));
    }
    for (source, line) in &lines {
        let kind = if line.at_shutdown {
            DELIVERY_SUMMARY_LINE
        } else {
            DELIVERY_LINE
        };
        let counts = &line.counts;
        check = check.detail(format!(
            "{source}: {} lost ({kind}: {} reported, {} sent, {} unsent)",
            line.lost(),
            counts.reported,
            counts.sent,
            counts.unsent
        ));
    }
    check.detail("the counts run from the service's start; a restart clears them".to_owned())
}

/// Each reason with a count above zero, summed over `lines`: the count,
/// what it is, and what to do.
fn reasons(lines: &[DeliveryLine]) -> Vec<(u64, &'static str, &'static str)> {
    let sum = |count: fn(&DeliveryLine) -> u64| lines.iter().map(count).sum::<u64>();
    let all = [
        (
            sum(|line| line.counts.rate_limited),
            "rate-limited",
            "Sentry answered 429 or its rate limit was in force: raise the project's \
             rate limit or quota in Sentry, or report fewer errors",
        ),
        (
            sum(|line| line.counts.network_error),
            "network error",
            "Sentry was unreachable (refused, reset or timed out): check the host of \
             SENTRY_DSN and the network path (egress, DNS, proxy) from the service",
        ),
        (
            sum(|line| line.counts.send_error),
            "send error",
            "Sentry answered another 4xx or 5xx: check the project and key of \
             SENTRY_DSN, and Sentry's status",
        ),
        (
            sum(|line| line.counts.queue_full),
            "queue full",
            "errors came faster than Sentry took them: find the error storm, or \
             raise Sentry's throughput",
        ),
        (
            sum(|line| {
                if line.at_shutdown {
                    line.counts.unsent
                } else {
                    0
                }
            }),
            "never sent at shutdown",
            "the service stopped before Sentry took them: Sentry was slow or \
             unreachable during the shutdown",
        ),
    ];
    all.into_iter().filter(|(count, _, _)| *count > 0).collect()
}

/// The Sentry delivery row of `service`, from the latest delivery line in
/// the log of each of its pods (`get` on `pods/log`).
pub async fn check_pods(
    cluster: &Cluster,
    namespace: &str,
    service: &str,
    workload: &WorkloadState,
) -> Check {
    let pods = match cluster.pods_matching(namespace, &workload.selector).await {
        Ok(pods) => pods,
        Err(error) => {
            let name = format!("Sentry delivery: {service}");
            return Check::fail(name, "the log of each pod", error.to_string());
        }
    };
    let api = cluster.pods(namespace);
    let mut logs = Vec::new();
    for pod in pods {
        let Some(name) = pod.metadata.name else {
            continue;
        };
        let log = api
            .logs(&name, &LogParams::default())
            .await
            .map_err(|error| {
                cluster
                    .access("get", "pods/log", namespace)
                    .error(&cluster.url, error)
            });
        logs.push((format!("pod {name}"), latest_of(log)));
    }
    check(service, &logs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::check::Outcome;

    /// Lines the release binary wrote (LOG_FORMAT=json, OTEL_SDK_DISABLED),
    /// its SENTRY_DSN on a closed loopback port: two /errorwork requests,
    /// then SIGTERM.
    const STARTED: &str = r#"{"timestamp":"2026-12-07T23:20:33.024542Z","level":"INFO","message":"listening","addr":"127.0.0.1:47151","downstream":"http://127.0.0.1:47151/","target":"somework::server"}"#;
    const SUMMARY: &str = r#"{"timestamp":"2026-12-07T23:20:34.281265Z","level":"INFO","message":"sentry delivery summary","errors.reported":2,"errors.sent":0,"errors.dropped.queue_full":0,"errors.dropped.rate_limited":0,"errors.dropped.network_error":2,"errors.dropped.send_error":0,"errors.unsent":0,"target":"somework::telemetry::sentry_delivery"}"#;

    fn row(log: &str) -> Check {
        let logs = [("pod a".to_owned(), latest(log))];
        check("somework-frontend", &logs)
    }

    #[test]
    fn the_summary_is_read_and_its_losses_fail_the_row_with_what_to_do() {
        let log = format!("{STARTED}\n{SUMMARY}\n");
        let line = latest(&log).expect("a JSON log").expect("the summary");
        assert!(line.at_shutdown);
        assert_eq!((line.counts.reported, line.counts.network_error), (2, 2));
        let check = row(&log);
        assert_eq!(check.outcome, Outcome::Fail);
        assert_eq!(check.seen, "2 of 2 errors lost: 2 network error");
        assert!(check.details[0].starts_with("network error: Sentry was unreachable"));
        assert!(check.details[1].starts_with("pod a: 2 lost (sentry delivery summary"));
    }

    #[test]
    fn the_latest_running_line_wins_and_its_unsent_errors_are_on_their_way() {
        let first = SUMMARY
            .replace("sentry delivery summary", "sentry delivery")
            .replace(
                "\"errors.dropped.network_error\":2",
                "\"errors.dropped.network_error\":0",
            )
            .replace("\"errors.unsent\":0", "\"errors.unsent\":2");
        let later = first
            .replace(
                "\"errors.dropped.rate_limited\":0",
                "\"errors.dropped.rate_limited\":1",
            )
            .replace("\"errors.unsent\":2", "\"errors.unsent\":1");
        let line = latest(&format!("{first}\n{later}\n"))
            .expect("JSON")
            .expect("a line");
        assert!(!line.at_shutdown);
        assert_eq!(line.counts.rate_limited, 1);
        let check = row(&first);
        assert_eq!(check.outcome, Outcome::Pass, "{check:?}");
        assert_eq!(check.seen, "none lost: 2 reported, 0 sent, 2 on their way");
        let check = row(&later);
        assert_eq!(check.seen, "1 of 2 errors lost: 1 rate-limited");
        // At shutdown the unsent ones are lost too.
        let stopped = later.replace("\"sentry delivery\"", "\"sentry delivery summary\"");
        assert_eq!(
            row(&stopped).seen,
            "2 of 2 errors lost: 1 rate-limited, 1 never sent at shutdown"
        );
    }

    #[test]
    fn no_line_is_none_lost_and_a_text_log_or_a_missing_count_is_an_error() {
        assert_eq!(latest(STARTED), Ok(None));
        assert_eq!(row(STARTED).outcome, Outcome::Pass);
        assert_eq!(latest(""), Ok(None));
        let text = "2026-12-07T23:20:05Z  INFO somework: sentry delivery errors.reported=2";
        assert_eq!(latest(text), Err(DeliveryLogError::NotJson));
        assert_eq!(row(text).outcome, Outcome::Fail);
        let cut = SUMMARY.replace("\"errors.sent\":0,", "");
        assert!(matches!(
            latest(&cut),
            Err(DeliveryLogError::MissingCount {
                field: "errors.sent",
                ..
            })
        ));
    }

    #[test]
    fn no_pod_is_a_skip() {
        let logs: [(String, Result<Option<DeliveryLine>, DeliveryLogError>); 0] = [];
        assert_eq!(check("somework-backend", &logs).outcome, Outcome::Skip);
    }
}
