//! Typed Kubernetes objects (gateway-api + k8s-openapi) and the YAML loader of standalone mode.
//!
//! A YAML syntax error or an object that does not decode into its type rejects the whole load:
//! serving the last good configuration is better than silently dropping a route over a typo.
//! Unknown kinds are reported as warnings and ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gateway_api::apis::standard::gatewayclasses::GatewayClass;
use gateway_api::apis::standard::gateways::Gateway;
use gateway_api::apis::standard::httproutes::HttpRoute;
use gateway_api::apis::standard::referencegrants::ReferenceGrant;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::Resource;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value;
use sha2::{Digest, Sha256};

/// The label the API server puts on every Namespace (Kubernetes 1.22+).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Every object translation looks at, each list sorted by namespace/name.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Resources {
    pub gateway_classes: Vec<GatewayClass>,
    pub gateways: Vec<Gateway>,
    pub http_routes: Vec<HttpRoute>,
    pub reference_grants: Vec<ReferenceGrant>,
    pub services: Vec<Service>,
    pub endpoint_slices: Vec<EndpointSlice>,
    pub secrets: Vec<Secret>,
    pub namespaces: Vec<Namespace>,
}

/// The result of loading YAML: the objects, and what was ignored (unknown kinds).
#[derive(Debug, Default, Clone)]
pub struct LoadedConfig {
    pub resources: Resources,
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: YAML syntax error: {source}", path.display())]
    Syntax {
        path: PathBuf,
        #[source]
        source: serde_yaml_ng::Error,
    },
    #[error("{}: {object}: {problem}", path.display())]
    Invalid {
        path: PathBuf,
        object: String,
        problem: String,
    },
    #[error("{}: {object}: field `{field}`: {source}", path.display())]
    Decode {
        path: PathBuf,
        object: String,
        field: String,
        #[source]
        source: serde_yaml_ng::Error,
    },
    #[error("{object} is defined twice: in {first} and in {second}")]
    Duplicate {
        object: String,
        first: String,
        second: String,
    },
}

impl Resources {
    /// Parses one multi-document YAML text; `path` only names it in errors.
    pub fn from_yaml_documents(path: &Path, text: &str) -> Result<LoadedConfig, ConfigError> {
        let mut loader = Loader::default();
        loader.add_text(path, text)?;
        Ok(loader.finish())
    }

    /// Loads a YAML file, or every `*.yaml` / `*.yml` file of a directory (sorted by name).
    pub fn load_path(path: &Path) -> Result<LoadedConfig, ConfigError> {
        let read_err = |source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        };
        let mut loader = Loader::default();
        if path.is_dir() {
            let mut files = Vec::new();
            for entry in std::fs::read_dir(path).map_err(read_err)? {
                let file = entry.map_err(read_err)?.path();
                if is_yaml_file(&file) {
                    files.push(file);
                }
            }
            files.sort();
            for file in files {
                let text = std::fs::read_to_string(&file).map_err(|source| ConfigError::Read {
                    path: file.clone(),
                    source,
                })?;
                loader.add_text(&file, &text)?;
            }
        } else {
            let text = std::fs::read_to_string(path).map_err(read_err)?;
            loader.add_text(path, &text)?;
        }
        Ok(loader.finish())
    }

    /// Calls `f` with every object's kind, metadata, and a fingerprint of everything but its
    /// metadata and status (what bumps `metadata.generation` in a cluster).
    pub fn for_each_meta_mut(
        &mut self,
        mut f: impl FnMut(&'static str, &mut ObjectMeta, &Fingerprint),
    ) {
        fn each<K: Resource + Serialize>(
            kind: &'static str,
            list: &mut [K],
            f: &mut impl FnMut(&'static str, &mut ObjectMeta, &Fingerprint),
        ) {
            for obj in list {
                let print = fingerprint(obj);
                f(kind, obj.meta_mut(), &print);
            }
        }
        each("GatewayClass", &mut self.gateway_classes, &mut f);
        each("Gateway", &mut self.gateways, &mut f);
        each("HTTPRoute", &mut self.http_routes, &mut f);
        each("ReferenceGrant", &mut self.reference_grants, &mut f);
        each("Service", &mut self.services, &mut f);
        each("EndpointSlice", &mut self.endpoint_slices, &mut f);
        each("Secret", &mut self.secrets, &mut f);
        each("Namespace", &mut self.namespaces, &mut f);
    }

    /// A SHA-256 over every object as loaded, metadata included: equal digests, same input.
    /// Standalone mode keeps this, not a copy of the objects, to skip reloads that change nothing.
    pub fn digest(&self) -> Fingerprint {
        fn each<K: Serialize>(hasher: &mut Sha256, kind: &str, list: &[K]) {
            hasher.update(kind.as_bytes());
            for obj in list {
                match serde_json::to_vec(obj) {
                    Ok(bytes) => {
                        // Length-prefixed, so object boundaries are part of what is hashed.
                        hasher.update((bytes.len() as u64).to_le_bytes());
                        hasher.update(&bytes);
                    }
                    Err(e) => hasher.update(format!("unserializable: {e}").as_bytes()),
                }
            }
        }
        let mut hasher = Sha256::new();
        each(&mut hasher, "GatewayClass", &self.gateway_classes);
        each(&mut hasher, "Gateway", &self.gateways);
        each(&mut hasher, "HTTPRoute", &self.http_routes);
        each(&mut hasher, "ReferenceGrant", &self.reference_grants);
        each(&mut hasher, "Service", &self.services);
        each(&mut hasher, "EndpointSlice", &self.endpoint_slices);
        each(&mut hasher, "Secret", &self.secrets);
        each(&mut hasher, "Namespace", &self.namespaces);
        hasher.finalize().into()
    }

    fn sort(&mut self) {
        fn by_key<K: Resource>(list: &mut [K]) {
            list.sort_by(|a, b| {
                (a.meta().namespace.as_deref(), a.meta().name.as_deref())
                    .cmp(&(b.meta().namespace.as_deref(), b.meta().name.as_deref()))
            });
        }
        by_key(&mut self.gateway_classes);
        by_key(&mut self.gateways);
        by_key(&mut self.http_routes);
        by_key(&mut self.reference_grants);
        by_key(&mut self.services);
        by_key(&mut self.endpoint_slices);
        by_key(&mut self.secrets);
        by_key(&mut self.namespaces);
    }
}

/// What an object's generation follows: a SHA-256 of everything but its metadata and status.
/// A digest rather than the text, because standalone mode keeps one per object for its whole
/// life (at 5,000 routes the texts were megabytes).
pub type Fingerprint = [u8; 32];

fn fingerprint<K: Serialize>(obj: &K) -> Fingerprint {
    let text = match serde_json::to_value(obj) {
        Ok(serde_json::Value::Object(mut map)) => {
            map.remove("metadata");
            map.remove("status");
            serde_json::Value::Object(map).to_string()
        }
        Ok(other) => other.to_string(),
        Err(e) => format!("unserializable: {e}"),
    };
    Sha256::digest(text.as_bytes()).into()
}

fn is_yaml_file(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_none_or(|n| n.starts_with('.'));
    let yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    path.is_file() && yaml && !hidden
}

// === impl Loader ===

#[derive(Default)]
struct Loader {
    resources: Resources,
    warnings: Vec<String>,
    /// `Kind ns/name` -> where it was first defined, to report duplicates.
    seen: BTreeMap<String, String>,
}

/// Just enough of an object to route it to its type and name it in errors.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    metadata: Option<HeaderMeta>,
}

#[derive(Deserialize)]
struct HeaderMeta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
}

const GATEWAY_GROUP: &str = "gateway.networking.k8s.io/";

impl Loader {
    fn add_text(&mut self, path: &Path, text: &str) -> Result<(), ConfigError> {
        for (index, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            let value = Value::deserialize(doc).map_err(|source| ConfigError::Syntax {
                path: path.to_path_buf(),
                source,
            })?;
            let origin = format!("{} (document {})", path.display(), index + 1);
            self.add_value(path, &origin, value, &format!("document {}", index + 1))?;
        }
        Ok(())
    }

    fn add_value(
        &mut self,
        path: &Path,
        origin: &str,
        value: Value,
        position: &str,
    ) -> Result<(), ConfigError> {
        if value.is_null() {
            return Ok(());
        }
        let invalid = |object: &str, problem: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            object: object.to_string(),
            problem,
        };
        if !value.is_mapping() {
            return Err(invalid(
                position,
                "not a Kubernetes object (a mapping)".into(),
            ));
        }
        let header: Header = serde_yaml_ng::from_value(value.clone()).map_err(|e| {
            invalid(
                position,
                format!("unreadable apiVersion/kind/metadata: {e}"),
            )
        })?;
        let (Some(api_version), Some(kind)) = (header.api_version, header.kind) else {
            return Err(invalid(position, "apiVersion and kind are required".into()));
        };
        if kind == "List" {
            let items = match value.get("items") {
                Some(Value::Sequence(items)) => items.clone(),
                _ => return Err(invalid(position, "a List needs an `items` sequence".into())),
            };
            for (i, item) in items.into_iter().enumerate() {
                self.add_value(path, origin, item, &format!("{position} item {}", i + 1))?;
            }
            return Ok(());
        }
        let meta = header.metadata.unwrap_or(HeaderMeta {
            name: None,
            namespace: None,
        });
        let Some(name) = meta.name.filter(|n| !n.is_empty()) else {
            return Err(invalid(
                &format!("{position} ({kind})"),
                "metadata.name is required".into(),
            ));
        };
        let namespaced = kind != "GatewayClass" && kind != "Namespace";
        let namespace = namespaced.then(|| meta.namespace.unwrap_or_else(|| "default".into()));
        let object = match &namespace {
            Some(ns) => format!("{kind} {ns}/{name}"),
            None => format!("{kind} {name}"),
        };
        let ctx = Ctx {
            path,
            object: &object,
            namespace,
        };
        let gateway_api = api_version == format!("{GATEWAY_GROUP}v1")
            || api_version == format!("{GATEWAY_GROUP}v1beta1");
        match (api_version.as_str(), kind.as_str()) {
            (_, "GatewayClass") if gateway_api => {
                self.resources.gateway_classes.push(decode(value, &ctx)?)
            }
            (_, "Gateway") if gateway_api => self.resources.gateways.push(decode(value, &ctx)?),
            (_, "HTTPRoute") if gateway_api => {
                self.resources.http_routes.push(decode(value, &ctx)?)
            }
            (_, "ReferenceGrant") if gateway_api => {
                self.resources.reference_grants.push(decode(value, &ctx)?)
            }
            ("v1", "Service") => self.resources.services.push(decode(value, &ctx)?),
            ("v1", "Secret") => {
                let mut secret: Secret = decode(value, &ctx)?;
                merge_string_data(&mut secret);
                self.resources.secrets.push(secret);
            }
            ("v1", "Namespace") => {
                let mut ns: Namespace = decode(value, &ctx)?;
                ns.metadata
                    .labels
                    .get_or_insert_with(Default::default)
                    .insert(NAMESPACE_NAME_LABEL.into(), name.clone());
                self.resources.namespaces.push(ns);
            }
            ("discovery.k8s.io/v1", "EndpointSlice") => {
                self.resources.endpoint_slices.push(decode(value, &ctx)?)
            }
            _ => {
                self.warnings.push(format!(
                    "{}: {object} ({api_version}): kind not used by Sluice, ignored",
                    path.display()
                ));
                return Ok(());
            }
        }
        if let Some(first) = self.seen.insert(object.clone(), origin.to_string()) {
            return Err(ConfigError::Duplicate {
                object,
                first,
                second: origin.to_string(),
            });
        }
        Ok(())
    }

    fn finish(mut self) -> LoadedConfig {
        self.resources.sort();
        LoadedConfig {
            resources: self.resources,
            warnings: self.warnings,
        }
    }
}

struct Ctx<'a> {
    path: &'a Path,
    object: &'a str,
    namespace: Option<String>,
}

fn decode<K: Resource + DeserializeOwned>(value: Value, ctx: &Ctx<'_>) -> Result<K, ConfigError> {
    let mut obj: K = serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        ConfigError::Decode {
            path: ctx.path.to_path_buf(),
            object: ctx.object.to_string(),
            field,
            source: e.into_inner(),
        }
    })?;
    if let Some(ns) = &ctx.namespace {
        obj.meta_mut().namespace = Some(ns.clone());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<LoadedConfig, ConfigError> {
        Resources::from_yaml_documents(Path::new("test.yaml"), text)
    }

    #[test]
    fn multi_document_yaml_decodes_known_kinds_and_defaults_namespace() {
        let cfg = load(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw}\n\
             spec: {gatewayClassName: c, listeners: [{name: http, port: 80, protocol: HTTP}]}\n---\n\
             apiVersion: v1\nkind: Service\nmetadata: {name: svc, namespace: app}\n---\n",
        )
        .expect("loads");
        assert_eq!(cfg.resources.gateways.len(), 1);
        assert_eq!(
            cfg.resources.gateways[0].metadata.namespace.as_deref(),
            Some("default")
        );
        assert_eq!(
            cfg.resources.services[0].metadata.namespace.as_deref(),
            Some("app")
        );
    }

    #[test]
    fn wrong_field_type_names_file_object_and_field() {
        let err = load(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: ns}\n\
             spec: {gatewayClassName: c, listeners: [{name: http, port: eighty, protocol: HTTP}]}\n",
        )
        .expect_err("port is not a number");
        let msg = err.to_string();
        assert!(msg.contains("test.yaml"), "{msg}");
        assert!(msg.contains("Gateway ns/gw"), "{msg}");
        assert!(msg.contains("spec.listeners[0].port"), "{msg}");
    }

    #[test]
    fn syntax_error_is_reported_with_the_file() {
        let err = load("kind: [unclosed\n").expect_err("syntax error");
        assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
        assert!(err.to_string().contains("test.yaml"));
    }

    #[test]
    fn unknown_kind_is_a_warning_not_an_error() {
        let cfg =
            load("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n").expect("loads");
        assert_eq!(cfg.warnings.len(), 1);
        assert!(
            cfg.warnings[0].contains("Deployment default/d"),
            "{:?}",
            cfg.warnings
        );
    }

    #[test]
    fn duplicate_object_names_both_places() {
        let err = load(
            "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\n",
        )
        .expect_err("duplicate");
        let msg = err.to_string();
        assert!(
            msg.contains("document 1") && msg.contains("document 2"),
            "{msg}"
        );
    }

    #[test]
    fn missing_kind_or_name_is_an_error() {
        assert!(load("apiVersion: v1\nmetadata: {name: s}\n").is_err());
        assert!(load("apiVersion: v1\nkind: Service\nmetadata: {}\n").is_err());
        assert!(load("- just\n- a list\n").is_err());
    }

    #[test]
    fn secret_string_data_is_merged_into_data() {
        let cfg =
            load("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {tls.crt: abc}\n")
                .expect("loads");
        let data = cfg.resources.secrets[0].data.as_ref().expect("data");
        assert_eq!(
            data.get("tls.crt").map(|b| b.0.as_slice()),
            Some(&b"abc"[..])
        );
    }

    #[test]
    fn directory_load_reads_yaml_files_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("a.yaml"),
            "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n",
        )
        .expect("write");
        std::fs::write(
            dir.path().join("b.yml"),
            "apiVersion: v1\nkind: Service\nmetadata: {name: b}\n",
        )
        .expect("write");
        std::fs::write(dir.path().join("notes.txt"), "not: yaml: at: all: [").expect("write");
        let cfg = Resources::load_path(dir.path()).expect("loads");
        assert_eq!(cfg.resources.services.len(), 2);
    }
}
