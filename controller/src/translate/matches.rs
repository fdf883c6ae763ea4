//! `HTTPRouteMatch` -> a validated `RequestMatch` (parsed header names, anchored regexes).

use gateway_api::apis::experimental::httproutes::{
    HttpRouteRulesMatches, HttpRouteRulesMatchesHeadersType as HeaderType,
    HttpRouteRulesMatchesMethod as M, HttpRouteRulesMatchesPathType as PathType,
    HttpRouteRulesMatchesQueryParamsType as QueryType,
};
use http::{HeaderName, Method};
use regex::Regex;

use crate::snapshot::{HeaderMatch, PathMatch, QueryMatch, RequestMatch, StringMatch};
use crate::status::conditions::reasons;

/// Why a match cannot be compiled: the rule holding it is dropped.
#[derive(Debug, thiserror::Error)]
pub(super) enum MatchError {
    #[error("header match name {0:?} is not a valid header name")]
    HeaderName(String),
    #[error("query param match name is empty")]
    EmptyQueryParamName,
    #[error("path {0:?} must start with /")]
    RelativePath(String),
    /// The regex error is part of the message a status shows, so it is not also a `#[source]`
    /// (an error chain would print it twice).
    #[error("invalid regular expression {pattern:?}: {error}")]
    Regex {
        pattern: String,
        error: regex::Error,
    },
}

// === impl MatchError ===

impl MatchError {
    /// The route condition reason: the spec's for a value Sluice cannot use.
    pub(super) fn reason(&self) -> &'static str {
        reasons::UNSUPPORTED_VALUE
    }
}

/// The match of a rule without `matches`: every request.
pub(super) fn match_all() -> RequestMatch {
    RequestMatch {
        path: PathMatch::Prefix("/".into()),
        method: None,
        headers: Vec::new(),
        query: Vec::new(),
    }
}

pub(super) fn compile(m: &HttpRouteRulesMatches) -> Result<RequestMatch, MatchError> {
    let path = match &m.path {
        None => PathMatch::Prefix("/".into()),
        Some(p) => {
            let value = p.value.as_deref().unwrap_or("/");
            match p.r#type.as_ref().unwrap_or(&PathType::PathPrefix) {
                PathType::Exact => PathMatch::Exact(absolute(value)?.to_string()),
                PathType::PathPrefix => PathMatch::Prefix(prefix(absolute(value)?)),
                PathType::RegularExpression => PathMatch::RegularExpression(anchored(value)?),
            }
        }
    };
    let method = m.method.as_ref().map(method);

    // "If multiple entries specify equivalent header names, only the first entry with an
    // equivalent name MUST be considered" (case-insensitive for headers).
    let mut headers: Vec<HeaderMatch> = Vec::new();
    for h in m.headers.iter().flatten() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| MatchError::HeaderName(h.name.clone()))?;
        if headers.iter().any(|x| x.name == name) {
            continue;
        }
        let value = match h.r#type.as_ref().unwrap_or(&HeaderType::Exact) {
            HeaderType::Exact => StringMatch::Exact(h.value.clone()),
            HeaderType::RegularExpression => StringMatch::RegularExpression(anchored(&h.value)?),
        };
        headers.push(HeaderMatch { name, value });
    }

    // Query parameter names are case-sensitive.
    let mut query: Vec<QueryMatch> = Vec::new();
    for q in m.query_params.iter().flatten() {
        if q.name.is_empty() {
            return Err(MatchError::EmptyQueryParamName);
        }
        if query.iter().any(|x| x.name == q.name) {
            continue;
        }
        let value = match q.r#type.as_ref().unwrap_or(&QueryType::Exact) {
            QueryType::Exact => StringMatch::Exact(q.value.clone()),
            QueryType::RegularExpression => StringMatch::RegularExpression(anchored(&q.value)?),
        };
        query.push(QueryMatch {
            name: q.name.clone(),
            value,
        });
    }

    Ok(RequestMatch {
        path,
        method,
        headers,
        query,
    })
}

fn absolute(path: &str) -> Result<&str, MatchError> {
    if path.starts_with('/') {
        Ok(path)
    } else {
        Err(MatchError::RelativePath(path.to_string()))
    }
}

/// Prefixes are segment-aware and stored without a trailing slash (except `/` itself).
fn prefix(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".into()
    } else {
        trimmed.into()
    }
}

/// The spec's regex semantics are full matches, so the pattern is anchored at both ends. It is
/// checked on its own first: `a)|(b` is invalid, but wrapped it would compile unanchored.
fn anchored(pattern: &str) -> Result<Regex, MatchError> {
    let invalid = |error| MatchError::Regex {
        pattern: pattern.to_string(),
        error,
    };
    Regex::new(pattern).map_err(invalid)?;
    Regex::new(&format!("^(?:{pattern})$")).map_err(invalid)
}

fn method(m: &M) -> Method {
    match m {
        M::Get => Method::GET,
        M::Head => Method::HEAD,
        M::Post => Method::POST,
        M::Put => Method::PUT,
        M::Delete => Method::DELETE,
        M::Connect => Method::CONNECT,
        M::Options => Method::OPTIONS,
        M::Trace => Method::TRACE,
        M::Patch => Method::PATCH,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_api::apis::experimental::httproutes::{
        HttpRouteRulesMatchesHeaders, HttpRouteRulesMatchesPath,
    };

    fn path(ty: PathType, value: &str) -> HttpRouteRulesMatches {
        HttpRouteRulesMatches {
            path: Some(HttpRouteRulesMatchesPath {
                r#type: Some(ty),
                value: Some(value.into()),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn prefix_drops_trailing_slash_but_keeps_root() {
        let m = compile(&path(PathType::PathPrefix, "/foo/")).expect("valid");
        assert!(matches!(m.path, PathMatch::Prefix(ref p) if p == "/foo"));
        let m = compile(&path(PathType::PathPrefix, "/")).expect("valid");
        assert!(matches!(m.path, PathMatch::Prefix(ref p) if p == "/"));
    }

    #[test]
    fn regex_is_anchored() {
        let m = compile(&path(PathType::RegularExpression, "/v[0-9]+")).expect("valid");
        let PathMatch::RegularExpression(r) = m.path else {
            panic!("expected a regex");
        };
        assert!(r.is_match("/v12"));
        assert!(!r.is_match("/v12/extra"));
        assert!(!r.is_match("/prefix/v12"));
    }

    #[test]
    fn invalid_regex_is_an_error_not_a_panic() {
        let err = compile(&path(PathType::RegularExpression, "/(unclosed")).expect_err("error");
        assert!(
            err.to_string()
                .starts_with("invalid regular expression \"/(unclosed\": "),
            "{err}"
        );
    }

    #[test]
    fn unbalanced_pattern_cannot_escape_the_anchors() {
        assert!(compile(&path(PathType::RegularExpression, "/a)|(.*")).is_err());
    }

    #[test]
    fn relative_path_is_rejected() {
        assert!(compile(&path(PathType::Exact, "foo")).is_err());
    }

    #[test]
    fn duplicate_header_names_keep_the_first_and_bad_names_are_errors() {
        let h = |name: &str, value: &str| HttpRouteRulesMatchesHeaders {
            name: name.into(),
            r#type: None,
            value: value.into(),
        };
        let m = HttpRouteRulesMatches {
            headers: Some(vec![h("Version", "one"), h("version", "two")]),
            ..Default::default()
        };
        let compiled = compile(&m).expect("valid");
        assert_eq!(compiled.headers.len(), 1);
        assert!(matches!(compiled.headers[0].value, StringMatch::Exact(ref v) if v == "one"));
        let bad = HttpRouteRulesMatches {
            headers: Some(vec![h("bad header", "x")]),
            ..Default::default()
        };
        assert!(compile(&bad).is_err());
    }
}
