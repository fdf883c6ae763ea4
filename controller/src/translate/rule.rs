//! One HTTPRoute's rules -> matches plus a shared `RuleAction`, independent of where it attaches.

use std::sync::Arc;
use std::time::Duration;

use gateway_api::apis::experimental::httproutes::{
    HttpRoute, HttpRouteRules, HttpRouteRulesBackendRefs, HttpRouteRulesFilters,
    HttpRouteRulesRetry,
};

use super::backend::{BackendRef, Resolver, UnresolvedRef};
use super::duration;
use super::filters::{self, FilterError};
use super::index::namespace_of;
use super::matches::{self, MatchError};
use crate::precedence::GrpcSpecificity;
use crate::snapshot::{
    BackendTarget, Filter, PathMatch, PathModifier, RequestMatch, RetryPolicy, RuleAction,
    Timeouts, WeightedBackend,
};
use crate::status::conditions::reasons;

/// Why a rule cannot be compiled: it is dropped, and its route says so.
#[derive(Debug, thiserror::Error)]
pub(super) enum RuleError {
    #[error(transparent)]
    Match(#[from] MatchError),
    #[error(transparent)]
    Filter(#[from] FilterError),
    #[error(transparent)]
    GrpcMatch(#[from] super::grpc::GrpcMatchError),
    /// A GRPCRoute or TLSRoute field read through its HTTPRoute twin (same shape) did not
    /// convert; the serde error is the message.
    #[error("{field}: {error}")]
    Convert {
        field: &'static str,
        error: serde_json::Error,
    },
    #[error("backendRef weight {0} is negative")]
    NegativeWeight(i32),
    #[error("RequestRedirect and URLRewrite cannot be used together")]
    RedirectWithRewrite,
    #[error("ReplacePrefixMatch needs every match to be a PathPrefix match")]
    ReplacePrefixWithoutPrefixMatch,
    #[error("timeouts.{field} {value:?} is not a valid duration")]
    Timeout { field: &'static str, value: String },
    #[error("timeouts.backendRequest must not exceed timeouts.request")]
    BackendTimeoutOverRequest,
    #[error("retry.backoff {0:?} is not a valid duration")]
    RetryBackoff(String),
    #[error("retry.codes {0} is not a status between 400 and 599")]
    RetryCode(i64),
    #[error("retry.attempts {0} is not a positive number")]
    RetryAttempts(i64),
}

/// A rule dropped as invalid, and why.
#[derive(Debug, thiserror::Error)]
#[error("rule {index}: {error}")]
pub(super) struct InvalidRule {
    pub index: usize,
    pub error: RuleError,
}

// === impl RuleError ===

impl RuleError {
    /// The route condition reason: the spec's for a rule that is not valid.
    pub(super) fn reason(&self) -> &'static str {
        match self {
            RuleError::Match(e) => e.reason(),
            RuleError::Filter(e) => e.reason(),
            RuleError::GrpcMatch(e) => e.reason(),
            _ => reasons::UNSUPPORTED_VALUE,
        }
    }
}

pub(super) struct CompiledRule {
    pub index: usize,
    pub name: Option<String>,
    pub matches: Vec<RequestMatch>,
    /// GRPCRoute rules: the precedence of each match (parallel to `matches`); empty otherwise.
    pub grpc: Vec<GrpcSpecificity>,
    pub action: Arc<RuleAction>,
}

#[derive(Default)]
pub(super) struct CompiledRoute {
    pub rules: Vec<CompiledRule>,
    /// The rules dropped as invalid.
    pub invalid: Vec<InvalidRule>,
    /// Refs that did not resolve, in the order met; the first gives the ResolvedRefs reason.
    pub unresolved: Vec<UnresolvedRef>,
}

impl CompiledRoute {
    /// Every rule was invalid: the route cannot be accepted.
    pub(super) fn all_invalid(&self) -> bool {
        self.rules.is_empty() && !self.invalid.is_empty()
    }

    /// The reason a condition about the dropped rules carries: the first one's.
    pub(super) fn invalid_reason(&self) -> &'static str {
        self.invalid
            .first()
            .map_or(reasons::UNSUPPORTED_VALUE, |r| r.error.reason())
    }

    /// Why the invalid rules were dropped, one after another.
    pub(super) fn invalid_message(&self) -> String {
        let each: Vec<String> = self.invalid.iter().map(ToString::to_string).collect();
        each.join("; ")
    }
}

pub(super) fn compile_route(route: &HttpRoute, resolver: &mut Resolver<'_, '_>) -> CompiledRoute {
    let namespace = namespace_of(&route.metadata);
    compile_rules(route.spec.rules.as_deref(), |index, rule, unresolved| {
        compile_rule(index, rule, namespace, resolver, unresolved)
    })
}

/// Compiles every rule with `compile`, keeping the invalid ones apart. A route without rules
/// gets the CRDs' default (HTTPRoute and GRPCRoute alike): one rule matching every request,
/// without backends.
pub(super) fn compile_rules<R: Default>(
    rules: Option<&[R]>,
    mut compile: impl FnMut(usize, &R, &mut Vec<UnresolvedRef>) -> Result<CompiledRule, RuleError>,
) -> CompiledRoute {
    let default_rules = [R::default()];
    let rules = match rules {
        Some(rules) if !rules.is_empty() => rules,
        _ => &default_rules[..],
    };
    let mut out = CompiledRoute::default();
    for (index, rule) in rules.iter().enumerate() {
        match compile(index, rule, &mut out.unresolved) {
            Ok(r) => out.rules.push(r),
            Err(error) => out.invalid.push(InvalidRule { index, error }),
        }
    }
    out
}

/// A rule's filters and backendRefs (with their own filters), in the HTTPRoute types every route
/// kind's rules convert into.
pub(super) struct RuleParts<'a> {
    pub filters: &'a [HttpRouteRulesFilters],
    pub backend_refs: &'a [HttpRouteRulesBackendRefs],
}

/// Compiles a rule's filters and backends; refs that do not resolve are recorded in `unresolved`
/// and become invalid backends (500s), as the spec says.
pub(super) fn compile_parts(
    parts: &RuleParts<'_>,
    matches: &[RequestMatch],
    namespace: &str,
    resolver: &mut Resolver<'_, '_>,
    unresolved: &mut Vec<UnresolvedRef>,
) -> Result<(Vec<Filter>, Vec<WeightedBackend>), RuleError> {
    let mut rule_filters = Vec::new();
    for f in parts.filters {
        if let Some(f) = filters::compile(f, namespace, resolver, unresolved)? {
            rule_filters.push(f);
        }
    }
    check_filter_combination(&rule_filters, matches)?;

    let mut backends = Vec::new();
    for b in parts.backend_refs {
        let weight = match b.weight {
            None => 1,
            Some(w) => u32::try_from(w).map_err(|_| RuleError::NegativeWeight(w))?,
        };
        let target = match resolver.resolve(namespace, &BackendRef::from(b)) {
            Ok(backend) => BackendTarget::Service(backend),
            Err(u) => {
                let reason = u.to_string();
                unresolved.push(u);
                BackendTarget::Invalid { reason }
            }
        };
        let mut backend_filters = Vec::new();
        for f in b.filters.iter().flatten() {
            let f = filters::from_backend_filter(f)?;
            if let Some(f) = filters::compile(&f, namespace, resolver, unresolved)? {
                backend_filters.push(f);
            }
        }
        check_filter_combination(&backend_filters, matches)?;
        backends.push(WeightedBackend {
            weight,
            target,
            filters: backend_filters,
        });
    }
    Ok((rule_filters, backends))
}

/// Reads a GRPCRoute or TLSRoute value as its HTTPRoute twin: same fields, same serialization.
pub(super) fn as_http<T: serde::Serialize, U: serde::de::DeserializeOwned>(
    field: &'static str,
    value: &T,
) -> Result<U, RuleError> {
    serde_json::to_value(value)
        .and_then(serde_json::from_value)
        .map_err(|error| RuleError::Convert { field, error })
}

fn compile_rule(
    index: usize,
    rule: &HttpRouteRules,
    namespace: &str,
    resolver: &mut Resolver<'_, '_>,
    unresolved: &mut Vec<UnresolvedRef>,
) -> Result<CompiledRule, RuleError> {
    let matches = match rule.matches.as_deref() {
        Some(ms) if !ms.is_empty() => ms
            .iter()
            .map(matches::compile)
            .collect::<Result<Vec<_>, _>>()?,
        _ => vec![matches::match_all()],
    };

    let parts = RuleParts {
        filters: rule.filters.as_deref().unwrap_or(&[]),
        backend_refs: rule.backend_refs.as_deref().unwrap_or(&[]),
    };
    let (rule_filters, backends) =
        compile_parts(&parts, &matches, namespace, resolver, unresolved)?;

    Ok(CompiledRule {
        index,
        name: rule.name.clone(),
        matches,
        grpc: Vec::new(),
        action: Arc::new(
            RuleAction::new(rule_filters, backends, timeouts(rule)?)
                .with_retry(rule.retry.as_ref().map(retry).transpose()?),
        ),
    })
}

/// The spec forbids a redirect together with a rewrite, and `ReplacePrefixMatch` needs every
/// match of the rule to be a `PathPrefix` match.
fn check_filter_combination(filters: &[Filter], matches: &[RequestMatch]) -> Result<(), RuleError> {
    let redirect = filters.iter().any(|f| matches!(f, Filter::Redirect(_)));
    let rewrite = filters.iter().any(|f| matches!(f, Filter::UrlRewrite(_)));
    if redirect && rewrite {
        return Err(RuleError::RedirectWithRewrite);
    }
    let replaces_prefix = filters.iter().any(|f| {
        let path = match f {
            Filter::Redirect(r) => r.path.as_ref(),
            Filter::UrlRewrite(r) => r.path.as_ref(),
            _ => None,
        };
        matches!(path, Some(PathModifier::ReplacePrefixMatch(_)))
    });
    if replaces_prefix
        && !matches
            .iter()
            .all(|m| matches!(m.path, PathMatch::Prefix(_)))
    {
        return Err(RuleError::ReplacePrefixWithoutPrefixMatch);
    }
    Ok(())
}

/// A zero duration disables the timeout, as the spec says.
fn timeouts(rule: &HttpRouteRules) -> Result<Timeouts, RuleError> {
    let parse = |s: Option<&str>, field| -> Result<Option<Duration>, RuleError> {
        match s {
            None => Ok(None),
            Some(s) => duration::parse(s)
                .map(|d| (!d.is_zero()).then_some(d))
                .ok_or_else(|| RuleError::Timeout {
                    field,
                    value: s.to_string(),
                }),
        }
    };
    let t = rule.timeouts.as_ref();
    let request = parse(t.and_then(|t| t.request.as_deref()), "request")?;
    let backend_request = parse(
        t.and_then(|t| t.backend_request.as_deref()),
        "backendRequest",
    )?;
    if let (Some(r), Some(b)) = (request, backend_request) {
        if b > r {
            return Err(RuleError::BackendTimeoutOverRequest);
        }
    }
    Ok(Timeouts {
        request,
        backend_request,
    })
}

/// The rule's `retry`, checked as the CRD's schema checks it (a file source has no API server).
fn retry(r: &HttpRouteRulesRetry) -> Result<RetryPolicy, RuleError> {
    let mut codes = Vec::new();
    for &code in r.codes.iter().flatten() {
        match u16::try_from(code) {
            Ok(c) if (400..=599).contains(&c) => codes.push(c),
            _ => return Err(RuleError::RetryCode(code)),
        }
    }
    codes.sort_unstable();
    codes.dedup();
    let attempts = match r.attempts {
        None => None,
        // More retries than u32 holds are capped by the data plane anyway.
        Some(n) if n >= 1 => Some(u32::try_from(n).unwrap_or(u32::MAX)),
        Some(n) => return Err(RuleError::RetryAttempts(n)),
    };
    let backoff = match r.backoff.as_deref() {
        None => None,
        Some(s) => Some(duration::parse(s).ok_or_else(|| RuleError::RetryBackoff(s.to_string()))?),
    };
    Ok(RetryPolicy {
        codes,
        attempts,
        backoff,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn policy(
        codes: Vec<i64>,
        attempts: Option<i64>,
        backoff: Option<&str>,
    ) -> HttpRouteRulesRetry {
        HttpRouteRulesRetry {
            attempts,
            backoff: backoff.map(str::to_string),
            codes: Some(codes),
        }
    }

    #[test]
    fn retry_codes_are_sorted_once_and_durations_parsed() {
        let p = retry(&policy(vec![503, 500, 503], Some(3), Some("1s100ms"))).expect("valid");
        assert_eq!(p.codes, vec![500, 503]);
        assert_eq!(p.attempts, Some(3));
        assert_eq!(p.backoff, Some(Duration::from_millis(1100)));
        assert!(p.retries_status(503) && !p.retries_status(502));
    }

    #[test]
    fn retry_values_the_schema_forbids_drop_the_rule() {
        assert!(matches!(
            retry(&policy(vec![200], None, None)),
            Err(RuleError::RetryCode(200))
        ));
        assert!(matches!(
            retry(&policy(vec![], Some(0), None)),
            Err(RuleError::RetryAttempts(0))
        ));
        assert!(matches!(
            retry(&policy(vec![], None, Some("soon"))),
            Err(RuleError::RetryBackoff(_))
        ));
    }
}
