//! One case's world (FORMAT.md §1): objects, echo pods, EndpointSlices and an in-process Sluice that reads them.
//!
//! Every case gets its own environment, so cases are independent and may run in parallel: Gateways take
//! addresses from `127.<octet>.0.0/24` (Sluice's address pool) and pods live on `127.<octet>.1.0` upwards.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_controller::publish::ReloadOutcome;
use sluice_gateway::standalone::{self, Running, StandaloneOptions};

use crate::backends::{BackendError, Backends};
use crate::http::PodLog;
use crate::objects::{ApplyRules, ObjectError, ObjectKey, ObjectStore};

/// Hands out `127.N` prefixes process-wide, so environments of concurrent suites (tests) never share one.
/// The start is random so that separate processes on one machine rarely collide; [`EnvError::is_address_clash`]
/// tells the caller to move on to the next prefix when they do.
pub fn next_octet() -> u8 {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::OnceLock;
    static NEXT: OnceLock<AtomicU32> = OnceLock::new();
    let next = NEXT.get_or_init(|| AtomicU32::new(rand::random_range(0..240)));
    // 10..=249: clear of 127.0/16 (the usual loopback) and of the top of the range.
    10 + (next.fetch_add(1, Ordering::Relaxed) % 240) as u8
}

/// The GatewayClass every Gateway is rewritten to.
pub const GATEWAY_CLASS: &str = "sluice";
const RELOAD_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("cannot create the config directory")]
    TempDir(#[source] std::io::Error),
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("applying objects")]
    Objects(#[from] ObjectError),
    #[error("starting echo pods")]
    Backends(#[from] BackendError),
    #[error("generating TLS material")]
    Certs(#[from] crate::certs::CertError),
    #[error("starting Sluice")]
    Start(#[source] standalone::StartError),
    #[error("Sluice rejected the configuration: {0}")]
    Rejected(String),
    #[error("cannot read Sluice's /status: {0}")]
    Status(String),
}

impl EnvError {
    /// Another process (or environment) already uses this `127.N` prefix.
    pub fn is_address_clash(&self) -> bool {
        matches!(self, EnvError::Backends(BackendError::Bind { source, .. })
            if source.kind() == std::io::ErrorKind::AddrInUse)
    }
}

pub struct Env {
    pub objects: ObjectStore,
    pub backends: Backends,
    octet: u8,
    dir: tempfile::TempDir,
    sluice: Option<Running>,
    admin: reqwest::Client,
}

// === impl Env ===

impl Env {
    /// Applies the GatewayClass, `base_yaml` and the generated TLS objects, and starts the pods.
    /// Sluice starts at the first [`Env::publish`].
    pub async fn new(octet: u8, base_yaml: &str) -> Result<Self, EnvError> {
        let dir = tempfile::Builder::new()
            .prefix("sluice-conformance-")
            .tempdir()
            .map_err(EnvError::TempDir)?;
        let mut env = Env {
            objects: ObjectStore::default(),
            backends: Backends::new(octet),
            octet,
            dir,
            sluice: None,
            admin: reqwest::Client::builder()
                .no_proxy()
                .build()
                .map_err(|e| EnvError::Status(e.to_string()))?,
        };
        // Base objects are older than the case's: creationTimestamp breaks route conflicts.
        let base_time = timestamp(-60);
        let class = format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata:\n  name: {GATEWAY_CLASS}\n\
             spec:\n  controllerName: {}\n",
            sluice_controller::CONTROLLER_NAME
        );
        env.apply(&class, false, &base_time)?;
        env.apply(base_yaml, false, &base_time)?;
        for object in crate::certs::generated_objects()? {
            if let Some(key) = ObjectKey::of(&object) {
                env.objects.put(key, object, &base_time);
            }
        }
        env.backends.sync(&env.objects).await?;
        Ok(env)
    }

    pub fn rules(&self, case_manifest: bool) -> ApplyRules {
        ApplyRules {
            gateway_class_name: GATEWAY_CLASS.to_owned(),
            controller_name: case_manifest.then(|| sluice_controller::CONTROLLER_NAME.to_owned()),
            usable_addresses: vec![Ipv4Addr::new(127, self.octet, 0, 250).to_string()],
            unusable_addresses: vec!["198.51.100.250".to_owned()],
        }
    }

    /// Applies a YAML stream (placeholders of §6 substituted); call [`Env::publish`] afterwards.
    pub fn apply(
        &mut self,
        yaml: &str,
        case_manifest: bool,
        created_at: &str,
    ) -> Result<Vec<ObjectKey>, EnvError> {
        let rules = self.rules(case_manifest);
        let documents = crate::objects::parse_documents(yaml, &|text| self.substitute(text))?;
        Ok(self.objects.apply(documents, &rules, created_at)?)
    }

    /// `{{configMap ns/name key}}`, `{{podIP ns selector}}`, `{{usableAddress.*}}`, `{{unusableAddress.value}}`.
    pub fn substitute(&self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            let Some(len) = rest[start..].find("}}") else {
                break;
            };
            out.push_str(&rest[..start]);
            let inner = rest[start + 2..start + len].trim();
            out.push_str(
                &self
                    .placeholder(inner)
                    .unwrap_or_else(|| rest[start..start + len + 2].to_owned()),
            );
            rest = &rest[start + len + 2..];
        }
        out.push_str(rest);
        out
    }

    fn placeholder(&self, inner: &str) -> Option<String> {
        let rules = self.rules(false);
        let words: Vec<&str> = inner.split_whitespace().collect();
        match words.as_slice() {
            ["configMap", object, key] => {
                let (ns, name) = object.split_once('/')?;
                crate::backends::data_value(&self.objects, "ConfigMap", ns, name, key)
            }
            ["podIP", ns, selector] => {
                let selector = selector
                    .split(',')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                let pod = self.backends.matching(ns, &selector).next()?;
                Some(pod.ip.to_string())
            }
            ["usableAddress.value"] => rules.usable_addresses.first().cloned(),
            ["usableAddress.type"] => Some("IPAddress".to_owned()),
            ["unusableAddress.value"] => rules.unusable_addresses.first().cloned(),
            _ => None,
        }
    }

    /// Brings pods and EndpointSlices up to date, writes every object for Sluice and waits for the reload.
    pub async fn publish(&mut self) -> Result<(), EnvError> {
        self.backends.sync(&self.objects).await?;
        let stale: Vec<ObjectKey> = self
            .objects
            .objects()
            .filter(|(k, v)| {
                k.kind == "EndpointSlice"
                    && v.pointer("/metadata/labels/endpointslice.kubernetes.io~1managed-by")
                        .and_then(Value::as_str)
                        == Some("sluice-conformance")
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in stale {
            self.objects.delete(&key)?;
        }
        let now = timestamp(0);
        for slice in self.backends.endpoint_slices(&self.objects) {
            if let Some(key) = ObjectKey::of(&slice) {
                self.objects.put(key, slice, &now);
            }
        }
        let yaml = self.objects.to_yaml()?;
        let path = self.dir.path().join("objects.yaml");
        let before = self.sluice.as_ref().map(|s| s.store().reload_counts());
        write_atomically(&path, &yaml)?;
        match (&self.sluice, before) {
            (None, _) => {
                let mut options = StandaloneOptions::for_tests(self.dir.path());
                options.address_pool =
                    ipnet::IpNet::new(IpAddr::V4(Ipv4Addr::new(127, self.octet, 0, 0)), 24).ok();
                let running = standalone::start(options).await.map_err(EnvError::Start)?;
                self.sluice = Some(running);
            }
            (Some(running), Some(before)) => {
                let deadline = Instant::now() + RELOAD_WAIT;
                while running.store().reload_counts() == before && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            (Some(_), None) => {}
        }
        let Some(running) = &self.sluice else {
            return Ok(());
        };
        match running.store().last_outcome() {
            ReloadOutcome::Rejected { error, .. } => Err(EnvError::Rejected(error)),
            ReloadOutcome::Published { generation, .. } => {
                if let Err(error) = running
                    .wait_for_generation(generation, Duration::from_secs(5))
                    .await
                {
                    tracing::warn!(%error, "listeners not settled");
                }
                Ok(())
            }
            ReloadOutcome::Pending => Ok(()),
        }
    }

    /// Sluice's `/status`, fetched over its admin listener.
    pub async fn statuses(&self) -> Result<Value, EnvError> {
        let Some(running) = &self.sluice else {
            return Err(EnvError::Status("Sluice is not running".to_owned()));
        };
        let url = format!("http://{}/status", running.admin_addr());
        let text = self
            .admin
            .get(&url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| EnvError::Status(e.to_string()))?
            .text()
            .await
            .map_err(|e| EnvError::Status(e.to_string()))?;
        serde_yaml_ng::from_str(&text).map_err(|e| EnvError::Status(format!("{e}: {text}")))
    }

    /// The reason of the last rejected reload, if the last reload was rejected.
    pub fn last_rejection(&self) -> Option<String> {
        match self.sluice.as_ref()?.store().last_outcome() {
            ReloadOutcome::Rejected { error, .. } => Some(error),
            _ => None,
        }
    }

    pub fn pod_logs(&self) -> Arc<Vec<PodLog>> {
        Arc::new(
            self.backends
                .pods()
                .iter()
                .filter_map(|p| {
                    Some(PodLog {
                        namespace: p.namespace.clone(),
                        app: p.labels.get("app").cloned().unwrap_or_default(),
                        pod: p.name.clone(),
                        log: p.echo.as_ref()?.log().clone(),
                    })
                })
                .collect(),
        )
    }

    pub fn namespaces_with_pods(&self) -> Vec<String> {
        let mut namespaces: Vec<String> = self
            .backends
            .pods()
            .iter()
            .filter(|p| p.echo.is_some())
            .map(|p| p.namespace.clone())
            .collect();
        namespaces.sort();
        namespaces.dedup();
        namespaces
    }

    pub async fn shutdown(mut self) {
        if let Some(running) = self.sluice.take() {
            running.shutdown().await;
        }
    }
}

fn write_atomically(path: &std::path::Path, text: &str) -> Result<(), EnvError> {
    let tmp = path.with_extension("yaml.tmp");
    let err = |source| EnvError::Write {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// RFC 3339 with whole seconds, `offset_seconds` from now, as the API server writes creationTimestamp.
pub fn timestamp(offset_seconds: i64) -> String {
    let now = sluice_controller::translate::Timestamp::now().as_second() + offset_seconds;
    sluice_controller::translate::Timestamp::from_second(now)
        .map(|t| t.to_string())
        .unwrap_or_default()
}
