//! The provisioner: while leading, gives every accepted Gateway its data plane (Deployment or
//! DaemonSet running `sluice proxy`, Service, ServiceAccount, PodDisruptionBudget, all owned by
//! the Gateway, plus a ClusterRoleBinding to the read-only `sluice-dataplane` role) and reports
//! whether it is available to the status writer.
//!
//! Every object is server-side applied with field manager `sluice`, so a reconcile that changes
//! nothing writes nothing. Reconciles run on every change of the watched objects and every
//! `resync` period, which is also how Deployment and Service status changes are noticed.

pub mod manifests;
pub mod params;

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use gateway_api::apis::standard::gateways::Gateway;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;

use self::manifests::{
    DataPlaneObjects, Workload, GATEWAY_LABEL, GATEWAY_NAMESPACE_LABEL, MANAGED_BY,
};
use self::params::DataPlaneParams;
use crate::publish::Store;
use crate::resources::Resources;
use crate::status_writer::{DataPlane, DataPlanes, FIELD_MANAGER};

#[derive(Debug, Clone)]
pub struct ProvisionerConfig {
    /// The image data planes run unless the class parameters name another.
    pub image: String,
    pub resync: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("{action} {kind} {name}")]
    Api {
        action: &'static str,
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

pub struct Provisioner {
    client: Client,
    config: ProvisionerConfig,
    leader: watch::Receiver<bool>,
    resources: watch::Receiver<Option<Arc<Resources>>>,
    store: Arc<Store>,
    data_planes: watch::Sender<Arc<DataPlanes>>,
    recorder: Recorder,
}

impl Provisioner {
    /// `resources` and `store` come from the controller's kube source.
    pub fn new(
        client: Client,
        config: ProvisionerConfig,
        leader: watch::Receiver<bool>,
        resources: watch::Receiver<Option<Arc<Resources>>>,
        store: Arc<Store>,
    ) -> Provisioner {
        let client_for_events = client.clone();
        Provisioner {
            client,
            config,
            leader,
            resources,
            store,
            data_planes: watch::channel(Arc::new(DataPlanes::new())).0,
            recorder: Recorder::new(client_for_events, "sluice-controller".into()),
        }
    }

    /// What the status writer overlays on Gateway statuses.
    pub fn data_planes(&self) -> watch::Receiver<Arc<DataPlanes>> {
        self.data_planes.subscribe()
    }

    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run())
    }

    async fn run(mut self) {
        loop {
            let resources = self.resources.borrow_and_update().clone();
            let leading = *self.leader.borrow_and_update();
            if let (true, Some(resources)) = (leading, resources) {
                let planes = self.reconcile(&resources).await;
                let previous = self.data_planes.borrow().clone();
                self.record_transitions(&resources, &previous, &planes)
                    .await;
                self.data_planes.send_if_modified(|current| {
                    let changed = **current != planes;
                    if changed {
                        *current = Arc::new(planes);
                    }
                    changed
                });
            }
            tokio::select! {
                r = self.resources.changed() => if r.is_err() { return },
                r = self.leader.changed() => if r.is_err() { return },
                _ = tokio::time::sleep(self.config.resync) => {}
            }
        }
    }

    /// Provisions every accepted Gateway of a Sluice class; returns each one's data-plane state.
    pub async fn reconcile(&self, resources: &Resources) -> DataPlanes {
        let statuses = self.store.load().statuses.clone();
        let mut planes = DataPlanes::new();
        let mut bindings = BTreeSet::new();
        for gateway in &resources.gateways {
            let ns = gateway.namespace().unwrap_or_default();
            let name = gateway.name_any();
            let accepted = statuses.gateway(&ns, &name).is_some_and(|s| {
                s.conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == "Accepted" && c.status == "True")
            });
            if !accepted {
                continue;
            }
            let params = match self.class_params(resources, gateway).await {
                Ok(p) => p,
                Err(message) => {
                    planes.insert(
                        format!("{ns}/{name}"),
                        DataPlane {
                            programmed: false,
                            reason: "Invalid",
                            message,
                            addresses: Vec::new(),
                        },
                    );
                    continue;
                }
            };
            bindings.insert(manifests::binding_name(gateway));
            let objects = manifests::build(gateway, &params, &self.config.image);
            let plane = match self.apply_all(&objects, &ns).await {
                Ok(plane) => plane,
                Err(e) => {
                    tracing::warn!("provisioning {ns}/{name}: {e}");
                    DataPlane {
                        programmed: false,
                        reason: "Pending",
                        message: format!("the data plane could not be provisioned: {e}"),
                        addresses: Vec::new(),
                    }
                }
            };
            planes.insert(format!("{ns}/{name}"), plane);
        }
        if let Err(e) = self.delete_stale_bindings(&bindings).await {
            tracing::warn!("cleaning up data-plane ClusterRoleBindings: {e}");
        }
        planes
    }

    /// One Event on the Gateway each time its data plane changes state (provisioned, available,
    /// failing), so `kubectl describe gateway` tells the story without repeating it every resync.
    async fn record_transitions(&self, resources: &Resources, old: &DataPlanes, new: &DataPlanes) {
        for gateway in &resources.gateways {
            let key = format!(
                "{}/{}",
                gateway.namespace().unwrap_or_default(),
                gateway.name_any()
            );
            let Some(plane) = new.get(&key) else { continue };
            let before = old.get(&key).map(|o| (o.programmed, o.reason));
            if before == Some((plane.programmed, plane.reason)) {
                continue;
            }
            let note = if plane.programmed {
                let addresses: Vec<&str> =
                    plane.addresses.iter().map(|(_, v)| v.as_str()).collect();
                format!("data plane available at {}", addresses.join(", "))
            } else {
                plane.message.clone()
            };
            let event = Event {
                type_: if plane.reason == "Invalid" {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: plane.reason.to_string(),
                note: Some(note),
                action: "Provision".into(),
                secondary: None,
            };
            if let Err(e) = self
                .recorder
                .publish(&event, &gateway.object_ref(&()))
                .await
            {
                tracing::warn!("recording an Event for Gateway {key}: {e}");
            }
        }
    }

    /// The class's `parametersRef` ConfigMap, decoded; an error message for the Gateway status.
    async fn class_params(
        &self,
        resources: &Resources,
        gateway: &Gateway,
    ) -> Result<DataPlaneParams, String> {
        let class = resources
            .gateway_classes
            .iter()
            .find(|c| c.name_any() == gateway.spec.gateway_class_name);
        let Some(pref) = class.and_then(|c| c.spec.parameters_ref.as_ref()) else {
            return Ok(DataPlaneParams::default());
        };
        if !pref.group.is_empty() || pref.kind != "ConfigMap" {
            return Err(format!(
                "GatewayClass parametersRef must be a core ConfigMap, not {}/{}",
                pref.group, pref.kind
            ));
        }
        let Some(ns) = pref.namespace.as_deref() else {
            return Err("GatewayClass parametersRef needs a namespace".into());
        };
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), ns);
        match api.get_opt(&pref.name).await {
            Ok(Some(cm)) => DataPlaneParams::from_config_map(&cm)
                .map_err(|e| format!("ConfigMap {ns}/{}: {e}", pref.name)),
            Ok(None) => Err(format!("ConfigMap {ns}/{} not found", pref.name)),
            Err(e) => Err(format!("ConfigMap {ns}/{}: {e}", pref.name)),
        }
    }

    async fn apply_all(
        &self,
        objects: &DataPlaneObjects,
        ns: &str,
    ) -> Result<DataPlane, ProvisionError> {
        let client = &self.client;
        apply(
            Api::<ServiceAccount>::namespaced(client.clone(), ns),
            &objects.service_account,
        )
        .await?;
        apply(
            Api::<ClusterRoleBinding>::all(client.clone()),
            &objects.cluster_role_binding,
        )
        .await?;
        let service = apply(
            Api::<Service>::namespaced(client.clone(), ns),
            &objects.service,
        )
        .await?;
        apply(
            Api::<PodDisruptionBudget>::namespaced(client.clone(), ns),
            &objects.pod_disruption_budget,
        )
        .await?;
        let deployments = Api::<Deployment>::namespaced(client.clone(), ns);
        let daemon_sets = Api::<DaemonSet>::namespaced(client.clone(), ns);
        let available = match &objects.workload {
            Workload::Deployment(d) => {
                delete_if_present(&daemon_sets, &d.name_any()).await?;
                let d = apply(deployments, d).await?;
                d.status.and_then(|s| s.available_replicas).unwrap_or(0) > 0
            }
            Workload::DaemonSet(ds) => {
                delete_if_present(&deployments, &ds.name_any()).await?;
                let ds = apply(daemon_sets, ds).await?;
                ds.status.and_then(|s| s.number_available).unwrap_or(0) > 0
            }
        };
        let addresses = service_addresses(&service);
        let name = service.name_any();
        Ok(if !available {
            DataPlane {
                programmed: false,
                reason: "Pending",
                message: format!("waiting for an available data-plane pod of {name}"),
                addresses,
            }
        } else if addresses.is_empty() {
            DataPlane {
                programmed: false,
                reason: "AddressNotAssigned",
                message: format!("waiting for Service {name} to get an address"),
                addresses,
            }
        } else {
            DataPlane {
                programmed: true,
                reason: "Programmed",
                message: String::new(),
                addresses,
            }
        })
    }

    /// ClusterRoleBindings cannot be owned by a Gateway: delete those whose Gateway is gone.
    async fn delete_stale_bindings(&self, keep: &BTreeSet<String>) -> Result<(), ProvisionError> {
        let api: Api<ClusterRoleBinding> = Api::all(self.client.clone());
        let selector = format!("{MANAGED_BY}=sluice");
        let list = api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|source| api_error("listing", "ClusterRoleBinding", "", source))?;
        for crb in list {
            let is_dataplane = crb.labels().contains_key(GATEWAY_LABEL)
                && crb.labels().contains_key(GATEWAY_NAMESPACE_LABEL);
            if is_dataplane && !keep.contains(&crb.name_any()) {
                delete_if_present(&api, &crb.name_any()).await?;
            }
        }
        Ok(())
    }
}

fn api_error(action: &'static str, kind: &str, name: &str, source: kube::Error) -> ProvisionError {
    ProvisionError::Api {
        action,
        kind: kind.to_string(),
        name: name.to_string(),
        source,
    }
}

async fn apply<K>(api: Api<K>, object: &K) -> Result<K, ProvisionError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug,
{
    let name = object.name_any();
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map_err(|source| api_error("applying", &K::kind(&()), &name, source))
}

async fn delete_if_present<K>(api: &Api<K>, name: &str) -> Result<(), ProvisionError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(source) => Err(api_error("deleting", &K::kind(&()), name, source)),
    }
}

/// `(type, value)` pairs for the Gateway status: load-balancer ingress, else the cluster IP.
fn service_addresses(service: &Service) -> Vec<(String, String)> {
    let ingress = service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref());
    let mut out: Vec<(String, String)> = ingress
        .into_iter()
        .flatten()
        .filter_map(|i| match (&i.ip, &i.hostname) {
            (Some(ip), _) => Some(("IPAddress".to_string(), ip.clone())),
            (None, Some(h)) => Some(("Hostname".to_string(), h.clone())),
            (None, None) => None,
        })
        .collect();
    let spec = service.spec.as_ref();
    let is_lb = spec.and_then(|s| s.type_.as_deref()) == Some("LoadBalancer");
    if out.is_empty() && !is_lb {
        if let Some(ip) = spec
            .and_then(|s| s.cluster_ip.clone())
            .filter(|ip| ip != "None")
        {
            out.push(("IPAddress".into(), ip));
        }
    }
    out
}
