//! The provisioner: while leading, checks every Sluice GatewayClass's `parametersRef`, gives
//! every accepted Gateway of a class with valid parameters its data plane (Deployment or
//! DaemonSet running `sluice proxy`, Service, ServiceAccount, PodDisruptionBudget, all owned by
//! the Gateway, plus a ClusterRoleBinding to the read-only `sluice-dataplane` role and, in each
//! namespace holding a Secret the Gateway references, a Role and RoleBinding granting exactly
//! those Secrets ([`secret_roles`])) and reports
//! both to the status writer ([`Provisioning`], in [`state`]: the provisioner does not depend on
//! the writer).
//!
//! Every object is server-side applied with field manager `sluice`, so a reconcile that changes
//! nothing writes nothing. Reconciles are watch-driven: they run when the translated objects
//! change (the kube source's [`Resources`]), when a provisioned Deployment, DaemonSet or Service
//! changes (a pod became available, a load balancer got an address, someone edited or deleted
//! one), and when a ConfigMap a Sluice GatewayClass names changes. A slow `resync` reconciles
//! anyway, for whatever no watch covers (the ServiceAccount, PodDisruptionBudget and
//! ClusterRoleBinding).

pub mod edge_params;
pub mod gateway_params;
pub mod log_params;
pub mod manifests;
pub mod mirror_params;
pub mod params;
pub mod probe;
pub mod secret_roles;
mod state;
mod triggers;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use gateway_api::apis::experimental::gatewayclasses::GatewayClass;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use self::manifests::{
    DataPlaneObjects, Workload, GATEWAY_LABEL, GATEWAY_NAMESPACE_LABEL, MANAGED_BY,
};
use self::params::{DataPlaneParams, ParametersRefError};
use self::probe::PodProbeConfig;
pub use self::state::{DataPlanes, GatewayKey, ProvisionedDataPlane, Provisioning};
use crate::backoff::Backoff;
use crate::publish::Store;
use crate::resources::Resources;
use crate::snapshot::Snapshot;
use crate::status::conditions::reasons::{self, INVALID_PARAMETERS};
use crate::status::conditions::types;
use crate::translate::secret_refs;
use crate::{CONTROLLER_NAME, FIELD_MANAGER};

/// How long a wake-up waits for more changes before reconciling.
const DEBOUNCE: Duration = Duration::from_millis(20);
/// The first wait before a reconcile with a failed request is tried again; it doubles up to 30 s.
const RETRY: Duration = Duration::from_secs(1);

/// Settings of the [`Provisioner`] from the controller's command line.
#[derive(Debug, Clone)]
pub struct ProvisionerConfig {
    /// The image data planes run unless the class parameters name another.
    pub image: String,
    /// The safety-net reconcile period; changes are noticed by watches long before.
    pub resync: Duration,
    /// Bounds for asking unready data-plane pods which ports they could not bind.
    pub probe: PodProbeConfig,
}

/// Why a reconcile of the data-plane objects failed; it is retried on the next wake-up.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// An API call failed.
    #[error("{action} {kind} {name}")]
    Api {
        /// What was attempted: `applying`, `deleting`, `listing` or `reading`.
        action: &'static str,
        /// The object's kind.
        kind: String,
        /// The object's name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

/// A GatewayClass's parameters as this reconcile found them.
enum ClassParams {
    Valid(Box<DataPlaneParams>),
    /// Unusable: the class is not accepted, and the message says why.
    Invalid(String),
    /// Not readable right now (API error): keep what the previous reconcile decided.
    Unknown,
}

enum ClassParamsError {
    Invalid(ParametersRefError),
    Unreadable(ProvisionError),
}

// === impl Provisioner ===

/// Creates, updates and deletes each Gateway's data plane (Deployment or DaemonSet, Service, ...)
/// while leading.
pub struct Provisioner {
    client: Client,
    config: ProvisionerConfig,
    leader: watch::Receiver<bool>,
    resources: watch::Receiver<Option<Arc<Resources>>>,
    store: Arc<Store>,
    provisioning: watch::Sender<Arc<Provisioning>>,
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
            provisioning: watch::channel(Arc::new(Provisioning::default())).0,
            recorder: Recorder::new(client_for_events, "sluice-controller".into()),
        }
    }

    /// What the status writer overlays on GatewayClass and Gateway statuses.
    pub fn provisioning(&self) -> watch::Receiver<Arc<Provisioning>> {
        self.provisioning.subscribe()
    }

    /// Runs the provisioner on the runtime until the resources or leader channel closes.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run())
    }

    async fn run(mut self) {
        let changed = Arc::new(Notify::new());
        // Dropped (and so aborted) when the provisioner stops.
        let mut watchers = JoinSet::new();
        triggers::watch_owned::<Deployment>(&mut watchers, &self.client, &changed);
        triggers::watch_owned::<DaemonSet>(&mut watchers, &self.client, &changed);
        triggers::watch_owned::<Service>(&mut watchers, &self.client, &changed);
        triggers::watch_parameters(
            &mut watchers,
            &self.client,
            self.resources.clone(),
            &changed,
        );
        // A reconcile with a failed request is retried on its own pace.
        let mut backoff = Backoff::new(RETRY);
        loop {
            let resources = self.resources.borrow_and_update().clone();
            let leading = *self.leader.borrow_and_update();
            let mut retry_in = None;
            if let (true, Some(resources)) = (leading, resources) {
                let previous = self.provisioning.borrow().clone();
                let next = self.reconcile(&resources, &previous).await;
                if next.incomplete {
                    let wait = backoff.next();
                    tracing::debug!(retry_in = ?wait, "provisioning incomplete, retrying");
                    retry_in = Some(wait);
                } else {
                    backoff.reset();
                }
                self.publish(&resources, &previous, next).await;
            }
            // Bind failures show in no watched object: ask the pods again while any is short.
            loop {
                let short = self
                    .provisioning
                    .borrow()
                    .data_planes
                    .values()
                    .any(|p| p.short_of_pods);
                tokio::select! {
                    r = self.resources.changed() => if r.is_err() { return },
                    r = self.leader.changed() => if r.is_err() { return },
                    _ = changed.notified() => {}
                    _ = tokio::time::sleep(retry_in.unwrap_or_default()), if retry_in.is_some() => {}
                    _ = tokio::time::sleep(self.config.resync) => {}
                    _ = tokio::time::sleep(self.config.probe.interval), if short => {
                        let resources = self.resources.borrow().clone();
                        let leading = *self.leader.borrow();
                        if let (true, Some(resources)) = (leading, resources) {
                            let previous = self.provisioning.borrow().clone();
                            let next = self.reprobe(&previous).await;
                            self.publish(&resources, &previous, next).await;
                        }
                        continue;
                    }
                }
                break;
            }
            // One reconcile for a burst (the objects one reconcile applies, a rollout's updates).
            tokio::time::sleep(DEBOUNCE).await;
        }
    }

    /// `previous` with the pods of every data plane short of pods asked again; nothing else is
    /// reconciled.
    async fn reprobe(&self, previous: &Provisioning) -> Provisioning {
        let mut next = previous.clone();
        for (key, plane) in &mut next.data_planes {
            if plane.short_of_pods {
                plane.unbound_ports = self.unbound_ports(&key.namespace, &key.name).await;
            }
        }
        next
    }

    /// Records the Events of what changed and hands `next` to the status writer if it differs.
    async fn publish(&self, resources: &Resources, previous: &Provisioning, next: Provisioning) {
        self.record_transitions(resources, previous, &next).await;
        self.provisioning.send_if_modified(|current| {
            let changed = **current != next;
            if changed {
                *current = Arc::new(next);
            }
            changed
        });
    }

    async fn unbound_ports(&self, ns: &str, name: &str) -> BTreeMap<u16, String> {
        let selector = manifests::pod_selector(name);
        probe::unbound_ports(&self.client, ns, &selector, &self.config.probe).await
    }

    /// Validates the parameters of every Sluice GatewayClass and provisions every accepted Gateway
    /// of a class whose parameters are valid. `previous` stands in for what could not be read.
    pub async fn reconcile(&self, resources: &Resources, previous: &Provisioning) -> Provisioning {
        let snapshot = self.store.load();
        let statuses = snapshot.statuses.clone();
        let mut out = Provisioning {
            reconciled: true,
            ..Provisioning::default()
        };
        let classes = self.classes(resources).await;
        for (class, verdict) in &classes {
            match verdict {
                ClassParams::Invalid(message) => {
                    out.invalid_classes
                        .insert((*class).to_string(), message.clone());
                }
                ClassParams::Unknown => {
                    out.incomplete = true;
                    if let Some(message) = previous.invalid_classes.get(*class) {
                        out.invalid_classes
                            .insert((*class).to_string(), message.clone());
                    }
                }
                ClassParams::Valid(_) => {}
            }
        }
        let mut bindings = BTreeSet::new();
        // Secret Roles to keep: `(namespace, name)` of those reconciled now, and by name those of
        // Gateways left as they were (their data plane keeps its access until the Gateway goes).
        let mut secret_roles = SecretRolesToKeep::default();
        for gateway in &resources.gateways {
            let class = gateway.spec.gateway_class_name.as_str();
            let Some(verdict) = classes.get(class) else {
                continue;
            };
            let key = GatewayKey::of(gateway);
            let GatewayKey {
                namespace: ns,
                name,
            } = &key;
            // Its data plane, if it has one, keeps its permissions until the Gateway is gone.
            bindings.insert(manifests::binding_name(gateway));
            secret_roles
                .untouched
                .insert(manifests::binding_name(gateway));
            let params = match verdict {
                ClassParams::Valid(params) => params,
                // A bad parameter change leaves an existing data plane as it is: a typo in the
                // ConfigMap must not take traffic down.
                ClassParams::Invalid(message) => {
                    out.rejected_gateways
                        .insert(key, format!("GatewayClass {class}: {message}"));
                    continue;
                }
                ClassParams::Unknown => {
                    out.carry_gateway(previous, &key);
                    continue;
                }
            };
            let accepted = statuses.gateway(ns, name).is_some_and(|s| {
                s.conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == types::ACCEPTED && c.status == "True")
            });
            if !accepted {
                continue;
            }
            let set_ports = listener_set_ports(&snapshot, &key);
            // The Gateway's own parametersRef over its class's (translate has already refused a
            // reference that is not a usable ConfigMap; only rules across keys remain).
            let params =
                match gateway_params::gateway_params(gateway, params, &resources.config_maps) {
                    Ok(params) => params,
                    Err(e) => {
                        out.rejected_gateways.insert(key, params::error_chain(&e));
                        continue;
                    }
                };
            let objects = manifests::build(gateway, &set_ports, &params, &self.config.image);
            let secrets = secret_refs::gateway_secrets(
                resources,
                gateway,
                Some(&attached_listener_sets(&snapshot, &key)),
            );
            let access = secret_roles::build(gateway, &secrets);
            secret_roles
                .untouched
                .remove(&manifests::binding_name(gateway));
            secret_roles.wanted.extend(
                access
                    .iter()
                    .map(|a| (a.role.namespace(), a.role.name_any())),
            );
            // Before the pods exist, so their first watch of a Secret is already allowed.
            let applied = match self.apply_secret_access(&access).await {
                Ok(()) => self.apply_all(&objects, ns).await,
                Err(e) => Err(e),
            };
            let plane = match applied {
                Ok(mut plane) => {
                    if plane.short_of_pods {
                        plane.unbound_ports = self.unbound_ports(ns, name).await;
                    }
                    plane
                }
                Err(e) => {
                    out.incomplete = true;
                    tracing::warn!("provisioning {key}: {e}");
                    ProvisionedDataPlane::pending(format!(
                        "the data plane could not be provisioned: {}",
                        params::error_chain(&e)
                    ))
                }
            };
            out.data_planes.insert(key, plane);
        }
        if let Err(e) = self.delete_stale_bindings(&bindings).await {
            out.incomplete = true;
            tracing::warn!("cleaning up data-plane ClusterRoleBindings: {e}");
        }
        if let Err(e) = self.delete_stale_secret_roles(&secret_roles).await {
            out.incomplete = true;
            tracing::warn!("cleaning up data-plane Secret Roles: {e}");
        }
        out
    }

    /// One Event on the Gateway each time its data plane changes state (provisioned, available,
    /// failing, rejected), so `kubectl describe gateway` tells the story without repeating it
    /// every resync.
    async fn record_transitions(
        &self,
        resources: &Resources,
        old: &Provisioning,
        new: &Provisioning,
    ) {
        for gateway in &resources.gateways {
            let key = GatewayKey::of(gateway);
            let Some((ok, reason, note)) = new.gateway_state(&key) else {
                continue;
            };
            let before = old.gateway_state(&key).map(|(ok, reason, _)| (ok, reason));
            if before == Some((ok, reason)) {
                continue;
            }
            let warning = matches!(
                reason,
                reasons::INVALID | INVALID_PARAMETERS | reasons::PORT_UNAVAILABLE
            );
            let event = Event {
                type_: if warning {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: reason.to_string(),
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

    /// Every Sluice GatewayClass by name, with its parameters read and checked once.
    async fn classes<'a>(&self, resources: &'a Resources) -> BTreeMap<&'a str, ClassParams> {
        let mut out = BTreeMap::new();
        for class in &resources.gateway_classes {
            if class.spec.controller_name != CONTROLLER_NAME {
                continue;
            }
            let Some(name) = class.metadata.name.as_deref() else {
                continue;
            };
            let verdict = match self.class_params(class).await {
                Ok(params) => ClassParams::Valid(Box::new(params)),
                Err(ClassParamsError::Invalid(e)) => ClassParams::Invalid(params::error_chain(&e)),
                Err(ClassParamsError::Unreadable(e)) => {
                    tracing::warn!("GatewayClass {name}: {}", params::error_chain(&e));
                    ClassParams::Unknown
                }
            };
            out.insert(name, verdict);
        }
        out
    }

    /// The class's `parametersRef` ConfigMap, decoded (the defaults without one).
    async fn class_params(
        &self,
        class: &GatewayClass,
    ) -> Result<DataPlaneParams, ClassParamsError> {
        let Some(pref) = class.spec.parameters_ref.as_ref() else {
            return Ok(DataPlaneParams::default());
        };
        if !pref.group.is_empty() || pref.kind != "ConfigMap" {
            return Err(ClassParamsError::Invalid(
                ParametersRefError::NotAConfigMap {
                    group: pref.group.clone(),
                    kind: pref.kind.clone(),
                },
            ));
        }
        let Some(ns) = pref.namespace.as_deref() else {
            return Err(ClassParamsError::Invalid(ParametersRefError::NoNamespace(
                pref.name.clone(),
            )));
        };
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), ns);
        let found = api.get_opt(&pref.name).await.map_err(|source| {
            ClassParamsError::Unreadable(api_error("reading", "ConfigMap", &pref.name, source))
        })?;
        let Some(cm) = found else {
            return Err(ClassParamsError::Invalid(ParametersRefError::NotFound {
                namespace: ns.to_string(),
                name: pref.name.clone(),
            }));
        };
        DataPlaneParams::from_config_map(&cm).map_err(|source| {
            ClassParamsError::Invalid(ParametersRefError::Invalid {
                namespace: ns.to_string(),
                name: pref.name.clone(),
                source,
            })
        })
    }

    async fn apply_all(
        &self,
        objects: &DataPlaneObjects,
        ns: &str,
    ) -> Result<ProvisionedDataPlane, ProvisionError> {
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
        // `(available pods, wanted pods)`.
        let (available, wanted) = match &objects.workload {
            Workload::Deployment(d) => {
                delete_if_present(&daemon_sets, &d.name_any()).await?;
                let d = apply(deployments, d).await?;
                let wanted = d.spec.and_then(|s| s.replicas).unwrap_or(1);
                let available = d.status.and_then(|s| s.available_replicas);
                (available.unwrap_or(0), wanted)
            }
            Workload::DaemonSet(ds) => {
                delete_if_present(&deployments, &ds.name_any()).await?;
                let ds = apply(daemon_sets, ds).await?;
                let status = ds.status.unwrap_or_default();
                (
                    status.number_available.unwrap_or(0),
                    status.desired_number_scheduled,
                )
            }
        };
        let short_of_pods = available < wanted;
        let available = available > 0;
        let addresses = service_addresses(&service);
        let name = service.name_any();
        let (programmed, reason, message) = if !available {
            let waiting = format!("waiting for an available data-plane pod of {name}");
            (false, reasons::PENDING, waiting)
        } else if addresses.is_empty() {
            let waiting = format!("waiting for Service {name} to get an address");
            (false, reasons::ADDRESS_NOT_ASSIGNED, waiting)
        } else {
            (true, reasons::PROGRAMMED, String::new())
        };
        Ok(ProvisionedDataPlane {
            programmed,
            reason,
            message,
            addresses,
            short_of_pods,
            unbound_ports: BTreeMap::new(),
        })
    }

    /// Each namespace's Role and RoleBinding granting the data plane its Secrets by name.
    async fn apply_secret_access(
        &self,
        access: &[secret_roles::SecretAccess],
    ) -> Result<(), ProvisionError> {
        for a in access {
            let ns = a.role.namespace().unwrap_or_default();
            apply(Api::<Role>::namespaced(self.client.clone(), &ns), &a.role).await?;
            apply(
                Api::<RoleBinding>::namespaced(self.client.clone(), &ns),
                &a.role_binding,
            )
            .await?;
        }
        Ok(())
    }

    /// Deletes the Secret Roles and RoleBindings of Gateways that are gone, and those of a
    /// namespace whose Secrets a Gateway no longer references. Only those in the Gateway's own
    /// namespace are owned by it; the API server's garbage collector does not reach the others.
    async fn delete_stale_secret_roles(
        &self,
        keep: &SecretRolesToKeep,
    ) -> Result<(), ProvisionError> {
        let selector = format!("{MANAGED_BY}=sluice");
        let roles: Api<Role> = Api::all(self.client.clone());
        let list = roles
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|source| api_error("listing", "Role", "", source))?;
        for role in list {
            let is_dataplane = role.labels().contains_key(GATEWAY_LABEL)
                && role.labels().contains_key(GATEWAY_NAMESPACE_LABEL);
            let (ns, name) = (role.namespace().unwrap_or_default(), role.name_any());
            if is_dataplane && !keep.keeps(&ns, &name) {
                let api = Api::<RoleBinding>::namespaced(self.client.clone(), &ns);
                delete_if_present(&api, &name).await?;
                let api = Api::<Role>::namespaced(self.client.clone(), &ns);
                delete_if_present(&api, &name).await?;
            }
        }
        Ok(())
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

/// Which data-plane Secret Roles one reconcile keeps.
#[derive(Debug, Default)]
struct SecretRolesToKeep {
    /// `(namespace, name)` of the Roles the reconciled Gateways need.
    wanted: BTreeSet<(Option<String>, String)>,
    /// Role names of the Gateways this reconcile left as they were, in any namespace.
    untouched: BTreeSet<String>,
}

impl SecretRolesToKeep {
    fn keeps(&self, namespace: &str, name: &str) -> bool {
        self.untouched.contains(name)
            || self
                .wanted
                .contains(&(Some(namespace.to_string()), name.to_string()))
    }
}

/// `namespace/name` of the ListenerSets whose listeners translation admitted to the Gateway `key`.
fn attached_listener_sets(snapshot: &Snapshot, key: &GatewayKey) -> BTreeSet<String> {
    let label = format!("{}/{}", key.namespace, key.name);
    snapshot
        .binds
        .iter()
        .flat_map(|b| &b.listeners)
        .filter(|l| l.gateway == label)
        .filter_map(|l| l.listener_set.clone())
        .collect()
}

/// The ports translation binds for ListenerSet listeners of the Gateway `key`: only the
/// controller's translation knows which ListenerSets the Gateway admits and which listeners won.
fn listener_set_ports(snapshot: &Snapshot, key: &GatewayKey) -> Vec<u16> {
    let label = format!("{}/{}", key.namespace, key.name);
    snapshot
        .binds
        .iter()
        .filter(|b| {
            b.listeners
                .iter()
                .any(|l| l.gateway == label && l.listener_set.is_some())
        })
        .map(|b| b.address.port())
        .collect()
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

/// `(type, value)` pairs for the Gateway status: the external IPs (the Gateway's static
/// addresses) and load-balancer ingress, else the cluster IP.
fn service_addresses(service: &Service) -> Vec<(String, String)> {
    let spec = service.spec.as_ref();
    let external = spec
        .and_then(|s| s.external_ips.as_ref())
        .into_iter()
        .flatten()
        .map(|ip| ("IPAddress".to_string(), ip.clone()));
    let ingress = service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref());
    let mut out: Vec<(String, String)> = external
        .chain(
            ingress
                .into_iter()
                .flatten()
                .filter_map(|i| match (&i.ip, &i.hostname) {
                    (Some(ip), _) => Some(("IPAddress".to_string(), ip.clone())),
                    (None, Some(h)) => Some(("Hostname".to_string(), h.clone())),
                    (None, None) => None,
                }),
        )
        .collect();
    out.dedup();
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
