//! Structural OpenAPI v3 schemas as the API server applies a CRD's: null pruning, defaulting,
//! types, enums, patterns, bounds, list semantics, unknown fields, then the node's CEL rules.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use regex::Regex;
use serde_json::{Map, Value as Json};

use super::rules::{to_cel, RuleError, Rules};
use super::{FieldError, FieldPath};

/// Validates (and defaults) objects against schema nodes; compiled patterns and rules are cached.
#[derive(Default)]
pub struct SchemaValidator {
    rules: Rules,
    patterns: Mutex<HashMap<String, Option<Regex>>>,
}

impl SchemaValidator {
    /// Defaults `object` in place and returns every violation. `metadata` at the root is left to
    /// the caller: the API server validates it as ObjectMeta, not by the CRD's schema.
    pub fn validate_root(&self, schema: &Json, object: &mut Json) -> Vec<FieldError> {
        let mut walk = Walk {
            validator: self,
            errors: Vec::new(),
        };
        walk.node(schema, object, &mut FieldPath::root());
        walk.errors
    }

    fn pattern(&self, pattern: &str) -> Option<Regex> {
        let mut cache = self.patterns.lock().unwrap_or_else(PoisonError::into_inner);
        cache
            .entry(pattern.to_string())
            .or_insert_with(|| Regex::new(pattern).ok())
            .clone()
    }
}

struct Walk<'a> {
    validator: &'a SchemaValidator,
    errors: Vec<FieldError>,
}

impl Walk<'_> {
    fn error(&mut self, path: &FieldPath, message: String) {
        self.errors.push(FieldError {
            path: path.clone(),
            message,
        });
    }

    /// An object's or a list's size against the schema's `[max, min]` keywords, with
    /// kube-apiserver's messages (its maximum message says "items" for objects too).
    fn count(
        &mut self,
        schema: &Json,
        path: &FieldPath,
        count: usize,
        [max_key, min_key]: [&str; 2],
        noun: &str,
    ) {
        let count = count as u64;
        if let Some(max) = schema.get(max_key).and_then(Json::as_u64) {
            if count > max {
                self.error(
                    path,
                    format!("Too many: {count}: must have at most {max} items"),
                );
            }
        }
        if let Some(min) = schema.get(min_key).and_then(Json::as_u64) {
            if count < min {
                self.error(
                    path,
                    format!("Invalid value: {count}: should have at least {min} {noun}"),
                );
            }
        }
    }

    fn node(&mut self, schema: &Json, value: &mut Json, path: &mut FieldPath) {
        let before = self.errors.len();
        if value.is_null() {
            if !flag(schema, "nullable") {
                let expected = schema
                    .get("type")
                    .and_then(Json::as_str)
                    .unwrap_or("a value");
                self.error(
                    path,
                    format!("Invalid value: null: must be of type {expected}"),
                );
            }
            return;
        }
        if flag(schema, "x-kubernetes-int-or-string") {
            if !(value.is_string() || is_integer(value)) {
                self.error(
                    path,
                    format!(
                        "Invalid value: {}: must be an integer or a string",
                        short(value)
                    ),
                );
                return;
            }
        } else if let Some(expected) = schema.get("type").and_then(Json::as_str) {
            if !type_matches(expected, value) {
                self.error(
                    path,
                    format!(
                        "Invalid value: {}: must be of type {expected}",
                        short(value)
                    ),
                );
                return;
            }
        }
        let mut duplicates = Vec::new();
        match value {
            Json::Object(map) => self.object(schema, map, path),
            Json::Array(items) => duplicates = self.array(schema, items, path),
            Json::String(s) => self.string(schema, s, path),
            Json::Number(_) => self.number(schema, value, path),
            _ => {}
        }
        if let Some(Json::Array(allowed)) = schema.get("enum") {
            if !allowed.contains(value) {
                let list: Vec<String> = allowed.iter().map(|v| v.to_string()).collect();
                self.error(
                    path,
                    format!(
                        "Unsupported value: {}: supported values: {}",
                        value,
                        list.join(", ")
                    ),
                );
            }
        }
        // Rules see a well-formed subtree only: on a malformed one they would fail to evaluate
        // and bury the real error under noise.
        if self.errors.len() == before {
            self.rules(schema, value, path);
        }
        // Duplicate list-map keys do not make the subtree malformed: the API server checks list
        // semantics apart from the rules, and reports both (listener names have both).
        self.errors.append(&mut duplicates);
    }

    fn object(&mut self, schema: &Json, map: &mut Map<String, Json>, path: &mut FieldPath) {
        let empty = Map::new();
        let properties = schema
            .get("properties")
            .and_then(Json::as_object)
            .unwrap_or(&empty);
        // "Null values for fields that don't specify nullable are pruned before defaulting."
        map.retain(|k, v| {
            !(v.is_null() && properties.get(k).is_some_and(|p| !flag(p, "nullable")))
        });
        for (name, property) in properties {
            if let Some(default) = property.get("default") {
                map.entry(name.clone()).or_insert_with(|| default.clone());
            }
        }
        let additional = schema.get("additionalProperties");
        let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields")
            || additional == Some(&Json::Bool(true));
        for (key, child) in map.iter_mut() {
            if path.is_root() && key == "metadata" {
                continue;
            }
            if let Some(property) = properties.get(key) {
                path.push_field(key);
                self.node(property, child, path);
                path.pop();
            } else if let Some(additional) = additional.filter(|a| a.is_object()) {
                path.push_key(key);
                self.node(additional, child, path);
                path.pop();
            } else if !preserve {
                path.push_field(key);
                let hint = closest(key, properties.keys())
                    .map(|k| format!(" (did you mean \"{k}\"?)"))
                    .unwrap_or_default();
                self.error(path, format!("unknown field \"{key}\"{hint}"));
                path.pop();
            }
        }
        if let Some(Json::Array(required)) = schema.get("required") {
            for name in required.iter().filter_map(Json::as_str) {
                if !map.contains_key(name) {
                    path.push_field(name);
                    self.error(path, "Required value".into());
                    path.pop();
                }
            }
        }
        self.count(
            schema,
            path,
            map.len(),
            ["maxProperties", "minProperties"],
            "properties",
        );
    }

    /// Returns the duplicates of a `set` or `map` list, for the caller to report after the rules.
    fn array(
        &mut self,
        schema: &Json,
        items: &mut [Json],
        path: &mut FieldPath,
    ) -> Vec<FieldError> {
        self.count(schema, path, items.len(), ["maxItems", "minItems"], "items");
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter_mut().enumerate() {
                path.push_index(i);
                self.node(item_schema, item, path);
                path.pop();
            }
        }
        // After the items were defaulted: a list-map's key fields may come from defaults.
        let keys: Option<Vec<&str>> =
            match schema.get("x-kubernetes-list-type").and_then(Json::as_str) {
                Some("set") => None,
                Some("map") => Some(
                    schema
                        .get("x-kubernetes-list-map-keys")
                        .and_then(Json::as_array)
                        .map(|keys| keys.iter().filter_map(Json::as_str).collect())
                        .unwrap_or_default(),
                ),
                _ => return Vec::new(),
            };
        let mut duplicates = Vec::new();
        let mut seen = Vec::<Json>::new();
        for (i, item) in items.iter().enumerate() {
            let identity = match &keys {
                None => item.clone(),
                Some(keys) => Json::Object(
                    keys.iter()
                        .filter_map(|k| Some((k.to_string(), item.get(*k)?.clone())))
                        .collect(),
                ),
            };
            if seen.contains(&identity) {
                let mut at = path.clone();
                at.push_index(i);
                duplicates.push(FieldError {
                    path: at,
                    message: format!("Duplicate value: {identity}"),
                });
            } else {
                seen.push(identity);
            }
        }
        duplicates
    }

    fn string(&mut self, schema: &Json, s: &str, path: &FieldPath) {
        let chars = s.chars().count() as u64;
        if let Some(max) = schema.get("maxLength").and_then(Json::as_u64) {
            if chars > max {
                self.error(path, format!("Too long: may not be more than {max} bytes"));
            }
        }
        if let Some(min) = schema.get("minLength").and_then(Json::as_u64) {
            if chars < min {
                self.error(
                    path,
                    format!(
                        "Invalid value: {}: should be at least {min} chars long",
                        Json::from(s)
                    ),
                );
            }
        }
        if let Some(pattern) = schema.get("pattern").and_then(Json::as_str) {
            match self.validator.pattern(pattern) {
                Some(re) if re.is_match(s) => {}
                Some(_) => self.error(
                    path,
                    format!("Invalid value: {}: should match '{pattern}'", Json::from(s)),
                ),
                None => self.error(
                    path,
                    format!("the schema's pattern '{pattern}' does not compile"),
                ),
            }
        }
    }

    fn number(&mut self, schema: &Json, value: &Json, path: &FieldPath) {
        let Some(n) = value.as_f64() else { return };
        if let Some(min) = schema.get("minimum").and_then(Json::as_f64) {
            let exclusive = flag(schema, "exclusiveMinimum");
            if n < min || (exclusive && n == min) {
                let op = if exclusive {
                    "greater than"
                } else {
                    "greater than or equal to"
                };
                self.error(
                    path,
                    format!(
                        "Invalid value: {value}: should be {op} {}",
                        schema["minimum"]
                    ),
                );
            }
        }
        if let Some(max) = schema.get("maximum").and_then(Json::as_f64) {
            let exclusive = flag(schema, "exclusiveMaximum");
            if n > max || (exclusive && n == max) {
                let op = if exclusive {
                    "less than"
                } else {
                    "less than or equal to"
                };
                self.error(
                    path,
                    format!(
                        "Invalid value: {value}: should be {op} {}",
                        schema["maximum"]
                    ),
                );
            }
        }
    }

    fn rules(&mut self, schema: &Json, value: &Json, path: &FieldPath) {
        let Some(Json::Array(rules)) = schema.get("x-kubernetes-validations") else {
            return;
        };
        let mut this = None;
        for rule in rules {
            let Some(text) = rule.get("rule").and_then(Json::as_str) else {
                continue;
            };
            // Transition rules compare with the stored object; a created object has none, and the
            // API server skips them on create, as standalone mode (a fresh load) always is.
            if text.contains("oldSelf") {
                continue;
            }
            let this = this
                .get_or_insert_with(|| self.validator.rules.with_self(to_cel(Some(schema), value)));
            let mut at = path.clone();
            if let Some(field) = rule.get("fieldPath").and_then(Json::as_str) {
                at.push_raw(field.trim_start_matches('.'));
            }
            let message = || {
                rule.get("message")
                    .and_then(Json::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("failed rule: {text}"))
            };
            match this.check(text) {
                Ok(true) => {}
                Ok(false) => self.error(&at, message()),
                // The API server's wording for a rule that errs (an absent field, say).
                Err(RuleError::Eval { message: why, .. }) => {
                    self.error(&at, format!("{why} evaluating rule: {}", message()))
                }
                Err(e) => self.error(&at, e.to_string()),
            }
        }
    }
}

fn flag(schema: &Json, name: &str) -> bool {
    schema.get(name).and_then(Json::as_bool).unwrap_or(false)
}

fn is_integer(value: &Json) -> bool {
    value.as_i64().is_some() || value.as_u64().is_some()
}

fn type_matches(expected: &str, value: &Json) -> bool {
    match expected {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => is_integer(value),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        _ => true,
    }
}

/// A value as an error quotes it: scalars verbatim, containers by their kind.
fn short(value: &Json) -> String {
    match value {
        Json::Object(_) => "\"object\"".into(),
        Json::Array(_) => "\"array\"".into(),
        other => other.to_string(),
    }
}

/// The declared property a typo most likely meant: a small edit distance, or a prefix.
pub(super) fn closest<'a>(
    key: &str,
    candidates: impl Iterator<Item = &'a String>,
) -> Option<&'a str> {
    candidates
        .map(|c| (edit_distance(&key.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.as_str())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev + usize::from(ca != *cb);
            prev = row[j + 1];
            row[j + 1] = substitute.min(prev + 1).min(row[j] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(schema: Json, mut value: Json) -> Vec<String> {
        SchemaValidator::default()
            .validate_root(&schema, &mut value)
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn unknown_fields_are_named_with_the_likely_intended_one() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
            "properties": {"backendRefs": {"type": "array"}}}}});
        assert_eq!(
            errors(schema, json!({"spec": {"backendRef": []}})),
            ["spec.backendRef: unknown field \"backendRef\" (did you mean \"backendRefs\"?)"]
        );
    }

    #[test]
    fn defaults_fill_absent_fields_and_nulls_are_pruned_first() {
        let schema = json!({"type": "object", "properties": {"type": {"type": "string", "default": "PathPrefix"}}});
        let mut value = json!({"type": null});
        assert!(SchemaValidator::default()
            .validate_root(&schema, &mut value)
            .is_empty());
        assert_eq!(value, json!({"type": "PathPrefix"}));
    }

    #[test]
    fn list_map_keys_must_be_unique() {
        let schema = json!({"type": "array", "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"], "items": {"type": "object",
            "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}}});
        assert_eq!(
            errors(
                schema,
                json!([{"name": "a", "port": 1}, {"name": "a", "port": 2}])
            ),
            ["[1]: Duplicate value: {\"name\":\"a\"}"]
        );
    }

    #[test]
    fn bounds_and_patterns_use_the_api_servers_wording() {
        let schema = json!({"type": "object", "properties": {
            "port": {"type": "integer", "minimum": 1, "maximum": 65535},
            "name": {"type": "string", "maxLength": 3, "pattern": "^[a-z]+$"}}});
        assert_eq!(
            errors(schema, json!({"port": 0, "name": "AB_CD"})),
            [
                "name: Too long: may not be more than 3 bytes",
                "name: Invalid value: \"AB_CD\": should match '^[a-z]+$'",
                "port: Invalid value: 0: should be greater than or equal to 1",
            ]
        );
    }
}
