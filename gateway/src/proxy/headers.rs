//! Headers a proxy adds or drops on its own: `X-Forwarded-*` and hop-by-hop response fields.

use std::net::IpAddr;

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue};
use pingora_http::{RequestHeader, ResponseHeader};

use crate::http_fields::list_elements;

pub(super) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

// Pingora keeps each header's wire spelling beside the map and derives it from a `HeaderName`
// by allocating a title-cased copy per insert; a static spelling costs nothing. These, and the
// static values below, took set_forwarded from 7.5 k to about 2 k instructions per request.
const X_FORWARDED_FOR_WIRE: &[u8] = b"X-Forwarded-For";
const X_FORWARDED_PROTO_WIRE: &[u8] = b"X-Forwarded-Proto";
const X_FORWARDED_HOST_WIRE: &[u8] = b"X-Forwarded-Host";

/// Appends the client to `X-Forwarded-For` (keeping what earlier proxies wrote) and states the
/// scheme and host the client used. Proto and host are overwritten: this gateway is where the
/// client's connection ends, so what it saw is the truth for the backend.
pub(super) fn set_forwarded(
    req: &mut RequestHeader,
    client: Option<IpAddr>,
    https: bool,
    original_host: Option<&HeaderValue>,
) -> pingora_error::Result<()> {
    if let Some(ip) = client {
        let chain = forwarded_for(&req.headers, ip);
        req.insert_header(Bytes::from_static(X_FORWARDED_FOR_WIRE), chain)?;
    }
    let proto = HeaderValue::from_static(if https { "https" } else { "http" });
    req.insert_header(Bytes::from_static(X_FORWARDED_PROTO_WIRE), proto)?;
    if let Some(host) = original_host {
        req.insert_header(Bytes::from_static(X_FORWARDED_HOST_WIRE), host.clone())?;
    }
    Ok(())
}

/// The existing `X-Forwarded-For` values joined by `, `, then `ip`.
fn forwarded_for(headers: &HeaderMap, ip: IpAddr) -> HeaderValue {
    let mut chain = BytesMut::with_capacity(48);
    for v in headers.get_all(&X_FORWARDED_FOR) {
        chain.extend_from_slice(v.as_bytes());
        chain.extend_from_slice(b", ");
    }
    push_ip(&mut chain, ip);
    // Existing values were valid header values and an address is ASCII digits, dots and colons,
    // so this cannot fail; if it ever did, the address alone is still the truth.
    HeaderValue::from_maybe_shared(chain.freeze()).unwrap_or_else(|_| {
        let mut alone = BytesMut::with_capacity(39);
        push_ip(&mut alone, ip);
        HeaderValue::from_maybe_shared(alone.freeze()).unwrap_or(HeaderValue::from_static(""))
    })
}

/// Dotted decimal without `fmt` (its machinery was 1.3 k instructions per request).
fn push_ip(out: &mut BytesMut, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b".");
                }
                if octet >= 100 {
                    out.extend_from_slice(&[b'0' + octet / 100]);
                }
                if octet >= 10 {
                    out.extend_from_slice(&[b'0' + octet / 10 % 10]);
                }
                out.extend_from_slice(&[b'0' + octet % 10]);
            }
        }
        IpAddr::V6(v6) => {
            use std::fmt::Write;
            let mut text = String::with_capacity(39);
            // Writing to a String cannot fail.
            let _ = write!(text, "{v6}");
            out.extend_from_slice(text.as_bytes());
        }
    }
}

/// Drops the connection-specific fields of a backend's response (RFC 9110 §7.6.1): those named
/// in `Connection`, then `Connection`, `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`, and
/// `Upgrade` unless the backend is switching protocols (a WebSocket handshake needs both).
/// Pingora writes its own `Connection` and framing headers downstream.
pub(super) fn strip_hop_by_hop(resp: &mut ResponseHeader) {
    // A response holds a handful of fields and usually one of these (`Connection: keep-alive`):
    // one pass over the names present finds what to drop, and only those are removed (each
    // removal hashes the name in two maps; removing the seven absent ones was 1.2 k instructions
    // a request). Names are compared as strings and `Connection` is looked up once: building
    // the list of names and hashing `Connection` again for every field present cost another
    // 0.7 k.
    if !resp.headers.keys().any(is_hop_by_hop) {
        return;
    }
    let switching = resp.status.as_u16() == 101;
    let kept_when_switching = |n: &HeaderName| switching && (*n == UPGRADE || *n == CONNECTION);
    let connection = resp.headers.get_all(CONNECTION);
    // Listed in `Connection` (compared without parsing the tokens into names); `Upgrade` stays
    // on a 101.
    let nominated = |n: &HeaderName| {
        !(switching && *n == UPGRADE)
            && connection.iter().any(|v| {
                list_elements(v.as_bytes()).any(|t| t.eq_ignore_ascii_case(n.as_str().as_bytes()))
            })
    };
    // `keys()` yields each name once.
    let drop: Vec<HeaderName> = resp
        .headers
        .keys()
        .filter(|n| (is_hop_by_hop(n) && !kept_when_switching(n)) || nominated(n))
        .cloned()
        .collect();
    for name in &drop {
        resp.remove_header(name);
    }
}

/// The fields that are connection-specific whatever `Connection` says.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "te" | "trailer" | "upgrade" | "keep-alive" | "proxy-connection"
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_appends_to_an_existing_chain() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("x-forwarded-for", "10.0.0.1").unwrap();
        req.append_header("x-forwarded-proto", "https").unwrap();
        set_forwarded(
            &mut req,
            "192.0.2.7".parse().ok(),
            false,
            Some(&HeaderValue::from_static("Example.com:8080")),
        )
        .unwrap();
        let get = |n: &str| req.headers.get(n).unwrap().to_str().unwrap().to_string();
        assert_eq!(get("x-forwarded-for"), "10.0.0.1, 192.0.2.7");
        assert_eq!(get("x-forwarded-proto"), "http");
        assert_eq!(get("x-forwarded-host"), "Example.com:8080");
    }

    #[test]
    fn forwarded_for_spells_every_address_as_display_does() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.3.255",
            "192.168.100.9",
            "::1",
            "2001:db8::8a2e:370:7334",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let value = forwarded_for(&HeaderMap::new(), ip);
            assert_eq!(value.to_str().unwrap(), ip.to_string());
        }
    }

    #[test]
    fn forwarded_headers_go_out_with_their_usual_spelling() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("x-forwarded-for", "10.0.0.1").unwrap();
        set_forwarded(&mut req, "192.0.2.7".parse().ok(), true, None).unwrap();
        let mut wire = Vec::new();
        req.header_to_h1_wire(&mut wire);
        let wire = String::from_utf8(wire).unwrap();
        assert!(
            wire.contains("X-Forwarded-For: 10.0.0.1, 192.0.2.7\r\n"),
            "{wire}"
        );
        assert!(wire.contains("X-Forwarded-Proto: https\r\n"), "{wire}");
    }

    #[test]
    fn a_response_without_hop_by_hop_fields_is_left_as_is() {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.append_header("content-type", "text/plain").unwrap();
        resp.append_header("x-end-to-end", "kept").unwrap();
        strip_hop_by_hop(&mut resp);
        let names: Vec<_> = resp.headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["content-type", "x-end-to-end"]);
    }

    #[test]
    fn hop_by_hop_response_headers_are_dropped() {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        for (k, v) in [
            ("connection", "keep-alive, x-private"),
            ("x-private", "secret"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("upgrade", "h2c"),
            ("x-end-to-end", "kept"),
        ] {
            resp.append_header(k, v).unwrap();
        }
        strip_hop_by_hop(&mut resp);
        let names: Vec<_> = resp.headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-end-to-end"]);
    }

    #[test]
    fn a_field_nominated_by_connection_is_dropped_whatever_its_case() {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        for (k, v) in [
            ("connection", "close"),
            ("connection", " X-Private ,x-other"),
            ("x-private", "secret"),
            ("x-other", "secret"),
            ("content-type", "text/plain"),
        ] {
            resp.append_header(k, v).unwrap();
        }
        strip_hop_by_hop(&mut resp);
        let names: Vec<_> = resp.headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["content-type"]);
    }

    #[test]
    fn a_nominated_field_the_response_lacks_is_no_error() {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.append_header("connection", "keep-alive, x-absent")
            .unwrap();
        resp.append_header("content-length", "2").unwrap();
        strip_hop_by_hop(&mut resp);
        let names: Vec<_> = resp.headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["content-length"]);
    }

    #[test]
    fn switching_protocols_keeps_upgrade_and_connection() {
        let mut resp = ResponseHeader::build(101, None).unwrap();
        resp.append_header("connection", "Upgrade").unwrap();
        resp.append_header("upgrade", "websocket").unwrap();
        strip_hop_by_hop(&mut resp);
        assert!(resp.headers.get("upgrade").is_some());
        assert!(resp.headers.get("connection").is_some());
    }
}
