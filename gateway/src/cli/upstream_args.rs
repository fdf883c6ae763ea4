//! Command-line flags for how the proxy reaches TLS backends: where the relays that let Pingora
//! pool TLS connections keep their socket files (see docs/tls.md).

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use crate::upstream::relay::{RelayRegistry, RelaySettings};

#[derive(Debug, Clone, Default, Args)]
pub struct UpstreamArgs {
    /// A private directory (created mode 0700, or existing with no access for group or others)
    /// for the Unix sockets of the TLS backend relays [default: a directory per process under
    /// the system temporary directory].
    #[arg(long, value_name = "DIR")]
    pub upstream_tls_relay_dir: Option<PathBuf>,
}

impl UpstreamArgs {
    pub fn into_relays(self) -> Arc<RelayRegistry> {
        let settings = match self.upstream_tls_relay_dir {
            Some(dir) => RelaySettings::in_dir(dir),
            None => RelaySettings::in_temp_dir(),
        };
        Arc::new(RelayRegistry::new(settings))
    }
}
