//! The YAML loader of standalone mode: every document admitted as the API server would admit
//! it, every error of the load collected, typed objects out.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::Resource;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value as Json;

use super::lines::{document_lines, DocLines};
use super::{ConfigError, LoadedConfig, Resources, NAMESPACE_NAME_LABEL};
use crate::validation::{self, Admitted, FieldError, FieldPath};

#[derive(Default)]
pub(super) struct Loader {
    resources: Resources,
    warnings: Vec<String>,
    pub(super) errors: Vec<ConfigError>,
    /// `Kind ns/name` -> `FILE:LINE` where it was first defined, to report duplicates.
    seen: BTreeMap<String, String>,
}

/// Where a document (or a List's item) is, for naming it in errors.
struct Place<'a> {
    path: &'a Path,
    lines: &'a DocLines,
    /// The item's path inside its document (`items[2]` in a List; empty otherwise).
    prefix: FieldPath,
    document: usize,
}

impl Place<'_> {
    fn line(&self, field: &FieldPath) -> usize {
        self.lines
            .line_of(field.clone().under(&self.prefix).steps())
    }

    fn name(&self) -> String {
        if self.prefix.is_root() {
            format!("document {}", self.document)
        } else {
            format!("document {} {}", self.document, self.prefix)
        }
    }
}

impl Loader {
    pub(super) fn add_text(&mut self, path: &Path, text: &str) {
        let lines = document_lines(text);
        let fallback = DocLines::default();
        for (index, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            let doc_lines = lines.get(index).unwrap_or(&fallback);
            let value = match serde_yaml_ng::Value::deserialize(doc) {
                Ok(value) => value,
                Err(e) => {
                    let line = e.location().map_or(doc_lines.start, |l| l.line());
                    self.errors.push(ConfigError::Syntax {
                        path: path.to_path_buf(),
                        line,
                        message: e.to_string(),
                    });
                    // The parser cannot resynchronise after a syntax error.
                    return;
                }
            };
            let place = Place {
                path,
                lines: doc_lines,
                prefix: FieldPath::root(),
                document: index + 1,
            };
            if value.is_null() {
                continue;
            }
            match serde_json::to_value(&value) {
                Ok(json) => self.add_object(&place, json),
                Err(e) => self.invalid(
                    &place,
                    place.name(),
                    FieldError {
                        path: FieldPath::root(),
                        message: format!("not representable as JSON, as the API server needs: {e}"),
                    },
                ),
            }
        }
    }

    fn invalid(&mut self, place: &Place<'_>, object: String, error: FieldError) {
        self.errors.push(ConfigError::Invalid {
            path: place.path.to_path_buf(),
            line: place.line(&error.path),
            object,
            error,
        });
    }

    fn add_object(&mut self, place: &Place<'_>, mut json: Json) {
        let root = FieldPath::root();
        if !json.is_object() {
            let error = FieldError {
                path: root,
                message: "not a Kubernetes object (a mapping)".into(),
            };
            return self.invalid(place, place.name(), error);
        }
        let text = |field: &str| {
            json.get(field)
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_string()
        };
        let (api_version, kind) = (text("apiVersion"), text("kind"));
        let mut missing = Vec::new();
        for (field, value) in [("apiVersion", &api_version), ("kind", &kind)] {
            if value.is_empty() {
                missing.push(FieldError {
                    path: root.child(field),
                    message: "Required value".into(),
                });
            }
        }
        if !missing.is_empty() {
            for error in missing {
                self.invalid(place, place.name(), error);
            }
            return;
        }
        if kind == "List" && api_version == "v1" {
            return self.add_list(place, json);
        }
        let name = json
            .pointer("/metadata/name")
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_string();
        let namespaced = kind != "GatewayClass" && kind != "Namespace";
        let namespace = namespaced.then(|| {
            json.pointer("/metadata/namespace")
                .and_then(Json::as_str)
                .filter(|ns| !ns.is_empty())
                .unwrap_or("default")
                .to_string()
        });
        let object = match &namespace {
            Some(ns) => format!("{kind} {ns}/{name}"),
            None => format!("{kind} {name}"),
        };
        let used = match validation::admit(&mut json) {
            Ok(Admitted::Used) => true,
            Ok(Admitted::Unused) => false,
            Err(errors) => {
                for error in errors {
                    self.invalid(place, object.clone(), error);
                }
                return;
            }
        };
        let here = format!("{}:{}", place.path.display(), place.line(&root));
        if !used {
            self.warnings.push(format!(
                "{here}: {object}: valid, but Sluice does not serve {kind}; ignored"
            ));
            return;
        }
        if let Some(first) = self.seen.insert(object.clone(), here.clone()) {
            self.errors.push(ConfigError::Duplicate {
                path: place.path.to_path_buf(),
                line: place.line(&root),
                object,
                first,
            });
            return;
        }
        let decoded = self.decode_used(&kind, json, namespace, &name);
        if let Err(error) = decoded {
            self.invalid(place, object, error);
        }
    }

    fn add_list(&mut self, place: &Place<'_>, json: Json) {
        let Some(Json::Array(items)) = json.get("items").cloned() else {
            let error = FieldError {
                path: FieldPath::root().child("items"),
                message: "Required value: a List needs items".into(),
            };
            return self.invalid(place, place.name(), error);
        };
        for (i, item) in items.into_iter().enumerate() {
            let mut prefix = place.prefix.child("items");
            prefix.push_index(i);
            let item_place = Place { prefix, ..*place };
            self.add_object(&item_place, item);
        }
    }

    /// Decodes an admitted object into the type translation reads.
    fn decode_used(
        &mut self,
        kind: &str,
        json: Json,
        namespace: Option<String>,
        name: &str,
    ) -> Result<(), FieldError> {
        let r = &mut self.resources;
        match kind {
            "GatewayClass" => r.gateway_classes.push(decode(json, namespace)?),
            "Gateway" => r.gateways.push(decode(json, namespace)?),
            "HTTPRoute" => r.http_routes.push(decode(json, namespace)?),
            "GRPCRoute" => r.grpc_routes.push(decode(json, namespace)?),
            "TLSRoute" => r.tls_routes.push(decode(json, namespace)?),
            "ReferenceGrant" => r.reference_grants.push(decode(json, namespace)?),
            "ListenerSet" => r.listener_sets.push(decode(json, namespace)?),
            "Service" => r.services.push(decode(json, namespace)?),
            "EndpointSlice" => r.endpoint_slices.push(decode(json, namespace)?),
            "ConfigMap" => r.config_maps.push(decode(json, namespace)?),
            "BackendTLSPolicy" => r.backend_tls_policies.push(decode(json, namespace)?),
            "MirrorPolicy" => r.mirror_policies.push(decode(json, namespace)?),
            "Secret" => {
                let mut secret: Secret = decode(json, namespace)?;
                merge_string_data(&mut secret);
                r.secrets.push(secret);
            }
            "Namespace" => {
                let mut ns: k8s_openapi::api::core::v1::Namespace = decode(json, namespace)?;
                ns.metadata
                    .labels
                    .get_or_insert_with(Default::default)
                    .insert(NAMESPACE_NAME_LABEL.into(), name.to_string());
                r.namespaces.push(ns);
            }
            other => {
                return Err(FieldError {
                    path: FieldPath::root().child("kind"),
                    message: format!("{other} is admitted but Sluice has no type for it"),
                })
            }
        }
        Ok(())
    }

    pub(super) fn finish(mut self) -> LoadedConfig {
        self.resources.sort();
        LoadedConfig {
            resources: self.resources,
            warnings: self.warnings,
        }
    }
}

/// An admitted object the types cannot hold means the types (gateway-api crate) lag the CRDs.
fn decode<K: Resource + DeserializeOwned>(
    json: Json,
    namespace: Option<String>,
) -> Result<K, FieldError> {
    let mut obj: K = serde_path_to_error::deserialize(json).map_err(|e| {
        let mut path = FieldPath::root();
        for step in e.path().iter() {
            match step {
                serde_path_to_error::Segment::Seq { index } => path.push_index(*index),
                serde_path_to_error::Segment::Map { key } => path.push_field(key),
                serde_path_to_error::Segment::Enum { variant } => path.push_field(variant),
                serde_path_to_error::Segment::Unknown => {}
            }
        }
        FieldError {
            path,
            message: format!(
                "valid for Gateway API {}, but Sluice's types cannot hold it: {}",
                validation::GATEWAY_API_VERSION,
                e.inner()
            ),
        }
    })?;
    if let Some(ns) = namespace {
        obj.meta_mut().namespace = Some(ns);
    }
    Ok(obj)
}

/// `stringData` is write-only in a cluster: the API server merges it into `data`.
fn merge_string_data(secret: &mut Secret) {
    if let Some(string_data) = secret.string_data.take() {
        let data = secret.data.get_or_insert_with(Default::default);
        for (k, v) in string_data {
            data.insert(k, ByteString(v.into_bytes()));
        }
    }
}
