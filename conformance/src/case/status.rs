//! Status checks of a `status:` step (FORMAT.md §5), as written in a case.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_yaml_ng::Value;

/// One expected condition: `type` with a status (`None` = any) and optionally a reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionSpec {
    pub kind: String,
    pub status: Option<String>,
    pub reason: Option<String>,
}

impl ConditionSpec {
    pub fn parse(kind: &str, text: &str) -> Self {
        let (status, reason) = match text.split_once('/') {
            Some((status, reason)) => (status, Some(reason.to_owned())),
            None => (text, None),
        };
        let status = (status != "*").then(|| status.to_owned());
        ConditionSpec {
            kind: kind.to_owned(),
            status,
            reason,
        }
    }
}

impl std::fmt::Display for ConditionSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.kind, self.status.as_deref().unwrap_or("*"))?;
        if let Some(reason) = &self.reason {
            write!(f, "/{reason}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "BTreeMap<String, Value>")]
pub struct Conditions(pub Vec<ConditionSpec>);

impl TryFrom<BTreeMap<String, Value>> for Conditions {
    type Error = String;

    fn try_from(values: BTreeMap<String, Value>) -> Result<Self, Self::Error> {
        super::conditions_from_values(values).map(Conditions)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParentRefExpect {
    pub name: String,
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParentExpect {
    pub group: Option<String>,
    pub kind: Option<String>,
    pub name: String,
    pub namespace: Option<String>,
    #[serde(default)]
    pub conditions: Conditions,
}

/// `listeners: '*'` or a list of names.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ListenerSelection {
    All(String),
    Named(Vec<String>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConditions {
    pub listeners: ListenerSelection,
    pub conditions: Conditions,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KindRef {
    pub group: Option<String>,
    pub kind: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListenerExpect {
    pub name: String,
    pub supported_kinds: Option<Vec<KindRef>>,
    pub attached_routes: Option<i64>,
    #[serde(default)]
    pub conditions: Conditions,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusAddresses {
    pub count: Option<usize>,
    #[serde(default)]
    pub contains: Vec<String>,
    #[serde(default)]
    pub not_contains: Vec<String>,
    #[serde(default)]
    pub type_of: BTreeMap<String, String>,
}

/// One check; several of its keys may be combined (e.g. `address` + `listenerConditions`), all must hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusCheck {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub parent: Option<ParentRefExpect>,
    pub parents: Option<Vec<ParentExpect>>,
    pub namespace_required: Option<bool>,
    pub conditions: Option<Conditions>,
    #[serde(default)]
    pub no_accepted_parents: bool,
    #[serde(default)]
    pub latest_observed_generation: bool,
    #[serde(default)]
    pub immediate: bool,
    #[serde(default)]
    pub generation_changed: bool,
    #[serde(default)]
    pub address: bool,
    pub listener_conditions: Option<ListenerConditions>,
    pub listeners: Option<Vec<ListenerExpect>>,
    #[serde(default)]
    pub zero_routes: bool,
    pub attached_listener_sets: Option<i64>,
    pub status_addresses: Option<StatusAddresses>,
    pub ancestor: Option<ParentRefExpect>,
    pub namespaces: Option<Vec<String>>,
    pub notes: Option<Value>,
    /// `GeneratedResources` fields (infrastructure propagation), evaluated on the objects the
    /// provisioner would create (`status_check/generated.rs`).
    pub label_selector: Option<Value>,
    pub kinds: Option<Value>,
    pub labels_superset: Option<Value>,
    pub annotations_superset: Option<Value>,
}

impl StatusCheck {
    /// `Kind/namespace/name` as the admin `/status` keys it.
    pub fn object_key(&self) -> String {
        let name = self.name.as_deref().unwrap_or_default();
        match &self.namespace {
            Some(ns) => format!("{}/{ns}/{name}", self.kind),
            None => format!("{}/{name}", self.kind),
        }
    }
}
