//! The waterfall as text, the way Jaeger's timeline shows a trace: one row
//! per span (tree, kind, start offset, duration, a bar to scale), its events
//! and error below it; and the same as JSON.

use console::Style;
use serde_json::{Value, json};

use super::bugsink::ErrorLink;
use super::model::{Row, Span, Status, Waterfall};

/// The columns of kind, start and duration, each with its leading space.
const KIND_WIDTH: usize = 8;
const TIME_WIDTH: usize = 8;
const FIXED_COLUMNS: usize = 3 + KIND_WIDTH + 2 * TIME_WIDTH + 1;
/// Narrower than this, the bars are left out.
const MIN_BAR: usize = 12;
const MIN_LABEL: usize = 16;
/// The bars of each service cycle through these colours; errors are red.
const SERVICE_COLOURS: [console::Color; 5] = [
    console::Color::Cyan,
    console::Color::Green,
    console::Color::Yellow,
    console::Color::Magenta,
    console::Color::Blue,
];

/// How the text is laid out.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// Columns available; no line but an error's link is wider.
    pub width: usize,
    /// ANSI colours, for a terminal.
    pub colour: bool,
}

/// The waterfall, each line ending with a newline.
pub fn text(waterfall: &Waterfall<'_>, links: &[ErrorLink], layout: Layout) -> String {
    let style = |style: Style| style.force_styling(layout.colour);
    let (red, dim, bold) = (
        style(Style::new().red()),
        style(Style::new().dim()),
        style(Style::new().bold()),
    );
    let total = waterfall.duration_nanos();
    let services = waterfall.services();
    let errors = waterfall.rows.iter().filter(|r| r.span.is_error()).count();
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(text.trim_end());
        out.push('\n');
    };

    let summary = format!(
        "{} spans, {} {}, {}, {} with errors",
        waterfall.rows.len(),
        services.len(),
        if services.len() == 1 {
            "service"
        } else {
            "services"
        },
        human(total),
        errors
    );
    line(format!(
        "Trace {}",
        bold.apply_to(&waterfall.trace.trace_id)
    ));
    line(fit(&summary, layout.width));

    let labels: Vec<String> = waterfall
        .rows
        .iter()
        .zip(waterfall.parent_services())
        .map(|(row, parent)| label(row, parent))
        .collect();
    let widest = labels
        .iter()
        .map(|l| console::measure_text_width(l))
        .max()
        .unwrap_or(0);
    let room = layout.width.saturating_sub(FIXED_COLUMNS);
    let (label_width, bar_width) = if room >= MIN_LABEL + MIN_BAR {
        let label_width = widest.clamp(MIN_LABEL, room - MIN_BAR);
        (label_width, room - label_width)
    } else {
        (room.max(MIN_LABEL), 0)
    };

    line(format!(
        "{} {:<KIND_WIDTH$} {:>TIME_WIDTH$} {:>TIME_WIDTH$} {}",
        pad("SPAN", label_width),
        "KIND",
        "START",
        "DURATION",
        scale(total, bar_width)
    ));
    let colour_of = |service: &str| {
        let index = services.iter().position(|s| *s == service).unwrap_or(0);
        SERVICE_COLOURS[index % SERVICE_COLOURS.len()]
    };
    for (i, (row, label)) in waterfall.rows.iter().zip(&labels).enumerate() {
        let span = row.span;
        let offset = span
            .start_unix_nano
            .saturating_sub(waterfall.start_unix_nano);
        let bar_style = if span.is_error() {
            red.clone()
        } else {
            style(Style::new().fg(colour_of(&span.service)))
        };
        let label = pad(&fit(label, label_width), label_width);
        let label = if span.is_error() {
            red.apply_to(label).to_string()
        } else {
            label
        };
        line(format!(
            "{label} {:<KIND_WIDTH$} {:>TIME_WIDTH$} {:>TIME_WIDTH$} {}",
            span.kind.as_str(),
            human(offset),
            human(span.duration_nanos()),
            bar_style.apply_to(bar(offset, span.duration_nanos(), total, bar_width).trim_end())
        ));

        let has_children = waterfall
            .rows
            .get(i + 1)
            .is_some_and(|next| next.depth > row.depth);
        let indent = format!(
            "{}{}",
            guides(row, true),
            if has_children { "│ " } else { "  " }
        );
        let detail = |text: String| fit(format!("{indent}{text}").trim_end(), layout.width);
        match &span.status {
            Status::Error(message) if !message.is_empty() => {
                line(
                    red.apply_to(detail(format!("✖ error: {message}")))
                        .to_string(),
                );
            }
            _ => {}
        }
        for event in &span.events {
            let offset = event
                .time_unix_nano
                .saturating_sub(waterfall.start_unix_nano);
            let attributes: Vec<String> = event
                .attributes
                .iter()
                .map(|(key, value)| format!("{key}={value}"))
                .collect();
            let text = format!(
                "· {} {} {}",
                human(offset),
                event.name,
                attributes.join(" ")
            );
            line(dim.apply_to(detail(text)).to_string());
        }
        for link in links
            .iter()
            .filter(|l| l.span_id.as_deref() == Some(&span.span_id))
        {
            // The URL is never cut: a cut link leads nowhere.
            line(format!("{indent}↳ {} {}", fit(&link.title, 48), link.url));
        }
    }
    let ids: Vec<&str> = waterfall
        .rows
        .iter()
        .map(|r| r.span.span_id.as_str())
        .collect();
    for link in links
        .iter()
        .filter(|l| !l.span_id.as_deref().is_some_and(|id| ids.contains(&id)))
    {
        line(format!("↳ {} {}", fit(&link.title, 48), link.url));
    }
    out
}

/// The row's tree, then its name (marked when in error), then its service
/// where that differs from its parent's.
fn label(row: &Row<'_>, parent_service: Option<&str>) -> String {
    let span: &Span = row.span;
    let mut label = guides(row, false);
    if row.depth > 0 {
        label.push_str(if row.last { "└─ " } else { "├─ " });
    }
    if span.is_error() {
        label.push_str("✖ ");
    }
    label.push_str(&span.name);
    if parent_service != Some(span.service.as_str()) {
        label.push_str(&format!(" [{}]", span.service));
    }
    label
}

/// The tree's lines to the left of a row; `below` continues them under it.
fn guides(row: &Row<'_>, below: bool) -> String {
    let mut text: String = row
        .guides
        .iter()
        .map(|open| if *open { "│  " } else { "   " })
        .collect();
    if below && row.depth > 0 {
        text.push_str(if row.last { "   " } else { "│  " });
    }
    text
}

/// `width` cells with the span's part of the trace filled.
pub fn bar(offset: u64, duration: u64, total: u64, width: usize) -> String {
    if width == 0 {
        return String::new();
    }
    let total = u128::from(total.max(1));
    let cell = |nanos: u64| {
        let cells = u128::from(nanos) * width as u128 / total;
        usize::try_from(cells).unwrap_or(width).min(width)
    };
    let start = cell(offset).min(width - 1);
    let end = cell(offset.saturating_add(duration)).clamp(start + 1, width);
    format!(
        "{}{}{}",
        " ".repeat(start),
        "█".repeat(end - start),
        " ".repeat(width - end)
    )
}

/// The time axis over the bars: 0 at the left, the trace's duration at the
/// right, the middle between when there is room.
fn scale(total: u64, width: usize) -> String {
    if width == 0 {
        return String::new();
    }
    let (left, right) = ("0".to_owned(), human(total));
    let middle = human(total / 2);
    let gap = width.saturating_sub(left.len() + right.chars().count());
    if gap >= middle.chars().count() + 4 {
        let before = (width / 2).saturating_sub(left.len() + middle.chars().count() / 2);
        let after = gap.saturating_sub(before + middle.chars().count());
        format!(
            "{left}{}{middle}{}{right}",
            " ".repeat(before),
            " ".repeat(after)
        )
    } else {
        format!("{left}{}{right}", " ".repeat(gap))
    }
}

/// A duration in at most 7 characters: `850ns`, `12.3µs`, `4.56ms`, `1.23s`.
pub fn human(nanos: u64) -> String {
    let value = nanos as f64;
    let (scaled, unit) = match nanos {
        0..1_000 => return format!("{nanos}ns"),
        1_000..1_000_000 => (value / 1e3, "µs"),
        1_000_000..1_000_000_000 => (value / 1e6, "ms"),
        _ => (value / 1e9, "s"),
    };
    let decimals = if scaled < 10.0 {
        2
    } else if scaled < 100.0 {
        1
    } else {
        0
    };
    format!("{scaled:.decimals$}{unit}")
}

/// `text` cut to `width` columns, ending in `…` when cut.
fn fit(text: &str, width: usize) -> String {
    console::truncate_str(text, width, "…").into_owned()
}

fn pad(text: &str, width: usize) -> String {
    console::pad_str(text, width, console::Alignment::Left, None).into_owned()
}

/// The waterfall as JSON: the spans in waterfall order, times in
/// nanoseconds from the trace's start.
pub fn json(waterfall: &Waterfall<'_>, links: &[ErrorLink]) -> Value {
    let spans: Vec<Value> = waterfall
        .rows
        .iter()
        .map(|row| {
            let span = row.span;
            let (status, message) = match &span.status {
                Status::Unset => ("unset", None),
                Status::Ok => ("ok", None),
                Status::Error(message) => ("error", Some(message)),
            };
            let errors: Vec<&ErrorLink> = links
                .iter()
                .filter(|l| l.span_id.as_deref() == Some(&span.span_id))
                .collect();
            let events: Vec<Value> = span
                .events
                .iter()
                .map(|event| {
                    json!({
                        "name": event.name,
                        "offset_ns": event.time_unix_nano.saturating_sub(waterfall.start_unix_nano),
                        "attributes": event
                            .attributes
                            .iter()
                            .map(|(key, value)| (key.clone(), Value::from(value.as_str())))
                            .collect::<serde_json::Map<_, _>>(),
                    })
                })
                .collect();
            json!({
                "span_id": span.span_id,
                "parent_span_id": span.parent_span_id,
                "depth": row.depth,
                "service": span.service,
                "name": span.name,
                "kind": span.kind,
                "start_offset_ns": span.start_unix_nano.saturating_sub(waterfall.start_unix_nano),
                "duration_ns": span.duration_nanos(),
                "status": status,
                "status_message": message,
                "events": events,
                "errors": errors,
            })
        })
        .collect();
    json!({
        "trace_id": waterfall.trace.trace_id,
        "complete": waterfall.is_complete(),
        "start_time_unix_nano": waterfall.start_unix_nano,
        "duration_ns": waterfall.duration_nanos(),
        "services": waterfall.services(),
        "spans": spans,
        "errors": links,
    })
}
