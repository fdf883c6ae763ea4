//! `sluice-conformance run`: runs conformance cases against an in-process Sluice and writes a report.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use sluice_conformance::report::{console_table, ConformanceReport};
use sluice_conformance::runner::{Outcome, Settings};
use sluice_conformance::suite::{run_suite, SuiteOptions};

#[derive(Parser)]
#[command(
    name = "sluice-conformance",
    about = "Gateway API conformance cases (as data) against Sluice"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every `*.yaml` case of the given directories.
    Run {
        /// A directory of case files (repeatable).
        #[arg(long = "cases", required = true)]
        cases: Vec<PathBuf>,
        /// Run only the case with this name.
        #[arg(long)]
        only: Option<String>,
        /// Write the YAML report here.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Base manifests (default: <first --cases dir>/../base.yaml).
        #[arg(long)]
        base: Option<PathBuf>,
        /// Cases run at the same time.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Cap every status check's timeout at this many seconds (FORMAT.md: 60 and 180).
        #[arg(long)]
        status_timeout: Option<u64>,
        /// Also run cases needing this feature, as if it were claimed (to try a feature before claiming it;
        /// repeatable). The report lists it among supportedFeatures.
        #[arg(long = "also-claim")]
        also_claim: Vec<String>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("error,pingora_core=off,pingora_proxy=off")
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let Command::Run {
        cases,
        only,
        report,
        base,
        concurrency,
        status_timeout,
        also_claim,
    } = Cli::parse().command;
    let mut settings = Settings::claimed();
    settings.supported.extend(also_claim);
    settings.status_timeout_cap = status_timeout.map(Duration::from_secs);
    let options = SuiteOptions {
        case_dirs: cases,
        only,
        base,
        concurrency,
        settings: settings.clone(),
    };
    let results = match run_suite(&options).await {
        Ok(results) => results,
        Err(error) => {
            eprintln!(
                "sluice-conformance: {}",
                sluice_conformance::error_chain(&error)
            );
            return ExitCode::from(2);
        }
    };
    print!("{}", console_table(&results));
    if let Some(path) = report {
        let yaml = match ConformanceReport::new(&results, &settings.supported).to_yaml() {
            Ok(yaml) => yaml,
            Err(error) => {
                eprintln!("sluice-conformance: cannot encode the report: {error}");
                return ExitCode::from(2);
            }
        };
        if let Err(error) = std::fs::write(&path, yaml) {
            eprintln!(
                "sluice-conformance: cannot write {}: {error}",
                path.display()
            );
            return ExitCode::from(2);
        }
        println!("report written to {}", path.display());
    }
    if results
        .iter()
        .any(|r| matches!(r.outcome, Outcome::Failed { .. }))
    {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
