//! A Sluice proxy app on 127.0.0.1:0 serving one route `PathPrefix /` to a primary backend, with
//! the given filters (mirrors among them), and a mirror engine in its own metrics registry, served
//! by [`proxy::serve`] from a snapshot made with the [`proxy`] builders.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::sign::CertifiedKey;
use sluice_controller::publish::Store;
use sluice_controller::snapshot::{
    Backend, BackendProtocol, BackendTarget, BindProtocol, Filter, Fraction, Mirror, MirrorPolicy,
    Snapshot,
};
use sluice_gateway::metrics::Metrics;
use sluice_gateway::mirror::{MirrorEngine, MirrorMetrics, MirrorOptions, Outcome};
use sluice_gateway::proxy::ProxySettings;
use tokio::net::TcpListener;

use crate::proxy;
use tokio::sync::watch;

pub const ROUTE: &str = "default/web";

pub struct Gateway {
    pub addr: SocketAddr,
    pub metrics: Arc<Metrics>,
    pub engine: Arc<MirrorEngine>,
    _shutdown: watch::Sender<bool>,
}

pub fn backend(name: &str, addr: SocketAddr) -> Arc<Backend> {
    backend_speaking(name, addr, BackendProtocol::Http1)
}

/// The Service `default/{name}:8080` at `addr`, spoken to with `protocol` (its `appProtocol`).
pub fn backend_speaking(name: &str, addr: SocketAddr, protocol: BackendProtocol) -> Arc<Backend> {
    Arc::new(Backend::new(
        format!("default/{name}:8080"),
        vec![addr],
        protocol,
    ))
}

pub fn mirror(name: &str, addr: SocketAddr, fraction: Fraction) -> Filter {
    Filter::Mirror(Mirror {
        backend: backend(name, addr),
        fraction,
        policy: None,
    })
}

/// Every request mirrored to the HTTP/1.1 endpoint `addr`, as the engine takes a filter; its
/// backend is named after the port, so each test server gets metrics of its own.
pub fn every_request_to(addr: SocketAddr) -> Mirror {
    Mirror {
        backend: Arc::new(Backend::new(
            format!("default/mirror-{}:{}", addr.port(), addr.port()),
            vec![addr],
            BackendProtocol::Http1,
        )),
        fraction: Fraction::ALL,
        policy: None,
    }
}

/// A RequestMirror of every request to an h2c (`kubernetes.io/h2c`) Service, as a GRPCRoute's
/// mirror becomes.
pub fn mirror_h2c(name: &str, addr: SocketAddr) -> Filter {
    Filter::Mirror(Mirror {
        backend: backend_speaking(name, addr, BackendProtocol::H2c),
        fraction: Fraction::ALL,
        policy: None,
    })
}

/// A RequestMirror of every request to `backend`, its copies shaped by `policy`.
pub fn mirror_with_policy(backend: Arc<Backend>, policy: MirrorPolicy) -> Filter {
    Filter::Mirror(Mirror {
        backend,
        fraction: Fraction::ALL,
        policy: Some(Arc::new(policy)),
    })
}

/// One rule of a gateway with several: route `default/{route}`, `PathPrefix {prefix}`, to the
/// primary with `filters`.
pub struct Rule {
    pub route: &'static str,
    pub prefix: &'static str,
    pub filters: Vec<Filter>,
}

/// The label `sluice_mirror_*` metrics use for the mirror `name` of [`mirror`].
pub fn label(name: &str) -> String {
    format!("default/{name}:8080")
}

impl Gateway {
    pub async fn start(
        primary: SocketAddr,
        filters: Vec<Filter>,
        options: MirrorOptions,
    ) -> Gateway {
        Gateway::start_with(backend("pipy", primary), filters, options, false).await
    }

    /// A gateway with one route per rule, all to the primary at `primary`.
    pub async fn start_rules(
        primary: SocketAddr,
        rules: Vec<Rule>,
        options: MirrorOptions,
    ) -> Gateway {
        Gateway::start_on(
            backend("pipy", primary),
            rules,
            options,
            ProxySettings::default(),
            None,
        )
        .await
    }

    /// [`Gateway::start`] whose listener also takes HTTP/2 with prior knowledge (h2c clients).
    pub async fn start_h2c(
        primary: SocketAddr,
        filters: Vec<Filter>,
        options: MirrorOptions,
    ) -> Gateway {
        let primary = backend("pipy", primary);
        Gateway::start_with(primary, filters, options, true).await
    }

    /// A gateway for gRPC: h2c clients accepted, the primary an h2c Service (`kubernetes.io/h2c`,
    /// what a GRPCRoute's backends become).
    pub async fn start_grpc(
        primary: SocketAddr,
        filters: Vec<Filter>,
        options: MirrorOptions,
    ) -> Gateway {
        let primary = backend_speaking("pipy", primary, BackendProtocol::H2c);
        Gateway::start_with(primary, filters, options, true).await
    }

    /// [`Gateway::start_grpc`] on an HTTPS listener presenting `key`: clients speak h2 through
    /// ALPN.
    pub async fn start_grpc_tls(
        primary: SocketAddr,
        filters: Vec<Filter>,
        options: MirrorOptions,
        key: Arc<CertifiedKey>,
    ) -> Gateway {
        let primary = backend_speaking("pipy", primary, BackendProtocol::H2c);
        let settings = ProxySettings {
            downstream_h2c: true,
            ..ProxySettings::default()
        };
        Gateway::start_on(primary, web(filters), options, settings, Some(key)).await
    }

    /// [`Gateway::start`] with these proxy settings (`mirror` is replaced by the test's engine).
    pub async fn start_with_settings(
        primary: SocketAddr,
        filters: Vec<Filter>,
        options: MirrorOptions,
        settings: ProxySettings,
    ) -> Gateway {
        Gateway::start_on(
            backend("pipy", primary),
            web(filters),
            options,
            settings,
            None,
        )
        .await
    }

    async fn start_with(
        primary: Arc<Backend>,
        filters: Vec<Filter>,
        options: MirrorOptions,
        downstream_h2c: bool,
    ) -> Gateway {
        let settings = ProxySettings {
            downstream_h2c,
            ..ProxySettings::default()
        };
        Gateway::start_on(primary, web(filters), options, settings, None).await
    }

    /// Served over TLS with `key` when it is set.
    async fn start_on(
        primary: Arc<Backend>,
        rules: Vec<Rule>,
        options: MirrorOptions,
        settings: ProxySettings,
        key: Option<Arc<CertifiedKey>>,
    ) -> Gateway {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let store = Store::new();
        let mut snapshot = snapshot(addr, primary, rules);
        if let Some(key) = &key {
            snapshot.binds[0].protocol = BindProtocol::Https;
            snapshot.binds[0].listeners[0].tls = Some(key.clone());
        }
        store.publish(snapshot);
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let mirror_metrics = MirrorMetrics::register(&metrics.registry).expect("mirror metrics");
        let engine = MirrorEngine::new(options, mirror_metrics);
        let settings = ProxySettings {
            mirror: Some(engine.clone()),
            ..settings
        };
        let shutdown = match key {
            Some(_) => crate::tls::serve_tls(listener, store, metrics.clone(), settings),
            None => proxy::serve(listener, store, metrics.clone(), settings),
        };
        Gateway {
            addr,
            metrics,
            engine,
            _shutdown: shutdown,
        }
    }

    /// A gateway whose route copies every request to the mirror `name` at `at`, with default
    /// mirror options.
    pub async fn mirroring_all(primary: SocketAddr, name: &str, at: SocketAddr) -> Gateway {
        Gateway::mirroring_all_with(primary, name, at, MirrorOptions::default()).await
    }

    /// [`Gateway::mirroring_all`] with these options.
    pub async fn mirroring_all_with(
        primary: SocketAddr,
        name: &str,
        at: SocketAddr,
        options: MirrorOptions,
    ) -> Gateway {
        Gateway::start(primary, vec![mirror(name, at, Fraction::ALL)], options).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn count(&self, mirror: &str, outcome: Outcome) -> u64 {
        self.count_on(ROUTE, mirror, outcome)
    }

    /// [`Gateway::count`] for the route `route` (`namespace/name`).
    pub fn count_on(&self, route: &str, mirror: &str, outcome: Outcome) -> u64 {
        self.engine.metrics().count(route, &label(mirror), outcome)
    }

    /// Every outcome of `mirror`, summed.
    pub fn total(&self, mirror: &str) -> u64 {
        Outcome::ALL.iter().map(|o| self.count(mirror, *o)).sum()
    }

    /// Waits (bounded) until no copy is in flight and `mirror` has `n` outcomes in total.
    pub async fn settled(&self, mirror: &str, n: u64) {
        let done = tokio::time::timeout(Duration::from_secs(40), async {
            while self.engine.inflight() != 0 || self.total(mirror) < n {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(
            done.is_ok(),
            "mirror {mirror} did not settle: inflight {}, outcomes {}",
            self.engine.inflight(),
            self.total(mirror)
        );
        assert_eq!(
            self.engine.metrics().inflight.get(),
            0,
            "inflight gauge back to 0"
        );
        assert_eq!(self.engine.buffered_bytes(), 0, "no body bytes left queued");
    }

    /// Waits until `mirror` has settled `n` copies, and checks every one of them completed.
    pub async fn all_completed(&self, mirror: &str, n: u64) {
        self.settled(mirror, n).await;
        assert_eq!(self.count(mirror, Outcome::Completed), n, "{mirror}");
    }

    /// The Prometheus text exposition of this instance's registry.
    pub fn metrics_text(&self) -> String {
        use prometheus::Encoder;
        let mut out = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&self.metrics.registry.gather(), &mut out)
            .expect("encode");
        String::from_utf8(out).expect("utf-8")
    }
}

/// The one rule of most gateways: route `default/web`, `PathPrefix /` with `filters`.
fn web(filters: Vec<Filter>) -> Vec<Rule> {
    vec![Rule {
        route: "web",
        prefix: "/",
        filters,
    }]
}

/// A route per rule, each to the backend `primary`.
fn snapshot(addr: SocketAddr, primary: Arc<Backend>, rules: Vec<Rule>) -> Snapshot {
    let entries = rules
        .into_iter()
        .map(|rule| {
            let to_primary = proxy::weighted(1, BackendTarget::Service(primary.clone()));
            let action = proxy::action(rule.filters, vec![to_primary]);
            proxy::entry(rule.route, proxy::prefix(rule.prefix), action)
        })
        .collect();
    proxy::snapshot(addr, proxy::any(entries))
}

pub fn client() -> reqwest::Client {
    proxy::client_with_timeout(Duration::from_secs(30))
}
