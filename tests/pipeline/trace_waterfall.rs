//! `somework trace` on what the local pipeline records: the real collector
//! with helm/otel-collector/pipelines/local.yaml writes every span to TRACE_FILE with its
//! `file` exporter, the service reports its errors to a real Bugsink, and the
//! waterfall of `/somework`, `/errorwork` and `/chain?hops=2` is read back
//! row by row, as text, as JSON, and in a terminal 80 columns wide.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use somework_testkit::bugsink::Bugsink;
use somework_testkit::collector::{self, Collector, CollectorBuilder};
use somework_testkit::service::{Service, ServiceBuilder};
use somework_testkit::tools;

use super::helpers::request;

/// How long the command may wait for a trace to arrive whole.
const WAIT: &str = "20s";

/// One row of the waterfall as text: the tree and name, the kind.
type Shape = (&'static str, &'static str);

/// The rows of each endpoint's trace (the catalogue's shapes, spelled as the
/// waterfall draws them: tree, error mark, name, service where it changes).
const SOMEWORK: [Shape; 4] = [
    ("GET /somework [somework]", "server"),
    ("└─ somework", "internal"),
    ("   └─ MiddleWork", "internal"),
    ("      └─ ErrorWork", "internal"),
];
const ERRORWORK: [Shape; 4] = [
    ("✖ GET /errorwork [somework]", "server"),
    ("└─ ✖ somework", "internal"),
    ("   └─ ✖ MiddleWork", "internal"),
    ("      └─ ✖ ErrorWork", "internal"),
];
/// One service calling itself: DOWNSTREAM_URL defaults to its own address.
const CHAIN: [Shape; 5] = [
    ("GET /chain [somework]", "server"),
    ("└─ GET", "client"),
    ("   └─ GET /chain", "server"),
    ("      └─ GET", "client"),
    ("         └─ GET /chain", "server"),
];

/// The collector recording to a file in `dir`, the service exporting to it
/// and, when given, reporting its errors to `bugsink`.
struct Recorded {
    service: Service,
    _collector: Collector,
    file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn record(binary: &Path, bugsink: Option<&Bugsink>) -> Recorded {
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("traces.jsonl");
    let collector = CollectorBuilder::new(binary, "local")
        .env("TRACE_FILE", file.to_string_lossy())
        .set("processors.batch.timeout", "200ms")
        .set("exporters.file.flush_interval", "100ms")
        .start()
        .await;
    let mut service = ServiceBuilder::new(env!("CARGO_BIN_EXE_somework"))
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            collector.otlp_grpc_endpoint(),
        )
        .env("OTEL_SERVICE_NAME", "somework")
        .env("WORK_SLEEP_MS", "20");
    if let Some(bugsink) = bugsink {
        service = service
            .env("SENTRY_DSN", bugsink.dsn())
            .env("SENTRY_ENVIRONMENT", "test");
    }
    Recorded {
        service: service.start().await,
        _collector: collector,
        file,
        _dir: dir,
    }
}

/// Runs `somework trace` with `args` to its exit; fails the test if it
/// outlives its `--wait` by far (it must never hang).
pub async fn trace_command(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_somework"));
    command
        .arg("trace")
        .args(args)
        .env_clear()
        .envs(env.iter().copied());
    run_bounded(command, Duration::from_secs(60)).await
}

/// Runs `command` to its exit; kills it and fails the test after `limit`.
pub async fn run_bounded(mut command: tokio::process::Command, limit: Duration) -> Output {
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let description = format!("{command:?}");
    tokio::time::timeout(limit, command.output())
        .await
        .unwrap_or_else(|_| panic!("{description} ran past {limit:?}"))
        .expect("cannot run somework")
}

/// The span rows of a waterfall printed without colour: each row's tree and
/// name, and its kind, cut at the header's columns.
pub fn rows(text: &str) -> Vec<(String, String)> {
    let mut lines = text.lines();
    let header = lines
        .find(|line| line.starts_with("SPAN"))
        .unwrap_or_else(|| panic!("no header row in:\n{text}"));
    let kind_at = header.find("KIND").expect("a KIND column");
    lines
        .filter(|line| line.chars().count() > kind_at + 8)
        .filter_map(|line| {
            let label: String = line.chars().take(kind_at).collect();
            let kind: String = line.chars().skip(kind_at).take(8).collect();
            let kind = kind.trim();
            // Detail lines (events, errors) have no kind in that column.
            ["server", "client", "internal", "producer", "consumer"]
                .contains(&kind)
                .then(|| (label.trim_end().to_owned(), kind.to_owned()))
        })
        .collect()
}

fn assert_rows(text: &str, expected: &[Shape], route: &str) {
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(label, kind)| ((*label).to_owned(), (*kind).to_owned()))
        .collect();
    assert_eq!(rows(text), expected, "rows of {route}:\n{text}");
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn assert_shown(output: &Output, route: &str) -> String {
    let text = stdout(output);
    assert!(
        output.status.success(),
        "somework trace of {route} exited {:?}:\n{text}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn the_waterfall_of_each_endpoint_from_the_recorded_file() {
    let Some(binary) = collector::binary() else {
        return;
    };
    let recorded = record(&binary, None).await;
    let file = recorded.file.to_string_lossy().into_owned();
    for (route, shape) in [
        ("/somework", &SOMEWORK[..]),
        ("/errorwork", &ERRORWORK[..]),
        ("/chain?hops=2", &CHAIN[..]),
    ] {
        let (_, trace_id) = request(&recorded.service, route).await;
        let output = trace_command(&[&trace_id, "--file", &file, "--wait", WAIT], &[]).await;
        let text = assert_shown(&output, route);
        assert!(text.starts_with(&format!("Trace {trace_id}\n")), "{text}");
        assert_rows(&text, shape, route);
        assert!(!text.contains('\u{1b}'), "escapes in piped output:\n{text}");
        for line in text.lines() {
            assert!(
                line.chars().count() <= 100,
                "wider than 100 columns: {line:?}"
            );
        }
        if route == "/errorwork" {
            for event in [
                "· ",
                "started the sleep",
                "completed the sleep",
                "Out of Error!",
            ] {
                assert!(
                    text.contains(event),
                    "no {event:?} under MiddleWork:\n{text}"
                );
            }
            assert!(
                text.contains("✖ error: ErrorWork failed: the simulated dependency is unavailable"),
                "ErrorWork's status message:\n{text}"
            );
            assert!(
                text.contains("exception exception.type="),
                "ErrorWork's exception event:\n{text}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn json_gives_the_same_tree_with_times_and_statuses() {
    let Some(binary) = collector::binary() else {
        return;
    };
    let recorded = record(&binary, None).await;
    let file = recorded.file.to_string_lossy().into_owned();
    let (_, trace_id) = request(&recorded.service, "/errorwork").await;
    let output = trace_command(&[&trace_id, "--file", &file, "--wait", WAIT, "--json"], &[]).await;
    let text = assert_shown(&output, "/errorwork");
    let json: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(json["trace_id"], trace_id.as_str());
    assert_eq!(json["complete"], true);
    assert_eq!(json["services"], serde_json::json!(["somework"]));
    let spans = json["spans"].as_array().expect("a spans list");
    let rows: Vec<(u64, &str, &str, &str)> = spans
        .iter()
        .map(|span| {
            (
                span["depth"].as_u64().expect("depth"),
                span["name"].as_str().expect("name"),
                span["kind"].as_str().expect("kind"),
                span["status"].as_str().expect("status"),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (0, "GET /errorwork", "server", "error"),
            (1, "somework", "internal", "error"),
            (2, "MiddleWork", "internal", "error"),
            (3, "ErrorWork", "internal", "error"),
        ]
    );
    let duration = json["duration_ns"].as_u64().expect("duration_ns");
    for span in spans {
        let start = span["start_offset_ns"].as_u64().expect("start_offset_ns");
        let length = span["duration_ns"].as_u64().expect("duration_ns");
        assert!(start + length <= duration, "span outside the trace: {span}");
    }
    // Each child starts within its parent.
    for pair in spans.windows(2) {
        assert_eq!(pair[1]["parent_span_id"], pair[0]["span_id"]);
        assert!(pair[1]["start_offset_ns"].as_u64() >= pair[0]["start_offset_ns"].as_u64());
    }
    let middle = &spans[2]["events"];
    let names: Vec<&str> = middle
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|event| event["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["started the sleep", "completed the sleep", "Out of Error!"]
    );
    assert_eq!(middle[2]["attributes"]["error_work.failed"], "true");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_error_span_links_to_its_event_in_bugsink() {
    let Some(binary) = collector::binary() else {
        return;
    };
    let Some(bugsink) = Bugsink::start().await else {
        return;
    };
    let recorded = record(&binary, Some(&bugsink)).await;
    let file = recorded.file.to_string_lossy().into_owned();
    let (_, trace_id) = request(&recorded.service, "/errorwork").await;
    let base = bugsink.base_url();
    let args = [
        &trace_id,
        "--file",
        &file,
        "--wait",
        WAIT,
        "--bugsink",
        &base,
    ];
    let output = trace_command(&args, &[("BUGSINK_TOKEN", bugsink.api_token())]).await;
    let text = assert_shown(&output, "/errorwork");
    assert_rows(&text, &ERRORWORK, "/errorwork");

    let events = bugsink.wait_for_events(1, Duration::from_secs(15)).await;
    let event = events
        .iter()
        .find(|event| event["data"]["contexts"]["trace"]["trace_id"] == trace_id.as_str())
        .unwrap_or_else(|| panic!("no event of trace {trace_id} in Bugsink: {events:#?}"));
    let url = format!(
        "{base}/issues/issue/{}/event/{}/",
        event["issue"].as_str().expect("the event's issue"),
        event["id"].as_str().expect("the event's id")
    );
    // The link sits under the span the error was captured in: ErrorWork.
    let lines: Vec<&str> = text.lines().collect();
    let link = lines
        .iter()
        .position(|line| line.contains(&url))
        .unwrap_or_else(|| panic!("no link to {url} in:\n{text}"));
    let span_row = lines[..link]
        .iter()
        .rev()
        .find(|line| line.contains("internal") || line.contains("server"))
        .expect("a span row above the link");
    assert!(
        span_row.contains("└─ ✖ ErrorWork"),
        "the link is under {span_row:?}:\n{text}"
    );
    assert!(
        lines[link].trim_start().starts_with("↳ "),
        "{}",
        lines[link]
    );
    assert!(
        reqwest::get(&url)
            .await
            .is_ok_and(|reply| reply.status().is_success() || reply.status().is_redirection()),
        "Bugsink does not serve {url}"
    );

    let json = trace_command(
        &[&trace_id, "--file", &file, "--bugsink", &base, "--json"],
        &[("BUGSINK_TOKEN", bugsink.api_token())],
    )
    .await;
    let json: Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(json["spans"][3]["errors"][0]["url"], url.as_str());
    assert_eq!(json["errors"][0]["span_id"], json["spans"][3]["span_id"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn in_a_terminal_80_columns_wide_the_bars_fit() {
    let Some(binary) = collector::binary() else {
        return;
    };
    let Ok(script) = which("script") else {
        tools::skip("script (util-linux) is not installed: no pseudo-terminal to draw in");
        return;
    };
    let recorded = record(&binary, None).await;
    let file = recorded.file.to_string_lossy().into_owned();
    let (_, trace_id) = request(&recorded.service, "/chain?hops=2").await;
    // script(1) gives the command a pseudo-terminal; stty sizes it.
    let inner = format!(
        "stty cols 80 rows 40 && exec {} trace {trace_id} --file {file} --wait {WAIT}",
        env!("CARGO_BIN_EXE_somework")
    );
    let mut command = tokio::process::Command::new(script);
    command
        .args(["-qec", &inner, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TERM", "xterm-256color");
    let output = run_bounded(command, Duration::from_secs(60)).await;
    let raw = stdout(&output).replace('\r', "");
    assert!(output.status.success(), "exit {:?}:\n{raw}", output.status);
    assert!(raw.contains("\u{1b}["), "no colour in a terminal:\n{raw}");
    let text = console::strip_ansi_codes(&raw).into_owned();
    assert_rows(&text, &CHAIN, "/chain?hops=2");
    let bars: Vec<&str> = text.lines().filter(|line| line.contains('█')).collect();
    assert_eq!(bars.len(), CHAIN.len(), "one bar per span:\n{text}");
    for line in text.lines() {
        let width = console::measure_text_width(line);
        assert!(width <= 80, "{width} columns: {line:?}");
    }
    // The root's bar spans the whole axis; each hop's starts later.
    let starts: Vec<usize> = bars
        .iter()
        .map(|line| line.chars().position(|c| c == '█').expect("a bar"))
        .collect();
    assert!(starts.windows(2).all(|pair| pair[0] <= pair[1]), "{text}");
    let root = bars[0].trim_end();
    assert!(
        console::measure_text_width(root) >= 70,
        "the root's bar is short: {root:?}"
    );
}

/// `name` on PATH.
fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .ok_or(())
}
