//! A connection on a TLS bind: its ClientHello is read first, and the listener its SNI selects
//! says what follows — an HTTPS handshake and the proxy, or a TLSRoute stream.

use std::net::SocketAddr;
use std::time::Instant;

use pingora_core::apps::ServerApp;
use pingora_core::protocols::Stream;
use tokio::net::TcpStream;

use super::accept::Shared;
use crate::tls_route::{self, Mode, Target};
use crate::transport::ReplayTcp;
use crate::{tls, transport};

/// The HTTPS connection to serve, or `None` when the connection was handled (a TLSRoute
/// stream) or refused here.
pub(super) async fn serve_tls<A>(
    shared: &Shared<A>,
    mut tcp: TcpStream,
    peer: SocketAddr,
    address: SocketAddr,
    acceptor: &tls::Acceptor,
) -> Option<Stream>
where
    A: ServerApp + Send + Sync + 'static,
{
    let options = &shared.options;
    transport::set_nodelay(&tcp, peer);
    let socket = transport::socket_digest(&tcp, peer);
    // The ClientHello and the handshake are a head too: together they get the client header
    // deadline.
    let started = Instant::now();
    let deadline = options.limits.client_header_timeout;
    let hello = match tokio::time::timeout(deadline, tls::hello::read(&mut tcp)).await {
        Ok(Ok(hello)) => hello,
        Ok(Err(e)) => {
            tracing::debug!(%peer, %address, error = %e, "no ClientHello");
            return None;
        }
        Err(_) => {
            handshake_timed_out(shared, peer, address);
            return None;
        }
    };
    let snapshot = shared.store.load();
    let listener = snapshot
        .binds
        .iter()
        .find(|b| b.address == address)
        .and_then(|b| tls::listener_for(b, hello.sni.as_deref()));
    if listener.is_none() {
        // No listener takes this name. Whether the client expected Sluice's certificate or a
        // passthrough backend's, Sluice cannot answer for it: close without a byte, as Envoy
        // does when no filter chain matches (a TLS alert would claim the handshake was ours).
        drop(snapshot);
        tracing::debug!(%peer, %address, sni = ?hello.sni, "no listener for this SNI; closing");
        shared
            .options
            .metrics
            .connections_rejected
            .with_label_values(&["tls_unknown_sni"])
            .inc();
        return None;
    }
    let target = listener.and_then(|l| Target::of(&snapshot, l, hello.sni.as_deref()));
    // A stream may outlive many publishes; it keeps only what it was routed to.
    drop(snapshot);
    let remaining = deadline.saturating_sub(started.elapsed());
    let settings = &options.tls_routes;
    match target {
        Some(target) if target.mode == Mode::Passthrough => {
            tls_route::passthrough(settings, target, peer, hello.sni, hello.bytes, tcp).await;
            None
        }
        Some(target) => {
            let replay = ReplayTcp::new(hello.bytes, tcp);
            let handshake = async {
                match tokio::time::timeout(remaining, tls::handshake(acceptor, replay)).await {
                    Ok(Ok(tls)) => Ok(tls),
                    Ok(Err(e)) => Err(format!("{e}: {}", error_chain(&e))),
                    Err(_) => {
                        handshake_timed_out(shared, peer, address);
                        Err(format!("no handshake within {deadline:?}"))
                    }
                }
            };
            tls_route::terminate(settings, target, peer, hello.sni, handshake).await;
            None
        }
        // An HTTPS listener.
        None => {
            let replay = ReplayTcp::new(hello.bytes, tcp);
            match tokio::time::timeout(remaining, tls::accept(acceptor, replay, socket)).await {
                Ok(Ok(conn)) => Some(transport::guarded(
                    Box::new(conn),
                    options.limits,
                    options.h2c,
                )),
                Ok(Err(e)) => {
                    tracing::debug!(%peer, %address, error = %e, "TLS handshake failed");
                    None
                }
                Err(_) => {
                    handshake_timed_out(shared, peer, address);
                    None
                }
            }
        }
    }
}

fn handshake_timed_out<A>(shared: &Shared<A>, peer: SocketAddr, address: SocketAddr) {
    tracing::debug!(%peer, %address, "TLS handshake timed out");
    shared
        .options
        .metrics
        .connections_rejected
        .with_label_values(&["tls_handshake"])
        .inc();
}

/// The causes under an error, for a one-line log field.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut causes = Vec::new();
    let mut source = e.source();
    while let Some(s) = source {
        causes.push(s.to_string());
        source = s.source();
    }
    causes.join(": ")
}
