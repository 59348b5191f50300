//! `somework load` against the real service binary: what it sends, what it
//! counts, that the service continues its traces, that its open-loop
//! latencies count from the scheduled time, its flags, and Ctrl-C.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use serde_json::Value;
use somework_testkit::api::SomeworkApi as _;
use somework_testkit::service::Service;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::Command;

use crate::helpers::{SHUTDOWN_LIMIT, TestApp, spawn_app, spawn_app_with};

const BINARY: &str = env!("CARGO_BIN_EXE_somework");
/// Generous: every run here sends for at most a few seconds.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// `somework load ARGS` with an empty environment.
fn load_command(args: &[&str]) -> Command {
    let mut command = Command::new(BINARY);
    command
        .arg("load")
        .args(args)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

async fn run_load(command: &mut Command) -> (ExitStatus, String, String) {
    let output = tokio::time::timeout(RUN_LIMIT, command.output())
        .await
        .expect("somework load did not finish")
        .expect("cannot run somework load");
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs `somework load ARGS --json` to success and returns the report.
async fn load_json(args: &[&str]) -> Value {
    let (status, stdout, stderr) = run_load(load_command(args).arg("--json")).await;
    assert!(status.success(), "somework load failed: {status}\n{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("not JSON ({error}): {stdout}"))
}

fn endpoint<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .find(|row| row["endpoint"] == name)
        .unwrap_or_else(|| panic!("no row for {name} in {report:#}"))
}

fn count(value: &Value) -> u64 {
    value.as_u64().unwrap_or(0)
}

/// The paths of the service's request log lines from index `from` on.
fn logged_paths(service: &Service, from: usize) -> Vec<String> {
    service.json_logs()[from..]
        .iter()
        .filter(|line| line["message"] == "request")
        .map(|line| line["path"].as_str().expect("path").to_owned())
        .collect()
}

#[tokio::test]
async fn counts_every_request_and_its_status_class_per_endpoint() {
    let app = spawn_app().await;
    let service = &app.service;
    let target = service.url("");
    let report = load_json(&[
        "--target",
        &target,
        "--rps",
        "400",
        "--requests",
        "200",
        "--mix",
        "somework=1,errorwork=1,users=1,chain=1",
        "--hops",
        "1",
        "--seed",
        "11",
    ])
    .await;

    assert_eq!(report["mode"], "open");
    assert_eq!(report["sent"], 200);
    assert_eq!(report["finished"], 200);
    assert_eq!(report["interrupted"], 0);
    assert_eq!(report["all"]["count"], 200);
    assert_eq!(report["all"]["errors"], serde_json::json!({}));
    let rows = report["endpoints"].as_array().expect("endpoints");
    assert_eq!(rows.len(), 4, "{report:#}");
    assert_eq!(
        rows.iter().map(|row| count(&row["count"])).sum::<u64>(),
        200
    );

    let only = |name: &str, class: &str| {
        let row = endpoint(&report, name);
        assert!(count(&row["count"]) > 20, "{name}: {row}");
        assert_eq!(row["status"][class], row["count"], "{name}: {row}");
    };
    only("somework", "2xx");
    only("errorwork", "5xx");
    only("chain", "2xx");
    let users = endpoint(&report, "users");
    let (found, refused) = (
        count(&users["status"]["2xx"]),
        count(&users["status"]["4xx"]),
    );
    assert!(found > 0 && refused > 0, "users: {users}");
    assert_eq!(found + refused, count(&users["count"]));

    // The service saw exactly what the report counted.
    let paths = logged_paths(service, 0);
    let served = |prefix: &str| paths.iter().filter(|p| p.starts_with(prefix)).count() as u64;
    assert_eq!(
        served("/somework"),
        count(&endpoint(&report, "somework")["count"])
    );
    assert_eq!(
        served("/errorwork"),
        count(&endpoint(&report, "errorwork")["count"])
    );
    assert_eq!(served("/users/"), count(&users["count"]));
    // Each chain request with one hop is served twice: the call and the hop.
    assert_eq!(
        served("/chain"),
        2 * count(&endpoint(&report, "chain")["count"])
    );

    for percentile in ["p50", "p90", "p99", "p99.9", "max"] {
        assert!(
            report["all"]["latency_ms"][percentile]
                .as_f64()
                .expect(percentile)
                > 0.0,
            "{report:#}"
        );
    }
}

#[tokio::test]
async fn the_same_seed_sends_the_same_requests() {
    let app = spawn_app().await;
    let service = &app.service;
    let target = service.url("");
    let mut runs = Vec::new();
    for seed in ["5", "5", "6"] {
        let before = service.json_logs().len();
        let report = load_json(&[
            "--target",
            &target,
            "--rps",
            "500",
            "--requests",
            "150",
            "--mix",
            "somework=3,errorwork=1,users=4",
            "--seed",
            seed,
        ])
        .await;
        assert_eq!(report["seed"], seed.parse::<u64>().unwrap());
        let mut paths = logged_paths(service, before);
        assert_eq!(paths.len(), 150);
        // Connections finish in any order; the multiset is what repeats.
        paths.sort();
        runs.push(paths);
    }
    assert_eq!(runs[0], runs[1], "the same seed sent different requests");
    assert_ne!(runs[0], runs[2], "another seed sent the same requests");
    let users: BTreeSet<&String> = runs[0]
        .iter()
        .filter(|p| p.starts_with("/users/"))
        .collect();
    assert!(users.contains(&"/users/123".to_owned()), "{users:?}");
    assert!(users.len() > 3, "user ids should vary: {users:?}");
}

#[tokio::test]
async fn the_service_continues_the_traces_the_tool_starts() {
    // The service samples nothing of its own accord, so every span it
    // exports exists because the tool's traceparent said "sampled".
    let TestApp {
        mut service,
        receiver,
    } = spawn_app_with(|builder| builder.env("OTEL_TRACES_SAMPLER", "parentbased_always_off"))
        .await;
    let report = load_json(&[
        "--target",
        &service.url(""),
        "--rps",
        "200",
        "--requests",
        "20",
        "--mix",
        "somework=1",
    ])
    .await;
    assert_eq!(report["traceparent"], true);
    let slowest: Vec<String> = report["slowest"]
        .as_array()
        .expect("slowest")
        .iter()
        .map(|slow| slow["trace_id"].as_str().expect("trace_id").to_owned())
        .collect();
    assert_eq!(slowest.len(), 5, "{report:#}");

    let is_server =
        |span: &&somework_testkit::otlp::ReceivedSpan| span.span.kind == SpanKind::Server as i32;
    let spans = receiver
        .wait_for(Duration::from_secs(10), |spans| {
            spans.iter().filter(is_server).count() >= 20
        })
        .await;
    let servers: Vec<_> = spans.iter().filter(is_server).collect();
    assert_eq!(servers.len(), 20);
    let traces: BTreeSet<String> = servers.iter().map(|span| span.trace_id()).collect();
    assert_eq!(traces.len(), 20, "one trace per request");
    for server in &servers {
        assert!(
            server.parent_span_id().is_some(),
            "the SERVER span continues the tool's span: {server:?}"
        );
    }
    for trace_id in &slowest {
        assert!(
            traces.contains(trace_id),
            "slowest trace {trace_id} was not exported"
        );
    }

    // Without the header the service's own sampler decides: nothing here.
    let report = load_json(&[
        "--target",
        &service.url(""),
        "--requests",
        "10",
        "--rps",
        "200",
        "--mix",
        "somework=1",
        "--no-traceparent",
    ])
    .await;
    assert_eq!(report["finished"], 10);
    assert!(report["slowest"][0]["trace_id"].is_null());
    // Shutdown flushes every span the service holds: nothing can come later.
    let (status, _) = service.terminate(SHUTDOWN_LIMIT).await;
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(receiver.spans().iter().filter(is_server).count(), 20);
}

#[tokio::test]
async fn log_requests_writes_a_line_per_request_with_its_trace_id_and_schedule() {
    let app = spawn_app().await;
    let service = &app.service;
    let before_ms = unix_ms();
    let (status, stdout, stderr) = run_load(&mut load_command(&[
        "--target",
        &service.url(""),
        "--rps",
        "100",
        "--requests",
        "30",
        "--mix",
        "somework=1,users=1",
        "--seed",
        "7",
        "--json",
        "--log-requests",
    ]))
    .await;
    let after_ms = unix_ms();
    assert!(status.success(), "somework load failed: {status}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("the report alone on stdout");
    let lines: Vec<Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    assert_eq!(lines.len(), 30, "{stderr}");

    let server_traces: BTreeSet<String> = app
        .receiver
        .wait_for(Duration::from_secs(10), |spans| {
            spans
                .iter()
                .filter(|span| span.span.kind == SpanKind::Server as i32)
                .count()
                >= 30
        })
        .await
        .iter()
        .filter(|span| span.span.kind == SpanKind::Server as i32)
        .map(|span| span.trace_id())
        .collect();
    let mut scheduled = Vec::new();
    let mut classes = BTreeMap::<String, u64>::new();
    for line in &lines {
        let trace_id = line["trace_id"].as_str().expect("trace_id");
        assert!(
            server_traces.contains(trace_id),
            "{trace_id} has no server span: {line}"
        );
        let path = line["path"].as_str().expect("path");
        assert!(path == "/somework" || path.starts_with("/users/"), "{line}");
        let status = line["status"].as_u64().expect("status");
        *classes.entry(format!("{}xx", status / 100)).or_default() += 1;
        assert!(line["error"].is_null(), "{line}");
        assert!(line["latency_ms"].as_f64().expect("latency_ms") >= 0.0);
        scheduled.push(
            line["scheduled_unix_ms"]
                .as_u64()
                .expect("scheduled_unix_ms"),
        );
    }
    // The same statuses the report counted, and scheduled times 10 ms apart
    // on the wall clock, inside the run.
    let reported: BTreeMap<String, u64> =
        serde_json::from_value(report["all"]["status"].clone()).expect("status classes");
    assert_eq!(classes, reported);
    assert!(
        classes.len() >= 2,
        "the mix sends known and invalid users: {classes:?}"
    );
    scheduled.sort_unstable();
    assert!(
        scheduled[0] >= before_ms && scheduled[29] <= after_ms,
        "{scheduled:?}"
    );
    let span = scheduled[29] - scheduled[0];
    assert!(
        (285..=295).contains(&span),
        "29 intervals of 10 ms: {span} ms"
    );
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64
}

/// A test double for a server that stalls: every response takes 100 ms, and
/// the tool has one connection, so requests queue behind each other.
async fn stalling_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let app = Router::new().route(
        "/somework",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            "done"
        }),
    );
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("stalling server");
    });
    (format!("http://{addr}"), server)
}

#[tokio::test]
async fn open_loop_latency_counts_from_the_scheduled_time() {
    let (target, server) = stalling_server().await;
    // 20 requests due every 20 ms, served one at a time in 100 ms each:
    // request k finishes at (k + 1) * 100 ms, having been due at k * 20 ms,
    // so the last one waited 2000 - 380 = 1620 ms.
    let common = [
        "--target",
        &target,
        "--requests",
        "20",
        "--mix",
        "somework=1",
    ];
    let open = load_json(&[&common[..], &["--rps", "50", "--connections", "1"]].concat()).await;
    let latency = |report: &Value, percentile: &str| {
        report["all"]["latency_ms"][percentile]
            .as_f64()
            .expect(percentile)
    };
    assert!(latency(&open, "max") >= 1500.0, "{open:#}");
    assert!(latency(&open, "p50") >= 700.0, "{open:#}");
    assert!(count(&open["late"]) >= 15, "{open:#}");
    assert!(
        open["max_send_delay"].as_f64().expect("delay") >= 1000.0,
        "{open:#}"
    );

    // The closed loop, for contrast, sees only the service time.
    let closed = load_json(&[&common[..], &["--concurrency", "1"]].concat()).await;
    assert_eq!(closed["mode"], "closed");
    assert_eq!(closed["finished"], 20);
    assert!(latency(&closed, "max") < 600.0, "{closed:#}");
    server.abort();
}

/// When [`closing_server`] closes a connection, after its first response.
#[derive(Debug, Clone, Copy)]
enum Close {
    /// This long after the response: at once, the response's end and the
    /// connection's end come in one read; later, it closes while idle.
    After(Duration),
    /// As the next request arrives, leaving it unanswered.
    OnNextRequest,
}

/// A test double for a server that closes each keep-alive connection, as a
/// draining pod does: one response (without `Connection: close`), then the
/// socket is closed as `close` says. Returns the URL and the count of
/// connections accepted.
async fn closing_server(close: Close) -> (String, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    let server = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0; 1024];
                while !request.ends_with(b"\r\n\r\n") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => request.extend_from_slice(&buffer[..read]),
                    }
                }
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                match close {
                    Close::After(delay) => tokio::time::sleep(delay).await,
                    Close::OnNextRequest => {
                        let _ = socket.read(&mut buffer).await;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), accepted, server)
}

#[tokio::test]
async fn connections_the_server_closes_cost_no_request() {
    for close in [
        Close::After(Duration::ZERO),
        Close::After(Duration::from_millis(10)),
        // The request is lost with the connection: it goes once more, on a
        // new one, and no request is sent more than twice.
        Close::OnNextRequest,
    ] {
        let (target, accepted, server) = closing_server(close).await;
        // One connection, a request every 50 ms: each finds the previous
        // connection closed by the server.
        let report = load_json(&[
            "--target",
            &target,
            "--rps",
            "20",
            "--connections",
            "1",
            "--requests",
            "10",
            "--mix",
            "somework=1",
        ])
        .await;
        assert_eq!(
            count(&report["all"]["status"]["2xx"]),
            10,
            "{close:?}: {report:#}"
        );
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            10,
            "{close:?}: one connection per request"
        );
        server.abort();
    }
}

#[tokio::test]
async fn closed_loop_sends_the_requested_count() {
    let app = spawn_app().await;
    let service = &app.service;
    let report = load_json(&[
        "--target",
        &service.url(""),
        "--concurrency",
        "4",
        "--requests",
        "300",
        "--mix",
        "healthz=1",
    ])
    .await;
    assert_eq!(report["connections"], 4);
    assert_eq!(report["finished"], 300);
    assert_eq!(endpoint(&report, "healthz")["status"]["2xx"], 300);
    assert_eq!(report["late"], 0);
}

#[tokio::test]
async fn ctrl_c_stops_the_run_and_prints_the_table() {
    let app = spawn_app().await;
    let service = &app.service;
    let child = load_command(&["--target", &service.url(""), "--rps", "100"])
        .spawn()
        .expect("cannot start somework load");
    // The totals must count at least 50 requests: wait until the service
    // answered more than that (one trace per request; `/chain` has two
    // SERVER spans in its trace).
    app.spans_until(|spans| {
        let traces: BTreeSet<String> = spans
            .iter()
            .filter(|s| s.kind() == SpanKind::Server)
            .map(|s| s.trace_id())
            .collect();
        traces.len() > 60
    })
    .await;
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let output = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("somework load did not stop on SIGINT")
        .expect("output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{:?}\n{stdout}", output.status);
    assert!(stdout.contains("stopped early"), "{stdout}");
    let all: Vec<&str> = stdout
        .lines()
        .find(|line| line.starts_with("all "))
        .unwrap_or_else(|| panic!("no totals row:\n{stdout}"))
        .split_whitespace()
        .collect();
    let finished: u64 = all[1].parse().expect("count");
    assert!(finished >= 50, "{stdout}");
    assert!(stdout.contains("slowest requests:"), "{stdout}");
}

#[tokio::test]
async fn bad_flags_exit_2_naming_the_flag() {
    let target = "http://127.0.0.1:9";
    let cases: &[(&[&str], &str)] = &[
        (&["--rps", "10"], "--target"),
        (&["--target", "127.0.0.1:8080"], "--target"),
        (&["--target", "https://example.com"], "--target"),
        (&["--target", "http://host/somework"], "--target"),
        (&["--target", target, "--rps", "0"], "--rps"),
        (&["--target", target, "--rps", "fast"], "--rps"),
        (&["--target", target, "--rps=-5"], "--rps"),
        (
            &["--target", target, "--duration", "5 parsecs"],
            "--duration",
        ),
        (&["--target", target, "--duration", "0s"], "--duration"),
        (
            &["--target", target, "--mix", "somework=70,work=30"],
            "--mix",
        ),
        (&["--target", target, "--mix", "somework"], "--mix"),
        (&["--target", target, "--mix", "somework=0"], "--mix"),
        (&["--target", target, "--mix", "somework=x"], "--mix"),
        (&["--target", target, "--concurrency", "0"], "--concurrency"),
        (&["--target", target, "--requests", "0"], "--requests"),
        (&["--target", target, "--hops", "11"], "--hops"),
        (
            &["--target", target, "--rps", "5", "--concurrency", "2"],
            "--concurrency",
        ),
        (
            &["--target", target, "--duration", "1s", "--requests", "2"],
            "--requests",
        ),
    ];
    for (args, flag) in cases {
        let (status, _, stderr) = run_load(&mut load_command(args)).await;
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(flag),
            "{args:?} should name {flag}: {stderr}"
        );
    }
}

#[tokio::test]
async fn needs_none_of_the_service_environment() {
    let broken: BTreeMap<&str, &str> = [
        ("SENTRY_DSN", "garbage"),
        ("OTEL_TRACES_SAMPLER", "nonsense"),
        ("LISTEN_ADDR", "nowhere"),
    ]
    .into();
    let (status, stdout, stderr) = run_load(load_command(&["--help"]).envs(&broken)).await;
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("--target"), "{stdout}");

    // Nothing listens on port 9 (discard) here: every request fails to
    // connect, and the report says so.
    let (status, stdout, stderr) = run_load(
        load_command(&[
            "--target",
            "http://127.0.0.1:9",
            "--requests",
            "3",
            "--rps",
            "100",
            "--json",
        ])
        .envs(&broken),
    )
    .await;
    assert!(status.success(), "{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(report["all"]["errors"]["connect"], 3, "{report:#}");
}
