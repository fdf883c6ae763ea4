//! Runs Gateway API conformance cases written as data (../shared/conformance, FORMAT.md) against an
//! in-process Sluice, with in-process echo backends, over real loopback sockets.
//!
//! ```text
//! case.yaml ─parse─> Case ─run_case─> Env (objects ─YAML file─> Sluice standalone, echo pods, EndpointSlices)
//!                                  └─> steps: apply/patch/delete ─> /status checks ─> HTTP requests ─> CaseResult
//! ```

pub mod backends;
pub mod case;
pub mod certs;
mod drive;
pub mod env;
pub mod fill_slices;
pub mod grpc;
pub mod http;
pub mod objects;
pub mod report;
pub mod runner;
pub mod status_check;
pub mod suite;
pub mod tcp;
#[cfg(test)]
mod test_pods;
pub mod websocket;

/// An error and its sources on one line.
pub use sluice_controller::error_chain;

/// A fresh random (version 4) UUID, as upstream uses for request ids and retry keys.
pub fn uuid() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}
