//! A `MirrorPolicy` (sluice.dev/v1alpha1) as the data plane applies it to the RequestMirror
//! copies of the route rule it targets: how each copy is shaped and whether the mirror's answer
//! is compared with production's (shadow diff).
//!
//! Every `None` here means "the data plane's default": the `--mirror-*` flags and the
//! GatewayClass parameters stay the defaults under every policy; a policy only overrides what
//! it sets.

use std::time::Duration;

use http::HeaderName;
use serde::Serialize;

use super::{Fraction, HeaderModifier};

/// One accepted MirrorPolicy, resolved for one route rule.
#[derive(Debug, Serialize)]
pub struct MirrorPolicy {
    /// `namespace/name` of the MirrorPolicy object, for `/shadow`, logs and metrics.
    pub name: String,
    /// How every copy of the target is shaped.
    pub request: CopyShape,
    /// Shadow diff; `None` when the policy has no `compare` section.
    pub compare: Option<Comparison>,
}

/// How a copy differs from the primary request, beyond what the route's filters did.
#[derive(Debug, Default, Serialize)]
pub struct CopyShape {
    /// Replaces the data plane's `--mirror-host-suffix` for these copies.
    pub host: Option<CopyHost>,
    /// Replaces the data plane's `--mirror-*-header` changes for these copies; applied after
    /// every route filter, like them.
    pub headers: Option<HeaderModifier>,
    /// Drop `Authorization`, `Proxy-Authorization` and `Cookie` from the copy.
    pub strip_credentials: bool,
    /// Replaces `--mirror-timeout`: from the end of the copy's body to the mirror's answer.
    #[serde(with = "super::ser::opt_duration")]
    pub timeout: Option<Duration>,
    /// Replaces `--mirror-buffer-bytes`: body bytes one copy may hold queued before it is
    /// aborted (`dropped_overflow`).
    pub max_body_bytes: Option<usize>,
}

/// The `Host` a copy carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum CopyHost {
    /// Appended to the host name, before any port (`a.example:80` → `a.example-shadow:80`).
    Suffix(String),
    /// Replaces the host name; the port, if any, is kept.
    Rewrite(String),
}

/// What of the mirror's answer is compared with the primary's.
#[derive(Debug, Serialize)]
pub struct Comparison {
    /// Share of mirrored requests compared; the rest count `not_compared`.
    pub fraction: Fraction,
    /// Compare the status codes.
    pub status: bool,
    /// Response headers compared by value (lowercase names).
    #[serde(serialize_with = "super::ser::header_names")]
    pub headers: Vec<HeaderName>,
    /// Compare a digest of the whole body, computed while streaming.
    pub body: bool,
    /// JSON Pointers (RFC 6901) ignored when both bodies are JSON; non-empty means the JSON
    /// bodies are kept (up to a cap) and compared as values.
    pub ignore_json_fields: Vec<String>,
    /// Mismatches kept for `/shadow` per route and mirror.
    pub samples: usize,
}
