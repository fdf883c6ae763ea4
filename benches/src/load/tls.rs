//! The TLS passthrough workload's two ends: a backend that terminates TLS itself (a self-signed
//! certificate for `bench.example.com`, made at start) and answers a small fixed reply, and a
//! generator that opens a new connection per exchange (handshake, request, reply, close).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::backend::serve_each;

/// The SNI every connection sends; the proxies route on it without terminating TLS.
pub const HOSTNAME: &str = "bench.example.com";
pub const REQUEST: &[u8] = b"ping\n";
pub const REPLY: &[u8] = b"pong\n";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("generating the backend's certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("building the TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A running TLS backend; it lives as long as the runtime it was started on.
#[derive(Debug, Clone)]
pub struct TlsBackend {
    pub addr: SocketAddr,
    /// The backend's certificate, which the generator trusts (and so verifies end to end).
    pub certificate: CertificateDer<'static>,
    exchanges: Arc<AtomicU64>,
}

impl TlsBackend {
    /// Exchanges completed (request read, reply written).
    pub fn exchanges(&self) -> u64 {
        self.exchanges.load(Ordering::Relaxed)
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Binds 127.0.0.1:0 and serves on the current runtime.
pub async fn start_backend() -> Result<TlsBackend, TlsError> {
    let cert = rcgen::generate_simple_self_signed(vec![HOSTNAME.to_string()])?;
    let certificate = cert.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![certificate.clone()], key)?;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let backend = TlsBackend {
        addr: listener.local_addr()?,
        certificate,
        exchanges: Arc::default(),
    };
    let exchanges = Arc::clone(&backend.exchanges);
    serve_each(listener, move |stream| {
        let acceptor = acceptor.clone();
        let exchanges = Arc::clone(&exchanges);
        async move {
            if answer(acceptor, stream).await.is_ok() {
                exchanges.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    Ok(backend)
}

async fn answer(acceptor: TlsAcceptor, stream: TcpStream) -> std::io::Result<()> {
    let mut tls = acceptor.accept(stream).await?;
    let mut request = [0u8; REQUEST.len()];
    tls.read_exact(&mut request).await?;
    tls.write_all(REPLY).await?;
    tls.shutdown().await
}

// === the generator ===

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Exchanges that got the whole reply.
    pub ok: u64,
    /// Connections that failed anywhere (connect, handshake, short or wrong reply).
    pub errors: u64,
}

/// `concurrency` connections at a time, each one exchange, until `duration` is over.
#[derive(Debug, Clone)]
pub struct Load {
    pub target: SocketAddr,
    pub concurrency: usize,
    pub duration: Duration,
    pub trusted: CertificateDer<'static>,
}

fn connector(trusted: &CertificateDer<'static>) -> Result<TlsConnector, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.clone())?;
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Runs `load` on a runtime of its own (one thread: the generator shares the load core).
pub fn run(load: &Load) -> Result<Outcome, TlsError> {
    let connector = connector(&load.trusted)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let deadline = Instant::now() + load.duration;
    Ok(rt.block_on(async {
        let tasks: Vec<_> = (0..load.concurrency.max(1))
            .map(|_| {
                let connector = connector.clone();
                let target = load.target;
                tokio::spawn(async move {
                    let mut out = Outcome::default();
                    while Instant::now() < deadline {
                        match exchange(&connector, target).await {
                            Ok(()) => out.ok += 1,
                            Err(_) => {
                                out.errors += 1;
                                // A refused connection fails at once; do not spin on it.
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                        }
                    }
                    out
                })
            })
            .collect();
        let mut total = Outcome::default();
        for task in tasks {
            if let Ok(o) = task.await {
                total.ok += o.ok;
                total.errors += o.errors;
            }
        }
        total
    }))
}

/// One connection: handshake with SNI `bench.example.com`, request, the whole reply, close.
async fn exchange(connector: &TlsConnector, target: SocketAddr) -> std::io::Result<()> {
    let tcp = TcpStream::connect(target).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from(HOSTNAME).map_err(std::io::Error::other)?;
    let mut tls = connector.connect(name, tcp).await?;
    tls.write_all(REQUEST).await?;
    let mut reply = Vec::with_capacity(REPLY.len());
    tls.read_to_end(&mut reply).await?;
    if reply != REPLY {
        return Err(std::io::Error::other("unexpected reply"));
    }
    Ok(())
}

/// One exchange through `target`: the readiness check.
pub fn probe(target: SocketAddr, trusted: &CertificateDer<'static>) -> bool {
    let Ok(connector) = connector(trusted) else {
        return false;
    };
    super::check_once(async { exchange(&connector, target).await.is_ok() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_connection_completes_one_verified_exchange() {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let backend = rt.block_on(start_backend()).expect("starts");
        let out = run(&Load {
            target: backend.addr,
            concurrency: 4,
            duration: Duration::from_millis(200),
            trusted: backend.certificate.clone(),
        })
        .expect("runs");
        assert!(out.ok > 0, "{out:?}");
        assert_eq!(out.errors, 0, "{out:?}");
        assert!(probe(backend.addr, &backend.certificate));
        // The backend counts after its close, which may land just after the client's last read.
        let deadline = Instant::now() + Duration::from_secs(5);
        while backend.exchanges() < out.ok + 1 && Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert_eq!(backend.exchanges(), out.ok + 1);
    }

    #[test]
    fn a_certificate_for_another_name_fails_the_exchange() {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let backend = rt.block_on(start_backend()).expect("starts");
        let other = rcgen::generate_simple_self_signed(vec!["other.example.com".to_string()])
            .expect("generates");
        assert!(!probe(backend.addr, other.cert.der()));
    }
}
