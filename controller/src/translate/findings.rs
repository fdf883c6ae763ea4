//! Standalone mode's "no silent states": configurations that would serve nothing, or 503s,
//! without a status condition to say so. Logged on every load and printed by `sluice validate`.

use std::collections::BTreeSet;

use crate::resources::Resources;
use crate::snapshot::{RouteKind, Snapshot};
use crate::status::StatusKey;
use crate::CONTROLLER_NAME;

use super::index::namespace_of;
use super::route::view::RouteView;

/// One line per finding, naming the object and what follows from it.
pub fn standalone_findings(resources: &Resources, snapshot: &Snapshot) -> Vec<String> {
    let mut findings = Vec::new();
    let class_of = |name: &str| {
        resources
            .gateway_classes
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(name))
    };
    let mut served = 0;
    for gw in &resources.gateways {
        let class = gw.spec.gateway_class_name.as_str();
        let object = format!(
            "Gateway {}/{}",
            namespace_of(&gw.metadata),
            gw.metadata.name.as_deref().unwrap_or("")
        );
        match class_of(class) {
            None => findings.push(format!(
                "{object}: GatewayClass \"{class}\" does not exist: not served"
            )),
            Some(c) if c.spec.controller_name != CONTROLLER_NAME => findings.push(format!(
                "{object}: GatewayClass \"{class}\" names controller \"{}\", not \
                 {CONTROLLER_NAME}: not served",
                c.spec.controller_name
            )),
            Some(_) => served += 1,
        }
    }
    if served == 0 {
        findings.push(format!(
            "no Gateway of a GatewayClass with controllerName {CONTROLLER_NAME}: nothing listens"
        ));
    }
    let routes = resources
        .http_routes
        .iter()
        .map(RouteView::http)
        .chain(resources.grpc_routes.iter().map(RouteView::grpc))
        .chain(resources.tls_routes.iter().map(RouteView::tls));
    for route in routes {
        let kind = route.kind.as_str();
        let ns = namespace_of(route.meta);
        let name = route.meta.name.as_deref().unwrap_or("");
        let key = match route.kind {
            RouteKind::Http => StatusKey::http_route(ns, name),
            RouteKind::Grpc => StatusKey::grpc_route(ns, name),
            RouteKind::Tls => StatusKey::tls_route(ns, name),
        };
        let attached = snapshot.statuses.objects.contains_key(&key);
        if route.parent_refs.is_empty() {
            findings.push(format!(
                "{kind} {ns}/{name}: no parentRefs: attached to nothing"
            ));
        } else if !attached {
            findings.push(format!(
                "{kind} {ns}/{name}: no parentRef is a Gateway Sluice serves: attached to nothing"
            ));
        }
    }
    findings
}

/// Endpoints change without the configuration changing (in a cluster, all the time), so these
/// are not logged per load: the data plane logs each change (`gateway::backend_health`).
pub fn endpoint_findings(snapshot: &Snapshot) -> Vec<String> {
    backends_without_endpoints(snapshot)
        .into_iter()
        .map(|b| {
            format!("backend Service {b} has no ready endpoints: requests routed to it get 503")
        })
        .collect()
}

fn backends_without_endpoints(snapshot: &Snapshot) -> BTreeSet<String> {
    snapshot
        .routed_services()
        .into_iter()
        .filter(|(_, b)| b.endpoints.is_empty())
        .map(|(name, _)| name.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::translate::{translate, Timestamp, TranslateOptions};

    fn findings(yaml: &str) -> Vec<String> {
        let loaded = Resources::from_yaml_documents(Path::new("t.yaml"), yaml).expect("valid");
        let t = translate(
            &loaded.resources,
            &TranslateOptions::default(),
            Timestamp::UNIX_EPOCH,
        );
        let mut all = standalone_findings(&loaded.resources, &t.snapshot);
        all.extend(endpoint_findings(&t.snapshot));
        all
    }

    const CLASS: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\n\
        metadata: {name: sluice}\nspec: {controllerName: sluice.dev/gateway-controller}\n---\n";
    const GATEWAY: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n\
        metadata: {name: gw}\nspec:\n  gatewayClassName: sluice\n  listeners:\n  \
        - {name: http, port: 80, protocol: HTTP}\n---\n";

    #[test]
    fn an_empty_configuration_says_nothing_listens() {
        assert_eq!(
            findings(""),
            ["no Gateway of a GatewayClass with controllerName sluice.dev/gateway-controller: nothing listens"]
        );
    }

    #[test]
    fn a_gateway_without_its_class_or_of_another_controller_is_named() {
        let other = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\n\
            metadata: {name: sluice}\nspec: {controllerName: example.com/other}\n---\n";
        let missing = findings(GATEWAY);
        assert_eq!(
            missing[0],
            "Gateway default/gw: GatewayClass \"sluice\" does not exist: not served"
        );
        let foreign = findings(&format!("{other}{GATEWAY}"));
        assert_eq!(
            foreign[0],
            "Gateway default/gw: GatewayClass \"sluice\" names controller \"example.com/other\", \
             not sluice.dev/gateway-controller: not served"
        );
    }

    #[test]
    fn a_route_attached_to_nothing_and_a_backend_without_endpoints_are_named() {
        let routes = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n\
            metadata: {name: lonely}\nspec: {rules: [{backendRefs: [{name: svc, port: 80}]}]}\n---\n\
            apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: app}\n\
            spec: {parentRefs: [{name: gw}], rules: [{backendRefs: [{name: svc, port: 80}]}]}\n---\n\
            apiVersion: v1\nkind: Service\nmetadata: {name: svc}\nspec: {ports: [{port: 80}]}\n";
        assert_eq!(
            findings(&format!("{CLASS}{GATEWAY}{routes}")),
            [
                "HTTPRoute default/lonely: no parentRefs: attached to nothing",
                "backend Service default/svc:80 has no ready endpoints: requests routed to it get 503",
            ]
        );
    }
}
