//! `somework trace TRACE_ID`: one trace drawn in the terminal as a
//! waterfall, the way Jaeger's timeline shows it, with the errors it links
//! to in Bugsink.
//!
//! The seams: [`source`] reads a trace (the collector's `file` exporter
//! output, or Jaeger's API), [`model`] orders it as a tree, [`bugsink`] finds
//! its error events, [`render`] draws it (or writes JSON), and [`http`] is
//! the one way to reach an API: a URL, or a port-forward with `verify`.

pub mod bugsink;
#[cfg(feature = "verify")]
mod cluster;
pub mod http;
pub mod model;
pub mod render;
pub mod source;

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;
use url::Url;

use self::bugsink::{Bugsink, ErrorLink};
use self::http::Endpoint;
use self::model::{Trace, Waterfall};
use self::source::Source;

/// Pause between two looks at a trace that is missing or still arriving.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// The width of the text when stdout is not a terminal and `--width` is not given.
const PIPE_WIDTH: usize = 100;
/// Exit codes: the trace was shown; it was missing or incomplete (or its
/// source failed); a flag was wrong (clap's own code for bad usage).
const NOT_FOUND: u8 = 1;
const BAD_FLAG: u8 = 2;

/// Draw one trace as a waterfall: span tree, kinds, start offsets,
/// durations to scale, status, events and the errors it links to.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Sources: --file (what make run records), --jaeger URL, or else the Jaeger of the \
cluster in --namespace, through the Kubernetes API server like `verify`.

Exit status: 0 the trace was shown whole; 1 it is missing, still arriving \
(what arrived is shown) or its source failed; 2 a flag is wrong.

Examples:
  somework trace 4bf92f3577b34da6a3ce929d0e0e4736 --file .tools/run-local/traces.jsonl
  somework trace 4bf92f3577b34da6a3ce929d0e0e4736 --jaeger http://localhost:16686 --json")]
pub struct TraceArgs {
    /// The trace id: 32 hex digits, as the service's replies and logs show it.
    #[arg(value_parser = parse_trace_id)]
    pub trace_id: String,
    /// Read the spans the collector's `file` exporter recorded (OTLP JSON
    /// lines; `make run` writes them to the TRACE_FILE of helm/otel-collector/pipelines/local.yaml).
    #[arg(long, value_name = "PATH", conflicts_with = "jaeger")]
    pub file: Option<PathBuf>,
    /// Ask Jaeger's query API at this URL, e.g. http://localhost:16686.
    #[arg(long, value_name = "URL")]
    pub jaeger: Option<Url>,
    /// Without --file or --jaeger: the kubeconfig context of the cluster
    /// whose Jaeger (and Bugsink) is reached through port-forwards.
    #[cfg(feature = "verify")]
    #[arg(long)]
    pub context: Option<String>,
    /// Without --file or --jaeger: the namespace of Jaeger and Bugsink.
    #[cfg(feature = "verify")]
    #[arg(long, default_value = "observability")]
    pub namespace: String,
    /// Link errors to their page in the Bugsink at this URL, e.g. http://127.0.0.1:8000.
    #[arg(long, value_name = "URL")]
    pub bugsink: Option<Url>,
    /// The token for Bugsink's API (`bugsink-manage create_auth_token`).
    #[arg(
        long,
        env = "BUGSINK_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub bugsink_token: Option<String>,
    /// How long to wait for a trace that is missing or still arriving, e.g. 5s, 30s, 0s.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub wait: Duration,
    /// Print JSON instead of the waterfall.
    #[arg(long)]
    pub json: bool,
    /// Columns to draw in (default: the terminal's, or 100 when not a terminal).
    #[arg(long, value_parser = clap::value_parser!(u16).range(40..=1000))]
    pub width: Option<u16>,
}

fn parse_trace_id(value: &str) -> Result<String, String> {
    let id = value.trim().to_ascii_lowercase();
    let valid = id.len() == 32
        && id.bytes().all(|b| b.is_ascii_hexdigit())
        && id.bytes().any(|b| b != b'0');
    if valid {
        Ok(id)
    } else {
        Err(format!(
            "{value:?} is not a trace id: 32 hex digits, not all zero, \
             e.g. 4bf92f3577b34da6a3ce929d0e0e4736"
        ))
    }
}

/// Why no whole trace could be shown.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("bad flag: {0}")]
    Usage(String),
    #[error("trace {trace_id} not found in {place} after {waited:?}{}", because(.last_error))]
    NotFound {
        trace_id: String,
        place: String,
        waited: Duration,
        last_error: Option<String>,
    },
    #[error("{0}")]
    Source(String),
}

fn because(error: &Option<String>) -> String {
    error.as_ref().map_or_else(
        || " (still arriving? try a longer --wait)".to_owned(),
        |error| format!(": {error}"),
    )
}

/// Runs `trace` on a runtime of its own; the exit codes are in its help.
pub fn run(args: TraceArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            return fail(
                &args,
                &Failure::Source(format!("cannot start Tokio: {error}")),
            );
        }
    };
    let outcome = runtime.block_on(show(&args));
    // A port-forward still draining must not hold the exit up.
    runtime.shutdown_timeout(Duration::from_millis(200));
    match outcome {
        Ok(code) => code,
        Err(failure) => fail(&args, &failure),
    }
}

fn fail(args: &TraceArgs, failure: &Failure) -> ExitCode {
    eprintln!("trace: {failure}");
    if args.json {
        let reply = serde_json::json!({
            "trace_id": args.trace_id,
            "found": false,
            "error": failure.to_string(),
        });
        println!("{reply}");
    }
    ExitCode::from(match failure {
        Failure::Usage(_) => BAD_FLAG,
        _ => NOT_FOUND,
    })
}

async fn show(args: &TraceArgs) -> Result<ExitCode, Failure> {
    let (source, bugsink) = connect(args).await?;
    let deadline = Instant::now() + args.wait;
    let trace = look(&source, &args.trace_id, args.wait, deadline).await?;
    let waterfall = Waterfall::new(&trace);
    let (links, link_problem) = match &bugsink {
        Some(bugsink) if waterfall.rows.iter().any(|r| r.span.is_error()) => {
            match find_links(bugsink, &waterfall, deadline).await {
                Ok(links) => (links, None),
                Err(problem) => (Vec::new(), Some(problem)),
            }
        }
        _ => (Vec::new(), None),
    };
    if args.json {
        println!("{:#}", render::json(&waterfall, &links));
    } else {
        let stdout = std::io::stdout();
        let terminal = stdout.is_terminal();
        let width = args.width.map(usize::from).unwrap_or_else(|| {
            console::Term::stdout()
                .size_checked()
                .filter(|_| terminal)
                .map_or(PIPE_WIDTH, |(_, columns)| usize::from(columns))
        });
        let layout = render::Layout {
            width,
            colour: terminal && console::colors_enabled(),
        };
        print!("{}", render::text(&waterfall, &links, layout));
    }
    if let Some(problem) = link_problem {
        eprintln!("trace: the errors' links are missing: {problem}");
    }
    if let Some(hint) = bugsink.as_ref().and_then(|b| b.open_hint.as_ref())
        && !links.is_empty()
    {
        eprintln!("trace: {hint}");
    }
    if waterfall.is_complete() {
        return Ok(ExitCode::SUCCESS);
    }
    let orphans: Vec<String> = waterfall
        .missing_parents
        .iter()
        .map(|span| {
            format!(
                "{:?} (parent {})",
                span.name,
                span.parent_span_id.as_deref().unwrap_or("none")
            )
        })
        .collect();
    eprintln!(
        "trace: trace {} is incomplete after {:?} in {}: the parents of {} are not in it \
         (still arriving? try a longer --wait)",
        args.trace_id,
        args.wait,
        source.describe(),
        orphans.join(", ")
    );
    Ok(ExitCode::from(NOT_FOUND))
}

/// Polls `source` until the trace is whole and two looks in a row found the
/// same spans, or `deadline` passes; returns what arrived by then.
async fn look(
    source: &Source,
    trace_id: &str,
    waited: Duration,
    deadline: Instant,
) -> Result<Trace, Failure> {
    let mut last: Option<Trace> = None;
    let mut last_error = None;
    loop {
        match source.fetch(trace_id).await {
            Ok(Some(trace)) => {
                let settled = last
                    .as_ref()
                    .is_some_and(|previous| previous.spans.len() == trace.spans.len());
                if settled && Waterfall::new(&trace).is_complete() {
                    return Ok(trace);
                }
                last = Some(trace);
            }
            Ok(None) => {}
            Err(error) if error.is_transient() => last_error = Some(error.to_string()),
            Err(error) => return Err(Failure::Source(error.to_string())),
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        tokio::time::sleep(POLL_INTERVAL.min(deadline - now)).await;
    }
    last.ok_or_else(|| Failure::NotFound {
        trace_id: trace_id.to_owned(),
        place: source.describe(),
        waited,
        last_error,
    })
}

/// The error links of the trace; Bugsink may digest an event a little after
/// it arrives, so a trace with errors and no link yet is looked at again
/// until `deadline` (at least once).
async fn find_links(
    bugsink: &Bugsink,
    waterfall: &Waterfall<'_>,
    deadline: Instant,
) -> Result<Vec<ErrorLink>, String> {
    let time = |nanos: u64| UNIX_EPOCH + Duration::from_nanos(nanos);
    let (start, end): (SystemTime, SystemTime) = (
        time(waterfall.start_unix_nano),
        time(waterfall.end_unix_nano),
    );
    loop {
        let links = bugsink
            .errors_of(&waterfall.trace.trace_id, start, end)
            .await?;
        let now = Instant::now();
        if !links.is_empty() || now >= deadline {
            return Ok(links);
        }
        tokio::time::sleep(POLL_INTERVAL.min(deadline - now)).await;
    }
}

/// The trace's source and the Bugsink to link errors to, from the flags.
async fn connect(args: &TraceArgs) -> Result<(Source, Option<Bugsink>), Failure> {
    let bugsink = match (&args.bugsink, &args.bugsink_token) {
        (Some(url), Some(token)) => Some(Bugsink {
            api: endpoint(url)?,
            token: token.clone(),
            public_url: url.as_str().trim_end_matches('/').to_owned(),
            open_hint: None,
        }),
        (Some(_), None) => {
            return Err(Failure::Usage(
                "--bugsink needs --bugsink-token (or BUGSINK_TOKEN): \
                 bugsink-manage create_auth_token makes one"
                    .to_owned(),
            ));
        }
        (None, _) => None,
    };
    if let Some(path) = &args.file {
        return Ok((Source::File(path.clone()), bugsink));
    }
    if let Some(url) = &args.jaeger {
        return Ok((Source::Jaeger(endpoint(url)?), bugsink));
    }
    #[cfg(feature = "verify")]
    {
        cluster::connect(args, bugsink).await
    }
    #[cfg(not(feature = "verify"))]
    {
        Err(Failure::Usage(
            "give --file PATH or --jaeger URL (this build has no cluster access)".to_owned(),
        ))
    }
}

fn endpoint(url: &Url) -> Result<Endpoint, Failure> {
    Endpoint::url(url.clone())
        .map_err(|error| Failure::Source(format!("cannot make an HTTP client: {error}")))
}

#[cfg(test)]
mod tests;
