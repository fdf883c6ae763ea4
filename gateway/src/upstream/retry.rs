//! When a failed upstream attempt is sent again: a rule's `retry` policy (GEP-1731), bounded.
//!
//! Pure decisions; the proxy phases feed them what happened and act on the answer. What may be
//! retried at all (a body that can be replayed, no response sent yet, time left before the
//! route's request timeout) is the caller's to check: see `docs/request-lifecycle.md`.

use std::time::Duration;

use sluice_controller::snapshot::RetryPolicy;

/// Retries allowed to any one request, whatever a route asks for: a route cannot turn one
/// client request into an unbounded burst on its backends.
pub const DEFAULT_MAX_RETRIES: u32 = 10;
/// Retries of a rule whose `retry` gives no `attempts` (Envoy's default too).
pub const DEFAULT_RETRIES: u32 = 1;
/// The first wait of a rule whose `retry` gives no `backoff` (Envoy's default base interval).
pub const DEFAULT_BACKOFF: Duration = Duration::from_millis(25);
/// Waits double per retry up to this many times the first one, as Envoy's do.
const MAX_BACKOFF_FACTOR: u32 = 10;

/// The data plane's bounds and defaults for rule retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySettings {
    /// Most retries of one request; a route's larger `attempts` is cut to this.
    pub max_retries: u32,
    /// Retries when a rule's `retry` sets no `attempts`.
    pub default_retries: u32,
    /// First wait when a rule's `retry` sets no `backoff`.
    pub default_backoff: Duration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            max_retries: DEFAULT_MAX_RETRIES,
            default_retries: DEFAULT_RETRIES,
            default_backoff: DEFAULT_BACKOFF,
        }
    }
}

/// How an attempt failed, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The backend answered with this status (nothing of it has been sent to the client).
    Status(u16),
    /// No response: the connection was refused, reset or closed before a response head.
    Connection,
    /// The rule's `timeouts.backendRequest` ran out before a response head.
    BackendTimeout,
}

impl Failure {
    /// The `reason` label of `sluice_upstream_retries_total` and of the retry log line.
    pub fn reason(self) -> &'static str {
        match self {
            Failure::Status(_) => "status",
            Failure::Connection => "connection_error",
            Failure::BackendTimeout => "backend_timeout",
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Send the request again after waiting this long.
    Retry { wait: Duration },
    /// The policy would retry this failure, but its retries are used up.
    Exhausted,
    /// The policy does not retry this failure.
    NotRetried,
}

/// Whether a request that has had `retries_done` retries is sent again after `failure`.
/// Connection errors and backendRequest timeouts are retried under any policy (the
/// HTTPRouteRetryConnectionError and HTTPRouteRetryBackendTimeout features); statuses only
/// when listed in `codes`.
pub fn decide(
    policy: &RetryPolicy,
    settings: &RetrySettings,
    retries_done: u32,
    failure: Failure,
) -> Decision {
    let retried = match failure {
        Failure::Status(code) => policy.retries_status(code),
        Failure::Connection | Failure::BackendTimeout => true,
    };
    if !retried {
        return Decision::NotRetried;
    }
    let allowed = policy
        .attempts
        .unwrap_or(settings.default_retries)
        .min(settings.max_retries);
    if retries_done >= allowed {
        return Decision::Exhausted;
    }
    let first = policy.backoff.unwrap_or(settings.default_backoff);
    Decision::Retry {
        wait: backoff(first, retries_done),
    }
}

/// The wait before retry number `retries_done + 1`: `first`, doubling per retry, at most ten
/// times `first`. Never less than `first`, as the spec requires of `backoff`.
pub fn backoff(first: Duration, retries_done: u32) -> Duration {
    let factor = 1u32
        .checked_shl(retries_done)
        .unwrap_or(u32::MAX)
        .min(MAX_BACKOFF_FACTOR);
    first.saturating_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(codes: &[u16], attempts: Option<u32>, backoff: Option<u64>) -> RetryPolicy {
        RetryPolicy {
            codes: codes.to_vec(),
            attempts,
            backoff: backoff.map(Duration::from_millis),
        }
    }

    #[test]
    fn listed_statuses_retry_until_attempts_are_used_up() {
        let p = policy(&[500, 503], Some(2), Some(100));
        let s = RetrySettings::default();
        let ms = Duration::from_millis;
        assert_eq!(
            decide(&p, &s, 0, Failure::Status(500)),
            Decision::Retry { wait: ms(100) }
        );
        assert_eq!(
            decide(&p, &s, 1, Failure::Status(503)),
            Decision::Retry { wait: ms(200) }
        );
        assert_eq!(decide(&p, &s, 2, Failure::Status(500)), Decision::Exhausted);
        assert_eq!(
            decide(&p, &s, 0, Failure::Status(502)),
            Decision::NotRetried
        );
    }

    #[test]
    fn connection_errors_and_backend_timeouts_retry_without_codes() {
        let p = policy(&[], Some(1), None);
        let s = RetrySettings::default();
        for f in [Failure::Connection, Failure::BackendTimeout] {
            assert_eq!(
                decide(&p, &s, 0, f),
                Decision::Retry {
                    wait: DEFAULT_BACKOFF
                }
            );
            assert_eq!(decide(&p, &s, 1, f), Decision::Exhausted);
        }
    }

    #[test]
    fn attempts_default_and_are_capped_by_the_settings() {
        let s = RetrySettings {
            max_retries: 3,
            ..RetrySettings::default()
        };
        let unset = policy(&[], None, None);
        assert_eq!(
            decide(&unset, &s, DEFAULT_RETRIES, Failure::Connection),
            Decision::Exhausted
        );
        let many = policy(&[], Some(50), None);
        assert!(matches!(
            decide(&many, &s, 2, Failure::Connection),
            Decision::Retry { .. }
        ));
        assert_eq!(
            decide(&many, &s, 3, Failure::Connection),
            Decision::Exhausted
        );
    }

    #[test]
    fn backoff_doubles_up_to_ten_times_the_first_wait() {
        let first = Duration::from_millis(10);
        let waits: Vec<u128> = (0..6).map(|n| backoff(first, n).as_millis()).collect();
        assert_eq!(waits, vec![10, 20, 40, 80, 100, 100]);
        assert_eq!(backoff(first, 40), Duration::from_millis(100));
    }
}
