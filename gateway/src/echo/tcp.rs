//! echo-basic's TCP mode (`TCP_ECHO_SERVER`, shared FORMAT.md §2.3): a line protocol on plain TCP and TLS.
//!
//! After connecting (and the handshake, for TLS) the server writes [`WELCOME`], then answers lines:
//! `PING` -> `PONG`, `IS_TLS` -> `true`/`false`, `TEST` -> one JSON line describing the pod and the TLS
//! handshake. Other lines are ignored. Reads are bounded: a line longer than [`MAX_LINE`] or a connection
//! idle for [`IDLE_TIMEOUT`] ends the connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::EchoPod;

pub const WELCOME: &str = "Gateway API Test TCP Server\n";
pub const MAX_LINE: usize = 4096;
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Which of the pod's TCP ports a connection arrived on, reported in every `TEST` answer.
#[derive(Debug, Clone, Default)]
pub struct TcpPorts {
    /// `TCP_PORT` as configured.
    pub tcp: String,
    /// `TLS_PORT` as configured; empty without TLS material.
    pub tls: String,
}

/// The `TEST` answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TcpAssertions<'a> {
    pub namespace: &'a str,
    pub ingress: &'a str,
    pub service: &'a str,
    pub pod: &'a str,
    #[serde(rename = "tcpport")]
    pub tcp_port: &'a str,
    #[serde(rename = "tlsport", skip_serializing_if = "str::is_empty")]
    pub tls_port: &'a str,
    #[serde(rename = "isTLS")]
    pub is_tls: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<&'a TcpTlsInfo>,
}

/// The handshake as Go's `crypto/tls` names it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TcpTlsInfo {
    /// `tls.VersionName`: `TLS 1.3`, `TLS 1.2`.
    pub version: String,
    /// SNI received (empty without SNI).
    pub server_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub negotiated_protocol: String,
    /// The key exchange group as Go's `CurveID` prints it: `X25519`, `CurveP256`, ...
    #[serde(skip_serializing_if = "String::is_empty")]
    pub curves: String,
    pub cipher_suite: String,
}

impl TcpTlsInfo {
    pub fn from_connection(conn: &rustls::ServerConnection) -> Self {
        let version = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3".to_owned(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2".to_owned(),
            Some(other) => format!("{other:?}"),
            None => String::new(),
        };
        let curves = conn
            .negotiated_key_exchange_group()
            .map(|group| match group.name() {
                rustls::NamedGroup::secp256r1 => "CurveP256".to_owned(),
                rustls::NamedGroup::secp384r1 => "CurveP384".to_owned(),
                rustls::NamedGroup::secp521r1 => "CurveP521".to_owned(),
                other => format!("{other:?}"),
            })
            .unwrap_or_default();
        let info = super::TlsInfo::from_connection(conn);
        Self {
            version,
            server_name: info.server_name,
            negotiated_protocol: info.negotiated_protocol,
            curves,
            cipher_suite: info.cipher_suite,
        }
    }
}

/// The pod's TLS port: the server takes whichever ALPN protocol the client offers first, so
/// `negotiatedProtocol` reports what the client (or a gateway in between) asked for.
pub(super) async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    pod: Arc<EchoPod>,
    ports: Arc<TcpPorts>,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let Some(config) = tls else {
        return serve_lines(stream, remote, &pod, &ports, None).await;
    };
    let acceptor =
        tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
    let handshake = async {
        let start = acceptor.await?;
        let mut config = (*config).clone();
        config.alpn_protocols = start
            .client_hello()
            .alpn()
            .and_then(|mut offered| offered.next())
            .map(|first| vec![first.to_vec()])
            .unwrap_or_default();
        start.into_stream(Arc::new(config)).await
    };
    match tokio::time::timeout(IDLE_TIMEOUT, handshake).await {
        Ok(Ok(tls)) => {
            let info = TcpTlsInfo::from_connection(tls.get_ref().1);
            serve_lines(tls, remote, &pod, &ports, Some(info)).await;
        }
        Ok(Err(error)) => tracing::debug!(%error, %remote, "TCP echo TLS handshake failed"),
        Err(_) => tracing::debug!(%remote, "TCP echo TLS handshake timed out"),
    }
}

async fn serve_lines<T: AsyncRead + AsyncWrite + Unpin>(
    io: T,
    remote: SocketAddr,
    pod: &EchoPod,
    ports: &TcpPorts,
    tls: Option<TcpTlsInfo>,
) {
    if let Err(error) = exchange(io, pod, ports, tls.as_ref()).await {
        tracing::debug!(%error, %remote, "TCP echo connection ended with an error");
    }
}

async fn exchange<T: AsyncRead + AsyncWrite + Unpin>(
    io: T,
    pod: &EchoPod,
    ports: &TcpPorts,
    tls: Option<&TcpTlsInfo>,
) -> std::io::Result<()> {
    let mut io = BufReader::new(io);
    io.get_mut().write_all(WELCOME.as_bytes()).await?;
    io.get_mut().flush().await?;
    let mut line = Vec::new();
    loop {
        line.clear();
        // One more than the cap, so an over-long line is told apart from one exactly at it.
        let mut limited = (&mut io).take(MAX_LINE as u64 + 1);
        let read = tokio::time::timeout(IDLE_TIMEOUT, limited.read_until(b'\n', &mut line))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "idle"))??;
        if read == 0 {
            return Ok(());
        }
        if line.len() > MAX_LINE {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "line too long",
            ));
        }
        let answer = match String::from_utf8_lossy(&line).trim() {
            "PING" => "PONG\n".to_owned(),
            "IS_TLS" => format!("{}\n", tls.is_some()),
            "TEST" => {
                let identity = pod.identity();
                let assertions = TcpAssertions {
                    namespace: &identity.namespace,
                    ingress: &identity.ingress,
                    service: &identity.service,
                    pod: &identity.pod,
                    tcp_port: &ports.tcp,
                    tls_port: &ports.tls,
                    is_tls: tls.is_some(),
                    tls,
                };
                let mut json = serde_json::to_string(&assertions).map_err(std::io::Error::other)?;
                json.push('\n');
                json
            }
            _ => continue,
        };
        if pod.print {
            pod.say(format!("TCP {}: {answer}", line.escape_ascii()).trim_end());
        }
        io.get_mut().write_all(answer.as_bytes()).await?;
        io.get_mut().flush().await?;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::echo::{serve_port, EchoIdentity, EchoPort};
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn plain_connections_get_the_welcome_and_echo_basic_json() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pod = Arc::new(EchoPod::new(EchoIdentity {
            pod: "tcp-backend-abc-def".into(),
            namespace: "ns".into(),
            ..EchoIdentity::default()
        }));
        let ports = Arc::new(TcpPorts {
            tcp: "3000".into(),
            tls: String::new(),
        });
        let server = tokio::spawn(serve_port(listener, pod, EchoPort::Tcp(ports)));
        let stream = TcpStream::connect(addr).await.unwrap();
        let mut stream = BufReader::new(stream);
        let mut line = String::new();
        let mut ask = async |question: &str| {
            if !question.is_empty() {
                stream
                    .get_mut()
                    .write_all(question.as_bytes())
                    .await
                    .unwrap();
            }
            line.clear();
            stream.read_line(&mut line).await.unwrap();
            line.clone()
        };
        assert_eq!(ask("").await, WELCOME);
        assert_eq!(ask("PING\n").await, "PONG\n");
        // Unknown lines get no answer; the next known one still does.
        assert_eq!(ask("HELLO\r\nIS_TLS\r\n").await, "false\n");
        assert_eq!(
            ask("TEST\n").await,
            "{\"namespace\":\"ns\",\"ingress\":\"\",\"service\":\"\",\"pod\":\"tcp-backend-abc-def\",\
             \"tcpport\":\"3000\",\"isTLS\":false}\n"
        );
        server.abort();
    }
}
