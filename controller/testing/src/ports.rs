//! Loopback ports for what must be configured with its port before it binds (a Gateway
//! listener written into YAML, a server's flag).
//!
//! A port taken by binding port 0 and released can be handed by the kernel to anyone else's
//! `bind(0)` or outgoing connection before the real bind: another test's backend or admin
//! server, a client's source port. A listener configured with it then fails to bind, or the
//! test talks to the wrong server (a flake seen in CI as a 404 from a neighbour's admin
//! endpoint). So these ports come from just below the kernel's ephemeral range, which the
//! kernel never picks from, each probed before it is handed out and never handed out twice by
//! one process.

use std::net::{Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicU32, Ordering};

/// How many ports below the ephemeral range are used.
const SPAN: u32 = 12_000;
/// Never below this: well-known and registered services live down there.
const FLOOR: u32 = 10_000;

/// A loopback port nothing listens on, outside the kernel's ephemeral range when the machine
/// leaves room for one (else any free port, as before).
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let Some((low, span)) = reserved_range() else {
        return ephemeral_port();
    };
    // Concurrent test processes (nextest runs one per test) start at different points.
    let start = std::process::id().wrapping_mul(2_654_435_761) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = low + (start + n) % span;
        let Ok(port) = u16::try_from(port) else {
            continue;
        };
        // std sets SO_REUSEADDR, as Sluice's listeners do: a port in TIME_WAIT counts as free.
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
    ephemeral_port()
}

/// `[low, low + span)`: the ports just below `ip_local_port_range`.
fn reserved_range() -> Option<(u32, u32)> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let ephemeral_low: u32 = range.split_whitespace().next()?.parse().ok()?;
    let low = ephemeral_low.checked_sub(SPAN)?.max(FLOOR);
    let span = ephemeral_low.checked_sub(low)?;
    (span >= 1_000).then_some((low, span))
}

fn ephemeral_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("a bound address").port()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_bindable_and_outside_the_ephemeral_range() {
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len(), "no port handed out twice");
        if let Some((low, span)) = reserved_range() {
            for port in &ports {
                let port = u32::from(*port);
                assert!(
                    (low..low + span).contains(&port),
                    "{port} outside {low}+{span}"
                );
            }
        }
        for port in ports {
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("the port is free");
        }
    }
}
