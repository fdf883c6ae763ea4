//! The fake API server's object store: resourceVersions, history for watches, and write semantics.
//!
//! Objects are kept as JSON. Every change gets the next resourceVersion and is kept in a history
//! that watches replay from; [`ObjectStore::compact`] drops that history so older versions answer
//! `410 Gone`, as etcd compaction does. Server-side apply is modelled for one field manager per
//! field set: an apply to `/status` replaces the status, an apply to the main resource replaces
//! every top-level field it names and merges labels and annotations. Services get a cluster IP
//! on create, which later writes cannot drop. Deleting an object garbage-collects the objects
//! whose ownerReferences name its uid (background cascade).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::{json, Map, Value};
use tokio::sync::broadcast;

use super::kinds::Kind;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    plural: &'static str,
    group: &'static str,
    namespace: String,
    name: String,
}

impl Key {
    fn new(kind: &'static Kind, namespace: Option<&str>, name: &str) -> Key {
        Key {
            plural: kind.plural,
            group: kind.group,
            namespace: namespace.unwrap_or_default().to_string(),
            name: name.to_string(),
        }
    }
}

/// One change, as a watch reports it.
#[derive(Debug)]
pub struct Change {
    pub resource_version: u64,
    pub kind: &'static Kind,
    pub namespace: String,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub event: &'static str,
    pub object: Value,
}

/// An API error, rendered as a `Status` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
        }
    }

    pub fn not_found(kind: &Kind, name: &str) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", kind.plural),
        )
    }

    pub fn gone(message: impl Into<String>) -> ApiError {
        ApiError::new(410, "Expired", message)
    }

    pub fn to_status(&self) -> Value {
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        })
    }
}

/// The retained changes a watch replays, and the receiver for the changes still to come.
pub type WatchStart = (Vec<Arc<Change>>, broadcast::Receiver<Arc<Change>>);

/// A PATCH request's body and how to apply it.
#[derive(Debug)]
pub struct Patch<'a> {
    pub kind: PatchKind,
    pub body: Value,
    pub field_manager: Option<&'a str>,
}

/// How a patch body is to be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Merge,
    Json,
    Apply,
}

#[derive(Debug)]
pub struct ObjectStore {
    resource_version: u64,
    /// Watches may resume from any version at or after this one.
    oldest_watchable: u64,
    objects: BTreeMap<Key, Value>,
    history: VecDeque<Arc<Change>>,
    changes: broadcast::Sender<Arc<Change>>,
    uids: u64,
}

impl Default for ObjectStore {
    fn default() -> ObjectStore {
        ObjectStore::new()
    }
}

impl ObjectStore {
    pub fn new() -> ObjectStore {
        ObjectStore {
            resource_version: 1,
            oldest_watchable: 1,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            changes: broadcast::channel(4096).0,
            uids: 0,
        }
    }

    pub fn resource_version(&self) -> u64 {
        self.resource_version
    }

    /// Forgets the change history: watches from any earlier version now get `410 Gone`.
    pub fn compact(&mut self) {
        self.history.clear();
        self.oldest_watchable = self.resource_version;
    }

    pub fn get(
        &self,
        kind: &'static Kind,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.objects
            .get(&Key::new(kind, namespace, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(kind, name))
    }

    /// Objects of `kind` (in `namespace` if given) matching the selectors, sorted by namespace/name.
    pub fn list(
        &self,
        kind: &'static Kind,
        namespace: Option<&str>,
        label_selector: &Selector,
        field_selector: &Selector,
    ) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|(k, _)| k.plural == kind.plural && k.group == kind.group)
            .filter(|(k, _)| namespace.is_none_or(|ns| k.namespace == ns))
            .filter(|(_, v)| label_selector.matches_labels(v) && field_selector.matches_fields(v))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The changes after `since` for a watch, and a receiver for the ones to come; `410 Gone`
    /// when `since` is older than the retained history.
    pub fn watch_from(&self, since: u64) -> Result<WatchStart, ApiError> {
        if since < self.oldest_watchable {
            return Err(ApiError::gone(format!(
                "too old resource version: {since} ({})",
                self.oldest_watchable
            )));
        }
        let past = self
            .history
            .iter()
            .filter(|c| c.resource_version > since)
            .cloned()
            .collect();
        Ok((past, self.changes.subscribe()))
    }

    pub fn create(
        &mut self,
        kind: &'static Kind,
        namespace: Option<&str>,
        mut object: Value,
    ) -> Result<Value, ApiError> {
        let meta = metadata_mut(&mut object)?;
        if let Some(ns) = namespace {
            match meta.get("namespace").and_then(Value::as_str) {
                Some(given) if given != ns => {
                    return Err(ApiError::new(
                        400,
                        "BadRequest",
                        "the namespace of the object does not match the namespace of the request",
                    ))
                }
                _ => {
                    meta.insert("namespace".into(), json!(ns));
                }
            }
        }
        let name = match meta.get("name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => match meta.get("generateName").and_then(Value::as_str) {
                Some(prefix) => format!("{prefix}{:05x}", self.uids + 1),
                None => {
                    return Err(ApiError::new(
                        422,
                        "Invalid",
                        "metadata.name: Required value",
                    ))
                }
            },
        };
        meta.insert("name".into(), json!(name));
        if let Some(ns) = namespace {
            let ns_kind = super::kinds::by_plural("", "v1", "namespaces")
                .ok_or_else(|| ApiError::new(500, "InternalError", "namespaces are not served"))?;
            if !self.objects.contains_key(&Key::new(ns_kind, None, ns)) {
                return Err(ApiError::new(
                    404,
                    "NotFound",
                    format!("namespaces \"{ns}\" not found"),
                ));
            }
        }
        let key = Key::new(kind, namespace, &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", kind.plural),
            ));
        }
        self.uids += 1;
        let meta = metadata_mut(&mut object)?;
        meta.insert(
            "uid".into(),
            json!(format!("00000000-0000-4000-8000-{:012x}", self.uids)),
        );
        meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        meta.remove("resourceVersion");
        if kind.generation {
            meta.insert("generation".into(), json!(1));
        }
        set_type(&mut object, kind);
        if kind.status {
            if let Some(map) = object.as_object_mut() {
                map.remove("status");
            }
        }
        if kind.kind == "Service" {
            self.allocate_cluster_ip(&mut object);
        }
        Ok(self.commit(kind, key, "ADDED", object))
    }

    /// Gives a Service without one a cluster IP (`10.96.x.y`), as the API server's allocator
    /// does on create; headless (`None`) and ExternalName Services get none.
    fn allocate_cluster_ip(&mut self, service: &mut Value) {
        let Some(spec) = service.get_mut("spec").and_then(Value::as_object_mut) else {
            return;
        };
        let external = spec.get("type").and_then(Value::as_str) == Some("ExternalName");
        if external || spec.get("clusterIP").is_some_and(|ip| !ip.is_null()) {
            return;
        }
        let n = self.uids;
        let ip = format!("10.96.{}.{}", (n / 250) % 250, n % 250 + 1);
        spec.insert("clusterIP".into(), json!(ip));
        spec.insert("clusterIPs".into(), json!([ip]));
    }

    /// PUT: replaces the object (or only its status), honouring a resourceVersion precondition.
    pub fn replace(
        &mut self,
        kind: &'static Kind,
        namespace: Option<&str>,
        name: &str,
        status_only: bool,
        object: Value,
    ) -> Result<Value, ApiError> {
        let old = self.get(kind, namespace, name)?;
        check_precondition(&old, &object)?;
        let new = if status_only {
            with_status_of(&old, &object)
        } else {
            let mut new = object;
            keep_server_fields(&old, &mut new, kind)?;
            new
        };
        Ok(self.update(kind, namespace, name, old, new))
    }

    pub fn patch(
        &mut self,
        kind: &'static Kind,
        namespace: Option<&str>,
        name: &str,
        status_only: bool,
        patch: Patch<'_>,
    ) -> Result<Value, ApiError> {
        let Patch {
            kind: patch_kind,
            body,
            field_manager,
        } = patch;
        let old = match self.get(kind, namespace, name) {
            Ok(old) => old,
            Err(_) if patch_kind == PatchKind::Apply && !status_only => {
                let mut object = body;
                record_manager(&mut object, field_manager, "Apply", None)?;
                return self.create(kind, namespace, object);
            }
            Err(e) => return Err(e),
        };
        check_precondition(&old, &body)?;
        let mut patched = old.clone();
        match patch_kind {
            PatchKind::Merge => json_patch::merge(&mut patched, &body),
            PatchKind::Json => {
                let ops: json_patch::Patch = serde_json::from_value(body)
                    .map_err(|e| ApiError::new(400, "BadRequest", e.to_string()))?;
                json_patch::patch(&mut patched, &ops)
                    .map_err(|e| ApiError::new(422, "Invalid", e.to_string()))?;
            }
            PatchKind::Apply => apply(&mut patched, &body, status_only),
        }
        let new = if status_only {
            with_status_of(&old, &patched)
        } else {
            keep_server_fields(&old, &mut patched, kind)?;
            patched
        };
        let operation = if patch_kind == PatchKind::Apply {
            "Apply"
        } else {
            "Update"
        };
        let mut new = new;
        if new != old {
            record_manager(
                &mut new,
                field_manager,
                operation,
                status_only.then_some("status"),
            )?;
        }
        Ok(self.update(kind, namespace, name, old, new))
    }

    /// Deletes the object and, in the background-cascade way, everything it owns.
    pub fn delete(
        &mut self,
        kind: &'static Kind,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        let key = Key::new(kind, namespace, name);
        let object = self
            .objects
            .remove(&key)
            .ok_or_else(|| ApiError::not_found(kind, name))?;
        let deleted = self.record(kind, &key, "DELETED", object.clone());
        let uid = object.pointer("/metadata/uid").cloned();
        let dependents: Vec<Key> = self
            .objects
            .iter()
            .filter(|(_, v)| {
                v.pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .is_some_and(|refs| refs.iter().any(|r| r.get("uid") == uid.as_ref()))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for dep in dependents {
            if let Some(dep_kind) = super::kinds::KINDS
                .iter()
                .find(|k| k.plural == dep.plural && k.group == dep.group)
            {
                let ns = (!dep.namespace.is_empty()).then_some(dep.namespace.as_str());
                // Already gone through another owner: nothing left to collect.
                let _ = self.delete(dep_kind, ns, &dep.name);
            }
        }
        Ok(deleted)
    }

    fn update(
        &mut self,
        kind: &'static Kind,
        namespace: Option<&str>,
        name: &str,
        old: Value,
        mut new: Value,
    ) -> Value {
        if new == old {
            // A no-op write changes nothing, not even the resourceVersion.
            return old;
        }
        if kind.generation && spec_of(&old) != spec_of(&new) {
            let generation = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert("generation".into(), json!(generation + 1));
            }
        }
        set_type(&mut new, kind);
        self.commit(kind, Key::new(kind, namespace, name), "MODIFIED", new)
    }

    fn commit(
        &mut self,
        kind: &'static Kind,
        key: Key,
        event: &'static str,
        object: Value,
    ) -> Value {
        let stored = self.record(kind, &key, event, object);
        self.objects.insert(key, stored.clone());
        stored
    }

    /// Stamps the next resourceVersion and publishes the change to watchers.
    fn record(
        &mut self,
        kind: &'static Kind,
        key: &Key,
        event: &'static str,
        mut object: Value,
    ) -> Value {
        self.resource_version += 1;
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert(
                "resourceVersion".into(),
                json!(self.resource_version.to_string()),
            );
        }
        let change = Arc::new(Change {
            resource_version: self.resource_version,
            kind,
            namespace: key.namespace.clone(),
            event,
            object: object.clone(),
        });
        self.history.push_back(change.clone());
        // No receivers is fine: nobody is watching.
        let _ = self.changes.send(change);
        object
    }
}

fn metadata_mut(object: &mut Value) -> Result<&mut Map<String, Value>, ApiError> {
    let map = object
        .as_object_mut()
        .ok_or_else(|| ApiError::new(400, "BadRequest", "the body is not an object"))?;
    map.entry("metadata")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| ApiError::new(400, "BadRequest", "metadata is not an object"))
}

fn set_type(object: &mut Value, kind: &Kind) {
    if let Some(map) = object.as_object_mut() {
        map.insert("apiVersion".into(), json!(kind.api_version()));
        map.insert("kind".into(), json!(kind.kind));
    }
}

fn check_precondition(old: &Value, body: &Value) -> Result<(), ApiError> {
    let wanted = body
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str);
    let current = old
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str);
    match wanted {
        Some(w) if !w.is_empty() && Some(w) != current => Err(ApiError::new(
            409,
            "Conflict",
            "the object has been modified; please apply your changes to the latest version and try again",
        )),
        _ => Ok(()),
    }
}

/// Everything but metadata and status: what `metadata.generation` tracks.
fn spec_of(object: &Value) -> Value {
    let mut v = object.clone();
    if let Some(map) = v.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    v
}

fn with_status_of(old: &Value, new: &Value) -> Value {
    let mut out = old.clone();
    if let Some(map) = out.as_object_mut() {
        match new.get("status") {
            Some(s) => map.insert("status".into(), s.clone()),
            None => map.remove("status"),
        };
    }
    out
}

/// Fields the client cannot change through the main resource: identity and, when the kind has
/// a status subresource, the status.
fn keep_server_fields(old: &Value, new: &mut Value, kind: &Kind) -> Result<(), ApiError> {
    let meta = metadata_mut(new)?;
    for field in [
        "uid",
        "creationTimestamp",
        "generation",
        "name",
        "namespace",
        "managedFields",
    ] {
        match old.pointer(&format!("/metadata/{field}")) {
            Some(v) => meta.insert(field.into(), v.clone()),
            None => meta.remove(field),
        };
    }
    if kind.status {
        *new = with_status_of(new, old);
    }
    // A Service's cluster IP is allocated once and immutable: an update that leaves it out
    // keeps it (as a server-side apply that does not own it does).
    if kind.kind == "Service" {
        if let (Some(spec), Some(old_spec)) = (
            new.get_mut("spec").and_then(Value::as_object_mut),
            old.get("spec"),
        ) {
            for field in ["clusterIP", "clusterIPs"] {
                if let (false, Some(v)) = (spec.contains_key(field), old_spec.get(field)) {
                    spec.insert(field.into(), v.clone());
                }
            }
        }
    }
    Ok(())
}

/// Server-side apply for a single manager (see the module doc).
fn apply(object: &mut Value, applied: &Value, status_only: bool) {
    let (Some(target), Some(applied)) = (object.as_object_mut(), applied.as_object()) else {
        return;
    };
    if status_only {
        if let Some(s) = applied.get("status") {
            target.insert("status".into(), s.clone());
        }
        return;
    }
    for (key, value) in applied {
        if key == "metadata" {
            let meta = target.entry("metadata").or_insert_with(|| json!({}));
            for field in ["labels", "annotations"] {
                if let Some(Value::Object(entries)) = value.get(field) {
                    let slot = meta
                        .as_object_mut()
                        .map(|m| m.entry(field).or_insert_with(|| json!({})));
                    if let Some(Value::Object(slot)) = slot {
                        slot.extend(entries.clone());
                    }
                }
            }
            if let (Some(refs), Some(m)) = (value.get("ownerReferences"), meta.as_object_mut()) {
                m.insert("ownerReferences".into(), refs.clone());
            }
        } else if key != "status" {
            target.insert(key.clone(), value.clone());
        }
    }
}

fn record_manager(
    object: &mut Value,
    manager: Option<&str>,
    operation: &str,
    subresource: Option<&str>,
) -> Result<(), ApiError> {
    let Some(manager) = manager else {
        if operation == "Apply" {
            return Err(ApiError::new(
                400,
                "BadRequest",
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            ));
        }
        return Ok(());
    };
    let meta = metadata_mut(object)?;
    let entries = meta
        .entry("managedFields")
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .ok_or_else(|| ApiError::new(400, "BadRequest", "managedFields is not a list"))?;
    entries.retain(|e| {
        !(e.get("manager").and_then(Value::as_str) == Some(manager)
            && e.get("operation").and_then(Value::as_str) == Some(operation)
            && e.get("subresource").and_then(Value::as_str) == subresource)
    });
    let mut entry = json!({"manager": manager, "operation": operation, "time": now_rfc3339()});
    if let (Some(sub), Some(map)) = (subresource, entry.as_object_mut()) {
        map.insert("subresource".into(), json!(sub));
    }
    entries.push(entry);
    Ok(())
}

fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// An equality-based label or field selector (`a=b,c==d,e!=f`).
#[derive(Debug, Default, Clone)]
pub struct Selector {
    terms: Vec<(String, bool, String)>,
}

impl Selector {
    pub fn parse(s: Option<&str>) -> Result<Selector, ApiError> {
        let mut terms = Vec::new();
        for term in s.unwrap_or_default().split(',').filter(|t| !t.is_empty()) {
            let (key, equal, value) = if let Some((k, v)) = term.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = term.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = term.split_once('=') {
                (k, true, v)
            } else {
                return Err(ApiError::new(
                    400,
                    "BadRequest",
                    format!("unsupported selector term {term:?}: the fake API server knows only =, == and !="),
                ));
            };
            terms.push((key.trim().to_string(), equal, value.trim().to_string()));
        }
        Ok(Selector { terms })
    }

    pub fn matches_labels(&self, object: &Value) -> bool {
        self.terms.iter().all(|(k, equal, v)| {
            let actual = object
                .pointer("/metadata/labels")
                .and_then(|l| l.get(k))
                .and_then(Value::as_str);
            (actual == Some(v.as_str())) == *equal
        })
    }

    pub fn matches_fields(&self, object: &Value) -> bool {
        self.terms.iter().all(|(k, equal, v)| {
            let pointer = format!("/{}", k.replace('.', "/"));
            let actual = object.pointer(&pointer).and_then(Value::as_str);
            (actual == Some(v.as_str())) == *equal
        })
    }
}
