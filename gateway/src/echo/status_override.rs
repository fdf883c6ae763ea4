//! `sluice echo --status PATH=CODE`: answer CODE for every request whose path starts with PATH, so a
//! second echo can play "v2 that differs on one endpoint" in the shadow-diff walkthrough.

use std::str::FromStr;

use http::StatusCode;

/// One `PATH=CODE` override: requests whose path starts with `prefix` get the echo reply with `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusOverride {
    pub prefix: String,
    pub status: StatusCode,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusOverrideError {
    #[error("expected PATH=CODE, e.g. /orders=503, got {0:?}")]
    Syntax(String),
    #[error("the path of {0:?} must start with '/'")]
    Path(String),
    #[error("{0:?} is not an HTTP status code (100 to 999)")]
    Code(String),
}

impl FromStr for StatusOverride {
    type Err = StatusOverrideError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let (prefix, code) = input
            .rsplit_once('=')
            .ok_or_else(|| StatusOverrideError::Syntax(input.to_owned()))?;
        if !prefix.starts_with('/') {
            return Err(StatusOverrideError::Path(input.to_owned()));
        }
        let status = code
            .parse::<u16>()
            .ok()
            .and_then(|code| StatusCode::from_u16(code).ok())
            .ok_or_else(|| StatusOverrideError::Code(code.to_owned()))?;
        Ok(Self {
            prefix: prefix.to_owned(),
            status,
        })
    }
}

/// The first override whose prefix starts `path`, in the order given on the command line.
pub(super) fn status_for(overrides: &[StatusOverride], path: &str) -> Option<StatusCode> {
    overrides
        .iter()
        .find(|o| path.starts_with(&o.prefix))
        .map(|o| o.status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_equals_code_parses_and_bad_forms_are_refused() {
        let parsed: StatusOverride = "/orders=503".parse().expect("parses");
        assert_eq!(parsed.prefix, "/orders");
        assert_eq!(parsed.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(matches!(
            "/orders".parse::<StatusOverride>(),
            Err(StatusOverrideError::Syntax(_))
        ));
        assert!(matches!(
            "orders=503".parse::<StatusOverride>(),
            Err(StatusOverrideError::Path(_))
        ));
        for bad in ["/a=abc", "/a=99", "/a=1000", "/a="] {
            assert!(
                matches!(
                    bad.parse::<StatusOverride>(),
                    Err(StatusOverrideError::Code(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn first_matching_prefix_decides() {
        let overrides: Vec<StatusOverride> = ["/orders/7=404", "/orders=503"]
            .iter()
            .map(|s| s.parse().expect("parses"))
            .collect();
        assert_eq!(
            status_for(&overrides, "/orders/7"),
            Some(StatusCode::NOT_FOUND)
        );
        assert_eq!(
            status_for(&overrides, "/orders/8"),
            Some(StatusCode::SERVICE_UNAVAILABLE)
        );
        assert_eq!(status_for(&overrides, "/users"), None);
    }
}
