//! What a copy's head gets beyond the primary's: the data plane's `--mirror-*` settings, each
//! field a MirrorPolicy's `request` section sets replacing the setting for that policy's copies.

use std::net::Ipv4Addr;

use http::header::{self, HeaderName, HeaderValue};
use pingora_http::RequestHeader;
use sluice_controller::mirror_settings::MirrorSettings;
use sluice_controller::snapshot::{CopyHost, HeaderModifier, MirrorPolicy};

/// The credentials `stripCredentials` removes, every value of each.
const CREDENTIALS: [HeaderName; 3] = [
    header::AUTHORIZATION,
    header::PROXY_AUTHORIZATION,
    header::COOKIE,
];

/// The effective shape of one copy. It borrows from the settings and the policy: a copy without
/// a policy (the benchmarked hot path) allocates nothing to know its shape.
#[derive(Debug, Clone, Copy)]
pub(super) struct Shape<'a> {
    host: Option<HostChange<'a>>,
    headers: &'a HeaderModifier,
    strip_credentials: bool,
}

/// How the copy's `Host` changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostChange<'a> {
    Suffix(&'a str),
    Rewrite(&'a str),
}

impl<'a> Shape<'a> {
    /// `policy` over `settings`, field by field.
    pub(super) fn of(settings: &'a MirrorSettings, policy: Option<&'a MirrorPolicy>) -> Shape<'a> {
        let defaults = Shape {
            host: settings.host_suffix.as_deref().map(HostChange::Suffix),
            headers: &settings.headers,
            strip_credentials: false,
        };
        let Some(request) = policy.map(|p| &p.request) else {
            return defaults;
        };
        Shape {
            host: match &request.host {
                Some(CopyHost::Suffix(suffix)) => Some(HostChange::Suffix(suffix)),
                Some(CopyHost::Rewrite(name)) => Some(HostChange::Rewrite(name)),
                None => defaults.host,
            },
            headers: request.headers.as_ref().unwrap_or(defaults.headers),
            strip_credentials: request.strip_credentials,
        }
    }

    /// Changes the copy's `Host` (which the caller has already filled from the URI authority
    /// when the client sent none).
    pub(super) fn apply_host(&self, head: &mut RequestHeader) {
        let Some(change) = self.host else { return };
        let current = head.headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let host = match (change, current) {
            (HostChange::Suffix(suffix), Some(host)) => suffixed_host(host, suffix),
            // Nothing to append to: the copy goes without a Host, as the primary does.
            (HostChange::Suffix(_), None) => return,
            (HostChange::Rewrite(name), Some(host)) => rewritten_host(host, name),
            // An HTTP/1.0 request without Host: the rewrite names the mirror's host all the same.
            (HostChange::Rewrite(name), None) => name.to_string(),
        };
        if let Ok(v) = HeaderValue::from_str(&host) {
            let _ = head.insert_header(header::HOST, v);
        }
    }

    /// Applied after every route filter and after the gateway's own changes to the head:
    /// credentials go first, so the header changes may give the mirror a credential of its own.
    pub(super) fn apply_headers(&self, head: &mut RequestHeader) {
        if self.strip_credentials {
            for name in &CREDENTIALS {
                head.remove_header(name);
            }
        }
        // Names and values were validated when the snapshot was built; inserting them cannot fail.
        let _ = crate::filters::apply_header_modifier(self.headers, head);
    }
}

/// `example.com:8080` + `-shadow` → `example.com-shadow:8080` (the suffix goes on the host name,
/// as Envoy does, so the port stays valid). An IP literal (`[::1]:80`, `10.0.0.1`) is returned
/// unchanged: a suffix would make it an invalid host (RFC 3986 §3.2.2) or a different name.
fn suffixed_host(host: &str, suffix: &str) -> String {
    if host.starts_with('[') {
        return host.to_string();
    }
    let (name, port) = match host.rfind(':') {
        Some(i) => host.split_at(i),
        None => (host, ""),
    };
    // More colons than a port separator: an unbracketed IPv6 address, not a host name.
    if name.parse::<Ipv4Addr>().is_ok() || name.contains(':') {
        return host.to_string();
    }
    format!("{name}{suffix}{port}")
}

/// `example.com:8080` → `shadow.example:8080`: the host name is replaced, the port kept. The
/// current host may be any form `Host` takes, an IPv6 literal (`[::1]:80`) included.
fn rewritten_host(host: &str, name: &str) -> String {
    format!("{name}{}", port_of(host))
}

/// The `:port` ending `host`, or "" when it names none.
fn port_of(host: &str) -> &str {
    let after_name = match host.strip_prefix('[') {
        // `[v6]:port`: what follows the bracket.
        Some(rest) => rest.find(']').map_or("", |i| &rest[i + 1..]),
        // More than one colon without brackets is an address, not `name:port`.
        None if host.matches(':').count() > 1 => "",
        None => host.find(':').map_or("", |i| &host[i..]),
    };
    match after_name.strip_prefix(':') {
        Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            after_name
        }
        _ => "",
    }
}

#[cfg(test)]
mod tests;
