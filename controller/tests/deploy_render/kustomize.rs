//! A minimal kustomize for the features deploy/ uses, so the rendered manifests are checked on a
//! machine without `kubectl` (CI): `resources` (files and directories), `components`, `labels`
//! (metadata only), `images` (pod-template containers), `patches` (by `path`, strategic merge of
//! maps) and `replacements` (`[key=value]` list selectors). Anything else fails with its name
//! rather than rendering wrongly; where `kubectl` exists, `main.rs` checks this renders exactly
//! what `kubectl kustomize` does.

use std::path::Path;

use serde_json::{Map, Value};

/// What this renderer understands in a kustomization.yaml.
const KNOWN: &[&str] = &[
    "apiVersion",
    "kind",
    "resources",
    "components",
    "labels",
    "images",
    "patches",
    "replacements",
];

type Result<T> = std::result::Result<T, String>;

/// The objects the kustomization in `dir` renders to, in no particular order.
pub(crate) fn build(dir: &Path) -> Result<Vec<Value>> {
    let k = load(dir)?;
    if k["kind"] != "Kustomization" {
        return Err(format!("{}: not a Kustomization", dir.display()));
    }
    let mut objects = Vec::new();
    apply(dir, &k, &mut objects)?;
    Ok(objects)
}

fn load(dir: &Path) -> Result<Value> {
    let file = dir.join("kustomization.yaml");
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let k: Value =
        serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    let map = k.as_object().ok_or("a kustomization is a map")?;
    if let Some(key) = map.keys().find(|key| !KNOWN.contains(&key.as_str())) {
        return Err(format!(
            "{}: kustomize feature {key:?} is not supported here",
            file.display()
        ));
    }
    Ok(k)
}

/// Resources, then components (each transforming everything accumulated so far), then this
/// kustomization's own transformers in kustomize's order: patches, labels, images, replacements.
fn apply(dir: &Path, k: &Value, objects: &mut Vec<Value>) -> Result<()> {
    for r in strings(k, "resources")? {
        let path = dir.join(&r);
        if path.is_dir() {
            objects.extend(build(&path)?);
        } else {
            objects.extend(documents(&path)?);
        }
    }
    for c in strings(k, "components")? {
        let path = dir.join(&c);
        let component = load(&path)?;
        if component["kind"] != "Component" {
            return Err(format!("{}: not a Component", path.display()));
        }
        apply(&path, &component, objects)?;
    }
    for p in list(k, "patches") {
        let file = p["path"]
            .as_str()
            .ok_or("only patches by `path` are supported")?;
        if p.as_object().is_some_and(|m| m.len() != 1) {
            return Err("patch options (target, ...) are not supported".into());
        }
        for patch in documents(&dir.join(file))? {
            let target = objects
                .iter_mut()
                .find(|o| same_object(o, &patch))
                .ok_or_else(|| format!("patch {file}: no object to patch"))?;
            merge(target, &patch)?;
        }
    }
    for l in list(k, "labels") {
        if l.get("includeSelectors").and_then(Value::as_bool) == Some(true)
            || l.get("includeTemplates").is_some()
        {
            return Err("labels beyond metadata are not supported".into());
        }
        let pairs = l["pairs"].as_object().ok_or("labels need pairs")?;
        for o in objects.iter_mut() {
            let labels = entry_map(&mut o["metadata"], "labels")?;
            labels.extend(pairs.clone());
        }
    }
    for image in list(k, "images") {
        let name = image["name"].as_str().ok_or("images need a name")?;
        let new = format!(
            "{}:{}",
            image["newName"].as_str().unwrap_or(name),
            image["newTag"]
                .as_str()
                .ok_or("images need a newTag here")?
        );
        for o in objects.iter_mut() {
            for c in containers(o) {
                let current = c["image"].as_str().unwrap_or_default();
                if current.split([':', '@']).next() == Some(name) {
                    c["image"] = Value::String(new.clone());
                }
            }
        }
    }
    for r in list(k, "replacements") {
        replace(r, objects)?;
    }
    Ok(())
}

fn strings(k: &Value, key: &str) -> Result<Vec<String>> {
    list(k, key)
        .iter()
        .map(|v| {
            v.as_str()
                .map(String::from)
                .ok_or(format!("{key} entries are strings"))
        })
        .collect()
}

fn list<'a>(k: &'a Value, key: &str) -> &'a [Value] {
    k.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn documents(file: &Path) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut out = Vec::new();
    for d in serde_yaml_ng::Deserializer::from_str(&text) {
        let v: Value =
            serde::Deserialize::deserialize(d).map_err(|e| format!("{}: {e}", file.display()))?;
        if !v.is_null() {
            out.push(v);
        }
    }
    Ok(out)
}

fn same_object(o: &Value, patch: &Value) -> bool {
    o["kind"] == patch["kind"]
        && o["metadata"]["name"] == patch["metadata"]["name"]
        && (patch["metadata"]["namespace"].is_null()
            || o["metadata"]["namespace"] == patch["metadata"]["namespace"])
}

/// Strategic merge for maps: a `null` deletes the key; lists would need merge keys, so a patch
/// with one fails.
fn merge(target: &mut Value, patch: &Value) -> Result<()> {
    let (Value::Object(t), Value::Object(p)) = (&mut *target, patch) else {
        return Err("a patch merges maps".into());
    };
    for (key, value) in p {
        match value {
            Value::Null => {
                t.remove(key);
            }
            Value::Array(_) => return Err(format!("patching the list {key} is not supported")),
            Value::Object(_) if t.get(key).is_some_and(Value::is_object) => {
                merge(t.get_mut(key).ok_or("present")?, value)?
            }
            _ => {
                t.insert(key.clone(), value.clone());
            }
        }
    }
    Ok(())
}

fn entry_map<'a>(parent: &'a mut Value, key: &str) -> Result<&'a mut Map<String, Value>> {
    let map = parent.as_object_mut().ok_or("metadata is a map")?;
    map.entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or_else(|| format!("{key} is a map"))
}

/// The containers of a workload's pod template.
fn containers(o: &mut Value) -> Vec<&mut Value> {
    match o["kind"].as_str() {
        Some("Deployment" | "DaemonSet" | "StatefulSet") => {}
        _ => return Vec::new(),
    }
    let spec = &mut o["spec"]["template"]["spec"];
    let mut out = Vec::new();
    if let Some(map) = spec.as_object_mut() {
        for (key, value) in map.iter_mut() {
            if key == "containers" || key == "initContainers" {
                out.extend(value.as_array_mut().into_iter().flatten());
            }
        }
    }
    out
}

/// One replacement: `source` {kind, name, fieldPath} copied into each target's `fieldPaths`.
fn replace(r: &Value, objects: &mut [Value]) -> Result<()> {
    let source = &r["source"];
    let value = objects
        .iter()
        .find(|o| selects(o, source))
        .and_then(|o| field(o, source["fieldPath"].as_str()?))
        .cloned()
        .ok_or("replacement source not found")?;
    for target in list(r, "targets") {
        let mut hit = false;
        for o in objects.iter_mut().filter(|o| selects(o, &target["select"])) {
            for path in strings(target, "fieldPaths")? {
                *field_mut(o, &path).ok_or(format!("replacement target {path} not found"))? =
                    value.clone();
                hit = true;
            }
        }
        if !hit {
            return Err("replacement target selects nothing".into());
        }
    }
    Ok(())
}

fn selects(o: &Value, select: &Value) -> bool {
    let Some(s) = select.as_object() else {
        return false;
    };
    s.iter().all(|(key, want)| match key.as_str() {
        "kind" => &o["kind"] == want,
        "name" => &o["metadata"]["name"] == want,
        "fieldPath" => true,
        _ => false,
    })
}

/// A `fieldPath` segment: a map key, or `[key=value]` picking a list element.
fn step<'a>(v: &'a Value, segment: &str) -> Option<&'a Value> {
    match segment.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        Some(sel) => {
            let (key, want) = sel.split_once('=')?;
            v.as_array()?.iter().find(|e| e[key].as_str() == Some(want))
        }
        None => v.get(segment),
    }
}

fn step_mut<'a>(v: &'a mut Value, segment: &str) -> Option<&'a mut Value> {
    match segment.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        Some(sel) => {
            let (key, want) = sel.split_once('=')?;
            v.as_array_mut()?
                .iter_mut()
                .find(|e| e[key].as_str() == Some(want))
        }
        None => v.get_mut(segment),
    }
}

/// Segments split on dots outside `[...]`.
fn segments(path: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut depth) = (0, 0);
    for (i, c) in path.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            '.' if depth == 0 => {
                out.push(&path[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&path[start..]);
    out
}

fn field<'a>(o: &'a Value, path: &str) -> Option<&'a Value> {
    segments(path).into_iter().try_fold(o, step)
}

fn field_mut<'a>(o: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    segments(path).into_iter().try_fold(o, step_mut)
}
