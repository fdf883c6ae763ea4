//! Command-line flags for what RequestMirror copies look like and how much they may hold.

use std::time::Duration;

use clap::Args;
use http::{HeaderName, HeaderValue};
use sluice_controller::mirror_settings::MirrorSettings;
use sluice_controller::snapshot::HeaderModifier;

use crate::mirror::MirrorOptions;

/// The flags of [`MirrorSettings`] (documented there), shared by every RequestMirror filter this
/// instance serves. The GatewayClass parameters' `mirror*` keys render into these flags.
#[derive(Debug, Clone, Args)]
pub struct MirrorArgs {
    /// Append this to the Host of mirror requests (e.g. `-shadow`: `example.com` becomes
    /// `example.com-shadow`), so the mirror can tell copies from live traffic.
    #[arg(long, value_name = "SUFFIX", allow_hyphen_values = true)]
    pub mirror_host_suffix: Option<String>,
    /// Set a header on mirror requests only (repeatable).
    #[arg(long, value_name = "NAME=VALUE", value_parser = parse_header)]
    pub mirror_set_header: Vec<(HeaderName, HeaderValue)>,
    /// Add a header value on mirror requests only (repeatable).
    #[arg(long, value_name = "NAME=VALUE", value_parser = parse_header)]
    pub mirror_add_header: Vec<(HeaderName, HeaderValue)>,
    /// Remove a header from mirror requests only (repeatable).
    #[arg(long, value_name = "NAME", value_parser = parse_header_name)]
    pub mirror_remove_header: Vec<HeaderName>,
    /// Body bytes one copy may queue behind a slower mirror before it is aborted.
    #[arg(long, value_name = "BYTES")]
    pub mirror_buffer_bytes: Option<usize>,
    /// Body bytes all copies together may queue.
    #[arg(long, value_name = "BYTES")]
    pub mirror_max_buffered_bytes: Option<usize>,
    /// Copies in flight at once; further copies are skipped and counted.
    #[arg(long, value_name = "N")]
    pub mirror_max_inflight: Option<usize>,
    /// How long a mirror may take to answer once it has the whole request, in milliseconds
    /// (copies are given up up to a twentieth later, at most 256 ms, so a cohort does not end at
    /// once; deadlines up to 60 s are kept at 10 ms resolution, rounded up).
    #[arg(long, value_name = "MS")]
    pub mirror_timeout_ms: Option<u64>,
    /// Log one `sluice::access` line per mirror copy, tagged `mirror=true`.
    #[arg(long)]
    pub mirror_access_log: bool,
    /// Idle connections to mirrors kept per process, all mirrors together, for HTTP/1.1 and
    /// for h2c each; past it the least recently used is closed [default: 1024].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub mirror_pool_size: Option<u32>,
}

impl MirrorArgs {
    /// The mirror engine's options: these settings and pool size, the rest at their defaults.
    pub fn into_options(self) -> MirrorOptions {
        let defaults = MirrorOptions::default();
        MirrorOptions {
            pool_size: self
                .mirror_pool_size
                .map_or(defaults.pool_size, |n| n as usize),
            settings: self.into_settings(),
            ..defaults
        }
    }

    pub fn into_settings(self) -> MirrorSettings {
        let defaults = MirrorSettings::default();
        MirrorSettings {
            host_suffix: self.mirror_host_suffix.filter(|s| !s.is_empty()),
            headers: HeaderModifier {
                set: self.mirror_set_header,
                add: self.mirror_add_header,
                remove: self.mirror_remove_header,
            },
            request_buffer_bytes: self
                .mirror_buffer_bytes
                .unwrap_or(defaults.request_buffer_bytes),
            max_buffered_bytes: self
                .mirror_max_buffered_bytes
                .unwrap_or(defaults.max_buffered_bytes),
            max_inflight: self.mirror_max_inflight.unwrap_or(defaults.max_inflight),
            timeout: self
                .mirror_timeout_ms
                .map_or(defaults.timeout, Duration::from_millis),
            access_log: self.mirror_access_log,
        }
    }
}

fn parse_header_name(s: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(s.trim().as_bytes())
        .map_err(|e| format!("invalid header name {s:?}: {e}"))
}

fn parse_header(s: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, got {s:?}"))?;
    let value = HeaderValue::from_str(value)
        .map_err(|e| format!("invalid value for header {name:?}: {e}"))?;
    Ok((parse_header_name(name)?, value))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Flags {
        #[command(flatten)]
        mirror: MirrorArgs,
    }

    #[test]
    fn flags_become_mirror_settings() {
        let flags = Flags::try_parse_from([
            "sluice",
            "--mirror-host-suffix",
            "-shadow",
            "--mirror-set-header",
            "x-mirror=1",
            "--mirror-add-header",
            "x-tag=a=b",
            "--mirror-remove-header",
            "Authorization",
            "--mirror-max-inflight",
            "7",
            "--mirror-access-log",
        ])
        .expect("valid flags parse");
        let options = flags.mirror.into_settings();
        assert_eq!(options.host_suffix.as_deref(), Some("-shadow"));
        assert_eq!(options.headers.set[0].0.as_str(), "x-mirror");
        assert_eq!(options.headers.add[0].1.as_bytes(), b"a=b");
        assert_eq!(options.headers.remove[0].as_str(), "authorization");
        assert_eq!(options.max_inflight, 7);
        assert!(options.access_log);
        assert_eq!(
            options.request_buffer_bytes,
            MirrorSettings::default().request_buffer_bytes
        );
    }

    #[test]
    fn the_pool_size_flag_sizes_the_mirror_pools() {
        let sized = Flags::try_parse_from(["sluice", "--mirror-pool-size", "9"]).expect("parse");
        assert_eq!(sized.mirror.into_options().pool_size, 9);
        let default = Flags::try_parse_from(["sluice"]).expect("parse");
        assert_eq!(
            default.mirror.into_options().pool_size,
            MirrorOptions::default().pool_size
        );
        assert!(Flags::try_parse_from(["sluice", "--mirror-pool-size", "0"]).is_err());
    }

    #[test]
    fn malformed_header_flags_are_usage_errors() {
        for bad in [
            ["sluice", "--mirror-set-header", "no-equals-sign"],
            ["sluice", "--mirror-set-header", "bad name=1"],
            ["sluice", "--mirror-remove-header", "bad name"],
            ["sluice", "--mirror-add-header", "x=\u{7f}"],
        ] {
            assert!(
                Flags::try_parse_from(bad).is_err(),
                "{bad:?} must be rejected"
            );
        }
    }
}
