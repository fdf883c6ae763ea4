//! gRPC as the HTTP data plane sees it: which requests are gRPC calls, the status code a gRPC
//! client should see for an answer Sluice gives itself, and that answer as a Trailers-Only
//! response (see `docs/request-lifecycle.md`, "Answers to gRPC calls").

use std::time::Duration;

use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, Version};
use pingora_error::{ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};

pub const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
pub const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
pub const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// The gRPC status codes Sluice answers with (grpc/doc/statuscodes.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Code {
    Unknown = 2,
    DeadlineExceeded = 4,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    Unauthenticated = 16,
}

impl Code {
    /// The code for an HTTP status Sluice would otherwise answer with: gRPC's "HTTP to gRPC
    /// Status Code Mapping" (as Envoy applies it to its local replies), except where Sluice
    /// knows more than the status says:
    /// - 500 is Sluice's own failure or an invalid backendRef (a broken invariant): INTERNAL,
    ///   not UNKNOWN, and not UNAVAILABLE, which clients retry although nothing will change.
    /// - 504 is the route's request timeout: the call ran out of time (DEADLINE_EXCEEDED), and
    ///   may have reached the backend, so it must not invite the transparent retry UNAVAILABLE
    ///   does. A connect timeout is UNAVAILABLE ([`Code::for_error`]).
    /// - 408 (the client stalled mid-body) is DEADLINE_EXCEEDED; 413 and 431 (too large) are
    ///   RESOURCE_EXHAUSTED, gRPC's code for a message over a size limit.
    pub fn for_status(status: u16) -> Code {
        match status {
            400 | 500 => Code::Internal,
            401 => Code::Unauthenticated,
            403 => Code::PermissionDenied,
            404 => Code::Unimplemented,
            408 | 504 => Code::DeadlineExceeded,
            413 | 431 => Code::ResourceExhausted,
            429 | 502 | 503 => Code::Unavailable,
            _ => Code::Unknown,
        }
    }

    /// [`Code::for_status`] for a failed proxy attempt: a backend that could not even be
    /// connected to in time is UNAVAILABLE (nothing reached it), not DEADLINE_EXCEEDED.
    pub fn for_error(status: u16, etype: &ErrorType) -> Code {
        match etype {
            ErrorType::ConnectTimedout => Code::Unavailable,
            _ => Code::for_status(status),
        }
    }

    pub fn value(self) -> u8 {
        self as u8
    }
}

/// A gRPC call: HTTP/2 with `content-type` `application/grpc` or `application/grpc+<codec>`
/// (parameters allowed). gRPC-Web (`application/grpc-web*`) is not: it also runs over
/// HTTP/1.1, and its clients read a plain HTTP error status themselves.
pub fn is_call(req: &RequestHeader) -> bool {
    req.version == Version::HTTP_2
        && req
            .headers
            .get(CONTENT_TYPE)
            .is_some_and(|v| is_grpc_content_type(v.as_bytes()))
}

fn is_grpc_content_type(value: &[u8]) -> bool {
    const GRPC: &[u8] = b"application/grpc";
    let Some(prefix) = value.get(..GRPC.len()) else {
        return false;
    };
    prefix.eq_ignore_ascii_case(GRPC)
        && matches!(value.get(GRPC.len()), None | Some(b'+' | b';' | b' '))
}

/// A Trailers-Only response: HTTP 200, `application/grpc`, and the status in the one HEADERS
/// frame, to be written with end of stream and no body.
pub fn trailers_only(code: Code, message: &str) -> Result<ResponseHeader> {
    let mut resp = ResponseHeader::build(200, Some(3))?;
    resp.insert_header(CONTENT_TYPE, "application/grpc")?;
    resp.insert_header(GRPC_STATUS, code.value().to_string())?;
    if !message.is_empty() {
        resp.insert_header(GRPC_MESSAGE, percent_encode(message))?;
    }
    Ok(resp)
}

/// The `grpc-status` a response head or trailers carry, if any.
pub fn status_in(headers: &HeaderMap) -> Option<u32> {
    headers.get(GRPC_STATUS)?.to_str().ok()?.trim().parse().ok()
}

/// A call's `grpc-timeout` (PROTOCOL-HTTP2.md: at most 8 digits, then `H`, `M`, `S`, `m`,
/// `u` or `n`); `None` when absent or malformed (a malformed one is ignored, not refused).
pub fn timeout_of(req: &RequestHeader) -> Option<Duration> {
    let value = req.headers.get(GRPC_TIMEOUT)?.as_bytes();
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b"H" => Duration::from_secs(n * 3600),
        b"M" => Duration::from_secs(n * 60),
        b"S" => Duration::from_secs(n),
        b"m" => Duration::from_millis(n),
        b"u" => Duration::from_micros(n),
        b"n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// `grpc-message` is percent-encoded: every byte outside printable ASCII, and `%` itself
/// (PROTOCOL-HTTP2.md, "Responses").
fn percent_encode(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn request(version: Version, content_type: Option<&str>) -> RequestHeader {
        let mut req = RequestHeader::build("POST", b"/svc/Method", None).unwrap();
        req.set_version(version);
        if let Some(ct) = content_type {
            req.insert_header(CONTENT_TYPE, ct).unwrap();
        }
        req
    }

    #[test]
    fn only_http2_requests_with_a_grpc_content_type_are_calls() {
        for ct in [
            "application/grpc",
            "application/grpc+proto",
            "Application/GRPC+json",
            "application/grpc; charset=utf-8",
        ] {
            assert!(is_call(&request(Version::HTTP_2, Some(ct))), "{ct}");
        }
        for ct in ["application/grpc-web", "application/grpcx", "text/plain"] {
            assert!(!is_call(&request(Version::HTTP_2, Some(ct))), "{ct}");
        }
        assert!(!is_call(&request(Version::HTTP_2, None)));
        assert!(!is_call(&request(
            Version::HTTP_11,
            Some("application/grpc")
        )));
    }

    #[test]
    fn statuses_map_as_grpc_documents_with_sluice_choices_for_500_and_504() {
        assert_eq!(Code::for_status(404), Code::Unimplemented);
        assert_eq!(Code::for_status(503), Code::Unavailable);
        assert_eq!(Code::for_status(502), Code::Unavailable);
        assert_eq!(Code::for_status(500), Code::Internal);
        assert_eq!(Code::for_status(504), Code::DeadlineExceeded);
        assert_eq!(Code::for_status(400), Code::Internal);
        assert_eq!(Code::for_status(413), Code::ResourceExhausted);
        assert_eq!(Code::for_status(421), Code::Unknown);
        assert_eq!(
            Code::for_error(504, &ErrorType::ConnectTimedout),
            Code::Unavailable
        );
        assert_eq!(
            Code::for_error(504, &ErrorType::ReadTimedout),
            Code::DeadlineExceeded
        );
    }

    #[test]
    fn grpc_timeouts_parse_in_every_unit_and_malformed_ones_are_ignored() {
        let timeout = |value: &str| {
            let mut req = request(Version::HTTP_2, Some("application/grpc"));
            req.insert_header(GRPC_TIMEOUT, value).unwrap();
            timeout_of(&req)
        };
        assert_eq!(timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(timeout("3S"), Some(Duration::from_secs(3)));
        assert_eq!(timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(
            timeout("99999999u"),
            Some(Duration::from_micros(99_999_999))
        );
        assert_eq!(timeout("0n"), Some(Duration::ZERO));
        for bad in ["", "S", "123456789S", "10", "10s", "-1S", "1.5S", " 1S"] {
            assert_eq!(timeout(bad), None, "{bad:?}");
        }
        assert_eq!(timeout_of(&request(Version::HTTP_2, None)), None);
    }

    #[test]
    fn a_trailers_only_answer_carries_status_and_encoded_message() {
        let resp = trailers_only(Code::Unavailable, "no endpoints: 100% down\n").unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.headers["content-type"], "application/grpc");
        assert_eq!(status_in(&resp.headers), Some(14));
        assert_eq!(resp.headers["grpc-message"], "no endpoints: 100%25 down%0A");
        assert!(resp.headers.get("content-length").is_none());
    }
}
