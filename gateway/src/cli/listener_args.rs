//! Command-line flags for how Gateway listeners are bound.

use std::time::Duration;

use clap::Args;

use crate::cli::edge_args::parse_duration;
use crate::listeners::BindBackoff;

#[derive(Debug, Clone, Default, Args)]
pub struct ListenerArgs {
    /// Longest wait between tries to bind a listener port that is in use; the wait starts at
    /// 250ms and doubles up to this [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub bind_retry_max: Option<Duration>,
    /// Refuse HTTP/2 with prior knowledge (h2c) on plaintext listeners, which then speak
    /// HTTP/1.1 only (HTTPS listeners still offer h2 by ALPN) [default: h2c accepted].
    #[arg(long)]
    pub no_h2c: bool,
}

impl ListenerArgs {
    pub fn bind_retry(&self) -> BindBackoff {
        let defaults = BindBackoff::default();
        BindBackoff {
            cap: self.bind_retry_max.unwrap_or(defaults.cap),
            ..defaults
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
        listeners: ListenerArgs,
    }

    #[test]
    fn h2c_is_accepted_unless_refused() {
        let unset = Cli::try_parse_from(["t"]).expect("parses");
        assert!(!unset.listeners.no_h2c);
        let refused = Cli::try_parse_from(["t", "--no-h2c"]).expect("parses");
        assert!(refused.listeners.no_h2c);
    }

    #[test]
    fn bind_retry_max_sets_the_cap_and_defaults_to_thirty_seconds() {
        let set = Cli::try_parse_from(["t", "--bind-retry-max=2s"]).expect("parses");
        assert_eq!(
            set.listeners.bind_retry(),
            BindBackoff {
                base: BindBackoff::DEFAULT_BASE,
                cap: Duration::from_secs(2)
            }
        );
        let unset = Cli::try_parse_from(["t"]).expect("parses");
        assert_eq!(unset.listeners.bind_retry().cap, Duration::from_secs(30));
        for bad in ["--bind-retry-max=0s", "--bind-retry-max=5"] {
            assert!(Cli::try_parse_from(["t", bad]).is_err(), "{bad}");
        }
    }
}
