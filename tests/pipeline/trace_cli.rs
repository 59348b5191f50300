//! `somework trace` when there is nothing whole to show: a missing trace, a
//! trace still arriving, an unreachable source, and bad flags. It always
//! ends, within its `--wait`, with a message that says what to do.

use std::io::Write as _;
use std::time::{Duration, Instant};

use serde_json::Value;
use somework_testkit::net::closed_port;

use super::trace_waterfall::{rows, trace_command};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// A span of `TRACE` whose parent never arrived, as the collector's `file`
/// exporter writes it.
const ORPHAN: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"somework"}}]},"scopeSpans":[{"scope":{"name":"somework"},"spans":[{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7","parentSpanId":"b7ad6b7169203331","name":"MiddleWork","kind":1,"startTimeUnixNano":"1796680023369169495","endTimeUnixNano":"1796680023374169495"}]}]}]}"#;

fn file_with(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("temporary file");
    file.write_all(text.as_bytes()).expect("write");
    file
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn a_missing_trace_exits_1_after_the_wait() {
    let file = file_with("");
    let path = file.path().to_string_lossy().into_owned();
    let started = Instant::now();
    let output = trace_command(&[TRACE, "--file", &path, "--wait", "1s"], &[]).await;
    let took = started.elapsed();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("trace {TRACE} not found in {path} after 1s")),
        "{stderr}"
    );
    assert!(stderr.contains("try a longer --wait"), "{stderr}");
    assert!(output.stdout.is_empty(), "{}", text(&output.stdout));
    // It waited for the trace, and not much longer.
    assert!(took >= Duration::from_secs(1), "gave up after {took:?}");
    assert!(
        took < Duration::from_secs(10),
        "took {took:?} for --wait 1s"
    );

    let json = trace_command(&[TRACE, "--file", &path, "--wait", "0s", "--json"], &[]).await;
    assert_eq!(json.status.code(), Some(1));
    let json: Value = serde_json::from_slice(&json.stdout).expect("JSON on stdout");
    assert_eq!(json["found"], false);
    assert_eq!(json["trace_id"], TRACE);
    assert!(
        json["error"]
            .as_str()
            .is_some_and(|e| e.contains("not found")),
        "{json}"
    );
}

#[tokio::test]
async fn a_trace_still_arriving_is_shown_and_exits_1() {
    let file = file_with(&format!("{ORPHAN}\n"));
    let path = file.path().to_string_lossy().into_owned();
    let output = trace_command(&[TRACE, "--file", &path, "--wait", "1s"], &[]).await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("trace {TRACE} is incomplete after 1s"))
            && stderr.contains("the parents of \"MiddleWork\" (parent b7ad6b7169203331)"),
        "{stderr}"
    );
    let shown = text(&output.stdout);
    assert_eq!(
        rows(&shown),
        [("MiddleWork [somework]".to_owned(), "internal".to_owned())],
        "{shown}"
    );
}

#[tokio::test]
async fn an_unreadable_source_is_named() {
    let output = trace_command(
        &[TRACE, "--file", "/nonexistent/traces.jsonl", "--wait", "0s"],
        &[],
    )
    .await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot read /nonexistent/traces.jsonl: No such file or directory"),
        "{stderr}"
    );

    let closed = closed_port();
    let jaeger = format!("http://{}", closed.addr());
    let output = trace_command(&[TRACE, "--jaeger", &jaeger, "--wait", "1s"], &[]).await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("not found in Jaeger at {jaeger}/")),
        "{stderr}"
    );
    assert!(stderr.contains("Connection refused"), "{stderr}");
}

#[tokio::test]
async fn bad_flags_exit_2_naming_the_flag() {
    let file = file_with("");
    let path = file.path().to_string_lossy().into_owned();
    for (args, named) in [
        (vec!["not-a-trace-id", "--file", &path], "<TRACE_ID>"),
        (
            vec!["00000000000000000000000000000000", "--file", &path],
            "<TRACE_ID>",
        ),
        (vec![TRACE, "--file", &path, "--wait", "soon"], "--wait"),
        (vec![TRACE, "--file", &path, "--width", "10"], "--width"),
        (
            vec![TRACE, "--file", &path, "--jaeger", "http://x"],
            "--jaeger",
        ),
        (
            vec![TRACE, "--file", &path, "--bugsink", "http://x"],
            "--bugsink-token",
        ),
    ] {
        let output = trace_command(&args, &[]).await;
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(named),
            "{args:?} does not name {named}: {stderr}"
        );
    }
}
