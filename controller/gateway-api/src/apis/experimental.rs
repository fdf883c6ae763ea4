//! `gateway.networking.k8s.io` kinds Sluice reads, at the version a v1.6.1 cluster stores them.

pub mod backendtlspolicies;
mod enum_defaults;
pub mod gatewayclasses;
pub mod gateways;
pub mod grpcroutes;
pub mod httproutes;
pub mod listenersets;
pub mod referencegrants;
pub mod tlsroutes;
