//! Command-line flags for streams on `TLS` listeners (TLSRoute passthrough and terminate; see
//! docs/tls.md).

use std::time::Duration;

use clap::Args;

use super::edge_args::parse_duration;
use crate::tls_route::TlsRouteSettings;

/// Durations are written as the Gateway API writes them (`5s`, `1h`). Unset flags keep the
/// defaults of [`TlsRouteSettings`].
#[derive(Debug, Clone, Default, Args)]
pub struct TlsRouteArgs {
    /// Time to connect to a TLSRoute backend (and finish the TLS handshake when a
    /// BackendTLSPolicy applies); then the client connection is closed [default: 5s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub tls_route_connect_timeout: Option<Duration>,
    /// A TLSRoute stream on which no byte moved either way for this long is closed
    /// [default: 1h, as Envoy's tcp_proxy].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub tls_route_idle_timeout: Option<Duration>,
}

impl TlsRouteArgs {
    pub fn into_settings(self) -> TlsRouteSettings {
        let defaults = TlsRouteSettings::default();
        TlsRouteSettings {
            connect_timeout: self
                .tls_route_connect_timeout
                .unwrap_or(defaults.connect_timeout),
            idle_timeout: self.tls_route_idle_timeout.unwrap_or(defaults.idle_timeout),
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
        tls_routes: TlsRouteArgs,
    }

    #[test]
    fn flags_set_the_timeouts_and_unset_ones_keep_the_defaults() {
        let cli = Cli::try_parse_from([
            "t",
            "--tls-route-connect-timeout=2s",
            "--tls-route-idle-timeout=10m",
        ])
        .expect("parses");
        let settings = cli.tls_routes.into_settings();
        assert_eq!(settings.connect_timeout, Duration::from_secs(2));
        assert_eq!(settings.idle_timeout, Duration::from_secs(600));
        let defaults = Cli::try_parse_from(["t"]).expect("parses");
        let settings = defaults.tls_routes.into_settings();
        assert_eq!(settings.connect_timeout, Duration::from_secs(5));
        assert_eq!(settings.idle_timeout, Duration::from_secs(3600));
        assert!(Cli::try_parse_from(["t", "--tls-route-idle-timeout=0s"]).is_err());
    }
}
