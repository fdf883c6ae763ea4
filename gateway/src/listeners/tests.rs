//! Listener manager behaviour against a tiny Pingora app that reports what it saw.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use sluice_controller::publish::Store;
use sluice_controller::snapshot::{Bind, BindProtocol, Hostname, Listener, RouteTable, Snapshot};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

const WAIT: Duration = Duration::from_secs(10);

/// Answers every request with what the connection looked like from the server side.
struct Reporter;

#[async_trait]
impl ServeHttp for Reporter {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let digest = session.digest();
        let tls = digest.and_then(|d| d.ssl_digest.as_ref()).is_some();
        let local = session
            .server_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let body = format!("tls={tls} h2={} local={local}", session.is_http2());
        http::Response::builder()
            .status(200)
            .header("content-length", body.len())
            .body(body.into_bytes())
            .unwrap()
    }
}

fn free_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], sluice_testing::free_port()))
}

fn listener(name: &str, hostname: Option<&str>, tls: Option<Arc<CertifiedKey>>) -> Listener {
    Listener {
        hostname: hostname.and_then(Hostname::parse),
        tls,
        ..Listener::http("default/gw", name, RouteTable::default())
    }
}

fn http_bind(address: SocketAddr) -> Bind {
    Bind {
        address,
        protocol: BindProtocol::Http,
        listeners: vec![listener("http", None, None)],
    }
}

fn snapshot(binds: Vec<Bind>) -> Snapshot {
    Snapshot {
        binds,
        ..Snapshot::default()
    }
}

async fn get(address: SocketAddr) -> std::io::Result<String> {
    let mut tcp = TcpStream::connect(address).await?;
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await?;
    let mut out = String::new();
    tcp.read_to_string(&mut out).await?;
    Ok(out)
}

/// A listener manager serving [`Reporter`] from its own store.
struct Harness {
    store: Arc<Store>,
    manager: ListenerManager,
}

impl Harness {
    fn start() -> Harness {
        Harness::start_with(ListenerOptions::default())
    }

    fn start_with(options: ListenerOptions) -> Harness {
        let store = Store::new();
        let manager = ListenerManager::start(store.clone(), Arc::new(Reporter), options);
        Harness { store, manager }
    }

    /// Publishes a snapshot of `binds` and waits until the manager has applied it.
    async fn publish(&self, binds: Vec<Bind>) -> ListenerStatus {
        let generation = self.store.publish(snapshot(binds));
        self.manager
            .wait_for_generation(generation, WAIT)
            .await
            .unwrap()
    }

    /// A harness already serving `binds` made for one free port.
    async fn serving(binds: impl FnOnce(SocketAddr) -> Vec<Bind>) -> (Harness, SocketAddr) {
        let gw = Harness::start();
        let address = free_port();
        gw.publish(binds(address)).await;
        (gw, address)
    }

    async fn serving_http() -> (Harness, SocketAddr) {
        Harness::serving(|address| vec![http_bind(address)]).await
    }

    /// A harness serving one HTTPS bind of these listeners on a free port.
    async fn serving_https(listeners: Vec<Listener>) -> (Harness, SocketAddr) {
        Harness::serving(|address| vec![https_bind(address, listeners)]).await
    }

    async fn shutdown(self) {
        self.manager.shutdown(Duration::from_secs(1)).await;
    }
}

/// Opens a connection to `address` and writes `bytes` on it.
async fn connect_and_send(address: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut tcp = TcpStream::connect(address).await.unwrap();
    tcp.write_all(bytes).await.unwrap();
    tcp
}

/// Reads `tcp` to its end, which must come within [`WAIT`].
async fn read_to_end_within<R: AsyncReadExt + Unpin>(tcp: &mut R) -> String {
    let mut out = String::new();
    tokio::time::timeout(WAIT, tcp.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
}

/// A plain-HTTP GET that must complete within [`WAIT`].
async fn get_within(address: SocketAddr) -> String {
    tokio::time::timeout(WAIT, get(address))
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn added_bind_serves_and_removed_bind_stops_accepting() {
    let gw = Harness::start();
    let (a, b) = (free_port(), free_port());

    let status = gw.publish(vec![http_bind(a)]).await;
    assert_eq!(status.serving, vec![a]);
    let reply = get_within(a).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(
        reply.contains(&format!("tls=false h2=false local={a}")),
        "{reply}"
    );

    let status = gw.publish(vec![http_bind(a), http_bind(b)]).await;
    assert_eq!(status.serving.len(), 2);
    let reply = get_within(b).await;
    assert!(reply.contains(&format!("local={b}")), "{reply}");

    gw.publish(vec![http_bind(b)]).await;
    let refused = TcpStream::connect(a).await;
    assert!(refused.is_err(), "a removed bind must stop accepting");
    assert!(tokio::time::timeout(WAIT, get(b)).await.unwrap().is_ok());

    gw.shutdown().await;
    assert!(
        TcpStream::connect(b).await.is_err(),
        "shutdown closes every socket"
    );
}

#[tokio::test]
async fn unchanged_bind_keeps_its_open_connections_across_a_reload() {
    let (gw, a) = Harness::serving_http().await;

    let mut tcp = connect_and_send(a, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut buf = vec![0; 1024];
    let n = tcp.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));

    gw.publish(vec![http_bind(a), http_bind(free_port())]).await;
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let rest = read_to_end_within(&mut tcp).await;
    assert!(
        rest.starts_with("HTTP/1.1 200"),
        "keep-alive survived the reload: {rest}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn bind_failure_is_reported_and_retried_with_backoff_until_the_address_frees() {
    let options = ListenerOptions {
        bind_retry: BindBackoff {
            base: Duration::from_millis(5),
            cap: Duration::from_millis(40),
        },
        ..Default::default()
    };
    let gw = Harness::start_with(options);
    let blocker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = blocker.local_addr().unwrap();

    let status = gw.publish(vec![http_bind(taken)]).await;
    assert!(status.serving.is_empty());
    let error = status.failed.get(&taken).expect("failure is reported");
    assert!(error.contains(&taken.to_string()), "{error}");

    drop(blocker);
    let mut rx = gw.manager.watch_status();
    let status = tokio::time::timeout(WAIT, rx.wait_for(|s| s.serving.contains(&taken)))
        .await
        .expect("retried without a new publish")
        .unwrap()
        .clone();
    assert!(status.failed.is_empty());
    assert!(tokio::time::timeout(WAIT, get(taken))
        .await
        .unwrap()
        .is_ok());
    gw.shutdown().await;
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_request_finish() {
    let (gw, a) = Harness::serving_http().await;

    // Half a request: the connection is in flight when shutdown starts.
    let mut tcp = connect_and_send(a, b"GET / HTTP/1.1\r\nHost: x\r\n").await;
    let mut rx = gw.manager.watch_status();
    tokio::time::timeout(WAIT, async {
        while gw.manager.active_connections() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    let shutdown = tokio::spawn(gw.manager.shutdown(Duration::from_secs(5)));
    // Once the sockets are closed the status channel's sender is gone.
    let _ = tokio::time::timeout(WAIT, rx.changed()).await;
    tcp.write_all(b"Connection: close\r\n\r\n").await.unwrap();
    let reply = read_to_end_within(&mut tcp).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    tokio::time::timeout(WAIT, shutdown).await.unwrap().unwrap();
}

// === TLS ===

struct TestCert {
    der: CertificateDer<'static>,
    key: Arc<CertifiedKey>,
}

fn cert(name: &str) -> TestCert {
    let generated = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    let der = generated.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(generated.key_pair.serialize_der()));
    let signer = rustls::crypto::ring::sign::any_supported_type(&key).unwrap();
    TestCert {
        key: Arc::new(CertifiedKey::new(vec![der.clone()], signer)),
        der,
    }
}

/// A listener that terminates TLS with `cert`.
fn tls_listener(name: &str, hostname: Option<&str>, cert: &TestCert) -> Listener {
    listener(name, hostname, Some(cert.key.clone()))
}

fn https_bind(address: SocketAddr, listeners: Vec<Listener>) -> Bind {
    Bind {
        address,
        protocol: BindProtocol::Https,
        listeners,
    }
}

fn client(trusted: &[&TestCert], host: &str, address: SocketAddr) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .resolve(host, address);
    for c in trusted {
        builder = builder.add_root_certificate(reqwest::Certificate::from_der(&c.der).unwrap());
    }
    builder.build().unwrap()
}

/// `GET https://{host}:{port}/` at `address`, trusting only `trusted`.
async fn tls_get(
    trusted: &[&TestCert],
    host: &str,
    address: SocketAddr,
) -> reqwest::Result<reqwest::Response> {
    let url = format!("https://{host}:{}/", address.port());
    client(trusted, host, address).get(url).send().await
}

#[tokio::test]
async fn sni_selects_the_listener_certificate_and_alpn_selects_h2() {
    let (a, b) = (cert("a.example.com"), cert("b.example.com"));
    let (gw, address) = Harness::serving_https(vec![
        tls_listener("a", Some("a.example.com"), &a),
        tls_listener("b", Some("b.example.com"), &b),
    ])
    .await;

    for (host, trusted, other) in [("a.example.com", &a, &b), ("b.example.com", &b, &a)] {
        let ok = tls_get(&[trusted], host, address).await.unwrap();
        assert_eq!(ok.version(), reqwest::Version::HTTP_2, "ALPN offers h2");
        let body = ok.text().await.unwrap();
        assert!(body.starts_with("tls=true h2=true"), "{body}");
        // Trusting only the other certificate fails: SNI picked this listener's certificate.
        let wrong = tls_get(&[other], host, address).await;
        assert!(
            wrong.is_err(),
            "{host} must not be served {other:?}",
            other = other.der.len()
        );
    }

    let unknown = tls_get(&[&a, &b], "c.example.com", address).await;
    assert!(
        unknown.is_err(),
        "no listener for this SNI fails the handshake"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn certificate_change_applies_without_rebinding() {
    let (old, new) = (cert("a.example.com"), cert("a.example.com"));
    let listener = |c: &TestCert| vec![tls_listener("a", Some("a.example.com"), c)];
    let (gw, address) = Harness::serving_https(listener(&old)).await;
    assert!(tls_get(&[&old], "a.example.com", address).await.is_ok());
    gw.publish(vec![https_bind(address, listener(&new))]).await;
    assert!(tls_get(&[&new], "a.example.com", address).await.is_ok());
    assert!(tls_get(&[&old], "a.example.com", address).await.is_err());
    gw.shutdown().await;
}

#[tokio::test]
async fn handshake_without_sni_uses_the_listener_without_hostname() {
    let (named, default) = (cert("a.example.com"), cert("default.example.com"));
    let (gw, address) = Harness::serving_https(vec![
        tls_listener("a", Some("a.example.com"), &named),
        tls_listener("any", None, &default),
    ])
    .await;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(default.der.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.enable_sni = false;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(address).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("default.example.com").unwrap();
    let mut tls = tokio::time::timeout(WAIT, connector.connect(name, tcp))
        .await
        .unwrap()
        .expect("the hostname-less listener's certificate is served");
    tls.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    // Pingora may close without close_notify; the bytes read before that are what matter.
    let _ = tokio::time::timeout(WAIT, tls.read_to_end(&mut reply)).await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.contains("tls=true h2=false"), "{reply}");
    gw.shutdown().await;
}

#[tokio::test]
async fn switching_a_bind_from_http_to_https_needs_no_rebind() {
    let (gw, address) = Harness::serving_http().await;
    let reply = get_within(address).await;
    assert!(reply.contains("tls=false"), "{reply}");

    let c = cert("a.example.com");
    let https = https_bind(address, vec![tls_listener("a", Some("a.example.com"), &c)]);
    let status = gw.publish(vec![https]).await;
    assert_eq!(status.serving, vec![address]);
    let body = tls_get(&[&c], "a.example.com", address)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.starts_with("tls=true"), "{body}");
    gw.shutdown().await;
}

mod client_cert;
