//! Test support (feature `testing`): an in-process fake Kubernetes API server and object builders.

pub mod fake_api;
pub mod objects;

pub use fake_api::FakeApiServer;
