//! The fake API server behaves like kube-apiserver for what Sluice relies on, seen through kube-rs.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use gateway_api::apis::experimental::gateways::Gateway;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::watcher;
use serde_json::json;
use sluice_testing::FakeApiServer;
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(10);

async fn server_with_namespace(ns: &str) -> FakeApiServer {
    let server = FakeApiServer::start()
        .await
        .expect("fake API server starts");
    server
        .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
        .expect("namespace created");
    server
}

fn gateway(name: &str) -> Gateway {
    serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": "demo"},
        "spec": {"gatewayClassName": "sluice", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]},
    }))
    .expect("a valid Gateway")
}

#[tokio::test]
async fn create_assigns_identity_and_generation_follows_spec_changes() {
    let server = server_with_namespace("demo").await;
    let api: Api<Gateway> = Api::namespaced(server.client_as("t").expect("client"), "demo");
    let created = timeout(LIMIT, api.create(&PostParams::default(), &gateway("g")))
        .await
        .expect("in time")
        .expect("created");
    assert!(created.metadata.uid.is_some());
    assert_eq!(created.metadata.generation, Some(1));
    let dup = timeout(LIMIT, api.create(&PostParams::default(), &gateway("g")))
        .await
        .expect("in time");
    assert!(matches!(dup, Err(kube::Error::Api(s)) if s.code == 409));

    let patch = json!({"spec": {"gatewayClassName": "other"}});
    let patched = api
        .patch("g", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patched");
    assert_eq!(patched.metadata.generation, Some(2));
    let status = json!({"status": {"conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 2}]}});
    let with_status = api
        .patch_status("g", &PatchParams::apply("sluice"), &Patch::Apply(&status))
        .await
        .expect("status applied");
    assert_eq!(
        with_status.metadata.generation,
        Some(2),
        "a status write is no spec change"
    );
    assert_eq!(
        with_status.metadata.managed_fields.unwrap_or_default()[0]
            .manager
            .as_deref(),
        Some("sluice")
    );
    let again = api
        .patch_status("g", &PatchParams::apply("sluice"), &Patch::Apply(&status))
        .await
        .expect("status applied again");
    assert_eq!(
        again.metadata.resource_version, with_status.metadata.resource_version,
        "an apply that changes nothing does not bump the resourceVersion"
    );
}

/// The first event of a watch on `api` from resourceVersion `rv`.
async fn first_event(
    api: &Api<ConfigMap>,
    params: &WatchParams,
    rv: &str,
) -> WatchEvent<ConfigMap> {
    let mut events = api.watch(params, rv).await.expect("watch opens").boxed();
    timeout(LIMIT, events.next())
        .await
        .expect("in time")
        .expect("an event")
        .expect("ok")
}

#[tokio::test]
async fn watch_resumes_from_a_resource_version_and_a_compacted_one_is_gone() {
    let server = server_with_namespace("demo").await;
    let api: Api<ConfigMap> = Api::namespaced(server.client_as("t").expect("client"), "demo");
    let cm = |n: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": n}, "data": {"k": "v"}})).expect("cm")
    };
    api.create(&PostParams::default(), &cm("a"))
        .await
        .expect("a");
    let list = api.list(&ListParams::default()).await.expect("list");
    let rv = list
        .metadata
        .resource_version
        .expect("list has a resourceVersion");
    api.create(&PostParams::default(), &cm("b"))
        .await
        .expect("b");

    let first = first_event(&api, &WatchParams::default().timeout(5), &rv).await;
    assert!(matches!(first, WatchEvent::Added(c) if c.metadata.name.as_deref() == Some("b")));

    server.compact();
    let gone = first_event(&api, &WatchParams::default(), &rv).await;
    assert!(matches!(gone, WatchEvent::Error(e) if e.code == 410));
}

#[tokio::test]
async fn bookmarks_carry_the_latest_resource_version() {
    let server = server_with_namespace("demo").await;
    let api: Api<Namespace> = Api::all(server.client_as("t").expect("client"));
    let rv = server.resource_version().to_string();
    server
        .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}}))
        .expect("created");
    let mut events = api
        .watch(&WatchParams::default().timeout(5), &rv)
        .await
        .expect("watch")
        .boxed();
    let mut saw_bookmark = false;
    while let Some(e) = timeout(LIMIT, events.next()).await.expect("in time") {
        if let WatchEvent::Bookmark(b) = e.expect("ok") {
            assert_eq!(
                b.metadata.resource_version,
                server.resource_version().to_string()
            );
            saw_bookmark = true;
            break;
        }
    }
    assert!(saw_bookmark);
}

#[tokio::test]
async fn the_runtime_watcher_relists_after_compaction() {
    let server = server_with_namespace("demo").await;
    let api: Api<Namespace> = Api::all(server.client_as("t").expect("client"));
    let mut stream = watcher(api, watcher::Config::default().timeout(1)).boxed();
    let mut inits = 0;
    let deadline = tokio::time::Instant::now() + LIMIT;
    while inits < 2 {
        let event = tokio::time::timeout_at(deadline, stream.try_next())
            .await
            .expect("relisted in time");
        match event {
            Ok(Some(watcher::Event::InitDone)) => {
                inits += 1;
                // A change, then compaction: the version the watcher listed at is now too old.
                server
                    .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("n{inits}")}}))
                    .expect("created");
                server.compact();
            }
            Ok(Some(watcher::Event::Apply(ns))) => {
                panic!(
                    "{:?} arrived as a watch event, but its history was compacted",
                    ns.metadata.name
                )
            }
            Ok(_) | Err(_) => {}
        }
    }
}

#[tokio::test]
async fn deleting_an_owner_collects_its_dependents() {
    let server = server_with_namespace("demo").await;
    let owner = server
        .create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner", "namespace": "demo"}}))
        .expect("owner");
    let uid = owner["metadata"]["uid"].clone();
    server
        .create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "child", "namespace": "demo",
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}]}}))
        .expect("child");
    let api: Api<ConfigMap> = Api::namespaced(server.client_as("t").expect("client"), "demo");
    api.delete("owner", &Default::default())
        .await
        .expect("deleted");
    assert!(server
        .get("v1", "ConfigMap", Some("demo"), "child")
        .is_none());
}

#[tokio::test]
async fn a_stale_lease_update_conflicts() {
    let server = server_with_namespace("demo").await;
    let api: Api<Lease> = Api::namespaced(server.client_as("t").expect("client"), "demo");
    let lease: Lease =
        serde_json::from_value(json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": "a"}}))
            .expect("lease");
    let created = api
        .create(&PostParams::default(), &lease)
        .await
        .expect("created");
    let mut first = created.clone();
    first.spec.as_mut().expect("spec").holder_identity = Some("b".into());
    api.replace("l", &PostParams::default(), &first)
        .await
        .expect("first update wins");
    let mut second = created;
    second.spec.as_mut().expect("spec").holder_identity = Some("c".into());
    let lost = api.replace("l", &PostParams::default(), &second).await;
    assert!(matches!(lost, Err(kube::Error::Api(s)) if s.code == 409));
}

#[tokio::test]
async fn an_outage_refuses_connections_until_restored() {
    let server = server_with_namespace("demo").await;
    let api: Api<Namespace> = Api::all(server.client_as("t").expect("client"));
    server.outage();
    let down = timeout(LIMIT, api.list(&ListParams::default()))
        .await
        .expect("fails fast");
    assert!(down.is_err());
    server.restore().await.expect("restored");
    let up = timeout(LIMIT, api.list(&ListParams::default()))
        .await
        .expect("in time")
        .expect("listed");
    assert_eq!(up.items.len(), 1);
}

#[tokio::test]
async fn metadata_only_requests_get_metadata_only() {
    use kube::core::PartialObjectMeta;
    let server = server_with_namespace("demo").await;
    server
        .create(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "demo", "labels": {"x": "1"}},
            "data": {"secret": "not in a metadata answer"}}))
        .expect("ConfigMap");
    let client = server.client_as("t").expect("client");
    let api: Api<PartialObjectMeta<ConfigMap>> = Api::all(client.clone());
    let list = timeout(LIMIT, api.list(&ListParams::default()))
        .await
        .expect("in time")
        .expect("listed");
    assert_eq!(list.items.len(), 1);
    assert_eq!(
        list.items[0].types.as_ref().map(|t| t.kind.as_str()),
        Some("PartialObjectMetadata")
    );
    assert_eq!(list.items[0].metadata.name.as_deref(), Some("a"));

    let mut events = std::pin::pin!(watcher(api, watcher::Config::default()));
    let mut created = false;
    loop {
        let event = match timeout(LIMIT, events.try_next()).await {
            Ok(Ok(Some(event))) => event,
            other => panic!("watch ended: {other:?}"),
        };
        match event {
            watcher::Event::InitDone if !created => {
                server
                    .create(json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "b", "namespace": "demo"}}))
                    .expect("second ConfigMap");
                created = true;
            }
            watcher::Event::Apply(cm) if created => {
                assert_eq!(cm.metadata.name.as_deref(), Some("b"));
                break;
            }
            _ => {}
        }
    }

    // The answer on the wire really is metadata only.
    let request = http::Request::get("/api/v1/namespaces/demo/configmaps/a")
        .header(
            "Accept",
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
        )
        .body(Vec::new())
        .expect("request");
    let raw: serde_json::Value = client.request(request).await.expect("raw get");
    assert_eq!(raw["kind"], "PartialObjectMetadata");
    assert!(raw.get("data").is_none(), "{raw}");
}
