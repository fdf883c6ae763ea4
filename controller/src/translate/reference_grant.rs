//! ReferenceGrant checks: may an object in one namespace refer to an object in another?

use gateway_api::apis::experimental::referencegrants::ReferenceGrant;

use super::index::namespace_of;

/// The referring side: `group`/`kind` of the object holding the reference, and its namespace.
pub(super) struct From<'a> {
    pub group: &'a str,
    pub kind: &'a str,
    pub namespace: &'a str,
}

/// The referenced side.
pub(super) struct To<'a> {
    pub group: &'a str,
    pub kind: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
}

/// True for same-namespace references, or when a ReferenceGrant in the target namespace allows it.
pub(super) fn permitted(grants: &[ReferenceGrant], from: &From<'_>, to: &To<'_>) -> bool {
    if from.namespace == to.namespace {
        return true;
    }
    grants
        .iter()
        .filter(|g| namespace_of(&g.metadata) == to.namespace)
        .any(|g| {
            let from_ok = g.spec.from.iter().any(|f| {
                f.group == from.group && f.kind == from.kind && f.namespace == from.namespace
            });
            let to_ok = g.spec.to.iter().any(|t| {
                t.group == to.group
                    && t.kind == to.kind
                    && t.name.as_deref().is_none_or(|n| n == to.name)
            });
            from_ok && to_ok
        })
}

/// A Gateway in `gateway_namespace` may use the core (`group: ""`) object `kind` `namespace/name`
/// (a certificate Secret, a CA ConfigMap).
pub(super) fn gateway_may_use(
    grants: &[ReferenceGrant],
    gateway_namespace: &str,
    kind: &str,
    namespace: &str,
    name: &str,
) -> bool {
    permitted(
        grants,
        &From {
            group: super::GATEWAY_GROUP,
            kind: "Gateway",
            namespace: gateway_namespace,
        },
        &To {
            group: "",
            kind,
            namespace,
            name,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_api::apis::experimental::referencegrants::{
        ReferenceGrantFrom, ReferenceGrantSpec, ReferenceGrantTo,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn grant(ns: &str, from_ns: &str, to_name: Option<&str>) -> ReferenceGrant {
        ReferenceGrant {
            metadata: ObjectMeta {
                name: Some("g".into()),
                namespace: Some(ns.into()),
                ..Default::default()
            },
            spec: ReferenceGrantSpec {
                from: vec![ReferenceGrantFrom {
                    group: "gateway.networking.k8s.io".into(),
                    kind: "HTTPRoute".into(),
                    namespace: from_ns.into(),
                }],
                to: vec![ReferenceGrantTo {
                    group: "".into(),
                    kind: "Service".into(),
                    name: to_name.map(Into::into),
                }],
            },
        }
    }

    const FROM: From<'static> = From {
        group: "gateway.networking.k8s.io",
        kind: "HTTPRoute",
        namespace: "routes",
    };

    fn to(ns: &'static str, name: &'static str) -> To<'static> {
        To {
            group: "",
            kind: "Service",
            namespace: ns,
            name,
        }
    }

    #[test]
    fn same_namespace_needs_no_grant() {
        assert!(permitted(&[], &FROM, &to("routes", "svc")));
    }

    #[test]
    fn cross_namespace_needs_a_grant_in_the_target_namespace() {
        assert!(!permitted(&[], &FROM, &to("backends", "svc")));
        assert!(permitted(
            &[grant("backends", "routes", None)],
            &FROM,
            &to("backends", "svc")
        ));
        assert!(!permitted(
            &[grant("elsewhere", "routes", None)],
            &FROM,
            &to("backends", "svc")
        ));
        assert!(!permitted(
            &[grant("backends", "other", None)],
            &FROM,
            &to("backends", "svc")
        ));
    }

    #[test]
    fn named_grant_allows_only_that_name() {
        let grants = [grant("backends", "routes", Some("svc"))];
        assert!(permitted(&grants, &FROM, &to("backends", "svc")));
        assert!(!permitted(&grants, &FROM, &to("backends", "other")));
    }
}
