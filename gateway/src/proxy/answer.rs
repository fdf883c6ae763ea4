//! Every answer Sluice gives itself rather than a backend: an HTTP status (with a short text or
//! Pingora's empty error page), or, for a gRPC call, the Trailers-Only response a gRPC client
//! reads its status from. Both keep the CORS fields of an allowed cross-origin request.

use bytes::Bytes;
use pingora_core::protocols::http::server::Session as HttpSession;
use pingora_error::{ErrorType, Result};
use pingora_http::ResponseHeader;
use pingora_proxy::Session;
use sluice_controller::snapshot::Filter;

use super::RequestCtx;
use crate::edge::Violation;
use crate::filters;
use crate::grpc::{self, Code};

/// One answer of Sluice's own.
struct Answer {
    status: u16,
    /// What a gRPC client is told instead of `status`.
    code: Code,
    /// A `text/plain` body (the `grpc-message` of a gRPC answer); `None`: Pingora's error page.
    text: Option<String>,
    /// The connection closes after it (an edge refusal).
    close: bool,
}

/// Sluice's own answer with status `code`.
pub(super) async fn respond_status(
    session: &mut Session,
    ctx: &mut RequestCtx,
    code: u16,
) -> Result<()> {
    respond(session, ctx, Answer::status(code)).await
}

/// A status with a one-line explanation as its body.
pub(super) async fn respond_text(
    session: &mut Session,
    ctx: &mut RequestCtx,
    code: u16,
    text: String,
) -> Result<()> {
    let answer = Answer {
        text: Some(text),
        ..Answer::status(code)
    };
    respond(session, ctx, answer).await
}

/// The status `code` for a request whose proxying failed with `etype`.
pub(super) async fn respond_failure(
    session: &mut Session,
    ctx: &mut RequestCtx,
    code: u16,
    etype: &ErrorType,
) -> Result<()> {
    let answer = Answer {
        code: Code::for_error(code, etype),
        ..Answer::status(code)
    };
    respond(session, ctx, answer).await
}

/// Answers a request the edge guard refused, and closes the connection after it.
pub(super) async fn respond_rejection(
    session: &mut Session,
    ctx: &mut RequestCtx,
    violation: Violation,
) -> Result<()> {
    let status = violation.status();
    let answer = Answer {
        text: Some(format!("{status}: {violation}\n")),
        close: true,
        ..Answer::status(status)
    };
    respond(session, ctx, answer).await
}

impl Answer {
    fn status(status: u16) -> Answer {
        Answer {
            status,
            code: Code::for_status(status),
            text: None,
            close: false,
        }
    }
}

async fn respond(session: &mut Session, ctx: &mut RequestCtx, answer: Answer) -> Result<()> {
    if answer.close {
        session.set_keepalive(None);
    }
    if ctx.grpc_call {
        return respond_grpc(session, ctx, answer).await;
    }
    let Some(text) = answer.text else {
        if ctx.cors_origin.is_none() {
            return session.respond_error(answer.status).await;
        }
        let mut resp = HttpSession::generate_error(answer.status);
        add_cors_fields(ctx, &mut resp)?;
        return session
            .as_downstream_mut()
            .write_error_response(resp, Bytes::new())
            .await;
    };
    let mut resp = ResponseHeader::build(answer.status, Some(3))?;
    resp.insert_header(http::header::CONTENT_TYPE, "text/plain")?;
    resp.insert_header(http::header::CONTENT_LENGTH, text.len())?;
    if answer.close {
        resp.insert_header(http::header::CONNECTION, "close")?;
    }
    add_cors_fields(ctx, &mut resp)?;
    session.write_response_header(Box::new(resp), false).await?;
    session
        .write_response_body(Some(Bytes::from(text)), true)
        .await
}

/// The Trailers-Only form: one HEADERS frame that ends the stream. The message is the text, or
/// the HTTP status Sluice would have answered, so the cause stays visible to the caller.
async fn respond_grpc(session: &mut Session, ctx: &mut RequestCtx, answer: Answer) -> Result<()> {
    let message = match &answer.text {
        Some(text) => text.trim_end().to_string(),
        None => {
            let reason = http::StatusCode::from_u16(answer.status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("");
            format!("{} {reason}", answer.status)
        }
    };
    let mut resp = grpc::trailers_only(answer.code, &message)?;
    add_cors_fields(ctx, &mut resp)?;
    ctx.grpc_status = Some(u32::from(answer.code.value()));
    // Pingora's proxy-level write ignores the end-of-stream flag (it would follow the head with
    // an empty DATA frame): the HTTP/2 session itself ends the stream with the HEADERS frame.
    match session.as_downstream_mut() {
        HttpSession::H2(h2) => h2.write_response_header(Box::new(resp), true),
        _ => session.write_response_header(Box::new(resp), true).await,
    }
}

/// The CORS fields, on a response to a request whose origin a `CORS` filter allowed, so a
/// browser shows the status (a 503, a 504) rather than a CORS failure that hides it.
fn add_cors_fields(ctx: &RequestCtx, resp: &mut ResponseHeader) -> Result<()> {
    let Some(origin) = &ctx.cors_origin else {
        return Ok(());
    };
    for filter in ctx.filters() {
        if let Filter::Cors(c) = filter {
            filters::cors::add_response_fields(c, origin, resp)?;
        }
    }
    Ok(())
}
