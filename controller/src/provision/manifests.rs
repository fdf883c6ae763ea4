//! The objects that make up one Gateway's data plane, built purely from the Gateway and its params.

use std::collections::BTreeMap;

use gateway_api::apis::experimental::gateways::Gateway;
use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec, Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, HTTPGetAction,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile, SecurityContext, Service,
    ServiceAccount, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};

use super::params::{DataPlaneParams, WorkloadKind};

/// Every provisioned object carries this label (value `sluice`), so leftovers can be found.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Label on every provisioned object: the owning Gateway's name (shortened past 63 characters).
pub const GATEWAY_LABEL: &str = "sluice.dev/gateway";
/// Label on every provisioned object and pod, as the Gateway API asks of generated resources
/// (GEP-1867): the owning Gateway's name (shortened past 63 characters). Not in any selector, so
/// data planes provisioned before it existed keep their immutable workload selectors.
pub const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";
/// Label on every provisioned object: the owning Gateway's namespace.
pub const GATEWAY_NAMESPACE_LABEL: &str = "sluice.dev/gateway-namespace";
/// The read-only ClusterRole every data plane is bound to (deploy/base/rbac-dataplane.yaml).
pub const DATAPLANE_CLUSTER_ROLE: &str = "sluice-dataplane";
/// The data plane's admin port (metrics, health), named `admin` in the pod and scraped by
/// Prometheus.
pub const ADMIN_PORT: u16 = 9901;
const RUN_AS: i64 = 65532;
/// The data plane's one writable directory (an in-memory emptyDir; the root is read-only).
const RUN_DIR: &str = "/var/run/sluice";
const RUN_VOLUME: &str = "run";

/// Everything one Gateway's data plane consists of.
#[derive(Debug, Clone)]
pub struct DataPlaneObjects {
    /// The identity the data-plane pods run as.
    pub service_account: ServiceAccount,
    /// Binds the service account to [`DATAPLANE_CLUSTER_ROLE`].
    pub cluster_role_binding: ClusterRoleBinding,
    /// The pods running `sluice proxy` for the Gateway.
    pub workload: Workload,
    /// Exposes the Gateway's listener ports; its address is the Gateway's.
    pub service: Service,
    /// Keeps at least one data-plane pod through voluntary disruptions.
    pub pod_disruption_budget: PodDisruptionBudget,
}

/// The data-plane workload, as the class parameters' `kind` chose.
#[derive(Debug, Clone)]
pub enum Workload {
    /// The default: `replicas` pods.
    Deployment(Deployment),
    /// One pod per node.
    DaemonSet(DaemonSet),
}

/// A Service name is a DNS-1035 label, and so is every label value: at most 63 characters.
const MAX_LABEL: usize = 63;
/// Most object names (ClusterRoleBindings included) are DNS-1123 subdomains: 253 characters.
const MAX_NAME: usize = 253;
/// Hex digits of the hash that keeps a shortened name unique (40 bits).
const HASH_DIGITS: usize = 10;

/// `sluice-<gateway>`: the name of every namespaced object of the Gateway's data plane. A Gateway
/// name may be 253 characters and contain dots; a Service name may not, so a name that is not a
/// valid DNS-1035 label is [`shortened`].
pub fn object_name(gateway: &Gateway) -> String {
    let name = format!("sluice-{}", gateway.name_any());
    let label_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if name.len() <= MAX_LABEL && label_chars {
        name
    } else {
        shortened(&name.replace('.', "-"), &name, MAX_LABEL)
    }
}

/// Cluster-scoped, so it also names the namespace. Namespaces have no dots, so the first dot
/// separates the two and no two Gateways share a binding.
pub fn binding_name(gateway: &Gateway) -> String {
    let name = format!(
        "sluice-dataplane-{}.{}",
        gateway.namespace().unwrap_or_default(),
        gateway.name_any()
    );
    if name.len() <= MAX_NAME {
        name
    } else {
        shortened(&name, &name, MAX_NAME)
    }
}

/// The Gateway's name as a label value (at most 63 characters, [`shortened`] beyond).
fn gateway_label(name: &str) -> String {
    if name.len() <= MAX_LABEL {
        name.to_string()
    } else {
        shortened(name, name, MAX_LABEL)
    }
}

/// `text` cut to leave room for `-` and a hash of `full` within `max` characters: deterministic,
/// so every reconcile finds the same objects, and distinct for distinct Gateways.
fn shortened(text: &str, full: &str, max: usize) -> String {
    let keep = max - HASH_DIGITS - 1;
    // Names and label values must end with an alphanumeric character before the hash's `-`.
    let head = text
        .get(..keep.min(text.len()))
        .unwrap_or(text)
        .trim_end_matches(['-', '.']);
    let hash = format!("{:016x}", fnv1a(full.as_bytes()));
    format!("{head}-{}", &hash[..HASH_DIGITS])
}

/// 64-bit FNV-1a: tiny and stable across Rust releases (unlike `DefaultHasher`), which matters
/// because the names it builds must not change between controller versions.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn selector_labels(gateway: &Gateway) -> BTreeMap<String, String> {
    selector_labels_of(&gateway.name_any())
}

fn selector_labels_of(gateway_name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "sluice".to_string()),
        (
            "app.kubernetes.io/component".to_string(),
            "dataplane".to_string(),
        ),
        (GATEWAY_LABEL.to_string(), gateway_label(gateway_name)),
    ])
}

/// The label selector of the data-plane pods of the Gateway `gateway_name` (in its namespace).
pub fn pod_selector(gateway_name: &str) -> String {
    let labels: Vec<String> = selector_labels_of(gateway_name)
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    labels.join(",")
}

/// The Gateway's `spec.infrastructure.labels`, for every object and pod it gets.
fn infrastructure_labels(gateway: &Gateway) -> BTreeMap<String, String> {
    gateway
        .spec
        .infrastructure
        .as_ref()
        .and_then(|i| i.labels.clone())
        .unwrap_or_default()
}

/// Gateway `spec.infrastructure` labels first, so ours win on a clash (selectors depend on them).
pub(super) fn labels(gateway: &Gateway) -> BTreeMap<String, String> {
    let mut labels = infrastructure_labels(gateway);
    labels.extend(selector_labels(gateway));
    labels.insert(MANAGED_BY.into(), "sluice".into());
    labels.insert(
        GATEWAY_NAME_LABEL.into(),
        gateway_label(&gateway.name_any()),
    );
    labels.insert(
        GATEWAY_NAMESPACE_LABEL.into(),
        gateway.namespace().unwrap_or_default(),
    );
    labels
}

fn annotations(gateway: &Gateway) -> Option<BTreeMap<String, String>> {
    gateway
        .spec
        .infrastructure
        .as_ref()
        .and_then(|i| i.annotations.clone())
        .filter(|a| !a.is_empty())
}

fn meta(gateway: &Gateway, name: String, namespaced: bool) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: if namespaced {
            gateway.namespace()
        } else {
            None
        },
        labels: Some(labels(gateway)),
        annotations: annotations(gateway),
        // Cluster-scoped objects cannot be owned by a namespaced Gateway; the provisioner
        // deletes those itself.
        owner_references: if namespaced {
            owner(gateway).map(|o| vec![o])
        } else {
            None
        },
        ..ObjectMeta::default()
    }
}

pub(super) fn owner(gateway: &Gateway) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: Gateway::api_version(&()).into_owned(),
        kind: Gateway::kind(&()).into_owned(),
        name: gateway.name_any(),
        uid: gateway.uid()?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// The distinct listener ports, the Gateway's own and `listener_set_ports`, sorted.
fn listener_ports(gateway: &Gateway, listener_set_ports: &[u16]) -> Vec<u16> {
    let mut ports: Vec<u16> = gateway
        .spec
        .listeners
        .iter()
        .filter_map(|l| u16::try_from(l.port).ok())
        .chain(listener_set_ports.iter().copied())
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// The `IPAddress` values of the Gateway's `spec.addresses`.
fn static_addresses(gateway: &Gateway) -> Vec<String> {
    gateway
        .spec
        .addresses
        .iter()
        .flatten()
        .filter(|a| a.r#type.as_deref().unwrap_or("IPAddress") == "IPAddress")
        .filter_map(|a| a.value.clone())
        .filter(|v| v.parse::<std::net::IpAddr>().is_ok())
        .collect()
}

/// Every object of `gateway`'s data plane under `params`; `default_image` unless the params name
/// one. `listener_set_ports` are the ports of the ListenerSet listeners the Gateway serves, which
/// its Service and pods expose as they do its own listeners' ports.
pub fn build(
    gateway: &Gateway,
    listener_set_ports: &[u16],
    params: &DataPlaneParams,
    default_image: &str,
) -> DataPlaneObjects {
    let name = object_name(gateway);
    let namespace = gateway.namespace().unwrap_or_default();
    let service_account = ServiceAccount {
        metadata: meta(gateway, name.clone(), true),
        automount_service_account_token: Some(true),
        ..ServiceAccount::default()
    };
    let cluster_role_binding = ClusterRoleBinding {
        metadata: meta(gateway, binding_name(gateway), false),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: DATAPLANE_CLUSTER_ROLE.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: name.clone(),
            namespace: Some(namespace.clone()),
            ..Subject::default()
        }]),
    };
    let template = pod_template(
        gateway,
        listener_set_ports,
        params,
        default_image,
        &name,
        &namespace,
    );
    let selector = LabelSelector {
        match_labels: Some(selector_labels(gateway)),
        ..LabelSelector::default()
    };
    let workload = match params.kind {
        WorkloadKind::Deployment => Workload::Deployment(Deployment {
            metadata: meta(gateway, name.clone(), true),
            spec: Some(DeploymentSpec {
                replicas: Some(params.replicas),
                selector: selector.clone(),
                template,
                ..DeploymentSpec::default()
            }),
            ..Deployment::default()
        }),
        WorkloadKind::DaemonSet => Workload::DaemonSet(DaemonSet {
            metadata: meta(gateway, name.clone(), true),
            spec: Some(DaemonSetSpec {
                selector: selector.clone(),
                template,
                ..DaemonSetSpec::default()
            }),
            ..DaemonSet::default()
        }),
    };
    let service = Service {
        metadata: meta(gateway, name.clone(), true),
        spec: Some(ServiceSpec {
            type_: Some(params.service_type.clone()),
            // The Gateway's static addresses: the data plane listens on all its pod's addresses
            // and the Service takes traffic for these (translate has already rejected any
            // address that is not an IP).
            external_ips: Some(static_addresses(gateway)).filter(|ips| !ips.is_empty()),
            selector: Some(selector_labels(gateway)),
            ports: Some(
                listener_ports(gateway, listener_set_ports)
                    .into_iter()
                    .map(|p| ServicePort {
                        name: Some(format!("p-{p}")),
                        port: i32::from(p),
                        target_port: Some(IntOrString::Int(i32::from(p))),
                        protocol: Some("TCP".into()),
                        ..ServicePort::default()
                    })
                    .collect(),
            ),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    let pod_disruption_budget = PodDisruptionBudget {
        metadata: meta(gateway, name, true),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(selector),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    };
    DataPlaneObjects {
        service_account,
        cluster_role_binding,
        workload,
        service,
        pod_disruption_budget,
    }
}

fn pod_template(
    gateway: &Gateway,
    listener_set_ports: &[u16],
    params: &DataPlaneParams,
    default_image: &str,
    name: &str,
    namespace: &str,
) -> PodTemplateSpec {
    let ports = listener_ports(gateway, listener_set_ports);
    let mut pod_labels = infrastructure_labels(gateway);
    pod_labels.extend(selector_labels(gateway));
    pod_labels.insert(
        GATEWAY_NAME_LABEL.into(),
        gateway_label(&gateway.name_any()),
    );
    let mut pod_annotations = annotations(gateway).unwrap_or_default();
    pod_annotations.insert("prometheus.io/scrape".into(), "true".into());
    pod_annotations.insert("prometheus.io/port".into(), ADMIN_PORT.to_string());
    pod_annotations.insert("prometheus.io/path".into(), "/metrics".into());
    let probe = |path: &str| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("admin".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(5),
        ..Probe::default()
    };
    // Non-root may bind ports below 1024 only with this one capability.
    let add = ports
        .iter()
        .any(|p| *p < 1024)
        .then(|| vec!["NET_BIND_SERVICE".to_string()]);
    let mut container_ports = vec![ContainerPort {
        name: Some("admin".into()),
        container_port: i32::from(ADMIN_PORT),
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    }];
    container_ports.extend(ports.iter().map(|p| ContainerPort {
        name: Some(format!("p-{p}")),
        container_port: i32::from(*p),
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    }));
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels),
            annotations: Some(pod_annotations),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            service_account_name: Some(name.into()),
            host_network: params.host_network.then_some(true),
            dns_policy: params
                .host_network
                .then(|| "ClusterFirstWithHostNet".into()),
            node_selector: params.node_selector.clone(),
            tolerations: params.tolerations.clone(),
            termination_grace_period_seconds: Some(params.edge.termination_grace_seconds()),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(RUN_AS),
                run_as_group: Some(RUN_AS),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    ..SeccompProfile::default()
                }),
                ..PodSecurityContext::default()
            }),
            containers: vec![Container {
                name: "proxy".into(),
                image: Some(params.image.clone().unwrap_or_else(|| default_image.into())),
                args: Some(
                    [
                        "proxy".into(),
                        format!("--gateway={namespace}/{}", gateway.name_any()),
                        format!("--admin-address=0.0.0.0:{ADMIN_PORT}"),
                        format!("--upstream-tls-relay-dir={RUN_DIR}/tls-relay"),
                    ]
                    .into_iter()
                    .chain(params.mirror.to_proxy_args())
                    .chain(params.edge.args())
                    .chain(params.log.args())
                    .collect(),
                ),
                ports: Some(container_ports),
                readiness_probe: Some(probe("/readyz")),
                liveness_probe: Some(probe("/healthz")),
                resources: params.resources.clone(),
                security_context: Some(SecurityContext {
                    allow_privilege_escalation: Some(false),
                    read_only_root_filesystem: Some(true),
                    capabilities: Some(Capabilities {
                        drop: Some(vec!["ALL".into()]),
                        add,
                    }),
                    ..SecurityContext::default()
                }),
                volume_mounts: Some(vec![VolumeMount {
                    name: RUN_VOLUME.into(),
                    mount_path: RUN_DIR.into(),
                    ..VolumeMount::default()
                }]),
                ..Container::default()
            }],
            // The root filesystem is read-only; the TLS backend relays' Unix sockets
            // (docs/tls.md) live here, in memory.
            volumes: Some(vec![Volume {
                name: RUN_VOLUME.into(),
                empty_dir: Some(EmptyDirVolumeSource {
                    medium: Some("Memory".into()),
                    size_limit: Some(Quantity("1Mi".into())),
                }),
                ..Volume::default()
            }]),
            ..PodSpec::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway(namespace: &str, name: &str) -> Gateway {
        let mut gw: Gateway = serde_json::from_value(serde_json::json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": name, "namespace": namespace, "uid": "u1"},
            "spec": {"gatewayClassName": "sluice",
                "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]},
        }))
        .expect("a Gateway");
        gw.metadata.name = Some(name.into());
        gw
    }

    fn container_args(objects: &DataPlaneObjects) -> Vec<String> {
        let template = match &objects.workload {
            Workload::Deployment(d) => d.spec.as_ref().map(|s| &s.template),
            Workload::DaemonSet(d) => d.spec.as_ref().map(|s| &s.template),
        };
        template
            .and_then(|t| t.spec.as_ref())
            .and_then(|s| s.containers.first())
            .and_then(|c| c.args.clone())
            .unwrap_or_default()
    }

    fn is_dns_label(s: &str) -> bool {
        s.len() <= 63
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    }

    fn is_label_value(s: &str) -> bool {
        s.len() <= 63
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    }

    #[test]
    fn static_addresses_become_the_services_external_ips() {
        let mut gw = gateway("demo", "web");
        assert_eq!(
            build(&gw, &[], &DataPlaneParams::default(), "img")
                .service
                .spec
                .and_then(|s| s.external_ips),
            None
        );
        gw.spec.addresses = serde_json::from_value(serde_json::json!([
            {"type": "IPAddress", "value": "203.0.113.7"},
            {"value": "2001:db8::7"},
        ]))
        .expect("addresses");
        let ips = build(&gw, &[], &DataPlaneParams::default(), "img")
            .service
            .spec
            .and_then(|s| s.external_ips);
        assert_eq!(
            ips,
            Some(vec!["203.0.113.7".to_string(), "2001:db8::7".to_string()])
        );
    }

    #[test]
    fn the_pod_selector_is_the_workload_selector() {
        let gw = gateway("demo", "web");
        let objects = build(&gw, &[], &DataPlaneParams::default(), "img");
        let Workload::Deployment(d) = &objects.workload else {
            panic!("a Deployment by default");
        };
        let wanted = d
            .spec
            .as_ref()
            .and_then(|s| s.selector.match_labels.clone())
            .unwrap_or_default();
        let selector = pod_selector("web");
        let parsed: BTreeMap<String, String> = selector
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(parsed, wanted);
    }

    #[test]
    fn short_gateway_names_give_readable_object_names() {
        let gw = gateway("demo", "web");
        assert_eq!(object_name(&gw), "sluice-web");
        assert_eq!(binding_name(&gw), "sluice-dataplane-demo.web");
        assert_eq!(gateway_label(&gw.name_any()), "web");
    }

    #[test]
    fn a_253_character_gateway_name_gives_valid_distinct_stable_names() {
        let long = format!("{}.{}", "a".repeat(126), "b".repeat(126));
        assert_eq!(long.len(), 253);
        let other = format!("{}.{}", "a".repeat(126), "c".repeat(126));
        let (gw, sibling) = (gateway("demo", &long), gateway("demo", &other));
        let objects = build(&gw, &[], &DataPlaneParams::default(), "img");

        let name = object_name(&gw);
        assert!(is_dns_label(&name), "{name}");
        assert_eq!(name, object_name(&gateway("demo", &long)), "deterministic");
        assert_ne!(
            name,
            object_name(&sibling),
            "same prefix, different Gateway"
        );
        assert_eq!(
            objects.service.metadata.name.as_deref(),
            Some(name.as_str())
        );

        let label = gateway_label(&gw.name_any());
        assert!(is_label_value(&label), "{label}");
        assert_ne!(label, gateway_label(&sibling.name_any()));
        for labels in [
            objects.service.metadata.labels.clone(),
            objects
                .service
                .spec
                .as_ref()
                .and_then(|s| s.selector.clone()),
        ] {
            let labels = labels.expect("labels");
            assert!(labels.values().all(|v| is_label_value(v)), "{labels:?}");
            assert_eq!(labels.get(GATEWAY_LABEL), Some(&label));
        }

        let binding = binding_name(&gw);
        assert!(binding.len() <= 253, "{}", binding.len());
        assert_ne!(binding, binding_name(&sibling));
        let args = container_args(&objects);
        assert!(
            args.contains(&format!("--gateway=demo/{long}")),
            "the full name"
        );
    }

    #[test]
    fn tls_relay_sockets_live_on_a_writable_in_memory_volume() {
        let objects = build(
            &gateway("demo", "web"),
            &[],
            &DataPlaneParams::default(),
            "img",
        );
        let Workload::Deployment(d) = &objects.workload else {
            panic!("a Deployment by default");
        };
        let pod = d
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .expect("pod spec");
        let volume = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == RUN_VOLUME)
            .expect("run volume");
        let medium = volume.empty_dir.as_ref().and_then(|e| e.medium.as_deref());
        assert_eq!(medium, Some("Memory"));
        let mounts = pod.containers[0].volume_mounts.clone().unwrap_or_default();
        assert!(mounts.iter().any(|m| m.mount_path == RUN_DIR), "{mounts:?}");
        let args = container_args(&objects);
        assert!(
            args.contains(&format!("--upstream-tls-relay-dir={RUN_DIR}/tls-relay")),
            "{args:?}"
        );
    }

    #[test]
    fn dotted_gateway_names_make_valid_service_names() {
        let name = object_name(&gateway("demo", "web.v1"));
        assert!(is_dns_label(&name), "{name}");
        assert_eq!(
            name, "sluice-web-v1-c1a84eb2b8",
            "as docs/kubernetes.md shows"
        );
        assert_ne!(name, object_name(&gateway("demo", "web-v1")));
    }

    #[test]
    fn bindings_of_look_alike_namespace_and_name_pairs_differ() {
        assert_ne!(
            binding_name(&gateway("a-b", "c")),
            binding_name(&gateway("a", "b-c"))
        );
    }
}
