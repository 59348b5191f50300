//! `somework verify local`: the checks of `scripts/run-local.sh`, which
//! starts Bugsink, the collector (`helm/otel-collector/pipelines/local.yaml`, every span
//! to its output) and the service on loopback and calls this. The same
//! traffic and look-ups as in the cluster, straight to loopback ports; the
//! traces are found in the collector's output instead of Jaeger. Besides the
//! table, it prints where each trace and the error can be seen.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use super::args::LocalArgs;
use super::backends::bugsink::FoundEvent;
use super::check::Check;
use super::collector_log;
use super::http::Direct;
use super::progress::Step;
use super::report::Report;
use super::sentry_delivery;
use super::steps;
use super::traffic::{ENDPOINTS, Sent};

/// Pause between two reads of the collector's output.
const OUTPUT_POLL: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot read {path} (written by scripts/run-bugsink.sh): {source}")]
    Secret {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot build an HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

pub async fn verify(args: &LocalArgs, step: &Step) -> Result<Report, LocalError> {
    let (started, deadline) = steps::deadline(args.timeout);
    let token = read_secret(&args.bugsink_data_dir.join("api-token"))?;
    let password = read_secret(&args.bugsink_data_dir.join("admin-password"))?;
    let service = Direct::new(&args.service)?;
    let collector = Direct::new(&args.collector_metrics)?;
    let bugsink = Direct::new(&args.bugsink)?;
    let mut report = Report::default();

    let before = steps::read_collector_before(&collector, step, &mut report).await;
    let sent = steps::send_traffic(&service, args.requests, step, &mut report).await;
    let answered = steps::answered(&sent);
    let output = args.collector_output.as_path();
    if let Some(before) = before {
        let explain = async |exporter: &str| {
            let log = tokio::fs::read_to_string(output).await.unwrap_or_default();
            collector_log::exporter_failures(&log, exporter, steps::EXPORTER_LOG_LINES)
        };
        let answered = &answered;
        steps::collector_counters(
            &collector,
            &before,
            answered,
            deadline,
            step,
            &mut report,
            explain,
        )
        .await;
    }
    let backend_deadline = steps::backend_deadline(deadline);
    step.set("looking the traces up in the collector's output");
    let lines = find_in_output(output, &answered, backend_deadline, &mut report).await;
    step.set("looking the errors up in Bugsink");
    let events =
        steps::bugsink_errors(&bugsink, &token, &answered, backend_deadline, &mut report).await;
    if let Some(log) = &args.service_log {
        step.set("reading the service's Sentry delivery counts from its log");
        let read = tokio::fs::read_to_string(log).await;
        let logs = [(log.display().to_string(), sentry_delivery::latest_of(read))];
        report.checks.push(sentry_delivery::check("service", &logs));
    }
    let summary = Summary {
        args,
        lines: &lines,
        events: &events,
        token: &token,
        password: &password,
    };
    report.summary = summary.lines(&sent);
    Ok(steps::finish(report, started))
}

fn read_secret(path: &Path) -> Result<String, LocalError> {
    std::fs::read_to_string(path)
        .map(|text| text.trim().to_owned())
        .map_err(|source| LocalError::Secret {
            path: path.to_owned(),
            source,
        })
}

/// Reads the collector's output until it holds a span of every answered
/// request or `deadline` passes; one row per endpoint. Returns the line of
/// each trace's first span.
async fn find_in_output(
    output: &Path,
    answered: &[Sent],
    deadline: Instant,
    report: &mut Report,
) -> HashMap<String, usize> {
    let mut lines = HashMap::new();
    loop {
        let text = tokio::fs::read_to_string(output).await.unwrap_or_default();
        for request in answered {
            if let Some(line) = collector_log::first_span_line(&text, &request.trace_id) {
                lines.insert(request.trace_id.clone(), line);
            }
        }
        if lines.len() == answered.len() || Instant::now() + OUTPUT_POLL >= deadline {
            break;
        }
        tokio::time::sleep(OUTPUT_POLL).await;
    }
    for endpoint in &ENDPOINTS {
        let ours: Vec<&Sent> = answered
            .iter()
            .filter(|request| request.endpoint.path == endpoint.path)
            .collect();
        let found = ours
            .iter()
            .filter(|request| lines.contains_key(&request.trace_id))
            .count();
        let mut check = Check::judged(
            found == ours.len(),
            format!("collector output: traces of {}", endpoint.path),
            format!(
                "a span of each of {} traces in {}",
                ours.len(),
                output.display()
            ),
            format!("{found} of {} found", ours.len()),
        );
        for request in ours.iter().filter(|r| !lines.contains_key(&r.trace_id)) {
            check
                .details
                .push(format!("no span of trace {}", request.trace_id));
        }
        report.checks.push(check);
    }
    lines
}

/// Where each trace and the error can be seen, as `make run` prints it.
struct Summary<'a> {
    args: &'a LocalArgs,
    /// The line of each trace's first span in the collector's output.
    lines: &'a HashMap<String, usize>,
    events: &'a HashMap<String, FoundEvent>,
    token: &'a str,
    password: &'a str,
}

impl Summary<'_> {
    fn lines(&self, sent: &[Sent]) -> Vec<String> {
        let output = self.args.collector_output.display();
        let mut out = Vec::new();
        for request in sent {
            let id = &request.trace_id;
            out.push(format!("GET {}", request.endpoint.path));
            out.push(format!("  trace_id  {id}"));
            out.push(match self.lines.get(id) {
                Some(line) => format!("  spans     {output}:{line}   (grep -n {id} {output})"),
                None => format!("  spans     NOT FOUND in {output}"),
            });
        }
        out.push(String::new());
        let error = sent
            .iter()
            .filter(|request| request.endpoint.reports_error)
            .find_map(|request| Some((&request.trace_id, self.events.get(&request.trace_id)?)));
        match error {
            Some((trace_id, event)) => out.extend(self.error_lines(trace_id, event)),
            None => out.push("The /errorwork error: NOT FOUND in Bugsink".to_owned()),
        }
        out
    }

    fn error_lines(&self, trace_id: &str, event: &FoundEvent) -> Vec<String> {
        let bugsink = self.args.bugsink.as_str().trim_end_matches('/');
        let (issue, id) = (&event.issue, &event.event);
        vec![
            format!("The /errorwork error in Bugsink, linked to trace {trace_id}:"),
            format!("  issue     {bugsink}/issues/issue/{issue}/event/{id}/"),
            format!("  login     admin / {}", self.password),
            format!("  stored    contexts.trace = {}", event.trace_context),
            "  The event's contexts.trace beside the response's trace id:".to_owned(),
            format!(
                "    echo \"response trace_id: {trace_id}\"; curl -s -H 'Authorization: Bearer {}' \
                 {bugsink}/api/canonical/0/events/{id}/",
                self.token
            ),
        ]
    }
}
