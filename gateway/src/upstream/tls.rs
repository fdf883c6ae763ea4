//! TLS to backends with a BackendTLSPolicy: a Pingora L4 connector (`PeerOptions::custom_l4`)
//! that opens TCP, runs a rustls handshake with the policy's verifier, SNI and the Gateway's
//! client certificate, and hands Pingora the encrypted stream as a virtual socket.
//!
//! Pingora is built without its TLS features: `pingora-rustls` verifies only the SNI name
//! against a CA list, while a policy may ask for other DNS names or URI SANs (SPIFFE IDs), and
//! it would bring a second `rustls-native-certs`. The primary and mirror legs both connect
//! through Pingora's connectors with these peers, so they verify alike. Pingora 0.9 does not
//! reuse a connection whose socket has no fd, so a peer normally points at the endpoint's relay
//! (`relay.rs`, a Unix socket Pingora pools) and the handshake runs there; the virtual socket
//! is the fallback past the relay cap, one connection per request (sessions resume across them).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::connectors::L4Connect;
use pingora_core::protocols::l4::socket::SocketAddr as PingoraAddr;
use pingora_core::protocols::l4::stream::Stream;
use pingora_core::protocols::l4::virt::{VirtualSockOpt, VirtualSocket, VirtualSocketStream};
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType, OrErr, Result};
use rustls::client::ResolvesClientCert;
use rustls::pki_types::ServerName;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, SignatureScheme};
use sluice_controller::snapshot::BackendTls;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::relay::{RelayConnect, RelayRegistry};
use crate::transport::delegate_async_io;

/// The ALPN protocol ID of HTTP/2 over TLS (RFC 9113 §3.2).
const ALPN_H2: &[u8] = b"h2";

/// Client configs kept for session resumption, at most (see [`TlsOrigin::config`]).
const MAX_CONFIGS: usize = 256;

/// How one peer reaches its backend over TLS.
#[derive(Debug)]
pub struct TlsOrigin {
    /// The peer's `group_key`: one per policy and client certificate.
    key: u64,
    tls: Arc<BackendTls>,
    client_certificate: Option<Arc<CertifiedKey>>,
    connect_timeout: Duration,
    /// HTTP/2 inside TLS: ALPN offers `h2` alone, and a backend that does not select it fails
    /// the connect (it would not understand the h2 preface Pingora sends next).
    h2: bool,
}

impl TlsOrigin {
    /// Makes `peer` (to `endpoint`) connect with TLS, through the endpoint's relay so Pingora
    /// pools the connection; the pool key (`group_key`) differs per policy and client
    /// certificate, so a connection is never shared across them. Without a relay (cap reached)
    /// the L4 step is ours and the connection is not pooled. A peer already set to HTTP/2 only
    /// (an h2c Service, as for gRPC) gets h2 inside TLS: Pingora speaks h2 with prior
    /// knowledge over the relay's socket (or the virtual socket), and the handshake to the
    /// backend negotiates `h2` by ALPN.
    pub fn apply(
        peer: &mut HttpPeer,
        endpoint: SocketAddr,
        tls: &Arc<BackendTls>,
        client_certificate: Option<&Arc<CertifiedKey>>,
        connect_timeout: Duration,
        relays: &Arc<RelayRegistry>,
    ) {
        let h2 = peer.options.alpn.get_min_http_version() == 2;
        peer.group_key = group_key(tls, client_certificate, h2);
        if !h2 {
            // HTTP/1.1 inside TLS: no ALPN is offered.
            peer.options.set_http_version(1, 1);
        }
        let origin = Arc::new(TlsOrigin {
            key: peer.group_key,
            tls: tls.clone(),
            client_certificate: client_certificate.cloned(),
            connect_timeout,
            h2,
        });
        let relayed = relays.path(endpoint, &origin).and_then(|path| {
            let path = path.to_str()?;
            HttpPeer::new_uds(path, false, String::new()).ok()
        });
        if let Some(mut uds) = relayed {
            uds.options = peer.options.clone();
            uds.options.custom_l4 = Some(Arc::new(RelayConnect { connect_timeout }));
            uds.group_key = peer.group_key;
            *peer = uds;
            return;
        }
        peer.options.custom_l4 = Some(origin);
        // Pingora would park the connection in its pool, then refuse to reuse it (a virtual
        // socket has no fd to check); closing it at once frees the backend's slot instead.
        peer.options.idle_timeout = Some(Duration::ZERO);
    }

    /// How one TLSRoute stream reaches a backend under `tls`: its own connection, never pooled
    /// (the stream is the client's, start to end). Shares the session cache of HTTP peers
    /// under the same policy and client certificate.
    pub fn for_stream(
        tls: &Arc<BackendTls>,
        client_certificate: Option<&Arc<CertifiedKey>>,
        connect_timeout: Duration,
    ) -> TlsOrigin {
        TlsOrigin {
            key: group_key(tls, client_certificate, false),
            tls: tls.clone(),
            client_certificate: client_certificate.cloned(),
            connect_timeout,
            h2: false,
        }
    }

    /// An origin trusting a fresh self-signed CA, for tests of the relays.
    #[cfg(test)]
    #[allow(clippy::unwrap_used)]
    pub(super) fn for_test(key: u64, connect_timeout: Duration) -> Arc<TlsOrigin> {
        use sluice_controller::snapshot::Trust;
        let ca = rcgen::generate_simple_self_signed(vec!["ca.example.com".into()]).unwrap();
        let tls = BackendTls::new(
            "default/test-policy".into(),
            "backend.example.com",
            vec![],
            Trust::ConfigMaps(vec!["default/ca".into()]),
            &[ca.cert.der().clone()],
        )
        .unwrap();
        Arc::new(TlsOrigin {
            key,
            tls: Arc::new(tls),
            client_certificate: None,
            connect_timeout,
            h2: false,
        })
    }

    /// The TLS settings' key (the peer's `group_key`).
    pub(super) fn key(&self) -> u64 {
        self.key
    }

    /// TCP and the TLS handshake to `addr`, within the connect timeout.
    pub async fn open(&self, addr: SocketAddr) -> Result<TlsStream<TcpStream>> {
        match pingora_timeout::timeout(self.connect_timeout, self.handshake(addr)).await {
            Ok(r) => r,
            Err(_) => Error::e_explain(
                ErrorType::ConnectTimedout,
                format!(
                    "TLS to {addr}: no handshake within {:?}",
                    self.connect_timeout
                ),
            ),
        }
    }

    /// One config per policy and client certificate, shared by every connection made under
    /// them, so TLS sessions resume (rustls keeps tickets in the config): as Pingora opens a
    /// connection per request here, a resumed handshake is what is left to save. Bounded: the
    /// cache starts over past [`MAX_CONFIGS`] keys (configurations come and go with policies).
    fn config(&self) -> Arc<ClientConfig> {
        static CONFIGS: OnceLock<Mutex<HashMap<u64, Arc<ClientConfig>>>> = OnceLock::new();
        let mut configs = CONFIGS
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(config) = configs.get(&self.key) {
            return config.clone();
        }
        if configs.len() >= MAX_CONFIGS {
            configs.clear();
        }
        let config = self.build_config();
        configs.insert(self.key, config.clone());
        config
    }

    fn build_config(&self) -> Arc<ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = match ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
        {
            Ok(b) => b,
            // The ring provider supports the default versions; this arm is unreachable in
            // practice and falls back to the process default rather than panic.
            Err(_) => ClientConfig::builder(),
        };
        let builder = builder
            .dangerous()
            .with_custom_certificate_verifier(self.tls.verifier.clone());
        let mut config = match &self.client_certificate {
            Some(key) => builder.with_client_cert_resolver(Arc::new(FixedClientCert(key.clone()))),
            None => builder.with_no_client_auth(),
        };
        if self.h2 {
            config.alpn_protocols = vec![ALPN_H2.to_vec()];
        }
        Arc::new(config)
    }

    async fn handshake(&self, addr: SocketAddr) -> Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(addr)
            .await
            .or_err_with(ErrorType::ConnectError, || format!("connecting to {addr}"))?;
        tcp.set_nodelay(true)
            .or_err(ErrorType::ConnectError, "setting TCP_NODELAY")?;
        let name = ServerName::try_from(self.tls.server_name.clone())
            .or_err_with(ErrorType::InvalidCert, || {
                format!("SNI {:?} is not a DNS name", self.tls.server_name)
            })?;
        let stream = TlsConnector::from(self.config())
            .connect(name, tcp)
            .await
            .or_err_with(ErrorType::TLSHandshakeFailure, || {
                format!("TLS to {addr} under BackendTLSPolicy {}", self.tls.policy)
            })?;
        // A server that knows no ALPN (or ignores it) completes the handshake without one.
        if self.h2 && stream.get_ref().1.alpn_protocol() != Some(ALPN_H2) {
            return Error::e_explain(
                ErrorType::TLSHandshakeFailure,
                format!("TLS to {addr}: the backend did not select ALPN h2 for HTTP/2"),
            );
        }
        Ok(stream)
    }
}

#[async_trait]
impl L4Connect for TlsOrigin {
    async fn connect(&self, addr: &PingoraAddr) -> Result<Stream> {
        let Some(inet) = addr.as_inet().copied() else {
            return Error::e_explain(ErrorType::ConnectError, "TLS backends are IP endpoints");
        };
        let stream = self.open(inet).await?;
        let socket = TlsSocket { inner: stream };
        Ok(Stream::from(VirtualSocketStream::new(Box::new(socket))))
    }
}

/// One key per policy and client certificate: the pool key of HTTP peers and the session
/// cache's.
/// One pool per policy, client certificate and HTTP version inside the TLS.
fn group_key(tls: &BackendTls, client_certificate: Option<&Arc<CertifiedKey>>, h2: bool) -> u64 {
    let mut key = std::collections::hash_map::DefaultHasher::new();
    tls.fingerprint.hash(&mut key);
    h2.hash(&mut key);
    if let Some(c) = client_certificate {
        for der in &c.cert {
            der.as_ref().hash(&mut key);
        }
    }
    key.finish()
}

/// The encrypted stream as Pingora's virtual socket; socket options go to the TCP socket.
#[derive(Debug)]
struct TlsSocket {
    inner: TlsStream<TcpStream>,
}

delegate_async_io!(TlsSocket);

impl VirtualSocket for TlsSocket {
    fn set_socket_option(&self, opt: VirtualSockOpt) -> std::io::Result<()> {
        match opt {
            VirtualSockOpt::NoDelay => self.inner.get_ref().0.set_nodelay(true),
            // Keepalive is not configured on upstream peers, and options Pingora may add later
            // do not apply to a TLS stream.
            _ => Ok(()),
        }
    }
}

/// Presents the Gateway's client certificate whenever a backend asks for one.
#[derive(Debug)]
struct FixedClientCert(Arc<CertifiedKey>);

impl ResolvesClientCert for FixedClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
