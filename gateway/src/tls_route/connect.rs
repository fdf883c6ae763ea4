//! The backend side of a TLSRoute stream: TCP, or TLS verified under a BackendTLSPolicy.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::Outcome;
use crate::upstream::TlsOrigin;

/// A backend connection, plain or TLS.
pub(super) trait BackendIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> BackendIo for T {}

pub(super) type Connected = Result<Box<dyn BackendIo>, (Outcome, String)>;

pub(super) async fn connect_tcp(endpoint: SocketAddr, timeout: Duration) -> Connected {
    match tokio::time::timeout(timeout, TcpStream::connect(endpoint)).await {
        Ok(Ok(tcp)) => {
            // Small records of an interactive protocol must not wait out a delayed ACK.
            let _ = tcp.set_nodelay(true);
            Ok(Box::new(tcp))
        }
        Ok(Err(e)) => Err((
            Outcome::ConnectError,
            format!("connecting to {endpoint}: {e}"),
        )),
        Err(_) => Err((
            Outcome::ConnectTimeout,
            format!("connecting to {endpoint}: no answer within {timeout:?}"),
        )),
    }
}

pub(super) async fn connect_tls(origin: &TlsOrigin, endpoint: SocketAddr) -> Connected {
    use pingora_error::ErrorType;
    match origin.open(endpoint).await {
        Ok(tls) => Ok(Box::new(tls)),
        Err(e) => {
            let outcome = match e.etype() {
                ErrorType::ConnectTimedout => Outcome::ConnectTimeout,
                ErrorType::TLSHandshakeFailure | ErrorType::InvalidCert => Outcome::BackendTls,
                _ => Outcome::ConnectError,
            };
            Err((outcome, e.to_string()))
        }
    }
}
