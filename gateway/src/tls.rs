//! TLS termination for HTTPS binds: SNI picks the listener's certificate from the live snapshot.
//!
//! The resolver reads the current [`Snapshot`](sluice_controller::snapshot::Snapshot) on every
//! handshake, so a certificate change is served by the next handshake without rebinding.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use pingora_core::protocols::SocketDigest;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use sluice_controller::publish::Store;
use sluice_controller::snapshot::Bind;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use crate::transport::TlsConn;

/// A client that has not finished its handshake by then is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot build the TLS server configuration")]
    Config(#[source] rustls::Error),
    #[error("TLS handshake failed")]
    Handshake(#[source] std::io::Error),
    #[error("TLS handshake did not finish within {0:?}")]
    HandshakeTimeout(Duration),
}

/// The rustls acceptor for the HTTPS bind at `bind`: ring provider, ALPN `h2` then `http/1.1`.
pub fn acceptor(store: Arc<Store>, bind: SocketAddr) -> Result<TlsAcceptor, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SnapshotCertResolver { store, bind }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Runs the server handshake on an accepted connection, bounded by [`HANDSHAKE_TIMEOUT`].
pub async fn accept(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    socket: SocketDigest,
) -> Result<TlsConn, TlsError> {
    let accepted_at = SystemTime::now();
    let started = Instant::now();
    let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
        .await
        .map_err(|_| TlsError::HandshakeTimeout(HANDSHAKE_TIMEOUT))?
        .map_err(TlsError::Handshake)?;
    Ok(TlsConn::new(tls, socket, accepted_at, started.elapsed()))
}

/// Chooses the certificate of the listener that SNI selects on one bind.
#[derive(Debug)]
struct SnapshotCertResolver {
    store: Arc<Store>,
    bind: SocketAddr,
}

impl ResolvesServerCert for SnapshotCertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let snapshot = self.store.load();
        let bind = snapshot.binds.iter().find(|b| b.address == self.bind)?;
        let cert = certificate_for(bind, hello.server_name());
        if cert.is_none() {
            tracing::debug!(bind = %self.bind, sni = ?hello.server_name(), "no certificate for this SNI; failing the handshake");
        }
        cert
    }
}

/// With SNI: the certificate of the listener whose hostname matches it. Without SNI: the first
/// listener that has a certificate and no hostname (a client that sends no name cannot be
/// matched against one). `None` fails the handshake.
pub fn certificate_for(bind: &Bind, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
    match sni {
        Some(name) => bind.listener_for(&normalize_sni(name))?.tls.clone(),
        None => bind
            .listeners
            .iter()
            .find(|l| l.hostname.is_none() && l.tls.is_some())
            .and_then(|l| l.tls.clone()),
    }
}

/// An SNI as listener hostnames are matched: lowercased, without a trailing dot.
pub fn normalize_sni(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests;
