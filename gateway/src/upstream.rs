//! Backend choice (weighted, then round-robin over ready endpoints) and the Pingora peer for it.

mod early_answer;
pub mod relay;
pub mod retry;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pingora_core::upstreams::peer::HttpPeer;
use rand::Rng;
use rustls::sign::CertifiedKey;
use sluice_controller::snapshot::{
    Backend, BackendProtocol, BackendTarget, BackendTlsMode, RuleAction,
};

pub use early_answer::UpstreamConn;
pub use tls::TlsOrigin;

/// Pingora's default is 128. When more requests than that end together, the pool closes the
/// surplus and the next burst connects again: the mirror pool, sized the same, did exactly
/// that to mirrored GETs over 200 client connections (docs/benchmarks.md). An idle connection
/// costs a socket and a small task.
pub const DEFAULT_POOL_SIZE: usize = 1024;

/// How to reach backends; the defaults suit an in-cluster gateway.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// TCP connect, per attempt.
    pub connect_timeout: Duration,
    /// Longest wait for any one read from a backend when the route sets no timeout.
    pub read_timeout: Duration,
    /// Longest wait for any one write to a backend.
    pub write_timeout: Duration,
    /// How long an unused keep-alive connection stays in Pingora's pool.
    pub idle_timeout: Duration,
    /// Idle keep-alive connections Pingora's pool keeps, all backends together.
    pub pool_size: usize,
    /// Concurrent streams on one h2c connection.
    pub max_h2_streams: usize,
    /// Bounds and defaults of rule `retry` policies.
    pub retry: retry::RetrySettings,
    /// The relays through which TLS connections to backends are pooled (shared with mirrors).
    pub tls_relays: Arc<relay::RelayRegistry>,
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        UpstreamSettings {
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            pool_size: DEFAULT_POOL_SIZE,
            max_h2_streams: 100,
            retry: retry::RetrySettings::default(),
            tls_relays: Arc::default(),
        }
    }
}

/// The backend a request goes to.
#[derive(Debug, Clone)]
pub struct Chosen {
    /// Index into the rule's `backends`, to find that backendRef's filters again later.
    pub index: usize,
    pub backend: Arc<Backend>,
    pub endpoint: SocketAddr,
}

/// Why no endpoint could be chosen; each maps to the status the spec asks for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoBackend {
    #[error("the rule has no backend with a non-zero weight")]
    NoBackends,
    #[error("the chosen backendRef is invalid: {reason}")]
    Invalid { index: usize, reason: String },
    #[error("backend {backend} has no ready endpoints")]
    NoEndpoints { index: usize, backend: String },
}

impl NoBackend {
    /// 500 for a rule without usable backendRefs or an invalid one (in proportion to its weight),
    /// 503 for a Service that simply has no ready endpoints right now.
    pub fn status(&self) -> u16 {
        match self {
            NoBackend::NoBackends | NoBackend::Invalid { .. } => 500,
            NoBackend::NoEndpoints { .. } => 503,
        }
    }

    /// The backendRef index that was chosen, when one was.
    pub fn index(&self) -> Option<usize> {
        match self {
            NoBackend::NoBackends => None,
            NoBackend::Invalid { index, .. } | NoBackend::NoEndpoints { index, .. } => Some(*index),
        }
    }
}

/// Weighted choice among the rule's backendRefs, then an endpoint of the chosen Service.
pub fn choose(action: &RuleAction, rng: &mut impl Rng) -> Result<Chosen, NoBackend> {
    choose_under(action, rng, true)
}

/// [`choose`] for a stream whose TLS is the client's own (TLSRoute passthrough): a backend's
/// BackendTLSPolicy has nothing to apply to, so an invalid one does not refuse it.
pub fn choose_passthrough(action: &RuleAction, rng: &mut impl Rng) -> Result<Chosen, NoBackend> {
    choose_under(action, rng, false)
}

fn choose_under(
    action: &RuleAction,
    rng: &mut impl Rng,
    policy_applies: bool,
) -> Result<Chosen, NoBackend> {
    let total = u64::from(action.total_weight());
    if total == 0 {
        return Err(NoBackend::NoBackends);
    }
    let weights = action.backends.iter().map(|b| b.weight);
    let index = pick_weighted(weights, rng.random_range(0..total)).ok_or(NoBackend::NoBackends)?;
    let Some(weighted) = action.backends.get(index) else {
        return Err(NoBackend::NoBackends);
    };
    match &weighted.target {
        BackendTarget::Invalid { reason } => Err(NoBackend::Invalid {
            index,
            reason: reason.clone(),
        }),
        // An invalid BackendTLSPolicy: nothing goes to the backend, in clear or unverified.
        BackendTarget::Service(backend) if policy_applies && is_refused(backend) => {
            Err(NoBackend::Invalid {
                index,
                reason: format!("{}: its BackendTLSPolicy is not valid", backend.name),
            })
        }
        BackendTarget::Service(backend) => match backend.pick_endpoint() {
            Some(endpoint) => Ok(Chosen {
                index,
                backend: backend.clone(),
                endpoint,
            }),
            None => Err(NoBackend::NoEndpoints {
                index,
                backend: backend.name.clone(),
            }),
        },
    }
}

/// Whether the backend's BackendTLSPolicy is invalid, so nothing may be sent to it.
pub fn is_refused(backend: &Backend) -> bool {
    matches!(backend.tls, Some(BackendTlsMode::Refuse { .. }))
}

/// The index whose cumulative weight range holds `roll` (`0 <= roll < total`); a weight of 0
/// owns an empty range and is never chosen.
pub fn pick_weighted(weights: impl Iterator<Item = u32>, roll: u64) -> Option<usize> {
    let mut upper = 0u64;
    for (i, w) in weights.enumerate() {
        upper += u64::from(w);
        if roll < upper {
            return Some(i);
        }
    }
    None
}

/// A peer for one endpoint. `timeout` is the time left for this attempt (the smaller of the
/// route's backendRequest timeout and what remains of its request timeout): it bounds the
/// connect and every read and write, so a backend that stalls longer fails the attempt.
/// `client_certificate` is presented when the backend is reached over TLS.
pub fn peer(
    backend: &Backend,
    endpoint: SocketAddr,
    timeout: Option<Duration>,
    settings: &UpstreamSettings,
    client_certificate: Option<&Arc<CertifiedKey>>,
) -> HttpPeer {
    let mut peer = HttpPeer::new(endpoint, false, String::new());
    let opts = &mut peer.options;
    let bounded = |d: Duration| timeout.map_or(d, |t| t.min(d));
    opts.connection_timeout = Some(bounded(settings.connect_timeout));
    opts.read_timeout = Some(timeout.unwrap_or(settings.read_timeout));
    opts.write_timeout = Some(bounded(settings.write_timeout));
    opts.idle_timeout = Some(settings.idle_timeout);
    match backend.protocol {
        // Prior-knowledge h2c: with min = max = 2 on a plaintext peer Pingora skips ALPN.
        BackendProtocol::H2c => {
            opts.set_http_version(2, 2);
            opts.max_h2_streams = settings.max_h2_streams;
        }
        BackendProtocol::Http1 | BackendProtocol::WebSocket => opts.set_http_version(1, 1),
    }
    if let Some(BackendTlsMode::Verify(tls)) = &backend.tls {
        let connect = bounded(settings.connect_timeout);
        let relays = &settings.tls_relays;
        TlsOrigin::apply(
            &mut peer,
            endpoint,
            tls,
            client_certificate,
            connect,
            relays,
        );
    }
    peer
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use sluice_controller::snapshot::{Timeouts, WeightedBackend};

    use super::*;

    fn service(name: &str, endpoints: &[&str]) -> BackendTarget {
        let endpoints = endpoints.iter().map(|e| e.parse().unwrap()).collect();
        BackendTarget::Service(Arc::new(Backend::new(
            name.into(),
            endpoints,
            BackendProtocol::Http1,
        )))
    }

    fn action(backends: Vec<(u32, BackendTarget)>) -> RuleAction {
        RuleAction::new(
            vec![],
            backends
                .into_iter()
                .map(|(weight, target)| WeightedBackend {
                    weight,
                    target,
                    filters: vec![],
                })
                .collect(),
            Timeouts::default(),
        )
    }

    #[test]
    fn zero_weight_owns_no_roll() {
        let w = || [0u32, 3, 0, 1].into_iter();
        assert_eq!(pick_weighted(w(), 0), Some(1));
        assert_eq!(pick_weighted(w(), 2), Some(1));
        assert_eq!(pick_weighted(w(), 3), Some(3));
        assert_eq!(pick_weighted(w(), 4), None);
    }

    #[test]
    fn weights_split_requests_in_proportion() {
        let a = action(vec![
            (80, service("a", &["127.0.0.1:1"])),
            (20, service("b", &["127.0.0.1:2"])),
            (0, service("never", &["127.0.0.1:3"])),
        ]);
        let mut rng = StdRng::seed_from_u64(7);
        let mut counts = [0u32; 3];
        for _ in 0..10_000 {
            counts[choose(&a, &mut rng).unwrap().index] += 1;
        }
        assert_eq!(counts[2], 0);
        assert!((7_700..=8_300).contains(&counts[0]), "{counts:?}");
    }

    #[test]
    fn no_usable_backend_is_500_and_no_endpoint_is_503() {
        let mut rng = StdRng::seed_from_u64(1);
        let none = action(vec![]);
        assert_eq!(choose(&none, &mut rng).unwrap_err().status(), 500);
        let zero = action(vec![(0, service("a", &["127.0.0.1:1"]))]);
        assert_eq!(choose(&zero, &mut rng).unwrap_err(), NoBackend::NoBackends);
        let invalid = action(vec![(
            1,
            BackendTarget::Invalid {
                reason: "missing".into(),
            },
        )]);
        assert_eq!(choose(&invalid, &mut rng).unwrap_err().status(), 500);
        let empty = action(vec![(1, service("a", &[]))]);
        let err = choose(&empty, &mut rng).unwrap_err();
        assert_eq!((err.status(), err.index()), (503, Some(0)));
    }

    #[test]
    fn endpoints_rotate_round_robin() {
        let a = action(vec![(1, service("a", &["127.0.0.1:1", "127.0.0.1:2"]))]);
        let mut rng = StdRng::seed_from_u64(1);
        let first = choose(&a, &mut rng).unwrap().endpoint;
        let second = choose(&a, &mut rng).unwrap().endpoint;
        assert_ne!(first, second);
    }

    #[test]
    fn peer_timeouts_follow_the_route_and_h2c_skips_alpn() {
        let settings = UpstreamSettings::default();
        let b = Backend::new("b".into(), vec![], BackendProtocol::H2c);
        let p = peer(
            &b,
            "127.0.0.1:9".parse().unwrap(),
            Some(Duration::from_millis(500)),
            &settings,
            None,
        );
        assert_eq!(p.options.read_timeout, Some(Duration::from_millis(500)));
        assert_eq!(
            p.options.connection_timeout,
            Some(Duration::from_millis(500))
        );
        assert_eq!(p.options.alpn.get_min_http_version(), 2);
        let b = Backend::new("b".into(), vec![], BackendProtocol::Http1);
        let p = peer(&b, "127.0.0.1:9".parse().unwrap(), None, &settings, None);
        assert_eq!(p.options.read_timeout, Some(settings.read_timeout));
        assert_eq!(p.options.alpn.get_max_http_version(), 1);
    }
}
