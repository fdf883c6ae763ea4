//! A copy's access line: the primary's schema (`crate::access_log`) with `mirror=true`.

use std::time::Duration;

use pingora_core::upstreams::peer::HttpPeer;
use pingora_http::RequestHeader;

use super::exchange::Stats;
use super::{CopyLog, Outcome};
use crate::access_log::{self, AccessLine, Extra, RequestFields};

/// The copy's head as sent: its own Host (a `--mirror-host-suffix` shows), path and query; and
/// the primary's request id, whatever a policy did to the copy's `x-request-id`.
pub(super) fn request_fields(head: &RequestHeader, log: &CopyLog) -> RequestFields {
    let host = access_log::header_text(&head.headers, http::header::HOST);
    let mut fields = RequestFields::of(head, &head.uri, host, log.settings);
    if let Some(id) = log.request_id.as_ref().and_then(|v| v.to_str().ok()) {
        id.clone_into(&mut fields.request_id);
    }
    fields
}

/// What a finished copy's line is about.
pub(super) struct Copy<'a> {
    pub log: &'a CopyLog,
    pub route: &'a str,
    pub mirror: &'a str,
    pub peer: &'a HttpPeer,
}

impl Copy<'_> {
    pub(super) fn emit(
        &self,
        request: &RequestFields,
        stats: &Stats,
        elapsed: Duration,
        outcome: Outcome,
    ) {
        AccessLine {
            mirror: true,
            client: self.log.client,
            request,
            protocol: self.log.protocol,
            status: stats.status.unwrap_or(0),
            route: self.route,
            rule: &self.log.rule,
            backend: self.mirror,
            upstream: self.peer._address.as_inet().copied(),
            bytes_in: stats.bytes,
            bytes_out: 0,
            duration: elapsed,
            // The copy is all upstream: it has no client side of its own.
            upstream_duration: elapsed,
            extra: Extra {
                outcome: Some(outcome.as_str()),
                ..Extra::default()
            },
        }
        .emit();
    }
}
