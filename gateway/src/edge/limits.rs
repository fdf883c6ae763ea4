//! What one client may cost Sluice: sizes, deadlines and the connection cap, with their defaults.

use std::time::Duration;

/// Every limit the edge enforces on clients. The defaults follow nginx where it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeLimits {
    /// The request line (method, target, version) in bytes; longer is 414.
    pub max_request_line: usize,
    /// The header section (every field line with its CRLF) in bytes; larger is 431.
    pub max_header_bytes: usize,
    /// Header fields per request; more is 431. Also the trailer field cap of a chunked body.
    pub max_header_fields: usize,
    /// From the first byte of a request head to its end (and from accept to the first byte of
    /// the first request); over it the request is answered 408 and the connection closed.
    pub client_header_timeout: Duration,
    /// The longest wait for the next piece of a request body; over it the request fails.
    pub client_body_timeout: Duration,
    /// How long a keep-alive connection may sit idle between requests before it is closed.
    pub keepalive_timeout: Duration,
    /// Open client connections per process; over it a new connection is closed at once.
    pub max_connections: usize,
}

/// Used when the file-descriptor limit cannot be read.
const FALLBACK_MAX_CONNECTIONS: usize = 10_000;
/// File descriptors kept back from the connection cap: upstream and mirror connections, the
/// listening sockets, config files, logs.
const RESERVED_FDS_PER_CLIENT: usize = 2;

impl Default for EdgeLimits {
    fn default() -> EdgeLimits {
        EdgeLimits {
            max_request_line: 8 * 1024,
            max_header_bytes: 64 * 1024,
            max_header_fields: 100,
            client_header_timeout: Duration::from_secs(10),
            client_body_timeout: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(60),
            max_connections: FALLBACK_MAX_CONNECTIONS,
        }
    }
}

impl EdgeLimits {
    /// The connection cap for a process allowed `fd_limit` open files: each proxied client
    /// connection may hold an upstream connection (and a mirror's), so a third of the fds go to
    /// clients, less a few kept for listeners and files.
    pub fn connections_for_fd_limit(fd_limit: u64) -> usize {
        let fds = usize::try_from(fd_limit).unwrap_or(usize::MAX);
        (fds.saturating_sub(64) / (1 + RESERVED_FDS_PER_CLIENT)).max(1)
    }
}

/// Raises the soft open-file limit to the hard limit (a connection cap is useless if the
/// process runs out of fds first) and returns the limit now in force.
pub fn raise_fd_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => Some(limit),
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .ok()
                .map(|(soft, _)| soft)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_cap_leaves_fds_for_upstreams() {
        assert_eq!(EdgeLimits::connections_for_fd_limit(1024), 320);
        assert_eq!(EdgeLimits::connections_for_fd_limit(10), 1);
        assert!(EdgeLimits::connections_for_fd_limit(u64::MAX) > 1_000_000);
    }
}
