//! The one contract between the controller and the data plane: parsed, validated, Pingora-free.
//!
//! `translate` produces a [`Snapshot`]; the gateway loads one `Arc<Snapshot>` per request and uses it
//! for every phase. Everything here is already validated (header names, compiled regexes, socket
//! addresses, parsed certificates), so the data plane never re-parses configuration on the hot path.
//!
//! Route tables are stored in precedence order (see [`crate::precedence`]): the data plane takes the
//! first entry that matches.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use regex::Regex;
use serde::Serialize;

use crate::status::StatusReport;

mod backend_tls;
mod client_validation;
mod cors;
mod mirror_policy;
mod redact;
mod round_robin;
mod route_group;
#[cfg(test)]
mod test_entries;
mod tls_route;
mod validate;

pub use backend_tls::{
    BackendTls, BackendTlsError, BackendTlsMode, PolicyVerifier, SanName, Trust,
};
pub use client_validation::{ClientValidation, ClientValidationMode, InsecureFallback};
pub use cors::{Allowed, Cors, HostPattern, OriginPattern};
pub use mirror_policy::{Comparison, CopyHost, CopyShape, MirrorPolicy};
pub use redact::{is_sensitive, redacting_header_values, REDACTED};
pub use route_group::{Candidates, RouteGroup};
pub use tls_route::{ListenerKind, TlsRouteEntry, TlsRouteTable};
pub use validate::SnapshotError;

/// Everything the data plane needs, swapped atomically as one value.
#[derive(Debug, Default, Serialize)]
pub struct Snapshot {
    /// Increases by one on every publish; exported as `sluice_snapshot_generation`.
    pub generation: u64,
    /// One entry per socket the data plane must listen on, sorted by address.
    pub binds: Vec<Bind>,
    /// The status every object would get in a cluster, from the same translation.
    #[serde(skip)]
    pub statuses: Arc<StatusReport>,
    /// The client certificate each Gateway (`namespace/name`) presents to TLS backends
    /// (`spec.tls.backend.clientCertificateRef`).
    #[serde(skip)]
    pub backend_client_certificates: BTreeMap<String, Arc<rustls::sign::CertifiedKey>>,
}

impl Snapshot {
    /// Every route entry of every listener, hostname group by group.
    pub fn route_entries(&self) -> impl Iterator<Item = &RouteEntry> {
        self.binds
            .iter()
            .flat_map(|b| &b.listeners)
            .flat_map(|l| {
                let t = &l.routes;
                t.exact
                    .values()
                    .chain(t.wildcard.iter().map(|(_, g)| g))
                    .chain(std::iter::once(&t.any))
            })
            .flat_map(RouteGroup::entries)
    }

    /// Every Service a route sends requests or connections to, by its `namespace/service:port`
    /// name.
    pub fn routed_services(&self) -> BTreeMap<&str, &Backend> {
        let tls_actions = self
            .binds
            .iter()
            .flat_map(|b| &b.listeners)
            .flat_map(|l| l.tls_routes.entries())
            .map(|e| &e.action);
        self.route_entries()
            .map(|e| &e.action)
            .chain(tls_actions)
            .flat_map(|a| &a.backends)
            .filter_map(|w| match &w.target {
                BackendTarget::Service(b) => Some((b.name.as_str(), b.as_ref())),
                _ => None,
            })
            .collect()
    }

    /// The bind serving connections accepted on `local`; a wildcard-address bind on the same port
    /// also serves, since the socket's local address is then the concrete interface address.
    pub fn bind_for(&self, local: SocketAddr) -> Option<&Bind> {
        self.binds.iter().find(|b| b.address == local).or_else(|| {
            self.binds
                .iter()
                .find(|b| b.address.port() == local.port() && b.address.ip().is_unspecified())
        })
    }
}

/// One listening socket: every Gateway listener that shares this address and port.
#[derive(Debug, Serialize)]
pub struct Bind {
    /// The Gateway's address (from `spec.addresses`, the pool or the listen address) and listener
    /// port.
    pub address: SocketAddr,
    /// Plain HTTP, or TLS on every connection (`HTTPS` and `TLS` listeners, which may share a
    /// socket: the ClientHello's SNI selects the listener, whose `kind` says what follows).
    pub protocol: BindProtocol,
    /// Listeners sorted most specific hostname first (exact, longer wildcard, shorter wildcard,
    /// none), so the first whose hostname matches the request's host (or SNI) is the one to use.
    pub listeners: Vec<Listener>,
}

impl Bind {
    /// The listener whose hostname matches `host` (already lower-cased, without port).
    pub fn listener_for(&self, host: &str) -> Option<&Listener> {
        self.listeners.iter().find(|l| match &l.hostname {
            Some(h) => h.matches(host),
            None => true,
        })
    }
}

/// Whether a bind speaks plain HTTP or terminates TLS (from the Gateway listener `protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum BindProtocol {
    /// Listener protocol `HTTP`: no TLS.
    Http,
    /// Listener protocols `HTTPS` and `TLS`: every connection starts with a TLS ClientHello,
    /// whose SNI selects the listener; HTTPS and TLS-Terminate listeners terminate with their
    /// certificate, TLS-Passthrough listeners forward the bytes untouched.
    Https,
}

/// A Gateway listener as the data plane sees it.
#[derive(Debug, Serialize)]
pub struct Listener {
    /// `namespace/name` of the owning Gateway; the `gateway` metric label.
    pub gateway: String,
    /// The listener's `name` (the parentRef `sectionName`).
    pub name: String,
    /// `namespace/name` of the ListenerSet declaring it; `None` for the Gateway's own listeners.
    /// Its status is then among the ListenerSet's, not the Gateway's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listener_set: Option<String>,
    /// The listener's `hostname`; `None` matches every host.
    pub hostname: Option<Hostname>,
    /// For HTTPS listeners: the certificate served when SNI selects this listener.
    #[serde(skip)]
    pub tls: Option<Arc<rustls::sign::CertifiedKey>>,
    /// For HTTPS listeners under a Gateway `spec.tls.frontend` validation: the client
    /// certificate check of handshakes whose SNI selects this listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_validation: Option<Arc<ClientValidation>>,
    /// What a connection selecting this listener carries: HTTP, or a TLSRoute's stream.
    #[serde(skip_serializing_if = "is_http")]
    pub kind: ListenerKind,
    /// The HTTPRoutes and GRPCRoutes attached to this listener, ready for lookup by host (empty
    /// for `TLS` listeners).
    pub routes: RouteTable,
    /// The TLSRoutes attached to a `TLS` listener (empty for the others).
    #[serde(skip_serializing_if = "TlsRouteTable::is_empty")]
    pub tls_routes: TlsRouteTable,
}

impl Listener {
    /// A listener of `gateway` serving `routes` over plain HTTP, without hostname, TLS or
    /// TLSRoutes: fixtures start from it and set what they need.
    pub fn http(gateway: &str, name: &str, routes: RouteTable) -> Listener {
        Listener {
            gateway: gateway.to_string(),
            name: name.to_string(),
            listener_set: None,
            hostname: None,
            tls: None,
            client_validation: None,
            kind: ListenerKind::Http,
            routes,
            tls_routes: TlsRouteTable::default(),
        }
    }
}

fn is_http(kind: &ListenerKind) -> bool {
    *kind == ListenerKind::Http
}

/// A hostname from a listener or a route, already lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "String")]
pub enum Hostname {
    /// A full hostname such as `foo.example.com`.
    Exact(String),
    /// `*.example.com` stored as `.example.com`: matches one or more labels before the suffix.
    Wildcard(String),
}

impl Hostname {
    /// Parses `foo.example.com` or `*.example.com`; `None` for anything else.
    pub fn parse(s: &str) -> Option<Hostname> {
        let s = s.trim().to_ascii_lowercase();
        if let Some(suffix) = s.strip_prefix('*') {
            if suffix.starts_with('.') && suffix.len() > 1 && !suffix.contains('*') {
                return Some(Hostname::Wildcard(suffix.to_string()));
            }
            return None;
        }
        if s.is_empty() || s.contains('*') {
            return None;
        }
        Some(Hostname::Exact(s))
    }

    /// `host` must be lower-cased and without a port.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            Hostname::Exact(h) => h == host,
            Hostname::Wildcard(suffix) => {
                host.len() > suffix.len() && host.ends_with(suffix.as_str())
            }
        }
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hostname::Exact(h) => f.write_str(h),
            Hostname::Wildcard(s) => write!(f, "*{s}"),
        }
    }
}

impl From<Hostname> for String {
    fn from(h: Hostname) -> String {
        h.to_string()
    }
}

/// The routes attached to one listener, grouped by the hostname they were attached under.
///
/// The data plane looks in `exact[host]`, then each wildcard group whose suffix matches (longest
/// suffix first), then `any`; within a group the first matching entry wins.
#[derive(Debug, Default, Serialize)]
pub struct RouteTable {
    /// Groups for routes attached under an exact hostname, keyed by that lower-case hostname.
    pub exact: BTreeMap<String, RouteGroup>,
    /// Sorted by suffix length, longest first.
    pub wildcard: Vec<(Hostname, RouteGroup)>,
    /// Entries of routes attached without a hostname: they serve any host the listener accepts.
    pub any: RouteGroup,
}

/// One `HTTPRouteMatch` of one rule (a rule without matches gets one entry matching `PathPrefix /`).
#[derive(Debug, Clone, Serialize)]
pub struct RouteEntry {
    /// The rule the entry came from.
    pub route: Arc<RouteId>,
    /// What a request must carry to match this entry.
    pub matcher: RequestMatch,
    /// Shared by every entry of the same rule.
    pub action: Arc<RuleAction>,
}

/// Which route rule an entry came from; used for metric labels and logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteId {
    /// The route's kind: HTTPRoute, GRPCRoute or TLSRoute.
    pub kind: RouteKind,
    /// Namespace of the route.
    pub namespace: String,
    /// Name of the route.
    pub name: String,
    /// Position of the rule in the route's `spec.rules`, from 0.
    pub rule_index: usize,
    /// The rule's `name`; `None` when the rule has none.
    pub rule_name: Option<String>,
    /// `namespace/name`, precomputed for the `route` metric label.
    pub label: String,
}

/// The kinds of route Sluice serves; the `kind` label of metrics and access logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum RouteKind {
    /// `HTTPRoute`: HTTP requests on HTTP and HTTPS listeners.
    #[serde(rename = "HTTPRoute")]
    Http,
    /// `GRPCRoute`: gRPC calls (HTTP/2) on HTTP and HTTPS listeners, sent to backends over HTTP/2.
    #[serde(rename = "GRPCRoute")]
    Grpc,
    /// `TLSRoute`: TLS connections routed on SNI, on TLS listeners.
    #[serde(rename = "TLSRoute")]
    Tls,
}

impl RouteKind {
    /// The Gateway API kind name, as in `supportedKinds` and the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Http => "HTTPRoute",
            RouteKind::Grpc => "GRPCRoute",
            RouteKind::Tls => "TLSRoute",
        }
    }
}

/// One `HTTPRouteMatch`: every condition set must hold for a request to match.
#[derive(Debug, Clone, Serialize)]
pub struct RequestMatch {
    /// The `path` match; `PathPrefix /` when the HTTPRoute match sets no path.
    pub path: PathMatch,
    /// The `method` the request must use; `None` matches any method.
    #[serde(serialize_with = "ser::opt_method")]
    pub method: Option<Method>,
    /// `headers` conditions, each name at most once (the first of equivalent names is kept).
    pub headers: Vec<HeaderMatch>,
    /// `queryParams` conditions, each name at most once (names are case-sensitive).
    pub query: Vec<QueryMatch>,
}

/// How the request path is matched (HTTPRoute `path.type`).
#[derive(Debug, Clone, Serialize)]
pub enum PathMatch {
    /// The path must equal this value exactly.
    Exact(String),
    /// Segment-aware: `/foo` matches `/foo` and `/foo/bar`, not `/foobar`. Stored without a
    /// trailing slash (except the root `/`).
    Prefix(String),
    /// Anchored regex that must match the whole path.
    RegularExpression(#[serde(serialize_with = "ser::regex")] Regex),
}

/// A header condition of an `HTTPRouteMatch`.
#[derive(Debug, Clone, Serialize)]
pub struct HeaderMatch {
    /// Header name, compared case-insensitively.
    #[serde(serialize_with = "ser::header_name")]
    pub name: HeaderName,
    /// What the header's value must be.
    pub value: StringMatch,
}

/// A query parameter condition of an `HTTPRouteMatch`.
#[derive(Debug, Clone, Serialize)]
pub struct QueryMatch {
    /// Parameter name, compared case-sensitively.
    pub name: String,
    /// What the parameter's value must be.
    pub value: StringMatch,
}

/// How a header or query parameter value is matched (`type` `Exact` or `RegularExpression`).
#[derive(Debug, Clone, Serialize)]
pub enum StringMatch {
    /// The value must equal this string exactly.
    Exact(String),
    /// Anchored at both ends, as the spec's RE2 full-match semantics require.
    RegularExpression(#[serde(serialize_with = "ser::regex")] Regex),
}

/// What a matched rule does with the request.
#[derive(Debug, Serialize)]
pub struct RuleAction {
    /// Rule-level filters in the order written.
    pub filters: Vec<Filter>,
    /// Empty when the rule has no backendRefs: the request is answered by a filter (redirect) or 500.
    pub backends: Vec<WeightedBackend>,
    /// Sum of `backends[*].weight`, kept with them so the hot path never adds them up again.
    total_weight: u32,
    /// The rule's request and backend-request timeouts.
    pub timeouts: Timeouts,
    /// The rule's `retry`; `None` when it has none (left out of golden files then).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
}

impl RuleAction {
    /// Builds the action, precomputing [`RuleAction::total_weight`].
    pub fn new(filters: Vec<Filter>, backends: Vec<WeightedBackend>, timeouts: Timeouts) -> Self {
        let total_weight = backends
            .iter()
            .fold(0u32, |sum, b| sum.saturating_add(b.weight));
        RuleAction {
            filters,
            backends,
            total_weight,
            timeouts,
            retry: None,
        }
    }

    /// The action with the rule's `retry` policy.
    pub fn with_retry(mut self, retry: Option<RetryPolicy>) -> Self {
        self.retry = retry;
        self
    }

    /// Sum of the backends' weights; 0 means no backend may be chosen (500, as the spec says).
    pub fn total_weight(&self) -> u32 {
        self.total_weight
    }
}

/// HTTPRoute rule `timeouts`; `None` means no timeout of that kind.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Timeouts {
    /// HTTPRoute `timeouts.request`: the whole request, client to response.
    #[serde(with = "ser::opt_duration")]
    pub request: Option<Duration>,
    /// HTTPRoute `timeouts.backendRequest`: one attempt to the backend.
    #[serde(with = "ser::opt_duration")]
    pub backend_request: Option<Duration>,
}

/// HTTPRoute rule `retry` (GEP-1731): when a failed attempt is sent again.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct RetryPolicy {
    /// `codes`: response statuses that are retried, sorted, each once. Connection errors and
    /// backendRequest timeouts are retried whatever the codes.
    pub codes: Vec<u16>,
    /// `attempts`: retries after the first attempt; `None` leaves it to the data plane's default.
    pub attempts: Option<u32>,
    /// `backoff`: the least wait before a retry; `None` leaves it to the data plane's default.
    #[serde(with = "ser::opt_duration")]
    pub backoff: Option<Duration>,
}

impl RetryPolicy {
    /// Whether a response with this status is retried.
    pub fn retries_status(&self, status: u16) -> bool {
        self.codes.binary_search(&status).is_ok()
    }
}

/// One backendRef of a rule, with its share of the traffic.
#[derive(Debug, Serialize)]
pub struct WeightedBackend {
    /// The backendRef `weight` (default 1); 0 means never chosen.
    pub weight: u32,
    /// Where requests choosing this ref go.
    pub target: BackendTarget,
    /// backendRef-level filters, applied after the rule's filters when this backend is chosen.
    pub filters: Vec<Filter>,
}

/// What a backendRef resolved to.
#[derive(Debug, Serialize)]
pub enum BackendTarget {
    /// A Service port with its ready endpoints.
    Service(Arc<Backend>),
    /// A ref that did not resolve (missing Service, no ReferenceGrant, unknown kind): requests
    /// that pick it get a 500, in proportion to its weight.
    Invalid {
        /// Why the ref did not resolve, for logs.
        reason: String,
    },
}

/// A Service port resolved to its ready endpoints.
#[derive(Debug, Serialize)]
pub struct Backend {
    /// `namespace/service:port`; the `backend` metric label.
    pub name: String,
    /// Ready endpoint addresses, sorted and without duplicates; empty when none is ready.
    pub endpoints: Vec<SocketAddr>,
    /// How to speak to the endpoints.
    pub protocol: BackendProtocol,
    /// TLS to the endpoints, from the BackendTLSPolicy targeting this Service port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<BackendTlsMode>,
    #[serde(skip)]
    next: AtomicUsize,
}

impl Backend {
    /// A backend whose round-robin rotation starts at the first endpoint.
    pub fn new(name: String, endpoints: Vec<SocketAddr>, protocol: BackendProtocol) -> Backend {
        Backend {
            name,
            endpoints,
            protocol,
            tls: None,
            next: AtomicUsize::new(0),
        }
    }

    /// The same backend, connected to with `tls`.
    pub fn with_tls(mut self, tls: Option<BackendTlsMode>) -> Backend {
        self.tls = tls;
        self
    }

    /// Where the rotation stands: the number of picks made so far.
    pub fn position(&self) -> usize {
        self.next.load(Ordering::Relaxed)
    }

    /// Continues the rotation from `position` (see [`Snapshot::resume_round_robin_from`]).
    pub fn resume_at(&self, position: usize) {
        self.next.store(position, Ordering::Relaxed);
    }

    /// Round-robin over the ready endpoints; `None` when there are none.
    pub fn pick_endpoint(&self) -> Option<SocketAddr> {
        if self.endpoints.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.endpoints.len();
        self.endpoints.get(i).copied()
    }
}

/// From the Service port's `appProtocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum BackendProtocol {
    /// Plain HTTP/1.1 (no `appProtocol`, or one Sluice does not know).
    Http1,
    /// `kubernetes.io/h2c`
    H2c,
    /// `kubernetes.io/ws`
    WebSocket,
}

/// One HTTPRoute filter, already validated.
#[derive(Debug, Serialize)]
pub enum Filter {
    /// `RequestHeaderModifier`: edits the request headers before proxying.
    RequestHeaders(HeaderModifier),
    /// `ResponseHeaderModifier`: edits the response headers before returning them.
    ResponseHeaders(HeaderModifier),
    /// `RequestRedirect`: answers with a redirect instead of proxying.
    Redirect(Redirect),
    /// `URLRewrite`: rewrites host and/or path before proxying.
    UrlRewrite(UrlRewrite),
    /// `RequestMirror`: sends a copy of the request to another backend, ignoring its response.
    Mirror(Mirror),
    /// `CORS`: answers preflight requests itself and adds the CORS fields to responses.
    Cors(Cors),
}

/// The header edits of a `RequestHeaderModifier` or `ResponseHeaderModifier` filter.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct HeaderModifier {
    /// Headers to set, replacing any existing value.
    #[serde(serialize_with = "ser::header_pairs")]
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// Headers to add, keeping any existing values.
    #[serde(serialize_with = "ser::header_pairs")]
    pub add: Vec<(HeaderName, HeaderValue)>,
    /// Headers to remove.
    #[serde(serialize_with = "ser::header_names")]
    pub remove: Vec<HeaderName>,
}

/// A `RequestRedirect` filter; a `None` field keeps the request's own value.
#[derive(Debug, Serialize)]
pub struct Redirect {
    /// `http` or `https`.
    pub scheme: Option<String>,
    /// Hostname for the `Location` header, without port.
    pub hostname: Option<String>,
    /// How to change the path.
    pub path: Option<PathModifier>,
    /// Port for the `Location` header (never 0).
    pub port: Option<u16>,
    /// HTTP status to answer with; 302 when the filter sets none.
    pub status_code: u16,
}

/// A `URLRewrite` filter; a `None` field leaves that part of the request unchanged.
#[derive(Debug, Serialize)]
pub struct UrlRewrite {
    /// Replaces the `Host` header sent to the backend.
    pub hostname: Option<String>,
    /// How to rewrite the path.
    pub path: Option<PathModifier>,
}

/// The path change of a `RequestRedirect` or `URLRewrite` filter.
#[derive(Debug, Clone, Serialize)]
pub enum PathModifier {
    /// Replaces the whole path with this one.
    ReplaceFullPath(String),
    /// Replaces the part of the path matched by the entry's `PathPrefix` match.
    ReplacePrefixMatch(String),
}

/// A `RequestMirror` filter whose backendRef resolved.
#[derive(Debug, Serialize)]
pub struct Mirror {
    /// The Service port copies are sent to.
    pub backend: Arc<Backend>,
    /// Share of requests mirrored; 100/100 when the filter sets neither percent nor fraction.
    pub fraction: Fraction,
    /// The accepted MirrorPolicy targeting this rule (or its whole route), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<Arc<MirrorPolicy>>,
}

/// A share `numerator / denominator`, with `denominator > 0` and `numerator <= denominator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Fraction {
    /// Parts of the whole taken.
    pub numerator: u32,
    /// Parts in the whole; 100 when the mirror filter gives a `percent`.
    pub denominator: u32,
}

impl Fraction {
    /// Every request (100/100), the default when a mirror filter gives no share.
    pub const ALL: Fraction = Fraction {
        numerator: 100,
        denominator: 100,
    };
}

/// Serializers for the golden-file rendering of types that have no serde support of their own.
mod ser {
    use std::time::Duration;

    use http::{HeaderName, HeaderValue, Method};
    use regex::Regex;
    use serde::ser::{SerializeMap, SerializeSeq};
    use serde::Serializer;

    pub(super) fn regex<S: Serializer>(r: &Regex, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(r.as_str())
    }

    pub(super) fn header_name<S: Serializer>(h: &HeaderName, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(h.as_str())
    }

    pub(super) fn opt_method<S: Serializer>(m: &Option<Method>, s: S) -> Result<S::Ok, S::Error> {
        match m {
            Some(m) => s.serialize_some(m.as_str()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn header_pairs<S: Serializer>(
        v: &[(HeaderName, HeaderValue)],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(v.len()))?;
        for (k, val) in v {
            let value = String::from_utf8_lossy(val.as_bytes());
            map.serialize_entry(k.as_str(), super::redact::shown(k.as_str(), &value))?;
        }
        map.end()
    }

    pub(super) fn header_names<S: Serializer>(v: &[HeaderName], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for k in v {
            seq.serialize_element(k.as_str())?;
        }
        seq.end()
    }

    pub(super) mod opt_duration {
        use super::*;

        pub(crate) fn serialize<S: Serializer>(
            d: &Option<Duration>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => s.serialize_some(&format!("{}ms", d.as_millis())),
                None => s.serialize_none(),
            }
        }
    }
}
