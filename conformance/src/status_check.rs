//! Evaluating one status check (FORMAT.md §5) against Sluice's `/status` document and the harness's objects.
//!
//! Every function returns `Err(why)` while the check does not hold, so the poller can report the last reason.

mod generated;

use serde_json::Value;

use crate::case::{ConditionSpec, Conditions, ListenerSelection, ParentRefExpect, StatusCheck};
use crate::objects::{ObjectKey, ObjectStore};

const DEFAULT_GROUP: &str = "gateway.networking.k8s.io";

/// What a check can see.
pub struct View<'a> {
    /// `/status`: `Kind/namespace/name` -> status.
    pub statuses: &'a Value,
    pub objects: &'a ObjectStore,
    pub controller_name: &'a str,
    /// Namespaces that have at least one running echo pod.
    pub namespaces_with_pods: &'a [String],
}

pub fn evaluate(check: &StatusCheck, view: &View<'_>) -> Result<(), String> {
    match check.kind.as_str() {
        "NamespaceReadiness" => namespace_readiness(check, view),
        // A ListenerSet's status has the shape of a Gateway's (conditions, listeners).
        "Gateway" | "ListenerSet" => gateway(check, view),
        "GatewayClass" => gateway_class(check, view),
        "BackendTLSPolicy" => policy(check, view),
        "GeneratedResources" => generated::generated_resources(check, view),
        kind if kind.ends_with("Route") => route(check, view),
        other => Err(format!(
            "status check kind {other} is not supported by this harness"
        )),
    }
}

fn key_of(check: &StatusCheck) -> ObjectKey {
    ObjectKey::new(
        &check.kind,
        check.namespace.as_deref(),
        check.name.as_deref().unwrap_or_default(),
    )
}

fn status_of<'a>(view: &View<'a>, key: &ObjectKey) -> Result<&'a Value, String> {
    view.statuses
        .get(key.to_string())
        .ok_or_else(|| format!("{key} has no status yet"))
}

fn generation(view: &View<'_>, key: &ObjectKey) -> Result<i64, String> {
    view.objects
        .generation(key)
        .ok_or_else(|| format!("{key} is not among the applied objects"))
}

/// The array at `key` of `object`; empty when there is none.
fn items<'a>(object: &'a Value, key: &str) -> &'a [Value] {
    conditions(object.get(key))
}

fn conditions(value: Option<&Value>) -> &[Value] {
    value
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn at_generation(conds: &[Value], generation: i64, what: &str) -> Result<(), String> {
    for c in conds {
        let observed = c.get("observedGeneration").and_then(Value::as_i64);
        if observed != Some(generation) {
            return Err(format!(
                "{what}: condition {} has observedGeneration {observed:?}, object generation is {generation}",
                c.get("type").and_then(Value::as_str).unwrap_or("?")
            ));
        }
    }
    Ok(())
}

fn has_conditions(conds: &[Value], expected: &Conditions, what: &str) -> Result<(), String> {
    for spec in &expected.0 {
        if !conds.iter().any(|c| condition_matches(c, spec)) {
            let seen: Vec<String> = conds.iter().map(describe_condition).collect();
            return Err(format!("{what}: missing {spec}; has [{}]", seen.join(", ")));
        }
    }
    Ok(())
}

fn condition_matches(c: &Value, spec: &ConditionSpec) -> bool {
    let field = |name: &str| c.get(name).and_then(Value::as_str);
    field("type") == Some(spec.kind.as_str())
        && spec
            .status
            .as_deref()
            .is_none_or(|s| field("status") == Some(s))
        && spec
            .reason
            .as_deref()
            .is_none_or(|r| field("reason") == Some(r))
}

fn describe_condition(c: &Value) -> String {
    let field = |name: &str| c.get(name).and_then(Value::as_str).unwrap_or("?");
    format!("{}={}/{}", field("type"), field("status"), field("reason"))
}

/// Every entry of a route's `status.parents` or a policy's `status.ancestors` was written for
/// `generation`; `what` names the entry in the error.
fn entries_at_generation(entries: &[Value], generation: i64, what: &str) -> Result<(), String> {
    for entry in entries {
        at_generation(conditions(entry.get("conditions")), generation, what)?;
    }
    Ok(())
}

/// Some entry of `status.<list>` whose `<reference>` (`parentRef`, `ancestorRef`) names
/// `target` has the `expected` conditions; else the last mismatch.
fn entry_with_conditions(
    entries: &[Value],
    list: &str,
    reference: &str,
    target: &ParentRefExpect,
    expected: &Conditions,
    key: &ObjectKey,
) -> Result<(), String> {
    let field = |entry: &Value, name: &str| {
        entry
            .pointer(&format!("/{reference}/{name}"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let candidates: Vec<&Value> = entries
        .iter()
        .filter(|e| {
            field(e, "name").as_deref() == Some(target.name.as_str())
                && field(e, "namespace")
                    .is_none_or(|ns| Some(ns.as_str()) == target.namespace.as_deref())
        })
        .collect();
    if candidates.is_empty() {
        return Err(format!("{key}: no status.{list} entry for {}", target.name));
    }
    let mut last = String::new();
    let found = candidates.iter().any(|e| {
        match has_conditions(conditions(e.get("conditions")), expected, &key.to_string()) {
            Ok(()) => true,
            Err(why) => {
                last = why;
                false
            }
        }
    });
    if found {
        Ok(())
    } else {
        Err(last)
    }
}

fn generation_changed(check: &StatusCheck, view: &View<'_>, key: &ObjectKey) -> Result<(), String> {
    if !check.generation_changed {
        return Ok(());
    }
    let now = generation(view, key)?;
    match view.objects.generation_before_patch(key) {
        Some(before) if before != now => Ok(()),
        Some(before) => Err(format!(
            "{key}: generation {now} did not change from {before}"
        )),
        None => Err(format!("{key} was never patched in this case")),
    }
}

// === routes ===

fn route(check: &StatusCheck, view: &View<'_>) -> Result<(), String> {
    let key = key_of(check);
    let generation_now = generation(view, &key)?;
    let status = status_of(view, &key);
    let empty = Vec::new();
    let parents = match status {
        Ok(status) => status
            .get("parents")
            .and_then(Value::as_array)
            .unwrap_or(&empty),
        // A route no Gateway of ours accepts may have no status at all: that is "no parents".
        Err(_) if check.no_accepted_parents => &empty,
        Err(why) => return Err(why),
    };
    let all_latest = || entries_at_generation(parents, generation_now, &format!("{key} parent"));
    if check.latest_observed_generation {
        all_latest()?;
        generation_changed(check, view, &key)?;
    }
    if check.no_accepted_parents {
        match parents.as_slice() {
            [] => {}
            [only] => {
                all_latest()?;
                let accepted_false = ConditionSpec::parse("Accepted", "False");
                if !conditions(only.get("conditions"))
                    .iter()
                    .any(|c| condition_matches(c, &accepted_false))
                {
                    return Err(format!(
                        "{key}: its only parent is not Accepted=False: {only}"
                    ));
                }
            }
            many => {
                return Err(format!(
                    "{key}: {} parents, expected none accepted",
                    many.len()
                ))
            }
        }
    }
    if let Some(parent) = &check.parent {
        all_latest()?;
        let expected = check.conditions.clone().unwrap_or_default();
        entry_with_conditions(parents, "parents", "parentRef", parent, &expected, &key)?;
    }
    if let Some(expected_parents) = &check.parents {
        let namespace_required = check.namespace_required.unwrap_or(true);
        for want in expected_parents {
            let group = want.group.as_deref().unwrap_or(DEFAULT_GROUP);
            let kind = want.kind.as_deref().unwrap_or("Gateway");
            let entry = parents.iter().find(|p| {
                let field = |name: &str| {
                    p.pointer(&format!("/parentRef/{name}"))
                        .and_then(Value::as_str)
                };
                p.get("controllerName").and_then(Value::as_str) == Some(view.controller_name)
                    && field("group") == Some(group)
                    && field("kind") == Some(kind)
                    && field("name") == Some(want.name.as_str())
                    && match field("namespace") {
                        Some(ns) => Some(ns) == want.namespace.as_deref(),
                        None => !namespace_required,
                    }
            });
            let Some(entry) = entry else {
                return Err(format!(
                    "{key}: no status.parents entry with controllerName {} and parentRef {group}/{kind} {}/{} \
                     (group and kind must be set{}); parents: {}",
                    view.controller_name,
                    want.namespace.as_deref().unwrap_or(""),
                    want.name,
                    if namespace_required { ", namespace required" } else { "" },
                    Value::Array(parents.clone())
                ));
            };
            has_conditions(
                conditions(entry.get("conditions")),
                &want.conditions,
                &key.to_string(),
            )?;
        }
    }
    Ok(())
}

// === gateways ===

fn gateway(check: &StatusCheck, view: &View<'_>) -> Result<(), String> {
    let key = key_of(check);
    let generation_now = generation(view, &key)?;
    let status = status_of(view, &key)?;
    let gw_conditions = conditions(status.get("conditions"));
    let latest = || at_generation(gw_conditions, generation_now, &key.to_string());
    let listeners = items(status, "listeners");
    if check.latest_observed_generation {
        latest()?;
        generation_changed(check, view, &key)?;
    }
    if let Some(expected) = &check.conditions {
        latest()?;
        has_conditions(gw_conditions, expected, &key.to_string())?;
    }
    if check.address {
        latest()?;
        let typed = status
            .get("addresses")
            .and_then(Value::as_array)
            .is_some_and(|a| {
                a.iter()
                    .any(|a| a.get("type").and_then(Value::as_str).is_some())
            });
        if !typed {
            return Err(format!("{key}: status.addresses has no entry with a type"));
        }
    }
    if let Some(lc) = &check.listener_conditions {
        // FORMAT.md §5: a ListenerSet's conditions must be current for this check too.
        if check.kind == "ListenerSet" {
            latest()?;
        }
        match &lc.listeners {
            ListenerSelection::All(_) => {
                for l in listeners {
                    listener_has(&key, l, &lc.conditions)?;
                }
            }
            ListenerSelection::Named(names) => {
                for name in names {
                    let l = find_listener(listeners, name)
                        .ok_or_else(|| format!("{key}: no status for listener {name}"))?;
                    listener_has(&key, l, &lc.conditions)?;
                }
            }
        }
    }
    if let Some(expected) = &check.listeners {
        latest()?;
        if listeners.len() != expected.len() {
            return Err(format!(
                "{key}: status has {} listeners, expected {}",
                listeners.len(),
                expected.len()
            ));
        }
        for want in expected {
            let l = find_listener(listeners, &want.name)
                .ok_or_else(|| format!("{key}: no status for listener {}", want.name))?;
            if let Some(attached) = want.attached_routes {
                let got = l.get("attachedRoutes").and_then(Value::as_i64);
                if got != Some(attached) {
                    return Err(format!(
                        "{key} listener {}: attachedRoutes {got:?}, expected {attached}",
                        want.name
                    ));
                }
            }
            if let Some(kinds) = &want.supported_kinds {
                let got = items(l, "supportedKinds");
                if kinds.is_empty() && !got.is_empty() {
                    return Err(format!(
                        "{key} listener {}: supportedKinds {got:?}, expected none",
                        want.name
                    ));
                }
                for k in kinds {
                    let group = k.group.as_deref().unwrap_or(DEFAULT_GROUP);
                    let present = got.iter().any(|g| {
                        g.get("kind").and_then(Value::as_str) == Some(k.kind.as_str())
                            && g.get("group")
                                .and_then(Value::as_str)
                                .unwrap_or(DEFAULT_GROUP)
                                == group
                    });
                    if !present {
                        return Err(format!(
                            "{key} listener {}: supportedKinds {got:?} lacks {group}/{}",
                            want.name, k.kind
                        ));
                    }
                }
            }
            listener_has(&key, l, &want.conditions)?;
        }
    }
    if check.zero_routes {
        latest()?;
        let ok = listeners.is_empty()
            || (listeners.len() == 1
                && listeners[0].get("attachedRoutes").and_then(Value::as_i64) == Some(0));
        if !ok {
            return Err(format!(
                "{key}: expected no attached routes, listeners: {}",
                Value::Array(listeners.to_vec())
            ));
        }
    }
    if let Some(expected) = check.attached_listener_sets {
        latest()?;
        let got = status
            .get("attachedListenerSets")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if got != expected {
            return Err(format!(
                "{key}: attachedListenerSets {got}, expected {expected}"
            ));
        }
    }
    if let Some(sa) = &check.status_addresses {
        let addresses = items(status, "addresses");
        let value_of = |a: &Value| {
            a.get("value")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let values: Vec<String> = addresses.iter().map(value_of).collect();
        if let Some(count) = sa.count {
            if values.len() != count {
                return Err(format!(
                    "{key}: {} status addresses {values:?}, expected {count}",
                    values.len()
                ));
            }
        }
        for want in &sa.contains {
            if !values.contains(want) {
                return Err(format!("{key}: status addresses {values:?} lack {want}"));
            }
        }
        for unwanted in &sa.not_contains {
            if values.contains(unwanted) {
                return Err(format!(
                    "{key}: status addresses {values:?} contain {unwanted}"
                ));
            }
        }
        for (value, kind) in &sa.type_of {
            let got = addresses
                .iter()
                .find(|a| a.get("value").and_then(Value::as_str) == Some(value.as_str()))
                .and_then(|a| a.get("type").and_then(Value::as_str));
            if got != Some(kind.as_str()) {
                return Err(format!(
                    "{key}: address {value} has type {got:?}, expected {kind}"
                ));
            }
        }
    }
    Ok(())
}

fn find_listener<'a>(listeners: &'a [Value], name: &str) -> Option<&'a Value> {
    listeners
        .iter()
        .find(|l| l.get("name").and_then(Value::as_str) == Some(name))
}

fn listener_has(key: &ObjectKey, listener: &Value, expected: &Conditions) -> Result<(), String> {
    let name = listener.get("name").and_then(Value::as_str).unwrap_or("?");
    has_conditions(
        conditions(listener.get("conditions")),
        expected,
        &format!("{key} listener {name}"),
    )
}

fn gateway_class(check: &StatusCheck, view: &View<'_>) -> Result<(), String> {
    let key = key_of(check);
    let generation_now = generation(view, &key)?;
    let status = status_of(view, &key)?;
    let conds = conditions(status.get("conditions"));
    if check.latest_observed_generation || check.conditions.is_some() {
        at_generation(conds, generation_now, &key.to_string())?;
    }
    if check.latest_observed_generation {
        generation_changed(check, view, &key)?;
    }
    if let Some(expected) = &check.conditions {
        has_conditions(conds, expected, &key.to_string())?;
    }
    Ok(())
}

/// Policies report per ancestor (`status.ancestors[]`), like routes per parent.
fn policy(check: &StatusCheck, view: &View<'_>) -> Result<(), String> {
    let key = key_of(check);
    let generation_now = generation(view, &key)?;
    let status = status_of(view, &key)?;
    let ancestors = items(status, "ancestors");
    let all_latest =
        || entries_at_generation(ancestors, generation_now, &format!("{key} ancestor"));
    if check.latest_observed_generation {
        all_latest()?;
        generation_changed(check, view, &key)?;
    }
    if let Some(ancestor) = &check.ancestor {
        all_latest()?;
        let expected = check.conditions.clone().unwrap_or_default();
        entry_with_conditions(
            ancestors,
            "ancestors",
            "ancestorRef",
            ancestor,
            &expected,
            &key,
        )?;
    }
    Ok(())
}

fn namespace_readiness(check: &StatusCheck, view: &View<'_>) -> Result<(), String> {
    let accepted = Conditions(vec![
        ConditionSpec::parse("Accepted", "True"),
        ConditionSpec::parse("Programmed", "True"),
    ]);
    for namespace in check.namespaces.iter().flatten() {
        for (key, object) in view.objects.objects() {
            if key.kind != "Gateway" || key.namespace.as_deref() != Some(namespace.as_str()) {
                continue;
            }
            let skipped = object
                .pointer("/metadata/annotations/gateway-api~1skip-this-for-readiness")
                .and_then(Value::as_str)
                == Some("true");
            if skipped {
                continue;
            }
            let status = status_of(view, key)?;
            let conds = conditions(status.get("conditions"));
            at_generation(conds, generation(view, key)?, &key.to_string())?;
            has_conditions(conds, &accepted, &key.to_string())?;
        }
        if !view.namespaces_with_pods.contains(namespace) {
            return Err(format!("namespace {namespace} has no ready pod"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
