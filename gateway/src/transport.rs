//! Accepted connections dressed in Pingora's transport traits: plain TCP with Pingora's small
//! write buffer, and terminated TLS. Every connection is then wrapped in the edge guard
//! ([`crate::edge::EdgeStream`]) before Pingora reads a byte of it.
//!
//! [`http_connection`] is the one way a plain connection reaches the proxy, used by the accept
//! loop and by in-process tests alike, so tests drive the production path.

mod buffered_tcp;
mod delegate;
mod replay;
mod tls_conn;

use std::net::SocketAddr;
use std::os::unix::io::AsRawFd;
use std::sync::Arc;

use pingora_core::apps::ServerApp;
use pingora_core::protocols::l4::socket::SocketAddr as PingoraAddr;
use pingora_core::protocols::l4::stream::Stream as L4Stream;
use pingora_core::protocols::{GetSocketDigest, SocketDigest, Stream};
use pingora_core::server::ShutdownWatch;
use tokio::net::TcpStream;

use crate::edge::{EdgeLimits, EdgeStream};

pub use buffered_tcp::{BufferedTcp, WRITE_BUFFER};
pub(crate) use delegate::{delegate_async_io, delegate_connection_facts};
pub use replay::ReplayTcp;
pub use tls_conn::{Handshake, TlsConn};

/// A plain-HTTP connection as the proxy serves it: `TCP_NODELAY` (without it, small responses
/// wait out the client's delayed ACK, ~40 ms each), the socket digest with both addresses known,
/// Pingora's write buffer, and the edge guard.
pub fn http_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    limits: EdgeLimits,
    allow_h2c: bool,
) -> Stream {
    set_nodelay(&tcp, peer);
    let socket = socket_digest(&tcp, peer);
    let mut stream = L4Stream::from(tcp);
    stream.set_socket_digest(socket);
    guarded(Box::new(BufferedTcp::new(stream)), limits, allow_h2c)
}

/// Serves one accepted connection until it closes: Pingora hands an HTTP/1 connection back
/// after each keep-alive request, and it is served again.
pub async fn serve<A: ServerApp>(app: &Arc<A>, stream: Stream, shutdown: &ShutdownWatch) {
    let mut next = Some(stream);
    while let Some(stream) = next {
        next = app.process_new(stream, shutdown).await;
    }
}

/// The edge guard around an accepted connection (plain or already-terminated TLS).
pub fn guarded(stream: Stream, limits: EdgeLimits, allow_h2c: bool) -> Stream {
    Box::new(EdgeStream::new(stream, limits, allow_h2c))
}

pub fn set_nodelay(tcp: &TcpStream, peer: SocketAddr) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
    }
}

/// The connection's addresses, known already: spares the proxy a getpeername/getsockname per
/// request.
pub fn socket_digest(tcp: &TcpStream, peer: SocketAddr) -> SocketDigest {
    let digest = SocketDigest::from_raw_fd(tcp.as_raw_fd());
    let _ = digest.peer_addr.set(Some(PingoraAddr::Inet(peer)));
    if let Ok(local) = tcp.local_addr() {
        let _ = digest.local_addr.set(Some(PingoraAddr::Inet(local)));
    }
    digest
}
