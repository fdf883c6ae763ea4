//! Per-Gateway read access to exactly the Secrets its data plane serves: in each namespace holding
//! one, a Role with `resourceNames` and a RoleBinding to the data plane's ServiceAccount. The
//! data plane's ClusterRole has no Secret rule at all (docs/kubernetes.md, "Permissions").

use std::collections::{BTreeMap, BTreeSet};

use gateway_api::apis::experimental::gateways::Gateway;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use super::manifests;
use crate::translate::secret_refs::SecretKey;

/// The verbs a data plane needs to watch one Secret by name (a list or watch with the field
/// selector `metadata.name=NAME` is authorized against `resourceNames`).
pub const VERBS: [&str; 3] = ["get", "list", "watch"];

/// One namespace's Role and RoleBinding for the Gateway's data plane.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretAccess {
    /// `get`, `list` and `watch` of the namespace's referenced Secrets, by name.
    pub role: Role,
    /// Grants [`SecretAccess::role`] to the data plane's ServiceAccount.
    pub role_binding: RoleBinding,
}

/// One [`SecretAccess`] per namespace of `secrets`, each naming that namespace's Secrets (sorted).
/// Both objects are named like the data plane's ClusterRoleBinding
/// ([`manifests::binding_name`]), unique per Gateway in any namespace; they are owned by the
/// Gateway only in its own namespace (an owner must share the namespace), the provisioner deletes
/// the others itself.
pub fn build(gateway: &Gateway, secrets: &BTreeSet<SecretKey>) -> Vec<SecretAccess> {
    let mut by_namespace: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (ns, name) in secrets {
        by_namespace.entry(ns).or_default().push(name.clone());
    }
    let name = manifests::binding_name(gateway);
    let gateway_ns = gateway.namespace().unwrap_or_default();
    by_namespace
        .into_iter()
        .map(|(ns, names)| {
            let meta = ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.to_string()),
                labels: Some(manifests::labels(gateway)),
                owner_references: (ns == gateway_ns)
                    .then(|| manifests::owner(gateway))
                    .flatten()
                    .map(|o| vec![o]),
                ..ObjectMeta::default()
            };
            SecretAccess {
                role: Role {
                    metadata: meta.clone(),
                    rules: Some(vec![PolicyRule {
                        api_groups: Some(vec![String::new()]),
                        resources: Some(vec!["secrets".into()]),
                        resource_names: Some(names),
                        verbs: VERBS.iter().map(|v| v.to_string()).collect(),
                        ..PolicyRule::default()
                    }]),
                },
                role_binding: RoleBinding {
                    metadata: meta,
                    role_ref: RoleRef {
                        api_group: Some("rbac.authorization.k8s.io".into()),
                        kind: "Role".into(),
                        name: name.clone(),
                    },
                    subjects: Some(vec![Subject {
                        kind: "ServiceAccount".into(),
                        name: manifests::object_name(gateway),
                        namespace: Some(gateway_ns.clone()),
                        ..Subject::default()
                    }]),
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway() -> Gateway {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "web", "namespace": "demo", "uid": "u1"},
            "spec": {"gatewayClassName": "sluice", "listeners": []},
        }))
        .expect("a Gateway")
    }

    fn keys(pairs: &[(&str, &str)]) -> BTreeSet<SecretKey> {
        pairs
            .iter()
            .map(|(n, s)| (n.to_string(), s.to_string()))
            .collect()
    }

    fn granted(access: &SecretAccess) -> (String, Vec<String>) {
        let rule = &access.role.rules.as_ref().expect("rules")[0];
        (
            access.role.namespace().unwrap_or_default(),
            rule.resource_names.clone().unwrap_or_default(),
        )
    }

    #[test]
    fn one_role_per_namespace_names_exactly_the_referenced_secrets() {
        let access = build(
            &gateway(),
            &keys(&[("demo", "b"), ("demo", "a"), ("certs", "shared")]),
        );
        let got: Vec<_> = access.iter().map(granted).collect();
        assert_eq!(
            got,
            vec![
                ("certs".to_string(), vec!["shared".to_string()]),
                ("demo".to_string(), vec!["a".to_string(), "b".to_string()]),
            ]
        );
        for a in &access {
            let rule = &a.role.rules.as_ref().expect("rules")[0];
            assert_eq!(rule.resources, Some(vec!["secrets".to_string()]));
            assert_eq!(rule.verbs, ["get", "list", "watch"]);
            let subject = &a.role_binding.subjects.as_ref().expect("subjects")[0];
            assert_eq!(subject.name, "sluice-web");
            assert_eq!(subject.namespace.as_deref(), Some("demo"));
            assert_eq!(a.role_binding.role_ref.name, a.role.name_any());
        }
        // Owned (and so garbage-collected with the Gateway) only where the Gateway lives.
        assert!(access[0].role.metadata.owner_references.is_none());
        assert!(access[1].role.metadata.owner_references.is_some());
    }

    #[test]
    fn a_gateway_without_secret_references_gets_no_role() {
        assert!(build(&gateway(), &BTreeSet::new()).is_empty());
    }
}
