//! What a `TLS` listener does with a connection: pass it through untouched, or terminate it, and
//! which TLSRoute's backends the connection's SNI selects.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::{Hostname, RouteId, RuleAction};

/// What follows the TLS handshake (or the ClientHello) on a connection a listener accepted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub enum ListenerKind {
    /// `HTTP` and `HTTPS` listeners: HTTP requests, routed by [`super::Listener::routes`].
    #[default]
    Http,
    /// `TLS` listener, `tls.mode: Passthrough`: the client's TLS bytes, ClientHello included, go
    /// to the backend untouched; the SNI chooses the route.
    TlsPassthrough,
    /// `TLS` listener, `tls.mode: Terminate`: Sluice completes the handshake with the listener's
    /// certificate and streams the decrypted bytes to the backend (over TLS when a
    /// BackendTLSPolicy says so).
    TlsTerminate,
}

impl ListenerKind {
    /// Whether connections are routed by [`super::Listener::tls_routes`] rather than as HTTP.
    pub fn is_tls_route(self) -> bool {
        !matches!(self, ListenerKind::Http)
    }
}

/// The TLSRoutes attached to one `TLS` listener, by the hostname they were attached under.
///
/// Lookup order: the exact hostname, then wildcards (longest suffix first), then `any`. Two
/// routes attached under the same hostname conflict; translation keeps the older one.
#[derive(Debug, Default, Serialize)]
pub struct TlsRouteTable {
    /// Routes attached under an exact hostname, keyed by that lower-case hostname.
    pub exact: BTreeMap<String, TlsRouteEntry>,
    /// Sorted by suffix length, longest first.
    pub wildcard: Vec<(Hostname, TlsRouteEntry)>,
    /// The route attached without a hostname (neither listener nor route names one).
    pub any: Option<TlsRouteEntry>,
}

impl TlsRouteTable {
    /// The route for a connection whose ClientHello named `sni` (lower-cased; `None` without
    /// SNI, which only `any` serves).
    pub fn lookup(&self, sni: Option<&str>) -> Option<&TlsRouteEntry> {
        let Some(sni) = sni else {
            return self.any.as_ref();
        };
        self.exact
            .get(sni)
            .or_else(|| {
                self.wildcard
                    .iter()
                    .find(|(h, _)| h.matches(sni))
                    .map(|(_, e)| e)
            })
            .or(self.any.as_ref())
    }

    /// Every entry, for iteration over the routed Services.
    pub fn entries(&self) -> impl Iterator<Item = &TlsRouteEntry> {
        self.exact
            .values()
            .chain(self.wildcard.iter().map(|(_, e)| e))
            .chain(self.any.iter())
    }

    /// No TLSRoute is attached.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcard.is_empty() && self.any.is_none()
    }
}

/// The one rule of a TLSRoute: where its connections go.
#[derive(Debug, Clone, Serialize)]
pub struct TlsRouteEntry {
    /// The route (kind [`super::RouteKind::Tls`], rule 0).
    pub route: Arc<RouteId>,
    /// The rule's weighted backends; no filters, no timeouts. A connection whose pick is an
    /// invalid ref, or a backend without endpoints, is closed (and counted).
    pub action: Arc<RuleAction>,
}
