//! `GET /config`: the snapshot the proxy is serving, as JSON or YAML, with the reload state.
//!
//! Built on request from one `Arc<Snapshot>` load (the same load a proxied request makes), so it
//! never blocks the data plane and never mixes two generations. Route entries, backends, filters
//! and mirrors use the snapshot's own serde rendering (the one the golden files show); this module
//! only lays listeners and hostname groups out in lookup order and adds what the snapshot skips:
//! a summary of each served certificate. Keys are never reachable from here: the snapshot skips
//! them, and certificates are summarized from their public DER. Header values of credential-like
//! names (`authorization`, `cookie`, `*token*`, ...) in header filters and mirror policies are
//! printed as `<redacted>`.

mod accept;
mod certificate;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;
use sluice_controller::snapshot::{
    redacting_header_values, Bind, BindProtocol, ClientValidation, Listener, ListenerKind,
    RouteEntry, RouteGroup, Snapshot, TlsRouteEntry,
};

use self::accept::{negotiate, Format};
use self::certificate::{summarize, CertificateSummary};
use super::{internal_error, reply, yaml, AdminState, ConfigReport, JSON, TEXT};

/// Answers `GET /config` (with its `Accept` header and query); `None` for every other request,
/// which the rest of the admin listener answers.
pub(super) fn intercept<B>(
    state: &AdminState,
    request: &Request<B>,
) -> Option<Response<Full<Bytes>>> {
    if request.method() != Method::GET || request.uri().path() != "/config" {
        return None;
    }
    let accept = request.headers().get(header::ACCEPT);
    Some(respond(state, accept, request.uri().query()))
}

/// The dump for an `Accept` header and query string (`listener=NAME`, `route=NS/NAME`).
pub(super) fn respond(
    state: &AdminState,
    accept: Option<&HeaderValue>,
    query: Option<&str>,
) -> Response<Full<Bytes>> {
    let Ok(format) = negotiate(accept.map(HeaderValue::as_bytes)) else {
        return with_vary(reply(
            StatusCode::NOT_ACCEPTABLE,
            TEXT,
            "not acceptable: /config is served as application/yaml (the default) or \
             application/json\n"
                .into(),
        ));
    };
    let selection = match Selection::parse(query.unwrap_or("")) {
        Ok(selection) => selection,
        Err(message) => return reply(StatusCode::BAD_REQUEST, TEXT, message),
    };
    let snapshot = state.store.load();
    let dump = ConfigDump {
        reload: ConfigReport::new(state),
        served: Served::new(&snapshot, &selection),
    };
    // Header values that carry credentials (a RequestHeaderModifier setting Authorization) are
    // printed as `<redacted>`: /config is for people, who need the name, not the secret.
    with_vary(redacting_header_values(|| match format {
        Format::Yaml => yaml(&dump),
        Format::Json => match serde_json::to_string_pretty(&dump) {
            Ok(mut text) => {
                text.push('\n');
                reply(StatusCode::OK, JSON, text)
            }
            Err(e) => internal_error(&e),
        },
    }))
}

/// Caches must not hand a JSON answer to a client that asked for YAML.
fn with_vary(mut response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept"));
    response
}

/// The `/config` document.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConfigDump<'s> {
    /// What `/config` showed before it held the snapshot: generation, readiness, the last reload
    /// (with its errors), reload counts and the sockets bound or failed.
    reload: ConfigReport,
    served: Served<'s>,
}

/// The snapshot being served.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Served<'s> {
    generation: u64,
    /// Sockets sorted by address; on each, listeners in the order SNI or `Host` selects them.
    binds: Vec<BindView<'s>>,
    /// The client certificate each Gateway (`namespace/name`) presents to TLS backends.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    backend_client_certificates: BTreeMap<&'s str, CertificateSummary>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BindView<'s> {
    address: SocketAddr,
    protocol: BindProtocol,
    listeners: Vec<ListenerView<'s>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListenerView<'s> {
    gateway: &'s str,
    name: &'s str,
    #[serde(skip_serializing_if = "Option::is_none")]
    listener_set: Option<&'s str>,
    /// `null` accepts every host.
    hostname: Option<String>,
    /// `Http` (HTTP and HTTPS listeners), `TlsPassthrough` or `TlsTerminate`.
    kind: ListenerKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate: Option<CertificateSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_validation: Option<&'s ClientValidation>,
    /// Hostname groups in lookup order: exact, wildcards (longest first), then `null` (any host).
    /// A request tries every group whose hostname matches its host, in this order, and within a
    /// group the entries in order: the first entry that matches serves it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    routes: Vec<HostGroup<'s>>,
    /// TLSRoutes in SNI lookup order, as for `routes`; one route per hostname.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tls_routes: Vec<TlsRouteView<'s>>,
}

#[derive(Serialize)]
struct HostGroup<'s> {
    hostname: Option<String>,
    /// Precedence order (the Gateway API's, see `controller/src/precedence.rs`).
    entries: Vec<&'s RouteEntry>,
}

#[derive(Serialize)]
struct TlsRouteView<'s> {
    hostname: Option<String>,
    #[serde(flatten)]
    entry: &'s TlsRouteEntry,
}

/// Which part of the snapshot a request asked for; everything by default.
#[derive(Debug, Default)]
struct Selection {
    /// `listener=NAME` or `listener=NS/GATEWAY/NAME`.
    listener: Option<String>,
    /// `route=NS/NAME`: only that route's entries, and the listeners it is attached to.
    route: Option<String>,
}

// === impl Selection ===

impl Selection {
    fn parse(query: &str) -> Result<Selection, String> {
        let mut selection = Selection::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "listener" => selection.listener = Some(value.into_owned()),
                "route" => selection.route = Some(value.into_owned()),
                other => {
                    return Err(format!(
                        "unknown query parameter {other:?}: /config takes listener=NAME and \
                         route=NAMESPACE/NAME\n"
                    ))
                }
            }
        }
        Ok(selection)
    }

    fn listener(&self, l: &Listener) -> bool {
        self.listener.as_deref().is_none_or(|want| {
            want == l.name
                || want
                    .strip_prefix(l.gateway.as_str())
                    .and_then(|rest| rest.strip_prefix('/'))
                    == Some(l.name.as_str())
        })
    }

    fn route(&self, label: &str) -> bool {
        self.route.as_deref().is_none_or(|want| want == label)
    }
}

// === impl Served ===

impl<'s> Served<'s> {
    fn new(snapshot: &'s Snapshot, selection: &Selection) -> Served<'s> {
        let binds = snapshot
            .binds
            .iter()
            .filter_map(|b| BindView::new(b, selection))
            .collect();
        Served {
            generation: snapshot.generation,
            binds,
            backend_client_certificates: snapshot
                .backend_client_certificates
                .iter()
                .map(|(gateway, key)| (gateway.as_str(), summarize(&key.cert)))
                .collect(),
        }
    }
}

impl<'s> BindView<'s> {
    /// `None` when the selection leaves none of its listeners.
    fn new(bind: &'s Bind, selection: &Selection) -> Option<BindView<'s>> {
        let listeners: Vec<_> = bind
            .listeners
            .iter()
            .filter(|l| selection.listener(l))
            .filter_map(|l| ListenerView::new(l, selection))
            .collect();
        (!listeners.is_empty()).then_some(BindView {
            address: bind.address,
            protocol: bind.protocol,
            listeners,
        })
    }
}

impl<'s> ListenerView<'s> {
    /// `None` when a route was selected and none of its entries is on this listener.
    fn new(l: &'s Listener, selection: &Selection) -> Option<ListenerView<'s>> {
        let t = &l.routes;
        let groups = t
            .exact
            .iter()
            .map(|(host, g)| (Some(host.clone()), g))
            .chain(t.wildcard.iter().map(|(h, g)| (Some(h.to_string()), g)))
            .chain(std::iter::once((None, &t.any)));
        let routes: Vec<_> = groups
            .filter_map(|(hostname, group)| HostGroup::new(hostname, group, selection))
            .collect();
        let tls = &l.tls_routes;
        let tls_routes: Vec<_> = tls
            .exact
            .iter()
            .map(|(host, e)| (Some(host.clone()), e))
            .chain(tls.wildcard.iter().map(|(h, e)| (Some(h.to_string()), e)))
            .chain(tls.any.iter().map(|e| (None, e)))
            .filter(|(_, e)| selection.route(&e.route.label))
            .map(|(hostname, entry)| TlsRouteView { hostname, entry })
            .collect();
        if selection.route.is_some() && routes.is_empty() && tls_routes.is_empty() {
            return None;
        }
        Some(ListenerView {
            gateway: &l.gateway,
            name: &l.name,
            listener_set: l.listener_set.as_deref(),
            hostname: l.hostname.as_ref().map(ToString::to_string),
            kind: l.kind,
            certificate: l.tls.as_ref().map(|key| summarize(&key.cert)),
            client_validation: l.client_validation.as_deref(),
            routes,
            tls_routes,
        })
    }
}

impl<'s> HostGroup<'s> {
    /// `None` for a group left empty (by the selection, or `any` without routes): it cannot
    /// serve anything.
    fn new(
        hostname: Option<String>,
        group: &'s RouteGroup,
        selection: &Selection,
    ) -> Option<HostGroup<'s>> {
        let entries: Vec<_> = group
            .entries()
            .iter()
            .filter(|e| selection.route(&e.route.label))
            .collect();
        (!entries.is_empty()).then_some(HostGroup { hostname, entries })
    }
}

#[cfg(test)]
mod tests;
