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

mod round_robin;
mod route_group;
mod validate;

pub use route_group::{Candidates, RouteGroup};
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

    /// Every Service a route sends requests to, by its `namespace/service:port` name.
    pub fn routed_services(&self) -> BTreeMap<&str, &Backend> {
        self.route_entries()
            .flat_map(|e| &e.action.backends)
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
    pub address: SocketAddr,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum BindProtocol {
    Http,
    Https,
}

/// A Gateway listener as the data plane sees it.
#[derive(Debug, Serialize)]
pub struct Listener {
    /// `namespace/name` of the owning Gateway; the `gateway` metric label.
    pub gateway: String,
    /// The listener's `name` (the parentRef `sectionName`).
    pub name: String,
    pub hostname: Option<Hostname>,
    /// For HTTPS listeners: the certificate served when SNI selects this listener.
    #[serde(skip)]
    pub tls: Option<Arc<rustls::sign::CertifiedKey>>,
    pub routes: RouteTable,
}

/// A hostname from a listener or a route, already lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "String")]
pub enum Hostname {
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
    pub exact: BTreeMap<String, RouteGroup>,
    /// Sorted by suffix length, longest first.
    pub wildcard: Vec<(Hostname, RouteGroup)>,
    pub any: RouteGroup,
}

/// One `HTTPRouteMatch` of one rule (a rule without matches gets one entry matching `PathPrefix /`).
#[derive(Debug, Clone, Serialize)]
pub struct RouteEntry {
    pub route: Arc<RouteId>,
    pub matcher: RequestMatch,
    /// Shared by every entry of the same rule.
    pub action: Arc<RuleAction>,
}

/// Which HTTPRoute rule an entry came from; used for metric labels and logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteId {
    pub namespace: String,
    pub name: String,
    pub rule_index: usize,
    pub rule_name: Option<String>,
    /// `namespace/name`, precomputed for the `route` metric label.
    pub label: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RequestMatch {
    pub path: PathMatch,
    #[serde(serialize_with = "ser::opt_method")]
    pub method: Option<Method>,
    pub headers: Vec<HeaderMatch>,
    pub query: Vec<QueryMatch>,
}

#[derive(Debug, Clone, Serialize)]
pub enum PathMatch {
    Exact(String),
    /// Segment-aware: `/foo` matches `/foo` and `/foo/bar`, not `/foobar`. Stored without a
    /// trailing slash (except the root `/`).
    Prefix(String),
    RegularExpression(#[serde(serialize_with = "ser::regex")] Regex),
}

#[derive(Debug, Clone, Serialize)]
pub struct HeaderMatch {
    #[serde(serialize_with = "ser::header_name")]
    pub name: HeaderName,
    pub value: StringMatch,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueryMatch {
    pub name: String,
    pub value: StringMatch,
}

#[derive(Debug, Clone, Serialize)]
pub enum StringMatch {
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
    pub timeouts: Timeouts,
}

impl RuleAction {
    pub fn new(filters: Vec<Filter>, backends: Vec<WeightedBackend>, timeouts: Timeouts) -> Self {
        let total_weight = backends
            .iter()
            .fold(0u32, |sum, b| sum.saturating_add(b.weight));
        RuleAction {
            filters,
            backends,
            total_weight,
            timeouts,
        }
    }

    /// Sum of the backends' weights; 0 means no backend may be chosen (500, as the spec says).
    pub fn total_weight(&self) -> u32 {
        self.total_weight
    }
}

#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Timeouts {
    /// HTTPRoute `timeouts.request`: the whole request, client to response.
    #[serde(with = "ser::opt_duration")]
    pub request: Option<Duration>,
    /// HTTPRoute `timeouts.backendRequest`: one attempt to the backend.
    #[serde(with = "ser::opt_duration")]
    pub backend_request: Option<Duration>,
}

#[derive(Debug, Serialize)]
pub struct WeightedBackend {
    pub weight: u32,
    pub target: BackendTarget,
    /// backendRef-level filters, applied after the rule's filters when this backend is chosen.
    pub filters: Vec<Filter>,
}

#[derive(Debug, Serialize)]
pub enum BackendTarget {
    Service(Arc<Backend>),
    /// A ref that did not resolve (missing Service, no ReferenceGrant, unknown kind): requests
    /// that pick it get a 500, in proportion to its weight.
    Invalid {
        reason: String,
    },
}

/// A Service port resolved to its ready endpoints.
#[derive(Debug, Serialize)]
pub struct Backend {
    /// `namespace/service:port`; the `backend` metric label.
    pub name: String,
    pub endpoints: Vec<SocketAddr>,
    pub protocol: BackendProtocol,
    #[serde(skip)]
    next: AtomicUsize,
}

impl Backend {
    pub fn new(name: String, endpoints: Vec<SocketAddr>, protocol: BackendProtocol) -> Backend {
        Backend {
            name,
            endpoints,
            protocol,
            next: AtomicUsize::new(0),
        }
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
    Http1,
    /// `kubernetes.io/h2c`
    H2c,
    /// `kubernetes.io/ws`
    WebSocket,
}

#[derive(Debug, Serialize)]
pub enum Filter {
    RequestHeaders(HeaderModifier),
    ResponseHeaders(HeaderModifier),
    Redirect(Redirect),
    UrlRewrite(UrlRewrite),
    Mirror(Mirror),
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct HeaderModifier {
    #[serde(serialize_with = "ser::header_pairs")]
    pub set: Vec<(HeaderName, HeaderValue)>,
    #[serde(serialize_with = "ser::header_pairs")]
    pub add: Vec<(HeaderName, HeaderValue)>,
    #[serde(serialize_with = "ser::header_names")]
    pub remove: Vec<HeaderName>,
}

#[derive(Debug, Serialize)]
pub struct Redirect {
    pub scheme: Option<String>,
    pub hostname: Option<String>,
    pub path: Option<PathModifier>,
    pub port: Option<u16>,
    pub status_code: u16,
}

#[derive(Debug, Serialize)]
pub struct UrlRewrite {
    pub hostname: Option<String>,
    pub path: Option<PathModifier>,
}

#[derive(Debug, Clone, Serialize)]
pub enum PathModifier {
    ReplaceFullPath(String),
    /// Replaces the part of the path matched by the entry's `PathPrefix` match.
    ReplacePrefixMatch(String),
}

/// A `RequestMirror` filter whose backendRef resolved.
#[derive(Debug, Serialize)]
pub struct Mirror {
    pub backend: Arc<Backend>,
    /// Share of requests mirrored; 100/100 when the filter sets neither percent nor fraction.
    pub fraction: Fraction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Fraction {
    pub numerator: u32,
    pub denominator: u32,
}

impl Fraction {
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
            map.serialize_entry(k.as_str(), &String::from_utf8_lossy(val.as_bytes()))?;
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
