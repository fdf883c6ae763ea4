//! The status every object would get in a cluster, computed purely by `translate`.
//!
//! Keys are [`StatusKey`]s, printed `Kind/namespace/name` (`GatewayClass/name` for the
//! cluster-scoped class); values are the object's `status` exactly as Kubernetes would show it,
//! using the gateway-api status types. The condition types and reasons are in [`conditions`].

pub mod conditions;
mod key;
pub mod unbound;

pub use self::key::{Kind, StatusKey};

use std::collections::BTreeMap;

use gateway_api::apis::experimental::gatewayclasses::GatewayClassStatus;
use gateway_api::apis::experimental::gateways::{GatewayStatus, GatewayStatusListeners};
use gateway_api::apis::experimental::grpcroutes::GrpcRouteStatus;
use gateway_api::apis::experimental::httproutes::HttpRouteStatus;
use gateway_api::apis::experimental::tlsroutes::TlsRouteStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use serde::Serialize;

use crate::resources::backend_tls_policy::PolicyStatus;
use crate::resources::ListenerSetStatus;

/// Statuses by object; a `BTreeMap`, so serialization is sorted and byte-stable.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct StatusReport {
    /// Each object's status, keyed by the object.
    pub objects: BTreeMap<StatusKey, ObjectStatus>,
}

/// The `status` of one object, in the gateway-api type of its kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ObjectStatus {
    /// A GatewayClass's status: `Accepted` and `supportedFeatures`.
    GatewayClass(GatewayClassStatus),
    /// A Gateway's status: its conditions, addresses and listeners.
    Gateway(GatewayStatus),
    /// An HTTPRoute's status: one entry per parentRef Sluice serves.
    HttpRoute(HttpRouteStatus),
    /// A GRPCRoute's status: the same shape as an HTTPRoute's.
    GrpcRoute(GrpcRouteStatus),
    /// A TLSRoute's status: the same shape as an HTTPRoute's.
    TlsRoute(TlsRouteStatus),
    /// A ListenerSet's status: its conditions and listeners.
    ListenerSet(ListenerSetStatus),
    /// A BackendTLSPolicy's status: one entry per Gateway it affects.
    BackendTlsPolicy(PolicyStatus),
    /// A MirrorPolicy's status: one entry per Gateway of its targets (or per missing target).
    MirrorPolicy(PolicyStatus),
}

/// Route statuses of every kind have the same shape, in different generated types.
macro_rules! carry_parents {
    ($new:expr, $old:expr) => {
        for p in &mut $new.parents {
            if let Some(old_p) = $old.parents.iter().find(|o| o.parent_ref == p.parent_ref) {
                carry_vec(&mut p.conditions, &old_p.conditions);
            }
        }
    };
}

impl StatusReport {
    /// The status of `key`; `None` when translation computed none for it.
    pub fn get(&self, key: &StatusKey) -> Option<&ObjectStatus> {
        self.objects.get(key)
    }

    /// The status of Gateway `namespace/name`; `None` when it has none or the key is another
    /// kind's.
    pub fn gateway(&self, namespace: &str, name: &str) -> Option<&GatewayStatus> {
        match self.objects.get(&StatusKey::gateway(namespace, name)) {
            Some(ObjectStatus::Gateway(s)) => Some(s),
            _ => None,
        }
    }

    /// The status of HTTPRoute `namespace/name`; `None` when it has none.
    pub fn http_route(&self, namespace: &str, name: &str) -> Option<&HttpRouteStatus> {
        match self.objects.get(&StatusKey::http_route(namespace, name)) {
            Some(ObjectStatus::HttpRoute(s)) => Some(s),
            _ => None,
        }
    }

    /// The status of GatewayClass `name`; `None` when it names another controller or does not
    /// exist.
    pub fn gateway_class(&self, name: &str) -> Option<&GatewayClassStatus> {
        match self.objects.get(&StatusKey::gateway_class(name)) {
            Some(ObjectStatus::GatewayClass(s)) => Some(s),
            _ => None,
        }
    }

    /// Keeps `previous`'s `lastTransitionTime` on every condition whose status did not change, as the
    /// API server's condition helpers do, so a reload that changes nothing changes no timestamps.
    pub fn carry_transition_times(&mut self, previous: &StatusReport) {
        for (key, status) in &mut self.objects {
            let Some(old) = previous.objects.get(key) else {
                continue;
            };
            match (status, old) {
                (ObjectStatus::GatewayClass(new), ObjectStatus::GatewayClass(old)) => {
                    carry(&mut new.conditions, &old.conditions);
                }
                (ObjectStatus::Gateway(new), ObjectStatus::Gateway(old)) => {
                    carry(&mut new.conditions, &old.conditions);
                    carry_listeners(&mut new.listeners, &old.listeners);
                }
                (ObjectStatus::ListenerSet(new), ObjectStatus::ListenerSet(old)) => {
                    carry(&mut new.conditions, &old.conditions);
                    carry_listeners(&mut new.listeners, &old.listeners);
                }
                (ObjectStatus::HttpRoute(new), ObjectStatus::HttpRoute(old)) => {
                    carry_parents!(new, old);
                }
                (ObjectStatus::GrpcRoute(new), ObjectStatus::GrpcRoute(old)) => {
                    carry_parents!(new, old);
                }
                (ObjectStatus::TlsRoute(new), ObjectStatus::TlsRoute(old)) => {
                    carry_parents!(new, old);
                }
                (ObjectStatus::BackendTlsPolicy(new), ObjectStatus::BackendTlsPolicy(old))
                | (ObjectStatus::MirrorPolicy(new), ObjectStatus::MirrorPolicy(old)) => {
                    for a in &mut new.ancestors {
                        if let Some(old_a) = old
                            .ancestors
                            .iter()
                            .find(|o| o.ancestor_ref == a.ancestor_ref)
                        {
                            carry_vec(&mut a.conditions, &old_a.conditions);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

fn carry_listeners(
    new: &mut Option<Vec<GatewayStatusListeners>>,
    old: &Option<Vec<GatewayStatusListeners>>,
) {
    for l in new.iter_mut().flatten() {
        let old_l = old.iter().flatten().find(|o| o.name == l.name);
        if let Some(old_l) = old_l {
            carry_vec(&mut l.conditions, &old_l.conditions);
        }
    }
}

fn carry(new: &mut Option<Vec<Condition>>, old: &Option<Vec<Condition>>) {
    if let (Some(new), Some(old)) = (new, old) {
        carry_vec(new, old);
    }
}

fn carry_vec(new: &mut [Condition], old: &[Condition]) {
    for c in new {
        if let Some(o) = old.iter().find(|o| o.type_ == c.type_) {
            if o.status == c.status {
                c.last_transition_time = o.last_transition_time.clone();
            }
        }
    }
}

/// One condition, as the status types carry it.
pub fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    Condition {
        type_: type_.to_string(),
        status: if status { "True" } else { "False" }.to_string(),
        reason: reason.to_string(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: Time(now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_api::apis::experimental::gatewayclasses::GatewayClassStatus;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).expect("valid timestamp")
    }

    fn class_report(status: bool, at: i64) -> StatusReport {
        let mut r = StatusReport::default();
        r.objects.insert(
            StatusKey::gateway_class("c"),
            ObjectStatus::GatewayClass(GatewayClassStatus {
                conditions: Some(vec![condition(
                    conditions::types::ACCEPTED,
                    status,
                    conditions::reasons::ACCEPTED,
                    "",
                    Some(1),
                    ts(at),
                )]),
                supported_features: None,
            }),
        );
        r
    }

    fn first_time(r: &StatusReport) -> Timestamp {
        let c = r
            .gateway_class("c")
            .and_then(|s| s.conditions.as_ref())
            .expect("conditions");
        c[0].last_transition_time.0
    }

    #[test]
    fn a_condition_keeps_its_transition_time_only_while_unchanged() {
        // (case, the old report's status, the transition time the new report keeps)
        let cases = [
            ("unchanged condition keeps its transition time", true, 100),
            ("changed condition gets the new transition time", false, 200),
        ];
        for (case, old_status, kept) in cases {
            let old = class_report(old_status, 100);
            let mut new = class_report(true, 200);
            new.carry_transition_times(&old);
            assert_eq!(first_time(&new), ts(kept), "{case}");
        }
    }

    #[test]
    fn report_serializes_sorted_by_key() {
        let mut r = class_report(true, 0);
        r.objects.insert(
            StatusKey::gateway("a", "b"),
            ObjectStatus::Gateway(GatewayStatus::default()),
        );
        let yaml = serde_yaml_ng::to_string(&r).expect("serializes");
        let gw = yaml.find("Gateway/a/b").expect("gateway key");
        let class = yaml.find("GatewayClass/c").expect("class key");
        assert!(gw < class, "{yaml}");
    }
}
