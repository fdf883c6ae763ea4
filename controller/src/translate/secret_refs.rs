//! The Secrets one Gateway's data plane may read: what its per-Gateway Role grants and what it
//! watches (docs/kubernetes.md, "Permissions").

use std::collections::BTreeSet;

use gateway_api::apis::experimental::gateways::{Gateway, GatewayListeners};
use kube::ResourceExt;

use super::reference_grant::{self, From, To};
use super::GATEWAY_GROUP;
use crate::resources::{ListenerSet, Resources};

/// `(namespace, name)` of a Secret.
pub type SecretKey = (String, String);

/// Every core Secret the Gateway may use for what it serves: its listeners' `certificateRefs`,
/// the listeners' of the ListenerSets attached to it, and `spec.tls.backend.clientCertificateRef`;
/// across namespaces only where a ReferenceGrant allows the reference (translation refuses the
/// rest, so they are never served). `attached` picks the ListenerSets by `namespace/name`: the
/// provisioner passes those translation admitted; `None` takes every ListenerSet whose parentRef
/// names the Gateway (the data plane's superset, which it may not all be granted).
pub fn gateway_secrets(
    resources: &Resources,
    gateway: &Gateway,
    attached: Option<&BTreeSet<String>>,
) -> BTreeSet<SecretKey> {
    let namespace = gateway.namespace().unwrap_or_default();
    let mut out = BTreeSet::new();
    let mut add = |owner: &'static str, owner_ns: &str, r: SecretRefView<'_>| {
        if !r.group.unwrap_or("").is_empty() || r.kind.unwrap_or("Secret") != "Secret" {
            return;
        }
        let ns = r.namespace.unwrap_or(owner_ns);
        let allowed = reference_grant::permitted(
            &resources.reference_grants,
            &From {
                group: GATEWAY_GROUP,
                kind: owner,
                namespace: owner_ns,
            },
            &To {
                group: "",
                kind: "Secret",
                namespace: ns,
                name: r.name,
            },
        );
        if allowed {
            out.insert((ns.to_string(), r.name.to_string()));
        }
    };
    for r in certificate_refs(&gateway.spec.listeners) {
        add("Gateway", &namespace, r);
    }
    let client_certificate = gateway
        .spec
        .tls
        .as_ref()
        .and_then(|t| t.backend.as_ref())
        .and_then(|b| b.client_certificate_ref.as_ref());
    if let Some(r) = client_certificate {
        let r = SecretRefView {
            group: r.group.as_deref(),
            kind: r.kind.as_deref(),
            name: &r.name,
            namespace: r.namespace.as_deref(),
        };
        add("Gateway", &namespace, r);
    }
    for set in &resources.listener_sets {
        let set_ns = set.namespace().unwrap_or_default();
        let chosen = match attached {
            Some(attached) => attached.contains(&format!("{set_ns}/{}", set.name_any())),
            None => names_gateway(set, &set_ns, &namespace, &gateway.name_any()),
        };
        if chosen {
            for r in certificate_refs(&set.spec.listeners) {
                add("ListenerSet", &set_ns, r);
            }
        }
    }
    out
}

/// A Secret reference as written, borrowed from either generated type.
struct SecretRefView<'a> {
    group: Option<&'a str>,
    kind: Option<&'a str>,
    name: &'a str,
    namespace: Option<&'a str>,
}

fn certificate_refs(listeners: &[GatewayListeners]) -> impl Iterator<Item = SecretRefView<'_>> {
    listeners
        .iter()
        .filter_map(|l| l.tls.as_ref())
        .flat_map(|t| t.certificate_refs.iter().flatten())
        .map(|r| SecretRefView {
            group: r.group.as_deref(),
            kind: r.kind.as_deref(),
            name: &r.name,
            namespace: r.namespace.as_deref(),
        })
}

fn names_gateway(set: &ListenerSet, set_ns: &str, gw_ns: &str, gw_name: &str) -> bool {
    let p = &set.spec.parent_ref;
    p.group.as_deref().unwrap_or(GATEWAY_GROUP) == GATEWAY_GROUP
        && p.kind.as_deref().unwrap_or("Gateway") == "Gateway"
        && p.name == gw_name
        && p.namespace.as_deref().unwrap_or(set_ns) == gw_ns
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources(yaml: &str) -> Resources {
        let mut r = Resources::default();
        for doc in serde_yaml_ng::Deserializer::from_str(yaml) {
            let v: serde_json::Value = serde::Deserialize::deserialize(doc).expect("YAML");
            match v["kind"].as_str() {
                Some("Gateway") => r.gateways.push(serde_json::from_value(v).expect("Gateway")),
                Some("ListenerSet") => r
                    .listener_sets
                    .push(serde_json::from_value(v).expect("ListenerSet")),
                Some("ReferenceGrant") => r
                    .reference_grants
                    .push(serde_json::from_value(v).expect("ReferenceGrant")),
                other => panic!("unexpected {other:?}"),
            }
        }
        r
    }

    const OBJECTS: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: demo}
spec:
  gatewayClassName: sluice
  listeners:
    - name: https
      port: 443
      protocol: HTTPS
      tls: {certificateRefs: [{name: web-cert}, {name: shared, namespace: certs}, {name: other, namespace: certs}, {name: cm, kind: ConfigMap}]}
  tls:
    backend:
      clientCertificateRef: {name: client}
---
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata: {name: allow, namespace: certs}
spec:
  from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: demo}]
  to: [{group: "", kind: Secret, name: shared}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {name: team, namespace: demo}
spec:
  parentRef: {name: web}
  listeners:
    - name: team
      port: 8443
      protocol: HTTPS
      tls: {certificateRefs: [{name: team-cert}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {name: elsewhere, namespace: demo}
spec:
  parentRef: {name: api}
  listeners:
    - name: api
      port: 9443
      protocol: HTTPS
      tls: {certificateRefs: [{name: api-cert}]}
"#;

    fn keys(pairs: &[(&str, &str)]) -> BTreeSet<SecretKey> {
        pairs
            .iter()
            .map(|(n, s)| (n.to_string(), s.to_string()))
            .collect()
    }

    #[test]
    fn only_permitted_secret_references_of_the_gateway_and_its_listener_sets_count() {
        let r = resources(OBJECTS);
        let got = gateway_secrets(&r, &r.gateways[0], None);
        let want = keys(&[
            ("certs", "shared"),
            ("demo", "client"),
            ("demo", "team-cert"),
            ("demo", "web-cert"),
        ]);
        assert_eq!(
            got, want,
            "no grant for certs/other, a ConfigMap is no Secret"
        );
    }

    #[test]
    fn a_listener_set_translation_did_not_admit_is_left_out() {
        let r = resources(OBJECTS);
        let got = gateway_secrets(&r, &r.gateways[0], Some(&BTreeSet::new()));
        assert_eq!(
            got,
            keys(&[
                ("certs", "shared"),
                ("demo", "client"),
                ("demo", "web-cert")
            ])
        );
    }
}
