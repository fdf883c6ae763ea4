//! BackendTLSPolicies -> the TLS settings of the Service ports they target, and their statuses.
//!
//! Policies are taken oldest first (creation time, then namespace/name): the first one to target
//! a Service port (`sectionName`) or a whole Service wins it, later ones are `Conflicted`, as the
//! spec's conflict resolution says. A policy naming the port beats one naming the whole Service.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Resource;
use rustls::pki_types::CertificateDer;

use super::index::{creation_order, namespace_of, Index};
use super::route::view::RouteView;
use super::verdict::{cond, Verdict};
use super::Timestamp;
use crate::resources::backend_tls_policy::{
    AncestorRef, BackendTLSPolicy, PolicyAncestorStatus, PolicyStatus,
};
use crate::snapshot::{BackendTls, BackendTlsMode, SanName, Trust};
use crate::status::conditions::{reasons, types};
use crate::status::{ObjectStatus, StatusKey, StatusReport};
use crate::CONTROLLER_NAME;

/// `(namespace, Service, port name)`; no port name for a policy naming the whole Service.
type Target = (String, String, Option<String>);

/// Every policy evaluated, and which one owns each target.
pub(super) struct BackendTlsPolicies<'a> {
    evaluated: Vec<Evaluated<'a>>,
    owners: BTreeMap<Target, usize>,
}

struct Evaluated<'a> {
    policy: &'a BackendTLSPolicy,
    accepted: Verdict,
    resolved: Verdict,
    mode: BackendTlsMode,
}

// === impl BackendTlsPolicies ===

impl<'a> BackendTlsPolicies<'a> {
    pub(super) fn new(index: &Index<'a>) -> Self {
        let mut policies: Vec<&'a BackendTLSPolicy> =
            index.resources.backend_tls_policies.iter().collect();
        policies.sort_by_key(|p| creation_order(p.meta()));
        let mut evaluated = Vec::new();
        let mut owners = BTreeMap::new();
        for policy in policies {
            let mut e = evaluate(policy, index);
            let i = evaluated.len();
            let mut conflicted = false;
            for t in targets(policy) {
                match owners.entry(t) {
                    Entry::Occupied(_) => conflicted = true,
                    Entry::Vacant(slot) => {
                        slot.insert(i);
                    }
                }
            }
            if conflicted {
                e.accepted = Verdict::no(
                    reasons::CONFLICTED,
                    "an older BackendTLSPolicy targets the same Service port",
                );
            }
            evaluated.push(e);
        }
        BackendTlsPolicies { evaluated, owners }
    }

    /// The TLS settings of a Service port: the policy naming the port, else the one naming the
    /// whole Service.
    pub(super) fn modes(&self) -> BTreeMap<Target, BackendTlsMode> {
        self.owners
            .iter()
            .filter_map(|(t, &i)| Some((t.clone(), self.evaluated.get(i)?.mode.clone())))
            .collect()
    }

    /// One status per policy that affects a Gateway: one ancestor entry per Gateway whose routes
    /// send to a targeted Service.
    pub(super) fn statuses(
        &self,
        routes: &[RouteView<'_>],
        served: &BTreeSet<(String, String)>,
        now: Timestamp,
        report: &mut StatusReport,
    ) {
        let ancestors = ancestors_by_service(routes, served);
        for e in &self.evaluated {
            let meta = e.policy.meta();
            let namespace = namespace_of(meta);
            let mut gateways = BTreeSet::new();
            for (ns, svc, _) in targets(e.policy) {
                gateways.extend(ancestors.get(&(ns, svc)).into_iter().flatten().cloned());
            }
            if gateways.is_empty() {
                continue;
            }
            let generation = meta.generation;
            let status = PolicyStatus {
                ancestors: gateways
                    .into_iter()
                    .map(|(gw_ns, gw_name)| PolicyAncestorStatus {
                        ancestor_ref: AncestorRef::gateway(gw_ns, gw_name),
                        controller_name: CONTROLLER_NAME.into(),
                        conditions: vec![
                            cond(types::ACCEPTED, &e.accepted, generation, now),
                            cond(types::RESOLVED_REFS, &e.resolved, generation, now),
                        ],
                    })
                    .collect(),
            };
            let name = meta.name.as_deref().unwrap_or("");
            report.objects.insert(
                StatusKey::backend_tls_policy(namespace, name),
                ObjectStatus::BackendTlsPolicy(status),
            );
        }
    }
}

/// The policy's targets that are core Services (the CRD admits only those).
fn targets(policy: &BackendTLSPolicy) -> Vec<Target> {
    let namespace = namespace_of(policy.meta());
    policy
        .spec
        .target_refs
        .iter()
        .filter(|t| t.group.is_empty() && t.kind == "Service")
        .map(|t| {
            (
                namespace.to_string(),
                t.name.clone(),
                t.section_name.clone(),
            )
        })
        .collect()
}

/// Accepted and ResolvedRefs before conflicts, and the settings a backend gets from the policy.
fn evaluate<'a>(policy: &'a BackendTLSPolicy, index: &Index<'a>) -> Evaluated<'a> {
    let meta = policy.meta();
    let namespace = namespace_of(meta);
    let label = format!("{namespace}/{}", meta.name.as_deref().unwrap_or(""));
    let v = &policy.spec.validation;
    let mut resolved = Verdict::yes(reasons::RESOLVED_REFS);
    let mut roots = Vec::new();
    let trust = if v.well_known_ca_certificates.as_deref() == Some("System") {
        roots.extend(system_roots().iter().cloned());
        Trust::System
    } else {
        let mut used = Vec::new();
        for r in v.ca_certificate_refs.iter().flatten() {
            let problem = if !r.group.is_empty() || r.kind != "ConfigMap" {
                Some(Verdict::no(
                    reasons::INVALID_KIND,
                    format!(
                        "caCertificateRef {}/{} {}: only core ConfigMaps are supported",
                        r.group, r.kind, r.name
                    ),
                ))
            } else {
                match config_map(index, namespace, &r.name).map(ca_certificates) {
                    None => Some(Verdict::no(
                        reasons::INVALID_CA_CERTIFICATE_REF,
                        format!("ConfigMap {namespace}/{} not found", r.name),
                    )),
                    Some(certs) if certs.is_empty() => Some(Verdict::no(
                        reasons::INVALID_CA_CERTIFICATE_REF,
                        format!(
                            "ConfigMap {namespace}/{}: ca.crt holds no PEM certificate",
                            r.name
                        ),
                    )),
                    Some(certs) => {
                        roots.extend(certs);
                        used.push(format!("{namespace}/{}", r.name));
                        None
                    }
                }
            };
            if let Some(p) = problem {
                if resolved.ok {
                    resolved = p;
                }
            }
        }
        Trust::ConfigMaps(used)
    };
    let subject_alt_names = v
        .subject_alt_names
        .iter()
        .flatten()
        .filter_map(|s| match s.type_.as_str() {
            "Hostname" => s.hostname.clone().map(SanName::Hostname),
            "URI" => s.uri.clone().map(SanName::Uri),
            _ => None,
        })
        .collect();
    let built = BackendTls::new(label.clone(), &v.hostname, subject_alt_names, trust, &roots);
    let (accepted, mode) = match built {
        // "Connections using an invalid CACertificateRef MUST fail" (the CRD): with one ref
        // invalid the policy stays Accepted when others are usable, but nothing is sent.
        Ok(_) if !resolved.ok => (
            Verdict::yes(reasons::ACCEPTED),
            BackendTlsMode::Refuse { policy: label },
        ),
        Ok(tls) => (
            Verdict::yes(reasons::ACCEPTED),
            BackendTlsMode::Verify(Arc::new(tls)),
        ),
        Err(e) => {
            let reason = if roots.is_empty() {
                reasons::NO_VALID_CA_CERTIFICATE
            } else {
                reasons::INVALID
            };
            (
                Verdict::no(reason, e.to_string()),
                BackendTlsMode::Refuse { policy: label },
            )
        }
    };
    Evaluated {
        policy,
        accepted,
        resolved,
        mode,
    }
}

fn config_map<'a>(index: &Index<'a>, namespace: &str, name: &str) -> Option<&'a ConfigMap> {
    index.resources.config_maps.iter().find(|c| {
        namespace_of(&c.metadata) == namespace && c.metadata.name.as_deref() == Some(name)
    })
}

/// The PEM certificates of a ConfigMap's `ca.crt`; empty when it has none that parse.
fn ca_certificates(cm: &ConfigMap) -> Vec<CertificateDer<'static>> {
    let Some(pem) = cm.data.as_ref().and_then(|d| d.get("ca.crt")) else {
        return Vec::new();
    };
    rustls_pemfile::certs(&mut pem.as_bytes())
        .filter_map(Result::ok)
        .collect()
}

/// The platform's roots, read once per process: the only input of translation that is not in
/// `Resources`, and one that does not change while the process runs.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| rustls_native_certs::load_native_certs().certs)
}

/// `(Service namespace, name)` -> the served Gateways `(namespace, name)` of the routes that
/// send to it (rule backendRefs and mirror backendRefs).
fn ancestors_by_service(
    routes: &[RouteView<'_>],
    served: &BTreeSet<(String, String)>,
) -> BTreeMap<(String, String), BTreeSet<(String, String)>> {
    let mut out: BTreeMap<_, BTreeSet<_>> = BTreeMap::new();
    for route in routes {
        let namespace = namespace_of(route.meta);
        let gateways = route.served_gateways(served);
        if gateways.is_empty() {
            continue;
        }
        for &(group, kind, ns, name) in &route.backend_refs {
            if group.unwrap_or("").is_empty() && kind.unwrap_or("Service") == "Service" {
                let key = (ns.unwrap_or(namespace).to_string(), name.to_string());
                out.entry(key).or_default().extend(gateways.iter().cloned());
            }
        }
    }
    out
}
