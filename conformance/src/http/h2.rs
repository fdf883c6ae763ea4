//! HTTP/2 over TLS the way Go's client sends it: SNI from the TLS settings, `:authority` from the
//! request's host, and no `Host` field.
//!
//! reqwest takes SNI and `:authority` both from the URL and adds the host as a `Host` field
//! besides, which a server may refuse when the two differ (Pingora answers 400). Upstream's
//! misdirected-request test needs exactly that difference (SNI `example.org`, `:authority`
//! `second-example.org`), so H2 requests go out on a connection of their own here.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderMap, Method, Request};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::Received;
use crate::error_chain;

/// One H2 connection's settings: where to dial and what to say in the handshake.
pub(super) struct H2Client {
    pub(super) target: SocketAddr,
    pub(super) config: Arc<rustls::ClientConfig>,
    /// SNI and the name the certificate is verified against.
    pub(super) server_name: ServerName<'static>,
}

/// What one request carries.
pub(super) struct H2Request<'a> {
    pub(super) method: Method,
    /// `host[:port]`, sent as `:authority`.
    pub(super) authority: &'a str,
    pub(super) path: &'a str,
    pub(super) headers: HeaderMap,
    pub(super) body: Option<String>,
}

impl H2Client {
    /// Dials, handshakes and sends `req` on a fresh connection, then reads the whole response.
    pub(super) async fn send(&self, req: H2Request<'_>) -> Result<Received, String> {
        let tcp = TcpStream::connect(self.target)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let tls = TlsConnector::from(self.config.clone())
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| format!("TLS handshake: {}", error_chain(&e)))?;
        let (mut sender, connection) = h2::client::handshake(tls)
            .await
            .map_err(|e| format!("h2 handshake: {}", error_chain(&e)))?;
        let driver = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "h2 connection ended");
            }
        });
        let result = exchange(&mut sender, req).await;
        driver.abort();
        result
    }
}

async fn exchange(
    sender: &mut h2::client::SendRequest<bytes::Bytes>,
    req: H2Request<'_>,
) -> Result<Received, String> {
    let uri = format!("https://{}{}", req.authority, req.path);
    let mut request = Request::builder()
        .method(req.method)
        .uri(&uri)
        .body(())
        .map_err(|e| format!("request {uri}: {e}"))?;
    *request.headers_mut() = req.headers;
    let has_body = req.body.is_some();
    let (response, mut stream) = sender
        .send_request(request, !has_body)
        .map_err(|e| format!("send: {}", error_chain(&e)))?;
    if let Some(body) = req.body {
        stream
            .send_data(bytes::Bytes::from(body), true)
            .map_err(|e| format!("send body: {}", error_chain(&e)))?;
    }
    let response = response
        .await
        .map_err(|e| format!("response: {}", error_chain(&e)))?;
    let status = response.status().as_u16();
    let version = format!("{:?}", response.version());
    let headers = super::header_pairs(response.headers());
    let mut data = response.into_body();
    let mut body = Vec::new();
    while let Some(chunk) = data.data().await {
        let chunk = chunk.map_err(|e| format!("body: {}", error_chain(&e)))?;
        // Read bytes are released at once: the body is bounded by the attempt's deadline.
        let _ = data.flow_control().release_capacity(chunk.len());
        body.extend_from_slice(&chunk);
    }
    Ok(Received {
        status,
        version,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}
