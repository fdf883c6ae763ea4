//! The `expect` of an HTTP request entry (FORMAT.md §4.4).

use std::collections::BTreeMap;

use serde::Deserialize;

/// `status: 200` or `status: [200, 204]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum StatusSet {
    One(u16),
    Any(Vec<u16>),
}

impl StatusSet {
    pub fn codes(&self) -> Vec<u16> {
        match self {
            StatusSet::One(code) => vec![*code],
            StatusSet::Any(codes) => codes.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendRef {
    pub namespace: Option<String>,
    pub service: Option<String>,
}

/// `backend: none` (the answer must not be an echo) or the answering backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectBackend {
    None,
    Some(BackendRef),
}

impl<'de> Deserialize<'de> for ExpectBackend {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Word(String),
            Backend(BackendRef),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Word(word) if word == "none" => Ok(ExpectBackend::None),
            Raw::Word(word) => Err(serde::de::Error::custom(format!(
                "backend: expected `none` or a mapping, got {word:?}"
            ))),
            Raw::Backend(backend) => Ok(ExpectBackend::Some(backend)),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretKeyRef {
    pub secret: String,
    pub key: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExpectRequest {
    pub method: Option<String>,
    pub path: Option<String>,
    pub host: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub absent_headers: Vec<String>,
    pub sni: Option<String>,
    pub client_cert: Option<SecretKeyRef>,
    pub http_port: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExpectResponse {
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub valid_header_values: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub absent_headers: Vec<String>,
    #[serde(default)]
    pub ignore_whitespace: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectRedirect {
    pub scheme: Option<String>,
    pub host: Option<String>,
    pub port: Option<String>,
    pub path: Option<String>,
}

/// A WebSocket frame that must come back unchanged: `{text: ...}` or `{binary: [bytes]}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Frame {
    Text { text: String },
    Binary { binary: Vec<u8> },
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Expect {
    pub status: Option<StatusSet>,
    pub protocol: Option<String>,
    pub backend: Option<ExpectBackend>,
    pub request: Option<ExpectRequest>,
    pub response: Option<ExpectResponse>,
    pub redirect: Option<ExpectRedirect>,
    #[serde(default)]
    pub mirrored_to: Vec<BackendRef>,
    pub not_status: Option<u16>,
    #[serde(default)]
    pub transport_error: bool,
    #[serde(default)]
    pub client_cert_requested: bool,
    pub pod_prefix_from_request_header: Option<String>,
    /// WebSocket entries: frames sent in order, each echoed back.
    #[serde(default)]
    pub echo: Vec<Frame>,
}
