//! The kube source against the fake API server: first snapshot after every kind has listed,
//! changes converge, an outage keeps the last snapshot, a compaction relists.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sluice_controller::publish::Store;
use sluice_controller::snapshot::{Filter, Snapshot};
use sluice_controller::sources::kube::{KubeSource, Mode};
use sluice_controller::translate::TranslateOptions;
use sluice_testing::{cluster, objects, within, AbortOnDrop, FakeApiServer};

const LIMIT: Duration = Duration::from_secs(15);

fn backend() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9))
}

/// A server holding Gateway `demo/web` with one route to Service `demo/echo`.
async fn seeded_demo() -> FakeApiServer {
    cluster::seeded([
        objects::namespace("demo"),
        objects::gateway_class(),
        objects::gateway("demo", "web", 8000),
        objects::service("demo", "echo", 8080),
        objects::endpoint_slice("demo", "echo", "http", &[backend()]),
        objects::http_route("demo", "echo", "web", "/", "echo", 8080),
    ])
    .await
}

/// A seeded server and the data-plane source of Gateway `demo/web` watching it, once it has
/// published its first snapshot: `(source, server, store, first snapshot)`. The source comes
/// first so it stops before the server; a test binds it by name, as `_` would stop it at once.
async fn running() -> (AbortOnDrop, FakeApiServer, Arc<Store>, Arc<Snapshot>) {
    let server = seeded_demo().await;
    let options = TranslateOptions {
        only_gateway: Some(("demo".into(), "web".into())),
        ..TranslateOptions::default()
    };
    let store = Store::new();
    let source = KubeSource::new(
        server.client_as("proxy").expect("client"),
        options,
        store.clone(),
        Mode::DataPlane,
    );
    let source = AbortOnDrop(vec![source.spawn()]);
    let first = until(&store, "the first snapshot", |s| !s.binds.is_empty()).await;
    (source, server, store, first)
}

/// Points route `demo/echo` at `prefix`.
fn move_route(server: &FakeApiServer, prefix: &str) {
    server
        .apply(objects::http_route(
            "demo", "echo", "web", prefix, "echo", 8080,
        ))
        .expect("route updated");
}

/// Waits until the store's snapshot satisfies `ok`.
async fn until(store: &Store, what: &str, ok: impl Fn(&Snapshot) -> bool) -> Arc<Snapshot> {
    let mut changes = store.subscribe();
    let wait = async {
        loop {
            let snapshot = store.load();
            if store.is_ready() && ok(&snapshot) {
                return snapshot;
            }
            if changes.changed().await.is_err() {
                panic!("store dropped while waiting for {what}");
            }
        }
    };
    within(what, LIMIT, wait).await
}

fn route_prefixes(s: &Snapshot) -> Vec<String> {
    s.binds
        .iter()
        .flat_map(|b| &b.listeners)
        .flat_map(|l| l.routes.any.entries())
        .map(|e| format!("{:?}", e.matcher.path))
        .collect()
}

#[tokio::test]
async fn the_first_snapshot_holds_the_gateway_and_its_route() {
    let (_, _, _, snapshot) = running().await;
    assert_eq!(
        snapshot.generation, 1,
        "one snapshot after the initial lists, not one per kind"
    );
    assert_eq!(snapshot.binds[0].address.port(), 8000);
    let entries = &snapshot.binds[0].listeners[0].routes.any.entries();
    assert_eq!(entries.len(), 1);
    let gw = snapshot
        .statuses
        .gateway("demo", "web")
        .expect("gateway status");
    assert!(gw
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Accepted" && c.status == "True"));
}

#[tokio::test]
async fn a_route_change_converges_and_a_status_write_does_not_republish() {
    let (_source, server, store, _) = running().await;

    move_route(&server, "/v2");
    let snapshot = until(&store, "the /v2 route", |s| {
        route_prefixes(s).iter().any(|p| p.contains("/v2"))
    })
    .await;
    let generation = snapshot.generation;

    // A status write (what the controller does) is no input to translation.
    server
        .set_status(
            "gateway.networking.k8s.io/v1",
            "HTTPRoute",
            Some("demo"),
            "echo",
            serde_json::json!({"parents": []}),
        )
        .expect("status written");
    server
        .apply(objects::service("demo", "marker", 80))
        .expect("marker created");
    until(&store, "the marker's snapshot", |s| {
        s.generation > generation
    })
    .await;
    assert_eq!(
        store.load().generation,
        generation + 1,
        "the status write caused no snapshot of its own"
    );
}

#[tokio::test]
async fn an_outage_keeps_the_last_snapshot_and_changes_converge_after_it() {
    let (_source, server, store, first) = running().await;

    server.outage();
    // Changes made "while the source cannot see them" (straight into the store).
    move_route(&server, "/after-outage");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        store.is_ready(),
        "an outage does not make the data plane unready"
    );
    assert_eq!(
        store.load().generation,
        first.generation,
        "nothing published while away"
    );

    server.restore().await.expect("restored");
    until(&store, "the route changed during the outage", |s| {
        route_prefixes(s)
            .iter()
            .any(|p| p.contains("/after-outage"))
    })
    .await;
}

#[tokio::test]
async fn a_compacted_history_relists_and_still_converges() {
    let (_source, server, store, _) = running().await;

    server.outage();
    move_route(&server, "/relisted");
    server.compact();
    server.restore().await.expect("restored");
    until(&store, "the relisted route", |s| {
        route_prefixes(s).iter().any(|p| p.contains("/relisted"))
    })
    .await;
}

#[tokio::test]
async fn a_cluster_without_the_optional_crds_still_gets_snapshots() {
    let server = seeded_demo().await;
    // An API server with Gateway API CRDs older than ListenerSet and BackendTLSPolicy, and
    // without Sluice's own MirrorPolicy CRD.
    server.uninstall("listenersets");
    server.uninstall("backendtlspolicies");
    server.uninstall("mirrorpolicies");
    let store = Store::new();
    let source = KubeSource::new(
        server.client_as("proxy").expect("client"),
        TranslateOptions::default(),
        store.clone(),
        Mode::DataPlane,
    );
    let _source = AbortOnDrop(vec![source.spawn()]);
    let first = until(&store, "a snapshot without the optional kinds", |s| {
        !s.binds.is_empty()
    })
    .await;
    assert_eq!(route_prefixes(&first).len(), 1, "the route is served");
}

#[tokio::test]
async fn a_mirror_policy_in_the_cluster_shapes_its_routes_copies() {
    let (_source, server, store, _) = running().await;
    let mut route = objects::http_route("demo", "echo", "web", "/", "echo", 8080);
    route["spec"]["rules"][0]["filters"] = serde_json::json!([{
        "type": "RequestMirror",
        "requestMirror": {"backendRef": {"name": "echo", "port": 8080}}
    }]);
    server.apply(route).expect("route with a mirror");
    server
        .create(serde_json::json!({
            "apiVersion": "sluice.dev/v1alpha1",
            "kind": "MirrorPolicy",
            "metadata": {"name": "shadow", "namespace": "demo"},
            "spec": {
                "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "echo"}],
                "request": {"hostSuffix": "-shadow"}
            }
        }))
        .expect("policy");
    let shaped = until(&store, "the mirror carrying the policy", |s| {
        mirror_policies(s) == ["demo/shadow"]
    })
    .await;
    assert_eq!(mirror_policies(&shaped), ["demo/shadow"]);
}

/// The policy names carried by every RequestMirror filter of the snapshot's rules.
fn mirror_policies(s: &Snapshot) -> Vec<String> {
    s.binds
        .iter()
        .flat_map(|b| &b.listeners)
        .flat_map(|l| l.routes.any.entries())
        .flat_map(|e| &e.action.filters)
        .filter_map(|f| match f {
            Filter::Mirror(m) => Some(
                m.policy
                    .as_ref()
                    .map_or("", |p| p.name.as_str())
                    .to_string(),
            ),
            _ => None,
        })
        .collect()
}
