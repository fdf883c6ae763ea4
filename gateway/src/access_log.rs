//! The access log: one `sluice::access` line per client request and per mirror copy, with one
//! schema for both (docs/logging.md).

use std::net::SocketAddr;
use std::time::Duration;

use http::HeaderMap;
use pingora_http::RequestHeader;

/// The target of every access line: filter them with `--log-level sluice::access=off`.
pub const TARGET: &str = "sluice::access";

/// The header a request id travels in, to the backend and to mirror copies.
pub const REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// Whether access lines are written at all (`--log-level sluice::access=off` turns them off):
/// when they are not, nothing is gathered for them.
pub fn enabled() -> bool {
    tracing::enabled!(target: TARGET, tracing::Level::INFO)
}

/// How access lines are written: the `--access-log-*` flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccessLogSettings {
    /// Log `query` as "" (a query may carry tokens or personal data).
    pub omit_query: bool,
}

/// The request side of a line, read from the head: the client's view for a primary line,
/// the copy's head for a mirror line.
#[derive(Debug, Clone, Default)]
pub struct RequestFields {
    pub method: String,
    pub host: String,
    pub path: String,
    pub query: String,
    pub user_agent: String,
    pub request_id: String,
}

impl RequestFields {
    /// `host` is given apart: a primary logs the client's Host (or `:authority`), before any
    /// rewrite.
    pub fn of(
        head: &RequestHeader,
        uri: &http::Uri,
        host: &str,
        settings: AccessLogSettings,
    ) -> RequestFields {
        let query = match (settings.omit_query, uri.query()) {
            (false, Some(q)) => q.to_string(),
            _ => String::new(),
        };
        RequestFields {
            method: head.method.as_str().to_string(),
            host: host.to_string(),
            path: uri.path().to_string(),
            query,
            user_agent: header_text(&head.headers, http::header::USER_AGENT).to_string(),
            request_id: header_text(&head.headers, REQUEST_ID).to_string(),
        }
    }
}

/// A header's value as text; "" when absent or not visible ASCII.
pub fn header_text(headers: &HeaderMap, name: impl http::header::AsHeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// `HTTP/1.1`, `HTTP/2`, as logged.
pub fn protocol_name(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// Fields only one kind of line has, written only when set.
#[derive(Debug, Default)]
pub struct Extra<'a> {
    /// Primary: `namespace/name` of the Gateway that accepted the request.
    pub gateway: Option<&'a str>,
    /// Primary: the matched route's kind.
    pub kind: Option<&'a str>,
    pub grpc_status: Option<u32>,
    /// Primary: retries the rule's policy asked for.
    pub retries: Option<u32>,
    pub error: Option<String>,
    /// Mirror: how the copy ended (the `outcome` label of `sluice_mirror_requests_total`).
    pub outcome: Option<&'a str>,
}

/// One access line. Every field is written on every line with the same name and type; one that
/// does not apply is "" or 0 (docs/logging.md says which).
#[derive(Debug)]
pub struct AccessLine<'a> {
    pub mirror: bool,
    pub client: Option<SocketAddr>,
    pub request: &'a RequestFields,
    pub protocol: &'static str,
    /// 0 when no response was written (the client went away first, or a copy got no answer).
    pub status: u16,
    pub route: &'a str,
    /// The rule's name, else its index in the route's `spec.rules`; "" without a route.
    pub rule: &'a str,
    pub backend: &'a str,
    pub upstream: Option<SocketAddr>,
    /// Request body bytes read from the client (a copy: sent to the mirror).
    pub bytes_in: u64,
    /// Response body bytes sent to the client (a copy: 0, its answer is discarded).
    pub bytes_out: u64,
    pub duration: Duration,
    /// From the first upstream attempt to the end of the backend's answer; 0 when no backend
    /// was tried.
    pub upstream_duration: Duration,
    pub extra: Extra<'a>,
}

impl AccessLine<'_> {
    pub fn emit(&self) {
        let r = self.request;
        let client = self.client.map(|a| a.to_string()).unwrap_or_default();
        let upstream = self.upstream.map(|a| a.to_string()).unwrap_or_default();
        let e = &self.extra;
        tracing::info!(
            target: TARGET,
            mirror = self.mirror,
            client_address = client.as_str(),
            method = r.method.as_str(),
            host = r.host.as_str(),
            path = r.path.as_str(),
            query = r.query.as_str(),
            protocol = self.protocol,
            status = self.status,
            route = self.route,
            rule = self.rule,
            backend = self.backend,
            upstream_address = upstream.as_str(),
            bytes_in = self.bytes_in,
            bytes_out = self.bytes_out,
            duration_us = micros(self.duration),
            upstream_duration_us = micros(self.upstream_duration),
            user_agent = r.user_agent.as_str(),
            request_id = r.request_id.as_str(),
            gateway = e.gateway,
            kind = e.kind,
            grpc_status = e.grpc_status,
            retries = e.retries,
            error = e.error.as_deref(),
            outcome = e.outcome,
            "{}",
            if self.mirror { "mirror" } else { "request" }
        );
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
