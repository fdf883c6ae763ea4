//! A terminated TLS connection dressed in Pingora's transport traits, so Pingora serves it (h2 by ALPN).

use std::fmt;
use std::os::unix::io::AsRawFd;
use std::sync::Arc;

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use pingora_core::protocols::raw_connect::ProxyDigest;
use pingora_core::protocols::tls::SslDigest;
use pingora_core::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

pub struct TlsConn {
    inner: TlsStream<TcpStream>,
    ssl: Arc<SslDigest>,
    alpn: Option<ALPN>,
    socket: Arc<SocketDigest>,
    timing: [TimingDigest; 2],
}

impl TlsConn {
    pub(crate) fn new(
        inner: TlsStream<TcpStream>,
        socket: SocketDigest,
        accepted_at: SystemTime,
        handshake: Duration,
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
        TlsConn {
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
                    establishment_duration: Some(handshake),
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
        None
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
