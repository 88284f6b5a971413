//! Per-destination rate limit: a GCRA token bucket (`rate` per second, `burst` at once) per
//! destination, on tokio's clock so tests can pause time.
//!
//! A caller asks for a slot: when one is free within `max_wait` the slot is reserved and the
//! caller sleeps until it (the notification is delayed, not dropped); otherwise nothing is
//! reserved and the caller defers the message for the returned time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    tolerance: Duration,
    max_wait: Duration,
    /// Theoretical arrival time of the next slot, per destination key.
    tat: Mutex<HashMap<String, Instant>>,
}

/// The limiter's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Reserved; send after waiting this long (zero: now).
    After(Duration),
    /// Not reserved: the next slot is further away than the allowed wait.
    Defer(Duration),
}

impl RateLimiter {
    /// `rate` notifications per second (> 0), `burst` (≥ 1) at once.
    pub fn new(rate_per_sec: f64, burst: u32, max_wait: Duration) -> Self {
        let rate = if rate_per_sec.is_finite() && rate_per_sec > 0.0 {
            rate_per_sec
        } else {
            1.0
        };
        let interval = Duration::from_secs_f64(1.0 / rate);
        Self {
            interval,
            tolerance: interval * burst.max(1).saturating_sub(1),
            max_wait,
            tat: Mutex::new(HashMap::new()),
        }
    }

    /// Ask for a slot for `destination` now.
    pub fn slot(&self, destination: &str) -> Slot {
        let now = Instant::now();
        let mut map = self.tat.lock().unwrap_or_else(|e| e.into_inner());
        let tat = map.get(destination).copied().unwrap_or(now).max(now);
        let earliest = tat.checked_sub(self.tolerance).unwrap_or(now).max(now);
        let wait = earliest - now;
        if wait > self.max_wait {
            return Slot::Defer(wait);
        }
        map.insert(destination.to_string(), tat + self.interval);
        Slot::After(wait)
    }

    /// Give back a reserved slot that was not used (the publish did not happen).
    pub fn release(&self, destination: &str) {
        let mut map = self.tat.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = map.get_mut(destination) {
            *t = t.checked_sub(self.interval).unwrap_or(*t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_goes_at_once_then_slots_are_spaced_and_far_ones_deferred() {
        let rl = RateLimiter::new(2.0, 3, Duration::from_secs(1));
        for _ in 0..3 {
            assert_eq!(rl.slot("t"), Slot::After(Duration::ZERO));
        }
        assert_eq!(rl.slot("t"), Slot::After(Duration::from_millis(500)));
        assert_eq!(rl.slot("t"), Slot::After(Duration::from_millis(1000)));
        assert_eq!(rl.slot("t"), Slot::Defer(Duration::from_millis(1500)));
        // Another destination has its own bucket.
        assert_eq!(rl.slot("u"), Slot::After(Duration::ZERO));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(rl.slot("t"), Slot::After(Duration::ZERO));
    }
}
