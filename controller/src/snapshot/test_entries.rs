//! Route entries for the snapshot's own unit tests.

use std::sync::Arc;

use super::{PathMatch, RequestMatch, RouteEntry, RouteId, RouteKind, RuleAction};

/// An entry of rule 0 of HTTPRoute `default/{name}` that matches `path` only.
pub(crate) fn entry(name: &str, path: PathMatch, action: Arc<RuleAction>) -> RouteEntry {
    RouteEntry {
        route: Arc::new(RouteId {
            kind: RouteKind::Http,
            namespace: "default".into(),
            name: name.into(),
            rule_index: 0,
            rule_name: None,
            label: format!("default/{name}"),
        }),
        matcher: RequestMatch {
            path,
            method: None,
            headers: Vec::new(),
            query: Vec::new(),
        },
        action,
    }
}
