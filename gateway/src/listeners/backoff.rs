//! How long an address that failed to bind waits before the next try.

use std::time::Duration;

/// Doubles from `base` after each failed bind, never above `cap`; an address that binds forgets
/// its failures. A port held by another process is usually freed in seconds (a restart) or not
/// for a long time (a misconfiguration), so retries start quick and then stop costing anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindBackoff {
    pub base: Duration,
    pub cap: Duration,
}

impl BindBackoff {
    pub const DEFAULT_BASE: Duration = Duration::from_millis(250);
    pub const DEFAULT_CAP: Duration = Duration::from_secs(30);

    /// The wait after `failures` failed binds in a row (the first failure is 1).
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.base
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.cap)
            .min(self.cap)
    }
}

impl Default for BindBackoff {
    fn default() -> BindBackoff {
        BindBackoff {
            base: Self::DEFAULT_BASE,
            cap: Self::DEFAULT_CAP,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl BindBackoff {
        fn between(base: Duration, cap: Duration) -> BindBackoff {
            BindBackoff { base, cap }
        }
    }

    #[test]
    fn the_wait_doubles_from_the_base_up_to_the_cap() {
        let backoff = BindBackoff::default();
        let waits: Vec<Duration> = (1..=10).map(|n| backoff.delay(n)).collect();
        let ms = |v: u64| Duration::from_millis(v);
        assert_eq!(
            waits,
            [
                ms(250),
                ms(500),
                ms(1_000),
                ms(2_000),
                ms(4_000),
                ms(8_000),
                ms(16_000),
                ms(30_000),
                ms(30_000),
                ms(30_000)
            ]
        );
    }

    #[test]
    fn a_long_outage_never_overflows_past_the_cap() {
        let backoff = BindBackoff::between(Duration::from_secs(1), Duration::from_secs(5));
        assert_eq!(backoff.delay(0), Duration::from_secs(1));
        assert_eq!(backoff.delay(40), Duration::from_secs(5));
        assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn a_cap_below_the_base_is_the_wait() {
        let backoff = BindBackoff::between(Duration::from_secs(1), Duration::from_millis(100));
        assert_eq!(backoff.delay(1), Duration::from_millis(100));
    }
}
