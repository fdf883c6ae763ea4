//! The retry pace of a task whose API requests fail: doubling waits, capped, reset on success.

use std::time::Duration;

/// Doubles the wait after each failed request, up to [`Backoff::MAX`]; the base on success.
pub(crate) struct Backoff {
    base: Duration,
    current: Duration,
}

impl Backoff {
    pub(crate) const MAX: Duration = Duration::from_secs(30);

    pub(crate) fn new(base: Duration) -> Backoff {
        Backoff {
            base,
            current: base,
        }
    }

    pub(crate) fn next(&mut self) -> Duration {
        let wait = self.current;
        self.current = (self.current * 2).min(Self::MAX.max(self.base));
        wait
    }

    pub(crate) fn reset(&mut self) -> Duration {
        self.current = self.base;
        self.base
    }
}
