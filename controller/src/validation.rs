//! Admission as the API server does it, for standalone mode: the upstream Gateway API CRDs'
//! structural schemas and CEL rules, core kinds strictly against their k8s-openapi types.

mod cel_regex;
mod core_kinds;
pub mod crds;
pub mod rules;
pub mod schema;

use std::fmt;
use std::sync::OnceLock;

use serde_json::Value as Json;

use self::crds::{Crd, CrdError};
use self::schema::SchemaValidator;

pub use self::crds::GATEWAY_API_VERSION;

/// One violation: where in the object, and the API server's (or the CRD rule's) message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Where in the object; the root for errors about the object as a whole.
    pub path: FieldPath,
    /// What is wrong, worded as the API server words it.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_root() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// What admission decided about an object that passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// A kind Sluice translates.
    Used,
    /// A valid object of a kind Sluice does not serve (yet): kept out of translation, warned about.
    Unused,
}

/// Validates `object` as the API server would on create, applying the schema's defaults in
/// place. `Err` holds every violation found, never only the first.
pub fn admit(object: &mut Json) -> Result<Admitted, Vec<FieldError>> {
    let api_version = object
        .get("apiVersion")
        .and_then(Json::as_str)
        .unwrap_or("")
        .to_string();
    let kind = object
        .get("kind")
        .and_then(Json::as_str)
        .unwrap_or("")
        .to_string();
    let (group, version) = match api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version.as_str()),
    };
    if let Some(admitted) = core_kinds::admit(group, version, &kind, object)? {
        return Ok(admitted);
    }
    let root = FieldPath::root();
    let Some(crd) = crds::find(group, &kind) else {
        return Err(vec![FieldError {
            path: root,
            message: unknown_kind(&api_version, &kind),
        }]);
    };
    let crd = crd.map_err(|e: &CrdError| {
        vec![FieldError {
            path: FieldPath::root(),
            message: e.to_string(),
        }]
    })?;
    let Some(schema) = crd.served_schema(version) else {
        return Err(vec![FieldError {
            path: root,
            message: format!(
                "no matches for kind \"{kind}\" in version \"{api_version}\" (served versions: {})",
                crd.served_versions().join(", ")
            ),
        }]);
    };
    let mut errors = core_kinds::metadata(object, crd.namespaced);
    errors.extend(validator().validate_root(schema, object));
    if errors.is_empty() {
        Ok(if crd.used_by_sluice() {
            Admitted::Used
        } else {
            Admitted::Unused
        })
    } else {
        Err(errors)
    }
}

fn validator() -> &'static SchemaValidator {
    static VALIDATOR: OnceLock<SchemaValidator> = OnceLock::new();
    VALIDATOR.get_or_init(SchemaValidator::default)
}

fn unknown_kind(api_version: &str, kind: &str) -> String {
    let known: Vec<String> = Crd::kinds()
        .chain(core_kinds::KINDS.iter().map(|(_, k, _)| *k))
        .map(String::from)
        .collect();
    let hint = schema::closest(kind, known.iter())
        .map(|k| format!(" (did you mean \"{k}\"?)"))
        .unwrap_or_default();
    format!("no matches for kind \"{kind}\" in version \"{api_version}\"{hint}")
}

// === impl FieldPath ===

/// A path into an object, printed as the API server prints it: `spec.rules[0].filters[1].type`,
/// map keys in brackets (`metadata.labels[app]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(Vec<Segment>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Field(String),
    Index(usize),
    Key(String),
}

impl FieldPath {
    /// The path of the object itself.
    pub fn root() -> FieldPath {
        FieldPath(Vec::new())
    }

    /// Whether this is the object itself, with no segment.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// Descends into the field `name` (shown `.name`).
    pub fn push_field(&mut self, name: &str) {
        self.0.push(Segment::Field(name.into()));
    }

    /// Descends into the map entry `key` (shown `[key]`).
    pub fn push_key(&mut self, key: &str) {
        self.0.push(Segment::Key(key.into()));
    }

    /// Descends into list item `index` (shown `[index]`).
    pub fn push_index(&mut self, index: usize) {
        self.0.push(Segment::Index(index));
    }

    /// A CRD rule's `fieldPath` (`.spec.x` relative to the rule's node), taken as fields.
    pub fn push_raw(&mut self, dotted: &str) {
        for part in dotted.split('.').filter(|p| !p.is_empty()) {
            self.push_field(part);
        }
    }

    /// Goes back up one segment; the root stays the root.
    pub fn pop(&mut self) {
        self.0.pop();
    }

    /// The path of field `name` under this one.
    pub fn child(&self, name: &str) -> FieldPath {
        let mut child = self.clone();
        child.push_field(name);
        child
    }

    /// Prefixes `self` with `parent` (the path of a List item, say).
    pub fn under(mut self, parent: &FieldPath) -> FieldPath {
        let mut segments = parent.0.clone();
        segments.append(&mut self.0);
        FieldPath(segments)
    }

    /// The names and indices along the path, whatever their kind (for looking up YAML lines).
    pub fn steps(&self) -> impl Iterator<Item = String> + '_ {
        self.0.iter().map(|s| match s {
            Segment::Field(name) | Segment::Key(name) => name.clone(),
            Segment::Index(i) => i.to_string(),
        })
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Field(name) if i == 0 => f.write_str(name)?,
                Segment::Field(name) => write!(f, ".{name}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
                Segment::Key(key) => write!(f, "[{key}]")?,
            }
        }
        Ok(())
    }
}
