use std::path::Path;

use prometheus::{Encoder, TextEncoder};
use sluice_controller::resources::Resources;
use sluice_controller::translate::{translate, Timestamp, TranslateOptions};

use super::*;

const BASE: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: sluice}
spec: {controllerName: sluice.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: sluice
  listeners:
  - {name: http, port: 80, protocol: HTTP}
---
";

/// A route to each of `services`, each Service on port 80 with `ready` ready endpoints.
fn snapshot(services: &[(&str, usize)]) -> Snapshot {
    let mut yaml = BASE.to_string();
    let refs: Vec<String> = services
        .iter()
        .map(|(name, _)| format!("{{name: {name}, port: 80}}"))
        .collect();
    yaml.push_str(&format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n\
         metadata: {{name: app, namespace: default}}\n\
         spec: {{parentRefs: [{{name: gw}}], rules: [{{backendRefs: [{}]}}]}}\n---\n",
        refs.join(", ")
    ));
    for (name, ready) in services {
        yaml.push_str(&format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\n\
             spec: {{ports: [{{port: 80}}]}}\n---\n"
        ));
        if *ready > 0 {
            let endpoints: Vec<String> = (1..=*ready)
                .map(|i| format!("- addresses: [10.0.0.{i}]\n  conditions: {{ready: true}}"))
                .collect();
            yaml.push_str(&format!(
                "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
                 metadata: {{name: {name}-1, namespace: default, \
                 labels: {{kubernetes.io/service-name: {name}}}}}\n\
                 addressType: IPv4\nports: [{{port: 80}}]\nendpoints:\n{}\n---\n",
                endpoints.join("\n")
            ));
        }
    }
    let loaded = Resources::from_yaml_documents(Path::new("t.yaml"), &yaml).unwrap();
    translate(
        &loaded.resources,
        &TranslateOptions::default(),
        Timestamp::UNIX_EPOCH,
    )
    .snapshot
}

fn gauge_lines(registry: &Registry) -> Vec<String> {
    let mut buf = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut buf)
        .unwrap();
    String::from_utf8(buf)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("sluice_backend_ready_endpoints{"))
        .map(str::to_string)
        .collect()
}

fn names(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

#[test]
fn a_service_losing_or_regaining_its_endpoints_is_said_once_per_change() {
    let registry = Registry::new();
    let mut health = BackendHealth::register(&registry).unwrap();

    let first = health.observe(&snapshot(&[("a", 0), ("b", 2)]));
    assert_eq!(
        first,
        Change {
            now_empty: names(&["default/a:80"]),
            recovered: vec![],
        }
    );
    // A reload that changes nothing about endpoints says nothing.
    assert_eq!(
        health.observe(&snapshot(&[("a", 0), ("b", 2)])),
        Change::default()
    );
    // Nor does a count that changes without reaching or leaving zero.
    assert_eq!(
        health.observe(&snapshot(&[("a", 0), ("b", 1)])),
        Change::default()
    );
    assert_eq!(
        health.observe(&snapshot(&[("a", 3), ("b", 0)])),
        Change {
            now_empty: names(&["default/b:80"]),
            recovered: names(&["default/a:80"]),
        }
    );
}

#[test]
fn the_gauge_counts_ready_endpoints_per_routed_service_and_forgets_unrouted_ones() {
    let registry = Registry::new();
    let mut health = BackendHealth::register(&registry).unwrap();
    health.observe(&snapshot(&[("a", 0), ("b", 2)]));
    assert_eq!(
        gauge_lines(&registry),
        [
            r#"sluice_backend_ready_endpoints{backend="default/a:80"} 0"#,
            r#"sluice_backend_ready_endpoints{backend="default/b:80"} 2"#,
        ]
    );
    let change = health.observe(&snapshot(&[("b", 1)]));
    assert_eq!(
        change,
        Change::default(),
        "a Service no longer routed is not a recovery"
    );
    assert_eq!(
        gauge_lines(&registry),
        [r#"sluice_backend_ready_endpoints{backend="default/b:80"} 1"#]
    );
}

#[tokio::test]
async fn every_publish_of_the_store_is_observed() {
    let registry = Registry::new();
    let health = BackendHealth::register(&registry).unwrap();
    let store = Store::new();
    let task = health.spawn(&store);
    store.publish(snapshot(&[("a", 0)]));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while gauge_lines(&registry).is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "never observed");
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(
        gauge_lines(&registry),
        [r#"sluice_backend_ready_endpoints{backend="default/a:80"} 0"#]
    );
    drop(store);
    tokio::time::timeout(std::time::Duration::from_secs(10), task)
        .await
        .expect("the task ends with its store")
        .unwrap();
}
