//! The test-only side of the echo server (`sluice_gateway::echo`, which `sluice echo`, the demo and
//! the conformance harness run): one echo pod on a free loopback port, and what it answered.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use sluice_gateway::echo::{self, EchoIdentity, EchoPod, EchoPort};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One echo backend pod on a free loopback port; stops when dropped.
pub struct Backend {
    pub pod: Arc<EchoPod>,
    pub port: u16,
    task: JoinHandle<Result<(), echo::EchoError>>,
}

impl Backend {
    /// The pod `<name>-pod` of Service `name` in namespace `default`.
    pub async fn start(name: &str) -> Backend {
        Backend::start_in("default", name).await
    }

    /// The pod `<name>-pod` of Service `name` in `namespace`.
    pub async fn start_in(namespace: &str, name: &str) -> Backend {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let pod = Arc::new(EchoPod::new(EchoIdentity {
            pod: format!("{name}-pod"),
            namespace: namespace.into(),
            service: name.into(),
            ingress: String::new(),
            http_port: port.to_string(),
        }));
        let task = tokio::spawn(echo::serve_port(listener, pod.clone(), EchoPort::Http));
        Backend { pod, port, task }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// GET `url`: the echo JSON's `pod` field, or why not.
pub async fn pod_at(client: &reqwest::Client, url: &str) -> Result<String, String> {
    let response = client.get(url).send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.text().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{status}: {body}"));
    }
    let json: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    Ok(json["pod"].as_str().unwrap_or_default().to_string())
}
