//! The load benchmark: Sluice, nginx and Envoy started side by side on 127.0.0.1, measured under the
//! same workloads, reported as ratios to nginx.

// The load generators and the process supervision run on plain OS threads of their own, never on
// an async runtime: pacing them with a blocking sleep is what they are for.
#![allow(
    clippy::disallowed_methods,
    reason = "blocking threads, not async tasks"
)]

pub mod backend;
pub mod grpc;
pub mod machine;
pub mod paced;
pub mod procfs;
pub mod profile;
pub mod propagation;
pub mod protocols;
pub mod proxies;
pub mod report;
pub mod run;
pub mod shadow;
pub mod tls;
pub mod wrk;

use std::time::Duration;

use crate::fixtures::FixtureError;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{proxy} did not answer 200 on {addr} within {timeout:?} (its log: {log})")]
    NotReady {
        proxy: String,
        addr: std::net::SocketAddr,
        timeout: Duration,
        log: String,
    },
    #[error("{proxy} exited ({status}) before it was ready (its log: {log})")]
    Exited {
        proxy: String,
        status: std::process::ExitStatus,
        log: String,
    },
    #[error("{proxy}: config rejected: {error}")]
    Rejected { proxy: String, error: String },
    #[error("{tool} failed ({status}): {stderr}")]
    Tool {
        tool: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("wrk printed no `{field}` line: {output}")]
    WrkOutput { field: &'static str, output: String },
    #[error(transparent)]
    Fixture(#[from] FixtureError),
}

/// Runs `check` on a runtime of its own, for at most 2 s: one readiness attempt of a client that
/// is async (gRPC, TLS) from the blocking thread that waits for a proxy.
pub(crate) fn check_once(check: impl std::future::Future<Output = bool>) -> bool {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return false;
    };
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(2), check)
            .await
            .unwrap_or(false)
    })
}

impl BenchError {
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
        let what = what.into();
        move |source| BenchError::Io { what, source }
    }
}
