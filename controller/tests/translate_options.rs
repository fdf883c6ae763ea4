//! TranslateOptions behaviours: stable pool addresses across reloads, and only_gateway.

use std::path::Path;

use sluice_controller::resources::Resources;
use sluice_controller::translate::{translate, Timestamp, TranslateOptions, Translation};

fn gateways(names: &[&str]) -> Resources {
    let mut text = String::from(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: sluice}\n\
         spec: {controllerName: sluice.dev/gateway-controller}\n",
    );
    for n in names {
        text.push_str(&format!(
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: {n}}}\n\
             spec: {{gatewayClassName: sluice, listeners: [{{name: http, port: 80, protocol: HTTP}}]}}\n"
        ));
    }
    Resources::from_yaml_documents(Path::new("gws.yaml"), &text)
        .expect("valid")
        .resources
}

fn run(resources: &Resources, options: &TranslateOptions) -> Translation {
    translate(resources, options, Timestamp::UNIX_EPOCH)
}

fn address(t: &Translation, name: &str) -> Option<String> {
    let gw = t.snapshot.statuses.gateway("default", name)?;
    Some(gw.addresses.as_ref()?.first()?.value.clone())
}

#[test]
fn pool_addresses_stay_with_their_gateway_across_reloads() {
    let mut options = TranslateOptions {
        address_pool: Some("10.20.0.0/29".parse().expect("valid pool")),
        ..Default::default()
    };
    let first = run(&gateways(&["a", "b", "c"]), &options);
    assert_eq!(address(&first, "a").as_deref(), Some("10.20.0.1"));
    assert_eq!(address(&first, "b").as_deref(), Some("10.20.0.2"));
    assert_eq!(address(&first, "c").as_deref(), Some("10.20.0.3"));

    // "a" goes away: "b" and "c" keep theirs, and a newcomer takes the freed address.
    options.assigned_addresses = first.assigned_addresses;
    let second = run(&gateways(&["b", "c", "d"]), &options);
    assert_eq!(address(&second, "b").as_deref(), Some("10.20.0.2"));
    assert_eq!(address(&second, "c").as_deref(), Some("10.20.0.3"));
    assert_eq!(address(&second, "d").as_deref(), Some("10.20.0.1"));
    assert_eq!(
        second.snapshot.binds.len(),
        3,
        "one bind per Gateway address"
    );
}

#[test]
fn without_a_pool_gateways_share_the_listen_address_and_conflict_on_the_same_port() {
    let options = TranslateOptions {
        listen_address: "127.0.0.1".parse().expect("valid"),
        ..Default::default()
    };
    let t = run(&gateways(&["a", "b"]), &options);
    assert_eq!(t.snapshot.binds.len(), 1);
    assert_eq!(
        t.snapshot.binds[0].listeners.len(),
        1,
        "the older (a, by name) keeps :80"
    );
    assert_eq!(t.snapshot.binds[0].listeners[0].gateway, "default/a");
    let b = t.snapshot.statuses.gateway("default", "b").expect("status");
    let listener = &b.listeners.as_ref().expect("listeners")[0];
    let conflicted = listener
        .conditions
        .iter()
        .find(|c| c.type_ == "Conflicted")
        .expect("Conflicted condition");
    assert_eq!(
        (conflicted.status.as_str(), conflicted.reason.as_str()),
        ("True", "HostnameConflict")
    );
}

#[test]
fn only_gateway_translates_just_that_gateway() {
    let options = TranslateOptions {
        only_gateway: Some(("default".into(), "b".into())),
        ..Default::default()
    };
    let t = run(&gateways(&["a", "b"]), &options);
    assert!(t.snapshot.statuses.gateway("default", "a").is_none());
    assert!(t.snapshot.statuses.gateway("default", "b").is_some());
    assert_eq!(t.snapshot.binds.len(), 1);
    assert_eq!(t.snapshot.binds[0].listeners[0].gateway, "default/b");
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
}

#[test]
fn behind_its_service_a_data_plane_binds_the_listen_address_not_the_static_ones() {
    let text =
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: sluice}\n\
         spec: {controllerName: sluice.dev/gateway-controller}\n\
         ---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: a}\n\
         spec: {gatewayClassName: sluice, addresses: [{type: IPAddress, value: 203.0.113.7}],\n\
         listeners: [{name: http, port: 80, protocol: HTTP}]}\n";
    let resources = Resources::from_yaml_documents(Path::new("gw.yaml"), text)
        .expect("valid")
        .resources;
    // Standalone: the static address is where Sluice listens.
    let standalone = run(&resources, &TranslateOptions::default());
    assert_eq!(
        standalone.snapshot.binds[0].address.to_string(),
        "203.0.113.7:80"
    );
    // A provisioned pod does not own 203.0.113.7; its Service does (externalIPs).
    let pod = run(
        &resources,
        &TranslateOptions {
            only_gateway: Some(("default".into(), "a".into())),
            behind_service: true,
            ..Default::default()
        },
    );
    assert_eq!(pod.snapshot.binds.len(), 1);
    assert_eq!(pod.snapshot.binds[0].address.to_string(), "0.0.0.0:80");
}
