//! The waterfall on hand-made traces: tree order, completeness, bar
//! scaling, the text at a given width, the JSON; and both sources' parsers
//! on the exact shapes the collector and Jaeger write.

use std::io::Write as _;

use super::bugsink::ErrorLink;
use super::model::{Event, Span, SpanKind, Status, Trace, Waterfall};
use super::render::{self, Layout, bar, human};
use super::source::otlp_file;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const MS: u64 = 1_000_000;
/// An arbitrary epoch time for the trace's start.
const T0: u64 = 1_796_680_023_000_000_000;

fn span(
    id: &str,
    parent: Option<&str>,
    name: &str,
    kind: SpanKind,
    start_ms: u64,
    ms: u64,
) -> Span {
    Span {
        span_id: id.repeat(16 / id.len()),
        parent_span_id: parent.map(|p| p.repeat(16 / p.len())),
        service: "somework".to_owned(),
        name: name.to_owned(),
        kind,
        start_unix_nano: T0 + start_ms * MS,
        end_unix_nano: T0 + (start_ms + ms) * MS,
        status: Status::Unset,
        events: Vec::new(),
    }
}

/// `/errorwork` as the service makes it, its spans out of order.
fn errorwork() -> Trace {
    let mut middle = span("c", Some("b"), "MiddleWork", SpanKind::Internal, 1, 38);
    middle.events = vec![
        Event {
            name: "started the sleep".to_owned(),
            time_unix_nano: T0 + MS,
            attributes: vec![("sleep.duration_ms".to_owned(), "30".to_owned())],
        },
        Event {
            name: "Out of Error!".to_owned(),
            time_unix_nano: T0 + 39 * MS,
            attributes: Vec::new(),
        },
    ];
    let mut error = span("d", Some("c"), "ErrorWork", SpanKind::Internal, 31, 8);
    error.status = Status::Error("ErrorWork failed".to_owned());
    let mut server = span("a", Some("f"), "GET /errorwork", SpanKind::Server, 0, 40);
    server.status = Status::Error(String::new());
    Trace {
        trace_id: TRACE.to_owned(),
        spans: vec![
            error,
            middle,
            server,
            span("b", Some("a"), "somework", SpanKind::Internal, 1, 39),
        ],
    }
}

#[test]
fn spans_nest_under_their_parents_in_start_order() {
    let mut trace = errorwork();
    trace.spans.push(span(
        "e",
        Some("b"),
        "early sibling",
        SpanKind::Client,
        0,
        1,
    ));
    let waterfall = Waterfall::new(&trace);
    let rows: Vec<(usize, &str)> = waterfall
        .rows
        .iter()
        .map(|row| (row.depth, row.span.name.as_str()))
        .collect();
    assert_eq!(
        rows,
        [
            (0, "GET /errorwork"),
            (1, "somework"),
            (2, "early sibling"),
            (2, "MiddleWork"),
            (3, "ErrorWork"),
        ]
    );
    assert!(waterfall.is_complete(), "the root's parent is the caller's");
    assert_eq!(waterfall.duration_nanos(), 40 * MS);
}

#[test]
fn a_span_whose_parent_has_not_arrived_makes_the_trace_incomplete() {
    let mut trace = errorwork();
    // The SERVER span ends last, so it is exported last.
    trace.spans.retain(|span| span.kind != SpanKind::Server);
    let waterfall = Waterfall::new(&trace);
    let missing: Vec<&str> = waterfall
        .missing_parents
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(missing, ["somework"]);

    let mut two_roots = errorwork();
    two_roots
        .spans
        .push(span("9", None, "stray", SpanKind::Server, 50, 1));
    assert!(!Waterfall::new(&two_roots).is_complete());
}

#[test]
fn bars_scale_to_their_share_of_the_trace() {
    assert_eq!(bar(0, 100, 100, 10), "██████████");
    assert_eq!(bar(50, 50, 100, 10), "     █████");
    assert_eq!(bar(20, 30, 100, 10), "  ███     ");
    // Too short to fill a cell, still one cell where it starts.
    assert_eq!(bar(99, 1, 100, 10), "         █");
    assert_eq!(bar(0, 0, 0, 4), "█   ");
    assert_eq!(bar(0, 1, 1, 0), "");
}

#[test]
fn durations_read_at_a_glance() {
    assert_eq!(human(850), "850ns");
    assert_eq!(human(12_340), "12.3µs");
    assert_eq!(human(4_560_000), "4.56ms");
    assert_eq!(human(40 * MS), "40.0ms");
    assert_eq!(human(123_400_000), "123ms");
    assert_eq!(human(1_234_000_000), "1.23s");
}

#[test]
fn the_waterfall_at_80_columns() {
    let trace = errorwork();
    let waterfall = Waterfall::new(&trace);
    let links = [ErrorLink {
        span_id: Some("dddddddddddddddd".to_owned()),
        title: "WorkError: ErrorWork failed".to_owned(),
        url: "http://127.0.0.1:8000/issues/issue/1/event/2/".to_owned(),
    }];
    let layout = Layout {
        width: 80,
        colour: false,
    };
    let text = render::text(&waterfall, &links, layout);
    let expected = "\
Trace 4bf92f3577b34da6a3ce929d0e0e4736
4 spans, 1 service, 40.0ms, 2 with errors
SPAN                        KIND        START DURATION 0        20.0ms    40.0ms
✖ GET /errorwork [somework] server        0ns   40.0ms █████████████████████████
└─ somework                 internal   1.00ms   39.0ms █████████████████████████
   └─ MiddleWork            internal   1.00ms   38.0ms ████████████████████████
      │ · 1.00ms started the sleep sleep.duration_ms=30
      │ · 39.0ms Out of Error!
      └─ ✖ ErrorWork        internal   31.0ms   8.00ms                    █████
           ✖ error: ErrorWork failed
           ↳ WorkError: ErrorWork failed http://127.0.0.1:8000/issues/issue/1/event/2/
";
    assert_eq!(text, expected, "got:\n{text}");
    for line in text.lines().filter(|line| !line.contains("http://")) {
        assert!(
            console::measure_text_width(line) <= 80,
            "wider than 80: {line}"
        );
    }
}

#[test]
fn colour_is_only_escapes_around_the_same_text() {
    let trace = errorwork();
    let waterfall = Waterfall::new(&trace);
    let plain = render::text(
        &waterfall,
        &[],
        Layout {
            width: 80,
            colour: false,
        },
    );
    let coloured = render::text(
        &waterfall,
        &[],
        Layout {
            width: 80,
            colour: true,
        },
    );
    assert!(coloured.contains("\u{1b}["), "no escapes in:\n{coloured}");
    assert_eq!(console::strip_ansi_codes(&coloured), plain);
}

#[test]
fn narrow_terminals_drop_the_bars_not_the_rows() {
    let trace = errorwork();
    let text = render::text(
        &Waterfall::new(&trace),
        &[],
        Layout {
            width: 40,
            colour: false,
        },
    );
    assert!(!text.contains('█'), "{text}");
    assert!(text.contains("ErrorWork"), "{text}");
}

#[test]
fn json_lists_the_spans_in_waterfall_order() {
    let trace = errorwork();
    let json = render::json(&Waterfall::new(&trace), &[]);
    assert_eq!(json["trace_id"], TRACE);
    assert_eq!(json["complete"], true);
    assert_eq!(json["duration_ns"], 40 * MS);
    let spans = json["spans"].as_array().expect("spans");
    let rows: Vec<(u64, &str, &str, u64)> = spans
        .iter()
        .map(|s| {
            (
                s["depth"].as_u64().unwrap_or(99),
                s["name"].as_str().unwrap_or(""),
                s["status"].as_str().unwrap_or(""),
                s["start_offset_ns"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (0, "GET /errorwork", "error", 0),
            (1, "somework", "unset", MS),
            (2, "MiddleWork", "unset", MS),
            (3, "ErrorWork", "error", 31 * MS),
        ]
    );
    assert_eq!(spans[0]["kind"], "server");
    assert_eq!(
        spans[2]["events"][0]["attributes"]["sleep.duration_ms"],
        "30"
    );
    assert_eq!(spans[3]["status_message"], "ErrorWork failed");
}

/// A line as the collector's `file` exporter wrote it (v0.161.0): no
/// `parentSpanId` on a root, 64-bit numbers as strings, enums as numbers.
const RECORDED: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"somework"}}]},"scopeSpans":[{"scope":{"name":"somework"},"spans":[{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7","name":"GET /errorwork","kind":2,"startTimeUnixNano":"1796680023369169495","endTimeUnixNano":"1796680023374169495","attributes":[{"key":"http.route","value":{"stringValue":"/errorwork"}},{"key":"n","value":{"intValue":"3"}}],"events":[{"timeUnixNano":"1796680023369170495","name":"exception","attributes":[{"key":"exception.message","value":{"stringValue":"boom"}}]}],"status":{"message":"boom","code":2}},{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331","name":"other trace","kind":1,"startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]}"#;

fn recorded_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("temporary file");
    file.write_all(text.as_bytes()).expect("write");
    file
}

#[test]
fn the_file_exporters_lines_are_read_back() {
    let file = recorded_file(&format!(
        "{RECORDED}\n{RECORDED}\n{{\"resourceSpans\":[{{\"res"
    ));
    let trace = otlp_file::read(file.path(), TRACE)
        .expect("readable")
        .expect("found");
    assert_eq!(
        trace.spans.len(),
        2,
        "one span per line, the cut last line skipped"
    );
    let span = &trace.spans[0];
    assert_eq!(span.span_id, "00f067aa0ba902b7");
    assert_eq!(span.parent_span_id, None);
    assert_eq!(span.service, "somework");
    assert_eq!(span.kind, SpanKind::Server);
    assert_eq!(span.duration_nanos(), 5 * MS);
    assert_eq!(span.status, Status::Error("boom".to_owned()));
    assert_eq!(span.events[0].name, "exception");
    assert_eq!(
        span.events[0].attributes,
        [("exception.message".to_owned(), "boom".to_owned())]
    );

    let absent = otlp_file::read(file.path(), "0123456789abcdef0123456789abcdef");
    assert!(matches!(absent, Ok(None)), "{absent:?}");
}

#[test]
fn a_malformed_line_is_an_error_that_names_it() {
    let broken = RECORDED.replace("\"kind\":2", "\"kind\":\"two\"");
    let file = recorded_file(&format!("{RECORDED}\n{broken}\n"));
    let error = otlp_file::read(file.path(), TRACE).expect_err("line 2 is malformed");
    let message = error.to_string();
    assert!(message.contains(":2: not the JSON expected"), "{message}");
    assert!(!error.is_transient());
}

/// Jaeger v2's answer to `/api/traces/{id}` (the shape its UI reads).
const JAEGER_ANSWER: &str = r#"{"data":[{"traceID":"4bf92f3577b34da6a3ce929d0e0e4736","spans":[
{"traceID":"4bf92f3577b34da6a3ce929d0e0e4736","spanID":"f067aa0ba902b7","operationName":"GET /chain","references":[],"startTime":1796680023369169,"duration":5000,"tags":[{"key":"span.kind","type":"string","value":"server"},{"key":"otel.status_code","type":"string","value":"ERROR"},{"key":"otel.status_description","type":"string","value":"502"},{"key":"error","type":"bool","value":true}],"logs":[{"timestamp":1796680023369170,"fields":[{"key":"event","type":"string","value":"exception"},{"key":"n","type":"int64","value":3}]}],"processID":"p1","warnings":null},
{"traceID":"4bf92f3577b34da6a3ce929d0e0e4736","spanID":"b7ad6b7169203331","operationName":"GET","references":[{"refType":"CHILD_OF","traceID":"4bf92f3577b34da6a3ce929d0e0e4736","spanID":"f067aa0ba902b7"}],"startTime":1796680023369200,"duration":4000,"tags":[{"key":"span.kind","type":"string","value":"client"}],"logs":[],"processID":"p2","warnings":null}],
"processes":{"p1":{"serviceName":"somework-frontend","tags":[]},"p2":{"serviceName":"somework-backend","tags":[]}},"warnings":null}],"total":0,"limit":0,"offset":0,"errors":null}"#;

#[test]
fn jaegers_answer_is_read_back() {
    let trace = super::source::jaeger::parse(JAEGER_ANSWER.as_bytes(), TRACE)
        .expect("parses")
        .expect("found");
    let [server, client] = trace.spans.as_slice() else {
        panic!("two spans: {trace:?}");
    };
    // Jaeger drops leading zeros; the ids come back whole.
    assert_eq!(server.span_id, "00f067aa0ba902b7");
    assert_eq!(client.parent_span_id.as_deref(), Some("00f067aa0ba902b7"));
    assert_eq!(
        (server.kind, client.kind),
        (SpanKind::Server, SpanKind::Client)
    );
    assert_eq!(server.service, "somework-frontend");
    assert_eq!(client.service, "somework-backend");
    assert_eq!(server.status, Status::Error("502".to_owned()));
    assert_eq!(client.status, Status::Unset);
    assert_eq!(server.duration_nanos(), 5 * MS);
    assert_eq!(server.events[0].name, "exception");
    assert_eq!(
        server.events[0].attributes,
        [("n".to_owned(), "3".to_owned())]
    );
    let waterfall = Waterfall::new(&trace);
    assert!(waterfall.is_complete());
    assert_eq!(waterfall.rows[1].depth, 1);
}

/// What a real Jaeger v2 (module v1.76.0, memory storage) answered to
/// `/api/traces/{id}` for an `/errorwork` request of the service.
const JAEGER_ERRORWORK: &str = include_str!("../../tests/fixtures/jaeger-errorwork.json");

#[test]
fn a_real_jaeger_answer_draws_the_errorwork_tree() {
    let trace_id = "9b72615e298050f08866c91b3428828d";
    let trace = super::source::jaeger::parse(JAEGER_ERRORWORK.as_bytes(), trace_id)
        .expect("parses")
        .expect("found");
    let waterfall = Waterfall::new(&trace);
    assert!(waterfall.is_complete());
    let rows: Vec<(usize, &str, SpanKind, bool)> = waterfall
        .rows
        .iter()
        .map(|r| {
            (
                r.depth,
                r.span.name.as_str(),
                r.span.kind,
                r.span.is_error(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (0, "GET /errorwork", SpanKind::Server, true),
            (1, "somework", SpanKind::Internal, true),
            (2, "MiddleWork", SpanKind::Internal, true),
            (3, "ErrorWork", SpanKind::Internal, true),
        ]
    );
    let error_work = waterfall.rows[3].span;
    assert_eq!(
        error_work.status,
        Status::Error("ErrorWork failed: the simulated dependency is unavailable".to_owned())
    );
    assert_eq!(error_work.events[0].name, "exception");
    let middle: Vec<&str> = waterfall.rows[2]
        .span
        .events
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(
        middle,
        ["started the sleep", "completed the sleep", "Out of Error!"]
    );
}
