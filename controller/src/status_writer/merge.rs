//! The status to apply, from the one translation wants and the one live on the API server:
//! other controllers' route parent entries kept, unchanged conditions' transition times kept.

use serde_json::{json, Value};

use crate::CONTROLLER_NAME;

/// `status.parents` of an HTTPRoute is an atomic list: whoever applies it owns all of it. So the
/// list we apply is the live one with our entries (`controllerName` Sluice's) replaced by
/// `desired`'s, in place; ours that translation no longer produces dropped; new ones appended;
/// and every other controller's entry kept as it is.
pub(super) fn merge_route_parents(desired: &mut Value, live: &Value) {
    merge_ours(desired, live, "parents", "parentRef");
}

/// [`merge_route_parents`] for a policy's `status.ancestors`, entries keyed by `ancestorRef`.
pub(super) fn merge_policy_ancestors(desired: &mut Value, live: &Value) {
    merge_ours(desired, live, "ancestors", "ancestorRef");
}

fn merge_ours(desired: &mut Value, live: &Value, list: &str, key: &str) {
    let ours: Vec<Value> = desired
        .get(list)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut placed = vec![false; ours.len()];
    let mut merged = Vec::new();
    for entry in live
        .get(list)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if entry.get("controllerName").and_then(Value::as_str) != Some(CONTROLLER_NAME) {
            merged.push(entry.clone());
            continue;
        }
        let same_parent = ours.iter().position(|o| o.get(key) == entry.get(key));
        if let Some(i) = same_parent {
            if !placed[i] {
                placed[i] = true;
                merged.push(ours[i].clone());
            }
        }
    }
    merged.extend(
        ours.iter()
            .zip(&placed)
            .filter(|(_, placed)| !**placed)
            .map(|(o, _)| o.clone()),
    );
    if let Some(map) = desired.as_object_mut() {
        map.insert(list.into(), Value::Array(merged));
    }
}

/// Copies `lastTransitionTime` from `live` onto every condition of `desired` whose type and status
/// are unchanged and stamps `now` on those whose status changed, walking the same shape
/// (listeners by name, route parents by parentRef). A condition the provisioner flipped keeps
/// translation's time otherwise, which may be long past.
pub(super) fn carry_transition_times(desired: &mut Value, live: &Value, now: &str) {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => {
            for (k, v) in d.iter_mut() {
                if let Some(lv) = l.get(k) {
                    carry_transition_times(v, lv, now);
                }
            }
        }
        (Value::Array(d), Value::Array(l)) => {
            for item in d.iter_mut() {
                let counterpart = ["type", "name", "parentRef", "ancestorRef"]
                    .iter()
                    .find_map(|field| {
                        let id = item.get(*field)?;
                        l.iter().find(|o| o.get(*field) == Some(id))
                    });
                let Some(old) = counterpart else { continue };
                let is_condition =
                    item.get("type").is_some() && item.get("lastTransitionTime").is_some();
                if is_condition {
                    let time = if item.get("status") == old.get("status") {
                        old.get("lastTransitionTime").cloned()
                    } else {
                        Some(json!(now))
                    };
                    if let (Some(slot), Some(t)) = (item.as_object_mut(), time) {
                        slot.insert("lastTransitionTime".into(), t);
                    }
                } else {
                    carry_transition_times(item, old, now);
                }
            }
        }
        _ => {}
    }
}

/// The API server's timestamp format, to the second.
pub(super) fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_conditions_keep_their_live_transition_time() {
        let mut desired = json!({"conditions": [
            {"type": "Accepted", "status": "True", "lastTransitionTime": "2026-02-02T00:00:00Z"},
            {"type": "Programmed", "status": "True", "lastTransitionTime": "2026-02-02T00:00:00Z"},
        ], "listeners": [{"name": "http", "conditions": [
            {"type": "Accepted", "status": "True", "lastTransitionTime": "2026-02-02T00:00:00Z"}]}]});
        let live = json!({"conditions": [
            {"type": "Accepted", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"},
            {"type": "Programmed", "status": "False", "lastTransitionTime": "2026-01-01T00:00:00Z"},
        ], "listeners": [{"name": "http", "conditions": [
            {"type": "Accepted", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}]});
        carry_transition_times(&mut desired, &live, "2026-03-03T00:00:00Z");
        assert_eq!(
            desired["conditions"][0]["lastTransitionTime"],
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(
            desired["conditions"][1]["lastTransitionTime"], "2026-03-03T00:00:00Z",
            "status changed: the time of the write"
        );
        assert_eq!(
            desired["listeners"][0]["conditions"][0]["lastTransitionTime"],
            "2026-01-01T00:00:00Z"
        );
    }

    fn parent(controller: &str, gateway: &str, reason: &str) -> Value {
        json!({"controllerName": controller,
            "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway},
            "conditions": [{"type": "Accepted", "status": "True", "reason": reason}]})
    }

    #[test]
    fn our_route_parents_are_replaced_dropped_or_added_and_others_kept_in_place() {
        let other = "example.net/other";
        let live = json!({"parents": [
            parent(CONTROLLER_NAME, "gone", "Accepted"),
            parent(other, "theirs", "Accepted"),
            parent(CONTROLLER_NAME, "kept", "Accepted"),
        ]});
        let mut desired = json!({"parents": [
            parent(CONTROLLER_NAME, "new", "Accepted"),
            parent(CONTROLLER_NAME, "kept", "NotAllowedByListeners"),
        ]});
        merge_route_parents(&mut desired, &live);
        assert_eq!(
            desired,
            json!({"parents": [
                parent(other, "theirs", "Accepted"),
                parent(CONTROLLER_NAME, "kept", "NotAllowedByListeners"),
                parent(CONTROLLER_NAME, "new", "Accepted"),
            ]})
        );

        let mut none_of_ours = json!({"parents": []});
        merge_route_parents(&mut none_of_ours, &live);
        assert_eq!(
            none_of_ours,
            json!({"parents": [parent(other, "theirs", "Accepted")]})
        );
    }

    #[test]
    fn our_policy_ancestors_are_replaced_and_other_controllers_kept() {
        let ancestor = |controller: &str, gateway: &str, reason: &str| {
            json!({"controllerName": controller,
                "ancestorRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway},
                "conditions": [{"type": "Accepted", "status": "True", "reason": reason}]})
        };
        let other = "example.net/other";
        let live = json!({"ancestors": [
            ancestor(other, "theirs", "Accepted"),
            ancestor(CONTROLLER_NAME, "gw", "Accepted"),
        ]});
        let mut desired = json!({"ancestors": [ancestor(CONTROLLER_NAME, "gw", "Conflicted")]});
        merge_policy_ancestors(&mut desired, &live);
        assert_eq!(
            desired,
            json!({"ancestors": [
                ancestor(other, "theirs", "Accepted"),
                ancestor(CONTROLLER_NAME, "gw", "Conflicted"),
            ]})
        );
    }
}
