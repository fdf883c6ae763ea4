//! A Gateway's `spec.infrastructure.parametersRef`: a core ConfigMap in the Gateway's namespace
//! whose keys (the same keys as the class's parameters) override its class's parameters for that
//! Gateway's data plane alone. `image` and `hostNetwork` are refused there: a Gateway owner
//! must not choose what runs under the data plane's ServiceAccount, nor put it on the nodes'
//! network; only the class's parameters set them.

use gateway_api::apis::experimental::gateways::Gateway;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;

use super::params::{DataPlaneParams, ParametersRefError, ParamsError};

/// Keys only a GatewayClass's parameters may set.
const CLASS_ONLY_KEYS: [&str; 2] = ["image", "hostNetwork"];

/// The ConfigMap the Gateway's `infrastructure.parametersRef` names; `None` without one. The
/// reference has no namespace field: the ConfigMap is the Gateway's namespace's.
pub fn config_map<'a>(
    gateway: &Gateway,
    config_maps: &'a [ConfigMap],
) -> Result<Option<&'a ConfigMap>, ParametersRefError> {
    let Some(pref) = gateway
        .spec
        .infrastructure
        .as_ref()
        .and_then(|i| i.parameters_ref.as_ref())
    else {
        return Ok(None);
    };
    if !pref.group.is_empty() || pref.kind != "ConfigMap" {
        return Err(ParametersRefError::NotAConfigMap {
            group: pref.group.clone(),
            kind: pref.kind.clone(),
        });
    }
    let namespace = gateway.namespace().unwrap_or_else(|| "default".into());
    config_maps
        .iter()
        .find(|cm| {
            cm.metadata.name.as_deref() == Some(pref.name.as_str())
                && cm.metadata.namespace.as_deref().unwrap_or("default") == namespace
        })
        .map(Some)
        .ok_or(ParametersRefError::NotFound {
            namespace,
            name: pref.name.clone(),
        })
}

/// The parameters of the Gateway's data plane: its class's, with the keys of its own
/// `parametersRef` ConfigMap (if any) replaced.
pub fn gateway_params(
    gateway: &Gateway,
    class: &DataPlaneParams,
    config_maps: &[ConfigMap],
) -> Result<DataPlaneParams, ParametersRefError> {
    let Some(cm) = config_map(gateway, config_maps)? else {
        return Ok(class.clone());
    };
    let invalid = |source| ParametersRefError::Invalid {
        namespace: cm.namespace().unwrap_or_else(|| "default".into()),
        name: cm.name_any(),
        source,
    };
    let data = cm.data.as_ref();
    if let Some(key) = CLASS_ONLY_KEYS
        .into_iter()
        .find(|k| data.is_some_and(|d| d.contains_key(*k)))
    {
        return Err(invalid(ParamsError::ClassOnly(key)));
    }
    let params = class.clone().with_keys_of(cm).map_err(invalid)?;
    params.check().map_err(invalid)?;
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provision::params::WorkloadKind;

    fn gateway(parameters_ref: Option<serde_json::Value>) -> Gateway {
        let mut spec = serde_json::json!({"gatewayClassName": "sluice", "listeners": []});
        if let Some(p) = parameters_ref {
            spec["infrastructure"] = serde_json::json!({"parametersRef": p});
        }
        serde_json::from_value(serde_json::json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "web", "namespace": "demo"}, "spec": spec
        }))
        .expect("a Gateway")
    }

    fn config_map(namespace: &str, pairs: &[(&str, &str)]) -> ConfigMap {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "web-params", "namespace": namespace},
            "data": pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<std::collections::BTreeMap<_, _>>()
        }))
        .expect("a ConfigMap")
    }

    fn reference() -> Option<serde_json::Value> {
        Some(serde_json::json!({"group": "", "kind": "ConfigMap", "name": "web-params"}))
    }

    #[test]
    fn the_gateway_config_map_overrides_only_the_keys_it_sets() {
        let class = DataPlaneParams {
            replicas: 3,
            service_type: "NodePort".into(),
            ..DataPlaneParams::default()
        };
        let maps = [config_map("demo", &[("replicas", "5")])];
        let params = gateway_params(&gateway(reference()), &class, &maps).expect("valid");
        assert_eq!(
            (params.replicas, params.service_type.as_str()),
            (5, "NodePort")
        );
        let unchanged = gateway_params(&gateway(None), &class, &maps).expect("valid");
        assert_eq!(unchanged, class);
    }

    #[test]
    fn another_namespace_another_kind_or_a_bad_key_are_errors() {
        let class = DataPlaneParams::default();
        let elsewhere = [config_map("other", &[])];
        assert!(matches!(
            gateway_params(&gateway(reference()), &class, &elsewhere),
            Err(ParametersRefError::NotFound { .. })
        ));
        let secret_ref = Some(serde_json::json!({"group": "", "kind": "Secret", "name": "x"}));
        assert!(matches!(
            gateway_params(&gateway(secret_ref), &class, &elsewhere),
            Err(ParametersRefError::NotAConfigMap { .. })
        ));
        let typo = [config_map("demo", &[("replica", "2")])];
        assert!(matches!(
            gateway_params(&gateway(reference()), &class, &typo),
            Err(ParametersRefError::Invalid {
                source: ParamsError::UnknownKey(_),
                ..
            })
        ));
    }

    #[test]
    fn rules_across_keys_see_the_class_and_the_gateway_together() {
        let class = DataPlaneParams {
            host_network: true,
            kind: WorkloadKind::DaemonSet,
            ..DataPlaneParams::default()
        };
        let maps = [config_map("demo", &[("replicas", "2")])];
        let params = gateway_params(&gateway(reference()), &class, &maps).expect("a DaemonSet");
        assert!(params.host_network);
        let to_deployment = [config_map("demo", &[("kind", "Deployment")])];
        assert!(gateway_params(&gateway(reference()), &class, &to_deployment).is_err());
    }

    #[test]
    fn a_gateway_may_not_choose_the_image_or_the_host_network() {
        let class = DataPlaneParams {
            kind: WorkloadKind::DaemonSet,
            ..DataPlaneParams::default()
        };
        for (key, value) in [("image", "attacker.example/x:1"), ("hostNetwork", "true")] {
            let maps = [config_map("demo", &[(key, value)])];
            let err = gateway_params(&gateway(reference()), &class, &maps).expect_err(key);
            assert!(matches!(
                &err,
                ParametersRefError::Invalid {
                    source: ParamsError::ClassOnly(k),
                    ..
                } if *k == key
            ));
            let message = crate::provision::params::error_chain(&err);
            assert!(
                message.contains("only in the GatewayClass's parameters"),
                "{message}"
            );
        }
    }
}
