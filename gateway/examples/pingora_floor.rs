//! Pingora's own floor: the least a `ProxyHttp` can do (send every request to one upstream) on
//! Pingora's own server, listener and runtime. `benches/instructions.py --floor` runs it beside
//! Sluice, so the gap between Sluice and nginx splits into Pingora's share and ours.
//!
//! `cargo run --release --example pingora_floor -- LISTEN UPSTREAM` (both `127.0.0.1:PORT`).

use std::net::SocketAddr;
use std::process::ExitCode;

use async_trait::async_trait;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::Server;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_proxy::{ProxyHttp, Session};

/// The allocator `sluice` uses, so the two differ only in what the proxy does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Floor {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Floor {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut (),
    ) -> pingora_error::Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(listen), Some(upstream)) = (args.first(), args.get(1)) else {
        eprintln!("usage: pingora_floor LISTEN UPSTREAM");
        return ExitCode::FAILURE;
    };
    let Ok(upstream) = upstream.parse::<SocketAddr>() else {
        eprintln!("pingora_floor: UPSTREAM must be IP:PORT, not {upstream:?}");
        return ExitCode::FAILURE;
    };
    let conf = ServerConf {
        threads: 1,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = pingora_proxy::http_proxy_service(&server.configuration, Floor { upstream });
    proxy.add_tcp(listen);
    server.add_service(proxy);
    server.run_forever()
}
