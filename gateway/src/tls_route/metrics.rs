//! `sluice_tls_route_*`: connections routed by TLSRoutes, and the bytes they carried.

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

/// Clones share the series. Unregistered until [`TlsRouteMetrics::register`].
#[derive(Clone)]
pub struct TlsRouteMetrics {
    /// `sluice_tls_route_connections_total{gateway,route,backend,mode,result}`: connections on
    /// `TLS` listeners, counted when they close, by how they ended (see [`super::Outcome`]).
    pub connections: IntCounterVec,
    /// `sluice_tls_route_bytes_total{gateway,route,direction}`: bytes relayed, `upstream`
    /// (client to backend) or `downstream`; TLS records as sent for passthrough, decrypted
    /// bytes for terminate.
    pub bytes: IntCounterVec,
    /// `sluice_tls_route_connections_active{mode}`: streams open now.
    pub active: IntGaugeVec,
}

impl std::fmt::Debug for TlsRouteMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsRouteMetrics").finish_non_exhaustive()
    }
}

impl Default for TlsRouteMetrics {
    // Constant, valid definitions: these constructors cannot fail.
    #[allow(clippy::expect_used)]
    fn default() -> TlsRouteMetrics {
        let connections = IntCounterVec::new(
            Opts::new(
                "sluice_tls_route_connections_total",
                "Connections on TLS listeners, by TLSRoute, backend, mode and how they ended.",
            ),
            &["gateway", "route", "backend", "mode", "result"],
        )
        .expect("metric");
        let bytes = IntCounterVec::new(
            Opts::new(
                "sluice_tls_route_bytes_total",
                "Bytes relayed by TLSRoute streams, by direction.",
            ),
            &["gateway", "route", "direction"],
        )
        .expect("metric");
        let active = IntGaugeVec::new(
            Opts::new(
                "sluice_tls_route_connections_active",
                "TLSRoute streams open now, by mode.",
            ),
            &["mode"],
        )
        .expect("metric");
        for mode in ["passthrough", "terminate"] {
            active.with_label_values(&[mode]);
        }
        TlsRouteMetrics {
            connections,
            bytes,
            active,
        }
    }
}

impl TlsRouteMetrics {
    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.connections.clone()))?;
        registry.register(Box::new(self.bytes.clone()))?;
        registry.register(Box::new(self.active.clone()))
    }
}
