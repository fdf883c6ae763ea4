//! The API groups, laid out as the crates.io `gateway-api` crate lays them out.

// Generated code: its lints are kopium's business, not ours.
#[allow(clippy::all, rust_2018_idioms, unused_imports)]
pub mod experimental;
