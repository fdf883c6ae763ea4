//! The proxy side of rule retries: classify a failed attempt, ask `upstream::retry`, and mark
//! the Pingora error so its retry loop calls `upstream_peer` again (or stops).
//!
//! Pingora retries only errors: a response with a listed status is turned into one in
//! `upstream_response_filter`, before anything of it reaches the client. A retry replays the
//! body from Pingora's retry buffer (64 KiB); a body larger than that is never sent twice.

use std::time::Instant;

use pingora_error::{Error, ErrorSource, ErrorType};
use pingora_proxy::Session;

use super::ctx::RequestCtx;
use crate::metrics::Metrics;
use crate::upstream::retry::{self, Decision, Failure, RetrySettings};

/// The backend answered a status the rule retries; this attempt fails so the next one starts.
pub(super) const RETRY_STATUS: ErrorType = ErrorType::Custom("RetryableStatus");
/// Every retry of a rule ended without a response: answered 503, as Envoy does (the
/// HTTPRouteRetryConnectionError case accepts 500 or 503).
const RETRIES_EXHAUSTED: ErrorType = ErrorType::HTTPStatus(503);

/// Whether this request may be sent again at all, whatever failed: the rule has a policy,
/// nothing of a final response has reached the client (the `100 Continue` Sluice answers to
/// `Expect` does not count), the body read so far can be replayed, and the route's request
/// timeout has not run out.
fn can_resend(session: &Session, ctx: &RequestCtx) -> bool {
    session
        .response_written()
        .is_none_or(|r| r.status.is_informational())
        && !session.as_ref().retry_buffer_truncated()
        && ctx.deadline.is_none_or(|d| Instant::now() < d)
}

/// `upstream_response_filter`: an error to return when this response's status is retried.
pub(super) fn on_status(
    session: &Session,
    ctx: &mut RequestCtx,
    settings: &RetrySettings,
    metrics: &Metrics,
    status: u16,
) -> Option<Box<Error>> {
    let failure = Failure::Status(status);
    match policy_decision(session, ctx, settings, failure) {
        Some(Decision::Retry { wait }) => {
            note_retry(ctx, metrics, failure, wait);
            let mut e = Error::explain(RETRY_STATUS, format!("backend answered {status}"));
            e.set_retry(true);
            Some(e.into_up())
        }
        _ => None,
    }
}

/// `error_while_proxy` and `fail_to_connect`: whether a transport failure is retried. Errors
/// the rule's policy does not retry get `fallback`, the decision Sluice makes without one.
pub(super) fn on_error(
    session: &Session,
    ctx: &mut RequestCtx,
    settings: &RetrySettings,
    metrics: &Metrics,
    mut e: Box<Error>,
    fallback: impl FnOnce(&mut Error, &RequestCtx),
) -> Box<Error> {
    if e.etype() == &RETRY_STATUS {
        // Decided in upstream_response_filter.
        return e;
    }
    let Some(failure) = classify(&e, ctx) else {
        fallback(&mut e, ctx);
        return e;
    };
    match policy_decision(session, ctx, settings, failure) {
        Some(Decision::Retry { wait }) => {
            note_retry(ctx, metrics, failure, wait);
            e.set_retry(true);
            e
        }
        Some(Decision::Exhausted) if failure == Failure::Connection => {
            let mut out =
                Error::because(RETRIES_EXHAUSTED, "every retry failed to get a response", e);
            out.set_retry(false);
            out
        }
        _ => {
            fallback(&mut e, ctx);
            e
        }
    }
}

/// The rule policy's decision, `None` when it has none or the request cannot be resent.
fn policy_decision(
    session: &Session,
    ctx: &RequestCtx,
    settings: &RetrySettings,
    failure: Failure,
) -> Option<Decision> {
    let policy = ctx.action.as_ref()?.retry.as_ref()?;
    if !can_resend(session, ctx) {
        return None;
    }
    Some(retry::decide(policy, settings, ctx.retries, failure))
}

/// Which retryable failure an upstream error is, if any. A timeout counts only when the rule's
/// backendRequest timeout bounded the attempt; once the request timeout has run out nothing is
/// retried (`can_resend`).
fn classify(e: &Error, ctx: &RequestCtx) -> Option<Failure> {
    if e.esource() != &ErrorSource::Upstream {
        return None;
    }
    let backend_timeout = ctx
        .action
        .as_ref()
        .is_some_and(|a| a.timeouts.backend_request.is_some());
    match e.etype() {
        ErrorType::ConnectRefused
        | ErrorType::ConnectNoRoute
        | ErrorType::ConnectError
        | ErrorType::ConnectionClosed
        | ErrorType::ReadError
        | ErrorType::WriteError
        | ErrorType::H2Error => Some(Failure::Connection),
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
            backend_timeout.then_some(Failure::BackendTimeout)
        }
        _ => None,
    }
}

/// Counts and logs a retry, and leaves its wait for `upstream_peer`.
fn note_retry(
    ctx: &mut RequestCtx,
    metrics: &Metrics,
    failure: Failure,
    wait: std::time::Duration,
) {
    ctx.retries += 1;
    ctx.retry_wait = Some(wait);
    metrics.record_retry(ctx.route_label(), failure.reason());
    let status = match failure {
        Failure::Status(code) => code,
        _ => 0,
    };
    tracing::info!(
        target: "sluice::retry",
        route = ctx.route_label(),
        backend = ctx.backend_label(),
        endpoint = ctx.chosen.as_ref().map(|c| c.endpoint.to_string()).unwrap_or_default(),
        attempt = ctx.attempts,
        reason = failure.reason(),
        status,
        wait_ms = wait.as_millis() as u64,
        "retrying request"
    );
}
