//! Request mirroring: copies of live requests, body included, streamed to `RequestMirror` backends
//! without the primary ever waiting, failing or changing.
//!
//! The proxy owns one [`MirrorEngine`] (connection pool, budgets, metrics, options) and keeps one
//! [`MirrorSet`] per request in its context. The set is fed from the proxy phases:
//! - `request_filter`: [`MirrorSet::start`] for each `RequestMirror` filter, in filter order, with
//!   the head as modified by the filters before it. Sampling, the upgrade check and the
//!   in-flight cap are decided here; a copy that is started connects at once and sends its head.
//! - `upstream_peer` (every attempt): [`MirrorSet::on_upstream_attempt`], because Pingora replays
//!   the retry buffer from offset 0 through `request_body_filter` on a retry.
//! - `request_body_filter`: [`MirrorSet::on_body_chunk`]. Never blocks: a chunk that does not
//!   fit the copy's byte budget aborts that copy.
//! - `upstream_response_filter` / `upstream_response_body_filter`: [`MirrorSet::on_response_head`]
//!   and [`MirrorSet::on_response_body`], for copies whose MirrorPolicy compares answers
//!   (`crate::shadow`): the backend's answer is queued (shared chunks, never waiting) for the
//!   copy's own observer, and never held or delayed.
//! - `logging`: [`MirrorSet::on_primary_done`] (dropping the set does the same): copies whose
//!   body is unfinished are aborted, so a mirror never sees a truncated body as complete.
//!
//! See `docs/mirroring.md` for the semantics and every bound and metric.

mod access;
mod body;
mod budget;
mod deadline;
mod discard;
mod duplex;
mod exchange;
mod halves;
mod head;
mod head_first;
pub mod metrics;
mod pool;
mod shape;
mod tap;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_http::RequestHeader;
use rand::Rng;
use rustls::sign::CertifiedKey;
use sluice_controller::mirror_settings::MirrorSettings;
use sluice_controller::snapshot::{
    Backend, BackendProtocol, BackendTlsMode, Fraction, Mirror, MirrorPolicy,
};
use tokio::sync::{mpsc, watch};
use tracing::debug;

use budget::{GlobalBudget, RequestBudget};
use exchange::{Chunk, Job, State};
pub use head::NotMirrorable;
pub use metrics::MirrorMetrics;
use pool::MirrorPool;
use shape::Shape;
use tap::PrimaryTap;

use crate::shadow::Shadow;

/// How mirrors are sent and bounded. Every field has a production default.
#[derive(Debug, Clone)]
pub struct MirrorOptions {
    /// What copies look like and how much they may hold: the `--mirror-*` flags and the class
    /// parameters' `mirror*` keys.
    pub settings: MirrorSettings,
    /// Connecting to a mirror endpoint (`connect_error` after it).
    pub connect_timeout: Duration,
    /// How long an idle pooled mirror connection is kept.
    pub pool_idle_timeout: Duration,
    /// Idle mirror connections kept across all mirror backends, for HTTP/1.1 and h2c each.
    pub pool_size: usize,
    /// The relays through which TLS connections to mirrors are pooled; the data plane shares
    /// the primary leg's.
    pub tls_relays: Arc<crate::upstream::relay::RelayRegistry>,
}

impl Default for MirrorOptions {
    fn default() -> MirrorOptions {
        MirrorOptions {
            settings: MirrorSettings::default(),
            connect_timeout: Duration::from_secs(1),
            pool_idle_timeout: Duration::from_secs(60),
            // Every copy `max_inflight` admits can come back to the pool: fewer, and a busy
            // mirror's connections are closed after each answer and opened again for the next.
            pool_size: 1024,
            tls_relays: Arc::default(),
        }
    }
}

/// How one copy ended (the `outcome` label of `sluice_mirror_requests_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The mirror received the whole request and answered (any status; see the class metric).
    Completed,
    /// The mirror fell behind by more than its byte budget; its connection was closed mid-body.
    DroppedOverflow,
    /// Not sent: too many copies already in flight.
    SkippedCapacity,
    /// Not sent: an Upgrade (WebSocket) or CONNECT request.
    SkippedUpgrade,
    /// No endpoint, or connecting failed or timed out.
    ConnectError,
    /// The answer did not arrive within [`MirrorSettings::timeout`] after the body was complete
    /// (plus a stagger of at most a twentieth of it, so that copies which started together do
    /// not all end at once).
    Timeout,
    /// Writing to or reading from the mirror failed, or it answered garbage.
    UpstreamError,
    /// The client went away or the primary failed before the body was complete.
    AbortedClient,
}

impl Outcome {
    pub const ALL: [Outcome; 8] = [
        Outcome::Completed,
        Outcome::DroppedOverflow,
        Outcome::SkippedCapacity,
        Outcome::SkippedUpgrade,
        Outcome::ConnectError,
        Outcome::Timeout,
        Outcome::UpstreamError,
        Outcome::AbortedClient,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::DroppedOverflow => "dropped_overflow",
            Outcome::SkippedCapacity => "skipped_capacity",
            Outcome::SkippedUpgrade => "skipped_upgrade",
            Outcome::ConnectError => "connect_error",
            Outcome::Timeout => "timeout",
            Outcome::UpstreamError => "upstream_error",
            Outcome::AbortedClient => "aborted_client",
        }
    }
}

/// Why the primary side abandoned a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AbortReason {
    Overflow,
    Client,
}

impl From<AbortReason> for Outcome {
    fn from(reason: AbortReason) -> Outcome {
        match reason {
            AbortReason::Overflow => Outcome::DroppedOverflow,
            AbortReason::Client => Outcome::AbortedClient,
        }
    }
}

/// What [`MirrorSet::start`] did with one mirror filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Sampled: sent by [`MirrorSet::launch`] (where the in-flight cap may still skip it).
    Queued,
    /// The filter's fraction did not select this request; nothing is counted.
    NotSampled,
    /// Counted with this outcome and not sent.
    Skipped(Outcome),
}

/// A copy this far behind makes the proxy yield once. Measured with a 256 MiB upload to a
/// mirror as fast as the primary (2 cores, dev build): peak lag 4–6 MiB without yielding,
/// 1.5–4 MiB yielding at 1 MiB, 1–3 MiB yielding at 256 KiB, and the primary was faster too.
const YIELD_AT_BYTES: usize = 256 * 1024;

/// The yield threshold of a copy whose byte budget is `budget`: an eighth of a small budget, so
/// the copy gets to run well before it would overflow.
fn yield_at(budget: usize) -> usize {
    YIELD_AT_BYTES.min(budget / 8)
}

/// What the proxy should do after handing a body chunk to the copies.
///
/// A copy's task is woken by the proxy task that queues its chunks, so tokio puts it in that
/// worker's LIFO slot, where no other worker can steal it: it only runs when the proxy task
/// yields, and the proxy task yields only when its coop budget (128 socket operations, i.e. up
/// to ~8 MiB of 64 KiB chunks) runs out. A mirror as fast as the primary then lags by megabytes
/// and a small buffer overflows. Yielding once when a copy is [`YIELD_AT_BYTES`] behind lets
/// the copy run; it is one trip through the scheduler, never a wait for the mirror.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    Continue,
    /// Call `tokio::task::yield_now().await` before reading the next chunk.
    Yield,
}

// === impl MirrorEngine ===

/// Everything mirroring shares across requests; one per Sluice instance.
pub struct MirrorEngine {
    pool: MirrorPool,
    options: MirrorOptions,
    metrics: MirrorMetrics,
    budget: Arc<GlobalBudget>,
}

impl MirrorEngine {
    pub fn new(options: MirrorOptions, metrics: MirrorMetrics) -> Arc<MirrorEngine> {
        let budget = Arc::new(GlobalBudget::new(
            options.settings.max_inflight,
            options.settings.max_buffered_bytes,
            metrics.inflight.clone(),
            metrics.buffered.clone(),
        ));
        Arc::new(MirrorEngine {
            pool: MirrorPool::new(options.pool_size),
            options,
            metrics,
            budget,
        })
    }

    pub fn metrics(&self) -> &MirrorMetrics {
        &self.metrics
    }

    /// Copies started and not yet finished.
    pub fn inflight(&self) -> usize {
        self.budget.inflight()
    }

    /// Body bytes queued for mirrors and not yet written.
    pub fn buffered_bytes(&self) -> usize {
        self.budget.buffered()
    }

    /// `None` when the backend has no ready endpoint or an invalid BackendTLSPolicy (nothing
    /// may be sent to it then). A policy's TLS settings apply exactly as on the primary leg.
    fn peer(
        &self,
        backend: &Backend,
        client_certificate: Option<&Arc<CertifiedKey>>,
    ) -> Option<HttpPeer> {
        if crate::upstream::is_refused(backend) {
            return None;
        }
        let addr = backend.pick_endpoint()?;
        let mut peer = HttpPeer::new(addr, false, String::new());
        peer.options.connection_timeout = Some(self.options.connect_timeout);
        if backend.protocol == BackendProtocol::H2c {
            peer.options.set_http_version(2, 2);
        }
        if let Some(BackendTlsMode::Verify(tls)) = &backend.tls {
            let timeout = self.options.connect_timeout;
            let relays = &self.options.tls_relays;
            crate::upstream::TlsOrigin::apply(
                &mut peer,
                addr,
                tls,
                client_certificate,
                timeout,
                relays,
            );
        }
        Some(peer)
    }
}

fn sampled(fraction: Fraction) -> bool {
    // A validated snapshot never holds a zero denominator (translation rejects the rule, and
    // the CRD forbids it); the guard keeps `random_range(0..0)` from panicking all the same.
    if fraction.numerator == 0 || fraction.denominator == 0 {
        return false;
    }
    if fraction.numerator >= fraction.denominator {
        return true;
    }
    rand::rng().random_range(0..fraction.denominator) < fraction.numerator
}

// === impl MirrorSet ===

/// The copies of one client request.
pub struct MirrorSet {
    engine: Arc<MirrorEngine>,
    /// Sampled copies waiting for [`MirrorSet::launch`].
    pending: Vec<Pending>,
    copies: Vec<Copy>,
    /// Body bytes already handed to the copies.
    forwarded: u64,
    /// Body bytes seen in the current primary attempt; a retry replays from 0.
    attempt_offset: u64,
    /// What the Gateway presents to mirrors reached over TLS.
    client_certificate: Option<Arc<CertifiedKey>>,
    /// Where compared copies are counted; `None` compares nothing.
    shadow: Option<Arc<Shadow>>,
    /// The primary's side of each compared copy.
    taps: Vec<PrimaryTap>,
    /// What the copies' access lines take from the client request.
    log: CopyLog,
}

/// What a copy's access line takes from its client request (and, once sent, from its peer).
#[derive(Debug, Clone, Default)]
pub struct CopyLog {
    pub client: Option<std::net::SocketAddr>,
    /// The rule's name, else its index (as on the primary line).
    pub rule: Arc<str>,
    pub settings: crate::access_log::AccessLogSettings,
    /// The copy's own protocol, set when it is sent.
    pub protocol: &'static str,
    /// The primary's request id, so the lines join even when a policy removes or sets
    /// `x-request-id` on the copy.
    pub request_id: Option<http::HeaderValue>,
}

/// A sampled copy, with the head as it was when its filter ran.
struct Pending {
    backend: Arc<Backend>,
    head: RequestHeader,
    route: Arc<str>,
    has_body: bool,
    /// The MirrorPolicy shaping this copy, if one targets its rule.
    policy: Option<Arc<MirrorPolicy>>,
}

impl Pending {
    fn skip(self, engine: &MirrorEngine, outcome: Outcome) -> Decision {
        engine
            .metrics
            .outcome(&self.route, &self.backend.name, outcome);
        Decision::Skipped(outcome)
    }
}

/// The primary side of one started copy.
struct Copy {
    /// `None` once the body is complete or the copy was abandoned.
    chunks: Option<mpsc::UnboundedSender<Chunk>>,
    state: watch::Sender<State>,
    budget: Arc<RequestBudget>,
    /// Queued bytes at which the proxy yields so this copy can catch up: [`yield_at`] of its own
    /// byte budget, which a MirrorPolicy may set apart from the others'.
    yield_at: usize,
}

impl MirrorSet {
    pub fn new(engine: Arc<MirrorEngine>) -> MirrorSet {
        MirrorSet {
            engine,
            pending: Vec::new(),
            copies: Vec::new(),
            forwarded: 0,
            attempt_offset: 0,
            client_certificate: None,
            shadow: None,
            taps: Vec::new(),
            log: CopyLog::default(),
        }
    }

    /// The copies' access lines carry `log`'s client address and rule.
    pub fn with_log(mut self, log: CopyLog) -> Self {
        self.log = log;
        self
    }

    /// Copies to TLS mirrors present `certificate` (the Gateway's backend client certificate).
    pub fn with_client_certificate(mut self, certificate: Option<Arc<CertifiedKey>>) -> Self {
        self.client_certificate = certificate;
        self
    }

    /// Copies whose MirrorPolicy has a `compare` section are compared with the primary's
    /// answer and counted in `shadow`.
    pub fn compare_into(&mut self, shadow: Arc<Shadow>) {
        self.shadow = Some(shadow);
    }

    /// Decides whether `mirror` gets a copy of this request: sampling and the upgrade check
    /// happen here, with `head` as the primary will send it so far (the filters before this
    /// mirror applied). `has_body` says whether a body follows through [`Self::on_body_chunk`].
    /// The copy is sent by [`Self::launch`], once the gateway knows it proxies the request.
    pub fn start(
        &mut self,
        mirror: &Mirror,
        head: &RequestHeader,
        route: &str,
        has_body: bool,
    ) -> Decision {
        if !sampled(mirror.fraction) {
            return Decision::NotSampled;
        }
        let pending = Pending {
            backend: mirror.backend.clone(),
            head: head.clone(),
            route: Arc::from(route),
            has_body,
            policy: mirror.policy.clone(),
        };
        if let Err(NotMirrorable::Upgrade) = head::check_mirrorable(head) {
            return pending.skip(&self.engine, Outcome::SkippedUpgrade);
        }
        self.pending.push(pending);
        Decision::Queued
    }

    /// Sends every queued copy. `prepare` adds to each mirror head what the proxy adds to every
    /// upstream request (`X-Forwarded-*`), after the hop-by-hop fields are gone, as Pingora does
    /// for the primary. Requests the gateway answers itself never get here, so their copies are
    /// dropped uncounted. The in-flight cap is applied now.
    pub fn launch(&mut self, mut prepare: impl FnMut(&mut RequestHeader)) {
        for mut pending in std::mem::take(&mut self.pending) {
            head::strip_hop_by_hop(&mut pending.head);
            prepare(&mut pending.head);
            self.spawn(pending);
        }
    }

    fn spawn(&mut self, pending: Pending) {
        let engine = &self.engine;
        let Some(peer) = engine.peer(&pending.backend, self.client_certificate.as_ref()) else {
            debug!(mirror = %pending.backend.name, "mirror backend has no ready endpoint or an invalid BackendTLSPolicy");
            self.skip(pending, Outcome::ConnectError);
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            debug!("mirror started outside a tokio runtime");
            self.skip(pending, Outcome::ConnectError);
            return;
        };
        let Some(slot) = engine.budget.admit() else {
            self.skip(pending, Outcome::SkippedCapacity);
            return;
        };
        let Pending {
            backend,
            head,
            route,
            has_body,
            policy,
        } = pending;
        let settings = &engine.options.settings;
        let shape = Shape::of(settings, policy.as_deref());
        let byte_budget = policy
            .as_ref()
            .and_then(|p| p.request.max_body_bytes)
            .unwrap_or(settings.request_buffer_bytes);
        let mirror = Arc::from(backend.name.as_str());
        let shadow = self.shadow.as_ref();
        let tap = tap::start(shadow, policy.as_ref(), &route, &mirror, &head, &runtime).map(
            |(primary, tap)| {
                self.taps.push(primary);
                tap
            },
        );
        let (tx, rx) = mpsc::unbounded_channel();
        let initial = if has_body {
            State::Streaming
        } else {
            State::BodyComplete
        };
        let (state, state_rx) = watch::channel(initial);
        let job = Job {
            engine: engine.clone(),
            peer,
            head: head::mirror_head(head, has_body, backend.protocol, shape),
            has_body,
            chunks: rx,
            state: state_rx,
            route,
            mirror,
            slot,
            policy,
            tap,
            log: CopyLog {
                protocol: match backend.protocol {
                    BackendProtocol::H2c => "HTTP/2",
                    _ => "HTTP/1.1",
                },
                ..self.log.clone()
            },
        };
        runtime.spawn(exchange::run(job));
        self.copies.push(Copy {
            chunks: has_body.then_some(tx),
            state,
            budget: RequestBudget::new(byte_budget, engine.budget.clone()),
            yield_at: yield_at(byte_budget),
        });
    }

    /// A copy that is not sent, counted (and, when compared, counted as such too).
    fn skip(&self, pending: Pending, outcome: Outcome) {
        let mirror = Arc::from(pending.backend.name.as_str());
        let policy = pending.policy.as_ref();
        let shadow = self.shadow.as_ref();
        tap::skipped(
            shadow,
            policy,
            &pending.route,
            &mirror,
            &pending.head,
            outcome,
        );
        pending.skip(&self.engine, outcome);
    }

    /// The primary backend's response head (each attempt's), before Sluice's own response
    /// filters change it.
    pub fn on_response_head(&mut self, status: u16, headers: &HeaderMap) {
        for tap in &mut self.taps {
            tap.on_head(status, headers);
        }
    }

    /// One chunk of the primary backend's response body; at its end the compared copies get
    /// the primary's answer.
    pub fn on_response_body(&mut self, data: Option<&Bytes>, end_of_stream: bool) {
        if let Some(data) = data.filter(|d| !d.is_empty()) {
            for tap in &mut self.taps {
                tap.on_chunk(data);
            }
        }
        if end_of_stream {
            for tap in &mut self.taps {
                tap.finish();
            }
        }
    }

    /// The primary's response went out whole (a bodiless one may never reach the body
    /// filter's end): compared copies get the answer as it was seen.
    pub fn on_response_complete(&mut self) {
        for tap in &mut self.taps {
            tap.finish();
        }
    }

    /// Copies whose body is still streaming.
    pub fn streaming(&self) -> usize {
        self.copies.iter().filter(|c| c.chunks.is_some()).count()
    }

    /// A new primary attempt starts (call from `upstream_peer`): what follows replays the body
    /// from offset 0. Copies not yet launched are launched as they are.
    pub fn on_upstream_attempt(&mut self) {
        self.launch(|_| {});
        self.attempt_offset = 0;
    }

    /// One body chunk as `request_body_filter` sees it. Bytes already forwarded (a retry's
    /// replay) are skipped; the rest is queued for every copy without waiting.
    pub fn on_body_chunk(&mut self, data: Option<&Bytes>, end_of_stream: bool) -> Pace {
        self.launch(|_| {});
        if let Some(data) = data.filter(|d| !d.is_empty()) {
            let start = self.attempt_offset;
            let end = start + data.len() as u64;
            self.attempt_offset = end;
            if end > self.forwarded {
                let skip = usize::try_from(self.forwarded.saturating_sub(start)).unwrap_or(0);
                let fresh = data.slice(skip..);
                self.forwarded = end;
                for copy in &mut self.copies {
                    copy.send(fresh.clone());
                }
            }
        }
        if end_of_stream {
            for copy in &mut self.copies {
                copy.finish();
            }
        }
        if self
            .copies
            .iter()
            .any(|c| c.chunks.is_some() && c.budget.queued() >= c.yield_at)
        {
            Pace::Yield
        } else {
            Pace::Continue
        }
    }

    /// The primary exchange is over: copies whose body is unfinished are aborted; copies never
    /// launched (the gateway answered itself) are dropped uncounted.
    pub fn on_primary_done(&mut self) {
        self.pending.clear();
        // A compared copy whose primary answer is unfinished is not compared.
        self.taps.clear();
        for copy in &mut self.copies {
            copy.abort(AbortReason::Client);
        }
    }
}

impl Drop for MirrorSet {
    fn drop(&mut self) {
        self.on_primary_done();
    }
}

// === impl Copy ===

impl Copy {
    fn send(&mut self, data: Bytes) {
        let Some(tx) = &self.chunks else { return };
        let Some(reservation) = self.budget.reserve(data.len()) else {
            self.abort(AbortReason::Overflow);
            return;
        };
        if tx.send(Chunk { data, reservation }).is_err() {
            // The copy already ended on its own (mirror error); its outcome is recorded.
            self.chunks = None;
        }
    }

    // The state is set before the sender is dropped: the task reads it when the channel closes.
    fn finish(&mut self) {
        if self.chunks.is_some() {
            self.state.send_replace(State::BodyComplete);
            self.chunks = None;
        }
    }

    fn abort(&mut self, reason: AbortReason) {
        if self.chunks.is_some() {
            self.state.send_replace(State::Aborted(reason));
            self.chunks = None;
        }
    }
}
