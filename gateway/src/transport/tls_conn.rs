//! A terminated TLS connection dressed in Pingora's transport traits, so Pingora serves it (h2 by ALPN).

use std::fmt;
use std::os::unix::io::AsRawFd;
use std::sync::Arc;

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use pingora_core::protocols::raw_connect::ProxyDigest;
use pingora_core::protocols::tls::SslDigest;
use pingora_core::protocols::{
    Digest, GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use tokio::io::AsyncWriteExt;
use tokio_rustls::server::TlsStream;

use super::ReplayTcp;

/// What the handshake told us that Pingora's digests have no field for.
///
/// It travels as the connection's `ProxyDigest` user data: Pingora hands that digest to every
/// request of the connection, HTTP/1 and HTTP/2 alike, and has no other per-connection slot that
/// a stream terminated outside Pingora can fill (`SslDigestExtension` is set only inside
/// Pingora). A downstream connection has no CONNECT proxy, so the slot is otherwise unused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// The SNI the client sent, lowercased and without a trailing dot, as the certificate
    /// resolver matched it. Shared: every request of the connection takes a copy.
    pub server_name: Option<Arc<str>>,
}

impl Handshake {
    /// The handshake of the connection `digest` describes; `None` for plain connections.
    pub fn of(digest: &Digest) -> Option<&Handshake> {
        digest
            .proxy_digest
            .as_ref()?
            .user_data
            .as_ref()?
            .downcast_ref::<Handshake>()
    }
}

pub struct TlsConn {
    inner: TlsStream<ReplayTcp>,
    ssl: Arc<SslDigest>,
    handshake: Arc<ProxyDigest>,
    alpn: Option<ALPN>,
    socket: Arc<SocketDigest>,
    timing: [TimingDigest; 2],
}

impl TlsConn {
    pub(crate) fn new(
        inner: TlsStream<ReplayTcp>,
        socket: SocketDigest,
        accepted_at: SystemTime,
        handshake_time: Duration,
    ) -> TlsConn {
        let conn = inner.get_ref().1;
        let cipher = conn
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
            .unwrap_or("unknown");
        let version = conn
            .protocol_version()
            .and_then(|v| v.as_str())
            .unwrap_or("unknown");
        let alpn = conn.alpn_protocol().and_then(|p| match p {
            b"h2" => Some(ALPN::H2),
            b"http/1.1" => Some(ALPN::H1),
            _ => None,
        });
        let handshake = Handshake {
            server_name: conn
                .server_name()
                .map(|n| crate::tls::normalize_sni(n).into()),
        };
        // The response head is the CONNECT answer the digest was made for; there is none.
        let (no_connect, ()) = http::Response::new(()).into_parts();
        let handshake = Arc::new(ProxyDigest::new(
            Box::new(no_connect.into()),
            Some(Box::new(handshake)),
        ));
        TlsConn {
            handshake,
            ssl: Arc::new(SslDigest::new(cipher, version, None, None, Vec::new())),
            alpn,
            socket: Arc::new(socket),
            timing: [
                TimingDigest {
                    established_ts: accepted_at,
                    establishment_duration: None,
                    offload_wait_duration: None,
                },
                TimingDigest {
                    established_ts: SystemTime::now(),
                    establishment_duration: Some(handshake_time),
                    offload_wait_duration: None,
                },
            ],
            inner,
        }
    }
}

impl fmt::Debug for TlsConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConn")
            .field("peer", &self.socket.peer_addr())
            .field("version", &self.ssl.version)
            .field("cipher", &self.ssl.cipher)
            .field("alpn", &self.alpn)
            .finish()
    }
}

// === impl Pingora's transport traits ===

#[async_trait]
impl Shutdown for TlsConn {
    async fn shutdown(&mut self) {
        if let Err(e) = AsyncWriteExt::shutdown(&mut self.inner).await {
            tracing::debug!(error = %e, "TLS shutdown failed");
        }
    }
}

impl UniqueID for TlsConn {
    fn id(&self) -> UniqueIDType {
        self.inner.get_ref().0.as_raw_fd()
    }
}

impl Ssl for TlsConn {
    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        Some(self.ssl.clone())
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.alpn.clone()
    }
}

impl GetTimingDigest for TlsConn {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.timing.iter().cloned().map(Some).collect()
    }
}

impl GetProxyDigest for TlsConn {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        Some(self.handshake.clone())
    }
}

impl GetSocketDigest for TlsConn {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        Some(self.socket.clone())
    }
}

// Peeking decrypted bytes is not supported; Pingora only peeks for h2c on plain connections.
impl Peek for TlsConn {}

super::delegate::delegate_async_io!(TlsConn);
