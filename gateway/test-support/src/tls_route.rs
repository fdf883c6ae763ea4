//! TLSRoute streams through the real accept path: a [`ListenerManager`] following a hand-built
//! snapshot of TLS listeners, backends that say who they are and what handshake they saw, and a
//! TLS client with the SNI and ALPN a test chooses.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use sluice_controller::publish::Store;
use sluice_controller::snapshot::{
    Backend, BackendProtocol, BackendTarget, Bind, BindProtocol, Hostname, Listener, ListenerKind,
    RouteId, RouteKind, RouteTable, RuleAction, Snapshot, Timeouts, TlsRouteEntry, TlsRouteTable,
    WeightedBackend,
};
use sluice_gateway::listeners::{ListenerManager, ListenerOptions};
use sluice_gateway::metrics::Metrics;
use sluice_gateway::proxy::{self, ProxySettings};
use sluice_gateway::tls_route::TlsRouteSettings;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::free_port;

const WAIT: Duration = Duration::from_secs(10);

// === certificates ===

/// A CA and the certificates it signs.
pub struct Pki {
    key: KeyPair,
    cert: rcgen::Certificate,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Pki { key, cert }
    }

    pub fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// The CA certificate, PEM (a ConfigMap's `ca.crt`).
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// `(certificate PEM, key PEM)` with exactly `sans`, for servers configured from PEM files.
    pub fn issue_pem(&self, sans: Vec<rcgen::SanType>) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = sans;
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A certificate for `names` with its key, ready to serve.
    pub fn issue(&self, names: &[&str]) -> Arc<CertifiedKey> {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let params = CertificateParams::new(names).unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signer = rustls::crypto::ring::sign::any_supported_type(&der).unwrap();
        Arc::new(CertifiedKey::new(vec![cert.der().clone()], signer))
    }

    /// A client trusting only this CA, offering `alpn`.
    pub fn client(&self, alpn: &[&str]) -> TlsConnector {
        self.client_with(alpn, None)
    }

    /// [`Pki::client`], presenting `certificate` when the server asks for one.
    pub fn client_with(
        &self,
        alpn: &[&str],
        certificate: Option<Arc<CertifiedKey>>,
    ) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        roots.add(self.der()).unwrap();
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let mut config = match certificate {
            Some(c) => builder.with_client_cert_resolver(Arc::new(FixedClientCert(c))),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        TlsConnector::from(Arc::new(config))
    }

    /// Checks client certificates against this CA.
    pub fn client_verifier(&self) -> Arc<dyn rustls::server::danger::ClientCertVerifier> {
        let mut roots = RootCertStore::empty();
        roots.add(self.der()).unwrap();
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .unwrap()
    }
}

#[derive(Debug)]
struct FixedClientCert(Arc<CertifiedKey>);

impl rustls::client::ResolvesClientCert for FixedClientCert {
    fn resolve(&self, _: &[&[u8]], _: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

// === backends ===

/// What a backend saw of one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub sni: Option<String>,
    pub alpn: Option<String>,
}

/// A backend on 127.0.0.1:0 that answers each connection with one line, `NAME SNI ALPN` (`-`
/// for none), then echoes what it reads until the client closes.
pub struct StreamBackend {
    pub addr: SocketAddr,
    pub name: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl StreamBackend {
    /// Plain TCP.
    pub async fn tcp(name: &str) -> StreamBackend {
        StreamBackend::start(name, None).await
    }

    /// TLS with `cert`, negotiating ALPN `h2` or `http/1.1`, as a backend behind passthrough.
    pub async fn tls(name: &str, cert: Arc<CertifiedKey>) -> StreamBackend {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Fixed(cert)));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        StreamBackend::start(name, Some(TlsAcceptor::from(Arc::new(config)))).await
    }

    async fn start(name: &str, tls: Option<TlsAcceptor>) -> StreamBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (name_, seen_) = (name.to_string(), seen.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (name, seen, tls) = (name_.clone(), seen_.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        None => {
                            seen.lock().unwrap().push(Seen {
                                sni: None,
                                alpn: None,
                            });
                            echo(tcp, &format!("{name} - -\n")).await;
                        }
                        Some(acceptor) => {
                            let Ok(tls) = acceptor.accept(tcp).await else {
                                return;
                            };
                            let conn = tls.get_ref().1;
                            let s = Seen {
                                sni: conn.server_name().map(str::to_string),
                                alpn: conn
                                    .alpn_protocol()
                                    .map(|p| String::from_utf8_lossy(p).into_owned()),
                            };
                            let line = format!(
                                "{name} {} {}\n",
                                s.sni.as_deref().unwrap_or("-"),
                                s.alpn.as_deref().unwrap_or("-")
                            );
                            seen.lock().unwrap().push(s);
                            echo(tls, &line).await;
                        }
                    }
                });
            }
        });
        StreamBackend {
            addr,
            name: name.to_string(),
            seen,
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// A backendRef to this backend (`default/NAME:443`).
    pub fn target(&self) -> BackendTarget {
        BackendTarget::Service(Arc::new(Backend::new(
            format!("default/{}:443", self.name),
            vec![self.addr],
            BackendProtocol::Http1,
        )))
    }
}

/// Serves one certificate whatever the SNI.
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl rustls::server::ResolvesServerCert for Fixed {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

async fn echo<S: AsyncRead + AsyncWrite + Unpin>(stream: S, greeting: &str) {
    let (read, mut write) = tokio::io::split(stream);
    if write.write_all(greeting.as_bytes()).await.is_err() {
        return;
    }
    let mut read = BufReader::new(read);
    let mut line = String::new();
    while matches!(read.read_line(&mut line).await, Ok(n) if n > 0) {
        if write.write_all(line.as_bytes()).await.is_err() {
            return;
        }
        line.clear();
    }
    let _ = write.shutdown().await;
}

// === snapshots ===

/// A TLSRoute entry `default/ROUTE` sending connections to `backends` by weight.
pub fn route(name: &str, backends: Vec<(u32, BackendTarget)>) -> TlsRouteEntry {
    let backends = backends
        .into_iter()
        .map(|(weight, target)| WeightedBackend {
            weight,
            target,
            filters: vec![],
        })
        .collect();
    TlsRouteEntry {
        route: Arc::new(RouteId {
            kind: RouteKind::Tls,
            namespace: "default".into(),
            name: name.into(),
            rule_index: 0,
            rule_name: None,
            label: format!("default/{name}"),
        }),
        action: Arc::new(RuleAction::new(vec![], backends, Timeouts::default())),
    }
}

/// A listener of Gateway `default/gw`: `kind` (a TLS kind, or `Http` for HTTPS), its hostname,
/// its certificate (terminate and HTTPS), and its TLSRoutes by exact hostname.
pub fn listener(
    name: &str,
    kind: ListenerKind,
    hostname: Option<&str>,
    cert: Option<Arc<CertifiedKey>>,
    routes: Vec<(&str, TlsRouteEntry)>,
) -> Listener {
    let mut table = TlsRouteTable::default();
    for (host, entry) in routes {
        table.exact.insert(host.to_string(), entry);
    }
    Listener {
        hostname: hostname.and_then(Hostname::parse),
        tls: cert,
        kind,
        tls_routes: table,
        ..Listener::http("default/gw", name, RouteTable::default())
    }
}

/// One TLS bind at `address` with `listeners` (most specific hostname first).
pub fn snapshot(address: SocketAddr, listeners: Vec<Listener>) -> Snapshot {
    Snapshot {
        binds: vec![Bind {
            address,
            protocol: BindProtocol::Https,
            listeners,
        }],
        ..Snapshot::default()
    }
}

// === gateway ===

/// Sluice's listeners on one free loopback port, following `store`.
pub struct Gateway {
    pub addr: SocketAddr,
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
    manager: Option<ListenerManager>,
}

impl Gateway {
    pub async fn start(build: impl FnOnce(SocketAddr) -> Snapshot) -> Gateway {
        Gateway::start_with(ListenerOptions::default(), build).await
    }

    /// With these limits and TLSRoute timeouts (their metrics are replaced by the gateway's).
    pub async fn start_with(
        options: ListenerOptions,
        build: impl FnOnce(SocketAddr) -> Snapshot,
    ) -> Gateway {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let store = Store::new();
        let generation = store.publish(build(addr));
        let metrics = Arc::new(Metrics::new().unwrap());
        let options = ListenerOptions {
            metrics: metrics.edge.clone(),
            tls_routes: TlsRouteSettings {
                metrics: metrics.tls_routes.clone(),
                ..options.tls_routes
            },
            ..options
        };
        let app = proxy::new_app(store.clone(), metrics.clone(), ProxySettings::default());
        let manager = ListenerManager::start(store.clone(), app, options);
        let status = manager.wait_for_generation(generation, WAIT).await.unwrap();
        assert!(status.serving.contains(&addr), "{status:?}");
        Gateway {
            addr,
            store,
            metrics,
            manager: Some(manager),
        }
    }

    /// Publishes `build`'s snapshot and waits until the listeners follow it.
    pub async fn publish(&self, build: impl FnOnce(SocketAddr) -> Snapshot) {
        let generation = self.store.publish(build(self.addr));
        let manager = self.manager.as_ref().unwrap();
        manager.wait_for_generation(generation, WAIT).await.unwrap();
    }

    /// A TLS connection through the gateway naming `sni`, offering `alpn`, trusting `pki`.
    pub async fn connect(
        &self,
        pki: &Pki,
        sni: &str,
        alpn: &[&str],
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        self.connect_with(&pki.client(alpn), sni).await
    }

    /// A TLS connection through the gateway with `client`, naming `sni`.
    pub async fn connect_with(
        &self,
        client: &TlsConnector,
        sni: &str,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(self.addr).await?;
        let name = ServerName::try_from(sni.to_string()).unwrap();
        client.connect(name, tcp).await
    }

    /// `sluice_tls_route_connections_total` for these labels (0 when never counted).
    pub fn connections(&self, route: &str, backend: &str, mode: &str, result: &str) -> u64 {
        self.metrics
            .tls_routes
            .connections
            .get_metric_with_label_values(&["default/gw", route, backend, mode, result])
            .map_or(0, |c| c.get())
    }

    /// Waits until `sluice_tls_route_connections_total` for these labels reaches 1.
    pub async fn counted(&self, route: &str, backend: &str, mode: &str, result: &str) {
        let what = format!("one {mode} connection counted {result} ({route} {backend})");
        crate::until(&what, WAIT, || {
            (self.connections(route, backend, mode, result) == 1).then_some(())
        })
        .await;
    }

    pub async fn shutdown(mut self, grace: Duration) {
        if let Some(manager) = self.manager.take() {
            manager.shutdown(grace).await;
        }
    }
}

/// Reads the backend's greeting line (`NAME SNI ALPN`), then checks a line comes back.
pub async fn greeting_and_echo<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> String {
    let mut reader = BufReader::new(stream);
    let mut greeting = String::new();
    reader.read_line(&mut greeting).await.unwrap();
    reader.get_mut().write_all(b"ping\n").await.unwrap();
    let mut back = String::new();
    reader.read_line(&mut back).await.unwrap();
    assert_eq!(back, "ping\n", "the stream echoes");
    greeting.trim_end().to_string()
}
