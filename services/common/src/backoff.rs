//! Capped exponential backoff with jitter: the one retry policy of the
//! services (registering with GC, the first JWKS fetch, connecting to
//! PostgreSQL and Redis at start).

use std::ops::RangeInclusive;
use std::time::Duration;

use rand::Rng;

/// Delays doubling from `initial` up to `max`, each multiplied by a random
/// factor from `jitter` so that a fleet restarted together does not retry in
/// lockstep.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    /// Factor range applied to every delay; `1.0..=1.0` is no jitter.
    pub jitter: RangeInclusive<f64>,
}

impl Backoff {
    /// Doubling from `initial` up to `max`, without jitter.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            jitter: 1.0..=1.0,
        }
    }

    /// The same backoff with every delay multiplied by a factor from `jitter`
    /// (e.g. `0.8..=1.2` for ±20 %).
    #[must_use]
    pub fn with_jitter(mut self, jitter: RangeInclusive<f64>) -> Self {
        self.jitter = jitter;
        self
    }

    /// The delay before retry number `attempt` (0-based) without jitter:
    /// `initial × 2^attempt`, at most `max`.
    pub fn base(&self, attempt: u32) -> Duration {
        self.initial
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.max)
    }

    /// The delay before retry number `attempt` (0-based), jitter included.
    pub fn delay(&self, attempt: u32) -> Duration {
        let (low, high) = (*self.jitter.start(), *self.jitter.end());
        let factor = if low < high {
            rand::thread_rng().gen_range(low..=high)
        } else {
            low
        };
        self.base(attempt).mul_f64(factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_and_caps_without_jitter() {
        let b = Backoff::new(Duration::from_millis(200), Duration::from_secs(2));
        let delays: Vec<u128> = (0..6).map(|a| b.delay(a).as_millis()).collect();
        assert_eq!(delays, [200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(2));
    }

    #[test]
    fn jitter_stays_in_its_range() {
        let b =
            Backoff::new(Duration::from_millis(100), Duration::from_secs(2)).with_jitter(0.8..=1.2);
        for _ in 0..50 {
            let d0 = b.delay(0).as_secs_f64();
            assert!((0.08..=0.12).contains(&d0), "{d0}");
            let d3 = b.delay(3).as_secs_f64();
            assert!((0.64..=0.96).contains(&d3), "{d3}");
            let big = b.delay(40).as_secs_f64();
            assert!((1.6..=2.4).contains(&big), "{big}");
        }
    }
}
