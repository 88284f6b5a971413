//! Retry delays for messages that failed with a retryable outcome. The delay becomes the
//! message's new visibility timeout, so it is bounded by what SQS accepts (12 hours).

use std::time::Duration;

use rand::Rng;

/// SQS refuses a visibility timeout above 12 hours.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);

/// Exponential backoff with full jitter, as data so it can be configured and property-tested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// Delay ceiling for the first retry (receive count 1); doubles per receive.
    pub base: Duration,
    /// Largest delay ever returned; clamped to 12 hours whatever is configured.
    pub cap: Duration,
}

impl BackoffPolicy {
    /// Production default: up to 2 s after the first failure, doubling to at most 15 minutes.
    pub const DEFAULT: Self = Self {
        base: Duration::from_secs(2),
        cap: Duration::from_secs(15 * 60),
    };
    /// For tests that must see several retries quickly.
    pub const FAST_TESTS: Self = Self {
        base: Duration::from_millis(10),
        cap: Duration::from_millis(100),
    };

    /// The effective cap: the configured one, never above 12 hours.
    pub fn effective_cap(&self) -> Duration {
        self.cap.min(MAX_VISIBILITY)
    }

    /// The upper bound of the jitter window for a receive count: `base * 2^(n-1)`, capped.
    /// A receive count of 0 (never produced by SQS) is treated as 1.
    pub fn ceiling(&self, receive_count: u32) -> Duration {
        let exponent = receive_count.max(1) - 1;
        let cap = self.effective_cap();
        if exponent >= 64 {
            return if self.base.is_zero() {
                Duration::ZERO
            } else {
                cap
            };
        }
        // Saturating u128 nanoseconds: large bases and counts end at the cap, never wrap.
        let exp = self.base.as_nanos().saturating_mul(1u128 << exponent);
        let capped = exp.min(cap.as_nanos());
        Duration::from_nanos(u64::try_from(capped).unwrap_or(u64::MAX))
    }

    /// Full jitter: uniform in `[0, ceiling(receive_count)]`.
    pub fn delay<R: Rng + ?Sized>(&self, receive_count: u32, rng: &mut R) -> Duration {
        let ceiling = self.ceiling(receive_count);
        // 12 h in nanoseconds fits in u64 with room to spare.
        let max_nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rng.random_range(0..=max_nanos))
    }

    /// The delay for a retry: a handler's retry-after hint wins (up to the cap); otherwise
    /// [`Self::delay`].
    pub fn delay_with_hint<R: Rng + ?Sized>(
        &self,
        receive_count: u32,
        hint: Option<Duration>,
        rng: &mut R,
    ) -> Duration {
        match hint {
            Some(h) => h.min(self.effective_cap()),
            None => self.delay(receive_count, rng),
        }
    }
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn policy() -> impl Strategy<Value = BackoffPolicy> {
        (0u64..100_000_000_000, 0u64..200_000_000_000_000).prop_map(|(base, cap)| BackoffPolicy {
            base: Duration::from_nanos(base),
            cap: Duration::from_nanos(cap),
        })
    }

    proptest! {
        #[test]
        fn delay_stays_within_the_jitter_window(p in policy(), n in 0u32..200, seed: u64) {
            let mut rng = StdRng::seed_from_u64(seed);
            let d = p.delay(n, &mut rng);
            let exp = p.base.as_nanos().saturating_mul(2u128.saturating_pow(n.max(1) - 1));
            prop_assert!(d <= p.cap);
            prop_assert!(d <= MAX_VISIBILITY);
            prop_assert!(d.as_nanos() <= exp);
        }

        #[test]
        fn ceiling_doubles_until_the_cap(p in policy(), n in 1u32..40) {
            let a = p.ceiling(n);
            let b = p.ceiling(n + 1);
            prop_assert!(b >= a);
            if b < p.effective_cap() {
                prop_assert_eq!(b, a * 2);
            }
        }

        #[test]
        fn hint_wins_up_to_the_cap(p in policy(), n in 0u32..50, hint_ms in 0u64..100_000_000, seed: u64) {
            let mut rng = StdRng::seed_from_u64(seed);
            let hint = Duration::from_millis(hint_ms);
            let d = p.delay_with_hint(n, Some(hint), &mut rng);
            prop_assert_eq!(d, hint.min(p.cap).min(MAX_VISIBILITY));
        }
    }

    #[test]
    fn jitter_is_spread_over_the_window_not_constant() {
        let p = BackoffPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
        };
        let mut rng = StdRng::seed_from_u64(7);
        let samples: Vec<Duration> = (0..200).map(|_| p.delay(4, &mut rng)).collect();
        let max = samples.iter().max().copied().unwrap();
        let min = samples.iter().min().copied().unwrap();
        assert!(max <= Duration::from_secs(8));
        assert!(max > Duration::from_secs(6), "{max:?}");
        assert!(min < Duration::from_secs(2), "{min:?}");
    }

    #[test]
    fn a_huge_cap_is_clamped_to_twelve_hours() {
        let p = BackoffPolicy {
            base: Duration::from_secs(3600),
            cap: Duration::from_secs(48 * 3600),
        };
        assert_eq!(p.ceiling(30), MAX_VISIBILITY);
        assert_eq!(
            p.delay_with_hint(1, Some(Duration::from_secs(100 * 3600)), &mut rand::rng()),
            MAX_VISIBILITY
        );
    }
}
