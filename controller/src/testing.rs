//! Test support (feature `testing`): an in-process fake Kubernetes API server.

pub mod fake_api;

pub use fake_api::FakeApiServer;
