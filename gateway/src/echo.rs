//! The conformance echo backend (echo-basic v0.1.0 behaviour, shared FORMAT.md §2.1) as a library and `sluice echo`.
//!
//! One [`EchoPod`] stands for one Kubernetes pod: its identity, its request log and its retry counters are shared
//! by every port it serves ([`EchoPort::Http`], [`EchoPort::H2c`], [`EchoPort::Https`]), as in the real pod.
//! Tests and the conformance harness bind `127.0.0.1:0` themselves and call [`serve_port`]; they read what each
//! pod received from its [`RequestLog`] instead of scraping stdout.

mod cli;
mod duration;
pub mod grpc;
mod handler;
mod record;
mod status_override;
pub mod tcp;
mod tls_info;
mod websocket;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

pub use cli::{run_cli, EchoMode, EchoTls};
pub use duration::{parse_go_duration, DurationError};
pub use record::{ReceivedRequest, RequestLog};
pub use status_override::{StatusOverride, StatusOverrideError};
pub use tcp::TcpPorts;
pub use tls_info::TlsInfo;

use handler::ConnInfo;

/// Who answers: the downward-API environment of an echo-basic container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EchoIdentity {
    /// `POD_NAME`; the conformance suite identifies backends by its prefix.
    pub pod: String,
    /// `NAMESPACE`.
    pub namespace: String,
    /// `SERVICE_NAME` (empty for the base backends).
    pub service: String,
    /// `INGRESS_NAME`.
    pub ingress: String,
    /// `HTTP_PORT` as configured, reported verbatim in the `httpPort` field.
    pub http_port: String,
}

/// What a request that carries a body is answered with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BodyMode {
    /// Always the echo JSON (echo-basic ignores request bodies); the body is only measured and logged.
    #[default]
    Json,
    /// A non-empty request body is sent back verbatim (same `Content-Type`), an empty one gets the echo JSON.
    /// `sluice echo` uses this so `curl -d 'Hello world'` through a mirror route answers `Hello world`.
    EchoBody,
}

/// Which listener of the pod a connection arrived on.
#[derive(Clone)]
pub enum EchoPort {
    /// `HTTP_PORT`: HTTP/1.1 only.
    Http,
    /// `H2C_PORT`: HTTP/1.1 and prior-knowledge HTTP/2; plain HTTP/1.1 without `Upgrade: h2c` gets 400.
    H2c,
    /// `HTTPS_PORT`: TLS (see [`tls_server_config`]) then HTTP/1.1 or HTTP/2 by ALPN.
    Https(Arc<rustls::ServerConfig>),
    /// gRPC mode's `HTTP_PORT`: prior-knowledge HTTP/2 gRPC ([`grpc`]).
    Grpc,
    /// gRPC mode's `HTTPS_PORT`: TLS (see [`grpc_tls_server_config`]) then HTTP/2 gRPC.
    GrpcTls(Arc<rustls::ServerConfig>),
    /// TCP mode's `TCP_PORT`: echo-basic's line protocol ([`tcp`]).
    Tcp(Arc<TcpPorts>),
    /// TCP mode's `TLS_PORT`: TLS (see [`tcp_tls_server_config`]) then the line protocol.
    TcpTls(Arc<TcpPorts>, Arc<rustls::ServerConfig>),
}

/// Errors of the echo server; per-connection failures are logged, never returned.
#[derive(Debug, thiserror::Error)]
pub enum EchoError {
    #[error("cannot bind echo listener on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the echo listener's local address")]
    LocalAddr(#[source] std::io::Error),
    #[error("no certificate found in the echo server's TLS certificate PEM")]
    NoCertificate,
    #[error("invalid PEM in the echo server's TLS material ({what})")]
    Pem {
        what: &'static str,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("invalid echo server TLS configuration")]
    Tls(#[source] rustls::Error),
    #[error("invalid client CA bundle for the echo server")]
    ClientVerifier(#[source] rustls::server::VerifierBuilderError),
    #[error("cannot read {path}")]
    ReadFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One echo pod: identity plus the state its ports share.
pub struct EchoPod {
    identity: EchoIdentity,
    log: RequestLog,
    print: bool,
    /// Printed lines go out as `sluice::echo` events (JSON with `--log-format json`).
    json: bool,
    body_mode: BodyMode,
    /// `--status PATH=CODE`: checked in order before echo-basic's own routes.
    status_overrides: Vec<StatusOverride>,
    // Attempts per retry-simulator uuid; per pod, in memory, like echo-basic.
    retries: Mutex<HashMap<String, u64>>,
}

// === impl EchoPod ===

impl EchoPod {
    /// A quiet pod answering JSON, as the conformance harness wants it.
    pub fn new(identity: EchoIdentity) -> Self {
        Self {
            identity,
            log: RequestLog::default(),
            print: false,
            json: false,
            body_mode: BodyMode::Json,
            status_overrides: Vec::new(),
            retries: Mutex::new(HashMap::new()),
        }
    }

    /// Print each request head (and echo-basic's `Echoing back ...` line) to stdout.
    pub fn with_printing(mut self, print: bool) -> Self {
        self.print = print;
        self
    }

    /// Printed lines follow `--log-format`: plain stdout lines for text (echo-basic's own
    /// format, which log readers grep), `sluice::echo` events for JSON.
    pub fn with_log_format(mut self, format: crate::log_format::LogFormat) -> Self {
        self.json = format == crate::log_format::LogFormat::Json;
        self
    }

    /// Prints one line of what this pod saw, in the chosen format.
    pub(crate) fn say(&self, line: &str) {
        if self.json {
            tracing::info!(target: "sluice::echo", pod = %self.identity.pod, "{line}");
        } else {
            println!("{line}");
        }
    }

    pub fn with_body_mode(mut self, body_mode: BodyMode) -> Self {
        self.body_mode = body_mode;
        self
    }

    /// Requests whose path starts with an override's prefix get the echo JSON with its status
    /// (the first match wins), whatever echo-basic would have answered.
    pub fn with_status_overrides(mut self, overrides: Vec<StatusOverride>) -> Self {
        self.status_overrides = overrides;
        self
    }

    pub fn identity(&self) -> &EchoIdentity {
        &self.identity
    }

    /// Every request this pod received, on any port, in arrival order.
    pub fn log(&self) -> &RequestLog {
        &self.log
    }

    /// Counts one attempt for `uuid`; true while the simulator must still fail (attempts so far < `succeed_after`).
    fn retry_should_fail(&self, uuid: &str, succeed_after: u64) -> bool {
        let mut retries = self.retries.lock().unwrap_or_else(PoisonError::into_inner);
        let count = retries.entry(uuid.to_owned()).or_insert(0);
        if *count < succeed_after {
            *count += 1;
            true
        } else {
            false
        }
    }
}

/// Serves one pod's plain HTTP/1.1 port with a fresh quiet [`EchoPod`].
pub async fn serve(listener: TcpListener, identity: EchoIdentity) -> Result<(), EchoError> {
    serve_port(listener, Arc::new(EchoPod::new(identity)), EchoPort::Http).await
}

/// Accepts connections until the future is dropped; dropping it also aborts the open connections.
pub async fn serve_port(
    listener: TcpListener,
    pod: Arc<EchoPod>,
    port: EchoPort,
) -> Result<(), EchoError> {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // EMFILE and friends are transient: keep the pod alive.
                tracing::warn!(%error, "echo accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let pod = pod.clone();
        match port.clone() {
            EchoPort::Grpc => connections.spawn(grpc::serve_connection(stream, remote, pod, None)),
            EchoPort::GrpcTls(config) => {
                connections.spawn(grpc::serve_connection(stream, remote, pod, Some(config)))
            }
            EchoPort::Tcp(ports) => {
                connections.spawn(tcp::serve_connection(stream, remote, pod, ports, None))
            }
            EchoPort::TcpTls(ports, config) => connections.spawn(tcp::serve_connection(
                stream,
                remote,
                pod,
                ports,
                Some(config),
            )),
            http => connections.spawn(serve_connection(stream, remote, pod, http)),
        };
    }
}

/// Server TLS config for an `HTTPS_PORT`: ALPN h2 + http/1.1; with `client_ca_pem`, client certificates are
/// verified when presented but not required (echo-basic's `TLS_CLIENT_CACERTS`).
pub fn tls_server_config(
    cert_pem: &str,
    key_pem: &str,
    client_ca_pem: Option<&str>,
) -> Result<Arc<rustls::ServerConfig>, EchoError> {
    let mut config = server_config(cert_pem, key_pem, client_ca_pem)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Server TLS config for gRPC mode's `HTTPS_PORT`: ALPN h2 only, no client certificates.
pub fn grpc_tls_server_config(
    cert_pem: &str,
    key_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, EchoError> {
    let mut config = server_config(cert_pem, key_pem, None)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Server TLS config for TCP mode's `TLS_PORT`: TLS 1.2 and 1.3, ALPN chosen per connection ([`tcp`]).
pub fn tcp_tls_server_config(
    cert_pem: &str,
    key_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, EchoError> {
    server_config(cert_pem, key_pem, None).map(Arc::new)
}

fn server_config(
    cert_pem: &str,
    key_pem: &str,
    client_ca_pem: Option<&str>,
) -> Result<rustls::ServerConfig, EchoError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| EchoError::Pem {
            what: "certificate",
            source,
        })?;
    if certs.is_empty() {
        return Err(EchoError::NoCertificate);
    }
    let key =
        PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|source| EchoError::Pem {
            what: "private key",
            source,
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(EchoError::Tls)?;
    let builder = match client_ca_pem {
        None => builder.with_no_client_auth(),
        Some(ca_pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for ca in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
                let ca = ca.map_err(|source| EchoError::Pem {
                    what: "client CA",
                    source,
                })?;
                roots.add(ca).map_err(EchoError::Tls)?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .allow_unauthenticated()
            .build()
            .map_err(EchoError::ClientVerifier)?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder.with_single_cert(certs, key).map_err(EchoError::Tls)
}

async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    pod: Arc<EchoPod>,
    port: EchoPort,
) {
    // A duplicate of the socket outlives hyper's copy so the retry simulator can turn the close into an RST.
    let (stream, keeper) = match split_keeper(stream) {
        Ok(pair) => pair,
        Err(error) => {
            tracing::debug!(%error, "echo connection setup failed");
            return;
        }
    };
    let abort = Arc::new(AtomicBool::new(false));
    let mut info = ConnInfo {
        remote,
        kind: handler::PortKind::Http,
        tls: None,
        abort: abort.clone(),
    };
    let result = match port {
        EchoPort::Http => {
            let service = service_fn(move |req| handler::handle(pod.clone(), info.clone(), req));
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await
                .map_err(|e| e.to_string())
        }
        EchoPort::H2c => {
            info.kind = handler::PortKind::H2c;
            let service = service_fn(move |req| handler::handle(pod.clone(), info.clone(), req));
            auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await
                .map_err(|e| e.to_string())
        }
        EchoPort::Https(config) => {
            let tls = match tokio_rustls::TlsAcceptor::from(config).accept(stream).await {
                Ok(tls) => tls,
                Err(error) => {
                    tracing::debug!(%error, %remote, "echo TLS handshake failed");
                    return;
                }
            };
            info.kind = handler::PortKind::Https;
            info.tls = Some(Arc::new(TlsInfo::from_connection(tls.get_ref().1)));
            let service = service_fn(move |req| handler::handle(pod.clone(), info.clone(), req));
            auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(tls), service)
                .await
                .map_err(|e| e.to_string())
        }
        // serve_port hands these to the gRPC and TCP servers instead.
        EchoPort::Grpc | EchoPort::GrpcTls(_) | EchoPort::Tcp(_) | EchoPort::TcpTls(..) => Ok(()),
    };
    if let Err(error) = result {
        tracing::debug!(%error, %remote, "echo connection ended with an error");
    }
    if abort.load(Ordering::Acquire) {
        if let Ok(keeper) = TcpStream::from_std(keeper) {
            // Linger 0 makes the final close send RST: the client sees a reset, not a response.
            let _ = keeper.set_zero_linger();
        }
    }
}

fn split_keeper(stream: TcpStream) -> std::io::Result<(TcpStream, std::net::TcpStream)> {
    let std = stream.into_std()?;
    let keeper = std.try_clone()?;
    Ok((TcpStream::from_std(std)?, keeper))
}
