//! The status every object would get in a cluster, computed purely by `translate`.

/// Placeholder shape until translate lands; keyed `kind/namespace/name`.
#[derive(Debug, Default)]
pub struct StatusReport {}
