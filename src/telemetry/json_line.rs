//! [`JsonLine`]: the request line's JSON in `tracing-subscriber`'s own format,
//! written straight into the line's buffer. `serde_json`'s serializer and
//! `io::Write` adaptor cost about a third of a request with tracing off
//! (BENCHMARKS.md); a unit test holds the output to the real formatter's.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent as _;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime as _, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// One JSON object per line, as `tracing-subscriber`'s
/// `json().flatten_event(true).with_current_span(false)` writes it:
/// `timestamp`, `level`, the event's fields in their order, `target`, and
/// `spans` (each with its fields and `name`, from the root) when the event is
/// inside one. Field values keep their JSON type: booleans, integers and
/// floats as numbers (non-finite ones as `null`), everything else as a
/// string.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonLine;

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
    N: for<'writer> FormatFields<'writer> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // Records of the `log` crate carry their own level and target.
        let normalized = event.normalized_metadata();
        let metadata = normalized.as_ref().unwrap_or_else(|| event.metadata());

        writer.write_str("{\"timestamp\":\"")?;
        write_timestamp(&mut writer, std::time::SystemTime::now())?;
        write!(writer, "\",\"level\":\"{}\"", metadata.level())?;
        let mut fields = JsonFieldsVisitor {
            writer: &mut writer,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_str(",\"target\":")?;
        write_json_str(&mut writer, metadata.target())?;

        let in_span = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current())
            .is_some();
        if in_span {
            writer.write_str(",\"spans\":[")?;
            if let Some(leaf) = ctx.lookup_current() {
                for (i, span) in leaf.scope().from_root().enumerate() {
                    if i > 0 {
                        writer.write_char(',')?;
                    }
                    let extensions = span.extensions();
                    let formatted = extensions
                        .get::<FormattedFields<N>>()
                        .map_or("", |fields| fields.fields.as_str());
                    write_span(&mut writer, formatted, span.metadata().name())?;
                }
            }
            writer.write_char(']')?;
        }
        writer.write_str("}\n")
    }
}

/// `time` as `tracing-subscriber`'s `SystemTime` timer writes it (RFC 3339,
/// UTC, microseconds: `2026-12-07T21:44:50.123456Z`), digit by digit rather
/// than through `core::fmt`'s padded integers. Times before 1970 or after
/// 9999 are left to that timer's own formatting.
fn write_timestamp(writer: &mut Writer<'_>, time: std::time::SystemTime) -> fmt::Result {
    /// 10000-01-01T00:00:00Z, in seconds since the epoch.
    const YEAR_10000: u64 = 253_402_300_800;
    let since_epoch = match time.duration_since(std::time::UNIX_EPOCH) {
        Ok(since) if since.as_secs() < YEAR_10000 => since,
        _ => return SystemTime.format_time(writer),
    };
    let seconds = since_epoch.as_secs();
    let (year, month, day) = civil_date(seconds / 86_400);
    let of_day = seconds % 86_400;
    let mut text = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut value: u64| {
        for digit in text[at..at + width].iter_mut().rev() {
            *digit = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, of_day / 3600);
    put(14, 2, of_day % 3600 / 60);
    put(17, 2, of_day % 60);
    put(20, 6, u64::from(since_epoch.subsec_micros()));
    // ASCII digits and separators only.
    writer.write_str(std::str::from_utf8(&text).unwrap_or_default())
}

/// The proleptic Gregorian (year, month, day) of a day counted from
/// 1970-01-01, by Howard Hinnant's `civil_from_days`.
fn civil_date(days_since_epoch: u64) -> (u64, u64, u64) {
    // Days from 0000-03-01, so that a 400-year era starts after a leap day.
    let days = days_since_epoch + 719_468;
    let era = days / 146_097;
    let day_of_era = days % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

/// One span of the `spans` list: its recorded fields, which [`JsonFields`]
/// keeps as a JSON object, then its `name`. Only events inside a `tracing`
/// span pay for this; the service's own events are in none.
fn write_span(writer: &mut Writer<'_>, formatted: &str, name: &str) -> fmt::Result {
    writer.write_char('{')?;
    match serde_json::from_str::<serde_json::Value>(formatted) {
        Ok(serde_json::Value::Object(fields)) => {
            for (key, value) in &fields {
                write_json_str(writer, key)?;
                write!(writer, ":{},", json(value))?;
            }
        }
        Ok(value) => {
            write!(
                writer,
                "\"field\":{},\"field_error\":{},",
                json(&value),
                json(&format!("invalid JSON object\n\t{value}"))
            )?;
        }
        Err(error) => write!(writer, "\"field_error\":{},", json(&error.to_string()))?,
    }
    writer.write_str("\"name\":")?;
    write_json_str(writer, name)?;
    writer.write_char('}')
}

/// A value of [`write_span`] as JSON text.
fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

/// Writes each field as `,"name":value`, with the JSON types
/// `tracing-serde` gives them; what it records as `Debug` (`i128`, errors,
/// `%` and `?` values) becomes a string.
struct JsonFieldsVisitor<'a, 'w> {
    writer: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl JsonFieldsVisitor<'_, '_> {
    fn entry(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = (|| {
                self.writer.write_char(',')?;
                write_json_str(self.writer, field.name())?;
                self.writer.write_char(':')?;
                value(self.writer)
            })();
        }
    }
}

impl Visit for JsonFieldsVisitor<'_, '_> {
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.entry(field, |w| w.write_str(if value { "true" } else { "false" }));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.entry(field, |w| write!(w, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.entry(field, |w| write!(w, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // serde_json writes the shortest representation that reads back
        // the same, and `null` for NaN and the infinities.
        self.entry(field, |w| match serde_json::Number::from_f64(value) {
            Some(number) => write!(w, "{number}"),
            None => w.write_str("null"),
        });
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.entry(field, |w| write_json_str(w, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.entry(field, |w| {
            w.write_char('"')?;
            // Formatted into a buffer on the stack, then escaped at once:
            // padding (a trace id of zeros with tracing off) comes one
            // character at a time, and each would be escaped on its own.
            let mut short = ShortText::default();
            if write!(short, "{value:?}").is_ok() {
                EscapedJson(w).write_str(short.as_str())?;
            } else {
                write!(EscapedJson(w), "{value:?}")?;
            }
            w.write_char('"')
        });
    }
}

/// Up to [`ShortText::CAPACITY`] bytes of text on the stack; writing more
/// fails, and the caller formats the value again without it.
struct ShortText {
    bytes: [u8; Self::CAPACITY],
    len: usize,
}

impl ShortText {
    /// Room for the request line's values: ids, method, path, status.
    const CAPACITY: usize = 128;

    fn as_str(&self) -> &str {
        // Only whole `str`s are ever copied in, so the bytes are UTF-8.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl Default for ShortText {
    fn default() -> Self {
        Self {
            bytes: [0; Self::CAPACITY],
            len: 0,
        }
    }
}

impl fmt::Write for ShortText {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let end = self.len + text.len();
        let room = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
        room.copy_from_slice(text.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// A JSON string: quoted, escaped as serde_json escapes.
fn write_json_str(writer: &mut Writer<'_>, value: &str) -> fmt::Result {
    writer.write_char('"')?;
    EscapedJson(writer).write_str(value)?;
    writer.write_char('"')
}

/// Escapes what it is given for the inside of a JSON string: the quote, the
/// backslash and the control characters, with serde_json's short forms.
struct EscapedJson<'a, 'w>(&'a mut Writer<'w>);

impl fmt::Write for EscapedJson<'_, '_> {
    fn write_str(&mut self, value: &str) -> fmt::Result {
        let mut clean_from = 0;
        for (i, byte) in value.bytes().enumerate() {
            let short = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x08 => "\\b",
                0x0c => "\\f",
                0x00..=0x1f => "",
                _ => continue,
            };
            self.0.write_str(&value[clean_from..i])?;
            if short.is_empty() {
                write!(self.0, "\\u{byte:04x}")?;
            } else {
                self.0.write_str(short)?;
            }
            clean_from = i + 1;
        }
        self.0.write_str(&value[clean_from..])
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing::{error, info, info_span, warn};
    use tracing_subscriber::fmt::MakeWriter;

    use tracing_subscriber::fmt::format::JsonFields;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    /// Lines written to memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Self;

        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    impl Captured {
        /// The lines, each without its timestamp's value.
        fn lines(&self) -> Vec<String> {
            let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
            text.lines()
                .map(|line| {
                    let (start, rest) = line.split_at("{\"timestamp\":\"".len());
                    let (_, rest) = rest.split_once('"').unwrap();
                    format!("{start}\"{rest}")
                })
                .collect()
        }
    }

    #[derive(Debug)]
    struct Failure;

    impl fmt::Display for Failure {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("the \"dependency\" is down")
        }
    }

    impl std::error::Error for Failure {}

    fn events() {
        let trace_id = opentelemetry::trace::TraceId::INVALID;
        info!(
            trace_id = %trace_id,
            sampled = false,
            method = %axum::http::Method::GET,
            path = %"/users/\"quoted\"\\back\nline\u{1}\u{7f}é",
            status = 200_u16,
            duration_ms = 0.123_f64,
            delta = -7_i64,
            big = 1_u128 << 100,
            nan = f64::NAN,
            whole = 2.0_f64,
            tiny = 1e-7_f64,
            "request"
        );
        let error = Failure;
        warn!(error = &error as &dyn std::error::Error, "handled: {}", 42);
        let outer = info_span!("outer", route = "/chain", hops = 3_u64);
        let _outer = outer.enter();
        let inner = info_span!("inner", ok = true);
        let _inner = inner.enter();
        error!(debug = ?Some("x"), long = %"\"x\"".repeat(100), "in \"spans\"");
    }

    fn timestamp(time: std::time::SystemTime) -> String {
        let mut text = String::new();
        write_timestamp(&mut Writer::new(&mut text), time).unwrap();
        text
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        use std::time::{Duration, UNIX_EPOCH};
        for (seconds, micros, expected) in [
            (0, 0, "1970-01-01T00:00:00.000000Z"),
            (951_827_696, 789_012, "2000-02-29T12:34:56.789012Z"),
            (951_868_800, 1, "2000-03-01T00:00:00.000001Z"),
            (1_798_761_599, 999_999, "2026-12-31T23:59:59.999999Z"),
            (4_107_542_400, 0, "2100-03-01T00:00:00.000000Z"),
            (253_402_300_799, 0, "9999-12-31T23:59:59.000000Z"),
        ] {
            let time = UNIX_EPOCH + Duration::new(seconds, micros * 1000);
            assert_eq!(timestamp(time), expected, "{seconds}");
        }
    }

    /// The same text as tracing-subscriber's timer, now: they can only
    /// differ in the microseconds between the two calls.
    #[test]
    fn timestamps_are_tracing_subscribers_own() {
        let mut theirs = String::new();
        SystemTime
            .format_time(&mut Writer::new(&mut theirs))
            .unwrap();
        let ours = timestamp(std::time::SystemTime::now());
        assert_eq!(ours.len(), theirs.len());
        assert_eq!(ours[..16], theirs[..16], "{ours} {theirs}");
    }

    /// Every line as tracing-subscriber's JSON formatter writes it.
    #[test]
    fn json_lines_are_tracing_subscribers_own() {
        let ours = Captured::default();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(ours.clone())
                .fmt_fields(JsonFields::new())
                .event_format(JsonLine),
        );
        tracing::subscriber::with_default(subscriber, events);

        let theirs = Captured::default();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(theirs.clone())
                .json()
                .flatten_event(true)
                .with_current_span(false),
        );
        tracing::subscriber::with_default(subscriber, events);

        let (ours, theirs) = (ours.lines(), theirs.lines());
        assert_eq!(ours.len(), 3);
        assert_eq!(ours, theirs);
        for line in &ours {
            serde_json::from_str::<serde_json::Value>(line).unwrap();
        }
    }
}
