//! Sluice's `ProxyHttp`: each phase a few lines calling `routing`, `filters`, `mirror`, `upstream`.
//!
//! Phases used (see `docs/request-lifecycle.md`):
//! - `request_filter`: load one snapshot, route, run filters in order (header changes, redirect,
//!   URL rewrite, mirrors), choose the backend. Answers 404 (no route), 500 (no usable or an
//!   invalid backendRef), 503 (no ready endpoint) or the redirect itself.
//! - `upstream_peer`: the chosen endpoint with the route's timeouts; a retry waits its backoff
//!   (within the request timeout) and goes to the same backendRef's next endpoint.
//! - `upstream_request_filter`: `X-Forwarded-*`. Hop-by-hop request fields are stripped by
//!   Pingora's standard upstream request policy (WebSocket upgrades pass through).
//! - `connected_to_upstream`: notes the HTTP/1 upstream socket, so that an answer arriving
//!   before the request body was sent stops the body and keeps the connection out of the pool.
//! - `upstream_response_filter` / `response_filter`: a status the rule's `retry` lists fails the
//!   attempt (so Pingora retries it), then the backend's head goes to compared mirror copies
//!   (shadow diff; its body too, in `upstream_response_body_filter`), then that early-answer
//!   check, hop-by-hop response fields, then the ResponseHeaderModifier filters and the CORS fields of an allowed cross-origin
//!   request (a CORS preflight is answered in `request_filter`).
//! - `fail_to_connect` / `error_while_proxy`: the retry decision (`retrying`).
//! - `fail_to_proxy`: the error status (timeouts → 504).
//! - `logging`: metrics and the access log line.
//!
//! Sluice's own answers, from any phase, are written by `answer`: a gRPC call gets a
//! Trailers-Only response with a `grpc-status` (`crate::grpc`).

mod answer;
mod ctx;
mod headers;
mod refusal;
mod request;
mod request_id;
mod retrying;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use pingora_core::apps::HttpServerOptions;
use pingora_core::protocols::http::v2::server::default_h2_options;
use pingora_core::protocols::l4::socket::SocketAddr as PingoraAddr;
use pingora_core::protocols::Digest;
use pingora_core::server::configuration::ServerConf;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorSource, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, HttpProxy, ProxyHttp, ProxyWarnLogContext, Session};
use sluice_controller::publish::Store;
use sluice_controller::snapshot::{BackendProtocol, Filter};

pub use ctx::RequestCtx;

use crate::access_log::{self, AccessLine, AccessLogSettings, Extra, RequestFields};
use crate::edge::{self, reject::BodyRejected, EdgeLimits, Violation};
use crate::filters;
use crate::grpc;
use crate::metrics::Metrics;
use crate::mirror::{MirrorEngine, Pace};
use crate::transport::Handshake;
use crate::upstream::{self, UpstreamConn, UpstreamSettings};
use answer::{respond_failure, respond_rejection, respond_status, respond_text};
use request::Outcome;

pub type ProxyApp = HttpProxy<SluiceProxy>;

/// The accepted connection carries no socket digest, so its bind cannot be found (500).
const NO_LOCAL_ADDRESS: ErrorType = ErrorType::Custom("NoLocalAddress");
/// upstream_peer ran although request_filter chose no backend (500; a bug if ever seen).
const NO_BACKEND_CHOSEN: ErrorType = ErrorType::Custom("NoBackendChosen");
/// A filter could not be applied to this request (500).
const BAD_FILTER: ErrorType = ErrorType::Custom("FilterFailed");
/// Pingora's default downstream read timeout (`HttpSession::new`).
const PINGORA_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// The route's `timeouts.request` ran out.
const REQUEST_TIMEOUT: ErrorType = ErrorType::HTTPStatus(504);

/// How the proxy app behaves; the defaults are production settings.
#[derive(Clone)]
pub struct ProxySettings {
    pub upstream: UpstreamSettings,
    /// Accept HTTP/2 with prior knowledge (h2c) on plaintext connections, as the Gateway API
    /// expects of an HTTP listener (`HTTPRouteBackendProtocolH2C` sends h2c to the Gateway).
    /// On by default; a connection that does not open with the h2 preface is HTTP/1.1 behind
    /// the edge guard, and h2 on TLS comes through ALPN either way.
    pub downstream_h2c: bool,
    /// Sends copies for `RequestMirror` filters; `None` skips mirrors.
    pub mirror: Option<Arc<MirrorEngine>>,
    /// What one client may cost: sizes, deadlines, the connection cap.
    pub edge: EdgeLimits,
    /// Streams on `TLS` listeners (TLSRoutes): connect and idle timeouts.
    pub tls_routes: crate::tls_route::TlsRouteSettings,
    /// What access lines leave out (`--access-log-omit-query`).
    pub access_log: AccessLogSettings,
}

impl Default for ProxySettings {
    fn default() -> ProxySettings {
        ProxySettings {
            upstream: UpstreamSettings::default(),
            downstream_h2c: true,
            mirror: None,
            edge: EdgeLimits::default(),
            tls_routes: Default::default(),
            access_log: AccessLogSettings::default(),
        }
    }
}

impl std::fmt::Debug for ProxySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxySettings")
            .field("upstream", &self.upstream)
            .field("downstream_h2c", &self.downstream_h2c)
            .field("mirror", &self.mirror.is_some())
            .field("edge", &self.edge)
            .field("access_log", &self.access_log)
            .finish()
    }
}

pub struct SluiceProxy {
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    settings: ProxySettings,
}

/// The Pingora app for our own accept loops: hand each connection to
/// `ServerApp::process_new(stream, &shutdown)`. Plain TCP connections come from
/// [`crate::transport::http_connection`] so the proxy knows which local address (and so which
/// bind) accepted them.
pub fn new_app(store: Arc<Store>, metrics: Arc<Metrics>, settings: ProxySettings) -> Arc<ProxyApp> {
    let conf = ServerConf {
        // Pingora's bound on tries per request: the first, a rule's retries, and one more for
        // a refused connect or a stale pooled connection (retried once, see `fallback_retry`).
        max_retries: settings.upstream.retry.max_retries as usize + 2,
        // Pingora multiplies this by `threads`, which stays 1: the process runs its own runtime.
        upstream_keepalive_pool_size: settings.upstream.pool_size,
        ..ServerConf::default()
    };
    let mut server_options = HttpServerOptions::default();
    server_options.h2c = settings.downstream_h2c;
    server_options.h2_idle_timeout = Some(settings.edge.keepalive_timeout);
    // HTTP/2 frames its own messages: the same header-list cap as HTTP/1, and Pingora's bounded
    // stream count (h2 itself bounds rapid resets and CONTINUATION floods).
    let mut h2 = default_h2_options();
    let header_list = settings.edge.max_header_bytes + settings.edge.max_request_line;
    h2.max_header_list_size(u32::try_from(header_list).unwrap_or(u32::MAX));
    let inner = SluiceProxy {
        store,
        metrics,
        settings,
    };
    // http_proxy runs handle_init_modules, which Pingora's own Service would otherwise do.
    let mut app = pingora_proxy::http_proxy(&Arc::new(conf), inner);
    app.server_options = Some(server_options);
    app.h2_options = Some(h2);
    Arc::new(app)
}

fn inet(addr: Option<&PingoraAddr>) -> Option<SocketAddr> {
    addr.and_then(PingoraAddr::as_inet).copied()
}

// === impl SluiceProxy ===

#[async_trait]
impl ProxyHttp for SluiceProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        ctx.started = Instant::now();
        ctx.request_id = Some(request_id::ensure(session.req_header_mut()));
        ctx.grpc_call = grpc::is_call(session.req_header());
        if let Some(rejection) = edge::rejection(session.req_header().uri.path()) {
            ctx.rejected = Some(rejection.0);
            self.metrics.edge.request_rejected(rejection.0);
            respond_rejection(session, ctx, rejection.0).await?;
            return Ok(true);
        }
        let limits = &self.settings.edge;
        // Pipelined requests are answered one after another, in order (RFC 9112 §9.3.2);
        // without this Pingora drops a request that arrives while the previous one is served.
        session.set_pipelining_enabled(true);
        // Pingora's own per-read timer; left alone at its default (which is ours) so an unchanged
        // limit costs nothing. Keep-alive idleness is timed by the edge guard.
        if limits.client_body_timeout != PINGORA_READ_TIMEOUT {
            session.set_read_timeout(Some(limits.client_body_timeout));
        }
        let expects_continue = session
            .req_header()
            .headers
            .contains_key(http::header::EXPECT)
            && session
                .req_header_mut()
                .remove_header(&http::header::EXPECT)
                .is_some();
        // The one load of the request: everything later phases need is shared out of it.
        let snapshot = self.store.load();
        let Some(local) = inet(session.server_addr()) else {
            return Error::e_explain(NO_LOCAL_ADDRESS, "connection has no local address");
        };
        ctx.https = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        let sni = session
            .digest()
            .and_then(Handshake::of)
            .and_then(|h| h.server_name.clone());
        let outcome = request::route_and_filter(
            session,
            ctx,
            &snapshot,
            local,
            sni.as_deref(),
            self.settings.mirror.as_ref(),
            self.settings.access_log,
        )
        .map_err(|e| Error::because(BAD_FILTER, "applying route filters", e))?;
        if let Some(m) = ctx.mirrors.as_mut() {
            m.compare_into(self.metrics.shadow.clone());
        }
        match outcome {
            Outcome::Proxy => {
                if expects_continue {
                    // Answered here, as nginx does: the upstream and mirrors get no Expect.
                    session.write_continue_response().await?;
                }
                Ok(false)
            }
            Outcome::Status(code) => {
                respond_status(session, ctx, code).await?;
                Ok(true)
            }
            Outcome::Respond(resp) => {
                session.write_response_header(resp, true).await?;
                Ok(true)
            }
            Outcome::Text(code, body) => {
                respond_text(session, ctx, code, body).await?;
                Ok(true)
            }
        }
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(m) = ctx.mirrors.as_mut() {
            if m.on_body_chunk(body.as_ref(), end_of_stream) == Pace::Yield {
                tokio::task::yield_now().await;
            }
        }
        Ok(())
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        // A new attempt has no connection yet; the last one's socket may already be closed and
        // its descriptor reused, so it must not be shut by this attempt's early-answer check.
        ctx.upstream = None;
        ctx.upstream_started.get_or_insert_with(Instant::now);
        if let Some(wait) = ctx.retry_wait.take() {
            // The backoff never outlasts the request timeout: the check below answers 504 then.
            let left = ctx
                .deadline
                .map_or(wait, |d| d.saturating_duration_since(Instant::now()));
            tokio::time::sleep(wait.min(left)).await;
        }
        let Some(chosen) = ctx.chosen.as_mut() else {
            return Error::e_explain(
                NO_BACKEND_CHOSEN,
                "upstream_peer before a backend was chosen",
            );
        };
        if ctx.attempts > 0 {
            // A retry goes to the backend's next endpoint, when it has another.
            if let Some(next) = chosen.backend.pick_endpoint() {
                chosen.endpoint = next;
            }
        }
        ctx.attempts += 1;
        if let Some(m) = ctx.mirrors.as_mut() {
            let h2_backend = chosen.backend.protocol == BackendProtocol::H2c;
            if let Some(why) = refusal::refused_upstream(session.req_header(), h2_backend) {
                // Pingora answers 400 after this phase: the backend never sees the request,
                // so neither does a mirror.
                tracing::debug!(why, "request refused upstream: copies dropped");
                m.on_primary_done();
            }
            // Queued copies go out now that the request is proxied, with the same
            // X-Forwarded-* the primary gets in upstream_request_filter.
            let client = inet(session.client_addr()).map(|a| a.ip());
            let host = ctx.original_host.as_ref();
            m.launch(|head| {
                if let Err(e) = headers::set_forwarded(head, client, ctx.https, host) {
                    tracing::debug!(error = %e, "cannot add X-Forwarded-* to a mirror request");
                }
            });
            m.on_upstream_attempt();
        }
        let now = Instant::now();
        let timeout = ctx.attempt_timeout(now);
        // Pingora's read and write timeouts bound each wait of the attempt; this bounds its
        // whole, for a backend that keeps sending slowly (checked as the response streams).
        ctx.attempt_deadline = timeout.map(|t| now + t);
        let Some(chosen) = ctx.chosen.as_ref() else {
            return Error::e_explain(
                NO_BACKEND_CHOSEN,
                "upstream_peer before a backend was chosen",
            );
        };
        if timeout.is_some_and(|t| t.is_zero()) {
            return Error::e_explain(REQUEST_TIMEOUT, "route request timeout elapsed");
        }
        let mut peer = upstream::peer(
            &chosen.backend,
            chosen.endpoint,
            timeout,
            &self.settings.upstream,
            ctx.backend_client_certificate.as_ref(),
        );
        if !ctx.route_sets_timeouts() {
            // The budget came from the client's grpc-timeout alone: it may end the call sooner,
            // never wait longer on one read than the operator's --upstream-read-timeout allows.
            let limit = self.settings.upstream.read_timeout;
            peer.options.read_timeout = peer.options.read_timeout.map(|r| r.min(limit));
        }
        Ok(Box::new(peer))
    }

    /// The rule's `retry` policy first. Without one (or once it is done): one retry, only for a
    /// refused connection: nothing reached the backend, so resending is safe even for a POST, and
    /// another endpoint may well be up. Other connect errors (timeouts) already cost the client
    /// time; retrying them would double it.
    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        e: Box<Error>,
    ) -> Box<Error> {
        self.metrics
            .upstream
            .connect_failed(ctx.backend_label(), &e);
        let settings = &self.settings.upstream.retry;
        retrying::on_error(session, ctx, settings, &self.metrics, e, |e, ctx| {
            let refused = matches!(e.etype(), ErrorType::ConnectRefused);
            e.set_retry(refused && fallback_retry(ctx));
        })
    }

    /// The rule's `retry` policy first; without one, Pingora's own policy (an idempotent request
    /// whose pooled connection turned out stale is sent once more).
    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        self.metrics.upstream.proxy_failed(ctx.backend_label(), &e);
        let e = e.more_context(format!("Peer: {peer}"));
        let settings = &self.settings.upstream.retry;
        let idempotent = session.req_header().method.is_idempotent();
        let truncated = session.as_ref().retry_buffer_truncated();
        retrying::on_error(session, ctx, settings, &self.metrics, e, |e, ctx| {
            if idempotent && !truncated && fallback_retry(ctx) {
                e.retry.decide_reuse(client_reused);
            } else {
                e.set_retry(false);
            }
        })
    }

    /// Retries are logged by `retrying` with their reason; Pingora's line would repeat it.
    fn suppress_proxy_warn_log(
        &self,
        _session: &Session,
        ctx: &RequestCtx,
        _e: &Error,
        context: ProxyWarnLogContext,
    ) -> bool {
        matches!(context, ProxyWarnLogContext::UpstreamRetry) && ctx.retry_wait.is_some()
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let client = inet(session.client_addr()).map(|a| a.ip());
        headers::set_forwarded(
            upstream_request,
            client,
            ctx.https,
            ctx.original_host.as_ref(),
        )
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        _reused: bool,
        peer: &HttpPeer,
        fd: std::os::unix::io::RawFd,
        _digest: Option<&Digest>,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.upstream = UpstreamConn::of(peer, fd);
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let status = upstream_response.status.as_u16();
        let settings = &self.settings.upstream.retry;
        if let Some(e) = retrying::on_status(session, ctx, settings, &self.metrics, status) {
            return Err(e);
        }
        if let Some(m) = ctx.mirrors.as_mut() {
            m.on_response_head(status, &upstream_response.headers);
        }
        if let Some(conn) = ctx.upstream.as_mut() {
            let is_head = session.req_header().method == http::Method::HEAD;
            conn.on_response_head(upstream_response, is_head, session.is_body_done());
        }
        headers::strip_hop_by_hop(upstream_response);
        // A Trailers-Only answer carries its status in the head.
        if ctx.grpc_call {
            ctx.grpc_status = grpc::status_in(&upstream_response.headers);
        }
        Ok(())
    }

    /// The status of a gRPC answer that ends in trailers, for the access log.
    fn upstream_response_trailer_filter(
        &self,
        _session: &mut Session,
        upstream_trailers: &mut http::HeaderMap,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(status) = grpc::status_in(upstream_trailers).filter(|_| ctx.grpc_call) {
            ctx.grpc_status = Some(status);
        }
        Ok(())
    }

    /// At the response's end, a connection that answered early is shut for reading too, so the
    /// pool drops it. Once the route's request timeout, or this attempt's backendRequest
    /// timeout, has run out, a response still streaming is cut off: its head is already out, so
    /// the client sees a truncated response, not a 504.
    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::time::Duration>> {
        if let Some(m) = ctx.mirrors.as_mut() {
            m.on_response_body(body.as_ref(), end_of_stream);
        }
        if end_of_stream {
            ctx.upstream_ended = Some(Instant::now());
            if let Some(conn) = ctx.upstream.take() {
                conn.on_response_end();
            }
        }
        if !end_of_stream && ctx.attempt_deadline.is_some_and(|d| Instant::now() >= d) {
            return Error::e_explain(
                REQUEST_TIMEOUT,
                "route request or backendRequest timeout elapsed mid-response",
            );
        }
        Ok(None)
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        for filter in ctx.filters() {
            match filter {
                Filter::ResponseHeaders(m) => filters::apply_header_modifier(m, upstream_response)
                    .map_err(|e| Error::because(BAD_FILTER, "response header filter", e))?,
                Filter::Cors(c) => {
                    if let Some(origin) = &ctx.cors_origin {
                        filters::cors::add_response_fields(c, origin, upstream_response)?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let mut code = error_status(e);
        if let Some(violation) = body_rejection(e) {
            ctx.rejected = Some(violation);
            self.metrics.edge.request_rejected(violation);
            code = violation.status();
        } else if code == 0 {
            self.metrics.edge.client_aborts.inc();
        }
        if code > 0 && session.response_written().is_none() {
            if let Err(write) = respond_failure(session, ctx, code, e.etype()).await {
                tracing::debug!(error = %write, "cannot send error response");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    /// A client that goes away is routine at the edge: counted, logged at debug, never an ERROR.
    fn suppress_error_log(&self, _session: &Session, ctx: &RequestCtx, e: &Error) -> bool {
        let quiet = error_status(e) == 0 || ctx.rejected.is_some();
        if quiet {
            tracing::debug!(error = %e, "request ended by the client or refused at the edge");
        }
        quiet
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        if let Some(m) = ctx.mirrors.as_mut() {
            if e.is_none() {
                m.on_response_complete();
            }
            m.on_primary_done();
        }
        let code = session.response_written().map_or(0, |r| r.status.as_u16());
        let elapsed = ctx.started.elapsed();
        self.metrics.record_request(
            &ctx.gateway,
            ctx.route_label(),
            ctx.kind_label(),
            ctx.backend_label(),
            code,
            elapsed,
        );
        if let Some(chosen) = ctx.chosen.as_ref().filter(|_| ctx.attempts > 0) {
            self.metrics
                .record_upstream(&chosen.backend.name, ctx.upstream_duration(Instant::now()));
        }
        if ctx.grpc_call {
            self.metrics
                .record_grpc_call(&ctx.gateway, ctx.route_label(), ctx.grpc_status);
        }
        if access_log::enabled() {
            let error = e
                .map(|e| e.to_string())
                .or_else(|| ctx.rejected.map(|v| v.to_string()));
            log_access(session, ctx, &self.settings.access_log, code, error);
        }
    }
}

/// The request's access line. A refused request's head is the edge's marker, not what the
/// client sent: only its request id and status are known.
fn log_access(
    session: &Session,
    ctx: &RequestCtx,
    settings: &AccessLogSettings,
    status: u16,
    error: Option<String>,
) {
    let req = session.req_header();
    let mut request = if ctx.rejected.is_some() {
        RequestFields::default()
    } else {
        let uri = ctx.original_uri.as_ref().unwrap_or(&req.uri);
        // Set by routing; a request that failed before it falls back to the head's host.
        let host = match &ctx.original_host {
            Some(h) => h.to_str().unwrap_or(""),
            None => request::raw_host(req).unwrap_or(""),
        };
        RequestFields::of(req, uri, host, *settings)
    };
    if let Some(id) = ctx.request_id.as_ref().and_then(|v| v.to_str().ok()) {
        id.clone_into(&mut request.request_id);
    }
    let upstream = ctx.chosen.as_ref().filter(|_| ctx.attempts > 0);
    AccessLine {
        mirror: false,
        client: inet(session.client_addr()),
        request: &request,
        protocol: access_log::protocol_name(req.version),
        status,
        route: ctx.route_label(),
        rule: &ctx.rule_label(),
        backend: ctx.backend_label(),
        upstream: upstream.map(|c| c.endpoint),
        bytes_in: session.body_bytes_read() as u64,
        bytes_out: session.body_bytes_sent() as u64,
        duration: ctx.started.elapsed(),
        upstream_duration: ctx.upstream_duration(Instant::now()),
        extra: Extra {
            gateway: Some(&ctx.gateway),
            kind: Some(ctx.kind_label()),
            grpc_status: ctx.grpc_status,
            retries: Some(ctx.retries),
            error,
            outcome: None,
        },
    }
    .emit();
}

/// Whether Sluice's own retry (without a rule policy) is still open: at most one per request,
/// the rule's retries not counted.
fn fallback_retry(ctx: &RequestCtx) -> bool {
    ctx.attempts.saturating_sub(ctx.retries) < 2
}

/// The edge refusal behind a failed body read, if that is what failed.
fn body_rejection(e: &Error) -> Option<Violation> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = e
        .cause
        .as_deref()
        .map(|c| c as &(dyn std::error::Error + 'static));
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if let Some(rejected) = io.get_ref().and_then(|r| r.downcast_ref::<BodyRejected>()) {
                return Some(rejected.0);
            }
        }
        if let Some(rejected) = c.downcast_ref::<BodyRejected>() {
            return Some(rejected.0);
        }
        // Pingora nests its errors, sometimes boxed once more.
        let inner = c
            .downcast_ref::<Error>()
            .or_else(|| c.downcast_ref::<Box<Error>>().map(|b| &**b));
        if let Some(inner) = inner {
            cause = inner
                .cause
                .as_deref()
                .map(|c| c as &(dyn std::error::Error + 'static));
            continue;
        }
        cause = c.source();
    }
    None
}

/// The status for a failed request: explicit statuses as given, backend timeouts 504, other
/// backend failures 502, a client that went away 0 (nothing to send), internal failures 500.
pub fn error_status(e: &Error) -> u16 {
    match (e.etype(), e.esource()) {
        (ErrorType::HTTPStatus(code), _) => *code,
        (
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout,
            ErrorSource::Upstream,
        ) => 504,
        (_, ErrorSource::Upstream) => 502,
        (
            ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed,
            ErrorSource::Downstream,
        ) => 0,
        // The client stalled mid-body past the client body timeout.
        (ErrorType::ReadTimedout, ErrorSource::Downstream) => 408,
        (_, ErrorSource::Downstream) => 400,
        (_, ErrorSource::Internal | ErrorSource::Unset) => 500,
    }
}
