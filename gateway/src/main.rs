//! The `sluice` binary: parses the command line, builds the runtime and runs the command.

use std::process::ExitCode;

use clap::Parser;
use sluice_gateway::cli::{self, Cli};
use sluice_gateway::log_format;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// A thread-caching allocator: glibc malloc/free were a fifth of the proxy's per-request
/// instructions (docs/benchmarks.md), on many small short-lived allocations.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `--log-level` wins over `RUST_LOG`; a filter that does not parse falls back to `info`.
fn log_filter(level: Option<&str>) -> EnvFilter {
    let chosen = match level {
        Some(level) => EnvFilter::try_new(level).ok(),
        None => EnvFilter::try_from_default_env().ok(),
    };
    chosen.unwrap_or_else(|| EnvFilter::new("info"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Colour codes only where a person reads them, not in files or log collectors.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let filter = log_filter(cli.log_level.as_deref());
    let subscriber = log_format::subscriber(cli.log_format, filter, std::io::stdout, ansi);
    // try_init also turns Pingora's `log` records into events of the same format.
    if subscriber.try_init().is_err() {
        eprintln!("sluice: a log subscriber is already installed");
    }
    // Built here rather than with #[tokio::main] so --threads can size it. One thread means one
    // thread: the current-thread scheduler, as Pingora runs each of its own workers, with no
    // work-stealing bookkeeping and no hand-off between the main thread and a lone worker.
    let mut builder = match cli.threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(threads) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(usize::from(threads));
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    builder.enable_all();
    let runtime = match builder.build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("sluice: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut message = format!("sluice: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                message.push_str(&format!(": {s}"));
                source = s.source();
            }
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}
