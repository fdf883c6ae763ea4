//! The harness's stand-in for the API server: the objects of one case, with the applier rules of FORMAT.md
//! §1.1, metadata the API server would assign (uid, generation, creationTimestamp), patches and deletes.

use std::collections::BTreeMap;

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("YAML document {index}: {source}")]
    Yaml {
        index: usize,
        #[source]
        source: serde_yaml_ng::Error,
    },
    #[error("YAML document {index}: {problem}")]
    Invalid { index: usize, problem: String },
    #[error("{key}: not found")]
    NotFound { key: String },
    #[error("{key}: JSON patch failed")]
    JsonPatch {
        key: String,
        #[source]
        source: json_patch::PatchError,
    },
    #[error("{key}: malformed JSON patch")]
    JsonPatchFormat {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot encode objects as YAML")]
    Encode(#[source] serde_yaml_ng::Error),
}

/// `Kind/namespace/name`, or `Kind/name` for cluster-scoped objects (the admin `/status` key shape).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectKey {
    pub fn new(kind: &str, namespace: Option<&str>, name: &str) -> Self {
        ObjectKey {
            kind: kind.to_owned(),
            namespace: namespace.filter(|ns| !ns.is_empty()).map(str::to_owned),
            name: name.to_owned(),
        }
    }

    pub fn of(object: &Value) -> Option<Self> {
        let kind = object.get("kind")?.as_str()?;
        let metadata = object.get("metadata")?;
        let name = metadata.get("name")?.as_str()?;
        Some(Self::new(
            kind,
            metadata.get("namespace").and_then(Value::as_str),
            name,
        ))
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{ns}/{}", self.kind, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}

/// How manifests are rewritten on apply (§1.1).
#[derive(Debug, Clone)]
pub struct ApplyRules {
    pub gateway_class_name: String,
    /// `Some` for case manifests: every GatewayClass gets this controllerName.
    pub controller_name: Option<String>,
    pub usable_addresses: Vec<String>,
    pub unusable_addresses: Vec<String>,
}

#[derive(Debug, Default)]
pub struct ObjectStore {
    objects: BTreeMap<ObjectKey, Value>,
    /// `metadata.generation` before the most recent patch, for `generationChanged` checks.
    generation_before_patch: BTreeMap<ObjectKey, i64>,
}

// === impl ObjectStore ===

impl ObjectStore {
    pub fn get(&self, key: &ObjectKey) -> Option<&Value> {
        self.objects.get(key)
    }

    pub fn objects(&self) -> impl Iterator<Item = (&ObjectKey, &Value)> {
        self.objects.iter()
    }

    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects
            .iter()
            .filter(move |(k, _)| k.kind == kind)
            .map(|(_, v)| v)
    }

    pub fn generation(&self, key: &ObjectKey) -> Option<i64> {
        self.objects
            .get(key)?
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
    }

    pub fn generation_before_patch(&self, key: &ObjectKey) -> Option<i64> {
        self.generation_before_patch.get(key).copied()
    }

    /// Creates or updates every object of a YAML stream, in order; returns their keys.
    pub fn apply_yaml(
        &mut self,
        yaml: &str,
        rules: &ApplyRules,
        created_at: &str,
        substitute: &dyn Fn(&str) -> String,
    ) -> Result<Vec<ObjectKey>, ObjectError> {
        let documents = parse_documents(yaml, substitute)?;
        self.apply(documents, rules, created_at)
    }

    /// Creates or updates parsed objects (see [`parse_documents`]), in order; returns their keys.
    pub fn apply(
        &mut self,
        documents: Vec<Value>,
        rules: &ApplyRules,
        created_at: &str,
    ) -> Result<Vec<ObjectKey>, ObjectError> {
        let mut keys = Vec::new();
        for (index, mut object) in documents.into_iter().enumerate() {
            apply_rules(&mut object, rules);
            let key = ObjectKey::of(&object).ok_or_else(|| ObjectError::Invalid {
                index: index + 1,
                problem: "an object needs `kind` and `metadata.name`".to_owned(),
            })?;
            self.put(key.clone(), object, created_at);
            keys.push(key);
        }
        Ok(keys)
    }

    /// Create-or-update with the metadata the API server owns.
    pub fn put(&mut self, key: ObjectKey, mut object: Value, created_at: &str) {
        let previous = self.objects.get(&key);
        let (uid, created, generation) = match previous {
            Some(old) => {
                let old_generation = old
                    .pointer("/metadata/generation")
                    .and_then(Value::as_i64)
                    .unwrap_or(1);
                let generation = if spec_of(old) == spec_of(&object) {
                    old_generation
                } else {
                    old_generation + 1
                };
                (
                    old.pointer("/metadata/uid").cloned(),
                    old.pointer("/metadata/creationTimestamp").cloned(),
                    generation,
                )
            }
            None => (None, None, 1),
        };
        if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.insert(
                "uid".into(),
                uid.unwrap_or_else(|| Value::String(crate::uuid())),
            );
            metadata.insert(
                "creationTimestamp".into(),
                created.unwrap_or_else(|| Value::String(created_at.to_owned())),
            );
            metadata.insert("generation".into(), Value::from(generation));
        }
        self.objects.insert(key, object);
    }

    pub fn json_patch(&mut self, key: &ObjectKey, patch: &Value) -> Result<(), ObjectError> {
        let operations: json_patch::Patch =
            serde_json::from_value(patch.clone()).map_err(|source| {
                ObjectError::JsonPatchFormat {
                    key: key.to_string(),
                    source,
                }
            })?;
        self.patch_with(key, |object| {
            json_patch::patch(object, &operations).map_err(|source| ObjectError::JsonPatch {
                key: key.to_string(),
                source,
            })
        })
    }

    pub fn merge_patch(&mut self, key: &ObjectKey, patch: &Value) -> Result<(), ObjectError> {
        self.patch_with(key, |object| {
            json_patch::merge(object, patch);
            Ok(())
        })
    }

    fn patch_with(
        &mut self,
        key: &ObjectKey,
        change: impl FnOnce(&mut Value) -> Result<(), ObjectError>,
    ) -> Result<(), ObjectError> {
        let current = self.objects.get(key).ok_or_else(|| ObjectError::NotFound {
            key: key.to_string(),
        })?;
        let before = current
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let mut patched = current.clone();
        change(&mut patched)?;
        self.generation_before_patch.insert(key.clone(), before);
        self.put(key.clone(), patched, "");
        Ok(())
    }

    pub fn delete(&mut self, key: &ObjectKey) -> Result<Value, ObjectError> {
        self.objects
            .remove(key)
            .ok_or_else(|| ObjectError::NotFound {
                key: key.to_string(),
            })
    }

    /// Every object as one multi-document YAML stream (what Sluice's file source reads).
    pub fn to_yaml(&self) -> Result<String, ObjectError> {
        let mut out = String::new();
        for object in self.objects.values() {
            out.push_str("---\n");
            out.push_str(&serde_yaml_ng::to_string(object).map_err(ObjectError::Encode)?);
        }
        Ok(out)
    }
}

/// Splits a YAML stream into objects (empty documents dropped), substituting placeholders in string values.
pub fn parse_documents(
    yaml: &str,
    substitute: &dyn Fn(&str) -> String,
) -> Result<Vec<Value>, ObjectError> {
    let mut documents = Vec::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(yaml).enumerate() {
        let index = index + 1;
        let value: serde_yaml_ng::Value = serde::Deserialize::deserialize(document)
            .map_err(|source| ObjectError::Yaml { index, source })?;
        if value.is_null() {
            continue;
        }
        let mut object: Value = serde_yaml_ng::from_value(value)
            .map_err(|source| ObjectError::Yaml { index, source })?;
        substitute_strings(&mut object, substitute);
        documents.push(object);
    }
    Ok(documents)
}

/// Everything but metadata and status: what makes the API server bump `metadata.generation`.
fn spec_of(object: &Value) -> Value {
    match object.as_object() {
        Some(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| k.as_str() != "metadata" && k.as_str() != "status")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        None => object.clone(),
    }
}

pub(crate) fn substitute_strings(value: &mut Value, substitute: &dyn Fn(&str) -> String) {
    match value {
        Value::String(s) if s.contains("{{") => *s = substitute(s),
        Value::Array(items) => items
            .iter_mut()
            .for_each(|v| substitute_strings(v, substitute)),
        Value::Object(map) => map
            .values_mut()
            .for_each(|v| substitute_strings(v, substitute)),
        _ => {}
    }
}

fn apply_rules(object: &mut Value, rules: &ApplyRules) {
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    match kind.as_str() {
        "Gateway" => {
            spec.insert(
                "gatewayClassName".into(),
                Value::String(rules.gateway_class_name.clone()),
            );
            rewrite_placeholder_addresses(spec, rules);
        }
        "GatewayClass" => {
            if let Some(controller) = &rules.controller_name {
                spec.insert("controllerName".into(), Value::String(controller.clone()));
            }
        }
        _ => {}
    }
}

fn rewrite_placeholder_addresses(spec: &mut serde_json::Map<String, Value>, rules: &ApplyRules) {
    let Some(addresses) = spec.get("addresses").and_then(Value::as_array) else {
        return;
    };
    let is_placeholder = |a: &Value| {
        matches!(
            a.get("value").and_then(Value::as_str),
            Some("PLACEHOLDER_USABLE_ADDRS" | "PLACEHOLDER_UNUSABLE_ADDRS")
        )
    };
    if !addresses.iter().any(is_placeholder) {
        return;
    }
    let address = |value: &String| serde_json::json!({"type": "IPAddress", "value": value});
    let mut rebuilt: Vec<Value> = addresses
        .iter()
        .filter(|a| a.get("type").and_then(Value::as_str) == Some("test/fake-invalid-type"))
        .cloned()
        .collect();
    rebuilt.extend(rules.unusable_addresses.iter().map(address));
    rebuilt.extend(rules.usable_addresses.iter().map(address));
    spec.insert("addresses".into(), Value::Array(rebuilt));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> ApplyRules {
        ApplyRules {
            gateway_class_name: "sluice".into(),
            controller_name: Some("sluice.dev/gateway-controller".into()),
            usable_addresses: vec!["127.9.0.9".into()],
            unusable_addresses: vec!["192.0.2.1".into()],
        }
    }

    const GATEWAY: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: ns}
spec:
  gatewayClassName: '{GATEWAY_CLASS_NAME}'
  addresses:
  - {type: test/fake-invalid-type, value: x}
  - {value: PLACEHOLDER_USABLE_ADDRS}
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cm, namespace: ns}
data: {ca.crt: '{{configMap ns/other ca.crt}}'}
";

    #[test]
    #[allow(clippy::unwrap_used)]
    fn apply_rewrites_class_addresses_and_placeholders() {
        let mut store = ObjectStore::default();
        let keys = store
            .apply_yaml(GATEWAY, &rules(), "2026-01-01T00:00:00Z", &|s| {
                s.replace("{{configMap ns/other ca.crt}}", "PEM")
            })
            .unwrap();
        assert_eq!(keys.len(), 2);
        let gw = store.get(&keys[0]).unwrap();
        assert_eq!(gw["spec"]["gatewayClassName"], "sluice");
        let values: Vec<&str> = gw["spec"]["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["value"].as_str().unwrap())
            .collect();
        assert_eq!(values, ["x", "192.0.2.1", "127.9.0.9"]);
        assert_eq!(gw["metadata"]["generation"], 1);
        assert_eq!(store.get(&keys[1]).unwrap()["data"]["ca.crt"], "PEM");
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn spec_changes_bump_generation_and_patches_remember_the_old_one() {
        let mut store = ObjectStore::default();
        let keys = store
            .apply_yaml(GATEWAY, &rules(), "t", &|s| s.to_owned())
            .unwrap();
        let gw = keys[0].clone();
        store
            .apply_yaml(GATEWAY, &rules(), "t", &|s| s.to_owned())
            .unwrap();
        assert_eq!(
            store.generation(&gw),
            Some(1),
            "re-applying the same spec keeps the generation"
        );
        store
            .json_patch(
                &gw,
                &serde_json::json!([{"op": "add", "path": "/spec/listeners/-", "value": {"name": "b", "port": 81, "protocol": "HTTP"}}]),
            )
            .unwrap();
        assert_eq!(store.generation(&gw), Some(2));
        assert_eq!(store.generation_before_patch(&gw), Some(1));
        store
            .merge_patch(
                &gw,
                &serde_json::json!({"metadata": {"labels": {"a": "b"}}}),
            )
            .unwrap();
        assert_eq!(
            store.generation(&gw),
            Some(2),
            "metadata-only patches keep the generation"
        );
    }

    #[test]
    fn bad_yaml_and_missing_objects_are_errors() {
        let mut store = ObjectStore::default();
        let err = store.apply_yaml("kind: [", &rules(), "t", &|s| s.to_owned());
        assert!(matches!(err, Err(ObjectError::Yaml { index: 1, .. })));
        let err = store.apply_yaml("kind: Service\nmetadata: {}\n", &rules(), "t", &|s| {
            s.to_owned()
        });
        assert!(matches!(err, Err(ObjectError::Invalid { .. })));
        let missing = ObjectKey::new("Gateway", Some("ns"), "nope");
        assert!(matches!(
            store.delete(&missing),
            Err(ObjectError::NotFound { .. })
        ));
        let bad_patch = store.json_patch(&missing, &serde_json::json!([]));
        assert!(matches!(bad_patch, Err(ObjectError::NotFound { .. })));
    }
}
