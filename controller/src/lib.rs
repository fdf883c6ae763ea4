//! Sluice's control plane: sources -> pure `translate` -> one atomic store. Never depends on Pingora.
//!
//! ```text
//! sources::file (YAML files, watched) ─┐
//! sources::kube (kube-rs watcher)     ─┴─> resources::Resources ─> translate() ─> Snapshot + StatusReport
//!                                                                                   │
//!                                                         publish::Store (one ArcSwap) ◀┘
//! ```

#![warn(missing_docs)]

mod backoff;
pub mod features;
pub mod leader;
pub mod mirror_settings;
pub mod precedence;
pub mod provision;
pub mod publish;
pub mod replica;
pub mod resources;
pub mod snapshot;
pub mod sources;
pub mod status;
pub mod status_writer;
pub mod translate;
pub mod validation;

/// The `spec.controllerName` a GatewayClass must carry for Sluice to serve its Gateways.
pub const CONTROLLER_NAME: &str = "sluice.dev/gateway-controller";

/// The field manager of every object and status Sluice server-side-applies.
pub const FIELD_MANAGER: &str = "sluice";

/// `error: cause: cause`, the whole chain on one line: what a condition message, a log line or a
/// report shows (a Lease failure's reason, NotFound or Forbidden, is in its source). A cause the
/// text already shows is not repeated: kube's errors often print their source inline.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}
