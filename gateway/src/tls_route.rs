//! The data plane of TLSRoutes: connections on `TLS` listeners, routed on the ClientHello's SNI
//! to a backend and streamed to it byte for byte.
//!
//! - Passthrough: Sluice never handshakes. The ClientHello bytes already read (to learn the
//!   SNI) are written to the backend first, then both sockets are spliced, so the client's TLS
//!   session, SNI and ALPN included, reaches the backend untouched.
//! - Terminate: Sluice completes the handshake with the listener's certificate (no ALPN, see
//!   [`crate::tls`]) and streams the plaintext to the backend, over TLS verified as its
//!   BackendTLSPolicy says when it has one.
//!
//! A connection whose SNI selects no route, or whose pick is an invalid backendRef or a Service
//! without endpoints, is closed without a byte sent back: there is no TLS alert Sluice can send
//! without terminating. Every connection ends in one access-log line and one count of
//! `sluice_tls_route_connections_total` (see [`Outcome`]).

mod metrics;
mod splice;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rustls::sign::CertifiedKey;
use sluice_controller::snapshot::{
    BackendTlsMode, Listener, ListenerKind, Snapshot, TlsRouteEntry,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

pub use metrics::TlsRouteMetrics;
pub use splice::{splice, End, Traffic};

use crate::upstream::{self, TlsOrigin};

/// How TLSRoute streams are held; the defaults follow Envoy's `tcp_proxy`.
#[derive(Debug, Clone)]
pub struct TlsRouteSettings {
    /// TCP connect to a backend, and its TLS handshake when it has a BackendTLSPolicy.
    pub connect_timeout: Duration,
    /// A stream on which no byte moved either way for this long is closed.
    pub idle_timeout: Duration,
    pub metrics: TlsRouteMetrics,
}

impl Default for TlsRouteSettings {
    fn default() -> TlsRouteSettings {
        TlsRouteSettings {
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(3600),
            metrics: TlsRouteMetrics::default(),
        }
    }
}

/// What follows the ClientHello on a `TLS` listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Passthrough,
    Terminate,
}

impl Mode {
    /// The listener kind's mode; `None` for HTTP listeners.
    pub fn of(kind: ListenerKind) -> Option<Mode> {
        match kind {
            ListenerKind::Http => None,
            ListenerKind::TlsPassthrough => Some(Mode::Passthrough),
            ListenerKind::TlsTerminate => Some(Mode::Terminate),
        }
    }

    /// The `mode` metric label and access-log field.
    pub fn label(self) -> &'static str {
        match self {
            Mode::Passthrough => "passthrough",
            Mode::Terminate => "terminate",
        }
    }
}

/// How a connection ended: the `result` label and access-log field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Both sides closed.
    Closed,
    /// The SNI selects no TLSRoute on the listener.
    NoRoute,
    /// The pick was an invalid backendRef, or a Service with no ready endpoint.
    NoBackend,
    ConnectError,
    ConnectTimeout,
    /// The backend failed verification under its BackendTLSPolicy (terminate only).
    BackendTls,
    /// The client's handshake with Sluice failed (terminate only).
    Handshake,
    IdleTimeout,
    /// A read or write failed mid-stream (reset, TLS error).
    Error,
    /// Still open when shutdown's grace period ran out.
    Aborted,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Closed => "closed",
            Outcome::NoRoute => "no_route",
            Outcome::NoBackend => "no_backend",
            Outcome::ConnectError => "connect_error",
            Outcome::ConnectTimeout => "connect_timeout",
            Outcome::BackendTls => "backend_tls",
            Outcome::Handshake => "tls_handshake",
            Outcome::IdleTimeout => "idle_timeout",
            Outcome::Error => "error",
            Outcome::Aborted => "aborted",
        }
    }
}

/// What a connection is routed to, taken from the snapshot once at accept: a publish that
/// removes the route leaves established streams alone.
#[derive(Debug)]
pub struct Target {
    pub mode: Mode,
    gateway: String,
    listener: String,
    route: Option<TlsRouteEntry>,
    /// The Gateway's client certificate for TLS backends.
    client_certificate: Option<Arc<CertifiedKey>>,
}

impl Target {
    /// `None` for an HTTP listener.
    pub fn of(snapshot: &Snapshot, listener: &Listener, sni: Option<&str>) -> Option<Target> {
        Some(Target {
            mode: Mode::of(listener.kind)?,
            gateway: listener.gateway.clone(),
            listener: listener.name.clone(),
            route: listener.tls_routes.lookup(sni).cloned(),
            client_certificate: snapshot
                .backend_client_certificates
                .get(&listener.gateway)
                .cloned(),
        })
    }
}

const NO_ROUTE: &str = "no TLSRoute on the listener matches the SNI";

/// A passthrough connection whose ClientHello (`hello`, as read) selected `target`.
pub async fn passthrough(
    settings: &TlsRouteSettings,
    target: Target,
    peer: SocketAddr,
    sni: Option<String>,
    hello: Vec<u8>,
    mut tcp: TcpStream,
) {
    let mut record = Record::open(settings, &target, peer, sni);
    stream(settings, &target, &mut record, &mut tcp, &hello).await;
}

/// A terminate connection: `handshake` completes the client's handshake (not started when no
/// route matches, so an unrouted client costs no key exchange).
pub async fn terminate<H, S>(
    settings: &TlsRouteSettings,
    target: Target,
    peer: SocketAddr,
    sni: Option<String>,
    handshake: H,
) where
    H: std::future::Future<Output = Result<S, String>>,
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut record = Record::open(settings, &target, peer, sni);
    if target.route.is_none() {
        record.finish(Outcome::NoRoute, Some(NO_ROUTE.into()));
        return;
    }
    match handshake.await {
        Ok(mut tls) => stream(settings, &target, &mut record, &mut tls, &[]).await,
        Err(e) => record.finish(Outcome::Handshake, Some(e)),
    }
}

/// Picks the backend, connects, sends `first` (the passthrough ClientHello), then splices.
async fn stream<C>(
    settings: &TlsRouteSettings,
    target: &Target,
    record: &mut Record,
    client: &mut C,
    first: &[u8],
) where
    C: AsyncRead + AsyncWrite + Unpin + Send + ?Sized,
{
    let Some(route) = &target.route else {
        return record.finish(Outcome::NoRoute, Some(NO_ROUTE.into()));
    };
    let chosen = match upstream::choose(&route.action, &mut rand::rng()) {
        Ok(chosen) => chosen,
        Err(e) => return record.finish(Outcome::NoBackend, Some(e.to_string())),
    };
    record.backend = chosen.backend.name.clone();
    record.upstream = Some(chosen.endpoint);
    let tls = match (&chosen.backend.tls, target.mode) {
        (Some(BackendTlsMode::Verify(tls)), Mode::Terminate) => Some(tls),
        // Passthrough: the TLS to the backend is the client's own session.
        _ => None,
    };
    let connected = match tls {
        Some(tls) => {
            let origin = TlsOrigin::for_stream(
                tls,
                target.client_certificate.as_ref(),
                settings.connect_timeout,
            );
            connect_tls(&origin, chosen.endpoint).await
        }
        None => connect_tcp(chosen.endpoint, settings.connect_timeout).await,
    };
    let mut backend = match connected {
        Ok(backend) => backend,
        Err((outcome, e)) => return record.finish(outcome, Some(e)),
    };
    if !first.is_empty() {
        if let Err(e) = backend.write_all(first).await {
            return record.finish(
                Outcome::Error,
                Some(format!("writing the ClientHello: {e}")),
            );
        }
        let n = first.len() as u64;
        record.traffic.upstream.fetch_add(n, Ordering::Relaxed);
    }
    match splice(
        client,
        &mut *backend,
        &record.traffic,
        settings.idle_timeout,
    )
    .await
    {
        End::Closed => record.finish(Outcome::Closed, None),
        End::Idle => record.finish(Outcome::IdleTimeout, None),
        End::Failed(e) => record.finish(Outcome::Error, Some(e.to_string())),
    }
}

/// A backend connection, plain or TLS.
trait BackendIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> BackendIo for T {}

type Connected = Result<Box<dyn BackendIo>, (Outcome, String)>;

async fn connect_tcp(endpoint: SocketAddr, timeout: Duration) -> Connected {
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

async fn connect_tls(origin: &TlsOrigin, endpoint: SocketAddr) -> Connected {
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

/// One connection's access-log line and counts, written when it is dropped: on every return
/// path, and when shutdown's grace period drops the connection's task mid-stream.
struct Record {
    metrics: TlsRouteMetrics,
    mode: Mode,
    gateway: String,
    listener: String,
    route: String,
    backend: String,
    upstream: Option<SocketAddr>,
    peer: SocketAddr,
    sni: Option<String>,
    traffic: Traffic,
    end: Option<(Outcome, Option<String>)>,
}

impl Record {
    fn open(
        settings: &TlsRouteSettings,
        target: &Target,
        peer: SocketAddr,
        sni: Option<String>,
    ) -> Record {
        let metrics = settings.metrics.clone();
        metrics
            .active
            .with_label_values(&[target.mode.label()])
            .inc();
        Record {
            metrics,
            mode: target.mode,
            gateway: target.gateway.clone(),
            listener: target.listener.clone(),
            route: target
                .route
                .as_ref()
                .map_or_else(String::new, |r| r.route.label.clone()),
            backend: String::new(),
            upstream: None,
            peer,
            sni,
            traffic: Traffic::new(),
            end: None,
        }
    }

    fn finish(&mut self, outcome: Outcome, error: Option<String>) {
        if let Some(e) = &error {
            tracing::debug!(peer = %self.peer, sni = ?self.sni, result = outcome.label(), error = %e, "TLSRoute connection closed");
        }
        self.end = Some((outcome, error));
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        let (outcome, error) = self.end.take().unwrap_or((Outcome::Aborted, None));
        let mode = self.mode.label();
        let m = &self.metrics;
        m.active.with_label_values(&[mode]).dec();
        m.connections
            .with_label_values(&[
                &self.gateway,
                &self.route,
                &self.backend,
                mode,
                outcome.label(),
            ])
            .inc();
        let bytes_in = self.traffic.upstream.load(Ordering::Relaxed);
        let bytes_out = self.traffic.downstream.load(Ordering::Relaxed);
        for (direction, n) in [("upstream", bytes_in), ("downstream", bytes_out)] {
            if n > 0 {
                m.bytes
                    .with_label_values(&[&self.gateway, &self.route, direction])
                    .inc_by(n);
            }
        }
        tracing::info!(
            target: "sluice::access",
            kind = "TLSRoute",
            client = %self.peer,
            sni = self.sni.as_deref().unwrap_or(""),
            gateway = %self.gateway,
            listener = %self.listener,
            mode,
            route = %self.route,
            backend = %self.backend,
            upstream = self.upstream.map(|a| a.to_string()).unwrap_or_default(),
            bytes_in,
            bytes_out,
            micros = self.traffic.elapsed().as_micros() as u64,
            result = outcome.label(),
            error,
            "connection"
        );
    }
}
