//! One GRPCRoute's rules -> route entries: method matches become path matches on
//! `/service/method`, filters and backends are read through their HTTPRoute twins, and every
//! backend is spoken to over HTTP/2.

use gateway_api::apis::experimental::grpcroutes::{
    GrpcRoute, GrpcRouteRules, GrpcRouteRulesMatches, GrpcRouteRulesMatchesMethod,
    GrpcRouteRulesMatchesMethodType as MethodType,
};
use gateway_api::apis::experimental::httproutes::{
    HttpRouteRulesBackendRefs, HttpRouteRulesFilters, HttpRouteRulesMatches,
};
use regex::Regex;

use super::backend::{Resolver, UnresolvedRef};
use super::index::namespace_of;
use super::matches;
use super::rule::{
    as_http, compile_parts, compile_rules, CompiledRoute, CompiledRule, RuleError, RuleParts,
};
use crate::precedence::GrpcSpecificity;
use crate::snapshot::{PathMatch, RequestMatch, RuleAction, Timeouts};
use crate::status::conditions::reasons;

/// Why a method match cannot be compiled: the rule holding it is dropped.
#[derive(Debug, thiserror::Error)]
pub(super) enum GrpcMatchError {
    #[error("method match sets neither service nor method")]
    Empty,
    #[error("method match {field} {value:?} contains '/'")]
    Slash { field: &'static str, value: String },
    /// The regex error is part of the message a status shows, so it is not also a `#[source]`.
    #[error("invalid regular expression {pattern:?}: {error}")]
    Regex {
        pattern: String,
        error: regex::Error,
    },
}

// === impl GrpcMatchError ===

impl GrpcMatchError {
    /// The route condition reason: the spec's for a value Sluice cannot use.
    pub(super) fn reason(&self) -> &'static str {
        reasons::UNSUPPORTED_VALUE
    }
}

/// The `[^/]+` a regex match uses for a service or method it leaves out.
const ANY_SEGMENT: &str = "[^/]+";

pub(super) fn compile_route(route: &GrpcRoute, resolver: &mut Resolver<'_, '_>) -> CompiledRoute {
    let namespace = namespace_of(&route.metadata);
    compile_rules(route.spec.rules.as_deref(), |index, rule, unresolved| {
        compile_rule(index, rule, namespace, resolver, unresolved)
    })
}

fn compile_rule(
    index: usize,
    rule: &GrpcRouteRules,
    namespace: &str,
    resolver: &mut Resolver<'_, '_>,
    unresolved: &mut Vec<UnresolvedRef>,
) -> Result<CompiledRule, RuleError> {
    let (matches, grpc): (Vec<RequestMatch>, Vec<GrpcSpecificity>) = match rule.matches.as_deref() {
        Some(ms) if !ms.is_empty() => ms
            .iter()
            .map(compile_match)
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .unzip(),
        _ => (vec![matches::match_all()], vec![GrpcSpecificity::default()]),
    };
    let filters: Vec<HttpRouteRulesFilters> = rule
        .filters
        .iter()
        .flatten()
        .map(|f| as_http("filters", f))
        .collect::<Result<_, _>>()?;
    let backend_refs: Vec<HttpRouteRulesBackendRefs> = rule
        .backend_refs
        .iter()
        .flatten()
        .map(|b| as_http("backendRefs", b))
        .collect::<Result<_, _>>()?;
    let parts = RuleParts {
        filters: &filters,
        backend_refs: &backend_refs,
    };
    let (filters, backends) = compile_parts(&parts, &matches, namespace, resolver, unresolved)?;
    Ok(CompiledRule {
        index,
        name: rule.name.clone(),
        matches,
        grpc,
        // GRPCRoute v1 has neither timeouts nor retry.
        action: std::sync::Arc::new(RuleAction::new(filters, backends, Timeouts::default())),
    })
}

/// A GRPCRoute match: its method as a path match, its headers as HTTP header matches. The
/// method `POST` every gRPC call uses is implied, not required.
pub(super) fn compile_match(
    m: &GrpcRouteRulesMatches,
) -> Result<(RequestMatch, GrpcSpecificity), RuleError> {
    let as_http_match = HttpRouteRulesMatches {
        headers: m
            .headers
            .as_ref()
            .map(|h| as_http("matches.headers", h))
            .transpose()?,
        ..Default::default()
    };
    let mut compiled = matches::compile(&as_http_match)?;
    let (path, specificity) = match &m.method {
        None => (PathMatch::Prefix("/".into()), GrpcSpecificity::default()),
        Some(method) => method_path(method)?,
    };
    compiled.path = path;
    Ok((compiled, specificity))
}

/// `service`/`method` -> the path match of `/service/method` calls, and its precedence.
fn method_path(
    m: &GrpcRouteRulesMatchesMethod,
) -> Result<(PathMatch, GrpcSpecificity), GrpcMatchError> {
    let service = m.service.as_deref().filter(|s| !s.is_empty());
    let method = m.method.as_deref().filter(|s| !s.is_empty());
    let specificity = GrpcSpecificity {
        regex: m.r#type == Some(MethodType::RegularExpression),
        service: service.map_or(0, str::len),
        method: method.map_or(0, str::len),
    };
    let path = match m.r#type.as_ref().unwrap_or(&MethodType::Exact) {
        MethodType::Exact => {
            for (field, value) in [("service", service), ("method", method)] {
                if let Some(v) = value.filter(|v| v.contains('/')) {
                    return Err(GrpcMatchError::Slash {
                        field,
                        value: v.to_string(),
                    });
                }
            }
            match (service, method) {
                (Some(s), Some(m)) => PathMatch::Exact(format!("/{s}/{m}")),
                // Prefix matches are segment-aware: `/svc` matches `/svc/Any`, not `/svcX/Any`.
                (Some(s), None) => PathMatch::Prefix(format!("/{s}")),
                (None, Some(m)) => PathMatch::RegularExpression(full_match(&format!(
                    "/{ANY_SEGMENT}/{}",
                    regex::escape(m)
                ))?),
                (None, None) => return Err(GrpcMatchError::Empty),
            }
        }
        MethodType::RegularExpression => {
            if service.is_none() && method.is_none() {
                return Err(GrpcMatchError::Empty);
            }
            for value in [service, method].into_iter().flatten() {
                Regex::new(value).map_err(|error| GrpcMatchError::Regex {
                    pattern: value.to_string(),
                    error,
                })?;
            }
            PathMatch::RegularExpression(full_match(&format!(
                "/(?:{})/(?:{})",
                service.unwrap_or(ANY_SEGMENT),
                method.unwrap_or(ANY_SEGMENT)
            ))?)
        }
    };
    Ok((path, specificity))
}

fn full_match(pattern: &str) -> Result<Regex, GrpcMatchError> {
    Regex::new(&format!("^(?:{pattern})$")).map_err(|error| GrpcMatchError::Regex {
        pattern: pattern.to_string(),
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn method(
        ty: MethodType,
        service: Option<&str>,
        method: Option<&str>,
    ) -> GrpcRouteRulesMatchesMethod {
        GrpcRouteRulesMatchesMethod {
            method: method.map(Into::into),
            service: service.map(Into::into),
            r#type: Some(ty),
        }
    }

    fn path_of(m: &GrpcRouteRulesMatchesMethod) -> PathMatch {
        method_path(m).expect("compiles").0
    }

    fn matches(p: &PathMatch, path: &str) -> bool {
        match p {
            PathMatch::Exact(e) => e == path,
            PathMatch::Prefix(pre) => {
                path == pre
                    || path
                        .strip_prefix(pre.as_str())
                        .is_some_and(|r| r.starts_with('/'))
            }
            PathMatch::RegularExpression(r) => r.is_match(path),
        }
    }

    #[test]
    fn exact_service_and_method_is_an_exact_path() {
        let p = path_of(&method(MethodType::Exact, Some("pkg.Svc"), Some("Get")));
        assert!(matches!(&p, PathMatch::Exact(e) if e == "/pkg.Svc/Get"));
    }

    #[test]
    fn exact_service_alone_matches_every_method_of_that_service_only() {
        let p = path_of(&method(MethodType::Exact, Some("pkg.Svc"), None));
        assert!(matches(&p, "/pkg.Svc/Get"));
        assert!(!matches(&p, "/pkg.SvcX/Get"));
    }

    #[test]
    fn exact_method_alone_matches_it_in_any_service_literally() {
        let p = path_of(&method(MethodType::Exact, None, Some("Get.All")));
        assert!(matches(&p, "/a.B/Get.All"));
        assert!(!matches(&p, "/a.B/GetxAll"));
        assert!(!matches(&p, "/a/b/Get.All"));
    }

    #[test]
    fn regex_defaults_the_missing_part_and_groups_alternations() {
        let p = path_of(&method(MethodType::RegularExpression, Some("a|b"), None));
        assert!(matches(&p, "/a/M"));
        assert!(matches(&p, "/b/M"));
        assert!(!matches(&p, "/ab/M"));
        assert!(!matches(&p, "/a/M/x"));
    }

    #[test]
    fn invalid_method_matches_drop_the_rule() {
        assert!(method_path(&method(MethodType::Exact, None, None)).is_err());
        assert!(method_path(&method(MethodType::Exact, Some("a/b"), None)).is_err());
        assert!(method_path(&method(MethodType::RegularExpression, Some("a)|(b"), None)).is_err());
    }

    #[test]
    fn precedence_counts_service_then_method_characters() {
        let (_, s) = method_path(&method(MethodType::Exact, Some("pkg.Svc"), Some("Get")))
            .expect("compiles");
        assert_eq!(
            s,
            GrpcSpecificity {
                regex: false,
                service: 7,
                method: 3
            }
        );
    }
}
