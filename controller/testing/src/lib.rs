//! Dev-only test support: an in-process fake Kubernetes API server, object builders, and bounded
//! waiting ([`until`], [`within`]) for every suite.

pub mod fake_api;
pub mod objects;
pub mod wait;

pub use fake_api::FakeApiServer;
pub use wait::{until, within};
