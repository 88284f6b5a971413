//! Liveness and readiness of one run, behind `/health/live` and `/health/ready`. Plain state,
//! not metrics: `fleet_up` is derived from it when metrics are rendered.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use tokio::time::Instant;

/// Liveness and readiness. Liveness fails when no receive call has completed for longer than
/// the stall threshold while a poller was free to receive (waiting for a free handler slot is
/// not a stall: long handlers are normal) and the runtime is not shutting down.
#[derive(Debug)]
pub struct Health {
    start: Instant,
    /// Milliseconds since `start` of the last completed receive (or of the end of a wait for
    /// handler slots).
    last_progress_ms: AtomicU64,
    waiting_for_slots: AtomicUsize,
    shutting_down: AtomicBool,
    ready: AtomicBool,
    threshold: Duration,
}

impl Health {
    /// `threshold` is `3 × wait_time + grace`.
    pub fn new(threshold: Duration) -> Self {
        Self {
            start: Instant::now(),
            last_progress_ms: AtomicU64::new(0),
            waiting_for_slots: AtomicUsize::new(0),
            shutting_down: AtomicBool::new(false),
            ready: AtomicBool::new(false),
            threshold,
        }
    }

    pub fn progress(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_progress_ms.fetch_max(ms, Relaxed);
    }

    pub fn waiting_for_slots(&self, waiting: bool) {
        if waiting {
            self.waiting_for_slots.fetch_add(1, Relaxed);
        } else {
            self.waiting_for_slots.fetch_sub(1, Relaxed);
            self.progress();
        }
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Relaxed);
    }

    pub fn set_shutting_down(&self) {
        self.shutting_down.store(true, Relaxed);
        self.ready.store(false, Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Relaxed)
    }

    pub fn is_live(&self) -> bool {
        if self.shutting_down.load(Relaxed) || self.waiting_for_slots.load(Relaxed) > 0 {
            return true;
        }
        let since = Duration::from_millis(self.last_progress_ms.load(Relaxed));
        self.start.elapsed().saturating_sub(since) <= self.threshold
    }
}
