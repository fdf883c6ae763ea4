//! Echo pods for every Deployment (FORMAT.md §1.4) and the EndpointSlices that point Services at them.
//!
//! Each pod gets its own loopback IP (`127.N.1.x`), so it listens on its real container ports (3000, 3001,
//! 8443) and Services resolve exactly as in a cluster. echo-basic's HTTP, gRPC (`GRPC_ECHO_SERVER`) and TCP
//! (`TCP_ECHO_SERVER`) modes are run: pods of UDP, coredns or mesh containers exist (names, labels, IPs) but
//! serve nothing and get no endpoints.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use base64::Engine;
use serde_json::{json, Value};
use sluice_gateway::echo::{serve_port, EchoIdentity, EchoPod, EchoPort, ReceivedRequest};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::objects::{ObjectKey, ObjectStore};

mod ports;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("pod {pod}: cannot listen on {addr}")]
    Bind {
        pod: String,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("pod {pod}: invalid {what} {value:?}")]
    BadPort {
        pod: String,
        what: &'static str,
        value: String,
    },
    #[error("pod {pod}: TLS material")]
    Tls {
        pod: String,
        #[source]
        source: sluice_gateway::echo::EchoError,
    },
    #[error("no loopback address left for pod {pod}")]
    OutOfAddresses { pod: String },
}

pub struct Pod {
    pub name: String,
    pub namespace: String,
    pub deployment: String,
    pub labels: BTreeMap<String, String>,
    /// Random, as an API server would assign it; EndpointSlice `targetRef`s carry it.
    pub uid: String,
    pub ip: Ipv4Addr,
    /// `None` when the container is not an echo-basic HTTP, gRPC or TCP server (the reason is in
    /// `unsupported`).
    pub echo: Option<Arc<EchoPod>>,
    pub unsupported: Option<String>,
    container_ports: BTreeMap<String, i64>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Pod {
    fn drop(&mut self) {
        self.tasks.iter().for_each(JoinHandle::abort);
    }
}

pub struct Backends {
    pods: Vec<Pod>,
    subnet: [u8; 2],
    next_host: u32,
}

// === impl Backends ===

impl Backends {
    /// Pods get addresses from `127.<octet>.1.0` upwards.
    pub fn new(octet: u8) -> Self {
        Backends {
            pods: Vec::new(),
            subnet: [127, octet],
            next_host: 256 + 1,
        }
    }

    pub fn pods(&self) -> &[Pod] {
        &self.pods
    }

    /// The pods of Deployment `namespace/deployment` as `fillEndpointSlices` records them.
    pub fn pod_addresses(
        &self,
        namespace: &str,
        deployment: &str,
    ) -> Vec<crate::fill_slices::PodAddresses> {
        self.pods
            .iter()
            .filter(|p| p.namespace == namespace && p.deployment == deployment)
            .map(|p| crate::fill_slices::PodAddresses {
                name: p.name.clone(),
                namespace: p.namespace.clone(),
                uid: p.uid.clone(),
                node_name: crate::fill_slices::NODE_NAME.to_owned(),
                ips: vec![IpAddr::V4(p.ip)],
            })
            .collect()
    }

    /// Starts pods for new Deployments and stops those whose Deployment is gone.
    pub async fn sync(&mut self, store: &ObjectStore) -> Result<(), BackendError> {
        let deployments: Vec<(ObjectKey, Value)> = store
            .objects()
            .filter(|(k, _)| k.kind == "Deployment")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.pods.retain(|pod| {
            deployments.iter().any(|(k, _)| {
                k.name == pod.deployment && k.namespace.as_deref() == Some(pod.namespace.as_str())
            })
        });
        for (key, deployment) in deployments {
            let namespace = key
                .namespace
                .clone()
                .unwrap_or_else(|| "default".to_owned());
            if self
                .pods
                .iter()
                .any(|p| p.deployment == key.name && p.namespace == namespace)
            {
                continue;
            }
            let replicas = deployment
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1)
                .max(1);
            for _ in 0..replicas {
                let pod = self
                    .start_pod(&key.name, &namespace, &deployment, store)
                    .await?;
                self.pods.push(pod);
            }
        }
        Ok(())
    }

    async fn start_pod(
        &mut self,
        deployment: &str,
        namespace: &str,
        spec: &Value,
        store: &ObjectStore,
    ) -> Result<Pod, BackendError> {
        let name = format!("{deployment}-{}-{}", random_suffix(10), random_suffix(5));
        let ip = self.next_ip(&name)?;
        let template = spec
            .pointer("/spec/template")
            .cloned()
            .unwrap_or(Value::Null);
        let labels = string_map(template.pointer("/metadata/labels"));
        let container = template
            .pointer("/spec/containers/0")
            .cloned()
            .unwrap_or(Value::Null);
        let env = container_env(&container, &name, namespace);
        let container_ports = container
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| {
                Some((
                    p.get("name")?.as_str()?.to_owned(),
                    p.get("containerPort")?.as_i64()?,
                ))
            })
            .collect();
        let image = container
            .get("image")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let unsupported = if !image.contains("echo-basic") {
            Some(format!("image {image} is not echo-basic"))
        } else {
            env.contains_key("UDP_ECHO_SERVER")
                .then(|| "UDP_ECHO_SERVER mode is not provided by this harness".to_owned())
        };
        let mut pod = Pod {
            name: name.clone(),
            namespace: namespace.to_owned(),
            deployment: deployment.to_owned(),
            labels,
            uid: crate::uuid(),
            ip,
            echo: None,
            unsupported,
            container_ports,
            tasks: Vec::new(),
        };
        if pod.unsupported.is_some() {
            return Ok(pod);
        }
        let mounted = |var: &str| {
            env.get(var)
                .and_then(|path| read_mounted_file(&template, &container, path, namespace, store))
        };
        let view = ports::Container {
            pod: &name,
            env: &env,
            mounted: &mounted,
        };
        let echo = Arc::new(EchoPod::new(EchoIdentity {
            pod: name.clone(),
            namespace: namespace.to_owned(),
            service: env.get("SERVICE_NAME").cloned().unwrap_or_default(),
            ingress: env.get("INGRESS_NAME").cloned().unwrap_or_default(),
            http_port: view.port("HTTP_PORT", 3000)?.to_string(),
        }));
        for (number, kind) in view.echo_ports()? {
            pod.tasks
                .push(listen(&name, ip, number, echo.clone(), kind).await?);
        }
        pod.echo = Some(echo);
        Ok(pod)
    }

    fn next_ip(&mut self, pod: &str) -> Result<Ipv4Addr, BackendError> {
        let host = self.next_host;
        self.next_host += 1;
        // Skip .0 and .255 of each /24.
        if host % 256 == 255 {
            self.next_host += 2;
        }
        if host >= 65536 {
            return Err(BackendError::OutOfAddresses {
                pod: pod.to_owned(),
            });
        }
        Ok(Ipv4Addr::new(
            self.subnet[0],
            self.subnet[1],
            (host / 256) as u8,
            (host % 256) as u8,
        ))
    }

    /// Pods of `namespace` whose labels include all of `selector`.
    pub fn matching<'a>(
        &'a self,
        namespace: &'a str,
        selector: &'a BTreeMap<String, String>,
    ) -> impl Iterator<Item = &'a Pod> + 'a {
        self.pods.iter().filter(move |p| {
            p.namespace == namespace && selector.iter().all(|(k, v)| p.labels.get(k) == Some(v))
        })
    }

    /// What pods labelled `app=<service>` in `namespace` received since `since`.
    pub fn received_by_app(
        &self,
        namespace: &str,
        app: &str,
        since: std::time::Instant,
    ) -> Vec<ReceivedRequest> {
        self.pods
            .iter()
            .filter(|p| {
                p.namespace == namespace && p.labels.get("app").map(String::as_str) == Some(app)
            })
            .filter_map(|p| p.echo.as_ref())
            .flat_map(|echo| echo.log().since(since))
            .collect()
    }

    /// One EndpointSlice per selector-based Service, listing the ready echo pods it selects.
    pub fn endpoint_slices(&self, store: &ObjectStore) -> Vec<Value> {
        let mut slices = Vec::new();
        for service in store.of_kind("Service") {
            let Some(key) = ObjectKey::of(service) else {
                continue;
            };
            let selector = string_map(service.pointer("/spec/selector"));
            let kind = service
                .pointer("/spec/type")
                .and_then(Value::as_str)
                .unwrap_or("ClusterIP");
            if selector.is_empty() || kind == "ExternalName" {
                continue;
            }
            let namespace = key
                .namespace
                .clone()
                .unwrap_or_else(|| "default".to_owned());
            let pods: Vec<&Pod> = self
                .matching(&namespace, &selector)
                .filter(|p| p.echo.is_some())
                .collect();
            let service_ports = service
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let template_pod = pods.first().copied();
            let ports: Vec<Value> = service_ports
                .iter()
                .map(|p| {
                    let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
                    let target = match p.get("targetPort") {
                        Some(Value::Number(n)) => n.as_i64().unwrap_or(port),
                        Some(Value::String(named)) => template_pod
                            .and_then(|pod| pod.container_ports.get(named).copied())
                            .or_else(|| named.parse().ok())
                            .unwrap_or(port),
                        _ => port,
                    };
                    json!({
                        "name": p.get("name").and_then(Value::as_str).unwrap_or(""),
                        "port": target,
                        "protocol": p.get("protocol").and_then(Value::as_str).unwrap_or("TCP"),
                        "appProtocol": p.get("appProtocol").cloned().unwrap_or(Value::Null),
                    })
                })
                .map(|mut port| {
                    if let Some(map) = port.as_object_mut() {
                        map.retain(|_, v| !v.is_null());
                    }
                    port
                })
                .collect();
            let endpoints: Vec<Value> = pods
                .iter()
                .map(|pod| {
                    json!({
                        "addresses": [pod.ip.to_string()],
                        "conditions": {"ready": true, "serving": true, "terminating": false},
                        "targetRef": {"kind": "Pod", "name": pod.name, "namespace": pod.namespace},
                    })
                })
                .collect();
            slices.push(json!({
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": format!("{}-harness", key.name),
                    "namespace": namespace,
                    "labels": {
                        "kubernetes.io/service-name": key.name,
                        "endpointslice.kubernetes.io/managed-by": "sluice-conformance",
                    },
                },
                "addressType": "IPv4",
                "endpoints": endpoints,
                "ports": ports,
            }));
        }
        slices
    }
}

async fn listen(
    pod: &str,
    ip: Ipv4Addr,
    port: u16,
    echo: Arc<EchoPod>,
    kind: EchoPort,
) -> Result<JoinHandle<()>, BackendError> {
    let addr = SocketAddr::new(IpAddr::V4(ip), port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| BackendError::Bind {
            pod: pod.to_owned(),
            addr,
            source,
        })?;
    Ok(tokio::spawn(async move {
        if let Err(error) = serve_port(listener, echo, kind).await {
            tracing::warn!(%error, "echo pod stopped");
        }
    }))
}

fn container_env(container: &Value, pod: &str, namespace: &str) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    // A missing `env` indexes as null: no variables.
    for var in container["env"].as_array().into_iter().flatten() {
        let Some(name) = var.get("name").and_then(Value::as_str) else {
            continue;
        };
        let value = if let Some(value) = var.get("value") {
            value
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| value.to_string())
        } else {
            match var
                .pointer("/valueFrom/fieldRef/fieldPath")
                .and_then(Value::as_str)
            {
                Some("metadata.name") => pod.to_owned(),
                Some("metadata.namespace") => namespace.to_owned(),
                Some("status.podIP") => String::new(),
                _ => String::new(),
            }
        };
        env.insert(name.to_owned(), value);
    }
    env
}

/// Reads a file the container sees through a Secret or ConfigMap volume.
fn read_mounted_file(
    template: &Value,
    container: &Value,
    path: &str,
    namespace: &str,
    store: &ObjectStore,
) -> Option<String> {
    let mounts = container.get("volumeMounts")?.as_array()?;
    let (volume_name, rest) = mounts.iter().find_map(|m| {
        let mount_path = m.get("mountPath")?.as_str()?.trim_end_matches('/');
        let rest = path.strip_prefix(mount_path)?.strip_prefix('/')?;
        Some((m.get("name")?.as_str()?, rest))
    })?;
    let volume = template
        .pointer("/spec/volumes")?
        .as_array()?
        .iter()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(volume_name))?;
    let (kind, source, name_field) = if let Some(secret) = volume.get("secret") {
        ("Secret", secret, "secretName")
    } else {
        ("ConfigMap", volume.get("configMap")?, "name")
    };
    let object_name = source.get(name_field)?.as_str()?;
    let key = source
        .get("items")
        .and_then(Value::as_array)
        .and_then(|items| {
            items
                .iter()
                .find(|i| i.get("path").and_then(Value::as_str) == Some(rest))
                .and_then(|i| i.get("key")?.as_str())
        })
        .unwrap_or(rest);
    data_value(store, kind, namespace, object_name, key)
}

/// A Secret (base64 `data`) or ConfigMap value as text.
pub fn data_value(
    store: &ObjectStore,
    kind: &str,
    namespace: &str,
    name: &str,
    key: &str,
) -> Option<String> {
    let object = store.get(&ObjectKey::new(kind, Some(namespace), name))?;
    if kind == "Secret" {
        if let Some(text) = object
            .get("stringData")
            .and_then(|d| d.get(key))
            .and_then(Value::as_str)
        {
            return Some(text.to_owned());
        }
        let encoded = object.get("data")?.get(key)?.as_str()?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        return String::from_utf8(bytes).ok();
    }
    object.get("data")?.get(key)?.as_str().map(str::to_owned)
}

fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

fn random_suffix(len: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..len)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}
