//! The parts of an answer a discarding reader needs: where its head ends, how its body is
//! framed (RFC 9112 §6.3), and whether the connection may carry another request. The limits
//! and the keep-alive rules are Pingora's client session's.

use std::mem::MaybeUninit;

use bytes::{Buf, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use pingora_error::{Error, ErrorType, Result};
use pingora_http::RequestHeader;

use crate::http_fields::{content_length, list_elements};

/// The longest answer head, chunk line or trailer section read (Pingora's `MAX_HEADER_SIZE`).
pub(super) const MAX_HEAD_BYTES: usize = 1_048_575;
/// Header fields in one answer head (Pingora's `MAX_HEADERS`).
const MAX_HEADERS: usize = 256;

/// A complete answer head at the start of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum AnswerHead {
    /// A 1xx other than 101, this many bytes long; the real answer follows it.
    Informational(usize),
    Final(Answer),
}

#[derive(Debug, PartialEq, Eq)]
pub(super) struct Answer {
    pub status: u16,
    pub head_len: usize,
    pub framing: Framing,
    /// The answer lets the connection carry another request, once its body has been read.
    pub keep_alive: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body: an answer to HEAD, a 204, a 304 or a 101.
    Empty,
    Length(u64),
    Chunked,
    /// The body ends when the mirror closes the connection.
    UntilClose,
}

/// The answer head at the start of `buf`; `None` until all of it has arrived.
pub(super) fn parse_head(buf: &[u8], head_request: bool) -> Result<Option<AnswerHead>> {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let mut config = httparse::ParserConfig::default();
    // Pingora's client accepts these too; an answer it reads is an answer we read.
    config.allow_spaces_after_header_name_in_responses(true);
    config.allow_obsolete_multiline_headers_in_responses(true);
    let head_len = match config.parse_response_with_uninit_headers(&mut response, buf, &mut headers)
    {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => {
            return Err(Error::explain(
                ErrorType::InvalidHTTPHeader,
                format!("the mirror's answer head is malformed: {e}"),
            ))
        }
    };
    let status = response.code.unwrap_or_default();
    if (100..200).contains(&status) && status != 101 {
        return Ok(Some(AnswerHead::Informational(head_len)));
    }
    let http10 = response.version == Some(0);
    let fields = Fields::of(response.headers);
    let mut keep_alive = match fields.connection {
        Some(keep) => keep,
        None => !http10,
    };
    let framing = if status == 101 {
        // Never asked for (upgrades are not mirrored): the connection is not HTTP any more.
        keep_alive = false;
        Framing::Empty
    } else if head_request || status == 204 || status == 304 {
        Framing::Empty
    } else if let Some(chunked) = fields.chunked {
        // RFC 9112 §6.1: an HTTP/1.0 answer with Transfer-Encoding ends its connection, and
        // one that also declares a length may be an attempt at splitting: not reused either.
        if http10 || fields.length.is_some() {
            keep_alive = false;
        }
        if chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else {
        match fields.length {
            Some(Ok(length)) => Framing::Length(length),
            Some(Err(())) => {
                return Err(Error::explain(
                    ErrorType::InvalidHTTPHeader,
                    "the mirror's answer has an invalid or conflicting Content-Length",
                ))
            }
            None => Framing::UntilClose,
        }
    };
    Ok(Some(AnswerHead::Final(Answer {
        status,
        head_len,
        framing,
        keep_alive,
    })))
}

/// What the framing and keep-alive rules read from an answer's fields.
#[derive(Default)]
struct Fields {
    /// From `Connection`: `Some(false)` for `close`, `Some(true)` for `keep-alive`.
    connection: Option<bool>,
    /// From `Transfer-Encoding`: whether the final coding is `chunked`.
    chunked: Option<bool>,
    /// From `Content-Length`: its one value, or `Err` when one is invalid or they disagree
    /// (identical repeats are one value, as RFC 9110 §8.6 allows).
    length: Option<Result<u64, ()>>,
}

impl Fields {
    fn of(headers: &[httparse::Header<'_>]) -> Fields {
        let mut fields = Fields::default();
        for field in headers {
            if field.name.eq_ignore_ascii_case(CONNECTION.as_str()) {
                for token in list_elements(field.value) {
                    if token.eq_ignore_ascii_case(b"close") {
                        fields.connection = Some(false);
                    } else if token.eq_ignore_ascii_case(b"keep-alive")
                        && fields.connection.is_none()
                    {
                        fields.connection = Some(true);
                    }
                }
            } else if field.name.eq_ignore_ascii_case(TRANSFER_ENCODING.as_str()) {
                // Codings apply in order; only the last one says how the body ends.
                if let Some(last) = list_elements(field.value).last() {
                    fields.chunked = Some(last.eq_ignore_ascii_case(b"chunked"));
                }
            } else if field.name.eq_ignore_ascii_case(CONTENT_LENGTH.as_str()) {
                for value in field.value.split(|b| *b == b',') {
                    let parsed = content_length(value.trim_ascii());
                    fields.length = Some(match (fields.length, parsed) {
                        (None, Some(n)) => Ok(n),
                        (Some(Ok(seen)), Some(n)) if seen == n => Ok(n),
                        _ => Err(()),
                    });
                }
            }
        }
        fields
    }
}

/// Whether the copy's own head asks to close the connection after this exchange.
pub(super) fn request_closes(head: &RequestHeader) -> bool {
    head.headers
        .get_all(CONNECTION)
        .iter()
        .any(|v| list_elements(v.as_bytes()).any(|t| t.eq_ignore_ascii_case(b"close")))
}

/// Where a chunked body being skipped is.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    Data(u64),
    /// The CRLF that ends a chunk's data.
    DataEnd,
    /// After the last chunk: trailer fields, then an empty line.
    Trailers,
}

/// A chunked body skipped as it arrives.
#[derive(Debug, Default)]
pub(super) struct Chunked {
    state: ChunkState,
}

impl Chunked {
    /// Consumes as much of `buf` as belongs to the body; `true` once the body and its trailers
    /// have ended, `false` when more bytes are needed.
    pub(super) fn skip(&mut self, buf: &mut BytesMut) -> Result<bool> {
        loop {
            match self.state {
                ChunkState::Size => match httparse::parse_chunk_size(buf) {
                    Ok(httparse::Status::Complete((len, size))) => {
                        buf.advance(len);
                        self.state = if size == 0 {
                            ChunkState::Trailers
                        } else {
                            ChunkState::Data(size)
                        };
                    }
                    Ok(httparse::Status::Partial) => return Ok(false),
                    Err(_) => return Err(invalid("an invalid chunk size")),
                },
                ChunkState::Data(left) => {
                    let here = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
                    buf.advance(here);
                    let left = left - here as u64;
                    if left > 0 {
                        self.state = ChunkState::Data(left);
                        return Ok(false);
                    }
                    self.state = ChunkState::DataEnd;
                }
                ChunkState::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(false);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(invalid("chunk data longer than its size"));
                    }
                    buf.advance(2);
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailers => {
                    if buf.starts_with(b"\r\n") {
                        buf.advance(2);
                        return Ok(true);
                    }
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        return Ok(false);
                    };
                    buf.advance(end + 4);
                    return Ok(true);
                }
            }
        }
    }
}

fn invalid(what: &str) -> Box<Error> {
    Error::explain(
        ErrorType::InvalidHTTPHeader,
        format!("the mirror's chunked answer has {what}"),
    )
}

#[cfg(test)]
mod tests;
