//! What wakes the provisioner besides new Resources: its own objects and its classes' and
//! Gateways' parameter ConfigMaps.

use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::core::PartialObjectMeta;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use super::manifests::MANAGED_BY;
use crate::resources::Resources;
use crate::CONTROLLER_NAME;

/// Wakes the provisioner on every change of the objects of kind `K` it provisioned (labelled
/// managed-by Sluice), in any namespace, and after every (re)list.
pub(super) fn watch_owned<K>(watchers: &mut JoinSet<()>, client: &Client, changed: &Arc<Notify>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let api: Api<K> = Api::all(client.clone());
    let config = watcher::Config::default().labels(&format!("{MANAGED_BY}=sluice"));
    let stream = watcher(api, config).default_backoff();
    let changed = changed.clone();
    watchers.spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone) => {
                    changed.notify_one();
                }
                Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
                Err(e) => tracing::warn!(kind = %K::kind(&()), "provisioner watch failed, backing off: {e}"),
            }
        }
    });
}

/// Wakes the provisioner when a ConfigMap named by a Sluice GatewayClass's `parametersRef`
/// changes, appears or goes, so fixing a bad parameter takes effect at once. Only metadata is
/// watched: the provisioner reads the one it needs when it reconciles.
pub(super) fn watch_parameters(
    watchers: &mut JoinSet<()>,
    client: &Client,
    resources: watch::Receiver<Option<Arc<Resources>>>,
    changed: &Arc<Notify>,
) {
    let api: Api<PartialObjectMeta<ConfigMap>> = Api::all(client.clone());
    let stream = watcher(api, watcher::Config::default()).default_backoff();
    let changed = changed.clone();
    watchers.spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            let config_map = match event {
                Ok(watcher::Event::Apply(cm) | watcher::Event::Delete(cm)) => cm,
                Ok(watcher::Event::InitDone) => {
                    changed.notify_one();
                    continue;
                }
                Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => continue,
                Err(e) => {
                    tracing::warn!("provisioner watch of ConfigMaps failed, backing off: {e}");
                    continue;
                }
            };
            let ns = config_map.namespace().unwrap_or_default();
            let name = config_map.name_any();
            let named = resources
                .borrow()
                .as_ref()
                .is_some_and(|r| names_parameters(r, &ns, &name));
            if named {
                changed.notify_one();
            }
        }
    });
}

/// Whether a Sluice GatewayClass's `parametersRef`, or a Gateway's `infrastructure.parametersRef`
/// (a ConfigMap of its own namespace), names the ConfigMap `ns/name`.
fn names_parameters(resources: &Resources, ns: &str, name: &str) -> bool {
    let by_class = resources
        .gateway_classes
        .iter()
        .filter(|c| c.spec.controller_name == CONTROLLER_NAME)
        .filter_map(|c| c.spec.parameters_ref.as_ref())
        .any(|p| p.kind == "ConfigMap" && p.name == name && p.namespace.as_deref() == Some(ns));
    let by_gateway = resources.gateways.iter().any(|g| {
        g.metadata.namespace.as_deref() == Some(ns)
            && g.spec
                .infrastructure
                .as_ref()
                .and_then(|i| i.parameters_ref.as_ref())
                .is_some_and(|p| p.kind == "ConfigMap" && p.name == name)
    });
    by_class || by_gateway
}
