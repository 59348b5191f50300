//! Reading a Prometheus text page, once or until the numbers settle: one
//! helper for the collector's own counters ([`super::metrics`], `:8888`) and
//! its span metrics ([`super::red`], `:8889`).

use std::time::Duration;

use tokio::time::Instant;

use super::http::{Get, GetError};

/// One read of a metrics page.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between two reads while waiting for the numbers to settle.
const POLL: Duration = Duration::from_secs(1);

/// A reading of a metrics page, and what changed since an earlier one.
pub trait Page: Sized {
    type ParseError: std::error::Error + 'static;

    fn parse(text: &str) -> Result<Self, Self::ParseError>;

    /// What changed since `before`.
    fn since(&self, before: &Self) -> Self;
}

#[derive(Debug, thiserror::Error)]
pub enum ScrapeError<E: std::error::Error + 'static> {
    #[error(transparent)]
    Get(#[from] GetError),
    #[error("{target}: /metrics answered {status}")]
    Status { target: String, status: u16 },
    #[error(transparent)]
    Parse(E),
}

/// Reads `/metrics` from `source`.
pub async fn read<P: Page>(source: &impl Get) -> Result<P, ScrapeError<P::ParseError>> {
    let reply = source.get("/metrics", &[], READ_TIMEOUT).await?;
    if reply.status != 200 {
        return Err(ScrapeError::Status {
            target: source.target().to_owned(),
            status: reply.status,
        });
    }
    P::parse(&String::from_utf8_lossy(&reply.body)).map_err(ScrapeError::Parse)
}

/// Reads `/metrics` until `settled` holds for the change since `before`, or
/// until `deadline`; returns the last change.
pub async fn poll<P: Page>(
    source: &impl Get,
    before: &P,
    settled: impl Fn(&P) -> bool,
    deadline: Instant,
) -> Result<P, ScrapeError<P::ParseError>> {
    loop {
        let change = read::<P>(source).await?.since(before);
        if settled(&change) || Instant::now() + POLL >= deadline {
            return Ok(change);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A counter's growth from `then` to `now`. One that went down was reset
/// (its process restarted) and counts from zero, as PromQL's `increase`.
pub fn counter_delta(now: f64, then: f64) -> f64 {
    if now >= then { now - then } else { now }
}
