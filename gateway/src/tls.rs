//! TLS termination for HTTPS binds: SNI picks the listener's certificate from the live snapshot.
//!
//! The resolver reads the current [`Snapshot`](sluice_controller::snapshot::Snapshot) on every
//! handshake, so a certificate change is served by the next handshake without rebinding. A
//! listener under client-certificate validation (Gateway `spec.tls.frontend`) is known only once
//! the ClientHello's SNI is read, so the handshake starts lazily and then takes the server
//! configuration that asks for that listener's client certificate.
//!
//! The accept loop reads the ClientHello first ([`hello::read`]) to learn which listener the
//! connection is for; a handshake then replays those bytes ([`ReplayTcp`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use pingora_core::protocols::SocketDigest;
use rustls::server::{Acceptor as HelloReader, ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use sluice_controller::publish::Store;
use sluice_controller::snapshot::{Bind, ClientValidation, Listener, ListenerKind};
use tokio_rustls::LazyConfigAcceptor;

use crate::transport::{ReplayTcp, TlsConn};

pub mod hello;

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

/// The server side of TLS for one HTTPS bind.
#[derive(Clone)]
pub struct Acceptor {
    store: Arc<Store>,
    bind: SocketAddr,
    /// For listeners without client validation: no client certificate asked for.
    plain: Arc<ServerConfig>,
    /// For TLS-terminate listeners without client validation: as `plain`, without ALPN.
    opaque: Arc<ServerConfig>,
}

/// The acceptor for the HTTPS bind at `bind`: ring provider, ALPN `h2` then `http/1.1` for
/// HTTPS listeners, none for TLS-terminate listeners.
pub fn acceptor(store: Arc<Store>, bind: SocketAddr) -> Result<Acceptor, TlsError> {
    let plain = server_config(store.clone(), bind, None, true)?;
    let opaque = server_config(store.clone(), bind, None, false)?;
    Ok(Acceptor {
        store,
        bind,
        plain,
        opaque,
    })
}

/// `validation`: ask for and check a client certificate with it. `http`: offer ALPN `h2` and
/// `http/1.1`. A TLS-terminate listener offers none: what flows inside is the backend's
/// protocol, unknown to Sluice, and agreeing to `h2` or `http/1.1` would tell the client
/// something nobody checked (a client that requires ALPN fails the handshake instead).
fn server_config(
    store: Arc<Store>,
    bind: SocketAddr,
    validation: Option<&ClientValidation>,
    http: bool,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?;
    let builder = match validation {
        Some(v) => builder.with_client_cert_verifier(v.verifier.clone()),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(SnapshotCertResolver { store, bind }));
    if http {
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    }
    Ok(Arc::new(config))
}

impl Acceptor {
    /// The configuration for a ClientHello naming `sni`: the plain one unless the listener it
    /// selects validates client certificates. Built per such handshake, which costs a few
    /// allocations next to the handshake's public-key operations.
    fn config_for(&self, sni: Option<&str>) -> Result<Arc<ServerConfig>, TlsError> {
        let snapshot = self.store.load();
        let listener = snapshot
            .binds
            .iter()
            .find(|b| b.address == self.bind)
            .and_then(|b| listener_for(b, sni));
        let validation = listener.and_then(|l| l.client_validation.as_deref());
        let http = listener.is_none_or(|l| l.kind == ListenerKind::Http);
        match (validation, http) {
            (None, true) => Ok(self.plain.clone()),
            (None, false) => Ok(self.opaque.clone()),
            (Some(v), http) => server_config(self.store.clone(), self.bind, Some(v), http),
        }
    }
}

/// Runs the server handshake on an accepted connection, bounded by [`HANDSHAKE_TIMEOUT`].
pub async fn accept(
    acceptor: &Acceptor,
    tcp: impl Into<ReplayTcp>,
    socket: SocketDigest,
) -> Result<TlsConn, TlsError> {
    let accepted_at = SystemTime::now();
    let started = Instant::now();
    let tls = handshake(acceptor, tcp.into()).await?;
    Ok(TlsConn::new(tls, socket, accepted_at, started.elapsed()))
}

/// The server handshake alone, bounded by [`HANDSHAKE_TIMEOUT`]: for TLS-terminate listeners,
/// whose decrypted bytes are streamed rather than served as HTTP.
pub async fn handshake(acceptor: &Acceptor, tcp: ReplayTcp) -> Result<TlsStream, TlsError> {
    let handshake = async {
        let start = LazyConfigAcceptor::new(HelloReader::default(), tcp)
            .await
            .map_err(TlsError::Handshake)?;
        let config = acceptor.config_for(start.client_hello().server_name())?;
        start.into_stream(config).await.map_err(TlsError::Handshake)
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .map_err(|_| TlsError::HandshakeTimeout(HANDSHAKE_TIMEOUT))?
}

/// A terminated client connection.
pub type TlsStream = tokio_rustls::server::TlsStream<ReplayTcp>;

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
/// listener without hostname that has a certificate or passes connections through (a client
/// that sends no name cannot be matched against one). `None` fails the handshake.
pub fn certificate_for(bind: &Bind, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
    listener_for(bind, sni)?.tls.clone()
}

/// The listener a handshake with `sni` is for, by the rules of [`certificate_for`].
pub fn listener_for<'a>(bind: &'a Bind, sni: Option<&str>) -> Option<&'a Listener> {
    match sni {
        Some(name) => bind.listener_for(&normalize_sni(name)),
        None => bind.listeners.iter().find(|l| {
            l.hostname.is_none() && (l.tls.is_some() || l.kind == ListenerKind::TlsPassthrough)
        }),
    }
}

/// An SNI as listener hostnames are matched: lowercased, without a trailing dot.
pub fn normalize_sni(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests;
