//! Command-line flags for how the proxy reaches backends: how many idle connections it keeps,
//! and where the relays that let Pingora pool TLS connections keep their socket files (see
//! docs/tls.md).

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use crate::upstream::relay::{RelayRegistry, RelaySettings};
use crate::upstream::UpstreamSettings;

#[derive(Debug, Clone, Default, Args)]
pub struct UpstreamArgs {
    /// A private directory (created mode 0700, or existing with no access for group or others)
    /// for the Unix sockets of the TLS backend relays [default: a directory per process under
    /// the system temporary directory].
    #[arg(long, value_name = "DIR")]
    pub upstream_tls_relay_dir: Option<PathBuf>,
    /// Idle keep-alive connections to backends kept per process, all backends together; past
    /// it the least recently used is closed [default: 1024].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub upstream_pool_size: Option<u32>,
}

impl UpstreamArgs {
    /// The upstream settings these flags ask for; the rest from `base`.
    pub fn into_settings(self, base: UpstreamSettings) -> UpstreamSettings {
        UpstreamSettings {
            pool_size: self
                .upstream_pool_size
                .map_or(base.pool_size, |n| n as usize),
            tls_relays: self.into_relays(),
            ..base
        }
    }

    fn into_relays(self) -> Arc<RelayRegistry> {
        let settings = match self.upstream_tls_relay_dir {
            Some(dir) => RelaySettings::in_dir(dir),
            None => RelaySettings::in_temp_dir(),
        };
        Arc::new(RelayRegistry::new(settings))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Flags {
        #[command(flatten)]
        upstream: UpstreamArgs,
    }

    fn pool_size(args: &[&str]) -> Result<usize, clap::Error> {
        let flags = Flags::try_parse_from(std::iter::once("sluice").chain(args.iter().copied()))?;
        Ok(flags
            .upstream
            .into_settings(UpstreamSettings::default())
            .pool_size)
    }

    #[test]
    fn the_pool_size_flag_sizes_the_backend_pool() {
        assert_eq!(pool_size(&["--upstream-pool-size", "7"]).ok(), Some(7));
        assert_eq!(
            pool_size(&[]).ok(),
            Some(crate::upstream::DEFAULT_POOL_SIZE)
        );
    }

    #[test]
    fn a_pool_of_no_connections_is_a_usage_error() {
        assert!(pool_size(&["--upstream-pool-size", "0"]).is_err());
        assert!(pool_size(&["--upstream-pool-size", "-1"]).is_err());
    }
}
