//! A compiled `CORS` filter: origin patterns parsed, methods and header names validated.
//!
//! Which origins a filter allows is decided here, purely, so the data plane only writes the
//! response fields (`gateway/src/filters/cors.rs`).

use http::{HeaderName, Method};
use serde::Serialize;

/// An HTTPRoute `CORS` filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cors {
    /// Empty allows no origin: requests pass through without CORS response fields.
    pub allow_origins: Vec<OriginPattern>,
    /// `Access-Control-Allow-Credentials: true` is sent; `*` is then never sent back for
    /// origins, methods or headers (the spec's rule for credentialed requests).
    pub allow_credentials: bool,
    /// Sent back in `Access-Control-Allow-Methods` on a preflight.
    #[serde(serialize_with = "methods")]
    pub allow_methods: Allowed<Method>,
    /// Sent back in `Access-Control-Allow-Headers` on a preflight.
    #[serde(serialize_with = "names")]
    pub allow_headers: Allowed<HeaderName>,
    /// Sent in `Access-Control-Expose-Headers`.
    #[serde(serialize_with = "names")]
    pub expose_headers: Allowed<HeaderName>,
    /// `Access-Control-Max-Age` in seconds; the spec's default is 5.
    pub max_age: u32,
}

/// A list field that may also be the wildcard `*` (which the CRD allows only on its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allowed<T> {
    /// `*`: whatever the request asks for.
    Any,
    /// Empty when the field is unset: the matching response field is not sent.
    Only(Vec<T>),
}

/// One `allowOrigins` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum OriginPattern {
    /// `*`: every origin.
    Any,
    /// `<scheme>://<host>[:<port>]`, the port made explicit (80 for http, 443 for https).
    Origin {
        /// `http` or `https`, lowercased.
        scheme: String,
        /// Which hosts match.
        host: HostPattern,
        /// The port, explicit or the scheme's.
        port: u16,
    },
}

/// The host part of an origin pattern, lowercased.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum HostPattern {
    /// `*`: any host.
    Any,
    /// `*.example.com`, stored as `.example.com`: any host ending with it, however many labels
    /// come before (the spec's "greedy match to the left").
    Suffix(String),
    /// This host only.
    Exact(String),
}

/// `Origin` request field values that cannot be parsed (`null`, a path, a bad port) match no
/// pattern but `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ParsedOrigin<'a> {
    scheme: String,
    host: &'a str,
    port: u16,
}

// === impl Cors ===

impl Cors {
    /// Whether a request from `origin` (the `Origin` field as sent) may read the response.
    pub fn allows_origin(&self, origin: &str) -> bool {
        let parsed = parse_origin(origin);
        self.allow_origins.iter().any(|p| match (p, &parsed) {
            (OriginPattern::Any, _) => true,
            (OriginPattern::Origin { .. }, None) => false,
            (OriginPattern::Origin { scheme, host, port }, Some(o)) => {
                *scheme == o.scheme && *port == o.port && host.matches(o.host)
            }
        })
    }
}

// === impl OriginPattern ===

impl OriginPattern {
    /// An `allowOrigins` entry as the CRD pattern allows it: `*`, or
    /// `http(s)://[*.]host[:port]` with `*` alone as a host.
    pub fn parse(s: &str) -> Option<OriginPattern> {
        if s == "*" {
            return Some(OriginPattern::Any);
        }
        let o = parse_origin(s)?;
        let host = o.host.to_ascii_lowercase();
        let host = if host == "*" {
            HostPattern::Any
        } else if let Some(rest) = host.strip_prefix("*.") {
            if rest.is_empty() || rest.contains('*') {
                return None;
            }
            HostPattern::Suffix(format!(".{rest}"))
        } else if host.contains('*') {
            return None;
        } else {
            HostPattern::Exact(host)
        };
        Some(OriginPattern::Origin {
            scheme: o.scheme,
            host,
            port: o.port,
        })
    }
}

// === impl HostPattern ===

impl HostPattern {
    fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Exact(h) => h.eq_ignore_ascii_case(host),
            HostPattern::Suffix(suffix) => {
                host.len() > suffix.len()
                    && host
                        .get(host.len() - suffix.len()..)
                        .is_some_and(|end| end.eq_ignore_ascii_case(suffix))
            }
        }
    }
}

/// `<scheme>://<host>[:<port>]` with scheme http or https; a missing port is the scheme's.
fn parse_origin(s: &str) -> Option<ParsedOrigin<'_>> {
    let (scheme, rest) = s.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
        return None;
    }
    // A bracketed IPv6 host carries colons of its own.
    let host_end = if rest.starts_with('[') {
        rest.find(']')? + 1
    } else {
        rest.find(':').unwrap_or(rest.len())
    };
    let (host, port) = rest.split_at(host_end);
    let port = match port.strip_prefix(':') {
        None if port.is_empty() => default_port,
        None => return None,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse::<u16>().ok().filter(|p| *p != 0)?
        }
        Some(_) => return None,
    };
    if host.is_empty() {
        return None;
    }
    Some(ParsedOrigin { scheme, host, port })
}

fn methods<S: serde::Serializer>(a: &Allowed<Method>, s: S) -> Result<S::Ok, S::Error> {
    match a {
        Allowed::Any => s.serialize_str("*"),
        Allowed::Only(v) => s.collect_seq(v.iter().map(Method::as_str)),
    }
}

fn names<S: serde::Serializer>(a: &Allowed<HeaderName>, s: S) -> Result<S::Ok, S::Error> {
    match a {
        Allowed::Any => s.serialize_str("*"),
        Allowed::Only(v) => s.collect_seq(v.iter().map(HeaderName::as_str)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowing(origins: &[&str]) -> Cors {
        Cors {
            allow_origins: origins
                .iter()
                .map(|o| OriginPattern::parse(o).expect("valid pattern"))
                .collect(),
            allow_credentials: false,
            allow_methods: Allowed::Only(vec![]),
            allow_headers: Allowed::Only(vec![]),
            expose_headers: Allowed::Only(vec![]),
            max_age: 5,
        }
    }

    #[test]
    fn exact_origins_match_scheme_host_and_port() {
        let cors = allowing(&["https://www.foo.com"]);
        assert!(cors.allows_origin("https://www.foo.com"));
        assert!(cors.allows_origin("https://WWW.foo.com"));
        assert!(
            cors.allows_origin("https://www.foo.com:443"),
            "443 is https's own port"
        );
        assert!(!cors.allows_origin("https://www.foo.com:8443"));
        assert!(!cors.allows_origin("http://www.foo.com"));
        assert!(!cors.allows_origin("https://foobar.com"));
        assert!(!cors.allows_origin("https://www.foo.com.evil"));
        assert!(!cors.allows_origin("null"));
    }

    #[test]
    fn a_wildcard_host_takes_any_number_of_labels_to_its_left() {
        let cors = allowing(&["https://*.bar.com"]);
        assert!(cors.allows_origin("https://www.bar.com"));
        assert!(cors.allows_origin("https://xpto.www.bar.com"));
        assert!(!cors.allows_origin("https://bar.com"));
        assert!(!cors.allows_origin("https://foobar.com"));
        assert!(!cors.allows_origin("http://www.bar.com"));
    }

    #[test]
    fn a_lone_star_allows_every_origin_and_a_star_host_every_host() {
        let any = allowing(&["*"]);
        assert!(any.allows_origin("https://foobar.com:12345"));
        assert!(any.allows_origin("null"));
        let any_host = allowing(&["http://*:8080"]);
        assert!(any_host.allows_origin("http://a.b:8080"));
        assert!(!any_host.allows_origin("http://a.b"));
    }

    #[test]
    fn patterns_outside_the_crd_grammar_are_refused() {
        for bad in [
            "www.foo.com",
            "ftp://foo.com",
            "https://foo.com/path",
            "https://foo.*.com",
            "https://*.",
            "https://foo.com:0",
            "https://foo.com:99999",
            "https://",
        ] {
            assert_eq!(OriginPattern::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn ipv6_origins_keep_their_colons() {
        let cors = allowing(&["http://[::1]:8080"]);
        assert!(cors.allows_origin("http://[::1]:8080"));
        assert!(!cors.allows_origin("http://[::1]"));
    }
}
