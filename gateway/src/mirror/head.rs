//! Turns the request head the primary sends into the head a mirror receives.

use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Version};
use pingora_http::RequestHeader;

use sluice_controller::mirror_settings::MirrorSettings;

/// Why a request is never copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotMirrorable {
    /// `Upgrade` (WebSocket, h2c upgrade) or `CONNECT`: the exchange after the head is a tunnel
    /// whose bytes cannot be replayed to a second peer without that peer answering the handshake.
    Upgrade,
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) plus `Expect`: they describe the client's connection to
/// the gateway, not the request, and `Expect: 100-continue` would make the mirror wait for a
/// `100` that the body stream does not need.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

pub(super) fn check_mirrorable(primary: &RequestHeader) -> Result<(), NotMirrorable> {
    if primary.method == Method::CONNECT || primary.headers.contains_key(header::UPGRADE) {
        return Err(NotMirrorable::Upgrade);
    }
    Ok(())
}

/// The mirror's head, made from a copy of the primary's: same method and raw path, the
/// headers minus hop-by-hop ones, framed as HTTP/1.1 with the body length the primary announced
/// (chunked when unknown).
pub(super) fn mirror_head(
    mut head: RequestHeader,
    has_body: bool,
    options: &MirrorSettings,
) -> RequestHeader {
    head.set_version(Version::HTTP_11);
    strip_hop_by_hop(&mut head);

    // An HTTP/2 client sends `:authority` instead of `Host`; HTTP/1.1 requires `Host`.
    if !head.headers.contains_key(header::HOST) {
        if let Some(v) = head
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            let _ = head.insert_header(header::HOST, v);
        }
    }
    if let Some(suffix) = &options.host_suffix {
        if let Some(v) = head.headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
            if let Ok(v) = HeaderValue::from_str(&suffixed_host(v, suffix)) {
                let _ = head.insert_header(header::HOST, v);
            }
        }
    }

    if has_body {
        if !head.headers.contains_key(header::CONTENT_LENGTH) {
            let _ = head.insert_header(
                header::TRANSFER_ENCODING,
                HeaderValue::from_static("chunked"),
            );
        }
    } else {
        head.remove_header(&header::CONTENT_LENGTH);
    }

    let modifier = &options.headers;
    for (name, value) in &modifier.set {
        let _ = head.insert_header(name.clone(), value.clone());
    }
    for (name, value) in &modifier.add {
        let _ = head.append_header(name.clone(), value.clone());
    }
    for name in &modifier.remove {
        head.remove_header(name);
    }
    head
}

/// Removes the hop-by-hop fields, those `Connection` names and `Expect`. [`mirror_head`] does it
/// too; the proxy calls it first, before adding its `X-Forwarded-*`, so a client's
/// `Connection: x-forwarded-for` cannot remove what the gateway itself adds.
pub(super) fn strip_hop_by_hop(head: &mut RequestHeader) {
    // Most requests carry none: one pass over the names present beats ten absent lookups.
    if !head
        .headers
        .keys()
        .any(|n| HOP_BY_HOP.contains(n) || n == header::EXPECT)
    {
        return;
    }
    // Names listed in `Connection` are hop-by-hop too.
    let listed: Vec<HeaderName> = head
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(listed.iter()) {
        head.remove_header(name);
    }
    head.remove_header(&header::EXPECT);
}

/// `example.com:8080` + `-shadow` → `example.com-shadow:8080` (the suffix goes on the host name,
/// as Envoy does, so the port stays valid).
fn suffixed_host(host: &str, suffix: &str) -> String {
    // A bracketed IPv6 literal keeps its colons inside the brackets.
    let port_at = match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => Some(i),
        _ => None,
    };
    match port_at {
        Some(i) => format!("{}{}{}", &host[..i], suffix, &host[i..]),
        None => format!("{host}{suffix}"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use sluice_test_support::proxy::headers;

    /// A primary request for `/` with these headers.
    fn primary(method: &str, headers: &[(&str, &str)]) -> RequestHeader {
        primary_at(method, b"/", headers)
    }

    fn primary_at(method: &str, path: &[u8], headers: &[(&str, &str)]) -> RequestHeader {
        let mut h = RequestHeader::build(method, path, None).unwrap();
        for (k, v) in headers {
            h.append_header(k.to_string(), *v).unwrap();
        }
        h
    }

    #[test]
    fn hop_by_hop_and_expect_are_removed_and_the_rest_kept_in_order() {
        let p = primary_at(
            "POST",
            b"/a/b?x=1&y=%2F",
            &[
                ("host", "example.com"),
                ("connection", "keep-alive, x-private"),
                ("x-private", "1"),
                ("expect", "100-continue"),
                ("content-length", "11"),
                ("x-a", "1"),
                ("x-a", "2"),
                ("te", "trailers"),
            ],
        );
        let m = mirror_head(p.clone(), true, &MirrorSettings::default());
        assert_eq!(m.method, Method::POST);
        assert_eq!(m.raw_path(), b"/a/b?x=1&y=%2F");
        assert_eq!(m.headers.get("host").unwrap(), "example.com");
        assert_eq!(m.headers.get("content-length").unwrap(), "11");
        let xa: Vec<_> = m.headers.get_all("x-a").iter().collect();
        assert_eq!(xa, ["1", "2"]);
        for gone in [
            "connection",
            "x-private",
            "expect",
            "te",
            "transfer-encoding",
        ] {
            assert!(!m.headers.contains_key(gone), "{gone} should be removed");
        }
    }

    #[test]
    fn a_body_of_unknown_length_is_sent_chunked() {
        let p = primary("POST", &[("host", "h"), ("transfer-encoding", "chunked")]);
        let m = mirror_head(p.clone(), true, &MirrorSettings::default());
        assert_eq!(m.headers.get("transfer-encoding").unwrap(), "chunked");
        assert!(!m.headers.contains_key("content-length"));
    }

    #[test]
    fn host_suffix_goes_before_the_port() {
        assert_eq!(suffixed_host("a.com", "-shadow"), "a.com-shadow");
        assert_eq!(suffixed_host("a.com:8080", "-shadow"), "a.com-shadow:8080");
        assert_eq!(suffixed_host("[::1]:80", "-s"), "[::1]-s:80");
        assert_eq!(suffixed_host("[::1]", "-s"), "[::1]-s");
    }

    #[test]
    fn options_suffix_the_host_and_modify_mirror_only_headers() {
        let p = primary(
            "GET",
            &[("host", "a.com:80"), ("x-drop", "1"), ("x-k", "old")],
        );
        let options = MirrorSettings {
            host_suffix: Some("-shadow".into()),
            headers: headers(&[("x-k", "new")], &[("x-mirror", "1")], &["x-drop"]),
            ..MirrorSettings::default()
        };
        let m = mirror_head(p.clone(), false, &options);
        assert_eq!(m.headers.get("host").unwrap(), "a.com-shadow:80");
        assert_eq!(m.headers.get("x-k").unwrap(), "new");
        assert_eq!(m.headers.get("x-mirror").unwrap(), "1");
        assert!(!m.headers.contains_key("x-drop"));
        // the primary is untouched
        assert_eq!(p.headers.get("x-k").unwrap(), "old");
    }

    #[test]
    fn upgrade_and_connect_are_not_mirrorable() {
        let ws = primary(
            "GET",
            &[("connection", "upgrade"), ("upgrade", "websocket")],
        );
        assert_eq!(check_mirrorable(&ws), Err(NotMirrorable::Upgrade));
        let connect = primary("CONNECT", &[]);
        assert_eq!(check_mirrorable(&connect), Err(NotMirrorable::Upgrade));
        assert_eq!(check_mirrorable(&primary("GET", &[])), Ok(()));
    }
}
