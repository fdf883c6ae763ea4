//! A whole run: find the case files, run them with bounded concurrency, collect the results in order.

use std::path::{Path, PathBuf};

use futures::stream::{self, StreamExt};

use crate::case::{case_files, Base, Case, CaseError};
use crate::runner::{run_case, CaseResult, Outcome, Settings};

#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error("reading cases")]
    Cases(#[from] CaseError),
    #[error("cannot read base manifests {}", path.display())]
    Base {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no case matched {0:?}")]
    NoMatch(String),
}

#[derive(Debug, Clone)]
pub struct SuiteOptions {
    pub case_dirs: Vec<PathBuf>,
    /// Run only cases with this name.
    pub only: Option<String>,
    /// Base manifests for gateway cases; default `<first case dir>/../base.yaml`.
    pub base: Option<PathBuf>,
    pub concurrency: usize,
    pub settings: Settings,
}

/// Runs every case; a case file that does not parse is a failed case, not an aborted run.
pub async fn run_suite(options: &SuiteOptions) -> Result<Vec<CaseResult>, SuiteError> {
    let mut files = Vec::new();
    for dir in &options.case_dirs {
        files.extend(case_files(dir)?);
    }
    let base_path = match &options.base {
        Some(path) => path.clone(),
        None => options
            .case_dirs
            .first()
            .map(|d| d.join("..").join("base.yaml"))
            .unwrap_or_else(|| PathBuf::from("base.yaml")),
    };
    let base = std::fs::read_to_string(&base_path).map_err(|source| SuiteError::Base {
        path: base_path.clone(),
        source,
    })?;
    let mut cases = Vec::new();
    let mut results = Vec::new();
    for file in files {
        match Case::load(&file) {
            Ok(case) => {
                if options.only.as_ref().is_none_or(|only| *only == case.name) {
                    cases.push(case);
                }
            }
            Err(error) => {
                let name = file_stem(&file);
                if options.only.as_ref().is_none_or(|only| *only == name) {
                    results.push(CaseResult {
                        name,
                        features: Vec::new(),
                        provisional: false,
                        outcome: Outcome::Failed {
                            step: "parse".to_owned(),
                            reason: crate::error_chain(&error),
                        },
                        elapsed: std::time::Duration::ZERO,
                    });
                }
            }
        }
    }
    if let Some(only) = &options.only {
        if cases.is_empty() && results.is_empty() {
            return Err(SuiteError::NoMatch(only.clone()));
        }
    }
    let run: Vec<CaseResult> = stream::iter(cases.iter())
        .map(|case| {
            let base = match case.base {
                Base::Gateway => base.as_str(),
                // Mesh cases are skipped before their base is needed.
                Base::Mesh => "",
            };
            run_case(case, base, &options.settings)
        })
        .buffered(options.concurrency.max(1))
        .collect()
        .await;
    results.extend(run);
    results.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(results)
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}
