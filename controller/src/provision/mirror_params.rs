//! The `mirror*` keys of the class parameters: `sluice proxy --mirror-*` flags for every data plane.
//!
//! They mirror `gateway/src/cli/mirror_args.rs` one to one (see docs/kubernetes.md). Values are
//! checked here as that parser would check them, so a bad value is the class's
//! `InvalidParameters` condition rather than a data plane that crash-loops on its flags.

use std::collections::BTreeMap;

use http::{HeaderName, HeaderValue};

use super::params::ParamsError;

/// RequestMirror settings for the data planes of a class; `None`/empty keeps the proxy's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MirrorParams {
    pub host_suffix: Option<String>,
    pub set_headers: BTreeMap<String, String>,
    pub add_headers: BTreeMap<String, String>,
    pub remove_headers: Vec<String>,
    pub buffer_bytes: Option<usize>,
    pub max_buffered_bytes: Option<usize>,
    pub max_inflight: Option<usize>,
    pub timeout_ms: Option<u64>,
    pub access_log: bool,
}

/// The keys [`MirrorParams::set`] knows.
pub const KEYS: &[&str] = &[
    "mirrorHostSuffix",
    "mirrorSetHeaders",
    "mirrorAddHeaders",
    "mirrorRemoveHeaders",
    "mirrorBufferBytes",
    "mirrorMaxBufferedBytes",
    "mirrorMaxInflight",
    "mirrorTimeoutMs",
    "mirrorAccessLog",
];

impl MirrorParams {
    /// Takes `key` if it is one of [`KEYS`]; `Ok(false)` for any other key.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, ParamsError> {
        match key {
            "mirrorHostSuffix" => {
                // It ends up in the Host header of every copy.
                let valid = !value.is_empty()
                    && value.bytes().all(|b| b.is_ascii_graphic())
                    && HeaderValue::from_str(value).is_ok();
                if !valid {
                    return Err(invalid(
                        "mirrorHostSuffix",
                        "a non-empty host suffix without spaces",
                        value,
                    ));
                }
                self.host_suffix = Some(value.to_string());
            }
            "mirrorSetHeaders" => self.set_headers = headers(key, value)?,
            "mirrorAddHeaders" => self.add_headers = headers(key, value)?,
            "mirrorRemoveHeaders" => {
                let names: Vec<String> = decode(key, value)?;
                for name in &names {
                    header_name(key, name)?;
                }
                self.remove_headers = names;
            }
            "mirrorBufferBytes" => self.buffer_bytes = Some(number(key, value)?),
            "mirrorMaxBufferedBytes" => self.max_buffered_bytes = Some(number(key, value)?),
            "mirrorMaxInflight" => self.max_inflight = Some(number(key, value)?),
            "mirrorTimeoutMs" => self.timeout_ms = Some(number(key, value)?),
            "mirrorAccessLog" => {
                self.access_log = match value {
                    "true" => true,
                    "false" => false,
                    _ => return Err(invalid(key_name(key), "true or false", value)),
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The `sluice proxy` flags, in a stable order (a change of order would roll the pods).
    pub fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(suffix) = &self.host_suffix {
            args.push(format!("--mirror-host-suffix={suffix}"));
        }
        for (name, value) in &self.set_headers {
            args.push(format!("--mirror-set-header={name}={value}"));
        }
        for (name, value) in &self.add_headers {
            args.push(format!("--mirror-add-header={name}={value}"));
        }
        for name in &self.remove_headers {
            args.push(format!("--mirror-remove-header={name}"));
        }
        let numbers = [
            (
                "--mirror-buffer-bytes",
                self.buffer_bytes.map(|n| n.to_string()),
            ),
            (
                "--mirror-max-buffered-bytes",
                self.max_buffered_bytes.map(|n| n.to_string()),
            ),
            (
                "--mirror-max-inflight",
                self.max_inflight.map(|n| n.to_string()),
            ),
            (
                "--mirror-timeout-ms",
                self.timeout_ms.map(|n| n.to_string()),
            ),
        ];
        for (flag, value) in numbers {
            if let Some(value) = value {
                args.push(format!("{flag}={value}"));
            }
        }
        if self.access_log {
            args.push("--mirror-access-log".into());
        }
        args
    }
}

fn invalid(key: &'static str, expected: &'static str, value: &str) -> ParamsError {
    ParamsError::Invalid {
        key,
        expected,
        value: value.to_string(),
    }
}

fn key_name(key: &str) -> &'static str {
    KEYS.iter().copied().find(|k| *k == key).unwrap_or("mirror")
}

fn number<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ParamsError> {
    value
        .parse()
        .map_err(|_| invalid(key_name(key), "a non-negative integer", value))
}

fn decode<T: serde::de::DeserializeOwned>(key: &str, value: &str) -> Result<T, ParamsError> {
    serde_yaml_ng::from_str(value).map_err(|source| ParamsError::Decode {
        key: key_name(key),
        source,
    })
}

fn header_name(key: &str, name: &str) -> Result<(), ParamsError> {
    HeaderName::from_bytes(name.as_bytes())
        .map(|_| ())
        .map_err(|_| invalid(key_name(key), "valid header names", name))
}

/// A YAML map of header name to value.
fn headers(key: &str, value: &str) -> Result<BTreeMap<String, String>, ParamsError> {
    let map: BTreeMap<String, String> = decode(key, value)?;
    for (name, value) in &map {
        header_name(key, name)?;
        HeaderValue::from_str(value)
            .map_err(|_| invalid(key_name(key), "valid header values", value))?;
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Result<MirrorParams, ParamsError> {
        let mut p = MirrorParams::default();
        for (k, v) in pairs {
            assert!(p.set(k, v)?, "{k} is a mirror key");
        }
        Ok(p)
    }

    #[test]
    fn every_mirror_key_becomes_a_proxy_flag() {
        let p = params(&[
            ("mirrorHostSuffix", "-shadow"),
            ("mirrorSetHeaders", "x-mirror: \"1\""),
            ("mirrorAddHeaders", "{x-tag: a}"),
            ("mirrorRemoveHeaders", "[authorization]"),
            ("mirrorBufferBytes", "1024"),
            ("mirrorMaxBufferedBytes", "4096"),
            ("mirrorMaxInflight", "7"),
            ("mirrorTimeoutMs", "250"),
            ("mirrorAccessLog", "true"),
        ])
        .expect("valid");
        assert_eq!(
            p.args(),
            [
                "--mirror-host-suffix=-shadow",
                "--mirror-set-header=x-mirror=1",
                "--mirror-add-header=x-tag=a",
                "--mirror-remove-header=authorization",
                "--mirror-buffer-bytes=1024",
                "--mirror-max-buffered-bytes=4096",
                "--mirror-max-inflight=7",
                "--mirror-timeout-ms=250",
                "--mirror-access-log",
            ]
        );
        assert!(MirrorParams::default().args().is_empty());
    }

    #[test]
    fn bad_mirror_values_name_the_key() {
        for (key, value) in [
            ("mirrorMaxInflight", "lots"),
            ("mirrorTimeoutMs", "-1"),
            ("mirrorAccessLog", "yes"),
            ("mirrorHostSuffix", "a b"),
            ("mirrorSetHeaders", "{bad name: 1}"),
            ("mirrorRemoveHeaders", "not-a-list: x"),
        ] {
            let err = params(&[(key, value)]).expect_err(value);
            let message = crate::provision::params::error_chain(&err);
            assert!(message.starts_with(key), "{message}");
        }
    }
}
