//! BackendTLSPolicy (`gateway.networking.k8s.io/v1`): the generated types lack it, so it is
//! written here, holding only the fields the v1.6.1 CRD defines (admission already checked them).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// How the Gateway connects over TLS to the Services the policy targets.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1",
    kind = "BackendTLSPolicy",
    plural = "backendtlspolicies"
)]
#[kube(namespaced)]
#[kube(schema = "disabled")]
#[kube(derive = "Default")]
#[kube(derive = "PartialEq")]
#[kube(status = "PolicyStatus")]
pub struct BackendTlsPolicySpec {
    /// Implementation-specific options; Sluice recognises none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<BTreeMap<String, String>>,
    /// The Services (and optionally their named ports) the policy applies to.
    #[serde(rename = "targetRefs")]
    pub target_refs: Vec<PolicyTargetRef>,
    /// What the backend's certificate must satisfy.
    pub validation: BackendTlsValidation,
}

/// `targetRefs[]`: a local object and optionally one of its sections (a Service port name).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct PolicyTargetRef {
    /// The target's API group (`""` for core).
    pub group: String,
    /// The target's kind (`Service`).
    pub kind: String,
    /// The target's name, in the policy's namespace.
    pub name: String,
    /// A port name of the Service; absent means every port.
    #[serde(
        default,
        rename = "sectionName",
        skip_serializing_if = "Option::is_none"
    )]
    pub section_name: Option<String>,
}

/// `spec.validation`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct BackendTlsValidation {
    /// ConfigMaps (key `ca.crt`) holding the CA certificates that sign the backend's certificate.
    #[serde(
        default,
        rename = "caCertificateRefs",
        skip_serializing_if = "Option::is_none"
    )]
    pub ca_certificate_refs: Option<Vec<LocalObjectRef>>,
    /// `System`: the platform's trusted CAs instead of `caCertificateRefs`.
    #[serde(
        default,
        rename = "wellKnownCACertificates",
        skip_serializing_if = "Option::is_none"
    )]
    pub well_known_ca_certificates: Option<String>,
    /// The SNI sent, and the name the certificate must carry when `subjectAltNames` is empty.
    pub hostname: String,
    /// Names the certificate must carry one of (instead of `hostname`).
    #[serde(
        default,
        rename = "subjectAltNames",
        skip_serializing_if = "Option::is_none"
    )]
    pub subject_alt_names: Option<Vec<SubjectAltName>>,
}

/// A reference to an object in the policy's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct LocalObjectRef {
    /// The API group (`""` for core).
    pub group: String,
    /// The kind (`ConfigMap`).
    pub kind: String,
    /// The name.
    pub name: String,
}

/// `subjectAltNames[]`: a DNS name or a URI (such as a SPIFFE ID).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct SubjectAltName {
    /// `Hostname` or `URI`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Set when `type` is `Hostname`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Set when `type` is `URI`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
}

/// A policy's status: one entry per ancestor (Gateway) it affects.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct PolicyStatus {
    /// One entry per Gateway whose routes reach a targeted Service.
    pub ancestors: Vec<PolicyAncestorStatus>,
}

/// `status.ancestors[]`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct PolicyAncestorStatus {
    /// The Gateway.
    #[serde(rename = "ancestorRef")]
    pub ancestor_ref: AncestorRef,
    /// Sluice's controller name.
    #[serde(rename = "controllerName")]
    pub controller_name: String,
    /// `Accepted` and `ResolvedRefs`.
    pub conditions: Vec<Condition>,
}

/// `ancestorRef`: a parentRef naming a Gateway.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct AncestorRef {
    /// `gateway.networking.k8s.io`.
    pub group: String,
    /// `Gateway`.
    pub kind: String,
    /// The Gateway's name.
    pub name: String,
    /// The Gateway's namespace.
    pub namespace: String,
}

impl AncestorRef {
    /// The ancestor entry of Gateway `namespace/name`.
    pub fn gateway(namespace: String, name: String) -> AncestorRef {
        AncestorRef {
            group: "gateway.networking.k8s.io".into(),
            kind: "Gateway".into(),
            name,
            namespace,
        }
    }
}
