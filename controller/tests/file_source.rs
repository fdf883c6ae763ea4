//! FileSource end to end: a file in a tempdir, watched; rewrites publish, broken YAML is rejected.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use sluice_controller::publish::{ReloadOutcome, Store};
use sluice_controller::sources::file::FileSource;
use sluice_controller::translate::{Timestamp, TranslateOptions};

const WAIT: Duration = Duration::from_secs(10);

fn config(path: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: sluice}}
spec: {{controllerName: sluice.dev/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw}}
spec:
  gatewayClassName: sluice
  listeners: [{{name: http, port: 8080, protocol: HTTP}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: {path}}}}}]
"
    )
}

/// Write-then-rename, as careful editors do, so the watcher never sees a half-written file.
fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write temp file");
    std::fs::rename(&tmp, path).expect("rename into place");
}

fn options() -> TranslateOptions {
    TranslateOptions {
        listen_address: "127.0.0.1".parse().expect("valid address"),
        ..Default::default()
    }
}

fn route_prefix(store: &Store) -> Option<String> {
    let snap = store.load();
    let entry = snap
        .binds
        .first()?
        .listeners
        .first()?
        .routes
        .any
        .entries()
        .first()?;
    match &entry.matcher.path {
        sluice_controller::snapshot::PathMatch::Prefix(p) => Some(p.clone()),
        _ => None,
    }
}

/// The first condition of Gateway `default/gw`.
fn gateway_condition(store: &Store) -> Option<Condition> {
    let snap = store.load();
    let gateway = snap.statuses.gateway("default", "gw")?;
    gateway.conditions.as_ref()?.first().cloned()
}

/// The first condition of route `default/r` for its first parent.
fn route_condition(store: &Store) -> Option<Condition> {
    let snap = store.load();
    let route = snap.statuses.http_route("default", "r")?;
    route.parents.first()?.conditions.first().cloned()
}

fn route_generation(store: &Store) -> Option<i64> {
    route_condition(store)?.observed_generation
}

/// A temporary directory holding `sluice.yaml`, whose route matches `/one`.
fn config_file() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("sluice.yaml");
    write_atomically(&file, &config("/one"));
    (dir, file)
}

#[tokio::test]
async fn rewritten_file_publishes_and_broken_yaml_keeps_the_last_snapshot() {
    let (_dir, file) = config_file();

    let store = Store::new();
    let mut source = FileSource::new(&file, options(), store.clone());
    assert_eq!(source.load_once().expect("valid config"), 1);
    assert_eq!(route_prefix(&store).as_deref(), Some("/one"));
    assert_eq!(route_generation(&store), Some(1));

    let mut generations = store.subscribe();
    let watcher = source.spawn();

    write_atomically(&file, &config("/two"));
    tokio::time::timeout(WAIT, generations.wait_for(|g| *g >= 2))
        .await
        .expect("a new generation within the timeout")
        .expect("store alive");
    assert_eq!(route_prefix(&store).as_deref(), Some("/two"));
    assert_eq!(
        route_generation(&store),
        Some(2),
        "spec change bumps metadata.generation"
    );
    let published = store.load().generation;

    write_atomically(&file, "kind: [this is not yaml\n");
    tokio::time::timeout(WAIT, async {
        while !matches!(store.last_outcome(), ReloadOutcome::Rejected { .. }) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the broken file is rejected within the timeout");
    assert_eq!(
        store.load().generation,
        published,
        "the last good snapshot keeps serving"
    );
    assert_eq!(route_prefix(&store).as_deref(), Some("/two"));
    let ReloadOutcome::Rejected { error, .. } = store.last_outcome() else {
        unreachable!("checked above");
    };
    assert!(error.contains("sluice.yaml"), "{error}");

    watcher.abort();
}

#[tokio::test]
async fn unchanged_files_do_not_publish_and_unchanged_conditions_keep_their_time() {
    let (dir, file) = config_file();
    let store = Store::new();
    // A clock that moves a minute on every reading, so a kept time is visible.
    fn ticking() -> Timestamp {
        static MINUTES: AtomicI64 = AtomicI64::new(0);
        let m = MINUTES.fetch_add(1, Ordering::Relaxed);
        Timestamp::from_second(1_767_225_600 + 60 * m).expect("valid timestamp")
    }
    let mut source = FileSource::new(dir.path(), options(), store.clone()).with_clock(ticking);
    assert_eq!(source.load_once().expect("valid"), 1);
    assert_eq!(
        source.load_once().expect("valid"),
        1,
        "same content, same generation"
    );

    let gateway_time = |store: &Store| {
        gateway_condition(store)
            .expect("gateway condition")
            .last_transition_time
    };
    let before = gateway_time(&store);
    write_atomically(&file, &config("/changed"));
    assert_eq!(source.load_once().expect("valid"), 2);
    assert_eq!(gateway_time(&store), before, "the Gateway did not change");
    let route_time = |store: &Store| route_condition(store).expect("route condition");
    // The route's spec changed, so its observedGeneration moved, but Accepted stayed True.
    assert_eq!(route_time(&store).observed_generation, Some(2));
    assert_eq!(route_time(&store).last_transition_time, before);
}

#[test]
fn missing_path_is_rejected_not_a_panic() {
    let store = Store::new();
    let mut source = FileSource::new("/nonexistent/sluice.yaml", options(), store.clone());
    let err = source.load_once().expect_err("no such file");
    assert!(
        err.to_string().contains("/nonexistent/sluice.yaml"),
        "{err}"
    );
    assert!(!store.is_ready());
    assert!(matches!(
        store.last_outcome(),
        ReloadOutcome::Rejected { .. }
    ));
}
