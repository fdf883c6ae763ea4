//! The per-request context: what request_filter decided, from the one snapshot it loaded, for
//! every later phase.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::HeaderValue;
use rustls::sign::CertifiedKey;
use sluice_controller::snapshot::{Filter, RouteId, RuleAction};

use crate::edge::Violation;
use crate::mirror::MirrorSet;
use crate::upstream::{Chosen, UpstreamConn};

/// Lives from the request head to the `logging` phase.
pub struct RequestCtx {
    pub started: Instant,
    /// `namespace/name` of the Gateway whose listener accepted the request; empty before that.
    pub gateway: String,
    /// The certificate that Gateway presents to TLS backends (`tls.backend.clientCertificateRef`).
    pub backend_client_certificate: Option<Arc<CertifiedKey>>,
    /// The matched rule and what it does, shared out of the snapshot `request_filter` loaded;
    /// later phases use these, never the live store, so a reload mid-request cannot mix two
    /// configurations.
    pub route: Option<Arc<RouteId>>,
    pub action: Option<Arc<RuleAction>>,
    pub chosen: Option<Chosen>,
    /// The Service picked for this request when it had no ready endpoint (answered 503).
    pub unready_backend: Option<String>,
    /// The request arrived over TLS (for `X-Forwarded-Proto`).
    pub https: bool,
    /// The `Host` as the client sent it, before any URL rewrite (for `X-Forwarded-Host`); the
    /// request's own header value, shared rather than copied.
    pub original_host: Option<HeaderValue>,
    /// When the route's `timeouts.request` runs out.
    pub deadline: Option<Instant>,
    /// When this attempt's time runs out: its `timeouts.backendRequest`, within `deadline`.
    pub attempt_deadline: Option<Instant>,
    /// Upstream attempts made so far (connect retries included).
    pub attempts: u32,
    /// Retries the rule's `retry` policy has asked for so far.
    pub retries: u32,
    /// The backoff to wait before the next attempt, set when a retry is decided.
    pub retry_wait: Option<Duration>,
    /// Copies of this request for `RequestMirror` filters, started in filter order by
    /// `request_filter` with the head as modified by the filters before each mirror.
    pub mirrors: Option<MirrorSet>,
    /// The edge guard refused this request (its head is the guard's marker, not the client's).
    pub rejected: Option<Violation>,
    /// The `Origin` of a request a `CORS` filter allowed: its response gets the CORS fields.
    pub cors_origin: Option<HeaderValue>,
    /// This attempt's HTTP/1 upstream connection, watched for an answer that comes before the
    /// request body has been sent.
    pub upstream: Option<UpstreamConn>,
    /// The request is a gRPC call (`grpc::is_call`): Sluice's own answers to it are gRPC ones.
    pub grpc_call: bool,
    /// The `grpc-status` of the answer (Sluice's own, or the backend's head or trailers), for
    /// the access log.
    pub grpc_status: Option<u32>,
    /// The request id on the head (the client's, or generated), for the access log.
    pub request_id: Option<HeaderValue>,
    /// The URI as the client sent it, kept only when a URL rewrite changes the path: the
    /// access log shows what the client asked for.
    pub original_uri: Option<http::Uri>,
    /// When the first upstream attempt began and when the backend's answer ended.
    pub upstream_started: Option<Instant>,
    pub upstream_ended: Option<Instant>,
}

impl RequestCtx {
    pub fn new() -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            gateway: String::new(),
            backend_client_certificate: None,
            route: None,
            action: None,
            chosen: None,
            unready_backend: None,
            https: false,
            original_host: None,
            deadline: None,
            attempt_deadline: None,
            attempts: 0,
            retries: 0,
            retry_wait: None,
            mirrors: None,
            rejected: None,
            cors_origin: None,
            upstream: None,
            grpc_call: false,
            grpc_status: None,
            request_id: None,
            original_uri: None,
            upstream_started: None,
            upstream_ended: None,
        }
    }

    /// Rule filters, then the chosen backendRef's filters: the order the spec applies them in.
    pub fn filters(&self) -> impl Iterator<Item = &Filter> {
        let rule = self.action.iter().flat_map(|a| a.filters.iter());
        let backend = self
            .action
            .iter()
            .zip(self.chosen.iter())
            .filter_map(|(a, c)| a.backends.get(c.index))
            .flat_map(|b| b.filters.iter());
        rule.chain(backend)
    }

    /// This attempt's time budget: the route's backendRequest timeout, cut short by what is left
    /// of its request timeout. `Some(ZERO)` means the request timeout has already run out; a zero
    /// backendRequest timeout means none, as the spec says.
    pub fn attempt_timeout(&self, now: Instant) -> Option<Duration> {
        let backend = self
            .action
            .as_ref()
            .and_then(|a| a.timeouts.backend_request)
            .filter(|d| !d.is_zero());
        let left = self.deadline.map(|d| d.saturating_duration_since(now));
        match (backend, left) {
            (Some(b), Some(l)) => Some(b.min(l)),
            (b, l) => b.or(l),
        }
    }

    /// Whether the matched rule sets a request or backendRequest timeout (an operator's choice,
    /// which may well exceed the default upstream read timeout).
    pub fn route_sets_timeouts(&self) -> bool {
        self.action.as_ref().is_some_and(|a| {
            let t = &a.timeouts;
            t.request.is_some_and(|d| !d.is_zero())
                || t.backend_request.is_some_and(|d| !d.is_zero())
        })
    }

    pub fn route_label(&self) -> &str {
        self.route.as_ref().map_or("", |r| r.label.as_str())
    }

    /// The matched route's kind (`HTTPRoute`, `GRPCRoute`); empty when no route matched.
    pub fn kind_label(&self) -> &'static str {
        self.route.as_ref().map_or("", |r| r.kind.as_str())
    }

    /// The matched rule's name, else its index in the route's rules; "" when no route matched.
    pub fn rule_label(&self) -> std::borrow::Cow<'_, str> {
        match &self.route {
            Some(r) => match &r.rule_name {
                Some(name) => name.as_str().into(),
                None => r.rule_index.to_string().into(),
            },
            None => "".into(),
        }
    }

    /// From the first upstream attempt to the end of the backend's answer (or to `now`, when it
    /// did not end); zero when no backend was tried.
    pub fn upstream_duration(&self, now: Instant) -> Duration {
        self.upstream_started.map_or(Duration::ZERO, |s| {
            self.upstream_ended
                .unwrap_or(now)
                .saturating_duration_since(s)
        })
    }

    pub fn backend_label(&self) -> &str {
        match (&self.chosen, &self.unready_backend) {
            (Some(c), _) => c.backend.name.as_str(),
            (None, Some(unready)) => unready.as_str(),
            (None, None) => "",
        }
    }
}

impl Default for RequestCtx {
    fn default() -> Self {
        RequestCtx::new()
    }
}

#[cfg(test)]
mod tests {
    use sluice_controller::snapshot::Timeouts;

    use super::*;

    fn with_backend_timeout(backend_request: Option<Duration>) -> RequestCtx {
        let mut ctx = RequestCtx::new();
        ctx.action = Some(Arc::new(RuleAction::new(
            vec![],
            vec![],
            Timeouts {
                request: None,
                backend_request,
            },
        )));
        ctx
    }

    #[test]
    fn attempt_timeout_is_the_smaller_of_backend_and_what_is_left() {
        let now = Instant::now();
        let mut ctx = with_backend_timeout(Some(Duration::from_secs(2)));
        assert_eq!(ctx.attempt_timeout(now), Some(Duration::from_secs(2)));
        ctx.deadline = Some(now + Duration::from_millis(500));
        assert_eq!(ctx.attempt_timeout(now), Some(Duration::from_millis(500)));
        ctx.deadline = Some(now);
        assert_eq!(
            ctx.attempt_timeout(now + Duration::from_millis(1)),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn zero_or_absent_timeouts_mean_none() {
        let now = Instant::now();
        assert_eq!(
            with_backend_timeout(Some(Duration::ZERO)).attempt_timeout(now),
            None
        );
        assert_eq!(with_backend_timeout(None).attempt_timeout(now), None);
        assert_eq!(RequestCtx::new().attempt_timeout(now), None);
    }
}
