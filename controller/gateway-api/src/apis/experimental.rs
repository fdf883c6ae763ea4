//! `gateway.networking.k8s.io` kinds Sluice reads, at the version a v1.6.1 cluster stores them.

mod enum_defaults;
pub mod gatewayclasses;
pub mod gateways;
pub mod httproutes;
pub mod referencegrants;
