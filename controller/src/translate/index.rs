//! Lookups over the loaded resources, built once per translation.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;

use crate::resources::{Resources, NAMESPACE_NAME_LABEL};

/// The label an EndpointSlice carries to name its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

pub(super) fn namespace_of(meta: &ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or("default")
}

/// Policies' precedence (GEP-713): oldest first, by creation time, then namespace/name.
pub(super) fn creation_order(
    meta: &ObjectMeta,
) -> (Option<k8s_openapi::jiff::Timestamp>, String, String) {
    (
        meta.creation_timestamp.as_ref().map(|t| t.0),
        namespace_of(meta).to_string(),
        meta.name.clone().unwrap_or_default(),
    )
}

fn key(meta: &ObjectMeta) -> (&str, &str) {
    (namespace_of(meta), meta.name.as_deref().unwrap_or(""))
}

pub(super) struct Index<'a> {
    pub resources: &'a Resources,
    services: BTreeMap<(&'a str, &'a str), &'a Service>,
    slices: BTreeMap<(&'a str, &'a str), Vec<&'a EndpointSlice>>,
    secrets: BTreeMap<(&'a str, &'a str), &'a Secret>,
    config_maps: BTreeMap<(&'a str, &'a str), &'a ConfigMap>,
    namespace_labels: BTreeMap<&'a str, &'a BTreeMap<String, String>>,
}

impl<'a> Index<'a> {
    pub(super) fn new(resources: &'a Resources) -> Index<'a> {
        let mut slices: BTreeMap<_, Vec<_>> = BTreeMap::new();
        for slice in &resources.endpoint_slices {
            let service = slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL));
            if let Some(service) = service {
                slices
                    .entry((namespace_of(&slice.metadata), service.as_str()))
                    .or_default()
                    .push(slice);
            }
        }
        Index {
            resources,
            services: resources
                .services
                .iter()
                .map(|s| (key(s.meta()), s))
                .collect(),
            slices,
            secrets: resources
                .secrets
                .iter()
                .map(|s| (key(s.meta()), s))
                .collect(),
            config_maps: resources
                .config_maps
                .iter()
                .map(|c| (key(c.meta()), c))
                .collect(),
            namespace_labels: resources
                .namespaces
                .iter()
                .filter_map(|n| Some((n.metadata.name.as_deref()?, n.metadata.labels.as_ref()?)))
                .collect(),
        }
    }

    pub(super) fn service(&self, namespace: &str, name: &str) -> Option<&'a Service> {
        self.services.get(&(namespace, name)).copied()
    }

    pub(super) fn endpoint_slices(&self, namespace: &str, service: &str) -> Vec<&'a EndpointSlice> {
        self.slices
            .get(&(namespace, service))
            .cloned()
            .unwrap_or_default()
    }

    pub(super) fn secret(&self, namespace: &str, name: &str) -> Option<&'a Secret> {
        self.secrets.get(&(namespace, name)).copied()
    }

    pub(super) fn config_map(&self, namespace: &str, name: &str) -> Option<&'a ConfigMap> {
        self.config_maps.get(&(namespace, name)).copied()
    }

    /// A namespace without a Namespace object still exists for selectors, with the label the API
    /// server would give it.
    pub(super) fn namespace_labels(&self, namespace: &str) -> BTreeMap<String, String> {
        match self.namespace_labels.get(namespace) {
            Some(labels) => (*labels).clone(),
            None => BTreeMap::from([(NAMESPACE_NAME_LABEL.to_string(), namespace.to_string())]),
        }
    }
}
