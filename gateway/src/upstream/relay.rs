//! In-process relays that let Pingora pool TLS connections to backends: one Unix-domain
//! listener per (endpoint, TLS settings) that turns each accepted connection into a TLS
//! connection to the endpoint and copies bytes both ways.
//!
//! Pingora 0.9 reuses a pooled stream only if `getpeername` on its fd names the peer's address,
//! so a TLS stream handed over as a virtual socket (fd -1) is never reused. A peer that points
//! at a relay's socket path is a plain UDS peer to Pingora: it pools the UDS connection, and the
//! relay keeps the TLS connection behind it open for exactly as long. When either side ends the
//! relay closes the other, so a pooled UDS connection never outlives its TLS connection
//! (Pingora's idle check then reads end of stream and drops it). The relay's first byte on a
//! connection says whether TCP and TLS are up ([`RelayConnect`], the peer's L4 step, waits for
//! it), so Pingora writes nothing before the backend is verified, and a failed handshake is the
//! same connect error it was without the relay.
//!
//! Bounded like every other resource: at most [`RelaySettings::max_relays`] relays (past it
//! peers fall back to the unpooled connector, counted in [`RelayRegistry::refused`]), a relay
//! with no connection for [`RelaySettings::idle`] is closed and its socket file removed, and
//! dropping the registry removes every socket file and the directory.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora_core::connectors::L4Connect;
use pingora_core::protocols::l4::socket::SocketAddr as PingoraAddr;
use pingora_core::protocols::l4::stream::Stream;
use pingora_error::{Error, ErrorType, OrErr, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::AbortHandle;

use super::tls::TlsOrigin;

/// After the gateway's side of a relayed connection ends (Pingora stopped writing or dropped
/// it), how long the backend's answer may still flow back before the relay closes both.
const DRAIN: Duration = Duration::from_secs(60);

/// Where relays listen and how many there may be.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// The private directory holding the socket files; created mode 0700 on first use.
    pub dir: PathBuf,
    /// Relays at most; past it TLS peers are not pooled.
    pub max_relays: usize,
    /// A relay with no connection for this long is closed.
    pub idle: Duration,
}

impl RelaySettings {
    /// A directory of its own per registry under the system temporary directory.
    pub fn in_temp_dir() -> RelaySettings {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let name = format!("sluice-tls-relay-{}-{n}", std::process::id());
        RelaySettings::in_dir(std::env::temp_dir().join(name))
    }

    pub fn in_dir(dir: PathBuf) -> RelaySettings {
        RelaySettings {
            dir,
            max_relays: 1024,
            idle: Duration::from_secs(300),
        }
    }
}

/// The relays of one gateway process, keyed by endpoint and TLS settings (the peer's
/// `group_key`), so a connection is never shared across policies or client certificates.
#[derive(Debug)]
pub struct RelayRegistry {
    settings: RelaySettings,
    state: Mutex<State>,
    /// Peers that fell back to the unpooled connector (cap reached or a relay failed to start).
    refused: AtomicU64,
    warned: AtomicBool,
}

#[derive(Debug, Default)]
struct State {
    dir_ready: bool,
    next: u64,
    relays: HashMap<(SocketAddr, u64), Relay>,
}

#[derive(Debug)]
struct Relay {
    path: PathBuf,
    /// Last time a peer was handed this relay or it accepted a connection.
    last_used: Instant,
    active: Arc<AtomicUsize>,
    task: AbortHandle,
}

impl Default for RelayRegistry {
    fn default() -> Self {
        RelayRegistry::new(RelaySettings::in_temp_dir())
    }
}

impl RelayRegistry {
    pub fn new(settings: RelaySettings) -> RelayRegistry {
        RelayRegistry {
            settings,
            state: Mutex::default(),
            refused: AtomicU64::new(0),
            warned: AtomicBool::new(false),
        }
    }

    /// Peers that could not go through a relay and were sent unpooled.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Relays listening now.
    pub fn len(&self) -> usize {
        self.lock().relays.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The socket path of the relay to `endpoint` under `origin`'s TLS settings, started on
    /// first use; `None` sends the peer unpooled (cap reached, no runtime, or an I/O error).
    pub fn path(
        self: &Arc<Self>,
        endpoint: SocketAddr,
        origin: &Arc<TlsOrigin>,
    ) -> Option<PathBuf> {
        let key = (endpoint, origin.key());
        let mut state = self.lock();
        match state.relays.get_mut(&key) {
            // A relay whose runtime has shut down is started again on this one.
            Some(relay) if relay.task.is_finished() => {
                let _ = std::fs::remove_file(&relay.path);
                state.relays.remove(&key);
            }
            Some(relay) => {
                relay.last_used = Instant::now();
                return Some(relay.path.clone());
            }
            None => {}
        }
        if state.relays.len() >= self.settings.max_relays {
            drop(state);
            self.refuse(format_args!(
                "{} relays already listen",
                self.settings.max_relays
            ));
            return None;
        }
        match self.start(&mut state, key, origin.clone()) {
            Ok(path) => Some(path),
            Err(e) => {
                drop(state);
                self.refuse(format_args!("cannot start a relay: {e}"));
                None
            }
        }
    }

    fn start(
        self: &Arc<Self>,
        state: &mut State,
        key: (SocketAddr, u64),
        origin: Arc<TlsOrigin>,
    ) -> io::Result<PathBuf> {
        let runtime = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
        if !state.dir_ready {
            private_dir(&self.settings.dir)?;
            state.dir_ready = true;
        }
        let path = self.settings.dir.join(format!("{}.sock", state.next));
        state.next += 1;
        // A file left by an earlier relay of the same name (only ours can write here).
        let _ = std::fs::remove_file(&path);
        let listener = {
            let _entered = runtime.enter();
            UnixListener::bind(&path)?
        };
        let active = Arc::new(AtomicUsize::new(0));
        let task = runtime.spawn(serve(
            listener,
            Arc::downgrade(self),
            key,
            origin,
            active.clone(),
        ));
        state.relays.insert(
            key,
            Relay {
                path: path.clone(),
                last_used: Instant::now(),
                active,
                task: task.abort_handle(),
            },
        );
        Ok(path)
    }

    fn refuse(&self, why: std::fmt::Arguments<'_>) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "TLS backend connections are not pooled ({why}); logged once, see docs/tls.md"
            );
        }
    }

    /// Called by a relay after [`RelaySettings::idle`] without a connection: closes it unless a
    /// peer was handed its path or a connection is open since.
    fn close_if_idle(&self, key: &(SocketAddr, u64)) -> bool {
        let mut state = self.lock();
        let Some(relay) = state.relays.get(key) else {
            return true;
        };
        if relay.active.load(Ordering::Acquire) > 0
            || relay.last_used.elapsed() < self.settings.idle
        {
            return false;
        }
        if let Some(relay) = state.relays.remove(key) {
            let _ = std::fs::remove_file(&relay.path);
        }
        true
    }

    fn touch(&self, key: &(SocketAddr, u64)) {
        if let Some(relay) = self.lock().relays.get_mut(key) {
            relay.last_used = Instant::now();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for RelayRegistry {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        for (_, relay) in state.relays.drain() {
            relay.task.abort();
            let _ = std::fs::remove_file(&relay.path);
        }
        if state.dir_ready {
            let _ = std::fs::remove_dir(&self.settings.dir);
        }
    }
}

/// Creates `dir` mode 0700, or accepts it if it exists as a directory only its owner can use.
fn private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let meta = std::fs::symlink_metadata(dir)?;
            // Another user's 0700 directory would make `bind` fail: no need to check the owner.
            if meta.is_dir() && meta.mode() & 0o077 == 0 {
                Ok(())
            } else {
                Err(io::Error::other(format!(
                    "{} exists but is not a private directory of ours (mode 0700)",
                    dir.display()
                )))
            }
        }
        Err(e) => Err(e),
    }
}

/// Accepts until the relay has been idle long enough or the registry is gone.
async fn serve(
    listener: UnixListener,
    registry: Weak<RelayRegistry>,
    key: (SocketAddr, u64),
    origin: Arc<TlsOrigin>,
    active: Arc<AtomicUsize>,
) {
    let idle = match registry.upgrade() {
        Some(r) => r.settings.idle,
        None => return,
    };
    loop {
        match tokio::time::timeout(idle, listener.accept()).await {
            Ok(Ok((uds, _))) => {
                let Some(registry) = registry.upgrade() else {
                    return;
                };
                registry.touch(&key);
                let guard = Active::new(active.clone(), Arc::downgrade(&registry), key);
                tokio::spawn(relay(uds, key.0, origin.clone(), guard));
            }
            Ok(Err(e)) => {
                // Out of fds and the like: the connection is refused, the relay goes on.
                tracing::debug!(error = %e, "TLS relay accept failed");
                tokio::task::yield_now().await;
            }
            Err(_) => match registry.upgrade() {
                Some(r) if !r.close_if_idle(&key) => {}
                _ => return,
            },
        }
    }
}

/// One relayed connection: TLS to the endpoint, its outcome reported to [`RelayConnect`], then
/// bytes both ways until one side ends.
async fn relay(mut uds: UnixStream, endpoint: SocketAddr, origin: Arc<TlsOrigin>, _active: Active) {
    let tls = match origin.open(endpoint).await {
        Ok(tls) => tls,
        Err(e) => {
            tracing::debug!(error = %e, "TLS relay handshake failed");
            let mut report = vec![Outcome::of(e.etype()) as u8];
            report.extend(e.to_string().bytes().take(MAX_REASON));
            // The connector may have given up already; the connection closes either way.
            let _ = uds.write_all(&report).await;
            return;
        }
    };
    if uds.write_all(&[Outcome::Connected as u8]).await.is_err() {
        return;
    }
    pipe(uds, tls).await;
}

/// Bytes of a failed handshake's reason sent to the connector, at most.
const MAX_REASON: usize = 512;

/// The first byte a relay sends on a connection: the outcome of its TCP connect and TLS
/// handshake, so Pingora sees a refused, timed-out or unverified backend as the connect error
/// it is (retried and answered as before) and writes nothing until TLS is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Outcome {
    Connected = 0,
    Refused = 1,
    TimedOut = 2,
    Handshake = 3,
    InvalidCert = 4,
    NoRoute = 5,
    Other = 6,
}

impl Outcome {
    fn of(etype: &ErrorType) -> Outcome {
        match etype {
            ErrorType::ConnectRefused => Outcome::Refused,
            ErrorType::ConnectTimedout => Outcome::TimedOut,
            ErrorType::TLSHandshakeFailure => Outcome::Handshake,
            ErrorType::InvalidCert => Outcome::InvalidCert,
            ErrorType::ConnectNoRoute => Outcome::NoRoute,
            _ => Outcome::Other,
        }
    }

    fn error_type(code: u8) -> ErrorType {
        match code {
            1 => ErrorType::ConnectRefused,
            2 => ErrorType::ConnectTimedout,
            3 => ErrorType::TLSHandshakeFailure,
            4 => ErrorType::InvalidCert,
            5 => ErrorType::ConnectNoRoute,
            _ => ErrorType::ConnectError,
        }
    }
}

/// Pingora's L4 step for a relayed peer: connects to the relay's socket and waits for the
/// relay's TLS connection, within the peer's connect timeout. The stream it returns is the
/// plain Unix socket, with a real fd, so Pingora pools and reuses it.
#[derive(Debug)]
pub struct RelayConnect {
    pub connect_timeout: Duration,
}

#[async_trait]
impl L4Connect for RelayConnect {
    async fn connect(&self, addr: &PingoraAddr) -> Result<Stream> {
        let Some(path) = addr.as_unix().and_then(|a| a.as_pathname()) else {
            return Error::e_explain(ErrorType::ConnectError, "a TLS relay is a socket path");
        };
        let attempt = async {
            let mut uds = UnixStream::connect(path)
                .await
                .or_err(ErrorType::ConnectError, "connecting to the TLS relay")?;
            let mut code = [0u8; 1];
            uds.read_exact(&mut code).await.or_err(
                ErrorType::ConnectError,
                "the TLS relay closed the connection",
            )?;
            if code[0] == Outcome::Connected as u8 {
                return Ok(uds);
            }
            let mut reason = Vec::new();
            let _ = (&mut uds)
                .take(MAX_REASON as u64)
                .read_to_end(&mut reason)
                .await;
            Error::e_explain(
                Outcome::error_type(code[0]),
                String::from_utf8_lossy(&reason).into_owned(),
            )
        };
        match pingora_timeout::timeout(self.connect_timeout, attempt).await {
            Ok(uds) => Ok(Stream::from(uds?)),
            Err(_) => Error::e_explain(
                ErrorType::ConnectTimedout,
                format!("TLS relay: no handshake within {:?}", self.connect_timeout),
            ),
        }
    }
}

/// Copies both ways. The backend's side ending closes both at once; the gateway's side ending
/// (a write shutdown, or Pingora dropping the connection) is passed on as a TLS close and the
/// answer may still flow back for [`DRAIN`].
async fn pipe<G, B>(gateway: G, backend: B)
where
    G: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (mut gr, mut gw) = tokio::io::split(gateway);
    let (mut br, mut bw) = tokio::io::split(backend);
    let up = async {
        let _ = tokio::io::copy(&mut gr, &mut bw).await;
        let _ = bw.shutdown().await;
    };
    let down = async {
        let _ = tokio::io::copy(&mut br, &mut gw).await;
    };
    tokio::pin!(down);
    tokio::select! {
        () = &mut down => {}
        () = up => {
            let _ = tokio::time::timeout(DRAIN, down).await;
        }
    }
    // Returning drops both halves of both streams: each side sees its connection close.
}

/// Counts a relay's open connections, so it is not closed as idle under them; the idle time
/// starts again when the last one ends.
struct Active {
    count: Arc<AtomicUsize>,
    registry: Weak<RelayRegistry>,
    key: (SocketAddr, u64),
}

impl Active {
    fn new(
        count: Arc<AtomicUsize>,
        registry: Weak<RelayRegistry>,
        key: (SocketAddr, u64),
    ) -> Active {
        count.fetch_add(1, Ordering::AcqRel);
        Active {
            count,
            registry,
            key,
        }
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        if let Some(registry) = self.registry.upgrade() {
            registry.touch(&self.key);
        }
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(10);

    fn registry(max_relays: usize, idle: Duration) -> Arc<RelayRegistry> {
        let mut settings = RelaySettings::in_temp_dir();
        settings.max_relays = max_relays;
        settings.idle = idle;
        Arc::new(RelayRegistry::new(settings))
    }

    fn endpoint(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// Polls `done` (a readiness check, not a fixed wait) until it holds or [`LIMIT`] passes.
    async fn eventually(what: &str, done: impl Fn() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(start.elapsed() < LIMIT, "{what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn relays_past_the_cap_are_refused_and_existing_ones_still_serve() {
        let relays = registry(2, Duration::from_secs(300));
        let origin = TlsOrigin::for_test(1, LIMIT);
        let first = relays.path(endpoint(1), &origin).unwrap();
        assert!(relays.path(endpoint(2), &origin).is_some());
        assert_eq!(relays.path(endpoint(3), &origin), None);
        assert_eq!(relays.refused(), 1);
        assert_eq!(relays.path(endpoint(1), &origin), Some(first.clone()));
        // Other TLS settings for the same endpoint are another relay, refused past the cap.
        assert_eq!(
            relays.path(endpoint(1), &TlsOrigin::for_test(2, LIMIT)),
            None
        );
        assert_eq!(relays.len(), 2);
        let dir = relays.settings.dir.clone();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&dir).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o700);
        drop(relays);
        assert!(!first.exists() && !dir.exists(), "socket files left behind");
    }

    #[tokio::test]
    async fn an_idle_relay_is_closed_and_its_socket_removed() {
        let relays = registry(8, Duration::from_millis(50));
        let origin = TlsOrigin::for_test(1, LIMIT);
        let path = relays.path(endpoint(1), &origin).unwrap();
        assert!(path.exists());
        eventually("the idle relay closed", || {
            relays.is_empty() && !path.exists()
        })
        .await;
        // The next peer starts a new relay.
        let again = relays.path(endpoint(1), &origin).unwrap();
        assert!(again.exists());
    }

    #[tokio::test]
    async fn a_relay_with_a_connection_open_is_not_closed_as_idle() {
        // A backend that takes the TCP connection and holds it, handshake unanswered, until
        // told to close it.
        let backend = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = backend.local_addr().unwrap().port();
        let (close_tx, close_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let (_tcp, _) = backend.accept().await.unwrap();
            let _ = close_rx.await;
        });
        let relays = registry(8, Duration::from_millis(20));
        let origin = TlsOrigin::for_test(1, LIMIT);
        let path = relays.path(endpoint(port), &origin).unwrap();
        let _uds = UnixStream::connect(&path).await.unwrap();
        let open = || {
            relays
                .lock()
                .relays
                .values()
                .any(|r| r.active.load(Ordering::Acquire) == 1)
        };
        eventually("the relayed connection is open", open).await;
        // Many idle periods pass with the connection open.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            path.exists() && relays.len() == 1,
            "closed under an open connection"
        );
        // The backend closes: the handshake fails, the connection ends, the relay goes idle.
        close_tx.send(()).unwrap();
        eventually("the idle relay closed", || {
            relays.is_empty() && !path.exists()
        })
        .await;
    }

    #[tokio::test]
    async fn a_failed_connect_is_the_same_error_as_without_the_relay_and_nothing_else_is_sent() {
        // Nothing listens on a port just released: the TCP connect is refused.
        let port = sluice_testing::free_port();
        let relays = registry(8, Duration::from_secs(300));
        let origin = TlsOrigin::for_test(1, LIMIT);
        let path = relays.path(endpoint(port), &origin).unwrap();
        let connector = RelayConnect {
            connect_timeout: LIMIT,
        };
        let addr = PingoraAddr::Unix(std::os::unix::net::SocketAddr::from_pathname(&path).unwrap());
        let e = connector.connect(&addr).await.unwrap_err();
        let inet = PingoraAddr::Inet(endpoint(port));
        let direct = origin.connect(&inet).await.unwrap_err();
        assert_eq!(e.etype(), direct.etype(), "{e}");
        assert!(e.to_string().contains("Connection refused"), "{e}");
        // Raw: the outcome byte, its reason, then the connection closes.
        let mut uds = UnixStream::connect(&path).await.unwrap();
        let mut report = Vec::new();
        let read = tokio::time::timeout(LIMIT, uds.read_to_end(&mut report)).await;
        assert!(matches!(read, Ok(Ok(_))), "{read:?}");
        assert_eq!(report.first(), Some(&(Outcome::of(direct.etype()) as u8)));
    }
}
