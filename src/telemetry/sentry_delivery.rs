//! Counts what becomes of every error reported to Sentry, and says so where a
//! user looks: a warning once per episode of loss, a `sentry delivery` line
//! with the running counts when they change (at most once a minute), and a
//! `sentry delivery summary` at shutdown. The transport records each loss
//! here and, with the sentry crate's recorder, as a client report, so the
//! same loss is also visible in Sentry's Stats page.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The `message` of the line with the running counts.
pub const DELIVERY_LINE: &str = "sentry delivery";
/// The `message` of the line with the counts at shutdown.
pub const DELIVERY_SUMMARY_LINE: &str = "sentry delivery summary";

/// Why an error event did not reach Sentry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// The transport's queue was full: Sentry took them slower than they came.
    QueueFull,
    /// Sentry answered 429, or the transport was backing off from one.
    RateLimited,
    /// No answer: connection refused, reset, or the request timed out.
    NetworkError,
    /// Sentry answered with another 4xx or 5xx.
    SendError,
}

impl Loss {
    const ALL: [Loss; 4] = [
        Loss::QueueFull,
        Loss::RateLimited,
        Loss::NetworkError,
        Loss::SendError,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// The counts since startup, shared by the capture path and the transport.
#[derive(Debug, Clone, Default)]
pub struct DeliveryStats {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Error events offered to the transport.
    offered: AtomicU64,
    /// Errors still resolving their stack trace, before the transport.
    handover: Mutex<Handover>,
    /// Accepted by Sentry.
    sent: AtomicU64,
    lost: [AtomicU64; Loss::ALL.len()],
    /// Envelopes, and the error events among them, in the transport's queue
    /// or in flight.
    pending: Mutex<Pending>,
    drained: Condvar,
    /// True from the first queue-full drop until the queue is empty again.
    queue_full: AtomicBool,
    /// True from the first failed send until one succeeds.
    failing: AtomicBool,
    /// The counts last written by [`DeliveryStats::log_if_changed`].
    last_logged: Mutex<Option<DeliveryCounts>>,
}

#[derive(Debug, Default)]
struct Handover {
    resolving: u64,
    /// Set by the summary: a resolution that ends later stays counted as
    /// still resolving, so the summary's counts are exact.
    closed: bool,
}

#[derive(Debug, Default, Clone, Copy)]
struct Pending {
    envelopes: u64,
    events: u64,
}

/// A snapshot of [`DeliveryStats`]: `reported = sent + lost + unsent`.
/// While the service runs, `unsent` are the errors on their way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryCounts {
    /// Offered to the transport, or still resolving their stack trace.
    pub reported: u64,
    pub sent: u64,
    pub queue_full: u64,
    pub rate_limited: u64,
    pub network_error: u64,
    pub send_error: u64,
    /// Neither sent nor lost (yet): still resolving, in the queue or in
    /// flight. At shutdown, never sent.
    pub unsent: u64,
}

impl DeliveryCounts {
    pub fn lost(&self) -> u64 {
        self.queue_full + self.rate_limited + self.network_error + self.send_error
    }
}

impl DeliveryStats {
    pub fn counts(&self) -> DeliveryCounts {
        let resolving = self.handover().resolving;
        self.counts_with(resolving)
    }

    /// The counts, with `resolving` errors not yet offered to the transport.
    /// An event is counted as offered before it can be sent or lost, so
    /// reading the outcomes first keeps `unsent` from going negative while
    /// events still move.
    fn counts_with(&self, resolving: u64) -> DeliveryCounts {
        let inner = &self.inner;
        let lost = |loss: Loss| inner.lost[loss.index()].load(Ordering::Relaxed);
        let mut counts = DeliveryCounts {
            reported: 0,
            sent: inner.sent.load(Ordering::Relaxed),
            queue_full: lost(Loss::QueueFull),
            rate_limited: lost(Loss::RateLimited),
            network_error: lost(Loss::NetworkError),
            send_error: lost(Loss::SendError),
            unsent: 0,
        };
        counts.reported = inner.offered.load(Ordering::Relaxed) + resolving;
        counts.unsent = counts.reported.saturating_sub(counts.sent + counts.lost());
        counts
    }

    /// An error started resolving its stack trace; [`Self::hand_over`]
    /// offers it to the transport.
    pub fn resolving(&self) {
        self.handover().resolving += 1;
    }

    /// Offers a resolved error to the transport with `offer`, unless the
    /// summary was already written: then it stays counted as unsent.
    pub fn hand_over(&self, offer: impl FnOnce()) {
        let mut handover = self.handover();
        if !handover.closed {
            offer();
            handover.resolving -= 1;
        }
    }

    /// An envelope with `events` error events entered the transport's queue.
    pub fn queued(&self, events: u64) {
        self.inner.offered.fetch_add(events, Ordering::Relaxed);
        let mut pending = self.pending();
        pending.envelopes += 1;
        pending.events += events;
    }

    /// A queued envelope with `events` error events reached Sentry.
    pub fn sent(&self, events: u64) {
        self.inner.sent.fetch_add(events, Ordering::Relaxed);
        if self.inner.failing.swap(false, Ordering::Relaxed) {
            tracing::info!("sentry delivery recovered");
        }
        self.settled(events);
    }

    /// `events` error events of a queued envelope were taken out of it by a
    /// rate limit in force; the rest of it goes on.
    pub fn filtered(&self, events: u64) {
        self.count_loss(events, Loss::RateLimited);
    }

    /// A queued envelope, with `events` error events, is lost for `loss`.
    pub fn lost(&self, events: u64, loss: Loss, cause: &dyn std::fmt::Display) {
        self.count_loss(events, loss);
        if matches!(loss, Loss::NetworkError | Loss::SendError)
            && !self.inner.failing.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                %cause,
                "sentry send failed; errors are lost until a send succeeds"
            );
        }
        self.settled(events);
    }

    /// An envelope with `events` error events, counted as queued, found no
    /// room in the queue.
    pub fn rejected(&self, events: u64, capacity: usize) {
        self.count_loss(events, Loss::QueueFull);
        {
            let mut pending = self.pending();
            pending.envelopes = pending.envelopes.saturating_sub(1);
            pending.events = pending.events.saturating_sub(events);
        }
        if !self.inner.queue_full.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                capacity,
                dropped_total = self.inner.lost[Loss::QueueFull.index()].load(Ordering::Relaxed),
                "sentry queue full; dropping errors until Sentry catches up"
            );
        }
    }

    /// Waits until no envelope is queued or in flight, or `timeout` passes;
    /// true if none is.
    pub fn wait_drained(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut pending = self.pending();
        while pending.envelopes > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            pending = self
                .inner
                .drained
                .wait_timeout(pending, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    /// Writes the `sentry delivery` line if errors were lost since the last
    /// one, so a reader of the logs (`somework verify`) sees the losses while
    /// the service runs, not only at shutdown; true if it did.
    pub fn log_if_changed(&self) -> bool {
        let counts = self.counts();
        let mut last = self
            .inner
            .last_logged
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.map(|last| last.lost()) == Some(counts.lost()) || counts.lost() == 0 {
            return false;
        }
        *last = Some(counts);
        drop(last);
        log_counts(&counts, DELIVERY_LINE);
        true
    }

    /// The shutdown line: what became of every error reported since startup.
    /// Errors that finish resolving after it are not offered any more.
    pub fn log_summary(&self) {
        let mut handover = self.handover();
        handover.closed = true;
        let counts = self.counts_with(handover.resolving);
        drop(handover);
        log_counts(&counts, DELIVERY_SUMMARY_LINE);
    }

    fn count_loss(&self, events: u64, loss: Loss) {
        self.inner.lost[loss.index()].fetch_add(events, Ordering::Relaxed);
    }

    /// A queued envelope, with `events` error events, is through.
    fn settled(&self, events: u64) {
        let mut pending = self.pending();
        pending.envelopes = pending.envelopes.saturating_sub(1);
        pending.events = pending.events.saturating_sub(events);
        if pending.envelopes == 0 {
            self.inner.queue_full.store(false, Ordering::Relaxed);
            self.inner.drained.notify_all();
        }
    }

    fn handover(&self) -> std::sync::MutexGuard<'_, Handover> {
        self.inner
            .handover
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        // A panic while holding it leaves plain numbers behind: still valid.
        self.inner
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn log_counts(counts: &DeliveryCounts, message: &'static str) {
    tracing::info!(
        errors.reported = counts.reported,
        errors.sent = counts.sent,
        errors.dropped.queue_full = counts.queue_full,
        errors.dropped.rate_limited = counts.rate_limited,
        errors.dropped.network_error = counts.network_error,
        errors.dropped.send_error = counts.send_error,
        errors.unsent = counts.unsent,
        "{message}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_queued_event_is_sent_lost_or_pending() {
        let stats = DeliveryStats::default();
        for _ in 0..6 {
            stats.resolving();
            stats.hand_over(|| stats.queued(1));
        }
        stats.rejected(1, 5);
        stats.sent(1);
        stats.sent(1);
        stats.lost(1, Loss::RateLimited, &"429");
        stats.lost(1, Loss::NetworkError, &"refused");
        let counts = stats.counts();
        assert_eq!(
            counts,
            DeliveryCounts {
                reported: 6,
                sent: 2,
                queue_full: 1,
                rate_limited: 1,
                network_error: 1,
                send_error: 0,
                unsent: 1,
            }
        );
        assert!(!stats.wait_drained(Duration::from_millis(10)));
        stats.sent(1);
        assert!(stats.wait_drained(Duration::ZERO));
    }

    #[test]
    fn an_error_resolved_after_the_summary_stays_unsent() {
        let stats = DeliveryStats::default();
        stats.resolving();
        stats.log_summary();
        stats.hand_over(|| panic!("offered after the summary"));
        let counts = stats.counts();
        assert_eq!((counts.reported, counts.unsent), (1, 1));
    }

    #[test]
    fn a_drained_queue_ends_the_queue_full_episode() {
        let stats = DeliveryStats::default();
        stats.queued(1);
        stats.rejected(1, 1);
        assert!(stats.inner.queue_full.load(Ordering::Relaxed));
        stats.sent(1);
        assert!(!stats.inner.queue_full.load(Ordering::Relaxed));
    }
}
