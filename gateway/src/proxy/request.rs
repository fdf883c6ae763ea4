//! The request side of `request_filter`: route the head, run the filters in order, choose a backend.

use std::net::SocketAddr;
use std::sync::Arc;

use http::HeaderValue;
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;
use sluice_controller::snapshot::{BindProtocol, Filter, PathMatch, Snapshot};

use super::ctx::RequestCtx;
use crate::access_log::AccessLogSettings;
use crate::filters::cors::{self, CorsRequest};
use crate::filters::{self, FilterError, RequestUrl};
use crate::grpc;
use crate::mirror::{CopyLog, MirrorSet};
use crate::routing::{self, Lookup, RequestView};
use crate::upstream::{self, NoBackend};

/// What `request_filter` must do after routing and filtering.
#[derive(Debug)]
pub(super) enum Outcome {
    /// Proxy to `ctx.chosen`.
    Proxy,
    /// Answer with an error status and no body of ours beyond Pingora's error page.
    Status(u16),
    /// Answer with this response (a redirect, a CORS preflight answer).
    Respond(Box<ResponseHeader>),
    /// Answer with an error status and a short text/plain body saying why.
    Text(u16, String),
}

/// The request's host as routing wants it: `Host` (HTTP/1.1) or `:authority` (HTTP/2).
pub(super) fn raw_host(req: &RequestHeader) -> Option<&str> {
    req.headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.authority().map(|a| a.as_str()))
}

/// `raw_host` as a header value: the `Host` header itself when that is where it came from.
fn original_host(req: &RequestHeader, raw_host: &str) -> Option<HeaderValue> {
    if raw_host.is_empty() {
        return None;
    }
    match req.headers.get(http::header::HOST) {
        Some(v) if v.as_bytes() == raw_host.as_bytes() => Some(v.clone()),
        _ => HeaderValue::from_str(raw_host).ok(),
    }
}

/// Routes the request (answering 421 when `sni`, the TLS connection's server name, selected
/// another listener than the request's host does), applies its filters in written order (rule filters, then the chosen
/// backendRef's) to `session`'s request head, and records the decision in `ctx`.
pub(super) fn route_and_filter(
    session: &mut Session,
    ctx: &mut RequestCtx,
    snapshot: &Snapshot,
    local: SocketAddr,
    sni: Option<&str>,
    mirrors: Option<&Arc<crate::mirror::MirrorEngine>>,
    access_log: AccessLogSettings,
) -> Result<Outcome, FilterError> {
    let req = session.req_header();
    let raw_host = raw_host(req).unwrap_or("");
    let host = routing::normalize_host(raw_host);
    let view = RequestView {
        host: &host,
        path: req.uri.path(),
        query: req.uri.query(),
        method: &req.method,
        headers: &req.headers,
    };
    // Before routing: every answer, a 404 or a redirect too, is logged with the client's host.
    ctx.original_host = original_host(req, raw_host);
    let lookup = routing::lookup(snapshot, local, &view);
    if sni.is_some_and(|sni| lookup.misdirected(sni)) {
        if let Some((_, listener)) = lookup.listener() {
            ctx.gateway.clone_from(&listener.gateway);
        }
        return Ok(Outcome::Status(421));
    }
    let matched = match lookup {
        Lookup::Matched(m) => m,
        Lookup::NoBind | Lookup::NoListener { .. } => return Ok(Outcome::Status(404)),
        Lookup::NoRoute { listener, .. } => {
            ctx.gateway.clone_from(&listener.gateway);
            return Ok(Outcome::Status(404));
        }
    };
    ctx.gateway.clone_from(&matched.listener.gateway);
    ctx.backend_client_certificate = snapshot
        .backend_client_certificates
        .get(&matched.listener.gateway)
        .cloned();
    ctx.route = Some(matched.entry.route.clone());
    let action = matched.entry.action.clone();
    ctx.action = Some(action.clone());
    ctx.https = ctx.https || matched.bind.protocol == BindProtocol::Https;
    // Translate already turns a zero duration into None ("disabled"); a zero here must not
    // turn into an instant 504 either.
    ctx.deadline = action
        .timeouts
        .request
        .filter(|t| !t.is_zero())
        .map(|t| ctx.started + t);
    // A gRPC call's own deadline ends it sooner when it is the shorter (answered 504, which the
    // caller sees as DEADLINE_EXCEEDED).
    if let Some(own) = ctx.grpc_call.then(|| grpc::timeout_of(req)).flatten() {
        let own = ctx.started + own;
        ctx.deadline = Some(ctx.deadline.map_or(own, |d| d.min(own)));
    }
    let url = OwnedUrl {
        scheme: if ctx.https { "https" } else { "http" },
        host: host.into_owned(),
        listener_port: matched.bind.address.port(),
    };
    let path_match = &matched.entry.matcher.path;
    if let Some(out) = apply(
        &action.filters,
        session,
        ctx,
        &url,
        path_match,
        (mirrors, access_log),
    )? {
        return Ok(out);
    }
    let chosen = match upstream::choose(&action, &mut rand::rng()) {
        Ok(c) => c,
        Err(e) => return Ok(no_backend(e, ctx)),
    };
    let index = chosen.index;
    ctx.chosen = Some(chosen);
    match action.backends.get(index) {
        Some(b) => Ok(apply(
            &b.filters,
            session,
            ctx,
            &url,
            path_match,
            (mirrors, access_log),
        )?
        .unwrap_or(Outcome::Proxy)),
        None => Ok(Outcome::Status(500)),
    }
}

fn no_backend(e: NoBackend, ctx: &mut RequestCtx) -> Outcome {
    tracing::debug!(error = %e, "no backend for request");
    match e {
        // Name the Service, in the body and the access log's `backend`: an empty 503 sends
        // people looking at the gateway rather than at the backend's endpoints.
        NoBackend::NoEndpoints { ref backend, .. } => {
            ctx.unready_backend = Some(backend.clone());
            Outcome::Text(e.status(), format!("{e}\n"))
        }
        _ => Outcome::Status(e.status()),
    }
}

struct OwnedUrl {
    scheme: &'static str,
    host: String,
    listener_port: u16,
}

/// Runs one filter list in order. Request header changes land on the session's head at once, so
/// a `RequestMirror` later in the list copies the head exactly as modified so far.
fn apply(
    list: &[Filter],
    session: &mut Session,
    ctx: &mut RequestCtx,
    url: &OwnedUrl,
    path_match: &PathMatch,
    (engine, access_log): (Option<&Arc<crate::mirror::MirrorEngine>>, AccessLogSettings),
) -> Result<Option<Outcome>, FilterError> {
    for filter in list {
        match filter {
            Filter::RequestHeaders(m) => {
                filters::apply_header_modifier(m, session.req_header_mut())?
            }
            // Applied in response_filter, to the backend's response.
            Filter::ResponseHeaders(_) => {}
            Filter::Redirect(r) => {
                let req = session.req_header();
                let req_url = RequestUrl {
                    scheme: url.scheme,
                    host: &url.host,
                    listener_port: url.listener_port,
                    path: req.uri.path(),
                    query: req.uri.query(),
                };
                let location = filters::redirect_location(r, &req_url, path_match)?;
                return Ok(Some(redirect_response(r.status_code, &location)));
            }
            Filter::UrlRewrite(rw) => {
                let req = session.req_header_mut();
                if let Some(host) = &rw.hostname {
                    filters::set_request_host(req, host)?;
                }
                if let Some(p) = &rw.path {
                    if ctx.original_uri.is_none() {
                        ctx.original_uri = Some(req.uri.clone());
                    }
                    let path = filters::rewrite_path(p, req.uri.path(), path_match)?;
                    filters::set_request_path(req, &path)?;
                }
            }
            Filter::Cors(c) => {
                match cors::classify(c, session.req_header()).map_err(FilterError::CorsPreflight)? {
                    CorsRequest::Plain => {}
                    // Answered here: a preflight never reaches the backend.
                    CorsRequest::Preflight(resp) => return Ok(Some(Outcome::Respond(resp))),
                    CorsRequest::Allowed(origin) => ctx.cors_origin = Some(origin),
                }
            }
            // === mirrors ===
            // A copy starts here, in filter order, with the head as modified so far.
            Filter::Mirror(mirror) => {
                let Some(engine) = engine else { continue };
                let has_body = !session.is_body_empty();
                let route = ctx
                    .route
                    .as_ref()
                    .map_or("", |r| r.label.as_str())
                    .to_string();
                let client_certificate = &ctx.backend_client_certificate;
                let log = CopyLog {
                    client: super::inet(session.client_addr()),
                    rule: Arc::from(&*ctx.rule_label()),
                    settings: access_log,
                    protocol: "",
                    request_id: ctx.request_id.clone(),
                };
                let set = ctx.mirrors.get_or_insert_with(|| {
                    MirrorSet::new(engine.clone())
                        .with_client_certificate(client_certificate.clone())
                        .with_log(log)
                });
                set.start(mirror, session.req_header(), &route, has_body);
            }
        }
    }
    Ok(None)
}

fn redirect_response(status: u16, location: &str) -> Outcome {
    let built = ResponseHeader::build(status, Some(2)).and_then(|mut resp| {
        resp.insert_header(http::header::LOCATION, location)?;
        resp.insert_header(http::header::CONTENT_LENGTH, "0")?;
        Ok(resp)
    });
    match built {
        Ok(resp) => Outcome::Respond(Box::new(resp)),
        Err(e) => {
            tracing::warn!(error = %e, location, "cannot build redirect");
            Outcome::Status(500)
        }
    }
}
