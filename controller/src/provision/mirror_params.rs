//! The `mirror*` keys of the class parameters: `sluice proxy --mirror-*` flags for every data plane.
//!
//! They parse into the same [`MirrorSettings`] the `sluice --mirror-*` flags parse into, and are
//! rendered back as those flags ([`MirrorSettings::to_proxy_args`]). Values are checked here as
//! the flag parser would check them, so a bad value is the class's
//! `InvalidParameters` condition rather than a data plane that crash-loops on its flags.

use std::collections::BTreeMap;
use std::time::Duration;

use http::{HeaderName, HeaderValue};

use super::params::ParamsError;
use crate::mirror_settings::MirrorSettings;

/// The keys [`MirrorSettings::set_param`] knows.
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

impl MirrorSettings {
    /// Takes the class parameter `key` if it is one of [`KEYS`]; `Ok(false)` for any other key.
    pub fn set_param(&mut self, key: &str, value: &str) -> Result<bool, ParamsError> {
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
            "mirrorSetHeaders" => self.headers.set = headers(key, value)?,
            "mirrorAddHeaders" => self.headers.add = headers(key, value)?,
            "mirrorRemoveHeaders" => {
                let names: Vec<String> = decode(key, value)?;
                self.headers.remove = names
                    .iter()
                    .map(|n| header_name(key, n))
                    .collect::<Result<_, _>>()?;
            }
            "mirrorBufferBytes" => self.request_buffer_bytes = number(key, value)?,
            "mirrorMaxBufferedBytes" => self.max_buffered_bytes = number(key, value)?,
            "mirrorMaxInflight" => self.max_inflight = number(key, value)?,
            "mirrorTimeoutMs" => self.timeout = Duration::from_millis(number(key, value)?),
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

fn header_name(key: &str, name: &str) -> Result<HeaderName, ParamsError> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| invalid(key_name(key), "valid header names", name))
}

/// A YAML map of header name to value, in name order.
fn headers(key: &str, value: &str) -> Result<Vec<(HeaderName, HeaderValue)>, ParamsError> {
    let map: BTreeMap<String, String> = decode(key, value)?;
    map.iter()
        .map(|(name, value)| {
            let value = HeaderValue::from_str(value)
                .map_err(|_| invalid(key_name(key), "valid header values", value))?;
            Ok((header_name(key, name)?, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Result<MirrorSettings, ParamsError> {
        let mut p = MirrorSettings::default();
        for (k, v) in pairs {
            assert!(p.set_param(k, v)?, "{k} is a mirror key");
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
            p.to_proxy_args(),
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
        assert!(MirrorSettings::default().to_proxy_args().is_empty());
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
