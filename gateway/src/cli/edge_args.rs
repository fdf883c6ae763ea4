//! Command-line flags for what one client may cost (see docs/hardening.md).

use std::time::Duration;

use clap::Args;

use crate::edge::EdgeLimits;
use crate::listeners::Drain;

/// The edge limits. Durations are written as the Gateway API writes them (`10s`, `500ms`,
/// `1m30s`). Unset flags keep the defaults of [`EdgeLimits`].
#[derive(Debug, Clone, Default, Args)]
pub struct EdgeArgs {
    /// Longest request line (method, target, version) in bytes; longer is answered 414
    /// [default: 8192].
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(64..))]
    pub max_request_line_bytes: Option<u32>,
    /// Largest request header section in bytes (HTTP/1 and HTTP/2); larger is answered 431
    /// [default: 65536].
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(256..))]
    pub max_header_bytes: Option<u32>,
    /// Most header fields in one request; more is answered 431 [default: 100].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_header_fields: Option<u32>,
    /// Time a client has to send a whole request head, and the first one after connecting;
    /// then 408 and close [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub client_header_timeout: Option<Duration>,
    /// Longest wait for the next piece of a request body; then the request fails
    /// [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub client_body_timeout: Option<Duration>,
    /// How long an idle keep-alive connection is kept (HTTP/2: an idle connection)
    /// [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub keepalive_timeout: Option<Duration>,
    /// Open client connections per process; over it new connections are closed at once
    /// [default: a third of the open-file limit, which is raised to its hard limit at start].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: Option<u32>,
    /// After SIGTERM, how long to keep accepting while `/readyz` says 503, so the load
    /// balancer (Kubernetes endpoints) stops sending new connections first [default: 0s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_or_zero)]
    pub drain_delay: Option<Duration>,
    /// After the drain delay, how long requests in flight may take to finish before their
    /// connections are closed [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub shutdown_grace: Option<Duration>,
}

impl EdgeArgs {
    pub fn drain(&self) -> Drain {
        let defaults = Drain::default();
        Drain {
            delay: self.drain_delay.unwrap_or(defaults.delay),
            grace: self.shutdown_grace.unwrap_or(defaults.grace),
        }
    }

    /// The limits these flags ask for; `fd_limit` sizes the default connection cap.
    pub fn into_limits(self, fd_limit: Option<u64>) -> EdgeLimits {
        let defaults = EdgeLimits::default();
        let size = |v: Option<u32>, d: usize| v.map_or(d, |v| v as usize);
        EdgeLimits {
            max_request_line: size(self.max_request_line_bytes, defaults.max_request_line),
            max_header_bytes: size(self.max_header_bytes, defaults.max_header_bytes),
            max_header_fields: size(self.max_header_fields, defaults.max_header_fields),
            client_header_timeout: self
                .client_header_timeout
                .unwrap_or(defaults.client_header_timeout),
            client_body_timeout: self
                .client_body_timeout
                .unwrap_or(defaults.client_body_timeout),
            keepalive_timeout: self.keepalive_timeout.unwrap_or(defaults.keepalive_timeout),
            max_connections: self.max_connections.map_or_else(
                || {
                    fd_limit.map_or(
                        defaults.max_connections,
                        EdgeLimits::connections_for_fd_limit,
                    )
                },
                |n| n as usize,
            ),
        }
    }
}

/// A Gateway API duration, zero allowed.
pub fn parse_duration_or_zero(s: &str) -> Result<Duration, String> {
    sluice_controller::translate::duration::parse(s)
        .ok_or_else(|| "expected a duration such as 0s, 5s or 500ms".to_string())
}

/// A Gateway API duration that is not zero.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    match sluice_controller::translate::duration::parse(s) {
        Some(d) if !d.is_zero() => Ok(d),
        Some(_) => Err("must be longer than zero".into()),
        None => Err("expected a duration such as 10s, 500ms or 1m30s".into()),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        edge: EdgeArgs,
    }

    #[test]
    fn every_flag_sets_its_limit() {
        let cli = Cli::try_parse_from([
            "t",
            "--max-request-line-bytes=1024",
            "--max-header-bytes=4096",
            "--max-header-fields=20",
            "--client-header-timeout=2s",
            "--client-body-timeout=500ms",
            "--keepalive-timeout=1m",
            "--max-connections=7",
            "--drain-delay=0s",
            "--shutdown-grace=45s",
        ])
        .expect("parses");
        assert_eq!(
            cli.edge.drain(),
            Drain {
                delay: Duration::ZERO,
                grace: Duration::from_secs(45)
            }
        );
        let limits = cli.edge.into_limits(Some(1024));
        assert_eq!(
            limits,
            EdgeLimits {
                max_request_line: 1024,
                max_header_bytes: 4096,
                max_header_fields: 20,
                client_header_timeout: Duration::from_secs(2),
                client_body_timeout: Duration::from_millis(500),
                keepalive_timeout: Duration::from_secs(60),
                max_connections: 7,
            }
        );
    }

    #[test]
    fn unset_flags_keep_the_defaults_and_the_cap_follows_the_fd_limit() {
        let limits = Cli::try_parse_from(["t"])
            .expect("parses")
            .edge
            .into_limits(Some(4096));
        assert_eq!(
            limits.max_connections,
            EdgeLimits::connections_for_fd_limit(4096)
        );
        assert_eq!(
            limits.client_header_timeout,
            EdgeLimits::default().client_header_timeout
        );
    }

    #[test]
    fn bad_values_are_refused() {
        for arg in [
            "--client-header-timeout=10",
            "--client-header-timeout=0s",
            "--keepalive-timeout=-1s",
            "--max-connections=0",
            "--max-header-bytes=10",
        ] {
            assert!(Cli::try_parse_from(["t", arg]).is_err(), "{arg}");
        }
    }
}
