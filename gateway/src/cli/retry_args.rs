//! Command-line flags for the bounds of route rule retries (see docs/request-lifecycle.md); the
//! provisioner sets them from the class parameters' `maxRetries`, `defaultRetries` and
//! `defaultRetryBackoff` (controller/src/provision/edge_params.rs), checked as they are here.

use std::time::Duration;

use clap::Args;

use super::edge_args::parse_duration;
use crate::upstream::retry::RetrySettings;

/// The bounds and defaults of rule `retry` policies. Unset flags keep [`RetrySettings`]'s.
#[derive(Debug, Clone, Default, Args)]
pub struct RetryArgs {
    /// Most retries of one request, whatever a route's `retry.attempts` asks; 0 turns rule
    /// retries off [default: 10].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32))]
    pub max_retries: Option<u32>,
    /// Retries of a rule whose `retry` sets no `attempts` [default: 1].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32))]
    pub default_retries: Option<u32>,
    /// First wait before a retry when a rule's `retry` sets no `backoff`; waits double up to
    /// ten times this [default: 25ms].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub default_retry_backoff: Option<Duration>,
}

impl RetryArgs {
    pub fn into_settings(self) -> RetrySettings {
        let defaults = RetrySettings::default();
        RetrySettings {
            max_retries: self.max_retries.unwrap_or(defaults.max_retries),
            default_retries: self.default_retries.unwrap_or(defaults.default_retries),
            default_backoff: self
                .default_retry_backoff
                .unwrap_or(defaults.default_backoff),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        retry: RetryArgs,
    }

    #[test]
    fn every_flag_sets_its_bound_and_unset_flags_keep_the_defaults() {
        let cli = Cli::try_parse_from([
            "t",
            "--max-retries=3",
            "--default-retries=2",
            "--default-retry-backoff=100ms",
        ])
        .expect("parses");
        assert_eq!(
            cli.retry.into_settings(),
            RetrySettings {
                max_retries: 3,
                default_retries: 2,
                default_backoff: Duration::from_millis(100),
            }
        );
        let unset = Cli::try_parse_from(["t"]).expect("parses");
        assert_eq!(unset.retry.into_settings(), RetrySettings::default());
    }

    #[test]
    fn bad_values_are_refused() {
        for arg in [
            "--default-retries=x",
            "--max-retries=-1",
            "--default-retry-backoff=0s",
        ] {
            assert!(Cli::try_parse_from(["t", arg]).is_err(), "{arg}");
        }
    }
}
