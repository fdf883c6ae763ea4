//! MirrorPolicy (`sluice.dev/v1alpha1`): per-route settings of RequestMirror copies and shadow
//! diff, attached to HTTPRoutes and GRPCRoutes (or one of their named rules) as GEP-713 policy
//! attachment. The CRD in `deploy/base/crd-mirrorpolicy.yaml` is generated from these types
//! (`SLUICE_BLESS=1 cargo test -p sluice-controller --test mirror_policy_crd`).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use kube::{CustomResource, CustomResourceExt};
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::backend_tls_policy::PolicyStatus;

/// The API group of MirrorPolicy.
pub const GROUP: &str = "sluice.dev";

/// Shapes the RequestMirror copies of the routes (or rules) it targets and, with `compare`,
/// compares each mirror's answer with production's.
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "MirrorPolicy",
    plural = "mirrorpolicies",
    doc = "Per-route settings of RequestMirror copies and shadow diff (GEP-713 policy attachment)."
)]
#[kube(namespaced)]
#[kube(derive = "Default")]
#[kube(derive = "PartialEq")]
#[kube(status = "PolicyStatus")]
#[kube(category = "sluice")]
#[serde(rename_all = "camelCase")]
pub struct MirrorPolicySpec {
    /// The HTTPRoutes and GRPCRoutes (in the policy's namespace) whose RequestMirror filters this
    /// policy shapes; with `sectionName`, only the rule of that name.
    #[schemars(length(min = 1, max = 16))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "message": "targetRefs must be unique",
        "rule": "self.all(t1, self.exists_one(t2, t1.kind == t2.kind && t1.name == t2.name && \
                 (has(t1.sectionName) ? t1.sectionName : '') == \
                 (has(t2.sectionName) ? t2.sectionName : '')))",
    }]))]
    pub target_refs: Vec<MirrorTargetRef>,
    /// How every copy is shaped; absent leaves the data plane's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<CopyRequest>,
    /// Shadow diff: what of the mirror's answer is compared with production's; absent means no
    /// comparison.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<CompareSpec>,
}

/// `targetRefs[]`: a route in the policy's namespace, or one of its named rules.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[schemars(extend("x-kubernetes-validations" = [{
    "message": "group must be gateway.networking.k8s.io",
    "rule": "self.group == 'gateway.networking.k8s.io'",
}]))]
#[serde(rename_all = "camelCase")]
pub struct MirrorTargetRef {
    /// `gateway.networking.k8s.io`.
    #[schemars(length(max = 253))]
    pub group: String,
    /// `HTTPRoute` or `GRPCRoute`.
    #[schemars(extend("enum" = ["HTTPRoute", "GRPCRoute"]))]
    pub kind: String,
    /// The route's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The name of one rule of the route (`rules[].name`); absent means every rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub section_name: Option<String>,
}

/// `request`: how a copy differs from the primary request.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[schemars(extend("x-kubernetes-validations" = [{
    "message": "hostSuffix and hostRewrite are mutually exclusive",
    "rule": "!(has(self.hostSuffix) && has(self.hostRewrite))",
}]))]
#[serde(rename_all = "camelCase")]
pub struct CopyRequest {
    /// Appended to the copy's host name, before any port (`-shadow`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[-a-z0-9.]+$"))]
    pub host_suffix: Option<String>,
    /// Replaces the copy's host name; the port, if any, is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub host_rewrite: Option<String>,
    /// Header changes of the copy, in the shape of Gateway API's HTTPHeaderFilter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<HeaderFilter>,
    /// Drop `Authorization`, `Proxy-Authorization` and `Cookie` from the copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strip_credentials: Option<bool>,
    /// From the end of the copy's body to the mirror's answer (Gateway API duration: `5s`);
    /// more than `0s` (a zero timeout would abort every copy) and at most `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "message": "timeout must be more than 0s and at most 1h",
        "rule": "duration(self) > duration('0s') && duration(self) <= duration('1h')",
    }]))]
    pub timeout: Option<String>,
    /// Body bytes one copy may hold queued before it is aborted: an integer or a quantity
    /// (`8Mi`, `500k`), at least 1 (a zero budget would abort every copy with a body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "byte_quantity")]
    pub max_body_bytes: Option<ByteQuantity>,
}

/// An integer or a Kubernetes quantity string, as written.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(untagged)]
pub enum ByteQuantity {
    /// A plain count of bytes.
    Int(i64),
    /// A quantity with an optional binary or decimal suffix.
    String(String),
}

/// `request.headers`: Gateway API's HTTPHeaderFilter, with its limits and patterns.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct HeaderFilter {
    /// Headers set on the copy, replacing any value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "header_values")]
    pub set: Option<Vec<HeaderValue>>,
    /// Headers added to the copy, keeping existing values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "header_values")]
    pub add: Option<Vec<HeaderValue>>,
    /// Headers removed from the copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "header_name_set")]
    pub remove: Option<Vec<String>>,
}

/// A header name and value.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct HeaderValue {
    /// The header's name.
    pub name: String,
    /// The header's value.
    pub value: String,
}

/// `compare`: which parts of the two answers are compared.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "message": "ignoreJSONFields requires body: true",
        "rule": "!has(self.ignoreJSONFields) || (has(self.body) && self.body)",
    },
    {
        "message": "at least one of status, headers or body must be compared",
        "rule": "(has(self.status) ? self.status : true) || \
                 (has(self.headers) && size(self.headers) > 0) || (has(self.body) && self.body)",
    },
]))]
#[serde(rename_all = "camelCase")]
pub struct CompareSpec {
    /// Percent of mirrored requests compared (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub percent: Option<i32>,
    /// Compare the status codes (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<bool>,
    /// Response headers compared by value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "header_name_set")]
    pub headers: Option<Vec<String>>,
    /// Compare a digest of the whole body (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<bool>,
    /// JSON Pointers (RFC 6901) ignored when both bodies are JSON.
    #[serde(
        default,
        rename = "ignoreJSONFields",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "json_pointers")]
    pub ignore_json_fields: Option<Vec<String>>,
    /// Mismatches kept for `/shadow` per route and mirror (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub samples: Option<i32>,
}

/// The default of `compare.samples`.
pub const DEFAULT_SAMPLES: usize = 10;

/// The longest `request.timeout` admitted: a copy held longer only ties up the mirror budget.
pub const MAX_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);

/// Gateway API's HTTPHeaderName pattern and length.
fn header_name() -> serde_json::Value {
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": 256,
        "pattern": "^[A-Za-z0-9!#$%&'*+\\-.^_\\x60|~]+$",
    })
}

fn header_values(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "nullable": true,
        "maxItems": 16,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
        "items": {
            "type": "object",
            "required": ["name", "value"],
            "properties": {
                "name": header_name(),
                "value": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 4096,
                    "pattern": "^[!-~]+([\\t ]?[!-~]+)*$",
                },
            },
        },
    })
}

fn header_name_set(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "nullable": true,
        "maxItems": 16,
        "x-kubernetes-list-type": "set",
        "items": header_name(),
    })
}

fn json_pointers(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "nullable": true,
        "maxItems": 16,
        "x-kubernetes-list-type": "set",
        "items": {
            "type": "string",
            "minLength": 1,
            "maxLength": 256,
            "pattern": "^(/([^/~]|~[01])*)+$",
        },
    })
}

/// `x-kubernetes-int-or-string` as controller-gen writes a `resource.Quantity`; the pattern
/// applies to strings, the minimum to integers. Whole bytes only: no fractions, no milli; and at
/// least one (the pattern wants a non-zero digit).
fn byte_quantity(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "x-kubernetes-int-or-string": true,
        "nullable": true,
        "minimum": 1,
        "pattern": "^0*[1-9][0-9]*(Ki|Mi|Gi|k|M|G)?$",
    })
}

impl JsonSchema for PolicyStatus {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PolicyStatus".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let condition = json!({
            "type": "object",
            "required": ["lastTransitionTime", "message", "reason", "status", "type"],
            "properties": {
                "lastTransitionTime": {"type": "string", "format": "date-time"},
                "message": {"type": "string", "maxLength": 32768},
                "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0},
                "reason": {"type": "string", "minLength": 1, "maxLength": 1024},
                "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
                "type": {"type": "string", "minLength": 1, "maxLength": 316},
            },
        });
        json_schema!({
            "description": "GEP-713 policy status: one entry per Gateway the policy affects.",
            "type": "object",
            "required": ["ancestors"],
            "properties": {
                "ancestors": {
                    "type": "array",
                    "maxItems": 16,
                    "items": {
                        "type": "object",
                        "required": ["ancestorRef", "controllerName", "conditions"],
                        "properties": {
                            "ancestorRef": {
                                "type": "object",
                                "required": ["group", "kind", "name", "namespace"],
                                "properties": {
                                    "group": {"type": "string"},
                                    "kind": {"type": "string"},
                                    "name": {"type": "string"},
                                    "namespace": {"type": "string"},
                                },
                            },
                            "controllerName": {"type": "string"},
                            "conditions": {
                                "type": "array",
                                "maxItems": 8,
                                "x-kubernetes-list-type": "map",
                                "x-kubernetes-list-map-keys": ["type"],
                                "items": condition,
                            },
                        },
                    },
                },
            },
        })
    }
}

/// The CRD: kube's derive, plus the `apiVersion`, `kind` and `metadata` properties
/// controller-gen writes at the root, which admission (here and in standalone mode) expects.
pub fn crd() -> CustomResourceDefinition {
    let mut crd = MirrorPolicy::crd();
    for version in &mut crd.spec.versions {
        let root = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut());
        if let Some(properties) = root.and_then(|r| r.properties.as_mut()) {
            let string = |description: &str| JSONSchemaProps {
                description: Some(description.into()),
                type_: Some("string".into()),
                ..JSONSchemaProps::default()
            };
            properties.insert(
                "apiVersion".into(),
                string("The versioned schema of this object: sluice.dev/v1alpha1."),
            );
            properties.insert("kind".into(), string("MirrorPolicy."));
            properties.insert(
                "metadata".into(),
                JSONSchemaProps {
                    type_: Some("object".into()),
                    ..JSONSchemaProps::default()
                },
            );
        }
    }
    crd
}

/// The CRD as YAML, exactly as committed in `deploy/base/crd-mirrorpolicy.yaml`.
pub fn crd_yaml() -> Result<String, serde_yaml_ng::Error> {
    let body = serde_yaml_ng::to_string(&crd())?;
    Ok(format!(
        "# Generated from controller/src/resources/mirror_policy.rs: do not edit. Regenerate with\n\
         # SLUICE_BLESS=1 cargo test -p sluice-controller --test mirror_policy_crd\n{body}"
    ))
}
