//! `sluice proxy` against the fake API server: real traffic to echo backends whose EndpointSlices
//! point at loopback, traffic that keeps flowing through an API outage, convergence after it,
//! and the mirror walkthrough's route.

use std::time::Duration;

use clap::Parser;
use sluice_gateway::cli::{Cli, Command};
use sluice_gateway::kube_mode::{self, KubeRunning};
use sluice_test_support::echo::{pod_at, Backend};
use sluice_test_support::free_port;
use sluice_testing::{objects, FakeApiServer};

const WAIT: Duration = Duration::from_secs(15);

/// The Service and EndpointSlice that make `backend` `name:8080` in the cluster.
fn register(backend: &Backend, server: &FakeApiServer, name: &str) {
    server
        .apply(objects::service("demo", name, 8080))
        .expect("service");
    server
        .apply(objects::endpoint_slice(
            "demo",
            name,
            "http",
            &[backend.addr()],
        ))
        .expect("endpoint slice");
}

async fn start_proxy(server: &FakeApiServer) -> KubeRunning {
    start_proxy_with(server, &[]).await
}

async fn start_proxy_with(server: &FakeApiServer, extra: &[&str]) -> KubeRunning {
    let args = [
        "sluice",
        "proxy",
        "--gateway=demo/web",
        "--admin-address=127.0.0.1:0",
        "--listen-address=127.0.0.1",
        "--shutdown-grace=200ms",
    ];
    let cli = Cli::try_parse_from(args.iter().chain(extra)).expect("proxy flags");
    let Some(Command::Proxy(args)) = cli.command else {
        panic!("sluice proxy");
    };
    kube_mode::start_proxy(
        args.into_options(),
        server.client_as("proxy").expect("client"),
    )
    .await
    .expect("proxy starts")
}

async fn until_pod(client: &reqwest::Client, url: &str, pod: &str) {
    let wait = async {
        let mut last = Err(String::new());
        loop {
            if last.as_deref() == Ok(pod) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            last = pod_at(client, url).await;
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .unwrap_or_else(|_| panic!("{url} never answered from {pod}"));
}

async fn seeded(port: u16) -> (FakeApiServer, Backend) {
    let server = FakeApiServer::start().await.expect("fake API server");
    for object in [
        objects::namespace("demo"),
        objects::gateway_class(),
        objects::gateway("demo", "web", port),
        objects::http_route("demo", "pipy", "web", "/", "pipy", 8080),
    ] {
        server.create(object).expect("seed");
    }
    let pipy = Backend::start_in("demo", "pipy").await;
    register(&pipy, &server, "pipy");
    (server, pipy)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

#[tokio::test]
async fn the_proxy_routes_traffic_and_keeps_serving_through_an_api_outage() {
    let port = free_port();
    let (server, _pipy) = seeded(port).await;
    let proxy = start_proxy(&server).await;
    let client = client();
    let base = format!("http://127.0.0.1:{port}");
    until_pod(&client, &format!("{base}/"), "pipy-pod").await;
    let readyz = format!("http://{}/readyz", proxy.admin_addr());
    assert_eq!(
        client.get(&readyz).send().await.expect("readyz").status(),
        200
    );

    server.outage();
    for _ in 0..20 {
        assert_eq!(
            pod_at(&client, &format!("{base}/")).await.as_deref(),
            Ok("pipy-pod"),
            "traffic flows while the API server is away"
        );
    }
    assert_eq!(
        client.get(&readyz).send().await.expect("readyz").status(),
        200,
        "an API outage does not make the data plane unready"
    );

    // A new backend and route appear while the proxy cannot see them...
    let v2 = Backend::start_in("demo", "v2").await;
    register(&v2, &server, "v2");
    server
        .apply(objects::http_route("demo", "v2", "web", "/v2", "v2", 8080))
        .expect("route");
    server.restore().await.expect("restored");
    // ...and are served once it can.
    until_pod(&client, &format!("{base}/v2"), "v2-pod").await;
    assert_eq!(
        pod_at(&client, &format!("{base}/")).await.as_deref(),
        Ok("pipy-pod")
    );
    proxy.shutdown().await;
}

/// `/readyz` once `check` holds for its status and body.
async fn until_readyz(
    client: &reqwest::Client,
    proxy: &KubeRunning,
    check: impl Fn(u16, &str) -> bool,
) -> String {
    let url = format!("http://{}/readyz", proxy.admin_addr());
    let wait = async {
        loop {
            if let Ok(response) = client.get(&url).send().await {
                let status = response.status().as_u16();
                let body = response.text().await.unwrap_or_default();
                if check(status, &body) {
                    return body;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .expect("/readyz reached the expected state")
}

/// In a cluster the controller cannot see the pod's sockets: the pod's readiness is what says
/// a listener is unbound (the Deployment has no available pod, so the Gateway is not Programmed).
#[tokio::test]
async fn a_listener_port_held_elsewhere_keeps_the_proxy_unready_until_it_is_freed() {
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").expect("squatter");
    let port = squatter.local_addr().expect("squatter address").port();
    let (server, _pipy) = seeded(port).await;
    let proxy = start_proxy_with(&server, &["--bind-retry-max=200ms"]).await;
    let client = client();

    let body = until_readyz(&client, &proxy, |status, body| {
        status == 503 && body.contains("cannot listen")
    })
    .await;
    assert!(body.contains(&format!("127.0.0.1:{port}")), "{body}");

    drop(squatter);
    until_readyz(&client, &proxy, |status, _| status == 200).await;
    until_pod(&client, &format!("http://127.0.0.1:{port}/"), "pipy-pod").await;
    proxy.shutdown().await;
}

#[tokio::test]
async fn the_walkthrough_mirror_route_copies_requests_to_pipy_mirror() {
    let port = free_port();
    let (server, pipy) = seeded(port).await;
    let mirror = Backend::start_in("demo", "pipy-mirror").await;
    register(&mirror, &server, "pipy-mirror");
    let proxy = start_proxy(&server).await;
    let client = client();
    let url = format!("http://127.0.0.1:{port}/hello");
    until_pod(&client, &url, "pipy-pod").await;

    // deploy/examples/mirror/httproute-mirror.yaml, applied over the plain route.
    let text = include_str!("../../deploy/examples/mirror/httproute-mirror.yaml");
    let mut route: serde_json::Value = serde_yaml_ng::from_str(text).expect("walkthrough route");
    // Same route, moved to this test's namespace and Gateway.
    route["metadata"]["namespace"] = "demo".into();
    route["spec"]["parentRefs"][0]["name"] = "web".into();
    server.apply(route).expect("mirror route");
    let wait = async {
        loop {
            let answered = pod_at(&client, &url).await;
            assert_eq!(answered.as_deref(), Ok("pipy-pod"), "pipy answers");
            if !mirror.pod.log().is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .expect("pipy-mirror received a copy");
    assert!(!pipy.pod.log().is_empty());
    proxy.shutdown().await;
}

/// A data plane reads only the Secrets its Gateway references, each by name
/// (docs/kubernetes.md, "Permissions"): its HTTPS listener still gets its certificate.
#[tokio::test]
async fn an_https_listener_serves_the_certificate_read_by_name() {
    let port = free_port();
    let (server, _pipy) = seeded(port).await;
    let generated =
        rcgen::generate_simple_self_signed(vec!["secure.example".into()]).expect("rcgen");
    let (pem, key) = (generated.cert.pem(), generated.key_pair.serialize_pem());
    for object in [
        objects::tls_secret("demo", "web-cert", &pem, &key),
        objects::https_gateway("demo", "web", port, "secure.example", &["web-cert"]),
    ] {
        server.apply(object).expect("seed");
    }
    // What the provisioner's Role grants: this Secret, by name, and no other.
    server.restrict_secrets("proxy", &[("demo", "web-cert")]);
    let proxy = start_proxy(&server).await;
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_der(generated.cert.der()).expect("a certificate"),
        )
        .resolve("secure.example", ([127, 0, 0, 1], port).into())
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    until_pod(
        &client,
        &format!("https://secure.example:{port}/"),
        "pipy-pod",
    )
    .await;
    proxy.shutdown().await;
}
