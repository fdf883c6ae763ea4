//! The single status writer: while this controller holds the Lease, it server-side-applies the
//! statuses `translate` computed (field manager `sluice`), and only those that really changed.
//!
//! Some of it is known only to the provisioner (see [`crate::provision`]), which reads what
//! translation cannot: a GatewayClass's `parametersRef` ConfigMap and each Gateway's data plane.
//! Its [`Provisioning`] view is overlaid before writing: `Accepted: False` / `InvalidParameters`
//! on a class with unusable parameters and on its Gateways, and a Gateway's `addresses` and
//! `Programmed` from its data plane. A condition whose status did not change keeps the
//! `lastTransitionTime` it has on the API server, so a new leader does not rewrite every object
//! after a failover; one whose status changed gets the time of the write.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use gateway_api::apis::experimental::gatewayclasses::GatewayClass;
use gateway_api::apis::experimental::gateways::{Gateway, GatewayStatusAddresses};
use gateway_api::apis::experimental::httproutes::HttpRoute;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::publish::Store;
use crate::sources::kube::ClaimedRoutes;
use crate::status::conditions::reasons::{self, INVALID_PARAMETERS};
use crate::status::conditions::types;
use crate::status::{Kind, StatusKey};
use crate::CONTROLLER_NAME;

/// The field manager of every status Sluice writes.
pub const FIELD_MANAGER: &str = "sluice";

/// Rewrite everything now and then, in case someone else changed a status behind our back.
const RESYNC: Duration = Duration::from_secs(60);

/// Bounds one write, client retries included, so a deposed leader does not keep retrying.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads and applies of one status when the object keeps changing in between (409 Conflict).
const CONFLICT_ATTEMPTS: u32 = 3;

/// A Gateway's provisioned data plane as the provisioner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DataPlane {
    /// At least one data-plane pod is available and the Service has an address.
    pub programmed: bool,
    /// Why not, when not: a Gateway API `Programmed` reason and a message.
    pub reason: &'static str,
    pub message: String,
    pub addresses: Vec<(String, String)>,
}

impl DataPlane {
    fn not_yet_provisioned() -> DataPlane {
        DataPlane {
            programmed: false,
            reason: reasons::PENDING,
            message: "waiting for the data plane to be provisioned".into(),
            addresses: Vec::new(),
        }
    }
}

/// Keyed `namespace/name`.
pub type DataPlanes = BTreeMap<String, DataPlane>;

/// What the provisioner adds to the statuses translation computed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Provisioning {
    /// False until the provisioner's first reconcile: until then the writer leaves GatewayClasses
    /// and Gateways alone rather than write what it would take back a moment later (a new
    /// leader would otherwise flap `Programmed` and `Accepted` after a failover).
    pub reconciled: bool,
    /// GatewayClasses whose `parametersRef` cannot be used, by name: the error, for
    /// `Accepted: False` with reason `InvalidParameters`.
    pub invalid_classes: BTreeMap<String, String>,
    /// Gateways of those classes, keyed `namespace/name`: not accepted, not provisioned.
    pub rejected_gateways: BTreeMap<String, String>,
    /// The data plane of every provisioned Gateway, keyed `namespace/name`.
    pub data_planes: DataPlanes,
}

#[derive(Debug, thiserror::Error)]
pub enum StatusWriteError {
    #[error("status key {0} names no object")]
    Key(StatusKey),
    #[error("writing the status of {key}")]
    Api {
        key: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing the status of {0} timed out")]
    Timeout(String),
    #[error("encoding a status")]
    Encode(#[source] serde_json::Error),
}

pub struct StatusWriter {
    client: Client,
    store: Arc<Store>,
    leader: watch::Receiver<bool>,
    provisioning: watch::Receiver<Arc<Provisioning>>,
    claimed: watch::Receiver<Arc<ClaimedRoutes>>,
    /// Per object: the status translate wanted, and what we wrote (or found) for it.
    written: HashMap<StatusKey, (Value, Value)>,
}

impl StatusWriter {
    /// `claimed` comes from the kube source ([`KubeSource::claimed_routes`]).
    ///
    /// [`KubeSource::claimed_routes`]: crate::sources::kube::KubeSource::claimed_routes
    pub fn new(
        client: Client,
        store: Arc<Store>,
        leader: watch::Receiver<bool>,
        provisioning: watch::Receiver<Arc<Provisioning>>,
        claimed: watch::Receiver<Arc<ClaimedRoutes>>,
    ) -> StatusWriter {
        StatusWriter {
            client,
            store,
            leader,
            provisioning,
            claimed,
            written: HashMap::new(),
        }
    }

    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run())
    }

    async fn run(mut self) {
        let mut generations = self.store.subscribe();
        // Without a provisioner (its sender dropped) its view simply never changes.
        let mut provisioning_open = true;
        let mut claimed_open = true;
        loop {
            if *self.leader.borrow_and_update() && self.store.is_ready() {
                if let Err(e) = self.sync().await {
                    tracing::warn!("status write failed, will retry: {e}");
                }
            } else {
                // A future term starts from what the API server holds, not from our memory.
                self.written.clear();
            }
            tokio::select! {
                r = generations.changed() => if r.is_err() { return },
                r = self.leader.changed() => if r.is_err() { return },
                r = self.provisioning.changed(), if provisioning_open => provisioning_open = r.is_ok(),
                r = self.claimed.changed(), if claimed_open => claimed_open = r.is_ok(),
                _ = tokio::time::sleep(RESYNC) => self.written.clear(),
            }
        }
    }

    /// Writes every status that differs from what we last wrote or found.
    pub async fn sync(&mut self) -> Result<usize, StatusWriteError> {
        let snapshot = self.store.load();
        let provisioning = self.provisioning.borrow().clone();
        let mut wanted = Vec::new();
        for (key, status) in &snapshot.statuses.objects {
            let mut desired = serde_json::to_value(status).map_err(StatusWriteError::Encode)?;
            let provisioned_kind = matches!(key.kind, Kind::GatewayClass | Kind::Gateway);
            if provisioned_kind && !provisioning.reconciled {
                continue;
            }
            overlay_provisioning(&mut desired, key, &provisioning);
            wanted.push((key.clone(), desired));
        }
        // A route that no longer names any of our Gateways (parentRef removed, Gateway deleted
        // or moved to another class) has no status from translation, but may still carry ours.
        let claimed = self.claimed.borrow().clone();
        for key in claimed.iter() {
            if !snapshot.statuses.objects.contains_key(key) {
                wanted.push((key.clone(), json!({ "parents": [] })));
            }
        }
        let mut writes = 0;
        let mut first_error = None;
        for (key, desired) in wanted {
            if self.written.get(&key).is_some_and(|(d, _)| *d == desired) {
                continue;
            }
            let name = key.name.as_str();
            let result = match (key.kind, key.namespace.as_deref()) {
                (Kind::GatewayClass, _) => {
                    self.write(
                        Api::<GatewayClass>::all(self.client.clone()),
                        name,
                        &desired,
                    )
                    .await
                }
                (Kind::Gateway, Some(ns)) => {
                    self.write(
                        Api::<Gateway>::namespaced(self.client.clone(), ns),
                        name,
                        &desired,
                    )
                    .await
                }
                (Kind::HttpRoute, Some(ns)) => {
                    self.write(
                        Api::<HttpRoute>::namespaced(self.client.clone(), ns),
                        name,
                        &desired,
                    )
                    .await
                }
                _ => Err(StatusWriteError::Key(key.clone())),
            };
            match result {
                Ok(Some((sent, wrote))) => {
                    writes += usize::from(wrote);
                    self.written.insert(key, (desired, sent));
                }
                // Gone, or leadership lost mid-way: nothing to remember.
                Ok(None) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(writes),
        }
    }

    /// Applies `desired` as the status of `name` unless it already is; `None` when the object is
    /// gone or this controller is no longer the leader. The apply carries the resourceVersion it
    /// compared against, so a status someone changed in between (another controller's route
    /// parent entry) is read again rather than overwritten.
    async fn write<K>(
        &self,
        api: Api<K>,
        name: &str,
        desired: &Value,
    ) -> Result<Option<(Value, bool)>, StatusWriteError>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug,
    {
        let key = format!("{}/{name}", K::kind(&()));
        let api_err = |source| StatusWriteError::Api {
            key: key.clone(),
            source,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Some(live) = api.get_opt(name).await.map_err(api_err)? else {
                return Ok(None);
            };
            let live = serde_json::to_value(&live).map_err(StatusWriteError::Encode)?;
            let live_status = live.get("status").cloned().unwrap_or(Value::Null);
            let mut desired = desired.clone();
            if K::kind(&()) == "HTTPRoute" {
                merge_route_parents(&mut desired, &live_status);
            }
            carry_transition_times(&mut desired, &live_status, &now());
            if live_status == desired {
                return Ok(Some((desired, false)));
            }
            // Checked as late as possible: a controller that lost the Lease must not write.
            if !*self.leader.borrow() {
                return Ok(None);
            }
            let body = json!({
                "apiVersion": K::api_version(&()),
                "kind": K::kind(&()),
                "metadata": {
                    "name": name,
                    "resourceVersion": live.pointer("/metadata/resourceVersion"),
                },
                "status": desired,
            });
            let params = PatchParams::apply(FIELD_MANAGER).force();
            let body = Patch::Apply(&body);
            let patch = api.patch_status(name, &params, &body);
            match tokio::time::timeout(WRITE_TIMEOUT, patch).await {
                Err(_) => return Err(StatusWriteError::Timeout(key)),
                Ok(Ok(_)) => return Ok(Some((desired, true))),
                Ok(Err(kube::Error::Api(s))) if s.code == 404 => return Ok(None),
                Ok(Err(kube::Error::Api(s))) if s.code == 409 && attempt < CONFLICT_ATTEMPTS => {}
                Ok(Err(e)) => return Err(api_err(e)),
            }
        }
    }
}

/// `status.parents` of an HTTPRoute is an atomic list: whoever applies it owns all of it. So the
/// list we apply is the live one with our entries (`controllerName` Sluice's) replaced by
/// `desired`'s, in place; ours that translation no longer produces dropped; new ones appended;
/// and every other controller's entry kept as it is.
fn merge_route_parents(desired: &mut Value, live: &Value) {
    let ours: Vec<Value> = desired
        .get("parents")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut placed = vec![false; ours.len()];
    let mut merged = Vec::new();
    for entry in live
        .get("parents")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if entry.get("controllerName").and_then(Value::as_str) != Some(CONTROLLER_NAME) {
            merged.push(entry.clone());
            continue;
        }
        let same_parent = ours
            .iter()
            .position(|o| o.get("parentRef") == entry.get("parentRef"));
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
        map.insert("parents".into(), Value::Array(merged));
    }
}

/// Applies what the provisioner knows to the status of the object `key` names.
fn overlay_provisioning(status: &mut Value, key: &StatusKey, provisioning: &Provisioning) {
    match (key.kind, key.namespace.as_deref()) {
        (Kind::GatewayClass, _) => {
            if let Some(message) = provisioning.invalid_classes.get(&key.name) {
                set_condition(status, types::ACCEPTED, INVALID_PARAMETERS, message);
            }
        }
        (Kind::Gateway, Some(ns)) => {
            let key = format!("{ns}/{}", key.name);
            if let Some(message) = provisioning.rejected_gateways.get(&key) {
                reject_gateway(status, message);
            } else if let Some(dp) = provisioning.data_planes.get(&key) {
                overlay_data_plane(status, dp);
            } else {
                // Translated before the provisioner got to it (just created): not programmed
                // yet, so that `kubectl wait --for=condition=Programmed` does not return early.
                overlay_data_plane(status, &DataPlane::not_yet_provisioned());
            }
        }
        _ => {}
    }
}

/// A Gateway of a class with unusable parameters: not accepted, not programmed (nor any of its
/// listeners), and no address.
fn reject_gateway(status: &mut Value, message: &str) {
    set_condition(status, types::ACCEPTED, INVALID_PARAMETERS, message);
    let not_accepted = "the Gateway is not accepted";
    set_condition(status, types::PROGRAMMED, reasons::INVALID, not_accepted);
    if let Some(map) = status.as_object_mut() {
        map.remove("addresses");
        if let Some(listeners) = map.get_mut("listeners").and_then(Value::as_array_mut) {
            for listener in listeners {
                set_condition(listener, types::PROGRAMMED, reasons::INVALID, not_accepted);
            }
        }
    }
}

/// Makes the condition `type_` of `status` False with this reason and message.
fn set_condition(status: &mut Value, type_: &str, reason: &str, message: &str) {
    let conditions = status
        .get_mut("conditions")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten();
    for c in conditions {
        if c.get("type").and_then(Value::as_str) == Some(type_) {
            c["status"] = json!("False");
            c["reason"] = json!(reason);
            c["message"] = json!(message);
        }
    }
}

/// Sets the Gateway's addresses from its Service and, while its data plane is not available,
/// turns a `Programmed: True` from translation into `False` with the provisioner's reason.
fn overlay_data_plane(status: &mut Value, dp: &DataPlane) {
    let Some(map) = status.as_object_mut() else {
        return;
    };
    let addresses: Vec<GatewayStatusAddresses> = dp
        .addresses
        .iter()
        .map(|(t, v)| GatewayStatusAddresses {
            r#type: Some(t.clone()),
            value: v.clone(),
        })
        .collect();
    if addresses.is_empty() {
        map.remove("addresses");
    } else if let Ok(v) = serde_json::to_value(&addresses) {
        map.insert("addresses".into(), v);
    }
    if dp.programmed {
        return;
    }
    if let Some(conditions) = map.get_mut("conditions").and_then(Value::as_array_mut) {
        for c in conditions {
            let programmed_true = c.get("type").and_then(Value::as_str) == Some(types::PROGRAMMED)
                && c.get("status").and_then(Value::as_str) == Some("True");
            if programmed_true {
                c["status"] = json!("False");
                c["reason"] = json!(dp.reason);
                c["message"] = json!(dp.message);
            }
        }
    }
}

/// Copies `lastTransitionTime` from `live` onto every condition of `desired` whose type and status
/// are unchanged and stamps `now` on those whose status changed, walking the same shape
/// (listeners by name, route parents by parentRef). A condition the provisioner flipped keeps
/// translation's time otherwise, which may be long past.
pub fn carry_transition_times(desired: &mut Value, live: &Value, now: &str) {
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
                let counterpart = ["type", "name", "parentRef"].iter().find_map(|field| {
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
fn now() -> String {
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

    #[test]
    fn an_unavailable_data_plane_is_not_programmed() {
        let mut status = json!({"conditions": [
            {"type": "Accepted", "status": "True", "reason": "Accepted"},
            {"type": "Programmed", "status": "True", "reason": "Programmed"},
        ], "addresses": [{"type": "IPAddress", "value": "0.0.0.0"}]});
        let dp = DataPlane {
            programmed: false,
            reason: "Pending",
            message: "no data-plane pod is available yet".into(),
            addresses: vec![],
        };
        overlay_data_plane(&mut status, &dp);
        assert_eq!(status["conditions"][1]["status"], "False");
        assert_eq!(status["conditions"][1]["reason"], "Pending");
        assert_eq!(status["conditions"][0]["status"], "True");
        assert!(status.get("addresses").is_none(), "no Service address yet");
    }

    #[test]
    fn a_gateway_of_a_class_with_invalid_parameters_is_neither_accepted_nor_programmed() {
        let mut status = json!({"conditions": [
            {"type": "Accepted", "status": "True", "reason": "Accepted"},
            {"type": "Programmed", "status": "True", "reason": "Programmed"},
        ], "listeners": [{"name": "http", "conditions": [
            {"type": "Accepted", "status": "True", "reason": "Accepted"},
            {"type": "Programmed", "status": "True", "reason": "Programmed"}]}],
        "addresses": [{"type": "IPAddress", "value": "10.0.0.1"}]});
        let provisioning = Provisioning {
            rejected_gateways: BTreeMap::from([(
                "demo/web".to_string(),
                "GatewayClass sluice: ConfigMap sluice-system/knobs not found".to_string(),
            )]),
            ..Provisioning::default()
        };
        overlay_provisioning(
            &mut status,
            &StatusKey::gateway("demo", "web"),
            &provisioning,
        );
        assert_eq!(status["conditions"][0]["status"], "False");
        assert_eq!(status["conditions"][0]["reason"], "InvalidParameters");
        assert_eq!(
            status["conditions"][0]["message"],
            "GatewayClass sluice: ConfigMap sluice-system/knobs not found"
        );
        assert_eq!(status["conditions"][1]["reason"], "Invalid");
        assert_eq!(
            status["listeners"][0]["conditions"][1]["status"], "False",
            "listeners are not programmed either"
        );
        assert!(status.get("addresses").is_none());
    }

    #[test]
    fn a_class_with_invalid_parameters_is_not_accepted() {
        let mut status = json!({"conditions": [
            {"type": "Accepted", "status": "True", "reason": "Accepted", "message": ""}]});
        let provisioning = Provisioning {
            invalid_classes: BTreeMap::from([("sluice".to_string(), "bad".to_string())]),
            ..Provisioning::default()
        };
        overlay_provisioning(
            &mut status,
            &StatusKey::gateway_class("sluice"),
            &provisioning,
        );
        assert_eq!(
            status["conditions"][0],
            json!({"type": "Accepted", "status": "False", "reason": "InvalidParameters", "message": "bad"})
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
    fn a_gateway_the_provisioner_has_not_reached_is_not_programmed_yet() {
        let mut status = json!({"conditions": [
            {"type": "Accepted", "status": "True", "reason": "Accepted"},
            {"type": "Programmed", "status": "True", "reason": "Programmed"},
        ], "addresses": [{"type": "IPAddress", "value": "0.0.0.0"}]});
        let provisioning = Provisioning {
            reconciled: true,
            ..Provisioning::default()
        };
        overlay_provisioning(
            &mut status,
            &StatusKey::gateway("demo", "new"),
            &provisioning,
        );
        assert_eq!(status["conditions"][1]["status"], "False");
        assert_eq!(status["conditions"][1]["reason"], "Pending");
        assert!(
            status.get("addresses").is_none(),
            "translation's listen address is no Gateway address"
        );
    }
}
