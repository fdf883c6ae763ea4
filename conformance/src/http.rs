//! HTTP traffic of a case (FORMAT.md §4.3): building and sending one request to a Gateway over real sockets.

mod check;
mod h2;
pub(crate) mod tls;
pub(crate) mod traffic;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue, HOST};
use serde::Deserialize;

use crate::case::{HttpRequest, Protocol};
use crate::error_chain;

pub use check::{check_response, Captured, Verdict};
pub use traffic::{run_entry, EntryContext, PodLog};

/// Every attempt's own deadline (§4.2).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot build the HTTP client")]
    Build(#[source] reqwest::Error),
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// TLS material a request needs, already resolved from the case's Secrets/ConfigMaps.
#[derive(Debug, Clone, Default)]
pub struct TlsMaterial {
    pub server_name: Option<String>,
    pub trust_pem: Option<String>,
    /// Certificate and key PEM presented when the server asks for a client certificate.
    pub client_identity: Option<(String, String)>,
}

/// One HTTP request entry bound to its target, able to send as many attempts as needed.
pub struct Sender {
    client: reqwest::Client,
    /// H2 requests go out on their own connections, as Go's client sends them ([`h2`]).
    h2: Option<h2::H2Client>,
    request: HttpRequest,
    target: SocketAddr,
    scheme: &'static str,
    url_host: String,
    /// Some handshake of this sender was asked for a client certificate.
    client_cert_requested: Arc<AtomicBool>,
}

/// What came back from one send.
#[derive(Debug, Clone)]
pub struct Received {
    pub status: u16,
    /// `HTTP/1.1`, `HTTP/2.0`: how Go's `Response.Proto` spells it, which `expect.protocol` compares.
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

#[derive(Debug, Clone)]
pub struct Sent {
    pub method: String,
    pub path: String,
    pub host: String,
    pub headers: Vec<(String, String)>,
}

impl std::fmt::Display for Sent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} Host: {}", self.method, self.path, self.host)?;
        for (name, value) in &self.headers {
            write!(f, ", {name}: {value}")?;
        }
        Ok(())
    }
}

// === impl Sender ===

impl Sender {
    pub fn new(
        request: &HttpRequest,
        target: SocketAddr,
        tls: &TlsMaterial,
    ) -> Result<Self, ClientError> {
        let secure = matches!(request.protocol, Protocol::Https | Protocol::H2);
        let scheme = if secure { "https" } else { "http" };
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(0)
            .no_proxy()
            .timeout(ATTEMPT_TIMEOUT)
            .user_agent("Go-http-client/1.1");
        builder = match request.protocol {
            Protocol::Http | Protocol::Https => builder.http1_only(),
            Protocol::H2 | Protocol::H2cPriorKnowledge => builder.http2_prior_knowledge(),
        };
        let mut h2 = None;
        // The URL names the gateway by its IP unless TLS needs a server name for SNI and verification.
        let url_host = match (&tls.server_name, secure) {
            (Some(name), true) => {
                builder = builder.resolve(name, target);
                name.clone()
            }
            _ => bracket_ip(target),
        };
        let client_cert_requested = Arc::new(AtomicBool::new(false));
        if secure {
            let alpn: &[u8] = if request.protocol == Protocol::H2 {
                b"h2"
            } else {
                b"http/1.1"
            };
            let identity = tls
                .client_identity
                .as_ref()
                .map(|(c, k)| (c.as_str(), k.as_str()));
            let config = tls::client_config(
                tls.trust_pem.as_deref(),
                identity,
                alpn,
                client_cert_requested.clone(),
            )?;
            if request.protocol == Protocol::H2 {
                let server_name = match &tls.server_name {
                    Some(name) => rustls::pki_types::ServerName::try_from(name.clone())
                        .map_err(|e| ClientError::Invalid(format!("serverName {name}: {e}")))?,
                    None => rustls::pki_types::ServerName::from(target.ip()),
                };
                h2 = Some(h2::H2Client {
                    target,
                    config: std::sync::Arc::new(config.clone()),
                    server_name,
                });
            }
            builder = builder.use_preconfigured_tls(config);
        }
        Ok(Sender {
            client: builder.build().map_err(ClientError::Build)?,
            h2,
            request: request.clone(),
            target,
            scheme,
            url_host,
            client_cert_requested,
        })
    }

    /// Some TLS handshake of this sender so far was asked for a client certificate.
    pub fn client_cert_requested(&self) -> bool {
        self.client_cert_requested.load(Ordering::Relaxed)
    }

    /// Sends once with `path` (already carrying request id / uuid substitutions).
    pub async fn send(&self, path: &str) -> (Sent, Result<Received, String>) {
        let default_port = if self.scheme == "https" { 443 } else { 80 };
        let dialled = if self.target.port() == default_port {
            bracket_ip(self.target)
        } else {
            format!("{}:{}", bracket_ip(self.target), self.target.port())
        };
        let host = self.request.host.clone().unwrap_or(dialled);
        let mut headers: BTreeMap<String, String> = self
            .request
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        let set_headers: Vec<String> = self
            .request
            .backend_set_response_headers
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect();
        headers
            .entry("x-echo-set-header".to_owned())
            .or_insert_with(|| set_headers.join(","));
        if self.request.jitter && rand::random::<bool>() {
            headers.insert(
                "x-jitter".to_owned(),
                rand::random_range(0..10_000u32).to_string(),
            );
        }
        let h1 = matches!(self.request.protocol, Protocol::Http | Protocol::Https);
        let sent = Sent {
            method: self.request.method.clone(),
            path: path.to_owned(),
            host: host.clone(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        let result = self.send_inner(path, &host, &headers, h1).await;
        (sent, result)
    }

    async fn send_inner(
        &self,
        path: &str,
        host: &str,
        headers: &BTreeMap<String, String>,
        h1: bool,
    ) -> Result<Received, String> {
        let path = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        let url = format!(
            "{}://{}:{}{}",
            self.scheme,
            self.url_host,
            self.target.port(),
            path
        );
        let method =
            http::Method::from_bytes(self.request.method.as_bytes()).map_err(|e| e.to_string())?;
        let mut header_map = http::HeaderMap::new();
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| format!("header {name}: {e}"))?;
            let value = HeaderValue::from_str(value).map_err(|e| format!("header {name}: {e}"))?;
            header_map.append(name, value);
        }
        header_map
            .entry(http::header::ACCEPT_ENCODING)
            .or_insert(HeaderValue::from_static("gzip"));
        if let Some(h2) = &self.h2 {
            // Go sends the request's host verbatim as :authority.
            return tokio::time::timeout(
                ATTEMPT_TIMEOUT,
                h2.send(h2::H2Request {
                    method,
                    authority: host,
                    path: &path,
                    headers: header_map,
                    body: self.request.body.clone(),
                }),
            )
            .await
            .map_err(|_| "timed out after 10s".to_owned())?;
        }
        let mut builder = self.client.request(method, &url);
        header_map.insert(
            HOST,
            HeaderValue::from_str(host).map_err(|e| format!("host {host}: {e}"))?,
        );
        if h1 {
            header_map.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        builder = builder.headers(header_map);
        if let Some(body) = &self.request.body {
            builder = builder.body(body.clone());
        }
        let response = tokio::time::timeout(ATTEMPT_TIMEOUT, builder.send())
            .await
            .map_err(|_| "timed out after 10s".to_owned())?
            .map_err(|e| error_chain(&e))?;
        let status = response.status().as_u16();
        let version = format!("{:?}", response.version());
        let headers = header_pairs(response.headers());
        let body = tokio::time::timeout(ATTEMPT_TIMEOUT, response.text())
            .await
            .map_err(|_| "timed out reading the body".to_owned())?
            .map_err(|e| error_chain(&e))?;
        Ok(Received {
            status,
            version,
            headers,
            body,
        })
    }
}

/// A response's fields as the checks read them: names lower-case, values lossily UTF-8.
fn header_pairs(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

fn bracket_ip(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(v4) => v4.ip().to_string(),
        SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
    }
}

/// The echo JSON of §2.1, as far as the checks read it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EchoJson {
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub method: String,
    #[serde(default)]
    pub headers: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub pod: String,
    #[serde(default)]
    pub http_port: String,
    pub tls: Option<EchoTls>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EchoTls {
    #[serde(default)]
    pub server_name: String,
    #[serde(default)]
    pub peer_certificates: Vec<String>,
}

/// Adds `gateway-api-conformance-request-id=<id>` to a path's query, re-encoded the way Go's
/// `url.Values.Encode` does (keys sorted, values query-escaped).
pub fn with_request_id(path: &str, id: &str) -> String {
    let (base, query) = path.split_once('?').unwrap_or((path, ""));
    let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        values
            .entry(k.into_owned())
            .or_default()
            .push(v.into_owned());
    }
    values
        .entry("gateway-api-conformance-request-id".to_owned())
        .or_default()
        .push(id.to_owned());
    let encoded: Vec<String> = values
        .iter()
        .flat_map(|(k, vs)| {
            vs.iter()
                .map(move |v| format!("{}={}", go_query_escape(k), go_query_escape(v)))
        })
        .collect();
    format!("{base}?{}", encoded.join("&"))
}

fn go_query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_id_merges_into_the_query_sorted() {
        assert_eq!(
            with_request_id("/mirror", "abc"),
            "/mirror?gateway-api-conformance-request-id=abc"
        );
        assert_eq!(
            with_request_id("/p?z=1&a=b c", "id"),
            "/p?a=b+c&gateway-api-conformance-request-id=id&z=1"
        );
    }
}
