//! Sluice's control plane: sources -> pure `translate` -> one atomic store. Never depends on Pingora.
//!
//! ```text
//! sources::file (YAML files, watched) ─┐
//! sources::kube (kube-rs watcher)     ─┴─> resources::Resources ─> translate() ─> Snapshot + StatusReport
//!                                                                                   │
//!                                                         publish::Store (one ArcSwap) ◀┘
//! ```

#![warn(missing_docs)]

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
