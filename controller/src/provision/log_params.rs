//! The log keys of the class parameters: `sluice proxy --log-format` and
//! `--access-log-omit-query` for every data plane (docs/logging.md).

use super::params::ParamsError;

/// The keys [`LogParams::set`] knows.
pub const KEYS: [&str; 2] = ["logFormat", "accessLogOmitQuery"];

/// How a class's data planes log; the proxy's own defaults (text, queries logged) when unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogParams {
    /// `text` or `json`.
    pub format: Option<&'static str>,
    /// Access lines leave the query out.
    pub omit_query: bool,
}

impl LogParams {
    /// Takes `key` if it is a log key; `Ok(false)` for any other key. Values are checked here
    /// as the proxy's parser checks them, so a typo is the class's `InvalidParameters`
    /// condition rather than a data plane that crash-loops on its flags.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, ParamsError> {
        match key {
            "logFormat" => {
                self.format = Some(match value {
                    "text" => "text",
                    "json" => "json",
                    _ => {
                        return Err(ParamsError::Invalid {
                            key: "logFormat",
                            expected: "text or json",
                            value: value.into(),
                        })
                    }
                })
            }
            "accessLogOmitQuery" => {
                self.omit_query = match value {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(ParamsError::Invalid {
                            key: "accessLogOmitQuery",
                            expected: "true or false",
                            value: value.into(),
                        })
                    }
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The `sluice proxy` flags; none for the defaults, so data planes of classes that set no
    /// log key keep their pod spec (and are not rolled).
    pub fn args(&self) -> Vec<String> {
        let format = self.format.map(|f| format!("--log-format={f}"));
        let omit = self
            .omit_query
            .then(|| "--access-log-omit-query".to_string());
        format.into_iter().chain(omit).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_proxy_flags() {
        let mut p = LogParams::default();
        assert!(p.args().is_empty());
        assert!(p.set("logFormat", "json").expect("valid"));
        assert!(p.set("accessLogOmitQuery", "true").expect("valid"));
        assert!(!p.set("mirrorTimeoutMs", "5").expect("not a log key"));
        assert_eq!(p.args(), ["--log-format=json", "--access-log-omit-query"]);
        assert!(p.set("accessLogOmitQuery", "false").expect("valid"));
        assert!(p.set("logFormat", "text").expect("valid"));
        assert_eq!(p.args(), ["--log-format=text"]);
    }

    #[test]
    fn bad_values_are_invalid_parameters() {
        for (key, value) in [
            ("logFormat", "JSON"),
            ("logFormat", "yaml"),
            ("accessLogOmitQuery", "yes"),
        ] {
            let err = LogParams::default().set(key, value).expect_err(key);
            assert!(matches!(err, ParamsError::Invalid { .. }), "{key}={value}");
        }
    }
}
