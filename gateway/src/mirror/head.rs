//! Turns the request head the primary sends into the head a mirror receives.

use http::header::{self, HeaderName, HeaderValue};
use http::uri::{Authority, Uri};
use http::{Method, Version};
use pingora_http::authority::{raw_target_authority, RawTargetAuthority};
use pingora_http::RequestHeader;

use sluice_controller::snapshot::BackendProtocol;

use super::shape::Shape;

/// Why a request is never copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotMirrorable {
    /// `Upgrade: websocket` or `CONNECT`: the exchange after the head is a tunnel whose bytes
    /// cannot be replayed to a second peer without that peer answering the handshake.
    Upgrade,
}

/// Hop-by-hop headers (RFC 9110 §7.6.1, and `HTTP2-Settings`, RFC 7540 §3.2.1, which only
/// means something with an `Upgrade: h2c`): they describe the client's connection to the
/// gateway, not the request.
const HOP_BY_HOP: [HeaderName; 10] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    HeaderName::from_static("http2-settings"),
];

/// Only the upgrades the proxy really tunnels stop the copy: WebSocket (the only upgrade Gateway
/// API routes carry) and `CONNECT` (HTTP/2's extended CONNECT for WebSocket included). Any other
/// `Upgrade` (`h2c` from `curl --http2`, Java's HttpClient) is an offer the backend may ignore,
/// so the request is an ordinary exchange and the copy goes without the offer.
pub(super) fn check_mirrorable(primary: &RequestHeader) -> Result<(), NotMirrorable> {
    let websocket = primary
        .headers
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| {
            // `websocket` or `websocket/13`: the protocol name is what counts.
            let name = token.trim().split('/').next().unwrap_or_default();
            name.eq_ignore_ascii_case("websocket")
        });
    if primary.method == Method::CONNECT || websocket {
        return Err(NotMirrorable::Upgrade);
    }
    Ok(())
}

/// The mirror's head, made from a copy of the primary's: same method and raw path, the
/// headers minus hop-by-hop ones and `Expect`, framed for `protocol` with the body length the
/// primary announced: chunked when unknown, only to an HTTP/1.1 mirror (HTTP/2 frames its own
/// body and forbids `Transfer-Encoding`, RFC 9113 §8.2.2).
pub(super) fn mirror_head(
    mut head: RequestHeader,
    has_body: bool,
    protocol: BackendProtocol,
    shape: Shape<'_>,
) -> RequestHeader {
    // Decided on the client's version, before the copy's head becomes HTTP/1.1.
    let keep_te = protocol == BackendProtocol::H2c && te_trailers_only(&head);
    head.set_version(Version::HTTP_11);
    strip(&mut head, keep_te);

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
    shape.apply_host(&mut head);

    if has_body {
        let unknown_length = !head.headers.contains_key(header::CONTENT_LENGTH);
        if unknown_length && protocol != BackendProtocol::H2c {
            let _ = head.insert_header(
                header::TRANSFER_ENCODING,
                HeaderValue::from_static("chunked"),
            );
        }
    } else if head.headers.contains_key(header::CONTENT_LENGTH) {
        // A bodiless request that announced `Content-Length: 0` (a POST or PUT without data,
        // RFC 9110 §8.6) keeps it: a server that requires a length would answer 411 otherwise.
        let _ = head.insert_header(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    }

    shape.apply_headers(&mut head);
    authority_follows_host(&mut head);
    head
}

/// The body length a copy's head declares, when it declares a valid one.
pub(super) fn declared_length(head: &RequestHeader) -> Option<u64> {
    head.headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// Removes the hop-by-hop fields, those `Connection` names and `Expect`. [`mirror_head`] does it
/// too; the proxy calls it first, before adding its `X-Forwarded-*`, so a client's
/// `Connection: x-forwarded-for` cannot remove what the gateway itself adds.
pub(super) fn strip_hop_by_hop(head: &mut RequestHeader) {
    let keep_te = te_trailers_only(head);
    strip(head, keep_te);
}

/// Whether `head` is an HTTP/2 request whose only `TE` is `trailers`: the one value HTTP/2 allows
/// (RFC 9113 §8.2.2), and what every gRPC client sends. Pingora forwards it from an HTTP/2 client
/// to an h2 backend, so an h2c copy keeps it too; an HTTP/1.1 copy never gets it (there it would
/// offer chunked trailers, hop by hop).
fn te_trailers_only(head: &RequestHeader) -> bool {
    let mut values = head.headers.get_all(header::TE).iter();
    head.version == Version::HTTP_2
        && matches!(
            (values.next(), values.next()),
            (Some(v), None) if v.as_bytes().eq_ignore_ascii_case(b"trailers")
        )
}

/// [`strip_hop_by_hop`], keeping `TE: trailers` when `keep_te`.
fn strip(head: &mut RequestHeader, keep_te: bool) {
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
        if !(keep_te && name == header::TE) {
            head.remove_header(name);
        }
    }
    // `Expect: 100-continue` would make the mirror wait for a `100` that the body stream does
    // not need (the gateway already answered the client's).
    head.remove_header(&header::EXPECT);
}

/// The request target must name the same authority as the copy's `Host` once that changed (host
/// suffix, URLRewrite hostname, a mirror header):
/// - an HTTP/2 client's request carries it in the URI, and an h2c mirror's client refuses "Host
///   header differs from URI authority": the URI authority takes the new `Host`;
/// - an HTTP/1.1 absolute-form target (`GET http://a.com/x`) overrides `Host` at the mirror
///   (RFC 9112 §3.2.2), so the suffix would be lost: the copy goes in origin form, its path and
///   query byte for byte, and `Host` alone names the authority.
///
/// An origin-form target has no authority and is left alone.
fn authority_follows_host(head: &mut RequestHeader) {
    let Some(host) = head.headers.get(header::HOST).cloned() else {
        return;
    };
    if let Some(current) = head.uri.authority() {
        if host.as_bytes() == current.as_str().as_bytes() {
            return;
        }
        let Ok(authority) = Authority::try_from(host.as_bytes()) else {
            return;
        };
        let mut parts = head.uri.clone().into_parts();
        parts.authority = Some(authority);
        if let Ok(uri) = Uri::from_parts(parts) {
            head.set_uri(uri);
        }
        return;
    }
    let origin_form = match raw_target_authority(head.raw_path()) {
        RawTargetAuthority::Absolute {
            authority,
            path_and_query,
            ..
        } if authority != host.as_bytes() => match path_and_query {
            [] => b"/".to_vec(),
            bytes => bytes.to_vec(),
        },
        _ => return,
    };
    // A target Pingora parsed once parses again; if not, the copy keeps the original.
    let _ = head.set_raw_path(&origin_form);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use sluice_controller::mirror_settings::MirrorSettings;
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
        let m = mirror_head(
            p.clone(),
            true,
            BackendProtocol::Http1,
            Shape::of(&MirrorSettings::default(), None),
        );
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

    /// An HTTP/2 (gRPC) client's request with `te: trailers`.
    fn h2_with_te(te: &str) -> RequestHeader {
        let mut p = primary("POST", &[("host", "grpc.test"), ("te", te)]);
        p.set_version(Version::HTTP_2);
        p
    }

    #[test]
    fn te_trailers_from_an_http2_client_reaches_an_h2c_mirror_only() {
        let settings = MirrorSettings::default();
        let mut launched = h2_with_te("trailers");
        strip_hop_by_hop(&mut launched);
        let h2c = mirror_head(
            launched.clone(),
            true,
            BackendProtocol::H2c,
            Shape::of(&settings, None),
        );
        assert_eq!(h2c.headers.get("te").unwrap(), "trailers");
        let h1 = mirror_head(
            launched,
            true,
            BackendProtocol::Http1,
            Shape::of(&settings, None),
        );
        assert!(!h1.headers.contains_key("te"), "an HTTP/1.1 copy has no TE");
    }

    #[test]
    fn any_other_te_is_removed_even_for_an_h2c_mirror() {
        let settings = MirrorSettings::default();
        let m = mirror_head(
            h2_with_te("gzip"),
            true,
            BackendProtocol::H2c,
            Shape::of(&settings, None),
        );
        assert!(!m.headers.contains_key("te"));
        let http1_client = primary("POST", &[("host", "a"), ("te", "trailers")]);
        let m = mirror_head(
            http1_client,
            true,
            BackendProtocol::H2c,
            Shape::of(&settings, None),
        );
        assert!(
            !m.headers.contains_key("te"),
            "an HTTP/1.1 client's TE is hop by hop"
        );
    }

    #[test]
    fn a_body_of_unknown_length_is_sent_chunked() {
        let p = primary("POST", &[("host", "h"), ("transfer-encoding", "chunked")]);
        let m = mirror_head(
            p.clone(),
            true,
            BackendProtocol::Http1,
            Shape::of(&MirrorSettings::default(), None),
        );
        assert_eq!(m.headers.get("transfer-encoding").unwrap(), "chunked");
        assert!(!m.headers.contains_key("content-length"));
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
        let m = mirror_head(
            p.clone(),
            false,
            BackendProtocol::Http1,
            Shape::of(&options, None),
        );
        assert_eq!(m.headers.get("host").unwrap(), "a.com-shadow:80");
        assert_eq!(m.headers.get("x-k").unwrap(), "new");
        assert_eq!(m.headers.get("x-mirror").unwrap(), "1");
        assert!(!m.headers.contains_key("x-drop"));
        // the primary is untouched
        assert_eq!(p.headers.get("x-k").unwrap(), "old");
    }

    #[test]
    fn websocket_and_connect_are_not_mirrorable() {
        for upgrade in ["websocket", "WebSocket", "foo, websocket/13"] {
            let ws = primary("GET", &[("connection", "upgrade"), ("upgrade", upgrade)]);
            assert_eq!(
                check_mirrorable(&ws),
                Err(NotMirrorable::Upgrade),
                "{upgrade}"
            );
        }
        let connect = primary("CONNECT", &[]);
        assert_eq!(check_mirrorable(&connect), Err(NotMirrorable::Upgrade));
        assert_eq!(check_mirrorable(&primary("GET", &[])), Ok(()));
    }

    #[test]
    fn an_h2c_upgrade_offer_is_mirrored_without_the_offer() {
        let p = primary(
            "GET",
            &[
                ("host", "h"),
                ("connection", "Upgrade, HTTP2-Settings"),
                ("upgrade", "h2c"),
                ("http2-settings", "AAMAAABkAAQCAAAAAAIAAAAA"),
            ],
        );
        assert_eq!(check_mirrorable(&p), Ok(()));
        let m = mirror_head(
            p,
            false,
            BackendProtocol::Http1,
            Shape::of(&MirrorSettings::default(), None),
        );
        for gone in ["connection", "upgrade", "http2-settings"] {
            assert!(!m.headers.contains_key(gone), "{gone} should be removed");
        }
    }

    #[test]
    fn a_body_of_unknown_length_to_an_h2c_mirror_has_no_transfer_encoding() {
        let p = primary("POST", &[("host", "h"), ("transfer-encoding", "chunked")]);
        let m = mirror_head(
            p,
            true,
            BackendProtocol::H2c,
            Shape::of(&MirrorSettings::default(), None),
        );
        assert!(!m.headers.contains_key("transfer-encoding"));
        assert!(!m.headers.contains_key("content-length"));
    }

    #[test]
    fn an_empty_post_keeps_content_length_zero() {
        let p = primary("POST", &[("host", "h"), ("content-length", "0")]);
        let m = mirror_head(
            p,
            false,
            BackendProtocol::Http1,
            Shape::of(&MirrorSettings::default(), None),
        );
        assert_eq!(m.headers.get("content-length").unwrap(), "0");
        let get = mirror_head(
            primary("GET", &[("host", "h")]),
            false,
            BackendProtocol::Http1,
            Shape::of(&MirrorSettings::default(), None),
        );
        assert!(!get.headers.contains_key("content-length"));
    }

    #[test]
    fn the_uri_authority_follows_a_suffixed_host() {
        let mut p = primary("GET", &[]);
        p.set_uri(Uri::from_static("https://a.com:8443/x?y=1"));
        let options = MirrorSettings {
            host_suffix: Some("-shadow".into()),
            ..MirrorSettings::default()
        };
        let m = mirror_head(p, false, BackendProtocol::H2c, Shape::of(&options, None));
        assert_eq!(m.headers.get("host").unwrap(), "a.com-shadow:8443");
        assert_eq!(m.uri.authority().unwrap().as_str(), "a.com-shadow:8443");
        assert_eq!(m.raw_path(), b"/x?y=1");
    }

    #[test]
    fn an_absolute_form_target_goes_in_origin_form_when_the_host_changes() {
        let options = MirrorSettings {
            host_suffix: Some("-shadow".into()),
            ..MirrorSettings::default()
        };
        let p = primary_at("GET", b"http://a.com/x?y=%2F", &[("host", "a.com")]);
        let m = mirror_head(p, false, BackendProtocol::Http1, Shape::of(&options, None));
        assert_eq!(m.headers.get("host").unwrap(), "a.com-shadow");
        assert_eq!(m.raw_path(), b"/x?y=%2F");
        // Host unchanged: the target is sent as the client wrote it.
        let p = primary_at("GET", b"http://a.com/x", &[("host", "a.com")]);
        let m = mirror_head(
            p,
            false,
            BackendProtocol::Http1,
            Shape::of(&MirrorSettings::default(), None),
        );
        assert_eq!(m.raw_path(), b"http://a.com/x");
    }
}
