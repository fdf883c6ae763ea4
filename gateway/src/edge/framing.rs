//! The client's byte stream cut into HTTP/1 messages, each proven before Pingora sees it.
//!
//! Sans-IO: [`Framer::advance`] looks at the bytes not yet handed on and says how many of them
//! may go to Pingora now, or why the stream is refused. A head passes only whole and checked;
//! body bytes pass as their framing (Content-Length or chunked, RFC 9112 §6–§7) proves them,
//! never a byte past the end of the message; what follows is the next head.

use super::chars;
use super::head::{self, BodyFraming};
use super::limits::EdgeLimits;
use super::reject::Violation;

/// The longest chunk-size line (size, extensions and CRLF) accepted.
const MAX_CHUNK_LINE: usize = 4096;

/// What to do with the bytes at the front of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The first `n` bytes are proven: hand them to Pingora.
    Pass(usize),
    /// The first `n` bytes are empty lines before a request line (RFC 9112 §2.2): drop them.
    Discard(usize),
    /// Not enough bytes to decide; read more.
    NeedMore,
    /// The bytes wait until the response to an upgrade request says whether it switched.
    Hold,
    /// The message is refused.
    Refuse(Violation),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Awaiting a request head; `scanned` bytes of it were already searched for its end, and
    /// the request line ends at `line_end` once that is known.
    Head {
        scanned: usize,
        line_end: Option<usize>,
    },
    Length {
        remaining: u64,
    },
    Chunked(Chunk),
    /// An upgrade request was passed; its response is not known yet.
    AwaitUpgrade,
    /// The connection switched protocols: bytes are no longer HTTP/1.
    Tunnel,
    Refused(Violation),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading a chunk-size line; `len` bytes of it so far, `digits` hex digits, `size` so far.
    Size {
        len: usize,
        digits: u8,
        size: u64,
        ext: bool,
    },
    /// The CR of a chunk-size line was read; LF must follow.
    SizeLf {
        size: u64,
    },
    Data {
        remaining: u64,
    },
    DataCr,
    DataLf,
    /// Reading the trailer section; `len` bytes so far, `line` bytes of the current line.
    Trailer {
        len: usize,
        line: usize,
        fields: usize,
    },
    TrailerLf {
        len: usize,
        line: usize,
        fields: usize,
    },
}

/// Frames one connection's requests.
#[derive(Debug, Clone)]
pub struct Framer {
    state: State,
    limits: EdgeLimits,
    /// Requests whose head has passed.
    heads: u64,
}

impl Framer {
    pub fn new(limits: EdgeLimits) -> Framer {
        Framer {
            state: State::Head {
                scanned: 0,
                line_end: None,
            },
            limits,
            heads: 0,
        }
    }

    /// Heads passed so far on this connection.
    pub fn heads(&self) -> u64 {
        self.heads
    }

    /// Between messages with no byte of the next head seen: the connection is idle.
    pub fn at_message_start(&self) -> bool {
        // A pattern, not `==`: the derived `PartialEq` was an out-of-line call on every read.
        matches!(
            self.state,
            State::Head {
                scanned: 0,
                line_end: None,
            }
        )
    }

    /// Inside an unfinished request head.
    pub fn in_head(&self) -> bool {
        matches!(self.state, State::Head { .. })
    }

    /// Inside a request body.
    pub fn in_body(&self) -> bool {
        matches!(self.state, State::Length { .. } | State::Chunked(_))
    }

    pub fn awaiting_upgrade(&self) -> bool {
        matches!(self.state, State::AwaitUpgrade)
    }

    /// The response to the upgrade request is known: 101 switches to a tunnel.
    pub fn upgrade_answered(&mut self, switched: bool) {
        if self.state == State::AwaitUpgrade {
            self.state = if switched {
                State::Tunnel
            } else {
                State::Head {
                    scanned: 0,
                    line_end: None,
                }
            };
        }
    }

    /// Refuses the rest of the stream (e.g. the header deadline passed).
    pub fn refuse(&mut self, violation: Violation) {
        self.state = State::Refused(violation);
    }

    /// Decides about the front of `input`, the bytes not yet handed on or dropped.
    pub fn advance(&mut self, input: &[u8]) -> Step {
        let step = match self.state {
            State::Refused(v) => Step::Refuse(v),
            State::Tunnel => Step::Pass(input.len()),
            State::AwaitUpgrade => Step::Hold,
            State::Head { scanned, line_end } => self.head(input, scanned, line_end),
            State::Length { remaining } => {
                let n = usize::try_from(remaining)
                    .unwrap_or(usize::MAX)
                    .min(input.len());
                let remaining = remaining - n as u64;
                self.state = if remaining == 0 {
                    State::Head {
                        scanned: 0,
                        line_end: None,
                    }
                } else {
                    State::Length { remaining }
                };
                Step::Pass(n)
            }
            State::Chunked(chunk) => self.chunked(input, chunk),
        };
        if let Step::Refuse(v) = step {
            self.state = State::Refused(v);
        }
        step
    }

    fn head(&mut self, input: &[u8], scanned: usize, line_end: Option<usize>) -> Step {
        // A request line never starts with CR, so a head scanned this little is still blank lines.
        if scanned < 2 {
            let blank = input.chunks(2).take_while(|pair| *pair == b"\r\n").count();
            if blank > 0 {
                return Step::Discard(blank * 2);
            }
        }
        // Most heads arrive whole and sound: find the end and check the head once. A head that
        // passes the check has no bare CR, LF or NUL, so the byte-by-byte scan below would pass
        // it too; it runs only when the head is unfinished or refused, to refuse it exactly as
        // it always did (the first bad framing byte wins over the rest of the check).
        // A read that holds exactly one head ends with its CRLFCRLF: checking it as it is also
        // proves no earlier CRLFCRLF ends it sooner (the empty line would fail the check).
        let end = if input.ends_with(b"\r\n\r\n") {
            Some(input.len())
        } else {
            head_end(input, scanned.saturating_sub(3))
        };
        if let Some(end) = end {
            if let Ok(info) = head::check(&input[..end], &self.limits) {
                return self.passed(end, info);
            }
        }
        self.scan_head(input, scanned, line_end)
    }

    /// The head framed byte by byte: refuses at the first bad framing byte, and keeps an
    /// unfinished head's progress so the next read resumes where this one stopped.
    fn scan_head(&mut self, input: &[u8], scanned: usize, mut line_end: Option<usize>) -> Step {
        let limits = &self.limits;
        // One pass over the bytes that frame a head, resumed a little before the last scan
        // so a CRLF or CRLFCRLF split across reads is seen whole. A bare LF or CR (or a NUL)
        // would keep a head from ever ending as expected: it is refused at once.
        let from = scanned.saturating_sub(3);
        let mut end = None;
        // Heads are short: a table-driven scalar pass beats SIMD set-up per hit here.
        for i in from..input.len() {
            if !chars::is(input[i], chars::FRAMING) {
                continue;
            }
            match input[i] {
                b'\r' => {
                    if input.get(i + 1).is_some_and(|&n| n != b'\n') {
                        return Step::Refuse(Violation::BareCrLf);
                    }
                }
                b'\n' => {
                    if i == 0 || input[i - 1] != b'\r' {
                        return Step::Refuse(Violation::BareCrLf);
                    }
                    line_end.get_or_insert(i - 1);
                    if i >= 3 && input[i - 3..i] == *b"\r\n\r" {
                        end = Some(i + 1);
                        break;
                    }
                }
                _ => return Step::Refuse(Violation::BareCrLf),
            }
        }
        if line_end.unwrap_or(input.len()) > limits.max_request_line {
            return Step::Refuse(Violation::UriTooLong);
        }
        let Some(end) = end else {
            let header_bytes = input.len() - line_end.unwrap_or(input.len());
            if header_bytes > limits.max_header_bytes + 4 {
                return Step::Refuse(Violation::HeaderTooLarge);
            }
            self.state = State::Head {
                scanned: input.len(),
                line_end,
            };
            return Step::NeedMore;
        };
        match head::check(&input[..end], limits) {
            Ok(info) => self.passed(end, info),
            Err(v) => Step::Refuse(v),
        }
    }

    /// The first `end` bytes are a checked head: pass them and expect what `info` says follows.
    fn passed(&mut self, end: usize, info: head::HeadInfo) -> Step {
        self.heads += 1;
        self.state = match info.body {
            BodyFraming::None if info.upgrade => State::AwaitUpgrade,
            BodyFraming::None => State::Head {
                scanned: 0,
                line_end: None,
            },
            BodyFraming::Length(remaining) => State::Length { remaining },
            BodyFraming::Chunked => State::Chunked(Chunk::Size {
                len: 0,
                digits: 0,
                size: 0,
                ext: false,
            }),
        };
        Step::Pass(end)
    }

    /// Walks chunked framing over `input`; every byte it accepts passes as it was sent.
    fn chunked(&mut self, input: &[u8], mut chunk: Chunk) -> Step {
        let max_trailer = self.limits.max_header_bytes;
        let max_fields = self.limits.max_header_fields;
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            chunk = match chunk {
                Chunk::Size {
                    len,
                    digits,
                    size,
                    ext,
                } => {
                    if len + 1 > MAX_CHUNK_LINE {
                        return Step::Refuse(Violation::BadChunk);
                    }
                    if b == b'\r' {
                        if digits == 0 {
                            return Step::Refuse(Violation::BadChunk);
                        }
                        Chunk::SizeLf { size }
                    } else if ext {
                        // chunk-ext: tokens, quoted strings, BWS; no control bytes but HTAB.
                        if (b < b' ' && b != b'\t') || b == 0x7f {
                            return Step::Refuse(Violation::BadChunk);
                        }
                        Chunk::Size {
                            len: len + 1,
                            digits,
                            size,
                            ext,
                        }
                    } else if let Some(d) = (b as char).to_digit(16) {
                        if digits >= 16 || len > usize::from(digits) {
                            // Too long, or a digit after whitespace.
                            return Step::Refuse(Violation::BadChunk);
                        }
                        Chunk::Size {
                            len: len + 1,
                            digits: digits + 1,
                            size: (size << 4) | u64::from(d),
                            ext,
                        }
                    } else if digits > 0 && (b == b' ' || b == b'\t') {
                        Chunk::Size {
                            len: len + 1,
                            digits,
                            size,
                            ext,
                        }
                    } else if digits > 0 && b == b';' {
                        Chunk::Size {
                            len: len + 1,
                            digits,
                            size,
                            ext: true,
                        }
                    } else {
                        return Step::Refuse(Violation::BadChunk);
                    }
                }
                Chunk::SizeLf { size } => {
                    if b != b'\n' {
                        return Step::Refuse(Violation::BadChunk);
                    }
                    if size == 0 {
                        Chunk::Trailer {
                            len: 0,
                            line: 0,
                            fields: 0,
                        }
                    } else {
                        Chunk::Data { remaining: size }
                    }
                }
                Chunk::Data { remaining } => {
                    let n = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(input.len() - i);
                    i += n;
                    let remaining = remaining - n as u64;
                    chunk = if remaining == 0 {
                        Chunk::DataCr
                    } else {
                        Chunk::Data { remaining }
                    };
                    continue;
                }
                Chunk::DataCr if b == b'\r' => Chunk::DataLf,
                Chunk::DataLf if b == b'\n' => Chunk::Size {
                    len: 0,
                    digits: 0,
                    size: 0,
                    ext: false,
                },
                Chunk::DataCr | Chunk::DataLf => return Step::Refuse(Violation::BadChunk),
                Chunk::Trailer { len, line, fields } => {
                    if len + 1 > max_trailer {
                        return Step::Refuse(Violation::HeaderTooLarge);
                    }
                    if b == b'\r' {
                        Chunk::TrailerLf {
                            len: len + 1,
                            line,
                            fields,
                        }
                    } else if b == b'\n' || b == 0 || (line == 0 && (b == b' ' || b == b'\t')) {
                        return Step::Refuse(Violation::BadChunk);
                    } else {
                        Chunk::Trailer {
                            len: len + 1,
                            line: line + 1,
                            fields,
                        }
                    }
                }
                Chunk::TrailerLf { len, line, fields } => {
                    if b != b'\n' {
                        return Step::Refuse(Violation::BadChunk);
                    }
                    if line == 0 {
                        // The empty line that ends the message.
                        self.state = State::Head {
                            scanned: 0,
                            line_end: None,
                        };
                        return Step::Pass(i + 1);
                    }
                    if fields + 1 > max_fields {
                        return Step::Refuse(Violation::TooManyHeaders);
                    }
                    Chunk::Trailer {
                        len: len + 1,
                        line: 0,
                        fields: fields + 1,
                    }
                }
            };
            i += 1;
        }
        self.state = State::Chunked(chunk);
        if i == 0 {
            Step::NeedMore
        } else {
            Step::Pass(i)
        }
    }
}

/// Where the head at the front of `input` ends (just past its CRLFCRLF), looking for an end no
/// earlier than `from`: the line feeds are found by `memchr`, and only they are looked at.
fn head_end(input: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while let Some(i) = memchr::memchr(b'\n', input.get(at..)?) {
        let lf = at + i;
        if lf >= 3 && input[lf - 3..lf] == *b"\r\n\r" {
            return Some(lf + 1);
        }
        at = lf + 1;
    }
    None
}

#[cfg(test)]
#[path = "framing/tests.rs"]
mod tests;
