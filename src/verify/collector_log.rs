//! The collector's console output, read as text: the lines about a failing
//! exporter, and where the debug exporter printed a trace.

/// The last `count` lines of `log` about a failing `exporter`, newest last,
/// shortened to time, level, message and error.
pub fn exporter_failures(log: &str, exporter: &str, count: usize) -> Vec<String> {
    let quoted = format!("\"{exporter}\"");
    let matching: Vec<String> = log
        .lines()
        .filter(|line| line.contains(&quoted) && line.contains("\"error\""))
        .map(shorten)
        .collect();
    matching[matching.len().saturating_sub(count)..].to_vec()
}

/// `TIME\tLEVEL\tCALLER\tMESSAGE\t{json}` (the collector's console log)
/// becomes `TIME LEVEL MESSAGE: ERROR`; other lines are kept as they are.
fn shorten(line: &str) -> String {
    let fields: Vec<&str> = line.splitn(5, '\t').collect();
    if let [time, level, _caller, message, fields] = fields.as_slice()
        && let Ok(fields) = serde_json::from_str::<serde_json::Value>(fields)
        && let Some(error) = fields["error"].as_str()
    {
        return format!("{time} {level} {message}: {error}");
    }
    line.to_owned()
}

/// The line number (from 1) of the first span of `trace_id` in the debug
/// exporter's output. A span's line is `Trace ID       : <id>`, the name
/// padded before the colon; a log record's `Trace ID: <id>` is not a span.
pub fn first_span_line(output: &str, trace_id: &str) -> Option<usize> {
    output
        .lines()
        .position(|line| {
            line.trim_start()
                .strip_prefix("Trace ID ")
                .and_then(|rest| rest.trim_start().strip_prefix(':'))
                .is_some_and(|id| id.trim() == trace_id)
        })
        .map(|index| index + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_line_is_found_and_a_log_record_line_is_not() {
        let output = "ScopeSpans #0\n\
                      Trace ID: abc\n\
                      Span #0\n    Trace ID       : abc\n    Parent ID      : \n";
        assert_eq!(first_span_line(output, "abc"), Some(4));
        assert_eq!(first_span_line(output, "ab"), None);
        assert_eq!(first_span_line("Trace ID: abc\n", "abc"), None);
    }

    #[test]
    fn an_exporters_errors_are_shortened_newest_last() {
        let log = "2026-01-01T00:00:00Z\terror\tx.go:1\tExporting failed\t{\"exporter\": \"otlp_grpc/jaeger\", \"error\": \"refused\"}\n\
                   other line\n\
                   2026-01-01T00:00:01Z\terror\tx.go:1\tExporting failed\t{\"exporter\": \"otlp_grpc/jaeger\", \"error\": \"again\"}\n";
        assert_eq!(
            exporter_failures(log, "otlp_grpc/jaeger", 1),
            ["2026-01-01T00:00:01Z error Exporting failed: again"]
        );
        assert_eq!(exporter_failures(log, "otlp_grpc/jaeger", 5).len(), 2);
        assert!(exporter_failures(log, "debug", 5).is_empty());
    }
}
