//! One request to an echo pod: echo-basic's routing (`/health`, `/status/NNN`, `/retry/...`, echo) and answers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST};
use http::{Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{parse_go_duration, BodyMode, EchoPod, ReceivedRequest, TlsInfo};

// Larger bodies are refused rather than buffered: nothing in the suite sends more.
const MAX_BODY: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PortKind {
    Http,
    H2c,
    Https,
}

/// Per-connection facts every request on it shares.
#[derive(Clone)]
pub(super) struct ConnInfo {
    pub remote: SocketAddr,
    pub kind: PortKind,
    pub tls: Option<Arc<TlsInfo>>,
    /// Set when the retry simulator wants the connection reset instead of answered.
    pub abort: Arc<AtomicBool>,
}

/// Returned to hyper to make it drop the connection without a response (the retry simulator's failure mode).
#[derive(Debug, thiserror::Error)]
#[error("connection aborted by the retry simulator")]
pub(super) struct Abort;

type Reply = Response<Full<Bytes>>;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EchoBody<'a> {
    path: &'a str,
    host: &'a str,
    method: &'a str,
    proto: &'a str,
    headers: BTreeMap<String, Vec<String>>,
    http_port: &'a str,
    namespace: &'a str,
    ingress: &'a str,
    service: &'a str,
    pod: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<&'a TlsInfo>,
}

pub(super) async fn handle(
    pod: Arc<EchoPod>,
    conn: ConnInfo,
    req: Request<Incoming>,
) -> Result<Reply, Abort> {
    if req.uri().path().replace("//", "/") == "/ws" {
        let received = ReceivedRequest {
            at: std::time::Instant::now(),
            remote: conn.remote,
            method: req.method().to_string(),
            uri: req
                .uri()
                .path_and_query()
                .map(|pq| pq.as_str().to_owned())
                .unwrap_or_default(),
            host: header_text(req.headers(), HOST).unwrap_or_default(),
            proto: proto_name(req.version()).to_owned(),
            headers: header_list(req.headers()),
            body_len: 0,
            body_sha256: hex(&Sha256::digest(b"")),
            echoed: false,
        };
        if pod.print {
            print_head(&pod, &received);
        }
        pod.log.record(received);
        return Ok(super::websocket::accept(req));
    }
    let (head, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            return Ok(text(
                StatusCode::BAD_REQUEST,
                format!("cannot read request body: {error}"),
            ))
        }
    };
    let uri = head
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_else(|| head.uri.to_string());
    let host = head
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| head.uri.authority().map(|a| a.as_str().to_owned()))
        .unwrap_or_default();
    let route_path = head.uri.path().replace("//", "/");
    let is_echo = !(route_path == "/health"
        || route_path.starts_with("/status/")
        || route_path.starts_with("/retry/"));
    let h2c_rejected = conn.kind == PortKind::H2c
        && head.version != Version::HTTP_2
        && !head
            .headers
            .get_all(http::header::UPGRADE)
            .iter()
            .any(|v| v.as_bytes().eq_ignore_ascii_case(b"h2c"));

    let received = ReceivedRequest {
        at: std::time::Instant::now(),
        remote: conn.remote,
        method: head.method.to_string(),
        uri: uri.clone(),
        host: host.clone(),
        proto: proto_name(head.version).to_owned(),
        headers: header_list(&head.headers),
        body_len: body.len(),
        body_sha256: hex(&Sha256::digest(&body)),
        echoed: is_echo && !h2c_rejected,
    };
    if pod.print {
        print_head(&pod, &received);
    }
    pod.log.record(received);

    if h2c_rejected {
        return Ok(text(
            StatusCode::BAD_REQUEST,
            "Expected h2c request".to_owned(),
        ));
    }
    if let Some(status) = super::status_override::status_for(&pod.status_overrides, &route_path) {
        let mut reply = echo_reply(&pod, &conn, &head, &uri, &host);
        *reply.status_mut() = status;
        return Ok(reply);
    }
    if route_path == "/health" {
        return Ok(text(StatusCode::OK, "OK".to_owned()));
    }
    if route_path.starts_with("/status/") {
        return Ok(status_reply(&uri));
    }
    let query = query_pairs(head.uri.query());
    if route_path.starts_with("/retry/") {
        match retry_step(&pod, &query).await {
            RetryStep::Echo => {}
            RetryStep::Reply(reply) => return Ok(reply),
            RetryStep::Abort => {
                conn.abort.store(true, Ordering::Release);
                return Err(Abort);
            }
        }
    }
    if let Some(delay) = query.get("delay") {
        match parse_go_duration(delay) {
            Ok(delay) => tokio::time::sleep(delay).await,
            Err(error) => return Ok(text(StatusCode::BAD_REQUEST, error.to_string())),
        }
    }
    if pod.body_mode == BodyMode::EchoBody && !body.is_empty() {
        let mut reply = Response::new(Full::new(body));
        if let Some(content_type) = head.headers.get(CONTENT_TYPE) {
            reply
                .headers_mut()
                .insert(CONTENT_TYPE, content_type.clone());
        }
        return Ok(reply);
    }
    Ok(echo_reply(&pod, &conn, &head, &uri, &host))
}

fn echo_reply(
    pod: &EchoPod,
    conn: &ConnInfo,
    head: &http::request::Parts,
    uri: &str,
    host: &str,
) -> Reply {
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in head.headers.iter().filter(|(name, _)| *name != HOST) {
        headers
            .entry(canonical_header_key(name.as_str()))
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    let identity = &pod.identity;
    let body = EchoBody {
        path: uri,
        host,
        method: head.method.as_str(),
        proto: proto_name(head.version),
        headers,
        http_port: &identity.http_port,
        namespace: &identity.namespace,
        ingress: &identity.ingress,
        service: &identity.service,
        pod: &identity.pod,
        tls: conn.tls.as_deref(),
    };
    let mut json = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b" ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut json, formatter);
    if let Err(error) = body.serialize(&mut serializer) {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode echo body: {error}"),
        );
    }
    let mut reply = Response::new(Full::new(Bytes::from(json)));
    let reply_headers = reply.headers_mut();
    reply_headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    reply_headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    for (name, value) in requested_response_headers(head) {
        reply_headers.append(name, value);
    }
    reply
}

/// `X-Echo-Set-Header: Name:value, Other:value`: a repeated name appends `,value` to the first value.
fn requested_response_headers(head: &http::request::Parts) -> Vec<(HeaderName, HeaderValue)> {
    let mut wanted: Vec<(HeaderName, String)> = Vec::new();
    for raw in head.headers.get_all("x-echo-set-header") {
        let Ok(raw) = raw.to_str() else { continue };
        for item in raw.split(',') {
            let Some((name, value)) = item.trim().split_once(':') else {
                continue;
            };
            let Ok(name) = HeaderName::from_bytes(name.trim().as_bytes()) else {
                continue;
            };
            let value = value.trim();
            match wanted.iter_mut().find(|(existing, _)| *existing == name) {
                Some((_, joined)) => {
                    joined.push(',');
                    joined.push_str(value);
                }
                None => wanted.push((name, value.to_owned())),
            }
        }
    }
    wanted
        .into_iter()
        .filter_map(|(name, value)| {
            HeaderValue::from_str(&value)
                .ok()
                .map(|value| (name, value))
        })
        .collect()
}

fn status_reply(uri: &str) -> Reply {
    let code = uri
        .strip_prefix("/status/")
        .filter(|digits| digits.len() == 3 && digits.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|digits| digits.parse::<u16>().ok())
        .and_then(|code| StatusCode::from_u16(code).ok());
    match code {
        Some(code) => empty(code),
        None => empty(StatusCode::BAD_REQUEST),
    }
}

enum RetryStep {
    Echo,
    Reply(Reply),
    Abort,
}

async fn retry_step(pod: &EchoPod, query: &BTreeMap<String, String>) -> RetryStep {
    let Some(uuid) = query.get("uuid").filter(|u| !u.is_empty()) else {
        return RetryStep::Reply(text(StatusCode::BAD_REQUEST, "missing uuid".to_owned()));
    };
    let Some(succeed_after) = query
        .get("succeedAfter")
        .and_then(|n| n.parse::<u64>().ok())
    else {
        return RetryStep::Reply(text(
            StatusCode::BAD_REQUEST,
            "succeedAfter must be an integer".to_owned(),
        ));
    };
    let response_code = match query
        .get("responseCode")
        .map(|c| c.parse::<u16>().map(StatusCode::from_u16))
    {
        None => None,
        Some(Ok(Ok(code))) => Some(code),
        Some(_) => {
            return RetryStep::Reply(text(
                StatusCode::BAD_REQUEST,
                "invalid responseCode".to_owned(),
            ))
        }
    };
    let delay = match query.get("delayRetry").map(|d| parse_go_duration(d)) {
        None => None,
        Some(Ok(delay)) => Some(delay),
        Some(Err(error)) => {
            return RetryStep::Reply(text(StatusCode::BAD_REQUEST, error.to_string()))
        }
    };
    if !pod.retry_should_fail(uuid, succeed_after) {
        return RetryStep::Echo;
    }
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    match response_code {
        Some(code) => RetryStep::Reply(empty(code)),
        None => RetryStep::Abort,
    }
}

/// First value per key, as Go's `url.Query().Get` would see it.
fn query_pairs(query: Option<&str>) -> BTreeMap<String, String> {
    let mut pairs = BTreeMap::new();
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        pairs
            .entry(key.into_owned())
            .or_insert_with(|| value.into_owned());
    }
    pairs
}

/// Go's `textproto.CanonicalMIMEHeaderKey`: `x-forwarded-for` -> `X-Forwarded-For`; names with bytes outside
/// the token set are left alone.
pub(crate) fn canonical_header_key(name: &str) -> String {
    let valid = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !valid {
        return name.to_owned();
    }
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

fn proto_name(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// Each line starts with `[pod]` so that several backends sharing one terminal (the demo) can be
/// told apart.
fn print_head(echo: &EchoPod, request: &ReceivedRequest) {
    let pod = &echo.identity.pod;
    if request.echoed {
        echo.say(&format!("[{pod}] {}", request.echo_line()));
    }
    let field = |name: &str| request.header_values(name).collect::<Vec<_>>().join(",");
    echo.say(&format!(
        "[{pod}] {} {} {} host={} user-agent={:?} content-type={:?} content-length={} x-forwarded-for={:?} body-bytes={}",
        request.method,
        request.uri,
        request.proto,
        request.host,
        field("user-agent"),
        field("content-type"),
        field("content-length"),
        field("x-forwarded-for"),
        request.body_len,
    ));
}

fn header_list(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

fn header_text(headers: &http::HeaderMap, name: HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(status: StatusCode, body: String) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from(body)));
    *reply.status_mut() = status;
    reply.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    reply
}

fn empty(status: StatusCode) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::new()));
    *reply.status_mut() = status;
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_keys_match_go() {
        assert_eq!(canonical_header_key("x-forwarded-for"), "X-Forwarded-For");
        assert_eq!(canonical_header_key("USER-AGENT"), "User-Agent");
        assert_eq!(canonical_header_key("x_y"), "X_y");
        assert_eq!(canonical_header_key("bad name"), "bad name");
    }

    #[test]
    fn status_path_needs_exactly_three_digits() {
        for (path, want) in [
            ("/status/503", StatusCode::SERVICE_UNAVAILABLE),
            ("/status/5030", StatusCode::BAD_REQUEST),
            ("/status/abc", StatusCode::BAD_REQUEST),
            ("/status/503?x=1", StatusCode::BAD_REQUEST),
        ] {
            assert_eq!(status_reply(path).status(), want, "{path}");
        }
    }

    #[test]
    fn set_header_items_split_and_merge() {
        let req = Request::builder()
            .header("x-echo-set-header", "X-Foo: a, x-bar:b:c,X-Foo:d")
            .header("x-echo-set-header", "")
            .body(())
            .expect("request");
        let (head, ()) = req.into_parts();
        let got: Vec<(String, String)> = requested_response_headers(&head)
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        assert_eq!(
            got,
            [
                ("x-foo".to_owned(), "a,d".to_owned()),
                ("x-bar".to_owned(), "b:c".to_owned())
            ]
        );
    }
}
