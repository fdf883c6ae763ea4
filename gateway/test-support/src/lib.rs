//! Dev-only support for the gateway's integration tests: harnesses that drive the real connection
//! path (`transport::http_connection` + `transport::serve`, or the whole standalone start), and
//! the backends and clients the suites assert with.
//!
//! - [`echo`]: one echo pod (the production echo server) on a free port.
//! - [`grpc`]: a gRPC-framed h2c backend recording each message as it arrives, and a streaming
//!   client.
//! - [`proxy`]: the in-process gateway (a hand-built snapshot served on 127.0.0.1:0), the echo
//!   backend and snapshot builders.
//! - [`mirror`]: that gateway with a mirror engine and one route, and its metrics.
//! - [`servers`]: backends for mirroring and faults (recording, down, blackhole, slow, reset…).
//! - [`standalone`]: Sluice started from a config directory, the YAML pieces, reloads.
//! - [`tls`]: a self-signed certificate and the HTTPS accept path.
//! - [`raw`]: a recording raw HTTP/1.1 backend and a raw-socket client, for the edge suites.
//! - [`tls_route`]: Sluice's listeners with TLS listeners, TLS and TCP backends, a TLS client.
//! - [`logs`]: a log writer that keeps what it is given.
//!
//! Waiting is bounded everywhere: [`until`] and [`within`] (from `sluice-testing`) panic naming
//! what they waited for.

// Test support: a failed set-up step should panic the test where it happened.
#![allow(clippy::unwrap_used)]

pub mod echo;
pub mod grpc;
pub mod logs;
pub mod mirror;
pub mod proxy;
pub mod raw;
pub mod servers;
pub mod standalone;
pub mod tls;
pub mod tls_route;

pub use sluice_testing::{free_port, until, within};
