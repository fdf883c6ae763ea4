//! What a refused request is told, and how the edge guard hands that verdict to the proxy.
//!
//! The guard sits below Pingora and cannot write a response itself without racing a response
//! still being written for an earlier pipelined request. So it hands Pingora, in place of the
//! refused head, a marker request `GET /.sluice-edge/<secret>/<code> HTTP/1.1` that only this
//! process can forge (the secret is random per process); the proxy's first phase turns it into
//! the status, closes the connection and counts the reason. Pingora answers pipelined requests
//! in order, so the refusal comes after every response owed before it.

use std::sync::OnceLock;

/// Why a client's request was refused; each has its status and a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Violation {
    #[error("malformed request line")]
    BadRequestLine,
    #[error("unsupported HTTP version")]
    BadVersion,
    #[error("request line longer than the limit")]
    UriTooLong,
    #[error("header section larger than the limit")]
    HeaderTooLarge,
    #[error("more header fields than the limit")]
    TooManyHeaders,
    #[error("malformed header field")]
    BadHeader,
    #[error("bare CR, bare LF or NUL in the message framing")]
    BareCrLf,
    #[error("obsolete line folding")]
    ObsFold,
    #[error("HTTP/1.1 request without Host")]
    MissingHost,
    #[error("more than one Host")]
    DuplicateHost,
    #[error("Host is not uri-host[:port]")]
    BadHost,
    #[error("both Content-Length and Transfer-Encoding")]
    ContentLengthWithTransferEncoding,
    #[error("Content-Length is not one non-negative decimal")]
    BadContentLength,
    #[error("Transfer-Encoding on an HTTP/1.0 request")]
    TransferEncodingOnHttp10,
    #[error("Transfer-Encoding other than chunked")]
    UnsupportedTransferEncoding,
    #[error("malformed Transfer-Encoding")]
    BadTransferEncoding,
    #[error("malformed chunked body framing")]
    BadChunk,
    #[error("an expectation other than 100-continue")]
    UnsupportedExpect,
    #[error("request head not received within the client header timeout")]
    HeaderTimeout,
}

impl Violation {
    pub const ALL: [Violation; 19] = [
        Violation::BadRequestLine,
        Violation::BadVersion,
        Violation::UriTooLong,
        Violation::HeaderTooLarge,
        Violation::TooManyHeaders,
        Violation::BadHeader,
        Violation::BareCrLf,
        Violation::ObsFold,
        Violation::MissingHost,
        Violation::DuplicateHost,
        Violation::BadHost,
        Violation::ContentLengthWithTransferEncoding,
        Violation::BadContentLength,
        Violation::TransferEncodingOnHttp10,
        Violation::UnsupportedTransferEncoding,
        Violation::BadTransferEncoding,
        Violation::BadChunk,
        Violation::UnsupportedExpect,
        Violation::HeaderTimeout,
    ];

    /// The status the client gets.
    pub fn status(self) -> u16 {
        match self {
            Violation::UriTooLong => 414,
            Violation::HeaderTooLarge | Violation::TooManyHeaders => 431,
            Violation::BadVersion => 505,
            Violation::UnsupportedTransferEncoding => 501,
            Violation::UnsupportedExpect => 417,
            Violation::HeaderTimeout => 408,
            _ => 400,
        }
    }

    /// The `reason` label of `sluice_downstream_requests_rejected_total`.
    pub fn label(self) -> &'static str {
        match self {
            Violation::BadRequestLine => "bad_request_line",
            Violation::BadVersion => "bad_version",
            Violation::UriTooLong => "uri_too_long",
            Violation::HeaderTooLarge => "header_too_large",
            Violation::TooManyHeaders => "too_many_headers",
            Violation::BadHeader => "bad_header",
            Violation::BareCrLf => "bare_cr_lf",
            Violation::ObsFold => "obs_fold",
            Violation::MissingHost => "missing_host",
            Violation::DuplicateHost => "duplicate_host",
            Violation::BadHost => "bad_host",
            Violation::ContentLengthWithTransferEncoding => "cl_and_te",
            Violation::BadContentLength => "bad_content_length",
            Violation::TransferEncodingOnHttp10 => "te_on_http10",
            Violation::UnsupportedTransferEncoding => "unsupported_te",
            Violation::BadTransferEncoding => "bad_te",
            Violation::BadChunk => "bad_chunk",
            Violation::UnsupportedExpect => "unsupported_expect",
            Violation::HeaderTimeout => "header_timeout",
        }
    }

    fn code(self) -> usize {
        Violation::ALL.iter().position(|v| *v == self).unwrap_or(0)
    }

    fn from_code(code: usize) -> Option<Violation> {
        Violation::ALL.get(code).copied()
    }
}

/// A refused request, as the proxy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection(pub Violation);

const PREFIX: &str = "/.sluice-edge/";

fn secret() -> &'static str {
    static SECRET: OnceLock<String> = OnceLock::new();
    SECRET.get_or_init(|| format!("{:032x}", rand::random::<u128>()))
}

/// The marker request that stands in for a refused head.
pub(super) fn marker_request(violation: Violation) -> Vec<u8> {
    format!(
        "GET {PREFIX}{}/{} HTTP/1.1\r\nhost: sluice.invalid\r\nconnection: close\r\n\r\n",
        secret(),
        violation.code()
    )
    .into_bytes()
}

/// The refusal a request head stands for, if it is this process's marker. A client that sends
/// the prefix without the secret gets no special treatment.
pub fn rejection(path: &str) -> Option<Rejection> {
    let rest = path.strip_prefix(PREFIX)?;
    let (given, code) = rest.split_once('/')?;
    if given != secret() {
        return None;
    }
    code.parse()
        .ok()
        .and_then(Violation::from_code)
        .map(Rejection)
}

/// An error a body read fails with when the body's framing is refused after its head was
/// proxied; the proxy answers 400 if nothing was answered yet.
#[derive(Debug, thiserror::Error)]
#[error("request refused at the edge: {0}")]
pub struct BodyRejected(pub Violation);

impl BodyRejected {
    pub(super) fn io(violation: Violation) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, BodyRejected(violation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_violation_round_trips_through_its_marker() {
        for v in Violation::ALL {
            let marker = String::from_utf8(marker_request(v)).expect("ascii");
            let path = marker.split(' ').nth(1).expect("target");
            assert_eq!(rejection(path), Some(Rejection(v)), "{marker}");
        }
    }

    #[test]
    fn a_forged_marker_without_the_secret_is_an_ordinary_path() {
        assert_eq!(
            rejection("/.sluice-edge/00000000000000000000000000000000/0"),
            None
        );
        assert_eq!(rejection("/.sluice-edge/"), None);
        assert_eq!(rejection("/"), None);
    }

    #[test]
    fn labels_are_distinct() {
        let labels: std::collections::HashSet<_> =
            Violation::ALL.iter().map(|v| v.label()).collect();
        assert_eq!(labels.len(), Violation::ALL.len());
    }
}
