//! Sluice started the way the binary starts it (`standalone::start`) from a config directory: the
//! YAML pieces, atomic rewrites, reloads, and the clients that talk to it.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sluice_controller::publish::ReloadOutcome;
use sluice_gateway::standalone::{self, Running, StandaloneOptions};

pub use crate::echo::{pod_at, Backend};
pub use crate::free_port;
use crate::until;

pub const WAIT: Duration = Duration::from_secs(10);

/// The Service `name` (port 8080) and its EndpointSlice pointing at `backend`.
pub fn service(name: &str, backend: &Backend) -> String {
    service_at(name, backend.port)
}

/// The Service `name` (port 8080) and its EndpointSlice pointing at `127.0.0.1:port`.
pub fn service_at(name: &str, port: u16) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  ports:
  - {{name: http, port: 8080}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}-slice
  namespace: default
  labels: {{kubernetes.io/service-name: {name}}}
addressType: IPv4
ports:
- {{name: http, port: {port}}}
endpoints:
- addresses: [127.0.0.1]
  conditions: {{ready: true}}
---
"
    )
}

pub const CLASS: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: sluice}
spec:
  controllerName: sluice.dev/gateway-controller
---
";

/// A Gateway with one HTTP listener per port, named `http-<port>`.
pub fn gateway(name: &str, ports: &[u16]) -> String {
    let mut out = format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: {name}, namespace: default}}
spec:
  gatewayClassName: sluice
  listeners:
"
    );
    for port in ports {
        out.push_str(&format!(
            "  - {{name: http-{port}, protocol: HTTP, port: {port}}}\n"
        ));
    }
    out.push_str("---\n");
    out
}

/// An HTTPRoute attached to every listener of `gateway`, sending `/` to `service:8080`.
pub fn route(name: &str, gateway: &str, service: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: default}}
spec:
  parentRefs:
  - name: {gateway}
  rules:
  - backendRefs:
    - {{name: {service}, port: 8080}}
---
"
    )
}

/// A started `app` backend, a free port and [`one_app`]'s configuration for the two.
pub async fn one_app_on_a_free_port() -> (Backend, u16, String) {
    let backend = Backend::start("app").await;
    let port = crate::free_port();
    let yaml = one_app(&backend, port);
    (backend, port, yaml)
}

/// The whole configuration of one app: the class, Service `app` for `backend`, Gateway `gw` on
/// `port` and HTTPRoute `app` from `gw` to `app`.
pub fn one_app(backend: &Backend, port: u16) -> String {
    format!(
        "{CLASS}{}{}{}",
        service("app", backend),
        gateway("gw", &[port]),
        route("app", "gw", "app")
    )
}

/// A config directory holding one `config.yaml`, rewritten atomically (write, then rename).
pub struct ConfigDir {
    dir: tempfile::TempDir,
}

impl ConfigDir {
    pub fn new(yaml: &str) -> ConfigDir {
        let config = ConfigDir {
            dir: tempfile::tempdir().unwrap(),
        };
        config.write(yaml);
        config
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self) -> PathBuf {
        self.dir.path().join("config.yaml")
    }

    pub fn write(&self, yaml: &str) {
        let tmp = self.dir.path().join(".config.yaml.tmp");
        std::fs::write(&tmp, yaml).unwrap();
        std::fs::rename(&tmp, self.file()).unwrap();
    }
}

pub async fn start(config: &ConfigDir) -> Running {
    start_with(StandaloneOptions::for_tests(config.path())).await
}

pub async fn start_with(opts: StandaloneOptions) -> Running {
    tokio::time::timeout(WAIT, standalone::start(opts))
        .await
        .unwrap()
        .unwrap()
}

/// Rewrites the config and waits until a newer snapshot is published and its sockets bound.
pub async fn reload(running: &Running, config: &ConfigDir, yaml: &str) -> u64 {
    let mut published = running.store().subscribe();
    let before = *published.borrow_and_update();
    config.write(yaml);
    let generation = *tokio::time::timeout(WAIT, published.wait_for(|g| *g > before))
        .await
        .expect("the new configuration is published")
        .unwrap();
    running.wait_for_generation(generation, WAIT).await.unwrap();
    generation
}

/// Rewrites the config with something that must be rejected and waits for the rejection.
pub async fn reload_rejected(running: &Running, config: &ConfigDir, yaml: &str) -> String {
    let (_, rejected_before) = running.store().reload_counts();
    config.write(yaml);
    until("the broken configuration to be rejected", WAIT, || {
        if running.store().reload_counts().1 <= rejected_before {
            return None;
        }
        match running.store().last_outcome() {
            ReloadOutcome::Rejected { error, .. } => Some(error),
            _ => None,
        }
    })
    .await
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(WAIT).build().unwrap()
}

pub fn url(address: SocketAddr, path: &str) -> String {
    format!("http://{address}{path}")
}

pub fn local(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// GET `/` through the gateway: the echo JSON's `pod` field, or the error.
pub async fn pod_behind(client: &reqwest::Client, address: SocketAddr) -> Result<String, String> {
    pod_at(client, &url(address, "/")).await
}

pub async fn admin_get(running: &Running, path: &str) -> (u16, String) {
    let response = client()
        .get(url(running.admin_addr(), path))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}
