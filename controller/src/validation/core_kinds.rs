//! Core kinds checked strictly against their k8s-openapi types (an unknown field is an error,
//! as with `kubectl --validate=strict`), and every object's metadata as ObjectMeta.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

use super::{Admitted, FieldError, FieldPath};

type Check = fn(&Json) -> Vec<FieldError>;

/// `(group/version, kind, used by Sluice)`; the unused ones are common neighbours in a directory
/// of manifests (a backend's Deployment), validated and then ignored.
pub(super) const KINDS: &[(&str, &str, bool)] = &[
    ("v1", "Service", true),
    ("v1", "Secret", true),
    ("v1", "Namespace", true),
    ("discovery.k8s.io/v1", "EndpointSlice", true),
    ("v1", "ConfigMap", true),
    ("v1", "Pod", false),
    ("v1", "ServiceAccount", false),
    ("apps/v1", "Deployment", false),
];

fn check_of(kind: &str) -> Option<Check> {
    Some(match kind {
        "Service" => strict::<Service>,
        "Secret" => strict::<Secret>,
        "Namespace" => strict::<Namespace>,
        "EndpointSlice" => strict::<EndpointSlice>,
        "ConfigMap" => strict::<ConfigMap>,
        "Pod" => strict::<Pod>,
        "ServiceAccount" => strict::<ServiceAccount>,
        "Deployment" => strict::<Deployment>,
        _ => return None,
    })
}

/// `Ok(None)` when `kind` is not a core kind of that apiVersion (the CRDs are asked next).
pub(super) fn admit(
    group: &str,
    version: &str,
    kind: &str,
    object: &Json,
) -> Result<Option<Admitted>, Vec<FieldError>> {
    let api_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let Some((_, _, used)) = KINDS
        .iter()
        .find(|(v, k, _)| *v == api_version && *k == kind)
    else {
        return Ok(None);
    };
    let Some(check) = check_of(kind) else {
        return Ok(None);
    };
    let mut errors = check(object);
    errors.extend(name_rules(object, kind != "Namespace"));
    if errors.is_empty() {
        Ok(Some(if *used {
            Admitted::Used
        } else {
            Admitted::Unused
        }))
    } else {
        Err(errors)
    }
}

/// A custom resource's metadata: strictly ObjectMeta, with a name the API server would take.
pub(super) fn metadata(object: &Json, namespaced: bool) -> Vec<FieldError> {
    let mut errors = match object.get("metadata") {
        Some(meta) => strict::<ObjectMeta>(meta)
            .into_iter()
            .map(|e| FieldError {
                path: e.path.under(&FieldPath::root().child("metadata")),
                ..e
            })
            .collect(),
        None => Vec::new(),
    };
    errors.extend(name_rules(object, namespaced));
    errors
}

fn name_rules(object: &Json, namespaced: bool) -> Vec<FieldError> {
    let meta = FieldPath::root().child("metadata");
    let mut errors = Vec::new();
    match object.pointer("/metadata/name").and_then(Json::as_str) {
        None | Some("") => errors.push(FieldError {
            path: meta.child("name"),
            message: "Required value: name is required".into(),
        }),
        Some(name) if !is_dns_subdomain(name) => errors.push(FieldError {
            path: meta.child("name"),
            message: format!(
                "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case \
                 alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
            ),
        }),
        Some(_) => {}
    }
    if let Some(ns) = object.pointer("/metadata/namespace").and_then(Json::as_str) {
        if namespaced && !is_dns_label(ns) {
            errors.push(FieldError {
                path: meta.child("namespace"),
                message: format!(
                    "Invalid value: \"{ns}\": a lowercase RFC 1123 label must consist of lower case \
                     alphanumeric characters or '-', and must start and end with an alphanumeric character"
                ),
            });
        }
    }
    errors
}

fn is_dns_label(s: &str) -> bool {
    s.len() <= 63 && is_label_shaped(s)
}

/// Kubernetes' IsDNS1123Subdomain: 253 bytes in all, and no per-label limit (unlike DNS).
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_label_shaped)
}

fn is_label_shaped(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Decodes `value` as `K`, reporting every field the type does not have and the first value it
/// cannot take (serde stops there).
fn strict<K: DeserializeOwned>(value: &Json) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut track = serde_path_to_error::Track::new();
    let deserializer = serde_path_to_error::Deserializer::new(value, &mut track);
    let decoded: Result<K, _> = serde_ignored::deserialize(deserializer, |ignored| {
        let mut path = FieldPath::root();
        ignored_path(&ignored, &mut path);
        let field = path.steps().last().unwrap_or_default();
        errors.push(FieldError {
            message: format!("unknown field \"{field}\""),
            path,
        });
    });
    if let Err(e) = decoded {
        let path = field_path(&track.path());
        errors.push(FieldError {
            path,
            message: e.to_string(),
        });
    }
    errors
}

fn ignored_path(ignored: &serde_ignored::Path<'_>, out: &mut FieldPath) {
    use serde_ignored::Path;
    match ignored {
        Path::Root => {}
        Path::Seq { parent, index } => {
            ignored_path(parent, out);
            out.push_index(*index);
        }
        Path::Map { parent, key } => {
            ignored_path(parent, out);
            out.push_field(key);
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => ignored_path(parent, out),
    }
}

fn field_path(path: &serde_path_to_error::Path) -> FieldPath {
    use serde_path_to_error::Segment;
    let mut out = FieldPath::root();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_index(*index),
            Segment::Map { key } => out.push_field(key),
            Segment::Enum { variant } => out.push_field(variant),
            Segment::Unknown => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_a_subdomain_of_up_to_253_bytes_with_labels_of_any_length() {
        assert!(is_dns_subdomain(&"a".repeat(253)));
        assert!(!is_dns_subdomain(&"a".repeat(254)));
        assert!(is_dns_subdomain("a.b-c.d"));
        for bad in ["", "A", "a..b", "-a", "a-", "a_b"] {
            assert!(!is_dns_subdomain(bad), "{bad}");
        }
        assert!(!is_dns_label(&"a".repeat(64)));
    }
}
