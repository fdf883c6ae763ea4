//! The mirror's connections: HTTP/1.1 mirrors on a Pingora `TransportConnector` of our own,
//! h2c mirrors on Pingora's HTTP connector.
//!
//! Pingora's HTTP connector keeps its HTTP/1.1 streams behind a `Connector` whose transport is
//! private, so a stream can only come back to its pool through a client session that read the
//! whole answer into header maps. Holding the transport here lets a copy whose answer nobody
//! reads skip that session ([`super::discard`]) while every HTTP/1.1 copy still shares one pool:
//! the same calls Pingora's `v1::Connector` makes, with the same bound.

use std::time::Duration;

use pingora_core::connectors::http::Connector;
use pingora_core::connectors::{ConnectorOptions, TransportConnector};
use pingora_core::protocols::http::client::HttpSession;
use pingora_core::protocols::http::v1::client::HttpSession as Http1Session;
use pingora_core::protocols::Stream;
use pingora_core::upstreams::peer::{HttpPeer, Peer};

pub(super) struct MirrorPool {
    h1: TransportConnector,
    h2: Connector,
}

impl MirrorPool {
    /// Each protocol keeps at most `size` idle connections, as Pingora's connector does.
    pub(super) fn new(size: usize) -> MirrorPool {
        MirrorPool {
            h1: TransportConnector::new(Some(ConnectorOptions::new(size))),
            h2: Connector::new(Some(ConnectorOptions::new(size))),
        }
    }

    /// A session to `peer`: a pooled connection when one is idle, else a new one.
    pub(super) async fn session(&self, peer: &HttpPeer) -> pingora_error::Result<HttpSession> {
        if speaks_h1_only(peer) {
            let stream = self.stream(peer).await?;
            return Ok(HttpSession::H1(Http1Session::new_with_options(
                stream, peer,
            )));
        }
        self.h2.get_http_session(peer).await.map(|(s, _reused)| s)
    }

    /// A bare HTTP/1.1 connection to `peer`, pooled or new.
    pub(super) async fn stream(&self, peer: &HttpPeer) -> pingora_error::Result<Stream> {
        self.h1.get_stream(peer).await.map(|(s, _reused)| s)
    }

    /// Gives `session`'s connection back when its exchange left it reusable; closes it otherwise.
    pub(super) async fn release(&self, session: HttpSession, peer: &HttpPeer, idle: Duration) {
        match session {
            HttpSession::H1(mut h1) => {
                h1.respect_keepalive();
                if let Some(stream) = h1.reuse().await {
                    self.release_stream(stream, peer, idle);
                }
            }
            other => self.h2.release_http_session(other, peer, Some(idle)).await,
        }
    }

    /// Pools a bare HTTP/1.1 connection whose exchange is known to have ended cleanly.
    pub(super) fn release_stream(&self, stream: Stream, peer: &HttpPeer, idle: Duration) {
        self.h1
            .release_stream(stream, peer.reuse_hash(), Some(idle));
    }
}

/// Whether `peer` is reached over HTTP/1.1 alone: no ALPN offering h2, no h2c.
pub(super) fn speaks_h1_only(peer: &HttpPeer) -> bool {
    peer.options.alpn.get_max_http_version() == 1
}
