//! One TLSRoute's rule -> the weighted backends a `TLS` listener sends its connections to.

use std::sync::Arc;

use gateway_api::apis::experimental::httproutes::HttpRouteRulesBackendRefs;
use gateway_api::apis::experimental::tlsroutes::{TlsRoute, TlsRouteRules};

use super::backend::{Resolver, UnresolvedRef};
use super::index::namespace_of;
use super::rule::{
    as_http, compile_parts, compile_rules, CompiledRoute, CompiledRule, RuleError, RuleParts,
};
use crate::snapshot::{RuleAction, Timeouts};

/// The CRD allows exactly one rule; each becomes a rule without matches (the SNI is matched by
/// the listener's TLSRoute table), so attachment files it as a `TlsRouteEntry`.
pub(super) fn compile_route(route: &TlsRoute, resolver: &mut Resolver<'_, '_>) -> CompiledRoute {
    let namespace = namespace_of(&route.metadata);
    // The CRD requires one rule, so the default for none never applies.
    compile_rules(Some(&route.spec.rules), |index, rule, unresolved| {
        compile_rule(index, rule, namespace, resolver, unresolved)
    })
}

fn compile_rule(
    index: usize,
    rule: &TlsRouteRules,
    namespace: &str,
    resolver: &mut Resolver<'_, '_>,
    unresolved: &mut Vec<UnresolvedRef>,
) -> Result<CompiledRule, RuleError> {
    let backend_refs: Vec<HttpRouteRulesBackendRefs> = rule
        .backend_refs
        .iter()
        .map(|b| as_http("backendRefs", b))
        .collect::<Result<_, _>>()?;
    let parts = RuleParts {
        filters: &[],
        backend_refs: &backend_refs,
    };
    let (filters, backends) = compile_parts(&parts, &[], namespace, resolver, unresolved)?;
    Ok(CompiledRule {
        index,
        name: rule.name.clone(),
        matches: Vec::new(),
        grpc: Vec::new(),
        action: Arc::new(RuleAction::new(filters, backends, Timeouts::default())),
    })
}
