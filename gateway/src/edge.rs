//! The edge guard: every byte of an HTTP/1 client is checked here before Pingora parses it.
//!
//! Pingora's HTTP/1 parser is lenient where an edge proxy must be strict (it normalises
//! `Content-Length` with `Transfer-Encoding`, escapes spaces in the request target, accepts bare
//! LF, holds up to 1 MiB of unfinished head per connection). Instead of forking it, each accepted
//! connection is wrapped in an [`EdgeStream`] that frames the client's bytes itself
//! ([`framing`]): a request head reaches Pingora only once it is complete and has passed
//! [`head::check`], body bytes only as their framing is proven, and nothing past the end of the
//! current message is validated ahead of time. A head that fails is replaced by a
//! [`reject`] marker request that the proxy answers (400, 408, 414, 431, 501, 505) and closes,
//! in order behind any pipelined request still being answered.

pub mod framing;
pub mod head;
pub mod limits;
pub mod metrics;
pub mod reject;
mod stream;

pub use limits::EdgeLimits;
pub use metrics::EdgeMetrics;
pub use reject::{rejection, Rejection, Violation};
pub use stream::EdgeStream;
