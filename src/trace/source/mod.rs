//! Where a trace is read from: the collector's `file` exporter output (what
//! `make run` records) or Jaeger's query API.

pub mod jaeger;
pub mod otlp_file;

use std::path::PathBuf;

use super::http::Endpoint;
use super::model::Trace;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}: not the JSON expected: {reason}")]
    Parse { origin: String, reason: String },
    #[error("{0}")]
    Http(String),
}

impl SourceError {
    /// Whether another look may succeed: the file may not be written yet,
    /// the API may be starting; a malformed answer will stay malformed.
    pub fn is_transient(&self) -> bool {
        !matches!(self, Self::Parse { .. })
    }
}

/// One place to read traces from.
pub enum Source {
    /// OTLP JSON lines, as the collector's `file` exporter writes them.
    File(PathBuf),
    /// Jaeger's query API.
    Jaeger(Endpoint),
}

impl Source {
    /// The spans of `trace_id` found now; `None` when there are none yet.
    pub async fn fetch(&self, trace_id: &str) -> Result<Option<Trace>, SourceError> {
        match self {
            Self::File(path) => otlp_file::read(path, trace_id),
            Self::Jaeger(endpoint) => jaeger::fetch(endpoint, trace_id).await,
        }
    }

    /// What is read, for messages.
    pub fn describe(&self) -> String {
        match self {
            Self::File(path) => path.display().to_string(),
            Self::Jaeger(endpoint) => format!("Jaeger at {}", endpoint.describe()),
        }
    }
}
