//! Mirror options set on the command line reach the copies, and only the copies.

#![allow(clippy::unwrap_used)]

use sluice_test_support::standalone as harness;

use std::time::Duration;

use clap::Parser;
use harness::*;
use sluice_gateway::cli::Cli;
use sluice_gateway::standalone::StandaloneOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_only_host_suffix_and_headers_change_the_copy_not_the_primary() {
    let primary = Backend::start("primary").await;
    let mirror = Backend::start("mirror").await;
    let port = free_port();
    let yaml = format!(
        "{CLASS}{}{}{}apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: mirrored, namespace: default}}
spec:
  parentRefs:
  - name: gw
  rules:
  - filters:
    - type: RequestMirror
      requestMirror:
        backendRef: {{name: mirror, port: 8080}}
    backendRefs:
    - {{name: primary, port: 8080}}
",
        gateway("gw", &[port]),
        service("primary", &primary),
        service("mirror", &mirror),
    );
    let config = ConfigDir::new(&yaml);

    // The same flags a user passes to `sluice --config ...`.
    let cli = Cli::try_parse_from([
        "sluice",
        "--config",
        "unused",
        "--mirror-host-suffix",
        "-shadow",
        "--mirror-set-header",
        "x-mirrored=yes",
        "--mirror-remove-header",
        "authorization",
    ])
    .unwrap();
    let mut opts = StandaloneOptions::for_tests(config.path());
    opts.mirror = cli.gateway.mirror.into_options();
    let running = start_with(opts).await;

    let response = client()
        .get(url(local(port), "/copy-me"))
        .header("host", "shop.example.com")
        .header("authorization", "Bearer secret")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    tokio::time::timeout(WAIT, async {
        while mirror.pod.log().entries().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the mirror receives a copy");

    let seen = primary.pod.log().entries();
    let original = seen.first().unwrap();
    assert_eq!(original.host, "shop.example.com");
    assert_eq!(original.header_values("authorization").count(), 1);
    assert_eq!(original.header_values("x-mirrored").count(), 0);

    let copies = mirror.pod.log().entries();
    let copy = copies.first().unwrap();
    assert_eq!(copy.uri, "/copy-me");
    assert_eq!(copy.host, "shop.example.com-shadow");
    assert_eq!(
        copy.header_values("x-mirrored").collect::<Vec<_>>(),
        ["yes"]
    );
    assert_eq!(copy.header_values("authorization").count(), 0);

    running.shutdown().await;
}
