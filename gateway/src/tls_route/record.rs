//! One TLSRoute connection's ending: how it ended ([`Outcome`]), its access-log line and its
//! counts, written once whatever the path out.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use super::{Mode, Target, TlsRouteMetrics, TlsRouteSettings, Traffic};

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

/// One connection's access-log line and counts, written when it is dropped: on every return
/// path, and when shutdown's grace period drops the connection's task mid-stream.
pub(super) struct Record {
    metrics: TlsRouteMetrics,
    mode: Mode,
    gateway: String,
    listener: String,
    route: String,
    pub(super) backend: String,
    pub(super) upstream: Option<SocketAddr>,
    peer: SocketAddr,
    sni: Option<String>,
    pub(super) traffic: Traffic,
    end: Option<(Outcome, Option<String>)>,
}

impl Record {
    pub(super) fn open(
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

    pub(super) fn finish(&mut self, outcome: Outcome, error: Option<String>) {
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
