//! Data-plane knobs from the GatewayClass `parametersRef` ConfigMap (documented in docs/kubernetes.md).
//!
//! Any problem with the reference or the ConfigMap makes the class `Accepted: False` with reason
//! [`INVALID_PARAMETERS`] and the error chain ([`error_chain`]) as message.
//!
//! [`INVALID_PARAMETERS`]: crate::status::conditions::reasons::INVALID_PARAMETERS

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, ResourceRequirements, Toleration};

use super::edge_params::{self, EdgeParams};
use super::log_params::{self, LogParams};
use super::mirror_params;
use crate::mirror_settings::MirrorSettings;

// The provisioner's messages and the condition message use the one chain format.
pub use crate::error_chain;

/// The `kind` key: which workload runs a Gateway's data plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadKind {
    /// A Deployment of `replicas` pods (the default).
    Deployment,
    /// One pod per node; the only kind that may use `hostNetwork`.
    DaemonSet,
}

/// The data-plane settings of one GatewayClass, parsed from its `parametersRef` ConfigMap; the
/// default without one.
#[derive(Debug, Clone, PartialEq)]
pub struct DataPlaneParams {
    /// The `kind` key; Deployment by default.
    pub kind: WorkloadKind,
    /// Deployments only.
    pub replicas: i32,
    /// The `serviceType` key: `LoadBalancer` (default), `NodePort` or `ClusterIP`.
    pub service_type: String,
    /// The `resources` key: the proxy container's requests and limits; `None` sets none.
    pub resources: Option<ResourceRequirements>,
    /// The `nodeSelector` key for the data-plane pods; `None` sets none.
    pub node_selector: Option<BTreeMap<String, String>>,
    /// The `tolerations` key for the data-plane pods; `None` sets none.
    pub tolerations: Option<Vec<Toleration>>,
    /// DaemonSets only: listen on the node's own addresses.
    pub host_network: bool,
    /// Overrides the controller's `--dataplane-image`.
    pub image: Option<String>,
    /// `sluice proxy --mirror-*` flags (the `mirror*` keys).
    pub mirror: MirrorSettings,
    /// `sluice proxy` limit and drain flags (the edge keys, docs/hardening.md).
    pub edge: EdgeParams,
    /// `sluice proxy --log-format` and `--access-log-omit-query` (docs/logging.md).
    pub log: LogParams,
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
            log: LogParams::default(),
        }
    }
}

/// Why a `parametersRef` ConfigMap's data is not valid; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ParamsError {
    /// A key Sluice does not know.
    #[error("unknown key {0:?} (known: kind, replicas, serviceType, resources, nodeSelector, tolerations, hostNetwork, image, {mirror}, {edge}, {log})", mirror = mirror_params::KEYS.join(", "), edge = edge_params::key_names().join(", "), log = log_params::KEYS.join(", "))]
    UnknownKey(String),
    /// `kind` is neither `Deployment` nor `DaemonSet`.
    #[error("kind must be Deployment or DaemonSet, not {0:?}")]
    Kind(String),
    /// `replicas` is not a non-negative integer.
    #[error("replicas must be a non-negative integer, not {0:?}")]
    Replicas(String),
    /// `serviceType` is not `LoadBalancer`, `NodePort` or `ClusterIP`.
    #[error("serviceType must be LoadBalancer, NodePort or ClusterIP, not {0:?}")]
    ServiceType(String),
    /// `hostNetwork` is neither `true` nor `false`.
    #[error("hostNetwork must be true or false, not {0:?}")]
    HostNetwork(String),
    /// `image` or `hostNetwork` in a Gateway's own parameters: they decide what runs, and where,
    /// under the data plane's ServiceAccount, which is the class owner's call.
    #[error("{0} may be set only in the GatewayClass's parameters, not a Gateway's")]
    ClassOnly(&'static str),
    /// `hostNetwork: true` with a Deployment.
    #[error("hostNetwork is for DaemonSets only")]
    HostNetworkNeedsDaemonSet,
    /// A mirror or edge key whose value is out of range or malformed.
    #[error("{key} must be {expected}, not {value:?}")]
    Invalid {
        /// The offending key.
        key: &'static str,
        /// What the key accepts, for the message.
        expected: &'static str,
        /// The value given.
        value: String,
    },
    /// A structured key (`resources`, `nodeSelector`, `tolerations`) whose YAML does not decode.
    #[error("{key} does not decode")]
    Decode {
        /// The offending key.
        key: &'static str,
        /// The YAML error.
        #[source]
        source: serde_yaml_ng::Error,
    },
}

/// Why a GatewayClass `parametersRef` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ParametersRefError {
    /// The ref names something other than a core ConfigMap.
    #[error(
        "parametersRef must be a core ConfigMap (group \"\", kind ConfigMap), not {group:?}/{kind}"
    )]
    NotAConfigMap {
        /// The ref's `group`.
        group: String,
        /// The ref's `kind`.
        kind: String,
    },
    /// The ConfigMap ref has no namespace; carries the ConfigMap's name.
    #[error("parametersRef ConfigMap {0} needs a namespace")]
    NoNamespace(String),
    /// No such ConfigMap.
    #[error("ConfigMap {namespace}/{name} not found")]
    NotFound {
        /// The ConfigMap's namespace.
        namespace: String,
        /// The ConfigMap's name.
        name: String,
    },
    /// The ConfigMap exists but its data is not valid.
    #[error("ConfigMap {namespace}/{name}")]
    Invalid {
        /// The ConfigMap's namespace.
        namespace: String,
        /// The ConfigMap's name.
        name: String,
        /// What is wrong with its data.
        #[source]
        source: ParamsError,
    },
}

impl DataPlaneParams {
    /// Parses the ConfigMap's `data`, starting from the defaults; fails on any unknown key or bad
    /// value.
    pub fn from_config_map(cm: &ConfigMap) -> Result<DataPlaneParams, ParamsError> {
        let p = DataPlaneParams::default().with_keys_of(cm)?;
        p.check()?;
        Ok(p)
    }

    /// These parameters with the keys `cm` sets replaced (a Gateway's `infrastructure.parametersRef`
    /// over its class's); fails on an unknown key or a bad value. Rules across keys are
    /// [`DataPlaneParams::check`]'s.
    pub fn with_keys_of(mut self, cm: &ConfigMap) -> Result<DataPlaneParams, ParamsError> {
        let p = &mut self;
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
                    if !p.mirror.set_param(other, value)?
                        && !p.edge.set(other, value)?
                        && !p.log.set(other, value)?
                    {
                        return Err(ParamsError::UnknownKey(other.into()));
                    }
                }
            }
        }
        Ok(self)
    }

    /// The rules between keys, checked once every ConfigMap has been applied.
    pub fn check(&self) -> Result<(), ParamsError> {
        if self.host_network && self.kind != WorkloadKind::DaemonSet {
            return Err(ParamsError::HostNetworkNeedsDaemonSet);
        }
        Ok(())
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
