//! Standalone mode end to end: hot reload, rejected configurations and readiness.

#![allow(clippy::unwrap_used)]

use sluice_test_support::standalone as harness;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_under_continuous_traffic_fails_no_request() {
    let (old, new) = (Backend::start("old").await, Backend::start("new").await);
    let port = free_port();
    let services = format!(
        "{CLASS}{}{}{}",
        service("old", &old),
        service("new", &new),
        gateway("gw", &[port])
    );
    let config = ConfigDir::new(&format!("{services}{}", route("app", "gw", "old")));
    let running = start(&config).await;

    let stop = Arc::new(AtomicBool::new(false));
    let traffic = tokio::spawn({
        let stop = stop.clone();
        async move {
            let client = client();
            let (mut ok, mut failures, mut seen_new) = (0u32, Vec::new(), false);
            while !stop.load(Ordering::Relaxed) {
                match pod_behind(&client, local(port)).await {
                    Ok(pod) => {
                        ok += 1;
                        seen_new |= pod == "new-pod";
                    }
                    Err(e) => failures.push(e),
                }
            }
            (ok, failures, seen_new)
        }
    });
    // Traffic before, during and after the reload; a few route flips for good measure.
    for target in ["new", "old", "new"] {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        reload(
            &running,
            &config,
            &format!("{services}{}", route("app", "gw", target)),
        )
        .await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    stop.store(true, Ordering::Relaxed);
    let (ok, failures, seen_new): (u32, Vec<String>, bool) =
        tokio::time::timeout(WAIT, traffic).await.unwrap().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed of {}: {failures:?}",
        failures.len(),
        ok
    );
    assert!(seen_new, "the reload took effect under traffic");
    assert!(ok > 10, "traffic ran for the whole reload ({ok} requests)");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_config_keeps_the_old_snapshot_serving_and_config_shows_the_error() {
    let (_backend, port, good) = one_app_on_a_free_port().await;
    let config = ConfigDir::new(&good);
    let running = start(&config).await;
    let generation = running.store().load().generation;

    let broken = good.replace("rules:", "rules: [unclosed");
    let error = reload_rejected(&running, &config, &broken).await;
    assert!(!error.is_empty());
    assert_eq!(
        running.store().load().generation,
        generation,
        "the old snapshot stays"
    );
    assert_eq!(pod_behind(&client(), local(port)).await.unwrap(), "app-pod");

    let (code, body) = admin_get(&running, "/config").await;
    assert_eq!(code, 200);
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&body).unwrap();
    assert_eq!(doc["reload"]["lastReload"]["result"], "rejected", "{body}");
    let errors: Vec<&str> = doc["reload"]["lastReload"]["errors"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(errors, error.lines().collect::<Vec<_>>());
    assert_eq!(doc["reload"]["generation"].as_u64(), Some(generation));
    assert_eq!(
        admin_get(&running, "/readyz").await.0,
        200,
        "still ready: it serves the old snapshot"
    );

    reload(
        &running,
        &config,
        &good.replace("name: app, port: 8080", "name: app, port: 8080, weight: 1"),
    )
    .await;
    let (_, body) = admin_get(&running, "/config").await;
    assert!(body.contains("result: published"), "{body}");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_false_until_the_first_snapshot_then_a_fixed_file_is_picked_up() {
    let (_backend, port, good) = one_app_on_a_free_port().await;
    let config = ConfigDir::new("kind: Gateway\nspec: [not, a, map");
    let running = start(&config).await;

    let (code, body) = admin_get(&running, "/readyz").await;
    assert_eq!(code, 503);
    assert!(body.contains("rejected"), "{body}");
    assert_eq!(
        admin_get(&running, "/healthz").await.0,
        200,
        "alive while not ready"
    );

    reload(&running, &config, &good).await;
    assert_eq!(admin_get(&running, "/readyz").await.0, 200);
    assert_eq!(pod_behind(&client(), local(port)).await.unwrap(), "app-pod");
    let (_, metrics) = admin_get(&running, "/metrics").await;
    assert!(metrics.contains("sluice_config_reloads_total"), "{metrics}");
    running.shutdown().await;
}

/// Polls `/metrics` until the ready-endpoints gauge of `default/app:8080` reads `want`.
async fn wait_for_ready_endpoints(running: &sluice_gateway::standalone::Running, want: &str) {
    let line = format!("sluice_backend_ready_endpoints{{backend=\"default/app:8080\"}} {want}");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, metrics) = admin_get(running, "/metrics").await;
        if metrics.lines().any(|l| l == line) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no `{line}` in:\n{metrics}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_without_endpoints_shows_zero_on_metrics_until_its_slice_arrives() {
    let backend = Backend::start("app").await;
    let port = free_port();
    let base = format!(
        "{CLASS}{}{}",
        gateway("gw", &[port]),
        route("app", "gw", "app")
    );
    let service_only = "apiVersion: v1\nkind: Service\n\
        metadata: {name: app, namespace: default}\n\
        spec: {ports: [{name: http, port: 8080}]}\n---\n";
    let config = ConfigDir::new(&format!("{base}{service_only}"));
    let running = start(&config).await;
    wait_for_ready_endpoints(&running, "0").await;
    let client = client();
    assert!(pod_behind(&client, local(port)).await.is_err());

    reload(
        &running,
        &config,
        &format!("{base}{}", service("app", &backend)),
    )
    .await;
    wait_for_ready_endpoints(&running, "1").await;
    assert_eq!(pod_behind(&client, local(port)).await.unwrap(), "app-pod");
    running.shutdown().await;
}
