//! RequestMirror settings of a data plane, defined once: the `sluice --mirror-*` flags, the
//! GatewayClass parameters' `mirror*` keys and the gateway's mirror engine all carry this type.
//!
//! Pingora-free, so the controller can check and render what a provisioned data plane will be
//! started with ([`MirrorSettings::to_proxy_args`]) and the gateway parses the same flags back.

use std::time::Duration;

use crate::snapshot::HeaderModifier;

/// What every RequestMirror copy of one data plane looks like and how much it may hold. The
/// defaults keep the copy identical to the primary request (original `Host`, no extra headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorSettings {
    /// Appended to the mirror request's host name (`example.com:80` → `example.com-shadow:80`),
    /// so a mirror can tell copies apart. `None` keeps the original `Host`.
    pub host_suffix: Option<String>,
    /// Header changes applied to mirror requests only, after every route filter.
    pub headers: HeaderModifier,
    /// Body bytes one copy may hold queued while its mirror is slower than the primary; beyond
    /// this the copy is aborted (`dropped_overflow`). It absorbs the mirror's connect time and
    /// scheduling jitter, so a mirror as fast as the primary never hits it.
    pub request_buffer_bytes: usize,
    /// Body bytes all copies together may hold queued.
    pub max_buffered_bytes: usize,
    /// Copies in flight at once; beyond this new copies are skipped (`skipped_capacity`).
    pub max_inflight: usize,
    /// From the moment the whole request body was handed to the copy until the mirror's answer
    /// has been read (`timeout` after it). While the body streams, the copy lives exactly as
    /// long as the client's upload and is bounded by the byte budget instead.
    pub timeout: Duration,
    /// Log one `sluice::access` line per copy, tagged `mirror=true`.
    pub access_log: bool,
}

impl Default for MirrorSettings {
    fn default() -> MirrorSettings {
        MirrorSettings {
            host_suffix: None,
            headers: HeaderModifier::default(),
            request_buffer_bytes: 8 * 1024 * 1024,
            max_buffered_bytes: 256 * 1024 * 1024,
            max_inflight: 1024,
            timeout: Duration::from_secs(10),
            access_log: false,
        }
    }
}

impl MirrorSettings {
    /// The `sluice proxy` flags that start a data plane with these settings: one per setting
    /// that differs from the default, in a stable order (a change of order would roll the pods).
    pub fn to_proxy_args(&self) -> Vec<String> {
        let defaults = MirrorSettings::default();
        let mut args = Vec::new();
        if let Some(suffix) = &self.host_suffix {
            args.push(format!("--mirror-host-suffix={suffix}"));
        }
        let text = |v: &http::HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
        for (name, value) in &self.headers.set {
            args.push(format!("--mirror-set-header={name}={}", text(value)));
        }
        for (name, value) in &self.headers.add {
            args.push(format!("--mirror-add-header={name}={}", text(value)));
        }
        for name in &self.headers.remove {
            args.push(format!("--mirror-remove-header={name}"));
        }
        let numbers = [
            (
                "--mirror-buffer-bytes",
                self.request_buffer_bytes,
                defaults.request_buffer_bytes,
            ),
            (
                "--mirror-max-buffered-bytes",
                self.max_buffered_bytes,
                defaults.max_buffered_bytes,
            ),
            (
                "--mirror-max-inflight",
                self.max_inflight,
                defaults.max_inflight,
            ),
        ];
        for (flag, value, default) in numbers {
            if value != default {
                args.push(format!("{flag}={value}"));
            }
        }
        if self.timeout != defaults.timeout {
            args.push(format!("--mirror-timeout-ms={}", self.timeout.as_millis()));
        }
        if self.access_log {
            args.push("--mirror-access-log".into());
        }
        args
    }
}
