//! A `grpc` request entry and its `expect` (FORMAT.md §4.8).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::expect::BackendRef;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcRequest {
    /// `Echo`, `EchoTwo`, `EchoThree` (of GrpcEcho), or any method name of the service.
    pub method: String,
    /// `:authority`; absent: the dialled `address:port`.
    pub authority: Option<String>,
    /// Sent with lower-cased keys.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Randomly add `x-jitter: <0..9999>` or nothing per sample.
    #[serde(default)]
    pub jitter: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcExpect {
    /// The gRPC status name, e.g. `OK`, `Unimplemented`.
    pub code: Option<String>,
    /// Any status but this one; this one fails the entry at once.
    pub not_code: Option<String>,
    /// With `code: OK`: the answering pod's namespace and name prefix.
    pub backend: Option<BackendRef>,
}

/// gRPC status codes by the names grpc-go's `codes.Code.String()` gives them.
const CODE_NAMES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// The number of a status name (exact spelling, as in the case files).
pub fn code_number(name: &str) -> Option<u32> {
    CODE_NAMES
        .iter()
        .position(|n| *n == name)
        .and_then(|i| u32::try_from(i).ok())
}

/// The name of a status number, `Code(N)` beyond the known ones as grpc-go prints it.
pub fn code_name(code: u32) -> String {
    usize::try_from(code)
        .ok()
        .and_then(|i| CODE_NAMES.get(i))
        .map(|n| (*n).to_owned())
        .unwrap_or_else(|| format!("Code({code})"))
}
