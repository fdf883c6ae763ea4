//! Typed Kubernetes objects (gateway-api + k8s-openapi) and the YAML loader of standalone mode.
//!
//! Any error rejects the whole load, and every error of the load is reported at once: serving
//! the last good configuration is better than silently dropping a route over a typo. Objects are
//! admitted as the API server would (see `validation`); unknown kinds are errors.

pub mod backend_tls_policy;
mod lines;
mod listener_set;
mod loader;
pub mod mirror_policy;

use std::path::{Path, PathBuf};

use gateway_api::apis::experimental::gatewayclasses::GatewayClass;
use gateway_api::apis::experimental::gateways::Gateway;
use gateway_api::apis::experimental::grpcroutes::GrpcRoute;
use gateway_api::apis::experimental::httproutes::HttpRoute;
use gateway_api::apis::experimental::referencegrants::ReferenceGrant;
use gateway_api::apis::experimental::tlsroutes::TlsRoute;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::Serialize;
use sha2::{Digest, Sha256};

use self::backend_tls_policy::BackendTLSPolicy;
pub use self::listener_set::{
    ListenerSet, ListenerSetParentRef, ListenerSetSpec, ListenerSetStatus,
};
use self::loader::Loader;
use self::mirror_policy::MirrorPolicy;
use crate::validation::FieldError;

/// The label the API server puts on every Namespace (Kubernetes 1.22+).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Every object translation looks at, each list sorted by namespace/name.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Resources {
    /// Every GatewayClass, whichever controller it names.
    pub gateway_classes: Vec<GatewayClass>,
    /// Every Gateway, of any class.
    pub gateways: Vec<Gateway>,
    /// Every HTTPRoute.
    pub http_routes: Vec<HttpRoute>,
    /// Every GRPCRoute.
    pub grpc_routes: Vec<GrpcRoute>,
    /// Every TLSRoute (stored as v1, whichever served version it was written in).
    pub tls_routes: Vec<TlsRoute>,
    /// ReferenceGrants, which allow cross-namespace backendRefs and certificateRefs.
    pub reference_grants: Vec<ReferenceGrant>,
    /// Services: backendRef targets and their ports' `appProtocol`.
    pub services: Vec<Service>,
    /// EndpointSlices, which give each Service port its ready endpoints.
    pub endpoint_slices: Vec<EndpointSlice>,
    /// Secrets: the TLS certificates listeners refer to.
    pub secrets: Vec<Secret>,
    /// Namespaces, for listeners' `allowedRoutes.namespaces.selector`.
    pub namespaces: Vec<Namespace>,
    /// ConfigMaps: the CA certificates (`ca.crt`) that TLS validation settings refer to.
    pub config_maps: Vec<ConfigMap>,
    /// ListenerSets: more listeners for a Gateway whose `allowedListeners` admits them.
    pub listener_sets: Vec<ListenerSet>,
    /// BackendTLSPolicies: TLS settings for the Services (ports) they target.
    pub backend_tls_policies: Vec<BackendTLSPolicy>,
    /// MirrorPolicies (sluice.dev): copy shaping and shadow diff for the routes they target.
    pub mirror_policies: Vec<MirrorPolicy>,
}

/// The result of loading YAML: the objects, and warnings about valid objects of kinds Sluice does
/// not serve (unknown kinds are errors).
#[derive(Debug, Default, Clone)]
pub struct LoadedConfig {
    /// The objects loaded.
    pub resources: Resources,
    /// One `FILE:LINE: KIND NAMESPACE/NAME: ...; ignored` line per object that is valid but of a
    /// kind Sluice does not serve.
    pub warnings: Vec<String>,
}

/// One reason a load is rejected, printed `FILE:LINE: KIND NAMESPACE/NAME: field.path: message`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A document is not valid YAML.
    #[error("{}:{line}: YAML syntax error: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// The YAML parser's message.
        message: String,
    },
    /// An object fails admission (as the API server would reject it).
    #[error("{}:{line}: {object}: {error}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line of the offending field, or of its nearest ancestor.
        line: usize,
        /// `KIND NAMESPACE/NAME` of the object.
        object: String,
        /// The field path and what is wrong with it.
        error: FieldError,
    },
    /// Two objects with the same kind, namespace and name.
    #[error("{}:{line}: {object}: defined twice; first at {first}", path.display())]
    Duplicate {
        /// The file of the second one.
        path: PathBuf,
        /// 1-based line of the second one.
        line: usize,
        /// `KIND NAMESPACE/NAME` of the object.
        object: String,
        /// `FILE:LINE` of the first one.
        first: String,
    },
}

/// Every error of one load, in file and line order; displayed one per line.
#[derive(Debug)]
pub struct LoadErrors(pub Vec<ConfigError>);

impl std::fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}

impl LoadErrors {
    fn sort(&mut self) {
        self.0.sort_by_key(|e| match e {
            ConfigError::Read { path, .. } => (path.clone(), 0),
            ConfigError::Syntax { path, line, .. }
            | ConfigError::Invalid { path, line, .. }
            | ConfigError::Duplicate { path, line, .. } => (path.clone(), *line),
        });
    }
}

impl Resources {
    /// Parses one multi-document YAML text; `path` only names it in errors.
    pub fn from_yaml_documents(path: &Path, text: &str) -> Result<LoadedConfig, LoadErrors> {
        let mut loader = Loader::default();
        loader.add_text(path, text);
        finish(loader)
    }

    /// Loads a YAML file, or every `*.yaml` / `*.yml` file of a directory (sorted by name).
    pub fn load_path(path: &Path) -> Result<LoadedConfig, LoadErrors> {
        let read_err = |source| {
            LoadErrors(vec![ConfigError::Read {
                path: path.to_path_buf(),
                source,
            }])
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
                match std::fs::read_to_string(&file) {
                    Ok(text) => loader.add_text(&file, &text),
                    Err(source) => loader.errors.push(ConfigError::Read { path: file, source }),
                }
            }
        } else {
            let text = std::fs::read_to_string(path).map_err(read_err)?;
            loader.add_text(path, &text);
        }
        finish(loader)
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
        each("GRPCRoute", &mut self.grpc_routes, &mut f);
        each("TLSRoute", &mut self.tls_routes, &mut f);
        each("ReferenceGrant", &mut self.reference_grants, &mut f);
        each("Service", &mut self.services, &mut f);
        each("EndpointSlice", &mut self.endpoint_slices, &mut f);
        each("Secret", &mut self.secrets, &mut f);
        each("Namespace", &mut self.namespaces, &mut f);
        each("ConfigMap", &mut self.config_maps, &mut f);
        each("ListenerSet", &mut self.listener_sets, &mut f);
        each("BackendTLSPolicy", &mut self.backend_tls_policies, &mut f);
        each("MirrorPolicy", &mut self.mirror_policies, &mut f);
    }

    /// A SHA-256 over every object as loaded, metadata included: equal digests, same input.
    /// Both sources keep this, not a copy of the objects, to skip reloads that change nothing.
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
        each(&mut hasher, "GRPCRoute", &self.grpc_routes);
        each(&mut hasher, "TLSRoute", &self.tls_routes);
        each(&mut hasher, "ReferenceGrant", &self.reference_grants);
        each(&mut hasher, "Service", &self.services);
        each(&mut hasher, "EndpointSlice", &self.endpoint_slices);
        each(&mut hasher, "Secret", &self.secrets);
        each(&mut hasher, "Namespace", &self.namespaces);
        each(&mut hasher, "ConfigMap", &self.config_maps);
        each(&mut hasher, "ListenerSet", &self.listener_sets);
        each(&mut hasher, "BackendTLSPolicy", &self.backend_tls_policies);
        each(&mut hasher, "MirrorPolicy", &self.mirror_policies);
        hasher.finalize().into()
    }

    /// Sorts every list by namespace/name, the order translation expects.
    pub fn sort(&mut self) {
        fn by_key<K: Resource>(list: &mut [K]) {
            list.sort_by(|a, b| {
                (a.meta().namespace.as_deref(), a.meta().name.as_deref())
                    .cmp(&(b.meta().namespace.as_deref(), b.meta().name.as_deref()))
            });
        }
        by_key(&mut self.gateway_classes);
        by_key(&mut self.gateways);
        by_key(&mut self.http_routes);
        by_key(&mut self.grpc_routes);
        by_key(&mut self.tls_routes);
        by_key(&mut self.reference_grants);
        by_key(&mut self.services);
        by_key(&mut self.endpoint_slices);
        by_key(&mut self.secrets);
        by_key(&mut self.namespaces);
        by_key(&mut self.config_maps);
        by_key(&mut self.listener_sets);
        by_key(&mut self.backend_tls_policies);
        by_key(&mut self.mirror_policies);
    }
}

fn finish(loader: Loader) -> Result<LoadedConfig, LoadErrors> {
    if loader.errors.is_empty() {
        return Ok(loader.finish());
    }
    let mut errors = LoadErrors(loader.errors);
    errors.sort();
    Err(errors)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<LoadedConfig, LoadErrors> {
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
        assert!(matches!(err.0[..], [ConfigError::Syntax { .. }]), "{err}");
        assert!(err.to_string().contains("test.yaml"));
    }

    #[test]
    fn unknown_kind_is_an_error_naming_the_kind_meant() {
        let err = load(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoutes\nmetadata: {name: r}\n",
        )
        .expect_err("no such kind");
        assert_eq!(
            err.to_string(),
            "test.yaml:1: HTTPRoutes default/r: no matches for kind \"HTTPRoutes\" in version \
             \"gateway.networking.k8s.io/v1\" (did you mean \"HTTPRoute\"?)"
        );
    }

    #[test]
    fn every_error_of_a_load_is_reported_in_line_order() {
        let err = load(
            "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {prots: []}\n---\n\
             apiVersion: v1\nkind: Service\nmetadata: {name: b}\nspec:\n  selector: {}\n  typo: 1\n",
        )
        .expect_err("two unknown fields");
        assert_eq!(
            err.to_string(),
            "test.yaml:4: Service default/a: spec.prots: unknown field \"prots\"\n\
             test.yaml:11: Service default/b: spec.typo: unknown field \"typo\""
        );
    }

    #[test]
    fn known_but_unused_kind_is_a_warning_not_an_error() {
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
        assert_eq!(
            err.to_string(),
            "test.yaml:5: Service default/s: defined twice; first at test.yaml:1"
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
