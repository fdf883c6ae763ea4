//! One condition's outcome before it becomes a status `Condition`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::Timestamp;
use crate::status::condition;

/// True or False, with the reason and message the condition will carry.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Verdict {
    pub ok: bool,
    pub reason: &'static str,
    pub message: String,
}

// === impl Verdict ===

impl Verdict {
    pub(super) fn yes(reason: &'static str) -> Verdict {
        Verdict {
            ok: true,
            reason,
            message: String::new(),
        }
    }

    pub(super) fn no(reason: &'static str, message: impl Into<String>) -> Verdict {
        Verdict {
            ok: false,
            reason,
            message: message.into(),
        }
    }
}

/// The condition `type_` as `v` decides it.
pub(super) fn cond(type_: &str, v: &Verdict, generation: Option<i64>, now: Timestamp) -> Condition {
    condition(type_, v.ok, v.reason, v.message.clone(), generation, now)
}
