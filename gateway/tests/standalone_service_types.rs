//! Standalone mode end to end: Services of every kind the Gateway API allows as backends (no
//! selector with hand-made EndpointSlices, headless, dual-stack slices) carry traffic.

#![allow(clippy::unwrap_used)]

use std::net::Ipv6Addr;
use std::sync::Arc;

use sluice_gateway::echo::{self, EchoIdentity, EchoPod, EchoPort};
use sluice_test_support::standalone as harness;
use tokio::net::TcpListener;

use harness::*;

/// An echo pod `v6-pod` on `[::1]`, or `None` where the machine has no IPv6 loopback.
async fn ipv6_backend() -> Option<(u16, tokio::task::JoinHandle<Result<(), echo::EchoError>>)> {
    let listener = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).await.ok()?;
    let port = listener.local_addr().ok()?.port();
    let pod = Arc::new(EchoPod::new(EchoIdentity {
        pod: "v6-pod".into(),
        namespace: "default".into(),
        service: "dual".into(),
        ingress: String::new(),
        http_port: port.to_string(),
    }));
    Some((
        port,
        tokio::spawn(echo::serve_port(listener, pod, EchoPort::Http)),
    ))
}

/// A selector-less headless Service `name` and one hand-made slice per `(family, address, port)`.
fn headless_with_slices(name: &str, slices: &[(&str, &str, u16)]) -> String {
    let mut out = format!(
        "apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  clusterIP: None
  ports:
  - {{name: first-port, port: 8080, targetPort: 3000}}
---
"
    );
    for (family, address, port) in slices {
        let suffix = if *family == "IPv6" { "ip6" } else { "ip4" };
        out.push_str(&format!(
            "apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}-{suffix}
  namespace: default
  labels: {{kubernetes.io/service-name: {name}}}
addressType: {family}
ports:
- {{name: first-port, port: {port}}}
endpoints:
- addresses: ['{address}']
  conditions: {{ready: true, serving: true, terminating: false}}
---
"
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_headless_service_without_selector_reaches_both_families_of_its_slices() {
    let v4 = Backend::start("v4").await;
    let Some((v6_port, v6_task)) = ipv6_backend().await else {
        eprintln!("no IPv6 loopback here: the IPv6 half of this test cannot run");
        return;
    };
    let port = free_port();
    let yaml = format!(
        "{CLASS}{}{}{}",
        headless_with_slices(
            "dual",
            &[("IPv4", "127.0.0.1", v4.port), ("IPv6", "::1", v6_port)]
        ),
        gateway("gw", &[port]),
        route("app", "gw", "dual"),
    );
    let config = ConfigDir::new(&yaml);
    let running = start(&config).await;

    let client = client();
    let mut seen = std::collections::BTreeSet::new();
    // Round robin over two endpoints: four requests see both.
    for _ in 0..4 {
        seen.insert(pod_behind(&client, local(port)).await.unwrap());
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        vec!["v4-pod".to_string(), "v6-pod".to_string()],
        "both the IPv4 and the IPv6 slice of one Service carry traffic"
    );
    running.shutdown().await;
    v6_task.abort();
}
