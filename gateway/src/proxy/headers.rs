//! Headers a proxy adds or drops on its own: `X-Forwarded-*` and hop-by-hop response fields.

use std::net::IpAddr;

use http::header::{CONNECTION, TE, TRAILER, UPGRADE};
use http::{HeaderMap, HeaderName};
use pingora_http::{RequestHeader, ResponseHeader};

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Appends the client to `X-Forwarded-For` (keeping what earlier proxies wrote) and states the
/// scheme and host the client used. Proto and host are overwritten: this gateway is where the
/// client's connection ends, so what it saw is the truth for the backend.
pub fn set_forwarded(
    req: &mut RequestHeader,
    client: Option<IpAddr>,
    https: bool,
    original_host: Option<&str>,
) -> pingora_error::Result<()> {
    if let Some(ip) = client {
        let mut chain = joined(&req.headers, &X_FORWARDED_FOR);
        if !chain.is_empty() {
            chain.push_str(", ");
        }
        chain.push_str(&ip.to_string());
        req.insert_header(X_FORWARDED_FOR, chain)?;
    }
    req.insert_header(X_FORWARDED_PROTO, if https { "https" } else { "http" })?;
    if let Some(host) = original_host {
        req.insert_header(X_FORWARDED_HOST, host)?;
    }
    Ok(())
}

fn joined(headers: &HeaderMap, name: &HeaderName) -> String {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    values.join(", ")
}

/// Drops the connection-specific fields of a backend's response (RFC 9110 §7.6.1): those named
/// in `Connection`, then `Connection`, `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`, and
/// `Upgrade` unless the backend is switching protocols (a WebSocket handshake needs both).
/// Pingora writes its own `Connection` and framing headers downstream.
pub fn strip_hop_by_hop(resp: &mut ResponseHeader) {
    let switching = resp.status.as_u16() == 101;
    let nominated: Vec<HeaderName> = resp
        .headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .filter(|n| !(switching && (*n == UPGRADE)))
        .collect();
    for name in &nominated {
        resp.remove_header(name);
    }
    for name in [KEEP_ALIVE, PROXY_CONNECTION, TE, TRAILER] {
        resp.remove_header(&name);
    }
    if !switching {
        resp.remove_header(&CONNECTION);
        resp.remove_header(&UPGRADE);
    }
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
            Some("Example.com:8080"),
        )
        .unwrap();
        let get = |n: &HeaderName| req.headers.get(n).unwrap().to_str().unwrap().to_string();
        assert_eq!(get(&X_FORWARDED_FOR), "10.0.0.1, 192.0.2.7");
        assert_eq!(get(&X_FORWARDED_PROTO), "http");
        assert_eq!(get(&X_FORWARDED_HOST), "Example.com:8080");
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
    fn switching_protocols_keeps_upgrade_and_connection() {
        let mut resp = ResponseHeader::build(101, None).unwrap();
        resp.append_header("connection", "Upgrade").unwrap();
        resp.append_header("upgrade", "websocket").unwrap();
        strip_hop_by_hop(&mut resp);
        assert!(resp.headers.get("upgrade").is_some());
        assert!(resp.headers.get("connection").is_some());
    }
}
