//! TCP traffic of a case (FORMAT.md §4.9): echo-basic's line protocol over plain TCP or TLS (`tcp`), bare
//! connects (`tcpConnect`) and handshakes that must be refused (`tlsConnect`).
//!
//! Unlike HTTP, one success suffices; for `tcp` only connection, I/O and JSON errors are retried: the first
//! attempt that completes the exchange is final and must meet every expectation (upstream asserts there).

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::case::{RequestEntry, TcpExpect, TcpMode, TcpRequest, TlsConnectRequest};
use crate::drive::{drive, Outcome};
use crate::error_chain;
use crate::http::Verdict;

const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longer answer lines are an error; a `TEST` answer is a few hundred bytes.
const MAX_LINE: u64 = 64 * 1024;

pub use sluice_gateway::echo::tcp::WELCOME;

/// Where to connect and, for TLS, with which client config and SNI.
#[derive(Clone)]
pub struct TcpTarget {
    pub addr: SocketAddr,
    pub tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
}

/// The lines one exchange read back (`pong`/`is_tls` are `None` in `testOnly` mode).
#[derive(Debug, Clone, Default)]
pub struct TcpAnswer {
    pub welcome: String,
    pub pong: Option<String>,
    pub is_tls: Option<String>,
    pub test: TestAnswer,
}

/// The `TEST` JSON (echo-basic's `TCPAssertions`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestAnswer {
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub pod: String,
    #[serde(rename = "isTLS", default)]
    pub is_tls: bool,
    #[serde(default)]
    pub tls: Option<TestTls>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestTls {
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub server_name: String,
    #[serde(default)]
    pub negotiated_protocol: String,
    #[serde(default)]
    pub cipher_suite: String,
}

/// A TLS client config trusting only `trust_pem` (Go's name rules), TLS >= 1.2, offering `alpn`.
pub fn tls_client_config(
    trust_pem: Option<&str>,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut config =
        crate::http::tls::client_config(trust_pem, None, b"", Arc::new(AtomicBool::new(false)))
            .map_err(|e| error_chain(&e))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// One connection: welcome, then `PING`/`IS_TLS` (full mode) and `TEST`. `Err` on connection, I/O or
/// JSON errors: what convergence retries.
pub async fn exchange(target: &TcpTarget, mode: TcpMode) -> Result<TcpAnswer, String> {
    let run = async {
        let tcp = TcpStream::connect(target.addr)
            .await
            .map_err(|e| format!("connect {}: {e}", target.addr))?;
        match &target.tls {
            None => lines(tcp, mode).await,
            Some((config, server_name)) => {
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(server_name.clone(), tcp)
                    .await
                    .map_err(|e| format!("TLS handshake: {}", error_chain(&e)))?;
                lines(tls, mode).await
            }
        }
    };
    tokio::time::timeout(ATTEMPT_TIMEOUT, run)
        .await
        .map_err(|_| format!("no complete exchange within {ATTEMPT_TIMEOUT:?}"))?
}

async fn lines<T: AsyncRead + AsyncWrite + Unpin>(
    io: T,
    mode: TcpMode,
) -> Result<TcpAnswer, String> {
    let mut io = BufReader::new(io);
    let mut answer = TcpAnswer {
        welcome: read_line(&mut io).await?,
        ..TcpAnswer::default()
    };
    if mode == TcpMode::Full {
        answer.pong = Some(ask(&mut io, "PING").await?);
        answer.is_tls = Some(ask(&mut io, "IS_TLS").await?);
    }
    let test = ask(&mut io, "TEST").await?;
    answer.test = serde_json::from_str(&test).map_err(|e| format!("TEST answer {test:?}: {e}"))?;
    Ok(answer)
}

async fn ask<T: AsyncRead + AsyncWrite + Unpin>(
    io: &mut BufReader<T>,
    line: &str,
) -> Result<String, String> {
    io.get_mut()
        .write_all(format!("{line}\n").as_bytes())
        .await
        .map_err(|e| format!("send {line}: {e}"))?;
    io.get_mut()
        .flush()
        .await
        .map_err(|e| format!("send {line}: {e}"))?;
    read_line(io).await
}

/// One line including its `\n`; EOF before it is an error.
async fn read_line<T: AsyncRead + Unpin>(io: &mut BufReader<T>) -> Result<String, String> {
    let mut line = Vec::new();
    io.take(MAX_LINE)
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| format!("read: {e}"))?;
    if line.last() != Some(&b'\n') {
        return Err(format!(
            "connection ended or line too long after {:?}",
            String::from_utf8_lossy(&line)
        ));
    }
    String::from_utf8(line).map_err(|e| format!("read: {e}"))
}

/// Every expectation of a completed exchange; the first unmet one.
pub fn check_answer(
    answer: &TcpAnswer,
    mode: TcpMode,
    expect: &TcpExpect,
    sent_sni: Option<&str>,
) -> Result<(), String> {
    if answer.welcome != WELCOME {
        return Err(format!("welcome line {:?}", answer.welcome));
    }
    if let Some(pong) = &answer.pong {
        if pong != "PONG\n" {
            return Err(format!("PING answered {pong:?}"));
        }
    }
    if let (Some(is_tls), Some(want)) = (&answer.is_tls, expect.backend_is_tls) {
        if is_tls.trim_end() != want.to_string() {
            return Err(format!("IS_TLS answered {is_tls:?}, expected {want}"));
        }
    }
    let test = &answer.test;
    if let Some(backend) = &expect.backend {
        if mode == TcpMode::Full {
            let namespace = backend.namespace.as_deref().unwrap_or_default();
            if test.namespace != namespace {
                return Err(format!("answered from namespace {:?}", test.namespace));
            }
        }
        if let Some(service) = &backend.service {
            if !test.pod.starts_with(&format!("{service}-")) {
                return Err(format!("pod {:?} is not of {service}", test.pod));
            }
        }
    }
    if expect.any_pod && test.pod.is_empty() {
        return Err("the TEST answer names no pod".to_owned());
    }
    if let Some(sni) = &expect.sni {
        let seen = test.tls.as_ref().map(|t| t.server_name.as_str());
        if seen != Some(sni.as_str()) {
            return Err(format!(
                "the backend saw SNI {seen:?}, expected {sni:?} (client sent {sent_sni:?})"
            ));
        }
    }
    Ok(())
}

/// Runs a `tcp` entry: retried until an exchange completes; that one must meet every expectation.
pub(crate) async fn run(
    entry: &RequestEntry,
    request: &TcpRequest,
    expect: &TcpExpect,
    addr: SocketAddr,
    trust_pem: Option<&str>,
) -> Result<(), String> {
    let tls = if request.tls {
        let name = request
            .server_name
            .clone()
            .unwrap_or_else(|| addr.ip().to_string());
        let server_name =
            ServerName::try_from(name.clone()).map_err(|e| format!("serverName {name:?}: {e}"))?;
        Some((tls_client_config(trust_pem, &[])?, server_name))
    } else {
        None
    };
    let target = TcpTarget { addr, tls };
    let sni = request.server_name.as_deref();
    drive(entry, 1, || async {
        match exchange(&target, request.mode).await {
            Err(error) => outcome(Verdict::NotYet(error), String::new()),
            Ok(answer) => match check_answer(&answer, request.mode, expect, sni) {
                Ok(()) => outcome(Verdict::Pass, answer.test.pod),
                Err(reason) => {
                    let reason = format!("{reason} (answer {answer:?})");
                    outcome(Verdict::Fatal(reason), answer.test.pod)
                }
            },
        }
    })
    .await
}

fn outcome(verdict: Verdict, pod: String) -> Outcome {
    let detail = match &verdict {
        Verdict::Pass => String::new(),
        Verdict::NotYet(reason) | Verdict::Fatal(reason) => reason.clone(),
    };
    Outcome {
        verdict,
        detail,
        pod,
    }
}

/// Runs a `tcpConnect` entry: some connection is accepted within the window.
pub(crate) async fn run_connect(
    entry: &RequestEntry,
    expect: &TcpExpect,
    addr: SocketAddr,
) -> Result<(), String> {
    if !expect.connected {
        return Err("a tcpConnect entry expects `connected: true`".to_owned());
    }
    drive(entry, 1, || async {
        match tokio::time::timeout(ATTEMPT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(_)) => outcome(Verdict::Pass, String::new()),
            Ok(Err(e)) => outcome(
                Verdict::NotYet(format!("connect {addr}: {e}")),
                String::new(),
            ),
            Err(_) => outcome(
                Verdict::NotYet(format!("connect {addr}: timed out")),
                String::new(),
            ),
        }
    })
    .await
}

/// How a `tlsConnect` handshake ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handshake {
    /// The handshake completed. Without trust configured no certificate verifies, so against a real TLS
    /// server this is rare; a server that answers is normally [`Handshake::Other`].
    Completed,
    /// EOF or a reset during the handshake: what a gateway without a route does.
    Refused(String),
    /// Anything else: connection refused, an alert, a certificate the client rejects, a timeout.
    Other(String),
}

/// TCP connect and a TLS (>= 1.2) handshake with `server_name` as SNI and no trust configured.
pub async fn tls_connect(addr: SocketAddr, server_name: &str) -> Handshake {
    let name = match ServerName::try_from(server_name.to_owned()) {
        Ok(name) => name,
        Err(e) => return Handshake::Other(format!("serverName {server_name:?}: {e}")),
    };
    let config = match tls_client_config(None, &[]) {
        Ok(config) => config,
        Err(e) => return Handshake::Other(e),
    };
    let run = async {
        let tcp = match TcpStream::connect(addr).await {
            Ok(tcp) => tcp,
            Err(e) => return Handshake::Other(format!("connect {addr}: {e}")),
        };
        match tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
        {
            Ok(_) => Handshake::Completed,
            Err(e) => {
                use std::io::ErrorKind::{ConnectionAborted, ConnectionReset, UnexpectedEof};
                let text = error_chain(&e);
                if matches!(
                    e.kind(),
                    UnexpectedEof | ConnectionReset | ConnectionAborted
                ) {
                    Handshake::Refused(text)
                } else {
                    Handshake::Other(text)
                }
            }
        }
    };
    tokio::time::timeout(ATTEMPT_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| Handshake::Other("handshake timed out".to_owned()))
}

/// Runs a `tlsConnect` entry: the handshake must be refused (EOF/reset); anything else is "not yet".
pub(crate) async fn run_tls_connect(
    entry: &RequestEntry,
    request: &TlsConnectRequest,
    expect: &TcpExpect,
    addr: SocketAddr,
) -> Result<(), String> {
    if !expect.rejected {
        return Err("a tlsConnect entry expects `rejected: true`".to_owned());
    }
    let server_name = request
        .server_name
        .clone()
        .unwrap_or_else(|| addr.ip().to_string());
    drive(entry, 1, || async {
        match tls_connect(addr, &server_name).await {
            Handshake::Refused(_) => outcome(Verdict::Pass, String::new()),
            Handshake::Completed => outcome(
                Verdict::NotYet(format!("TLS handshake with SNI {server_name} succeeded")),
                String::new(),
            ),
            Handshake::Other(error) => outcome(
                Verdict::NotYet(format!("TLS handshake with SNI {server_name}: {error}")),
                String::new(),
            ),
        }
    })
    .await
}

#[cfg(test)]
mod tests;
