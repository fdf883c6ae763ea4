//! What Pingora will refuse about a request after `upstream_peer`, checked before mirrors launch.
//!
//! Pingora sanitises the upstream request only after `upstream_peer` has chosen (and connected
//! to) the peer, and answers the client 400 when it cannot: a copy launched before that would
//! reach the mirror although the backend never saw the request. These are the same rules, for
//! its default `HttpUpstreamRequestPolicy` (pingora-proxy 0.9 `proxy_common.rs`, `proxy_h2.rs`);
//! `gateway/tests/mirror_exchange.rs` pins each one end to end.

use http::header::{CONNECTION, HOST};
use http::HeaderName;
use pingora_http::RequestHeader;

use crate::http_fields::list_elements;

/// Pingora refuses more `Connection` tokens than this, less one.
const MAX_CONNECTION_NOMINATIONS: usize = 10;

/// Fields a client may not nominate as hop-by-hop: a proxy sets them.
const PROTECTED: [&str; 4] = [
    "host",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
];

/// Why Pingora will not send `req` upstream, if it will not. `h2_backend`: the primary backend
/// speaks HTTP/2 (h2c), whose conversion refuses more.
pub(super) fn refused_upstream(req: &RequestHeader, h2_backend: bool) -> Option<&'static str> {
    if let Some(why) = bad_connection_nominations(req) {
        return Some(why);
    }
    if h2_backend {
        if !req.raw_path_is_utf8() {
            return Some("non-UTF-8 request target cannot be forwarded over HTTP/2");
        }
        // HTTP/1.0 may omit Host; HTTP/2 needs an authority.
        if !req.headers.contains_key(HOST) && req.uri.authority().is_none() {
            return Some("no authority for an HTTP/2 backend");
        }
    }
    None
}

/// Pingora's `ConnectionNominations::parse`: too many tokens, a pseudo-header, a token that is
/// not an RFC 9110 `token`, or a protected field.
fn bad_connection_nominations(req: &RequestHeader) -> Option<&'static str> {
    let tokens = req
        .headers
        .get_all(CONNECTION)
        .iter()
        .flat_map(|value| list_elements(value.as_bytes()));
    for (count, token) in tokens.enumerate() {
        if count + 1 >= MAX_CONNECTION_NOMINATIONS {
            return Some("too many Connection header nominations");
        }
        if token.starts_with(b":") {
            return Some("a pseudo-header nominated by the Connection header");
        }
        if !token.iter().all(|&byte| is_tchar(byte)) {
            return Some("invalid token nominated by the Connection header");
        }
        let Ok(name) = HeaderName::from_bytes(token) else {
            return Some("invalid token nominated by the Connection header");
        };
        if PROTECTED.contains(&name.as_str()) {
            return Some("protected header nominated by the Connection header");
        }
    }
    None
}

/// A `tchar` of RFC 9110 §5.6.2.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn with_connection(value: &str) -> RequestHeader {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("host", "example.com").unwrap();
        req.append_header("connection", value).unwrap();
        req
    }

    #[test]
    fn ordinary_connection_options_are_accepted() {
        for value in ["keep-alive", "close", "Upgrade, x-private", "te, trailers"] {
            assert_eq!(refused_upstream(&with_connection(value), false), None);
        }
    }

    #[test]
    fn protected_pseudo_malformed_and_too_many_nominations_are_refused() {
        for value in [
            "host",
            "X-Forwarded-For",
            "keep-alive, x-forwarded-host",
            "x-forwarded-proto",
            ":authority",
            "\"x-forwarded-for\"",
            "a, b, c, d, e, f, g, h, i, j",
        ] {
            assert!(
                refused_upstream(&with_connection(value), false).is_some(),
                "{value}"
            );
        }
        assert_eq!(
            refused_upstream(&with_connection("a, b, c, d, e, f, g, h, i"), false),
            None
        );
    }

    #[test]
    fn an_h2_backend_needs_an_authority() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        assert_eq!(refused_upstream(&req, false), None);
        assert!(refused_upstream(&req, true).is_some());
        req.append_header("host", "example.com").unwrap();
        assert_eq!(refused_upstream(&req, true), None);
    }
}
