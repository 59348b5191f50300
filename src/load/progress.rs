//! Progress while the load runs, on stderr: a progress bar on a terminal,
//! a plain line every few seconds otherwise (in a pod's log, a CI log).

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::schedule::Limit;

/// How often a plain progress line is printed when stderr is not a terminal.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// What the progress shows.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    pub sent: u64,
    pub finished: u64,
    pub errors: u64,
    pub late: u64,
}

pub enum Progress {
    Bar {
        bar: ProgressBar,
        limit: Limit,
        started: Instant,
    },
    Lines {
        started: Instant,
        last: Instant,
    },
}

impl Progress {
    pub fn new(limit: Limit, started: Instant) -> Self {
        if !std::io::stderr().is_terminal() {
            return Progress::Lines {
                started,
                last: started,
            };
        }
        let (bar, template) = match limit {
            Limit::Requests(count) => (
                ProgressBar::new(count),
                "{spinner} {elapsed_precise} [{wide_bar}] {pos}/{len} {msg}",
            ),
            Limit::Duration(duration) => (
                ProgressBar::new(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)),
                "{spinner} {elapsed_precise} [{wide_bar}] {msg}",
            ),
            Limit::Unlimited => (
                ProgressBar::no_length(),
                "{spinner} {elapsed_precise} {msg} (Ctrl-C stops)",
            ),
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_draw_target(ProgressDrawTarget::stderr());
        Progress::Bar {
            bar,
            limit,
            started,
        }
    }

    pub fn update(&mut self, snapshot: Snapshot) {
        let message = format!(
            "{} sent, {} finished, {} errors, {} late",
            snapshot.sent, snapshot.finished, snapshot.errors, snapshot.late
        );
        match self {
            Progress::Bar {
                bar,
                limit,
                started,
            } => {
                match limit {
                    Limit::Requests(_) => bar.set_position(snapshot.finished),
                    Limit::Duration(_) => bar.set_position(
                        u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    ),
                    Limit::Unlimited => bar.tick(),
                }
                bar.set_message(message);
            }
            Progress::Lines { started, last } => {
                if last.elapsed() >= LINE_EVERY {
                    *last = Instant::now();
                    eprintln!(
                        "somework load: {:.0} s: {message}",
                        started.elapsed().as_secs_f64()
                    );
                }
            }
        }
    }

    pub fn finish(&self) {
        if let Progress::Bar { bar, .. } = self {
            bar.finish_and_clear();
        }
    }
}
