//! The strict check of one complete HTTP/1 request head (RFC 9112 §2–§7, RFC 9110 §5, §7.2, §8.6).
//!
//! Anything ambiguous is refused, never repaired: a head either passes as the client wrote it, or
//! the client gets a 4xx/5xx and the connection closes. Pure and allocation-free, so it is fuzzed.

use super::chars;
use super::limits::EdgeLimits;
use super::reject::Violation;

/// How the body after a head is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body (neither Content-Length nor Transfer-Encoding).
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// What the framer needs to know about a head that passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadInfo {
    pub body: BodyFraming,
    /// The request asks to switch protocols (`Upgrade`); after a 101 the bytes are not HTTP.
    pub upgrade: bool,
}

/// Checks `head`: the request line through the blank line that ends the header section,
/// CRLF-terminated (`...\r\n\r\n`).
pub fn check(head: &[u8], limits: &EdgeLimits) -> Result<HeadInfo, Violation> {
    let body = head.strip_suffix(b"\r\n\r\n").ok_or(Violation::BareCrLf)?;
    let mut lines = Lines {
        rest: body,
        done: false,
    };
    let request_line = lines.next().ok_or(Violation::BadRequestLine)??;
    if request_line.len() > limits.max_request_line {
        return Err(Violation::UriTooLong);
    }
    let (method, http10) = check_request_line(request_line)?;
    if body.len() - request_line.len() > limits.max_header_bytes {
        return Err(Violation::HeaderTooLarge);
    }

    let mut fields = 0usize;
    let mut hosts = 0usize;
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding = TransferCoding::Absent;
    let mut upgrade = false;
    for line in lines {
        let line = line?;
        fields += 1;
        if fields > limits.max_header_fields {
            return Err(Violation::TooManyHeaders);
        }
        let (name, value) = split_field(line)?;
        if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
            if hosts > 1 {
                return Err(Violation::DuplicateHost);
            }
            check_host(value)?;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            if content_length.is_some() {
                return Err(Violation::BadContentLength);
            }
            content_length = Some(parse_content_length(value)?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            transfer_encoding = transfer_encoding.add(value)?;
        } else if name.eq_ignore_ascii_case(b"expect") {
            if !value.eq_ignore_ascii_case(b"100-continue") {
                return Err(Violation::UnsupportedExpect);
            }
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            upgrade = true;
        }
    }
    if hosts == 0 && !http10 {
        return Err(Violation::MissingHost);
    }
    let body = match (content_length, transfer_encoding) {
        (Some(_), TransferCoding::Chunked) => {
            return Err(Violation::ContentLengthWithTransferEncoding)
        }
        (None, TransferCoding::Chunked) if http10 => {
            return Err(Violation::TransferEncodingOnHttp10)
        }
        (None, TransferCoding::Chunked) => BodyFraming::Chunked,
        (Some(0) | None, TransferCoding::Absent) => BodyFraming::None,
        (Some(n), TransferCoding::Absent) => BodyFraming::Length(n),
    };
    // CONNECT turns the connection into a tunnel; Pingora refuses it (405) and closes.
    let upgrade = upgrade && method != b"CONNECT";
    Ok(HeadInfo { body, upgrade })
}

/// CRLF-separated lines; a CR or LF inside a line is an error.
struct Lines<'a> {
    rest: &'a [u8],
    done: bool,
}

impl<'a> Iterator for Lines<'a> {
    type Item = Result<&'a [u8], Violation>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let (line, rest) = match memchr::memchr(b'\n', self.rest) {
            Some(i) => match self.rest[..i].strip_suffix(b"\r") {
                Some(line) => (line, &self.rest[i + 1..]),
                None => return Some(Err(Violation::BareCrLf)),
            },
            None => {
                self.done = true;
                (self.rest, &b""[..])
            }
        };
        self.rest = rest;
        // A CR or NUL left inside a line is caught by the checks of what the line holds.
        Some(Ok(line))
    }
}

/// `method SP request-target SP HTTP-version`; returns the method and whether it is HTTP/1.0.
fn check_request_line(line: &[u8]) -> Result<(&[u8], bool), Violation> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Violation::BadRequestLine);
    };
    if method.is_empty() || !chars::all(method, chars::TCHAR) {
        return Err(Violation::BadRequestLine);
    }
    let http10 = match version {
        b"HTTP/1.1" => false,
        b"HTTP/1.0" => true,
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            return Err(Violation::BadVersion)
        }
        _ => return Err(Violation::BadRequestLine),
    };
    check_target(method, target)?;
    Ok((method, http10))
}

/// The four request-target forms of RFC 9112 §3.2, each only where it belongs; no whitespace or
/// control bytes anywhere (a space would have made a fourth part of the request line).
fn check_target(method: &[u8], target: &[u8]) -> Result<(), Violation> {
    if target.is_empty() || target.iter().any(|&b| chars::is(b, chars::BAD_IN_TARGET)) {
        return Err(Violation::BadRequestLine);
    }
    let valid = if method == b"CONNECT" {
        check_host(target).is_ok() && target.contains(&b':')
    } else if target == b"*" {
        method == b"OPTIONS"
    } else if target.starts_with(b"/") {
        true
    } else {
        absolute_authority(target).is_some_and(|a| check_host(a).is_ok())
    };
    if valid {
        Ok(())
    } else {
        Err(Violation::BadRequestLine)
    }
}

/// The authority of an absolute-form `http://` or `https://` target.
fn absolute_authority(target: &[u8]) -> Option<&[u8]> {
    let lower = |n: usize| target.get(..n).map(|p| p.to_ascii_lowercase());
    let rest = if lower(7).as_deref() == Some(b"http://") {
        &target[7..]
    } else if lower(8).as_deref() == Some(b"https://") {
        &target[8..]
    } else {
        return None;
    };
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

/// `field-name ":" OWS field-value OWS`, the name a token with nothing between it and the colon.
fn split_field(line: &[u8]) -> Result<(&[u8], &[u8]), Violation> {
    if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
        return Err(Violation::ObsFold);
    }
    let colon = memchr::memchr(b':', line).ok_or(Violation::BadHeader)?;
    let name = &line[..colon];
    if name.is_empty() || !chars::all(name, chars::TCHAR) {
        return Err(if chars::is(line[0], chars::FRAMING) {
            Violation::BareCrLf
        } else {
            Violation::BadHeader
        });
    }
    let value = trim_ows(&line[colon + 1..]);
    // field-vchar / SP / HTAB / obs-text: every control byte but HTAB is refused.
    if let Some(&bad) = value.iter().find(|&&b| chars::is(b, chars::BAD_IN_VALUE)) {
        return Err(if chars::is(bad, chars::FRAMING) {
            Violation::BareCrLf
        } else {
            Violation::BadHeader
        });
    }
    Ok((name, value))
}

fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

fn parse_content_length(value: &[u8]) -> Result<u64, Violation> {
    crate::http_fields::content_length(value).ok_or(Violation::BadContentLength)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TransferCoding {
    Absent,
    Chunked,
}

impl TransferCoding {
    /// Sluice forwards only `chunked`, once, as the whole coding: anything else is refused
    /// (501 for a coding it does not implement, 400 for a malformed or repeated one).
    fn add(self, value: &[u8]) -> Result<TransferCoding, Violation> {
        if self != TransferCoding::Absent {
            return Err(Violation::BadTransferEncoding);
        }
        let mut codings = value.split(|&b| b == b',').map(trim_ows);
        let first = codings.next().unwrap_or_default();
        if first.is_empty() {
            return Err(Violation::BadTransferEncoding);
        }
        match (first.eq_ignore_ascii_case(b"chunked"), codings.next()) {
            (true, None) => Ok(TransferCoding::Chunked),
            (true, Some(_)) => Err(Violation::BadTransferEncoding),
            (false, _) if chars::all(first, chars::TCHAR) => {
                Err(Violation::UnsupportedTransferEncoding)
            }
            (false, _) => Err(Violation::BadTransferEncoding),
        }
    }
}

/// `uri-host [ ":" port ]` (RFC 9110 §7.2): a reg-name, IPv4 address or bracketed IP literal,
/// and an optional port of digits. `a/b`, `a@b`, spaces and empty hosts are refused.
pub fn check_host(value: &[u8]) -> Result<(), Violation> {
    let (host, port) = if value.first() == Some(&b'[') {
        let close = value
            .iter()
            .position(|&b| b == b']')
            .ok_or(Violation::BadHost)?;
        let literal = &value[1..close];
        let literal_ok = !literal.is_empty()
            && literal
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'));
        if !literal_ok {
            return Err(Violation::BadHost);
        }
        match &value[close + 1..] {
            [] => (&value[..=close], None),
            [b':', port @ ..] => (&value[..=close], Some(port)),
            _ => return Err(Violation::BadHost),
        }
    } else {
        match value.iter().position(|&b| b == b':') {
            Some(i) => (&value[..i], Some(&value[i + 1..])),
            None => (value, None),
        }
    };
    let reg_name_ok =
        host.first() == Some(&b'[') || (!host.is_empty() && chars::all(host, chars::REG_NAME));
    let port_ok = port.is_none_or(|p| p.len() <= 5 && p.iter().all(u8::is_ascii_digit));
    if reg_name_ok && port_ok {
        Ok(())
    } else {
        Err(Violation::BadHost)
    }
}

#[cfg(test)]
#[path = "head/tests.rs"]
mod tests;
