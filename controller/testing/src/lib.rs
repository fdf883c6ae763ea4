//! Dev-only test support: an in-process fake Kubernetes API server, object builders, the
//! cluster-mode suites' shared set-up, a tree's files, loopback ports to configure before
//! binding ([`free_port`]), and bounded waiting ([`until`], [`within`]) for every suite.

pub mod cluster;
pub mod fake_api;
pub mod files;
pub mod objects;
pub mod ports;
pub mod tasks;
pub mod wait;

pub use fake_api::FakeApiServer;
pub use ports::free_port;
pub use tasks::AbortOnDrop;
pub use wait::{until, within};
