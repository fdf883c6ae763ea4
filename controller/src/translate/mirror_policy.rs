//! MirrorPolicies -> the policy each RequestMirror copy is shaped (and compared) by, and their
//! statuses (GEP-713 policy attachment).
//!
//! A policy targets a whole HTTPRoute/GRPCRoute or one of its rules by name (`sectionName`).
//! Policies are taken oldest first (creation time, then namespace/name): the first to target a
//! route, or a rule, wins it; later ones are `Conflicted` there, as GEP-713 says. A policy
//! naming the rule beats one naming the whole route, for that rule only: the more specific
//! target wins and the two do not conflict. A policy that is not valid claims nothing.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use gateway_api::apis::experimental::httproutes::HttpRouteRulesFiltersRequestHeaderModifier;
use http::HeaderName;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde_json::Value as Json;

use super::duration;
use super::filters::header_modifier;
use super::index::{creation_order, namespace_of, Index};
use super::route::view::RouteView;
use super::rule::CompiledRoute;
use super::verdict::{cond, Verdict};
use super::{Timestamp, GATEWAY_GROUP};
use crate::resources::backend_tls_policy::{AncestorRef, PolicyAncestorStatus, PolicyStatus};
use crate::resources::mirror_policy::{
    ByteQuantity, CompareSpec, CopyRequest, MirrorPolicy as PolicyObject, DEFAULT_SAMPLES,
    MAX_TIMEOUT,
};
use crate::snapshot::{Comparison, CopyHost, CopyShape, Filter, Fraction, MirrorPolicy, RouteKind};
use crate::status::conditions::{reasons, types};
use crate::status::{ObjectStatus, StatusKey, StatusReport};
use crate::CONTROLLER_NAME;

/// `(route kind, namespace, route, rule name)`; no rule name for a policy on the whole route.
type Target = (RouteKind, String, String, Option<String>);

/// Every policy evaluated, and which one owns each target.
pub(super) struct MirrorPolicies<'a> {
    evaluated: Vec<Evaluated<'a>>,
    owners: BTreeMap<Target, Owner>,
}

struct Owner {
    label: String,
    policy: Arc<MirrorPolicy>,
}

struct Evaluated<'a> {
    object: &'a PolicyObject,
    /// The resolved policy, or why it is not valid.
    resolved: Result<Arc<MirrorPolicy>, String>,
    targets: Vec<(Target, Outcome)>,
}

/// What became of one targetRef.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// The policy shapes the target's copies; `mirrors` RequestMirror filters are in it.
    Applied { mirrors: usize },
    /// An older policy (named) owns the target.
    Conflicted(String),
    /// No such route, or no rule of that name in it; the message says which.
    NotFound(String),
    /// The policy is not valid, so it claims nothing.
    Unclaimed,
}

// === impl MirrorPolicies ===

impl<'a> MirrorPolicies<'a> {
    pub(super) fn new(index: &Index<'a>) -> Self {
        let mut objects: Vec<&'a PolicyObject> = index.resources.mirror_policies.iter().collect();
        objects.sort_by_key(|p| creation_order(p.meta()));
        let mut evaluated = Vec::new();
        let mut owners: BTreeMap<Target, Owner> = BTreeMap::new();
        for object in objects {
            let label = label(object);
            let resolved = resolve(object, &label).map(Arc::new);
            let mut targets = Vec::new();
            for target in object_targets(object) {
                let outcome = match (rules_of(index, &target), &resolved) {
                    (Err(missing), _) => Outcome::NotFound(missing),
                    (Ok(_), Err(_)) => Outcome::Unclaimed,
                    (Ok(mirrors), Ok(policy)) => match owners.entry(target.clone()) {
                        Entry::Occupied(owner) => Outcome::Conflicted(owner.get().label.clone()),
                        Entry::Vacant(slot) => {
                            slot.insert(Owner {
                                label: label.clone(),
                                policy: policy.clone(),
                            });
                            Outcome::Applied { mirrors }
                        }
                    },
                };
                targets.push((target, outcome));
            }
            evaluated.push(Evaluated {
                object,
                resolved,
                targets,
            });
        }
        MirrorPolicies { evaluated, owners }
    }

    /// Gives every RequestMirror filter of the route's rules (rule filters and backendRef
    /// filters) the policy that owns the rule, else the one that owns the whole route.
    pub(super) fn apply(&self, kind: RouteKind, route: &ObjectMeta, compiled: &mut CompiledRoute) {
        if self.owners.is_empty() {
            return;
        }
        let namespace = namespace_of(route).to_string();
        let name = route.name.clone().unwrap_or_default();
        let whole = (kind, namespace, name, None);
        let route_policy = self.owners.get(&whole).map(|o| &o.policy);
        for rule in &mut compiled.rules {
            let rule_policy = rule.name.as_ref().and_then(|n| {
                let (k, ns, r, _) = &whole;
                let target = (*k, ns.clone(), r.clone(), Some(n.clone()));
                self.owners.get(&target).map(|o| &o.policy)
            });
            let Some(policy) = rule_policy.or(route_policy) else {
                continue;
            };
            // The action was built by this translation's compile step and is not shared yet.
            let Some(action) = Arc::get_mut(&mut rule.action) else {
                continue;
            };
            let backend_filters = action.backends.iter_mut().flat_map(|b| &mut b.filters);
            for filter in action.filters.iter_mut().chain(backend_filters) {
                if let Filter::Mirror(mirror) = filter {
                    mirror.policy = Some(policy.clone());
                }
            }
        }
    }

    /// One status per policy with an ancestor: each served Gateway a found target's route is
    /// attached to, and the targetRef itself for a route that does not exist.
    pub(super) fn statuses(
        &self,
        routes: &[RouteView<'_>],
        served: &BTreeSet<(String, String)>,
        now: Timestamp,
        report: &mut StatusReport,
    ) {
        for e in &self.evaluated {
            let mut ancestors: BTreeMap<AncestorRef, Vec<&(Target, Outcome)>> = BTreeMap::new();
            for t in &e.targets {
                let (kind, ns, route, _) = &t.0;
                let view = routes.iter().find(|v| {
                    v.kind == *kind
                        && namespace_of(v.meta) == ns
                        && v.meta.name.as_deref() == Some(route.as_str())
                });
                let refs: Vec<AncestorRef> = match view {
                    Some(view) => view
                        .served_gateways(served)
                        .into_iter()
                        .map(|(namespace, name)| AncestorRef::gateway(namespace, name))
                        .collect(),
                    // No route to follow to a Gateway: the missing target is the ancestor.
                    None => vec![AncestorRef {
                        group: GATEWAY_GROUP.into(),
                        kind: kind.as_str().into(),
                        name: route.clone(),
                        namespace: ns.clone(),
                    }],
                };
                for r in refs {
                    ancestors.entry(r).or_default().push(t);
                }
            }
            if ancestors.is_empty() {
                continue;
            }
            let meta = e.object.meta();
            let status = policy_status(ancestors, &e.resolved, meta.generation, now);
            report.objects.insert(
                StatusKey::mirror_policy(namespace_of(meta), meta.name.as_deref().unwrap_or("")),
                ObjectStatus::MirrorPolicy(status),
            );
        }
    }
}

/// The CRD's `status.ancestors` holds at most this many (GEP-713's limit).
const MAX_ANCESTORS: usize = 16;

/// The status from the ancestors in their `Ord` order (group, kind, name, namespace), so the
/// same 16 are kept on every translation when a policy reaches more Gateways than the status
/// can list; an API server would refuse the whole status otherwise.
fn policy_status(
    ancestors: BTreeMap<AncestorRef, Vec<&(Target, Outcome)>>,
    resolved: &Result<Arc<MirrorPolicy>, String>,
    generation: Option<i64>,
    now: Timestamp,
) -> PolicyStatus {
    PolicyStatus {
        ancestors: ancestors
            .into_iter()
            .take(MAX_ANCESTORS)
            .map(|(ancestor_ref, targets)| PolicyAncestorStatus {
                ancestor_ref,
                controller_name: CONTROLLER_NAME.into(),
                conditions: vec![cond(
                    types::ACCEPTED,
                    &accepted(resolved, &targets),
                    generation,
                    now,
                )],
            })
            .collect(),
    }
}

/// `Accepted` at one ancestor, from the targets reached through it: not valid, then a missing
/// target, then a conflict decide it, in that order; otherwise accepted, saying which targets
/// have no RequestMirror filter to shape.
fn accepted(
    resolved: &Result<Arc<MirrorPolicy>, String>,
    targets: &[&(Target, Outcome)],
) -> Verdict {
    if let Err(why) = resolved {
        return Verdict::no(reasons::INVALID, why.clone());
    }
    let missing: Vec<&str> = targets
        .iter()
        .filter_map(|(_, o)| match o {
            Outcome::NotFound(m) => Some(m.as_str()),
            _ => None,
        })
        .collect();
    if !missing.is_empty() {
        return Verdict::no(reasons::TARGET_NOT_FOUND, missing.join("; "));
    }
    let conflicts: Vec<String> = targets
        .iter()
        .filter_map(|(t, o)| match o {
            Outcome::Conflicted(owner) => Some(format!(
                "{} is already targeted by the older MirrorPolicy {owner}",
                describe(t)
            )),
            _ => None,
        })
        .collect();
    if !conflicts.is_empty() {
        return Verdict::no(reasons::CONFLICTED, conflicts.join("; "));
    }
    let idle: Vec<String> = targets
        .iter()
        .filter(|(_, o)| *o == Outcome::Applied { mirrors: 0 })
        .map(|(t, _)| {
            format!(
                "{} has no RequestMirror filter: nothing to shape",
                describe(t)
            )
        })
        .collect();
    Verdict {
        ok: true,
        reason: reasons::ACCEPTED,
        message: idle.join("; "),
    }
}

fn describe((kind, ns, route, rule): &Target) -> String {
    match rule {
        Some(rule) => format!("{} {ns}/{route} rule {rule}", kind.as_str()),
        None => format!("{} {ns}/{route}", kind.as_str()),
    }
}

fn label(object: &PolicyObject) -> String {
    let meta = object.meta();
    format!(
        "{}/{}",
        namespace_of(meta),
        meta.name.as_deref().unwrap_or("")
    )
}

/// The policy's targets, in its namespace; kinds other than the two route kinds are left out
/// (the CRD admits no others).
fn object_targets(object: &PolicyObject) -> Vec<Target> {
    let namespace = namespace_of(object.meta());
    object
        .spec
        .target_refs
        .iter()
        .filter(|t| t.group == GATEWAY_GROUP)
        .filter_map(|t| {
            let kind = match t.kind.as_str() {
                "HTTPRoute" => RouteKind::Http,
                "GRPCRoute" => RouteKind::Grpc,
                _ => return None,
            };
            Some((
                kind,
                namespace.to_string(),
                t.name.clone(),
                t.section_name.clone(),
            ))
        })
        .collect()
}

/// How many RequestMirror filters the targeted rules hold, or why the target is not found.
fn rules_of(index: &Index<'_>, target: &Target) -> Result<usize, String> {
    let (kind, ns, name, section) = target;
    let found =
        |meta: &ObjectMeta| namespace_of(meta) == ns && meta.name.as_deref() == Some(name.as_str());
    let r = &index.resources;
    // Both kinds' rules read as JSON: the same field names, in two sets of generated types.
    let rules = match kind {
        RouteKind::Http => r
            .http_routes
            .iter()
            .find(|x| found(&x.metadata))
            .map(|x| serde_json::to_value(&x.spec.rules)),
        RouteKind::Grpc => r
            .grpc_routes
            .iter()
            .find(|x| found(&x.metadata))
            .map(|x| serde_json::to_value(&x.spec.rules)),
        RouteKind::Tls => None,
    };
    let missing = format!("{} {ns}/{name} does not exist", kind.as_str());
    let rules = match rules {
        Some(Ok(Json::Array(rules))) => rules,
        Some(_) => Vec::new(),
        None => return Err(missing),
    };
    let selected: Vec<&Json> = match section {
        None => rules.iter().collect(),
        Some(section) => rules
            .iter()
            .filter(|r| r.get("name").and_then(Json::as_str) == Some(section.as_str()))
            .collect(),
    };
    if let (Some(section), true) = (section, selected.is_empty()) {
        return Err(format!(
            "{} {ns}/{name} has no rule named {section}",
            kind.as_str()
        ));
    }
    Ok(selected.iter().map(|r| mirror_filters(r)).sum())
}

/// RequestMirror filters of one rule: its own and its backendRefs'.
fn mirror_filters(rule: &Json) -> usize {
    let count = |filters: Option<&Json>| {
        filters
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter(|f| f.get("type").and_then(Json::as_str) == Some("RequestMirror"))
            .count()
    };
    let backends = rule.get("backendRefs").and_then(Json::as_array);
    count(rule.get("filters"))
        + backends
            .into_iter()
            .flatten()
            .map(|b| count(b.get("filters")))
            .sum::<usize>()
}

/// The snapshot's policy from the object; `Err` says what Sluice cannot use (admission already
/// checked patterns and bounds, so this is defensive, for laxer API servers).
fn resolve(object: &PolicyObject, label: &str) -> Result<MirrorPolicy, String> {
    let request = match &object.spec.request {
        Some(r) => copy_shape(r)?,
        None => CopyShape::default(),
    };
    let compare = object.spec.compare.as_ref().map(comparison).transpose()?;
    Ok(MirrorPolicy {
        name: label.to_string(),
        request,
        compare,
    })
}

fn copy_shape(r: &CopyRequest) -> Result<CopyShape, String> {
    let host = match (&r.host_suffix, &r.host_rewrite) {
        (Some(_), Some(_)) => {
            return Err("hostSuffix and hostRewrite are mutually exclusive".into())
        }
        (Some(s), None) => Some(CopyHost::Suffix(s.clone())),
        (None, Some(h)) => Some(CopyHost::Rewrite(h.clone())),
        (None, None) => None,
    };
    let headers = match &r.headers {
        None => None,
        Some(h) => {
            // The same shape as Gateway API's HTTPHeaderFilter: read as one, checked the same way.
            let spec: HttpRouteRulesFiltersRequestHeaderModifier = serde_json::to_value(h)
                .and_then(serde_json::from_value)
                .map_err(|e| format!("request.headers: {e}"))?;
            Some(header_modifier(&spec).map_err(|e| format!("request.headers: {e}"))?)
        }
    };
    let timeout = match &r.timeout {
        None => None,
        Some(t) => Some(
            duration::parse(t)
                .filter(|d| !d.is_zero() && *d <= MAX_TIMEOUT)
                .ok_or_else(|| {
                    format!("request.timeout {t:?} must be a duration more than 0s and at most 1h")
                })?,
        ),
    };
    let max_body_bytes = r.max_body_bytes.as_ref().map(positive_bytes).transpose()?;
    Ok(CopyShape {
        host,
        headers,
        strip_credentials: r.strip_credentials.unwrap_or(false),
        timeout,
        max_body_bytes,
    })
}

/// `8Mi`, `500k` or an integer, as a byte count.
fn bytes(q: &ByteQuantity) -> Result<usize, String> {
    let invalid = || format!("request.maxBodyBytes {q:?} is not a byte count this host can hold");
    let (digits, multiplier): (&str, u64) = match q {
        ByteQuantity::Int(n) => return usize::try_from(*n).map_err(|_| invalid()),
        ByteQuantity::String(s) => {
            let suffixes: [(&str, u64); 6] = [
                ("Ki", 1 << 10),
                ("Mi", 1 << 20),
                ("Gi", 1 << 30),
                ("k", 1_000),
                ("M", 1_000_000),
                ("G", 1_000_000_000),
            ];
            suffixes
                .iter()
                .find_map(|(suffix, m)| s.strip_suffix(suffix).map(|d| (d, *m)))
                .unwrap_or((s.as_str(), 1))
        }
    };
    let n: u64 = digits.parse().map_err(|_| invalid())?;
    n.checked_mul(multiplier)
        .and_then(|b| usize::try_from(b).ok())
        .ok_or_else(invalid)
}

/// A budget of 0 would abort every copy with a body: refused, as the CRD's schema does.
fn positive_bytes(q: &ByteQuantity) -> Result<usize, String> {
    match bytes(q)? {
        0 => Err(format!("request.maxBodyBytes {q:?} must be at least 1")),
        n => Ok(n),
    }
}

fn comparison(c: &CompareSpec) -> Result<Comparison, String> {
    let percent = c.percent.unwrap_or(100);
    let numerator = u32::try_from(percent)
        .ok()
        .filter(|p| *p <= 100)
        .ok_or_else(|| format!("compare.percent {percent} is not in 0..=100"))?;
    let headers = c
        .headers
        .iter()
        .flatten()
        .map(|h| {
            HeaderName::from_bytes(h.as_bytes())
                .map_err(|_| format!("compare.headers: {h:?} is not a valid header name"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let body = c.body.unwrap_or(false);
    let status = c.status.unwrap_or(true);
    if c.ignore_json_fields.is_some() && !body {
        return Err("compare: ignoreJSONFields requires body: true".into());
    }
    if !status && headers.is_empty() && !body {
        return Err("compare: at least one of status, headers or body must be compared".into());
    }
    let samples = match c.samples {
        None => DEFAULT_SAMPLES,
        Some(n) => usize::try_from(n)
            .ok()
            .filter(|n| *n <= 1000)
            .ok_or_else(|| format!("compare.samples {n} is not in 0..=1000"))?,
    };
    Ok(Comparison {
        fraction: Fraction {
            numerator,
            denominator: 100,
        },
        status,
        headers,
        body,
        ignore_json_fields: c.ignore_json_fields.clone().unwrap_or_default(),
        samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::mirror_policy::{HeaderFilter, HeaderValue};

    #[test]
    fn body_budgets_read_integers_and_quantities() {
        let cases = [
            ("a plain integer", ByteQuantity::Int(65536), Some(65536)),
            (
                "binary suffix",
                ByteQuantity::String("8Mi".into()),
                Some(8 << 20),
            ),
            (
                "decimal suffix",
                ByteQuantity::String("500k".into()),
                Some(500_000),
            ),
            (
                "digits as a string",
                ByteQuantity::String("12".into()),
                Some(12),
            ),
            ("negative", ByteQuantity::Int(-1), None),
            ("a fraction", ByteQuantity::String("1.5Mi".into()), None),
            (
                "beyond u64",
                ByteQuantity::String("99999999999999999999Gi".into()),
                None,
            ),
        ];
        for (case, q, expected) in cases {
            assert_eq!(bytes(&q).ok(), expected, "{case}");
        }
    }

    #[test]
    fn an_empty_compare_compares_every_copy_by_status_only() {
        let c = comparison(&CompareSpec::default()).expect("valid");
        assert_eq!((c.fraction.numerator, c.fraction.denominator), (100, 100));
        assert!(c.status);
        assert!(!c.body);
        assert!(c.headers.is_empty());
        assert_eq!(c.samples, DEFAULT_SAMPLES);
    }

    #[test]
    fn values_admission_would_refuse_make_the_policy_invalid_not_a_panic() {
        let bad_header = CopyRequest {
            headers: Some(HeaderFilter {
                set: Some(vec![HeaderValue {
                    name: "X Bad".into(),
                    value: "1".into(),
                }]),
                ..HeaderFilter::default()
            }),
            ..CopyRequest::default()
        };
        let both_hosts = CopyRequest {
            host_suffix: Some("-s".into()),
            host_rewrite: Some("h".into()),
            ..CopyRequest::default()
        };
        let bad_timeout = CopyRequest {
            timeout: Some("1.5s".into()),
            ..CopyRequest::default()
        };
        let timeout = |t: &str| CopyRequest {
            timeout: Some(t.into()),
            ..CopyRequest::default()
        };
        let budget = |q: ByteQuantity| CopyRequest {
            max_body_bytes: Some(q),
            ..CopyRequest::default()
        };
        for (case, request) in [
            ("header name", bad_header),
            ("both hosts", both_hosts),
            ("timeout", bad_timeout),
            ("zero timeout", timeout("0s")),
            ("timeout over an hour", timeout("1h1s")),
            ("zero budget", budget(ByteQuantity::Int(0))),
            ("zero quantity", budget(ByteQuantity::String("0Mi".into()))),
        ] {
            assert!(copy_shape(&request).is_err(), "{case}");
        }
        assert!(copy_shape(&timeout("1h")).is_ok(), "an hour is the maximum");
        let over = CompareSpec {
            percent: Some(101),
            ..CompareSpec::default()
        };
        let pointers_without_body = CompareSpec {
            ignore_json_fields: Some(vec!["/ts".into()]),
            ..CompareSpec::default()
        };
        let nothing_compared = CompareSpec {
            status: Some(false),
            ..CompareSpec::default()
        };
        for (case, compare) in [
            ("percent", over),
            ("ignoreJSONFields without body", pointers_without_body),
            ("nothing compared", nothing_compared),
        ] {
            assert!(comparison(&compare).is_err(), "{case}");
        }
    }

    #[test]
    fn status_lists_at_most_sixteen_ancestors_the_same_sixteen_every_time() {
        let policy = Ok(Arc::new(MirrorPolicy {
            name: "ns/p".into(),
            request: CopyShape::default(),
            compare: None,
        }));
        let target = (RouteKind::Http, "ns".to_string(), "r".to_string(), None);
        let applied = (target, Outcome::Applied { mirrors: 1 });
        // Inserted in reverse so the kept ones come from the order, not from insertion.
        let ancestors: BTreeMap<AncestorRef, Vec<&(Target, Outcome)>> = (0..20)
            .rev()
            .map(|i| {
                (
                    AncestorRef::gateway("ns".into(), format!("gw-{i:02}")),
                    vec![&applied],
                )
            })
            .collect();
        let status = policy_status(ancestors, &policy, Some(1), Timestamp::UNIX_EPOCH);
        let names: Vec<&str> = status
            .ancestors
            .iter()
            .map(|a| a.ancestor_ref.name.as_str())
            .collect();
        let expected: Vec<String> = (0..16).map(|i| format!("gw-{i:02}")).collect();
        assert_eq!(names, expected);
    }

    #[test]
    fn a_missing_target_outranks_a_conflict_and_an_idle_target_is_still_accepted() {
        let policy = Ok(Arc::new(MirrorPolicy {
            name: "ns/p".into(),
            request: CopyShape::default(),
            compare: None,
        }));
        let target = |rule: &str| {
            (
                RouteKind::Http,
                "ns".to_string(),
                "r".to_string(),
                Some(rule.to_string()),
            )
        };
        let conflicted = (target("a"), Outcome::Conflicted("ns/old".into()));
        let missing = (target("b"), Outcome::NotFound("no rule b".into()));
        let idle = (target("c"), Outcome::Applied { mirrors: 0 });
        let v = accepted(&policy, &[&conflicted, &missing]);
        assert_eq!((v.ok, v.reason), (false, reasons::TARGET_NOT_FOUND));
        let v = accepted(&policy, &[&conflicted, &idle]);
        assert_eq!((v.ok, v.reason), (false, reasons::CONFLICTED));
        let v = accepted(&policy, &[&idle]);
        assert_eq!((v.ok, v.reason), (true, reasons::ACCEPTED));
        assert!(
            v.message.contains("no RequestMirror filter"),
            "{}",
            v.message
        );
    }
}
