//! HTTPRoute filters as pure functions: header modifiers, redirect `Location`, URL rewrite, CORS.

pub mod cors;

use http::HeaderName;
use pingora_http::{RequestHeader, ResponseHeader};
use sluice_controller::snapshot::{HeaderModifier, PathMatch, PathModifier, Redirect};

#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// Translate only accepts `ReplacePrefixMatch` with a `PathPrefix` match; an entry violating
    /// that cannot be rewritten safely.
    #[error("ReplacePrefixMatch needs a PathPrefix match")]
    PrefixWithoutPrefixMatch,
    #[error("cannot modify header {name}")]
    Header {
        name: HeaderName,
        #[source]
        source: Box<pingora_error::Error>,
    },
    #[error("cannot build the CORS preflight answer")]
    CorsPreflight(#[source] Box<pingora_error::Error>),
    #[error("rewritten request target {target:?} is invalid")]
    Target {
        target: String,
        #[source]
        source: Box<pingora_error::Error>,
    },
}

/// A request or response head that a [`HeaderModifier`] can edit.
pub trait HeaderTarget {
    fn set_header(
        &mut self,
        name: &HeaderName,
        value: &http::HeaderValue,
    ) -> pingora_error::Result<()>;
    fn add_header(
        &mut self,
        name: &HeaderName,
        value: &http::HeaderValue,
    ) -> pingora_error::Result<()>;
    fn remove_header_named(&mut self, name: &HeaderName);
}

// === impl HeaderTarget ===

/// Pingora's request and response heads have the same header methods but no trait for them.
macro_rules! impl_header_target {
    ($($head:ty),+) => {$(
        impl HeaderTarget for $head {
            fn set_header(
                &mut self,
                name: &HeaderName,
                value: &http::HeaderValue,
            ) -> pingora_error::Result<()> {
                self.insert_header(name.clone(), value.clone())
            }
            fn add_header(
                &mut self,
                name: &HeaderName,
                value: &http::HeaderValue,
            ) -> pingora_error::Result<()> {
                self.append_header(name.clone(), value.clone()).map(drop)
            }
            fn remove_header_named(&mut self, name: &HeaderName) {
                self.remove_header(name);
            }
        }
    )+};
}

impl_header_target!(RequestHeader, ResponseHeader);

/// Applies `set` (replacing every value), then `add` (appending a value, keeping existing ones),
/// then `remove`, the order the spec lists them in.
pub fn apply_header_modifier<H: HeaderTarget>(
    m: &HeaderModifier,
    head: &mut H,
) -> Result<(), FilterError> {
    let wrap = |name: &HeaderName| {
        let name = name.clone();
        move |source| FilterError::Header { name, source }
    };
    for (name, value) in &m.set {
        head.set_header(name, value).map_err(wrap(name))?;
    }
    for (name, value) in &m.add {
        head.add_header(name, value).map_err(wrap(name))?;
    }
    for name in &m.remove {
        head.remove_header_named(name);
    }
    Ok(())
}

/// What a redirect needs to know about the request it answers.
#[derive(Debug, Clone, Copy)]
pub struct RequestUrl<'a> {
    /// `http` or `https`, from the listener the request arrived on.
    pub scheme: &'a str,
    /// The request's host, without port.
    pub host: &'a str,
    /// The Gateway listener's port.
    pub listener_port: u16,
    pub path: &'a str,
    pub query: Option<&'a str>,
}

/// The `Location` of a `RequestRedirect`, following the spec's port rules: an explicit port wins;
/// otherwise a changed scheme brings its well-known port and an unchanged one keeps the
/// listener's; the port is left out when it is the scheme's default (80 for http, 443 for https).
pub fn redirect_location(
    r: &Redirect,
    req: &RequestUrl<'_>,
    matched: &PathMatch,
) -> Result<String, FilterError> {
    let scheme = r.scheme.as_deref().unwrap_or(req.scheme);
    let host = r.hostname.as_deref().unwrap_or(req.host);
    let port = match (r.port, &r.scheme) {
        (Some(port), _) => port,
        (None, Some(s)) => well_known_port(s).unwrap_or(req.listener_port),
        (None, None) => req.listener_port,
    };
    let path = match &r.path {
        Some(m) => rewrite_path(m, req.path, matched)?,
        None => req.path.to_string(),
    };
    let mut location = format!("{scheme}://{host}");
    if well_known_port(scheme) != Some(port) {
        location.push(':');
        location.push_str(&port.to_string());
    }
    location.push_str(&path);
    if let Some(q) = req.query {
        location.push('?');
        location.push_str(q);
    }
    Ok(location)
}

fn well_known_port(scheme: &str) -> Option<u16> {
    if scheme.eq_ignore_ascii_case("http") {
        Some(80)
    } else if scheme.eq_ignore_ascii_case("https") {
        Some(443)
    } else {
        None
    }
}

/// The new path for a URL rewrite or redirect. `ReplacePrefixMatch` replaces exactly the part the
/// `PathPrefix` matched and keeps the rest, so `/foo/bar` with prefix `/foo` and replacement
/// `/xyz` becomes `/xyz/bar`; trailing slashes on the prefix or replacement never double up and
/// an empty result becomes `/` (the spec's table, see the tests).
pub fn rewrite_path(
    m: &PathModifier,
    path: &str,
    matched: &PathMatch,
) -> Result<String, FilterError> {
    match m {
        PathModifier::ReplaceFullPath(p) => Ok(p.clone()),
        PathModifier::ReplacePrefixMatch(replacement) => {
            let PathMatch::Prefix(prefix) = matched else {
                return Err(FilterError::PrefixWithoutPrefixMatch);
            };
            let prefix = prefix.trim_end_matches('/');
            // The entry matched, so the path starts with the prefix; anything else keeps the path.
            let rest = path.strip_prefix(prefix).unwrap_or(path);
            let replacement = replacement.trim_end_matches('/');
            let mut out = String::with_capacity(replacement.len() + rest.len() + 1);
            if !replacement.starts_with('/') {
                out.push('/');
            }
            out.push_str(replacement);
            if out.ends_with('/') && rest.starts_with('/') {
                out.pop();
            }
            out.push_str(rest);
            if out.is_empty() {
                out.push('/');
            }
            Ok(out)
        }
    }
}

/// Replaces the path of `req`'s target with `path`, keeping the query.
pub fn set_request_path(req: &mut RequestHeader, path: &str) -> Result<(), FilterError> {
    let target = match req.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    req.set_raw_path(target.as_bytes())
        .map_err(|source| FilterError::Target { target, source })
}

/// Sends `req` to `host`: the `Host` header and, when the target carries one (an HTTP/2 request's
/// `:authority`, an absolute-form target), the URI authority too. Pingora rebuilds `Host` from
/// the URI authority when it converts an HTTP/2 request for an HTTP/1.1 backend, so changing
/// the header alone would be undone for the primary.
pub fn set_request_host(req: &mut RequestHeader, host: &str) -> Result<(), FilterError> {
    req.insert_header(http::header::HOST, host)
        .map_err(|source| FilterError::Header {
            name: http::header::HOST,
            source,
        })?;
    // A non-UTF-8 target cannot be rebuilt from the URI without losing its bytes; Pingora
    // refuses it anyway once Host and authority disagree.
    if req.uri.authority().is_none() || !req.raw_path_is_utf8() {
        return Ok(());
    }
    let mut parts = req.uri.clone().into_parts();
    let rebuilt = http::uri::Authority::try_from(host)
        .map_err(|e| e.into())
        .and_then(|authority| {
            parts.authority = Some(authority);
            http::Uri::from_parts(parts).map_err(http::Error::from)
        })
        .map_err(|e: http::Error| FilterError::Target {
            target: host.to_string(),
            source: pingora_error::Error::because(
                pingora_error::ErrorType::InvalidHTTPHeader,
                "rewritten hostname is not a valid authority",
                e,
            ),
        })?;
    req.set_uri(rebuilt);
    Ok(())
}

#[cfg(test)]
#[path = "filters/tests.rs"]
mod tests;
