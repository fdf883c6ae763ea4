//! Pure HTTPRoute matching: (snapshot, local address, request head) → the route entry to use.
//!
//! No Pingora types here, so the matcher is unit-tested and benchmarked on its own.
//!
//! Paths are matched on the raw path as received (no percent-decoding, no dot-segment
//! normalisation), like query values: `/a%2Fb` is one segment, not two. The Gateway API leaves
//! normalisation implementation-specific; matching the raw bytes means the route that matched is
//! the route the backend sees the same bytes for.

use std::borrow::Cow;
use std::net::SocketAddr;

use http::{HeaderMap, Method};
use regex::Regex;
use sluice_controller::snapshot::{
    Bind, HeaderMatch, Listener, PathMatch, QueryMatch, RequestMatch, RouteEntry, RouteGroup,
    RouteTable, Snapshot, StringMatch,
};

/// The parts of a request head that routing looks at.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// Lower-cased, without port (see [`normalize_host`]).
    pub host: &'a str,
    /// The raw path, without the query.
    pub path: &'a str,
    /// The raw query string, without the `?`.
    pub query: Option<&'a str>,
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
}

/// Where the lookup ended.
#[derive(Debug)]
pub enum Lookup<'s> {
    Matched(Matched<'s>),
    /// No bind serves the local address (a stale connection after a listener was removed).
    NoBind,
    /// The bind has no listener whose hostname accepts the request's host.
    NoListener {
        bind: &'s Bind,
    },
    /// A listener accepted the host but no route entry matched.
    NoRoute {
        bind: &'s Bind,
        listener: &'s Listener,
    },
}

/// The winning entry and where it was found.
#[derive(Debug, Clone, Copy)]
pub struct Matched<'s> {
    pub bind: &'s Bind,
    pub listener: &'s Listener,
    pub entry: &'s RouteEntry,
}

/// Finds the route entry for a request accepted on `local`.
pub fn lookup<'s>(snapshot: &'s Snapshot, local: SocketAddr, req: &RequestView<'_>) -> Lookup<'s> {
    let Some(bind) = snapshot.bind_for(local) else {
        return Lookup::NoBind;
    };
    let Some(listener) = bind.listener_for(req.host) else {
        return Lookup::NoListener { bind };
    };
    match find_entry(&listener.routes, req) {
        Some(entry) => Lookup::Matched(Matched {
            bind,
            listener,
            entry,
        }),
        None => Lookup::NoRoute { bind, listener },
    }
}

impl<'s> Lookup<'s> {
    /// The listener the request's host selected, if any.
    pub fn listener(&self) -> Option<(&'s Bind, &'s Listener)> {
        match *self {
            Lookup::Matched(m) => Some((m.bind, m.listener)),
            Lookup::NoRoute { bind, listener } => Some((bind, listener)),
            Lookup::NoBind | Lookup::NoListener { .. } => None,
        }
    }

    /// A TLS connection whose SNI (`sni`, normalised) selected one listener carries a request
    /// whose host selects another: a client reusing (coalescing) an HTTP/2 connection for a
    /// host whose certificate it saw covered, but which Sluice serves under another listener.
    /// RFC 9110 §15.5.20 and the Gateway API (`GatewayHTTPSListenerDetectMisdirectedRequests`)
    /// answer it 421, so the client opens a connection with the right SNI. A host that selects
    /// no listener is not misdirected, only unknown (404).
    pub fn misdirected(&self, sni: &str) -> bool {
        let Some((bind, listener)) = self.listener() else {
            return false;
        };
        bind.listener_for(sni)
            .is_some_and(|by_sni| !std::ptr::eq(by_sni, listener))
    }
}

/// Exact hostname group, then matching wildcard groups (longest suffix first), then `any`; the
/// hostname group is the first precedence criterion of the spec, so a less specific group is
/// only consulted when no entry of a more specific one matches. Within a group only the
/// candidates its segment index yields are tried.
pub fn find_entry<'s>(table: &'s RouteTable, req: &RequestView<'_>) -> Option<&'s RouteEntry> {
    groups(table, req.host).find_map(|group| {
        group
            .candidates(req.path)
            .find(|e| request_matches(&e.matcher, req))
    })
}

/// [`find_entry`] without the segment index: every entry of every group is tried. Kept as the
/// reference the index must agree with (tests) and beat (the routing benchmark).
pub fn find_entry_linear<'s>(
    table: &'s RouteTable,
    req: &RequestView<'_>,
) -> Option<&'s RouteEntry> {
    groups(table, req.host)
        .flat_map(RouteGroup::entries)
        .find(|e| request_matches(&e.matcher, req))
}

/// The groups that accept `host`, most specific first.
fn groups<'s, 'h>(
    table: &'s RouteTable,
    host: &'h str,
) -> impl Iterator<Item = &'s RouteGroup> + use<'s, 'h> {
    let exact = table.exact.get(host);
    let wildcards = table
        .wildcard
        .iter()
        .filter(move |(h, _)| h.matches(host))
        .map(|(_, group)| group);
    exact
        .into_iter()
        .chain(wildcards)
        .chain(std::iter::once(&table.any))
}

/// All conditions of one `HTTPRouteMatch` are ANDed.
pub fn request_matches(m: &RequestMatch, req: &RequestView<'_>) -> bool {
    path_matches(&m.path, req.path)
        && m.method.as_ref().is_none_or(|method| method == req.method)
        && m.headers.iter().all(|h| header_matches(h, req.headers))
        && m.query.iter().all(|q| query_matches(q, req.query))
}

pub fn path_matches(m: &PathMatch, path: &str) -> bool {
    match m {
        PathMatch::Exact(p) => p == path,
        PathMatch::Prefix(p) => prefix_matches(p, path),
        PathMatch::RegularExpression(re) => full_match(re, path),
    }
}

/// Segment-aware: the prefix must end at the end of the path or at a `/`. A trailing slash on
/// the prefix is ignored, as the spec says (`/abc/` matches `/abc`).
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// Header names are case-insensitive (the `HeaderMap` already folds them). With a repeated
/// header, any single value may match, and so may the values joined with `,` (RFC 9110 §5.3),
/// which is only built when the header really is repeated.
pub fn header_matches(m: &HeaderMatch, headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(&m.name).iter();
    let Some(first) = values.next() else {
        return false;
    };
    let Ok(first) = first.to_str() else {
        return false;
    };
    if string_matches(&m.value, first) {
        return true;
    }
    let rest: Vec<&str> = values.filter_map(|v| v.to_str().ok()).collect();
    if rest.is_empty() {
        return false;
    }
    if rest.iter().any(|v| string_matches(&m.value, v)) {
        return true;
    }
    let joined = std::iter::once(first)
        .chain(rest)
        .collect::<Vec<_>>()
        .join(",");
    string_matches(&m.value, &joined)
}

/// Only the first value of a repeated parameter counts. Names are matched exactly
/// (case-sensitive); values are compared raw, without percent-decoding.
pub fn query_matches(m: &QueryMatch, query: Option<&str>) -> bool {
    match query_value(query.unwrap_or(""), &m.name) {
        Some(v) => string_matches(&m.value, v),
        None => false,
    }
}

/// The first value of `name` in a raw query string; a bare `name` has the empty value.
pub fn query_value<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

pub fn string_matches(m: &StringMatch, value: &str) -> bool {
    match m {
        StringMatch::Exact(s) => s == value,
        StringMatch::RegularExpression(re) => full_match(re, value),
    }
}

/// The spec asks for full-match semantics. Translate anchors the regexes it compiles, so a match
/// found here already spans `value`; checking the span keeps an unanchored regex from matching a
/// substring.
pub fn full_match(re: &Regex, value: &str) -> bool {
    re.find(value)
        .is_some_and(|m| m.start() == 0 && m.end() == value.len())
}

/// Lower-cases and strips the port from a `Host` header or `:authority`; allocates only when the
/// host has upper-case letters.
pub fn normalize_host(raw: &str) -> Cow<'_, str> {
    let raw = raw.trim();
    let host = if raw.starts_with('[') {
        // An IPv6 literal: the port, if any, follows the closing bracket.
        match raw.find(']') {
            Some(end) => &raw[..=end],
            None => raw,
        }
    } else {
        match raw.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => raw,
        }
    };
    // A fully-qualified name may end with a dot; it names the same host.
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

#[cfg(test)]
#[path = "routing/tests.rs"]
mod tests;
