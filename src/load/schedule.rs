//! When each request goes out, and when the run ends.
//!
//! Open loop (the default): request `i` is scheduled at `start + i / rate`,
//! whatever happened to the requests before it, and its latency is measured
//! from that scheduled time. A server that stalls therefore shows its stall
//! in every request that queued behind it, instead of slowing the client
//! down and hiding it (coordinated omission). A ticker thread releases one
//! permit per scheduled request; the connections take permits in order. A
//! request sent more than [`LATE_AFTER`] behind its schedule, because every
//! connection was busy or the client itself was behind, is counted as late.
//!
//! Closed loop (`--concurrency C`): C connections each send the next request
//! as soon as the previous one answered; latency is measured from the send.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::mix::{Draw, Planned};

/// How far behind its scheduled time a request may be sent before it counts
/// as late. Above the wake-up jitter of a sleeping thread on a busy machine.
pub const LATE_AFTER: Duration = Duration::from_millis(1);
/// Longest the ticker sleeps at once, so that it notices a stop quickly.
const TICKER_NAP: Duration = Duration::from_millis(50);
/// Shortest the ticker sleeps, even when the next request is due sooner:
/// it then releases every request that fell due meanwhile at once. Waking
/// once per request cost more than the requests at high rates: at 40 000
/// req/s on one core, the ticker's wake-ups and the worker's switches left
/// the open loop at 37 000 while the closed loop reached 66 000. A request
/// released up to this much after its time still has its latency counted
/// from its schedule, and stays well under [`LATE_AFTER`].
const TICKER_MIN_NAP: Duration = Duration::from_micros(200);

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// A fixed rate, in requests per second.
    Open { rate: f64 },
    /// Each connection sends as soon as its previous request answered.
    Closed,
}

/// When the run ends, unless it is stopped first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Requests(u64),
    Duration(Duration),
    /// Until Ctrl-C or SIGTERM.
    Unlimited,
}

/// A request a connection has claimed.
#[derive(Debug)]
pub struct Slot {
    pub request: Planned,
    /// The open-loop send time; `None` in closed loop.
    pub scheduled: Option<Instant>,
}

/// The requests of one run, shared by every connection.
#[derive(Debug)]
pub struct Schedule {
    pace: Pace,
    start: Instant,
    /// Requests in an open-loop run, or `u64::MAX` when unbounded.
    planned: u64,
    /// Closed-loop runs with `--duration` end here.
    deadline: Option<Instant>,
    /// The next index and the generator, together: request `i` is always the
    /// `i`-th draw, whichever connection claims it.
    next: Mutex<(u64, Draw)>,
    /// Open loop: one permit per request that is due.
    due: Semaphore,
    stopped: AtomicBool,
}

impl Schedule {
    pub fn new(pace: Pace, limit: Limit, draw: Draw) -> Self {
        let start = Instant::now();
        let planned = match (pace, limit) {
            (_, Limit::Requests(count)) => count,
            (Pace::Open { rate }, Limit::Duration(duration)) => {
                // Every request whose scheduled time falls inside the run.
                let count = (duration.as_secs_f64() * rate).ceil();
                if count >= u64::MAX as f64 {
                    u64::MAX
                } else {
                    count as u64
                }
            }
            (Pace::Closed, Limit::Duration(_)) | (_, Limit::Unlimited) => u64::MAX,
        };
        let deadline = match (pace, limit) {
            (Pace::Closed, Limit::Duration(duration)) => start.checked_add(duration),
            _ => None,
        };
        Self {
            pace,
            start,
            planned,
            deadline,
            next: Mutex::new((0, draw)),
            due: Semaphore::new(0),
            stopped: AtomicBool::new(false),
        }
    }

    pub fn start(&self) -> Instant {
        self.start
    }

    /// Waits until the next request is due (open loop) and claims it. `None`
    /// once the run is over or stopped.
    pub async fn next(&self) -> Option<Slot> {
        match self.pace {
            Pace::Open { rate } => {
                // Permits are never returned: one permit, one request.
                self.due.acquire().await.ok()?.forget();
                let (index, request) = self.claim()?;
                let offset = Duration::from_secs_f64(index as f64 / rate);
                Some(Slot {
                    request,
                    scheduled: Some(self.start + offset),
                })
            }
            Pace::Closed => {
                if self
                    .deadline
                    .is_some_and(|deadline| Instant::now() >= deadline)
                {
                    return None;
                }
                let (_, request) = self.claim()?;
                Some(Slot {
                    request,
                    scheduled: None,
                })
            }
        }
    }

    fn claim(&self) -> Option<(u64, Planned)> {
        if self.is_stopped() {
            return None;
        }
        let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
        let (index, draw) = &mut *next;
        if *index >= self.planned {
            return None;
        }
        let claimed = *index;
        *index += 1;
        Some((claimed, draw.next()))
    }

    /// How many requests have been claimed so far.
    pub fn claimed(&self) -> u64 {
        self.next.lock().unwrap_or_else(PoisonError::into_inner).0
    }

    /// Ends the run early: nothing more is claimed, and connections waiting
    /// for a due request give up at once.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.due.close();
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Open loop only: starts the thread that releases requests as they fall
    /// due. A plain thread, not a Tokio timer, because Tokio's timer has a
    /// resolution of one millisecond, too coarse for rates in the thousands.
    ///
    /// `connections` is how many connections wait for permits: once every
    /// request is released, each gets one more permit so that it wakes,
    /// finds nothing left to claim, and ends.
    pub fn spawn_ticker(
        self: &Arc<Self>,
        connections: usize,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let schedule = Arc::clone(self);
        std::thread::Builder::new()
            .name("load-ticker".into())
            .spawn(move || schedule.release_due(connections))
    }

    fn release_due(&self, connections: usize) {
        let Pace::Open { rate } = self.pace else {
            return;
        };
        let mut released: u64 = 0;
        while !self.is_stopped() && released < self.planned {
            let elapsed = self.start.elapsed().as_secs_f64();
            // Request i is due at i / rate, so floor(elapsed * rate) + 1 are due now.
            let due = ((elapsed * rate).floor() as u64)
                .saturating_add(1)
                .min(self.planned);
            if due > released {
                let fresh = usize::try_from(due - released)
                    .unwrap_or(Semaphore::MAX_PERMITS)
                    .min(Semaphore::MAX_PERMITS - self.due.available_permits());
                self.due.add_permits(fresh);
                released = due;
            }
            let next_due = Duration::from_secs_f64(released as f64 / rate);
            let wait = next_due.saturating_sub(self.start.elapsed());
            std::thread::sleep(wait.clamp(TICKER_MIN_NAP, TICKER_NAP));
        }
        if !self.is_stopped() {
            self.due.add_permits(connections);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::mix::Mix;

    fn draw() -> Draw {
        Draw::new(&"healthz=1".parse::<Mix>().unwrap(), 1, 1)
    }

    #[tokio::test]
    async fn open_loop_schedules_at_fixed_intervals_and_ends_after_the_last() {
        let schedule = Arc::new(Schedule::new(
            Pace::Open { rate: 1000.0 },
            Limit::Requests(20),
            draw(),
        ));
        let ticker = schedule.spawn_ticker(1).unwrap();
        let mut scheduled = Vec::new();
        while let Some(slot) = schedule.next().await {
            scheduled.push(slot.scheduled.unwrap() - schedule.start());
        }
        ticker.join().unwrap();
        assert_eq!(scheduled.len(), 20);
        for (i, offset) in scheduled.iter().enumerate() {
            assert_eq!(*offset, Duration::from_secs_f64(i as f64 / 1000.0));
        }
    }

    #[tokio::test]
    async fn a_duration_plans_rate_times_duration_requests() {
        let schedule = Schedule::new(
            Pace::Open { rate: 40.0 },
            Limit::Duration(Duration::from_millis(250)),
            draw(),
        );
        assert_eq!(schedule.planned, 10);
    }

    #[tokio::test]
    async fn stop_wakes_connections_waiting_for_a_due_request() {
        let schedule = Arc::new(Schedule::new(
            Pace::Open { rate: 0.001 },
            Limit::Unlimited,
            draw(),
        ));
        let ticker = schedule.spawn_ticker(2).unwrap();
        // The first request is due at once, the next in 1000 s.
        assert!(schedule.next().await.is_some());
        let waiting = tokio::spawn({
            let schedule = Arc::clone(&schedule);
            async move { schedule.next().await.is_none() }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        schedule.stop();
        assert!(waiting.await.unwrap());
        ticker.join().unwrap();
    }

    #[tokio::test]
    async fn closed_loop_claims_until_the_count_is_reached() {
        let schedule = Schedule::new(Pace::Closed, Limit::Requests(3), draw());
        let mut claimed = 0;
        while let Some(slot) = schedule.next().await {
            assert!(slot.scheduled.is_none());
            claimed += 1;
        }
        assert_eq!(claimed, 3);
    }
}
