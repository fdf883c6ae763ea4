//! One conformance case file (shared FORMAT.md §3): its header, steps, status checks and request entries.
//!
//! Parsing is two-stage: the header decides whether a case runs at all, so a case whose features are not
//! claimed is skipped even when it uses request kinds this harness does not drive. Steps then parse strictly
//! (`deny_unknown_fields`): a key the harness does not understand is a clear error, never silently ignored.

mod expect;
mod grpc;
mod request;
mod status;
mod tcp;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml_ng::Value;

pub use expect::{
    BackendRef, Expect, ExpectBackend, ExpectRedirect, ExpectRequest, ExpectResponse, Frame,
    SecretKeyRef, StatusSet,
};
pub use grpc::{code_name, code_number, GrpcExpect, GrpcRequest};
pub use request::{
    Distribution, HttpRequest, Protocol, RequestEntry, RequestKind, TlsSettings, TrustRef,
    WebSocketRequest,
};
pub use status::{
    ConditionSpec, Conditions, ListenerConditions, ListenerExpect, ListenerSelection, ParentExpect,
    ParentRefExpect, StatusCheck,
};
pub use tcp::{TcpExpect, TcpMode, TcpRequest, TlsConnectRequest};

#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {what}", path.display())]
    Parse {
        path: PathBuf,
        what: String,
        #[source]
        source: serde_yaml_ng::Error,
    },
    #[error("{}: {problem}", path.display())]
    Invalid { path: PathBuf, problem: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NsName {
    pub namespace: String,
    pub name: String,
}

/// Which base manifests a case builds on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Base {
    #[default]
    Gateway,
    Mesh,
}

#[derive(Debug, Clone)]
pub struct Case {
    pub path: PathBuf,
    pub name: String,
    pub description: String,
    pub features: Vec<String>,
    pub provisional: bool,
    pub base: Base,
    pub skip_if_supported: Vec<String>,
    pub skip_unless_supported: Vec<String>,
    pub gateway: Option<NsName>,
    pub manifests: Option<String>,
    /// Raw steps; [`Case::steps`] parses them.
    raw_steps: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    features: Vec<String>,
    #[serde(default)]
    provisional: bool,
    #[serde(default)]
    base: Base,
    #[serde(default)]
    skip_if_supported: Vec<String>,
    #[serde(default)]
    skip_unless_supported: Vec<String>,
    gateway: Option<NsName>,
    manifests: Option<String>,
    #[serde(default)]
    steps: Vec<Value>,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub title: Option<String>,
    /// Overrides the case's default traffic target for a `requests` step.
    pub gateway: Option<NsName>,
    pub action: Action,
}

#[derive(Debug, Clone)]
pub enum Action {
    Status(Vec<StatusCheck>),
    Requests(Vec<RequestEntry>),
    Apply(String),
    Patch(Vec<Patch>),
    Delete(Vec<ObjectRef>),
    Sleep(String),
    FillEndpointSlices(FillEndpointSlices),
}

/// `fillEndpointSlices` (FORMAT.md §3): point existing hand-made EndpointSlices at a Deployment's pods.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FillEndpointSlices {
    pub namespace: String,
    pub endpoint_slices: Vec<String>,
    pub from_pods_of: PodsOf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodsOf {
    pub namespace: String,
    pub deployment: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Patch {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub json_patch: Option<serde_json::Value>,
    pub merge_patch: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawStep {
    title: Option<String>,
    notes: Option<Value>,
    gateway: Option<NsName>,
    status: Option<Vec<StatusCheck>>,
    requests: Option<Vec<RequestEntry>>,
    apply: Option<String>,
    patch: Option<Vec<Patch>>,
    delete: Option<Vec<ObjectRef>>,
    sleep: Option<String>,
    fill_endpoint_slices: Option<FillEndpointSlices>,
}

// === impl Case ===

impl Case {
    pub fn load(path: &Path) -> Result<Self, CaseError> {
        let text = std::fs::read_to_string(path).map_err(|source| CaseError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// `path` only names the case in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, CaseError> {
        let header: Header = serde_yaml_ng::from_str(text).map_err(|source| CaseError::Parse {
            path: path.to_path_buf(),
            what: "not a case file (header)".to_owned(),
            source,
        })?;
        if header.name.trim().is_empty() {
            return Err(CaseError::Invalid {
                path: path.to_path_buf(),
                problem: "`name` is empty".to_owned(),
            });
        }
        Ok(Case {
            path: path.to_path_buf(),
            name: header.name,
            description: header.description,
            features: header.features,
            provisional: header.provisional,
            base: header.base,
            skip_if_supported: header.skip_if_supported,
            skip_unless_supported: header.skip_unless_supported,
            gateway: header.gateway,
            manifests: header.manifests,
            raw_steps: header.steps,
        })
    }

    /// Parses every step; the first malformed one is reported with its index and title.
    pub fn steps(&self) -> Result<Vec<Step>, CaseError> {
        self.raw_steps
            .iter()
            .enumerate()
            .map(|(index, raw)| self.parse_step(index, raw))
            .collect()
    }

    fn parse_step(&self, index: usize, raw: &Value) -> Result<Step, CaseError> {
        let title = raw
            .get("title")
            .and_then(Value::as_str)
            .map(|t| format!(" ({t})"))
            .unwrap_or_default();
        let step: RawStep =
            serde_yaml_ng::from_value(raw.clone()).map_err(|source| CaseError::Parse {
                path: self.path.clone(),
                what: format!("step {}{title}", index + 1),
                source,
            })?;
        let _ = step.notes;
        let mut actions: Vec<Action> = [
            step.status.map(Action::Status),
            step.requests.map(Action::Requests),
            step.apply.map(Action::Apply),
            step.patch.map(Action::Patch),
            step.delete.map(Action::Delete),
            step.sleep.map(Action::Sleep),
            step.fill_endpoint_slices.map(Action::FillEndpointSlices),
        ]
        .into_iter()
        .flatten()
        .collect();
        let count = actions.len();
        let (Some(action), 1) = (actions.pop(), count) else {
            return Err(CaseError::Invalid {
                path: self.path.clone(),
                problem: format!(
                    "step {}{title}: needs exactly one action key, found {count}",
                    index + 1
                ),
            });
        };
        if let Action::Patch(patches) = &action {
            for p in patches {
                if p.json_patch.is_some() == p.merge_patch.is_some() {
                    return Err(CaseError::Invalid {
                        path: self.path.clone(),
                        problem: format!(
                            "step {}{title}: patch of {}/{} needs exactly one of jsonPatch, mergePatch",
                            index + 1,
                            p.kind,
                            p.name
                        ),
                    });
                }
            }
        }
        Ok(Step {
            title: step.title,
            gateway: step.gateway,
            action,
        })
    }
}

/// Every `*.yaml` case of a directory, sorted by file name.
pub fn case_files(dir: &Path) -> Result<Vec<PathBuf>, CaseError> {
    let read_err = |source| CaseError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let path = entry.map_err(read_err)?.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Conditions as written in a case: type -> `"<Status>"` / `"<Status>/<Reason>"` / `"*"`.
pub(crate) fn conditions_from_values(
    values: BTreeMap<String, Value>,
) -> Result<Vec<ConditionSpec>, String> {
    values
        .into_iter()
        .map(|(kind, value)| {
            let text = match value {
                Value::String(s) => s,
                // YAML reads an unquoted True/False as a boolean.
                Value::Bool(b) => if b { "True" } else { "False" }.to_owned(),
                other => {
                    return Err(format!(
                        "condition {kind}: expected a string, got {other:?}"
                    ))
                }
            };
            Ok(ConditionSpec::parse(&kind, &text))
        })
        .collect()
}

#[cfg(test)]
mod tests;
