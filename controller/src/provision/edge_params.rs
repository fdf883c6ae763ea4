//! The edge keys of the class parameters: `sluice proxy` limit and drain flags for every data plane.
//!
//! They match `gateway/src/cli/edge_args.rs` one to one (see docs/hardening.md). Values are
//! checked here as that parser checks them, so a bad value is the class's `InvalidParameters`
//! condition rather than a data plane that crash-loops on its flags.

use std::time::Duration;

use super::params::ParamsError;
use crate::translate::duration;

/// The keys [`EdgeParams::set`] knows, with their flag and what their value must be.
const KEYS: &[(&str, &str, Kind)] = &[
    (
        "maxRequestLineBytes",
        "--max-request-line-bytes",
        Kind::Count(64),
    ),
    ("maxHeaderBytes", "--max-header-bytes", Kind::Count(256)),
    ("maxHeaderFields", "--max-header-fields", Kind::Count(1)),
    ("maxConnections", "--max-connections", Kind::Count(1)),
    (
        "clientHeaderTimeout",
        "--client-header-timeout",
        Kind::Duration,
    ),
    ("clientBodyTimeout", "--client-body-timeout", Kind::Duration),
    ("keepaliveTimeout", "--keepalive-timeout", Kind::Duration),
    ("drainDelay", "--drain-delay", Kind::DurationOrZero),
    ("shutdownGrace", "--shutdown-grace", Kind::Duration),
    // Bounds of HTTPRoute rule retries (gateway/src/cli/retry_args.rs).
    ("maxRetries", "--max-retries", Kind::Count(0)),
    ("defaultRetries", "--default-retries", Kind::Count(0)),
    (
        "defaultRetryBackoff",
        "--default-retry-backoff",
        Kind::Duration,
    ),
    // Streams on TLS listeners (gateway/src/cli/tls_route_args.rs).
    (
        "tlsRouteConnectTimeout",
        "--tls-route-connect-timeout",
        Kind::Duration,
    ),
    (
        "tlsRouteIdleTimeout",
        "--tls-route-idle-timeout",
        Kind::Duration,
    ),
];

/// Provisioned pods wait this long after SIGTERM, not ready but accepting, so the Service's
/// endpoints drop them before they stop accepting.
pub const DEFAULT_DRAIN_DELAY: Duration = Duration::from_secs(5);
/// Matches `sluice proxy`'s own default.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Slack between the end of the shutdown grace and the kubelet's SIGKILL.
const KILL_SLACK: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A whole number at least this.
    Count(u32),
    Duration,
    DurationOrZero,
}

/// Edge settings for the data planes of a class, as `(key, value)` in [`KEYS`] order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EdgeParams {
    values: Vec<(&'static str, String)>,
    drain_delay: Option<Duration>,
    shutdown_grace: Option<Duration>,
}

/// The names of the edge keys, for error messages.
pub fn key_names() -> Vec<&'static str> {
    KEYS.iter().map(|(k, _, _)| *k).collect()
}

impl EdgeParams {
    /// Takes `key` if it is an edge key; `Ok(false)` for any other key.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, ParamsError> {
        let Some(&(name, _, kind)) = KEYS.iter().find(|(k, _, _)| *k == key) else {
            return Ok(false);
        };
        match kind {
            Kind::Count(min) => {
                let ok = value.parse::<u32>().is_ok_and(|n| n >= min);
                if !ok {
                    return Err(ParamsError::Invalid {
                        key: name,
                        expected: "a whole number within the flag's range (see docs/hardening.md)",
                        value: value.into(),
                    });
                }
            }
            Kind::Duration | Kind::DurationOrZero => {
                let parsed =
                    duration::parse(value).filter(|d| kind == Kind::DurationOrZero || !d.is_zero());
                let Some(parsed) = parsed else {
                    return Err(ParamsError::Invalid {
                        key: name,
                        expected: "a Gateway API duration such as 10s or 500ms",
                        value: value.into(),
                    });
                };
                match name {
                    "drainDelay" => self.drain_delay = Some(parsed),
                    "shutdownGrace" => self.shutdown_grace = Some(parsed),
                    _ => {}
                }
            }
        }
        self.values.retain(|(k, _)| *k != name);
        self.values.push((name, value.to_string()));
        self.values
            .sort_by_key(|(k, _)| KEYS.iter().position(|(key, _, _)| key == k));
        Ok(true)
    }

    /// The `sluice proxy` flags, in a stable order (a change of order would roll the pods).
    /// The drain delay is always given: a pod must outlast its endpoint's removal.
    pub fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = self
            .values
            .iter()
            .filter(|(k, _)| *k != "drainDelay")
            .filter_map(|(k, v)| {
                let flag = KEYS.iter().find(|(key, _, _)| key == k)?.1;
                Some(format!("{flag}={v}"))
            })
            .collect();
        args.push(format!(
            "--drain-delay={}ms",
            self.drain_delay().as_millis()
        ));
        args
    }

    /// The `drainDelay` key: how long the proxy keeps accepting after SIGTERM; 5 s when unset.
    pub fn drain_delay(&self) -> Duration {
        self.drain_delay.unwrap_or(DEFAULT_DRAIN_DELAY)
    }

    /// The pod's `terminationGracePeriodSeconds`: the drain delay, the shutdown grace and a
    /// little slack, so the kubelet never kills a pod that is still draining.
    pub fn termination_grace_seconds(&self) -> i64 {
        let grace = self.shutdown_grace.unwrap_or(DEFAULT_SHUTDOWN_GRACE);
        let total = self.drain_delay() + grace + KILL_SLACK;
        i64::try_from(total.as_secs() + u64::from(total.subsec_nanos() > 0)).unwrap_or(i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_flags_in_a_stable_order() {
        let mut p = EdgeParams::default();
        assert!(p.set("shutdownGrace", "45s").expect("valid"));
        assert!(p.set("maxHeaderBytes", "32768").expect("valid"));
        assert!(p.set("clientHeaderTimeout", "2s").expect("valid"));
        assert!(p.set("drainDelay", "0s").expect("zero is fine"));
        assert!(p.set("maxRetries", "0").expect("zero turns retries off"));
        assert!(p.set("tlsRouteIdleTimeout", "10m").expect("valid"));
        assert!(!p.set("mirrorTimeoutMs", "5").expect("not an edge key"));
        assert_eq!(
            p.args(),
            [
                "--max-header-bytes=32768",
                "--client-header-timeout=2s",
                "--shutdown-grace=45s",
                "--max-retries=0",
                "--tls-route-idle-timeout=10m",
                "--drain-delay=0ms",
            ]
        );
        assert_eq!(p.termination_grace_seconds(), 50);
    }

    #[test]
    fn defaults_drain_for_five_seconds_and_allow_the_whole_grace() {
        let p = EdgeParams::default();
        assert_eq!(p.args(), ["--drain-delay=5000ms"]);
        assert_eq!(p.termination_grace_seconds(), 40);
    }

    #[test]
    fn bad_values_are_invalid_parameters() {
        for (key, value) in [
            ("maxHeaderBytes", "12"),
            ("maxConnections", "0"),
            ("maxConnections", "-1"),
            ("clientBodyTimeout", "0s"),
            ("keepaliveTimeout", "60"),
            ("drainDelay", "soon"),
            ("maxRetries", "-1"),
            ("defaultRetryBackoff", "0s"),
            ("tlsRouteIdleTimeout", "0s"),
            ("tlsRouteConnectTimeout", "5"),
        ] {
            let err = EdgeParams::default().set(key, value).expect_err(key);
            assert!(err.to_string().contains(key), "{err}");
        }
    }
}
