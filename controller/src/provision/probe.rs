//! Which listener ports a data plane could not bind, asked of its unready pods through the API
//! server's pod proxy (`pods/proxy`), so the data plane stays read-only towards the API server and
//! the leader still learns why a Gateway is not serving.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use serde::{Deserialize, Serialize};

use super::manifests::ADMIN_PORT;

/// The data plane's admin path answering with a [`ListenerReport`] as JSON.
pub const LISTENERS_PATH: &str = "/listeners";

/// What a data plane's [`LISTENERS_PATH`] says; fields the controller does not use are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerReport {
    /// Addresses the data plane wants but could not bind, with the bind error.
    #[serde(default)]
    pub failed: BTreeMap<SocketAddr, String>,
}

/// The bounds of asking data-plane pods: how often while a data plane is not fully available,
/// how long one pod may take, and how many pods one pass asks per Gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodProbeConfig {
    /// Between passes while some data plane is not fully available (a bind retry that succeeds
    /// makes the pod ready, which the Deployment watch reports at once; this catches the rest).
    pub interval: Duration,
    /// For one pod's answer, the API server's proxying included; also for listing the pods.
    pub deadline: Duration,
    /// Unready pods asked per Gateway and pass: they all run the same configuration, so a few
    /// tell as much as all of them.
    pub max_pods: usize,
}

impl Default for PodProbeConfig {
    fn default() -> PodProbeConfig {
        PodProbeConfig {
            interval: Duration::from_secs(10),
            deadline: Duration::from_secs(2),
            max_pods: 3,
        }
    }
}

/// Why one pod could not be asked; logged, and the pod left out of this pass.
#[derive(Debug, thiserror::Error)]
enum ProbeError {
    #[error("listing the data-plane pods in {namespace}")]
    List {
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error("listing the data-plane pods in {namespace} took longer than {deadline:?}")]
    ListTimeout {
        namespace: String,
        deadline: Duration,
    },
    #[error("building the pod proxy request")]
    Request(#[source] http::Error),
    #[error("asking pod {pod} through the API server")]
    Api {
        pod: String,
        #[source]
        source: kube::Error,
    },
    #[error("pod {pod} did not answer within {deadline:?}")]
    Timeout { pod: String, deadline: Duration },
    #[error("pod {pod} answered with something other than a listener report")]
    Decode {
        pod: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Listener port -> `pod NAME: bind error`, from the unready running pods `selector` matches in
/// `namespace` (at most `config.max_pods` of them, asked concurrently). A pod that cannot be asked
/// contributes nothing: the Gateway then keeps the provisioner's generic reason.
pub(super) async fn unbound_ports(
    client: &Client,
    namespace: &str,
    selector: &str,
    config: &PodProbeConfig,
) -> BTreeMap<u16, String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = ListParams::default().labels(selector);
    let listing = pods.list(&params);
    let list = match tokio::time::timeout(config.deadline, listing).await {
        Ok(Ok(list)) => list,
        Ok(Err(source)) => {
            let e = ProbeError::List {
                namespace: namespace.to_string(),
                source,
            };
            tracing::warn!("{}", super::params::error_chain(&e));
            return BTreeMap::new();
        }
        Err(_) => {
            let e = ProbeError::ListTimeout {
                namespace: namespace.to_string(),
                deadline: config.deadline,
            };
            tracing::warn!("{e}");
            return BTreeMap::new();
        }
    };
    let asked = list
        .items
        .iter()
        .filter(|p| running_unready(p))
        .take(config.max_pods)
        .map(|p| ask(client, namespace, p, config.deadline));
    let mut out = BTreeMap::new();
    for (pod, answer) in join_all(asked).await {
        match answer {
            Ok(report) => {
                for (address, error) in report.failed {
                    out.entry(address.port())
                        .or_insert_with(|| format!("pod {pod}: {error}"));
                }
            }
            Err(e) => tracing::debug!("{}", super::params::error_chain(&e)),
        }
    }
    out
}

/// Running with an address, but not Ready: the pods whose readiness may be a bind failure.
fn running_unready(pod: &Pod) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return false;
    };
    let running = status.phase.as_deref() == Some("Running") && status.pod_ip.is_some();
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    running && !ready
}

/// The pod's container port named `admin` (the manifests' [`ADMIN_PORT`] when it has none).
fn admin_port(pod: &Pod) -> u16 {
    pod.spec
        .iter()
        .flat_map(|s| &s.containers)
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some("admin"))
        .and_then(|p| u16::try_from(p.container_port).ok())
        .unwrap_or(ADMIN_PORT)
}

async fn ask(
    client: &Client,
    namespace: &str,
    pod: &Pod,
    deadline: Duration,
) -> (String, Result<ListenerReport, ProbeError>) {
    let name = pod.name_any();
    let answer = async {
        let path = format!(
            "/api/v1/namespaces/{namespace}/pods/{name}:{}/proxy{LISTENERS_PATH}",
            admin_port(pod)
        );
        let request = http::Request::get(path)
            .body(Vec::new())
            .map_err(ProbeError::Request)?;
        let text = tokio::time::timeout(deadline, client.request_text(request))
            .await
            .map_err(|_| ProbeError::Timeout {
                pod: name.clone(),
                deadline,
            })?
            .map_err(|source| ProbeError::Api {
                pod: name.clone(),
                source,
            })?;
        serde_json::from_str(&text).map_err(|source| ProbeError::Decode {
            pod: name.clone(),
            source,
        })
    }
    .await;
    (name, answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_report_reads_the_failed_addresses_and_ignores_the_rest() {
        let text = r#"{"generation": 3, "serving": [], "failed": {"0.0.0.0:80": "Address in use"}, "draining": false}"#;
        let report: ListenerReport = serde_json::from_str(text).expect("report");
        assert_eq!(
            report.failed,
            BTreeMap::from([(
                "0.0.0.0:80".parse().expect("addr"),
                "Address in use".to_string()
            )])
        );
    }

    #[test]
    fn only_running_unready_pods_are_asked() {
        let pod = |phase: &str, ready: &str| -> Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "p"},
                "status": {"phase": phase, "podIP": "10.0.0.1",
                    "conditions": [{"type": "Ready", "status": ready}]}
            }))
            .expect("pod")
        };
        assert!(running_unready(&pod("Running", "False")));
        assert!(!running_unready(&pod("Running", "True")));
        assert!(!running_unready(&pod("Pending", "False")));
    }

    #[test]
    fn the_admin_port_is_the_container_port_named_admin() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "proxy",
                "ports": [{"name": "p-80", "containerPort": 80}, {"name": "admin", "containerPort": 9911}]}]}
        }))
        .expect("pod");
        assert_eq!(admin_port(&pod), 9911);
        assert_eq!(admin_port(&Pod::default()), ADMIN_PORT);
    }
}
