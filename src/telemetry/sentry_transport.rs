//! The Sentry transport: a bounded queue drained by several concurrent
//! requests over kept-alive connections, so that delivery is bound by what
//! Sentry accepts rather than by one round trip per event.
//!
//! The sentry crate's own transport (0.49) sends one envelope at a time from
//! a 30-slot queue: against a Sentry 50-100 ms away, 10-20 events a second
//! before it drops. This one keeps its semantics and changes its capacity:
//!
//! - `send_envelope` never blocks: a full queue drops the envelope;
//! - `429`, `Retry-After` and `X-Sentry-Rate-Limits` update the crate's own
//!   [`RateLimiter`], and envelopes offered while it is in force are dropped,
//!   per item category, as the crate's transport drops them;
//! - envelopes wait gzip'd and are posted so (`Content-Encoding: gzip`, as
//!   Sentry's Python SDK posts them), a tenth of their size in the queue;
//! - every loss is recorded with the crate's client report recorder (reasons
//!   `queue_overflow`, `ratelimit_backoff`, `network_error`, `send_error`;
//!   none for a 429, which Sentry counts itself), and in [`DeliveryStats`].
//!
//! It runs on a thread of its own with a single-threaded Tokio runtime, as the
//! crate's does, so it needs nothing from the service's runtime and never
//! takes a request worker.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use std::io::Read as _;

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use sentry::client_report::{Reason, Recorder};
use sentry::protocol::{EnvelopeFilterCallbacks, EnvelopeItem, Event, ItemContainer};
use sentry::transports::{RateLimiter, RateLimitingCategory};
use sentry::types::Dsn;
use sentry::{Envelope, Transport, TransportFactory, TransportOptions};
use tokio::sync::{Semaphore, mpsc};

use super::sentry_delivery::{DeliveryStats, Loss};

/// Envelopes waiting for a request. They wait gzip'd: an `/errorwork`
/// error's envelope is 38 KiB of JSON and 4.8 KiB gzip'd (see the README's
/// Reliability), so a full queue holds about 5 MiB, and a burst of 1,000
/// errors is carried whole while Sentry takes it at its own pace.
pub const QUEUE_CAPACITY: usize = 1000;
/// Requests in flight at once, each on its own kept-alive connection.
/// Sentry's ingest takes many; a self-hosted Bugsink gains up to about 8.
pub const CONCURRENT_REQUESTS: usize = 8;
/// A request Sentry leaves unanswered this long is a network error, so a
/// hung Sentry frees its slot instead of holding it forever.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the running counts may be logged and a pending client report
/// sent on its own when no error is going out to carry it.
const REPORT_INTERVAL: Duration = Duration::from_secs(60);

/// What the transport cannot start without.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot build the HTTP client for Sentry")]
    Client(#[source] reqwest::Error),
    #[error("cannot start the Sentry transport's runtime")]
    Runtime(#[source] std::io::Error),
}

/// The transport, built before the Sentry client so that a failure to start
/// it is reported rather than a panic inside `sentry::init`.
pub struct SentryTransport {
    queue: mpsc::Sender<Queued>,
    shared: Arc<Shared>,
}

struct Shared {
    http: reqwest::Client,
    url: String,
    auth: String,
    rate_limits: Mutex<RateLimiter>,
    /// Set by the Sentry client when it creates its transport.
    recorder: OnceLock<Recorder>,
    stats: DeliveryStats,
}

impl SentryTransport {
    pub fn start(dsn: &Dsn, stats: DeliveryStats) -> Result<Arc<Self>, TransportError> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_max_idle_per_host(CONCURRENT_REQUESTS)
            .build()
            .map_err(TransportError::Client)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(TransportError::Runtime)?;
        let user_agent = sentry::ClientOptions::default().user_agent;
        let shared = Arc::new(Shared {
            http,
            url: dsn.envelope_api_url().to_string(),
            auth: dsn.to_auth(Some(&user_agent)).to_string(),
            rate_limits: Mutex::new(RateLimiter::new()),
            recorder: OnceLock::new(),
            stats,
        });
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let worker = shared.clone();
        std::thread::Builder::new()
            .name("sentry-transport".into())
            .spawn(move || runtime.block_on(worker.run(receiver)))
            .map_err(TransportError::Runtime)?;
        Ok(Arc::new(Self { queue, shared }))
    }

    /// The factory to give `ClientOptions::transport`: it hands this
    /// transport the client's client report recorder.
    pub fn factory(self: &Arc<Self>) -> Arc<dyn TransportFactory> {
        Arc::new(Factory(self.clone()))
    }
}

struct Factory(Arc<SentryTransport>);

impl TransportFactory for Factory {
    fn create_transport_with_options(&self, options: TransportOptions) -> Arc<dyn Transport> {
        // Only the first client's recorder counts; the service makes one.
        let _ = self.0.shared.recorder.set(options.client_report_recorder);
        self.0.clone()
    }
}

impl Transport for SentryTransport {
    fn send_envelope(&self, envelope: Envelope) {
        if envelope.items().next().is_none() {
            // The client's nudge for a pending client report found none.
            return;
        }
        let events = error_events(&envelope);
        // Counted before it is queued, so the worker can never settle it first.
        self.shared.stats.queued(events);
        let queued = match Queued::new(&envelope) {
            Ok(queued) => queued,
            Err(error) => {
                self.shared.record(&envelope, Reason::InternalError);
                self.shared.stats.lost(events, Loss::SendError, &error);
                return;
            }
        };
        if let Err(error) = self.queue.try_send(queued) {
            let (reason, queued) = match error {
                mpsc::error::TrySendError::Full(queued) => (Reason::QueueOverflow, queued),
                // The worker is gone: only if its thread panicked.
                mpsc::error::TrySendError::Closed(queued) => (Reason::InternalError, queued),
            };
            self.shared.record(&queued.ledger, reason);
            self.shared.stats.rejected(events, QUEUE_CAPACITY);
        }
    }

    fn flush(&self, timeout: Duration) -> bool {
        self.shared.stats.wait_drained(timeout)
    }
}

impl Shared {
    async fn run(self: Arc<Self>, mut queue: mpsc::Receiver<Queued>) {
        let slots = Arc::new(Semaphore::new(CONCURRENT_REQUESTS));
        let mut report = tokio::time::interval(REPORT_INTERVAL);
        report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let queued = tokio::select! {
                queued = queue.recv() => match queued {
                    Some(queued) => queued,
                    None => return,
                },
                _ = report.tick() => {
                    if self.stats.log_if_changed() {
                        send_pending_client_report();
                    }
                    continue;
                }
            };
            // Held by the request: at most CONCURRENT_REQUESTS in flight,
            // the rest wait in the queue. The semaphore is never closed.
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let offered = queued.events;
            let Some(queued) = self.admit(queued) else {
                self.stats.lost(offered, Loss::RateLimited, &"rate limited");
                continue;
            };
            self.stats.filtered(offered - queued.events);
            let shared = self.clone();
            tokio::spawn(async move {
                shared.send(queued).await;
                drop(slot);
            });
        }
    }

    /// The envelope without the items a rate limit in force covers (their
    /// loss recorded as `ratelimit_backoff`), or `None` if none is left.
    /// Only a limit on some of its items' categories costs a decompression.
    fn admit(&self, queued: Queued) -> Option<Queued> {
        let limits = self
            .rate_limits
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if limits.is_disabled(RateLimitingCategory::Any).is_some() {
            self.record(&queued.ledger, Reason::RatelimitBackoff);
            return None;
        }
        if queued
            .ledger
            .items()
            .all(|item| limits.is_enabled(category(item)))
        {
            return Some(queued);
        }
        let envelope = match queued.envelope() {
            Ok(envelope) => envelope,
            Err(error) => {
                tracing::debug!(%error, "cannot read back a queued Sentry envelope");
                self.record(&queued.ledger, Reason::InternalError);
                return None;
            }
        };
        let filtered = envelope.filter(EnvelopeFilterCallbacks::new(
            |item: &EnvelopeItem| limits.is_enabled(category(item)),
            |item: EnvelopeItem| self.record(&item, Reason::RatelimitBackoff),
        ))?;
        match Queued::new(&filtered) {
            Ok(queued) => Some(queued),
            Err(_) => {
                self.record(&filtered, Reason::InternalError);
                None
            }
        }
    }

    async fn send(&self, queued: Queued) {
        let Queued {
            body,
            ledger,
            events,
        } = queued;
        let request = self
            .http
            .post(&self.url)
            .header("X-Sentry-Auth", &self.auth)
            .header(CONTENT_TYPE, "application/x-sentry-envelope")
            .header(CONTENT_ENCODING, "gzip")
            .body(body);
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                self.update_rate_limits(response.headers(), status);
                // Read to the end, so the connection is kept for the next.
                let _ = response.bytes().await;
                if status == StatusCode::TOO_MANY_REQUESTS {
                    // Sentry counts what it refuses with a 429 itself.
                    self.stats.lost(events, Loss::RateLimited, &status);
                } else if status.is_client_error() || status.is_server_error() {
                    self.record(&ledger, Reason::SendError);
                    self.stats.lost(events, Loss::SendError, &status);
                } else {
                    self.stats.sent(events);
                }
            }
            Err(error) => {
                self.record(&ledger, Reason::NetworkError);
                self.stats.lost(events, Loss::NetworkError, &error);
            }
        }
    }

    /// As the sentry crate's transports read them: `X-Sentry-Rate-Limits`
    /// first, else `Retry-After`, else a bare 429 (a minute).
    fn update_rate_limits(&self, headers: &HeaderMap, status: StatusCode) {
        let header = |name| headers.get(name).and_then(|value| value.to_str().ok());
        let mut limits = self
            .rate_limits
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let was_limited = limits.is_disabled(RateLimitingCategory::Error).is_some();
        if let Some(sentry_limits) = header("x-sentry-rate-limits") {
            limits.update_from_sentry_header(sentry_limits);
        } else if let Some(retry_after) = header(RETRY_AFTER.as_str()) {
            limits.update_from_retry_after(retry_after);
        } else if status == StatusCode::TOO_MANY_REQUESTS {
            limits.update_from_429();
        }
        if let Some(window) = limits.is_disabled(RateLimitingCategory::Error)
            && !was_limited
        {
            tracing::warn!(
                seconds = window.as_secs(),
                "Sentry rate-limited this service; errors are dropped until the limit ends"
            );
        }
    }

    fn record<L: sentry::protocol::client_report::LossSource>(&self, lost: &L, reason: Reason) {
        if let Some(recorder) = self.recorder.get() {
            recorder.record_lost_data(lost, reason);
        }
    }
}

/// An envelope as it waits in the queue: serialized and gzip'd, as Sentry's
/// SDKs post it, at about a tenth of its size in memory.
struct Queued {
    body: Vec<u8>,
    /// The envelope with each event replaced by an empty one: what a client
    /// report counts of it (an event is one error, whatever it holds) and the
    /// categories a rate limit may cover.
    ledger: Envelope,
    events: u64,
}

impl Queued {
    fn new(envelope: &Envelope) -> std::io::Result<Self> {
        let mut body = GzEncoder::new(Vec::new(), Compression::fast());
        envelope.to_writer(&mut body)?;
        let mut ledger = Envelope::new();
        for item in envelope.items() {
            match item {
                EnvelopeItem::Event(_) => ledger.add_item(Event::default()),
                other => ledger.add_item(other.clone()),
            }
        }
        Ok(Self {
            body: body.finish()?,
            ledger,
            events: error_events(envelope),
        })
    }

    /// The envelope itself, read back.
    fn envelope(&self) -> Result<Envelope, Box<dyn std::error::Error>> {
        let mut serialized = Vec::new();
        GzDecoder::new(self.body.as_slice()).read_to_end(&mut serialized)?;
        Ok(Envelope::from_slice(&serialized)?)
    }
}

/// The rate-limit category of an item, as the sentry crate maps them.
fn category(item: &EnvelopeItem) -> RateLimitingCategory {
    match item {
        EnvelopeItem::Event(_) => RateLimitingCategory::Error,
        EnvelopeItem::SessionUpdate(_) | EnvelopeItem::SessionAggregates(_) => {
            RateLimitingCategory::Session
        }
        EnvelopeItem::Transaction(_) => RateLimitingCategory::Transaction,
        EnvelopeItem::Attachment(_) => RateLimitingCategory::Attachment,
        EnvelopeItem::ItemContainer(ItemContainer::Logs(_)) => RateLimitingCategory::LogItem,
        EnvelopeItem::ItemContainer(ItemContainer::Metrics(_)) => RateLimitingCategory::TraceMetric,
        _ => RateLimitingCategory::Any,
    }
}

/// The error events an envelope carries (0 or 1 from the sentry client).
fn error_events(envelope: &Envelope) -> u64 {
    let events = envelope
        .items()
        .filter(|item| matches!(item, EnvelopeItem::Event(_)))
        .count();
    u64::try_from(events).unwrap_or(u64::MAX)
}

/// Sends the client's pending client report, if any, in an envelope of its
/// own. The sentry crate (0.49) only attaches client reports to envelopes
/// it sends anyway, so losses at the end of a storm would wait for the next
/// error. The client's `send_envelope` takes the lock that shutdown holds
/// while it flushes this transport, so it runs on a thread of its own, never
/// on the transport's.
fn send_pending_client_report() {
    let Some(client) = sentry::Hub::main().client() else {
        return;
    };
    let spawned = std::thread::Builder::new()
        .name("sentry-client-report".into())
        .spawn(move || client.send_envelope(Envelope::new()));
    if let Err(error) = spawned {
        tracing::debug!(%error, "cannot start the client report thread");
    }
}
