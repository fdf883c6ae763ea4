//! The `--access-log-*` flags of the commands that proxy (standalone and `proxy`).

use clap::Args;

use crate::access_log::AccessLogSettings;

#[derive(Debug, Clone, Args)]
pub struct AccessLogArgs {
    /// Log every access line's `query` as "" (queries may carry tokens or personal data).
    #[arg(long, env = "SLUICE_ACCESS_LOG_OMIT_QUERY")]
    pub access_log_omit_query: bool,
}

impl AccessLogArgs {
    pub fn into_settings(self) -> AccessLogSettings {
        AccessLogSettings {
            omit_query: self.access_log_omit_query,
        }
    }
}
