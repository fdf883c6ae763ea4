//! The edge guard's framing work for one small request head, repeated, for callgrind:
//! `valgrind --tool=callgrind target/release/examples/edge_cost` and divide by the count.

use std::hint::black_box;

use sluice_gateway::edge::framing::{Framer, Step};
use sluice_gateway::edge::EdgeLimits;

const HEAD: &[u8] = b"GET /bench HTTP/1.1\r\nHost: bench.test\r\nUser-Agent: instructions\r\n\r\n";

fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let mut framer = Framer::new(EdgeLimits::default());
    let mut passed = 0usize;
    for _ in 0..count {
        if let Step::Pass(n) = framer.advance(black_box(HEAD)) {
            passed += n;
        }
    }
    println!("{count} heads, {passed} bytes passed");
}
