//! A Sluice proxy app on 127.0.0.1:0 serving one route `PathPrefix /` to a primary backend, with
//! the given filters (mirrors among them), and a mirror engine in its own metrics registry.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sluice_controller::publish::Store;
use sluice_controller::snapshot::{
    Backend, BackendProtocol, BackendTarget, Bind, BindProtocol, Filter, Fraction, Listener,
    Mirror, PathMatch, RequestMatch, RouteEntry, RouteGroup, RouteId, RouteTable, RuleAction,
    Snapshot, Timeouts, WeightedBackend,
};
use sluice_gateway::metrics::Metrics;
use sluice_gateway::mirror::{MirrorEngine, MirrorMetrics, MirrorOptions, Outcome};
use sluice_gateway::proxy::{self, ProxySettings};
use sluice_gateway::transport;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub const ROUTE: &str = "default/web";

pub struct Gateway {
    pub addr: SocketAddr,
    pub metrics: Arc<Metrics>,
    pub engine: Arc<MirrorEngine>,
    _shutdown: watch::Sender<bool>,
}

pub fn backend(name: &str, addr: SocketAddr) -> Arc<Backend> {
    Arc::new(Backend::new(
        format!("default/{name}:8080"),
        vec![addr],
        BackendProtocol::Http1,
    ))
}

pub fn mirror(name: &str, addr: SocketAddr, fraction: Fraction) -> Filter {
    Filter::Mirror(Mirror {
        backend: backend(name, addr),
        fraction,
    })
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
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let store = Store::new();
        store.publish(snapshot(addr, primary, filters));
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let mirror_metrics = MirrorMetrics::register(&metrics.registry).expect("mirror metrics");
        let engine = MirrorEngine::new(options, mirror_metrics);
        let settings = ProxySettings {
            mirror: Some(engine.clone()),
            ..ProxySettings::default()
        };
        let (limits, h2c) = (settings.edge, settings.downstream_h2c);
        let app = proxy::new_app(store, metrics.clone(), settings);
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            while let Ok((tcp, peer)) = listener.accept().await {
                let app = app.clone();
                let rx = rx.clone();
                tokio::spawn(async move {
                    let conn = transport::http_connection(tcp, peer, limits, h2c);
                    transport::serve(&app, conn, &rx).await;
                });
            }
        });
        Gateway {
            addr,
            metrics,
            engine,
            _shutdown: tx,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn count(&self, mirror: &str, outcome: Outcome) -> u64 {
        self.engine.metrics().count(ROUTE, &label(mirror), outcome)
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

fn snapshot(addr: SocketAddr, primary: SocketAddr, filters: Vec<Filter>) -> Snapshot {
    let route = Arc::new(RouteId {
        namespace: "default".into(),
        name: "web".into(),
        rule_index: 0,
        rule_name: None,
        label: ROUTE.into(),
    });
    let action = Arc::new(RuleAction::new(
        filters,
        vec![WeightedBackend {
            weight: 1,
            target: BackendTarget::Service(backend("pipy", primary)),
            filters: vec![],
        }],
        Timeouts::default(),
    ));
    Snapshot {
        generation: 1,
        binds: vec![Bind {
            address: addr,
            protocol: BindProtocol::Http,
            listeners: vec![Listener {
                gateway: "default/gw".into(),
                name: "http".into(),
                hostname: None,
                tls: None,
                routes: RouteTable {
                    any: RouteGroup::new(vec![RouteEntry {
                        route,
                        matcher: RequestMatch {
                            path: PathMatch::Prefix("/".into()),
                            method: None,
                            headers: vec![],
                            query: vec![],
                        },
                        action,
                    }]),
                    ..RouteTable::default()
                },
            }],
        }],
        ..Snapshot::default()
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}
