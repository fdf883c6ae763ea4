//! What an echo pod received: an in-memory request log that tests and the conformance harness assert on.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

// Enough for any conformance case; bounds memory for a long-running `sluice echo`.
const MAX_ENTRIES: usize = 20_000;

/// One request as it reached the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedRequest {
    pub at: Instant,
    pub remote: SocketAddr,
    pub method: String,
    /// The RequestURI: path plus raw query as on the request line.
    pub uri: String,
    /// `Host` header or `:authority`.
    pub host: String,
    /// `HTTP/1.1`, `HTTP/2.0`, ...
    pub proto: String,
    /// Header names lower-case, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body_len: usize,
    /// Lower-case hex SHA-256 of the body.
    pub body_sha256: String,
    /// True when echo-basic would have logged `Echoing back request made to <uri> to client (...)`.
    pub echoed: bool,
}

impl ReceivedRequest {
    /// All values of one header (case-insensitive).
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The line echo-basic prints to stdout for an echoed request.
    pub fn echo_line(&self) -> String {
        format!(
            "Echoing back request made to {} to client ({})",
            self.uri, self.remote
        )
    }
}

/// Cheap to clone; all clones share one log.
#[derive(Debug, Clone, Default)]
pub struct RequestLog {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: Mutex<VecDeque<ReceivedRequest>>,
    changed: Notify,
}

// === impl RequestLog ===

impl RequestLog {
    pub fn record(&self, request: ReceivedRequest) {
        {
            let mut entries = self
                .inner
                .entries
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if entries.len() == MAX_ENTRIES {
                entries.pop_front();
            }
            entries.push_back(request);
        }
        self.inner.changed.notify_waiters();
    }

    pub fn entries(&self) -> Vec<ReceivedRequest> {
        let entries = self
            .inner
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        entries.iter().cloned().collect()
    }

    /// Requests received at or after `since`.
    pub fn since(&self, since: Instant) -> Vec<ReceivedRequest> {
        let entries = self
            .inner
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        entries.iter().filter(|r| r.at >= since).cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.inner
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&self) {
        self.inner
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Waits until some recorded request satisfies `matches`, or `timeout` passes (then `None`).
    pub async fn wait_for(
        &self,
        timeout: Duration,
        mut matches: impl FnMut(&ReceivedRequest) -> bool,
    ) -> Option<ReceivedRequest> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Register before looking so a record() between the look and the wait is not missed.
            let notified = self.inner.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let found = {
                let entries = self
                    .inner
                    .entries
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                entries.iter().find(|r| matches(r)).cloned()
            };
            if found.is_some() {
                return found;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str) -> ReceivedRequest {
        ReceivedRequest {
            at: Instant::now(),
            remote: SocketAddr::from(([127, 0, 0, 1], 40000)),
            method: "GET".into(),
            uri: uri.into(),
            host: "example.com".into(),
            proto: "HTTP/1.1".into(),
            headers: vec![("x-a".into(), "1".into()), ("X-A".into(), "2".into())],
            body_len: 0,
            body_sha256: String::new(),
            echoed: true,
        }
    }

    #[test]
    fn header_values_are_case_insensitive() {
        let r = request("/");
        assert_eq!(r.header_values("X-a").collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(
            r.echo_line(),
            "Echoing back request made to / to client (127.0.0.1:40000)"
        );
    }

    #[tokio::test]
    async fn wait_for_sees_a_request_recorded_later() {
        let log = RequestLog::default();
        let writer = log.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            writer.record(request("/later"));
        });
        let found = log
            .wait_for(Duration::from_secs(5), |r| r.uri == "/later")
            .await;
        assert_eq!(found.map(|r| r.uri), Some("/later".to_owned()));
        assert!(log
            .wait_for(Duration::from_millis(30), |r| r.uri == "/never")
            .await
            .is_none());
    }
}
