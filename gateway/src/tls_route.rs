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

mod connect;
mod metrics;
mod record;
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
pub use record::Outcome;
pub use splice::{splice, End, Traffic};

use connect::{connect_tcp, connect_tls};
use record::Record;

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
    let choose = match target.mode {
        Mode::Passthrough => upstream::choose_passthrough,
        Mode::Terminate => upstream::choose,
    };
    let chosen = match choose(&route.action, &mut rand::rng()) {
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
        // A backend that accepts but never reads must not hold the client before the idle
        // watchdog starts: the hello gets the connect deadline.
        let write = tokio::time::timeout(settings.connect_timeout, backend.write_all(first));
        match write.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return record.finish(
                    Outcome::Error,
                    Some(format!("writing the ClientHello: {e}")),
                )
            }
            Err(_) => {
                return record.finish(
                    Outcome::ConnectTimeout,
                    Some("the backend did not take the ClientHello in time".into()),
                )
            }
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
