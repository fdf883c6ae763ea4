//! The in-process gateway: a hand-built snapshot served by `ProxyApp` on 127.0.0.1:0 through the
//! production connection path (`transport::http_connection` + `transport::serve`), tiny hyper
//! backends that echo what they received, and snapshot builders.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::{json, Value};
use sluice_controller::publish::Store;
use sluice_controller::snapshot::{
    Backend, BackendProtocol, BackendTarget, Bind, BindProtocol, Filter, HeaderModifier, Hostname,
    Listener, PathMatch, RequestMatch, RouteEntry, RouteGroup, RouteId, RouteKind, RouteTable,
    RuleAction, Snapshot, Timeouts, WeightedBackend,
};
use sluice_gateway::metrics::Metrics;
use sluice_gateway::proxy::{self, ProxySettings};
use sluice_gateway::transport;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::within;

/// Every test body runs under this bound.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(20);

pub async fn bounded<F: Future>(f: F) -> F::Output {
    within("the test body", TEST_TIMEOUT, f).await
}

// === gateway ===

pub struct Gateway {
    pub addr: SocketAddr,
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
    _shutdown: watch::Sender<bool>,
}

impl Gateway {
    /// Binds 127.0.0.1:0, publishes the snapshot `build` makes for that address, and serves it.
    pub async fn start(build: impl FnOnce(SocketAddr) -> Snapshot) -> Gateway {
        Gateway::start_with(ProxySettings::default(), build).await
    }

    pub async fn start_with(
        settings: ProxySettings,
        build: impl FnOnce(SocketAddr) -> Snapshot,
    ) -> Gateway {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let store = Store::new();
        store.publish(build(addr));
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        metrics.track_store(store.clone()).expect("track store");
        let shutdown = serve(listener, store.clone(), metrics.clone(), settings);
        Gateway {
            addr,
            store,
            metrics,
            _shutdown: shutdown,
        }
    }

    /// A gateway whose only route sends every path to `action` (see [`one_rule`]).
    pub async fn one_rule(action: Arc<RuleAction>) -> Gateway {
        Gateway::start(|addr| one_rule(addr, action)).await
    }

    /// A gateway whose only route forwards every request to `backend`, with no filters.
    pub async fn forwarding_to(backend: &EchoBackend) -> Gateway {
        Gateway::one_rule(action(vec![], vec![to(backend)])).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `GET path` with these request headers, in order, with [`client`].
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = client().get(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("request")
    }

    /// Connects and writes `request` as given, for what a client library would normalise.
    pub async fn send_raw(&self, request: &str) -> tokio::net::TcpStream {
        use tokio::io::AsyncWriteExt;
        let mut tcp = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        tcp.write_all(request.as_bytes()).await.expect("write");
        tcp
    }

    /// `GET path` with [`client`]; the request itself must not fail.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        client().get(self.url(path)).send().await.expect("request")
    }
}

/// Serves `store` on `listener` the way the listeners do: each accepted connection is wrapped by
/// `transport::http_connection` and handed to `transport::serve`. Dropping the returned sender
/// tells open connections to shut down.
pub fn serve(
    listener: TcpListener,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    settings: ProxySettings,
) -> watch::Sender<bool> {
    let (limits, h2c) = (settings.edge, settings.downstream_h2c);
    let app = proxy::new_app(store, metrics, settings);
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
    tx
}

pub fn client() -> reqwest::Client {
    client_with_timeout(Duration::from_secs(10))
}

/// A client that speaks HTTP/2 in clear text with prior knowledge (h2c).
pub fn h2c_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .expect("client")
}

/// A client that uses no proxy, follows no redirect and bounds every request by `timeout`.
pub fn client_with_timeout(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .build()
        .expect("client")
}

// === backends ===

/// A hyper HTTP/1.1 backend answering every request with a JSON echo of what it received.
pub struct EchoBackend {
    pub addr: SocketAddr,
    pub name: String,
    /// TCP connections accepted so far.
    pub connections: Arc<AtomicUsize>,
    /// Every request received, as echoed.
    pub seen: Arc<std::sync::Mutex<Vec<Value>>>,
}

impl EchoBackend {
    pub async fn start(name: &str) -> EchoBackend {
        EchoBackend::serve(name, false).await
    }

    /// One backend per name, started in order.
    pub async fn start_each<const N: usize>(names: [&str; N]) -> [EchoBackend; N] {
        let mut started = Vec::with_capacity(N);
        for name in names {
            started.push(EchoBackend::start(name).await);
        }
        match started.try_into() {
            Ok(all) => all,
            Err(_) => unreachable!("one backend was started per name"),
        }
    }

    /// Speaks HTTP/2 with prior knowledge only (h2c), like a `kubernetes.io/h2c` Service.
    pub async fn start_h2c(name: &str) -> EchoBackend {
        EchoBackend::serve(name, true).await
    }

    async fn serve(name: &str, h2c: bool) -> EchoBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        let backend_name = name.to_string();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let _ = tcp.set_nodelay(true);
                let name = backend_name.clone();
                let record = record.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        echo(name.clone(), record.clone(), req)
                    });
                    let io = hyper_util::rt::TokioIo::new(tcp);
                    if h2c {
                        let executor = hyper_util::rt::TokioExecutor::new();
                        let _ = hyper::server::conn::http2::Builder::new(executor)
                            .serve_connection(io, service)
                            .await;
                    } else {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, service)
                            .with_upgrades()
                            .await;
                    }
                });
            }
        });
        EchoBackend {
            addr,
            name: name.to_string(),
            connections,
            seen,
        }
    }

    /// Waits (within the test's bound) until `n` requests have arrived, and returns them.
    pub async fn wait_seen(&self, n: usize) -> Vec<Echoed> {
        loop {
            let seen = self.seen.lock().expect("seen").clone();
            if seen.len() >= n {
                return seen.into_iter().map(Echoed).collect();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub fn backend(&self) -> Arc<Backend> {
        Arc::new(Backend::new(
            format!("default/{}:80", self.name),
            vec![self.addr],
            BackendProtocol::Http1,
        ))
    }
}

/// A backend written against raw TCP, for behaviour hyper would normalise away.
pub async fn raw_backend<F, Fut>(handle: F) -> SocketAddr
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(handle(tcp));
        }
    });
    addr
}

/// Reads one request or response head (through the blank line) byte by byte.
pub async fn read_head(tcp: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        match tcp.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

pub fn service_at(name: &str, addr: SocketAddr, protocol: BackendProtocol) -> WeightedBackend {
    service_of(name, vec![addr], protocol)
}

/// Weight 1 to the Service `name` with these endpoints, in this order.
pub fn service_of(
    name: &str,
    endpoints: Vec<SocketAddr>,
    protocol: BackendProtocol,
) -> WeightedBackend {
    weighted(
        1,
        BackendTarget::Service(Arc::new(Backend::new(name.into(), endpoints, protocol))),
    )
}

/// `x-delay-ms` delays the answer; `x-respond-header: name=value` adds a response header.
async fn echo(
    name: String,
    seen: Arc<std::sync::Mutex<Vec<Value>>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in req.headers() {
        headers
            .entry(k.as_str().to_string())
            .or_default()
            .push(String::from_utf8_lossy(v.as_bytes()).into_owned());
    }
    let delay = req
        .headers()
        .get("x-delay-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let extra: Vec<(String, String)> = req
        .headers()
        .get_all("x-respond-header")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let method = req.method().to_string();
    let version = format!("{:?}", req.version());
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if let Some(ms) = delay {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let doc = json!({
        "backend": name,
        "method": method,
        "version": version,
        "path": path,
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    let text = doc.to_string();
    seen.lock().expect("seen").push(doc);
    let mut resp = Response::new(Full::new(Bytes::from(text)));
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    for (k, v) in extra {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
            resp.headers_mut().append(k, v);
        }
    }
    Ok(resp)
}

/// What an [`EchoBackend`] reported.
pub struct Echoed(pub Value);

impl Echoed {
    pub async fn from(resp: reqwest::Response) -> Echoed {
        let body = resp.bytes().await.expect("echo body");
        Echoed(serde_json::from_slice(&body).expect("echo json"))
    }

    pub fn backend(&self) -> &str {
        self.0["backend"].as_str().unwrap_or("")
    }

    pub fn version(&self) -> &str {
        self.0["version"].as_str().unwrap_or("")
    }

    pub fn path(&self) -> &str {
        self.0["path"].as_str().unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Vec<String> {
        self.0["headers"][name]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }
}

// === snapshot builders ===

pub fn prefix(p: &str) -> RequestMatch {
    path(PathMatch::Prefix(p.into()))
}

pub fn path(path: PathMatch) -> RequestMatch {
    RequestMatch {
        path,
        method: None,
        headers: vec![],
        query: vec![],
    }
}

pub fn with_method(mut m: RequestMatch, method: Method) -> RequestMatch {
    m.method = Some(method);
    m
}

pub fn weighted(weight: u32, target: BackendTarget) -> WeightedBackend {
    WeightedBackend {
        weight,
        target,
        filters: vec![],
    }
}

pub fn to(backend: &EchoBackend) -> WeightedBackend {
    weighted(1, BackendTarget::Service(backend.backend()))
}

pub fn action(filters: Vec<Filter>, backends: Vec<WeightedBackend>) -> Arc<RuleAction> {
    Arc::new(RuleAction::new(filters, backends, Timeouts::default()))
}

pub fn entry(route: &str, matcher: RequestMatch, action: Arc<RuleAction>) -> RouteEntry {
    RouteEntry {
        route: Arc::new(RouteId {
            kind: RouteKind::Http,
            namespace: "default".into(),
            name: route.into(),
            rule_index: 0,
            rule_name: None,
            label: format!("default/{route}"),
        }),
        matcher,
        action,
    }
}

/// An entry `name` matching `matcher` that forwards to `backend`, with no filters.
pub fn forward(name: &str, matcher: RequestMatch, backend: &EchoBackend) -> RouteEntry {
    entry(name, matcher, action(vec![], vec![to(backend)]))
}

/// The exact-hostname groups of a route table, one group of entries per host.
pub fn exact_hosts(groups: Vec<(&str, Vec<RouteEntry>)>) -> BTreeMap<String, RouteGroup> {
    groups
        .into_iter()
        .map(|(host, entries)| (host.to_string(), RouteGroup::new(entries)))
        .collect()
}

/// One HTTP bind at `addr` with one hostname-less listener of gateway `default/gw`.
pub fn snapshot(addr: SocketAddr, routes: RouteTable) -> Snapshot {
    Snapshot {
        generation: 0,
        binds: vec![Bind {
            address: addr,
            protocol: BindProtocol::Http,
            listeners: vec![Listener::http("default/gw", "http", routes)],
        }],
        statuses: Default::default(),
        backend_client_certificates: Default::default(),
    }
}

/// [`snapshot`] with one route `default/r` matching `PathPrefix /`, to `action`.
pub fn one_rule(addr: SocketAddr, action: Arc<RuleAction>) -> Snapshot {
    snapshot(addr, any(vec![entry("r", prefix("/"), action)]))
}

pub fn any(entries: Vec<RouteEntry>) -> RouteTable {
    RouteTable {
        any: RouteGroup::new(entries),
        ..RouteTable::default()
    }
}

pub fn wildcard(suffix: &str) -> Hostname {
    Hostname::parse(suffix).expect("wildcard hostname")
}

pub fn headers(
    set: &[(&'static str, &'static str)],
    add: &[(&'static str, &'static str)],
    remove: &[&'static str],
) -> HeaderModifier {
    let pair = |(k, v): &(&'static str, &'static str)| {
        (HeaderName::from_static(k), HeaderValue::from_static(v))
    };
    HeaderModifier {
        set: set.iter().map(pair).collect(),
        add: add.iter().map(pair).collect(),
        remove: remove.iter().map(|k| HeaderName::from_static(k)).collect(),
    }
}

/// Every value of `name` in `map`, in order, as text.
pub fn header_values(map: &http::HeaderMap, name: &str) -> Vec<String> {
    map.get_all(name)
        .iter()
        .map(|v| v.to_str().expect("ascii").to_string())
        .collect()
}
