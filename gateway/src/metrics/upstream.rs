//! `sluice_upstream_*_errors_total`: failed upstream attempts per backend, by a bounded reason.

use pingora_error::{Error, ErrorSource, ErrorType};
use prometheus::{IntCounterVec, Opts, Registry};

/// Why connecting to an endpoint failed, as a label.
pub fn connect_reason(e: &Error) -> &'static str {
    match e.etype() {
        ErrorType::ConnectRefused => "refused",
        ErrorType::ConnectTimedout => "timeout",
        ErrorType::ConnectNoRoute => "no_route",
        ErrorType::TLSHandshakeFailure
        | ErrorType::TLSHandshakeTimedout
        | ErrorType::InvalidCert
        | ErrorType::HandshakeError => "tls",
        _ => "error",
    }
}

/// Why an attempt on an open upstream connection failed, as a label; `None` for a failure that
/// is not the backend's (the client's, or Sluice's own).
pub fn proxy_reason(e: &Error) -> Option<&'static str> {
    if e.esource() != &ErrorSource::Upstream {
        return None;
    }
    Some(match e.etype() {
        ErrorType::ReadTimedout => "read_timeout",
        ErrorType::WriteTimedout => "write_timeout",
        ErrorType::ConnectionClosed => "closed",
        ErrorType::ReadError => "read_error",
        ErrorType::WriteError => "write_error",
        ErrorType::H1Error
        | ErrorType::H2Error
        | ErrorType::InvalidH2
        | ErrorType::InvalidHTTPHeader => "protocol",
        // A status the route retries is turned into an error on purpose (proxy::retrying).
        ErrorType::Custom(_) | ErrorType::HTTPStatus(_) => return None,
        _ => "error",
    })
}

/// Counters of failed upstream attempts (retried ones included); clones share them.
#[derive(Clone)]
pub struct UpstreamErrorMetrics {
    /// `sluice_upstream_connect_errors_total{backend,reason}`.
    pub connect: IntCounterVec,
    /// `sluice_upstream_errors_total{backend,reason}`.
    pub proxy: IntCounterVec,
}

impl UpstreamErrorMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<UpstreamErrorMetrics> {
        let connect = IntCounterVec::new(
            Opts::new(
                "sluice_upstream_connect_errors_total",
                "Failed connections to backend endpoints, by backend and reason.",
            ),
            &["backend", "reason"],
        )?;
        let proxy = IntCounterVec::new(
            Opts::new(
                "sluice_upstream_errors_total",
                "Upstream attempts that failed after connecting, by backend and reason.",
            ),
            &["backend", "reason"],
        )?;
        registry.register(Box::new(connect.clone()))?;
        registry.register(Box::new(proxy.clone()))?;
        Ok(UpstreamErrorMetrics { connect, proxy })
    }

    pub fn connect_failed(&self, backend: &str, e: &Error) {
        self.connect
            .with_label_values(&[backend, connect_reason(e)])
            .inc();
    }

    pub fn proxy_failed(&self, backend: &str, e: &Error) {
        if let Some(reason) = proxy_reason(e) {
            self.proxy.with_label_values(&[backend, reason]).inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_failures_are_labelled_by_a_bounded_reason() {
        for (etype, reason) in [
            (ErrorType::ConnectRefused, "refused"),
            (ErrorType::ConnectTimedout, "timeout"),
            (ErrorType::TLSHandshakeFailure, "tls"),
            (ErrorType::SocketError, "error"),
        ] {
            assert_eq!(connect_reason(&Error::new(etype)), reason);
        }
    }

    #[test]
    fn only_the_backends_failures_count_after_connecting() {
        let up = |etype| *Error::new(etype).into_up();
        assert_eq!(
            proxy_reason(&up(ErrorType::ReadTimedout)),
            Some("read_timeout")
        );
        assert_eq!(proxy_reason(&up(ErrorType::H2Error)), Some("protocol"));
        assert_eq!(
            proxy_reason(&up(ErrorType::Custom("RetryableStatus"))),
            None
        );
        let client = *Error::new(ErrorType::ConnectionClosed).into_down();
        assert_eq!(proxy_reason(&client), None);
    }
}
