//! One listening socket: its accept loop and the hand-off of each connection to the Pingora app.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pingora_core::apps::ServerApp;
use pingora_core::protocols::Stream;
use sluice_controller::publish::Store;
use sluice_controller::snapshot::BindProtocol;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::connections::Connections;
use super::ListenerOptions;
use crate::{tls, transport};

const BACKLOG: u32 = 1024;
/// Pause after an accept error (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// What every socket of one manager shares.
pub(super) struct Shared<A> {
    pub(super) store: Arc<Store>,
    pub(super) app: Arc<A>,
    pub(super) connections: Arc<Connections>,
    pub(super) options: ListenerOptions,
    /// Set when shutdown's grace period is over: every connection still open is dropped.
    pub(super) abort: watch::Receiver<bool>,
}

#[derive(Debug, thiserror::Error)]
pub(super) enum BindError {
    #[error("cannot listen on {address}")]
    Io {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up TLS for {address}")]
    Tls {
        address: SocketAddr,
        #[source]
        source: tls::TlsError,
    },
}

/// A bound socket and its accept loop.
pub(super) struct BoundSocket {
    /// Also the Pingora shutdown watch of this socket's connections: once set, they stop
    /// reusing keep-alive connections and h2 sends GOAWAY.
    drain: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl BoundSocket {
    /// Stops accepting and closes the socket; connections already accepted finish on their own.
    pub(super) async fn close(self) {
        self.drain.send_replace(true);
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "accept loop failed");
        }
    }
}

pub(super) fn bind<A>(
    shared: &Arc<Shared<A>>,
    address: SocketAddr,
) -> Result<BoundSocket, BindError>
where
    A: ServerApp + Send + Sync + 'static,
{
    let io = |source| BindError::Io { address, source };
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(io)?;
    // Lets a restarted Sluice rebind while old connections sit in TIME_WAIT.
    socket.set_reuseaddr(true).map_err(io)?;
    socket.bind(address).map_err(io)?;
    let listener = socket.listen(BACKLOG).map_err(io)?;
    // Built for every socket: the snapshot decides per connection whether this bind is HTTPS,
    // so a listener switching protocol needs no rebind.
    let acceptor = tls::acceptor(shared.store.clone(), address)
        .map_err(|source| BindError::Tls { address, source })?;
    let (drain, drain_rx) = watch::channel(false);
    let task = tokio::spawn(accept_loop(
        shared.clone(),
        listener,
        address,
        acceptor,
        drain_rx,
    ));
    Ok(BoundSocket { drain, task })
}

async fn accept_loop<A>(
    shared: Arc<Shared<A>>,
    listener: TcpListener,
    address: SocketAddr,
    acceptor: tls::Acceptor,
    mut drain: watch::Receiver<bool>,
) where
    A: ServerApp + Send + Sync + 'static,
{
    let listener_label = address.to_string();
    let by_listener = &shared.options.metrics.by_listener;
    let open_here = by_listener.with_label_values(&[listener_label.as_str()]);
    loop {
        let accepted = tokio::select! {
            _ = drain.wait_for(|d| *d) => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((tcp, peer)) => {
                let edge = &shared.options.metrics;
                if shared.connections.active() >= shared.options.limits.max_connections {
                    // Refuse this one rather than stall everyone: closed before any read.
                    edge.connections_rejected
                        .with_label_values(&["max_connections"])
                        .inc();
                    edge.warn_limited("connection cap reached; closing new connections");
                    drop(tcp);
                    continue;
                }
                edge.accepted.inc();
                let guard = shared.connections.open(open_here.clone());
                let shared = shared.clone();
                let acceptor = acceptor.clone();
                let drain = drain.clone();
                tokio::spawn(async move {
                    let _guard = guard;
                    let mut abort = shared.abort.clone();
                    tokio::select! {
                        _ = serve(&shared, tcp, peer, address, &acceptor, drain) => {}
                        _ = abort.wait_for(|a| *a) => {}
                    }
                });
            }
            Err(e) => {
                tracing::warn!(%address, error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
    // Connections still draining from this socket count on in `_active` only; the series goes
    // so that addresses a reload dropped do not linger (a rebind starts a fresh one).
    let _ = by_listener.remove_label_values(&[listener_label.as_str()]);
}

async fn serve<A>(
    shared: &Shared<A>,
    tcp: TcpStream,
    peer: SocketAddr,
    address: SocketAddr,
    acceptor: &tls::Acceptor,
    drain: watch::Receiver<bool>,
) where
    A: ServerApp + Send + Sync + 'static,
{
    let protocol = shared
        .store
        .load()
        .binds
        .iter()
        .find(|b| b.address == address)
        .map(|b| b.protocol);
    let (limits, h2c) = (shared.options.limits, shared.options.h2c);
    let stream: Stream = match protocol {
        Some(BindProtocol::Http) => transport::http_connection(tcp, peer, limits, h2c),
        Some(BindProtocol::Https) => {
            match super::https::serve_tls(shared, tcp, peer, address, acceptor).await {
                Some(stream) => stream,
                None => return,
            }
        }
        // The bind left the snapshot between accept and now; its socket is being closed.
        None => return,
    };
    transport::serve(&shared.app, stream, &drain).await;
}
