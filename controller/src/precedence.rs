//! The one ordering of route entries within a hostname group: the first entry that matches wins.
//!
//! Hostname precedence (exact, then longest wildcard suffix, then any) is expressed by the
//! `RouteTable` grouping; this module orders the entries inside one group. Translation keeps
//! HTTPRoutes and GRPCRoutes whose hostnames meet off one listener, so a group holds one kind;
//! were it to hold both, GRPCRoute entries come first, since they only match gRPC-shaped paths
//! (`/service/method`) and an HTTPRoute catch-all (`PathPrefix /`) would otherwise hide them.

use std::cmp::Ordering;

use k8s_openapi::jiff::Timestamp;

use crate::snapshot::{PathMatch, RequestMatch};

/// Everything the spec orders route matches by, captured when an entry is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rank {
    path: PathRank,
    has_method: bool,
    headers: usize,
    query: usize,
    created: Option<Timestamp>,
    namespace: String,
    name: String,
    rule_index: usize,
    match_index: usize,
}

/// What the GRPCRoute spec orders a method match by: the characters of its service and method
/// (0 when the match leaves one out). `RegularExpression` matches (implementation-specific) come
/// after every `Exact` one, ordered among themselves by the length of their patterns, as regex
/// path matches come after exact ones for HTTPRoute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GrpcSpecificity {
    /// A `RegularExpression` match.
    pub regex: bool,
    /// Characters in the matched service.
    pub service: usize,
    /// Characters in the matched method.
    pub method: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PathRank {
    /// A GRPCRoute method match, compiled to a path match but ranked by the GRPCRoute rules.
    Grpc(GrpcSpecificity),
    Exact(usize),
    /// The spec leaves regex precedence to implementations: we put regexes between exact and
    /// prefix matches (longer pattern first), so a catch-all `PathPrefix /` never hides them.
    Regex(usize),
    Prefix(usize),
}

impl PathRank {
    /// Higher is more specific.
    fn tier(&self) -> (u8, usize, usize) {
        match self {
            // A match without a method (every call) comes after every method match.
            PathRank::Grpc(g) if g.regex || g.service + g.method == 0 => (4, g.service, g.method),
            PathRank::Grpc(g) => (5, g.service, g.method),
            PathRank::Exact(len) => (3, *len, 0),
            PathRank::Regex(len) => (2, *len, 0),
            PathRank::Prefix(len) => (1, *len, 0),
        }
    }
}

impl Rank {
    /// The rank of match `match_index` of rule `rule_index` of route `namespace/name`, created at
    /// `created`.
    pub fn new(
        matcher: &RequestMatch,
        created: Option<Timestamp>,
        namespace: &str,
        name: &str,
        rule_index: usize,
        match_index: usize,
    ) -> Rank {
        let path = match &matcher.path {
            PathMatch::Exact(p) => PathRank::Exact(p.len()),
            PathMatch::RegularExpression(r) => PathRank::Regex(r.as_str().len()),
            PathMatch::Prefix(p) => PathRank::Prefix(p.len()),
        };
        Rank {
            path,
            has_method: matcher.method.is_some(),
            headers: matcher.headers.len(),
            query: matcher.query.len(),
            created,
            namespace: namespace.to_string(),
            name: name.to_string(),
            rule_index,
            match_index,
        }
    }

    /// The rank of match `match_index` of rule `rule_index` of GRPCRoute `namespace/name`.
    ///
    /// "Precedence MUST be given to the rule with the largest number of: characters in a matching
    /// non-wildcard hostname; characters in a matching hostname; characters in a matching
    /// service; characters in a matching method; header matches." (GRPCRoute `rules`.) The
    /// hostnames are the `RouteTable` grouping; the rest is this rank.
    pub fn grpc(
        matcher: &RequestMatch,
        method: GrpcSpecificity,
        created: Option<Timestamp>,
        namespace: &str,
        name: &str,
        rule_index: usize,
        match_index: usize,
    ) -> Rank {
        Rank {
            path: PathRank::Grpc(method),
            ..Rank::new(matcher, created, namespace, name, rule_index, match_index)
        }
    }
}

// === impl Rank ===

/// `Less` means "takes precedence" (sorts first).
impl Ord for Rank {
    fn cmp(&self, other: &Self) -> Ordering {
        // "Across all rules specified on applicable Routes, precedence must be given to the match
        // having:
        //  * "Exact" path match.
        //  * "Prefix" path match with largest number of characters.
        //  * Method match.
        //  * Largest number of header matches.
        //  * Largest number of query param matches."
        other
            .path
            .tier()
            .cmp(&self.path.tier())
            .then_with(|| other.has_method.cmp(&self.has_method))
            .then_with(|| other.headers.cmp(&self.headers))
            .then_with(|| other.query.cmp(&self.query))
            // "If ties still exist across multiple Routes, matching precedence MUST be determined
            // in order of the following criteria, continuing on ties:
            //  * The oldest Route based on creation timestamp.
            //  * The Route appearing first in alphabetical order by "{namespace}/{name}"."
            // A route without a timestamp is treated as newest.
            .then_with(|| match (&self.created, &other.created) {
                (Some(a), Some(b)) => a.cmp(b),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            })
            .then_with(|| self.namespace.cmp(&other.namespace))
            .then_with(|| self.name.cmp(&other.name))
            // "If ties still exist within an HTTPRoute, matching precedence MUST be granted to the
            // FIRST matching rule (in list order) with a match meeting the above criteria."
            .then_with(|| self.rule_index.cmp(&other.rule_index))
            .then_with(|| self.match_index.cmp(&other.match_index))
    }
}

impl PartialOrd for Rank {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{HeaderMatch, QueryMatch, StringMatch};
    use http::{HeaderName, Method};

    fn m(path: PathMatch, method: bool, headers: usize, query: usize) -> RequestMatch {
        RequestMatch {
            path,
            method: method.then_some(Method::GET),
            headers: (0..headers)
                .map(|i| HeaderMatch {
                    name: HeaderName::from_bytes(format!("h{i}").as_bytes()).expect("valid"),
                    value: StringMatch::Exact("v".into()),
                })
                .collect(),
            query: (0..query)
                .map(|i| QueryMatch {
                    name: format!("q{i}"),
                    value: StringMatch::Exact("v".into()),
                })
                .collect(),
        }
    }

    fn rank(matcher: &RequestMatch) -> Rank {
        Rank::new(matcher, None, "ns", "r", 0, 0)
    }

    fn prefix(p: &str) -> PathMatch {
        PathMatch::Prefix(p.into())
    }

    #[test]
    fn exact_path_beats_any_prefix() {
        let exact = rank(&m(PathMatch::Exact("/a".into()), false, 0, 0));
        let long_prefix = rank(&m(prefix("/a/very/long/prefix"), true, 3, 3));
        assert!(exact < long_prefix);
    }

    #[test]
    fn longer_prefix_beats_method_headers_and_query() {
        let long = rank(&m(prefix("/abc"), false, 0, 0));
        let short = rank(&m(prefix("/a"), true, 5, 5));
        assert!(long < short);
    }

    #[test]
    fn method_then_headers_then_query_break_path_ties() {
        let method = rank(&m(prefix("/"), true, 0, 0));
        let headers = rank(&m(prefix("/"), false, 2, 0));
        let one_header = rank(&m(prefix("/"), false, 1, 9));
        let query = rank(&m(prefix("/"), false, 1, 0));
        assert!(method < headers);
        assert!(headers < one_header);
        assert!(one_header < query);
    }

    #[test]
    fn grpc_exact_service_then_method_characters_then_regex_then_catch_all() {
        let any = m(prefix("/"), false, 0, 0);
        let g = |regex, service, method| {
            let s = GrpcSpecificity {
                regex,
                service,
                method,
            };
            Rank::grpc(&any, s, None, "ns", "r", 0, 0)
        };
        let exact_both = g(false, 8, 3);
        let service_only = g(false, 8, 0);
        let method_only = g(false, 0, 6);
        let long_regex = g(true, 20, 0);
        let catch_all = g(false, 0, 0);
        assert!(exact_both < service_only);
        assert!(service_only < method_only);
        assert!(method_only < long_regex);
        assert!(long_regex < catch_all);
        // gRPC entries sort before HTTP ones of any path in a shared hostname group.
        assert!(catch_all < rank(&m(PathMatch::Exact("/a".into()), true, 3, 3)));
    }

    #[test]
    fn older_route_then_name_then_rule_order_break_full_ties() {
        let matcher = m(prefix("/"), false, 0, 0);
        let t = |s| Some(Timestamp::from_second(s).expect("valid"));
        let old = Rank::new(&matcher, t(10), "z", "z", 5, 5);
        let new = Rank::new(&matcher, t(20), "a", "a", 0, 0);
        assert!(old < new);
        let a = Rank::new(&matcher, t(10), "a", "b", 3, 0);
        let b = Rank::new(&matcher, t(10), "b", "a", 0, 0);
        assert!(a < b);
        let first_rule = Rank::new(&matcher, t(10), "a", "b", 0, 1);
        let second_rule = Rank::new(&matcher, t(10), "a", "b", 1, 0);
        assert!(first_rule < second_rule);
    }
}
