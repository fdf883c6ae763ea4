//! Data-plane knobs from the GatewayClass `parametersRef` ConfigMap (documented in docs/kubernetes.md).
//!
//! Any problem with the reference or the ConfigMap makes the class `Accepted: False` with reason
//! [`INVALID_PARAMETERS`] and the error chain ([`error_chain`]) as message.
//!
//! [`INVALID_PARAMETERS`]: crate::status::conditions::reasons::INVALID_PARAMETERS

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, ResourceRequirements, Toleration};

use super::edge_params::{self, EdgeParams};
use super::mirror_params;
use crate::mirror_settings::MirrorSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadKind {
    Deployment,
    DaemonSet,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DataPlaneParams {
    pub kind: WorkloadKind,
    /// Deployments only.
    pub replicas: i32,
    pub service_type: String,
    pub resources: Option<ResourceRequirements>,
    pub node_selector: Option<BTreeMap<String, String>>,
    pub tolerations: Option<Vec<Toleration>>,
    /// DaemonSets only: listen on the node's own addresses.
    pub host_network: bool,
    /// Overrides the controller's `--dataplane-image`.
    pub image: Option<String>,
    /// `sluice proxy --mirror-*` flags (the `mirror*` keys).
    pub mirror: MirrorSettings,
    /// `sluice proxy` limit and drain flags (the edge keys, docs/hardening.md).
    pub edge: EdgeParams,
}

impl Default for DataPlaneParams {
    fn default() -> DataPlaneParams {
        DataPlaneParams {
            kind: WorkloadKind::Deployment,
            replicas: 1,
            service_type: "LoadBalancer".into(),
            resources: None,
            node_selector: None,
            tolerations: None,
            host_network: false,
            image: None,
            mirror: MirrorSettings::default(),
            edge: EdgeParams::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ParamsError {
    #[error("unknown key {0:?} (known: kind, replicas, serviceType, resources, nodeSelector, tolerations, hostNetwork, image, {mirror}, {edge})", mirror = mirror_params::KEYS.join(", "), edge = edge_params::key_names().join(", "))]
    UnknownKey(String),
    #[error("kind must be Deployment or DaemonSet, not {0:?}")]
    Kind(String),
    #[error("replicas must be a non-negative integer, not {0:?}")]
    Replicas(String),
    #[error("serviceType must be LoadBalancer, NodePort or ClusterIP, not {0:?}")]
    ServiceType(String),
    #[error("hostNetwork must be true or false, not {0:?}")]
    HostNetwork(String),
    #[error("hostNetwork is for DaemonSets only")]
    HostNetworkNeedsDaemonSet,
    #[error("{key} must be {expected}, not {value:?}")]
    Invalid {
        key: &'static str,
        expected: &'static str,
        value: String,
    },
    #[error("{key} does not decode")]
    Decode {
        key: &'static str,
        #[source]
        source: serde_yaml_ng::Error,
    },
}

/// Why a GatewayClass `parametersRef` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ParametersRefError {
    #[error(
        "parametersRef must be a core ConfigMap (group \"\", kind ConfigMap), not {group:?}/{kind}"
    )]
    NotAConfigMap { group: String, kind: String },
    #[error("parametersRef ConfigMap {0} needs a namespace")]
    NoNamespace(String),
    #[error("ConfigMap {namespace}/{name} not found")]
    NotFound { namespace: String, name: String },
    #[error("ConfigMap {namespace}/{name}")]
    Invalid {
        namespace: String,
        name: String,
        #[source]
        source: ParamsError,
    },
}

/// `error: cause: cause`, the whole chain on one line: what a condition message shows.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

impl DataPlaneParams {
    pub fn from_config_map(cm: &ConfigMap) -> Result<DataPlaneParams, ParamsError> {
        let mut p = DataPlaneParams::default();
        for (key, value) in cm.data.iter().flatten() {
            let value = value.trim();
            match key.as_str() {
                "kind" => {
                    p.kind = match value {
                        "Deployment" => WorkloadKind::Deployment,
                        "DaemonSet" => WorkloadKind::DaemonSet,
                        other => return Err(ParamsError::Kind(other.into())),
                    }
                }
                "replicas" => {
                    p.replicas = value
                        .parse()
                        .ok()
                        .filter(|r: &i32| *r >= 0)
                        .ok_or_else(|| ParamsError::Replicas(value.into()))?
                }
                "serviceType" => match value {
                    "LoadBalancer" | "NodePort" | "ClusterIP" => p.service_type = value.into(),
                    other => return Err(ParamsError::ServiceType(other.into())),
                },
                "resources" => p.resources = Some(decode("resources", value)?),
                "nodeSelector" => p.node_selector = Some(decode("nodeSelector", value)?),
                "tolerations" => p.tolerations = Some(decode("tolerations", value)?),
                "hostNetwork" => {
                    p.host_network = match value {
                        "true" => true,
                        "false" => false,
                        other => return Err(ParamsError::HostNetwork(other.into())),
                    }
                }
                "image" => p.image = Some(value.into()),
                other => {
                    if !p.mirror.set_param(other, value)? && !p.edge.set(other, value)? {
                        return Err(ParamsError::UnknownKey(other.into()));
                    }
                }
            }
        }
        if p.host_network && p.kind != WorkloadKind::DaemonSet {
            return Err(ParamsError::HostNetworkNeedsDaemonSet);
        }
        Ok(p)
    }
}

fn decode<T: serde::de::DeserializeOwned>(
    key: &'static str,
    value: &str,
) -> Result<T, ParamsError> {
    serde_yaml_ng::from_str(value).map_err(|source| ParamsError::Decode { key, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(pairs: &[(&str, &str)]) -> ConfigMap {
        ConfigMap {
            data: Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..ConfigMap::default()
        }
    }

    #[test]
    fn the_shipped_defaults_decode() {
        let text = include_str!("../../../deploy/base/dataplane-defaults.yaml");
        let config_map: ConfigMap = serde_yaml_ng::from_str(text).expect("a ConfigMap");
        let p = DataPlaneParams::from_config_map(&config_map).expect("valid parameters");
        assert_eq!(
            (p.kind, p.replicas, p.service_type.as_str()),
            (WorkloadKind::Deployment, 2, "LoadBalancer")
        );
        assert!(p.resources.is_some());
    }

    #[test]
    fn a_daemonset_may_use_the_host_network() {
        let p = DataPlaneParams::from_config_map(&cm(&[
            ("kind", "DaemonSet"),
            ("hostNetwork", "true"),
        ]))
        .expect("valid");
        assert!(p.host_network);
        let err = DataPlaneParams::from_config_map(&cm(&[("hostNetwork", "true")]))
            .expect_err("Deployment");
        assert!(matches!(err, ParamsError::HostNetworkNeedsDaemonSet));
    }

    #[test]
    fn the_condition_message_carries_the_whole_error_chain() {
        let source = DataPlaneParams::from_config_map(&cm(&[("tolerations", "{not: a list}")]))
            .expect_err("not a list");
        let error = ParametersRefError::Invalid {
            namespace: "sluice-system".into(),
            name: "knobs".into(),
            source,
        };
        let message = error_chain(&error);
        assert!(
            message.starts_with("ConfigMap sluice-system/knobs: tolerations does not decode: "),
            "{message}"
        );
    }

    #[test]
    fn typos_and_bad_values_are_errors() {
        assert!(matches!(
            DataPlaneParams::from_config_map(&cm(&[("replica", "2")])),
            Err(ParamsError::UnknownKey(_))
        ));
        assert!(matches!(
            DataPlaneParams::from_config_map(&cm(&[("replicas", "-1")])),
            Err(ParamsError::Replicas(_))
        ));
        assert!(matches!(
            DataPlaneParams::from_config_map(&cm(&[("tolerations", "{not: a list}")])),
            Err(ParamsError::Decode {
                key: "tolerations",
                ..
            })
        ));
    }
}
