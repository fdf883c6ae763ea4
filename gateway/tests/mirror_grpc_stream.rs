//! gRPC streams through the proxy, mirrored: an h2c client streams gRPC-framed messages through
//! Sluice to an h2c backend (what a GRPCRoute becomes) while a RequestMirror copies the call to a
//! second h2c backend. The copy is streamed message by message, and the primary stream never
//! waits for the mirror, however slow, dead or resetting it is.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_controller::mirror_settings::MirrorSettings;
use sluice_gateway::mirror::{MirrorOptions, Outcome};
use sluice_test_support::grpc::{self, Behaviour, Call, Client};
use sluice_test_support::mirror::{self, Gateway};
use sluice_test_support::{servers, tls, until, within};

const MIRROR: &str = "shadow";
/// Whole calls are bounded by this; a stall anywhere fails the test instead of hanging it.
const CALL: Duration = Duration::from_secs(20);
const PAUSE: Duration = Duration::from_millis(40);

/// A primary answering every call, a mirror, and the gateway between them.
struct Fixture {
    gateway: Gateway,
    primary: grpc::Backend,
    /// `None` when the mirror is not a gRPC backend (a closed port).
    mirror: Option<grpc::Backend>,
}

impl Fixture {
    async fn start(mirror: Behaviour) -> Fixture {
        Fixture::with(mirror, MirrorSettings::default()).await
    }

    async fn with(behaviour: Behaviour, settings: MirrorSettings) -> Fixture {
        let mirror = grpc::Backend::start(behaviour).await;
        let mut fx = Fixture::mirroring_to(mirror.addr, settings).await;
        fx.mirror = Some(mirror);
        fx
    }

    async fn mirroring_to(at: SocketAddr, settings: MirrorSettings) -> Fixture {
        let primary = grpc::Backend::start(Behaviour::Answer).await;
        let options = MirrorOptions {
            settings,
            ..MirrorOptions::default()
        };
        let filters = vec![mirror::mirror_h2c(MIRROR, at)];
        let gateway = Gateway::start_grpc(primary.addr, filters, options).await;
        Fixture {
            gateway,
            primary,
            mirror: None,
        }
    }

    async fn client(&self) -> Client {
        Client::connect(self.gateway.addr).await
    }

    fn mirror(&self) -> &grpc::Backend {
        self.mirror.as_ref().expect("a gRPC mirror")
    }

    /// A bidirectional call of `sent` whose primary gets every message and ends normally, the
    /// first call of this fixture; how its one copy ended, once it settled.
    async fn only_copy_outcome(&self, sent: &[Bytes]) -> Outcome {
        self.bidi(sent).await;
        primary_got_all(self, sent);
        self.gateway.settled(MIRROR, 1).await;
        Outcome::ALL
            .into_iter()
            .find(|o| self.gateway.count(MIRROR, *o) == 1)
            .expect("one outcome")
    }

    /// A bidirectional call of `sent` through the gateway, each answer awaited before the next
    /// message; checks every answer and the trailers. When each message was sent, and the round
    /// trips.
    async fn bidi(&self, sent: &[Bytes]) -> (Vec<Instant>, Vec<Duration>) {
        let client = self.client().await;
        let mut call = client.open(grpc::ECHO, &[]).await;
        let (rtts, sent_at) =
            within("bidi call", CALL, grpc::round_trips(&mut call, sent, PAUSE)).await;
        call.finish();
        let (rest, trailers) = within("bidi end", CALL, call.rest()).await;
        assert!(rest.is_empty(), "one answer per message");
        assert_eq!(trailers["grpc-status"], "0");
        assert_eq!(trailers[grpc::MESSAGES_TRAILER], sent.len().to_string());
        (sent_at, rtts)
    }
}

/// Settings whose copies give up soon on a mirror that never answers.
fn impatient() -> MirrorSettings {
    MirrorSettings {
        timeout: Duration::from_millis(300),
        ..MirrorSettings::default()
    }
}

fn ended(call: &Call) -> bool {
    call.ended.is_some()
}

/// The primary's view of the calls: the last one ended normally with every message.
fn primary_got_all(fx: &Fixture, sent: &[Bytes]) {
    let calls = fx.primary.calls();
    let last = calls.last().expect("the primary got the call");
    assert_eq!(last.ended, Some(true));
    assert_eq!(last.message_bytes(), sent);
}

#[tokio::test]
async fn streaming_call_is_mirrored_with_messages_intact() {
    let fx = Fixture::start(Behaviour::Answer).await;
    let sent = grpc::messages(6, 300);

    // Bidirectional: each answer arrives before the next message is sent.
    let (sent_at, _) = fx.bidi(&sent).await;
    let copy = fx.mirror().call_where("the bidi copy", ended).await;
    assert_eq!(copy.path, grpc::ECHO);
    assert_eq!(copy.ended, Some(true), "the copy ends as the call did");
    assert_eq!(
        copy.message_bytes(),
        sent,
        "same messages, same bytes, same order"
    );
    let last_sent = *sent_at.last().expect("sent");
    assert!(
        copy.messages[0].1 < last_sent,
        "the mirror had the first message before the client sent the last"
    );

    // Client streaming: messages with pauses, one answer after the end of stream.
    let client = fx.client().await;
    let mut upload = client.open(grpc::COLLECT, &[]).await;
    let mut last_sent = None;
    for (i, message) in sent.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(PAUSE).await;
        }
        last_sent = Some(Instant::now());
        upload.send(message);
    }
    upload.finish();
    let (answers, trailers) = within("client-streaming call", CALL, upload.rest()).await;
    assert_eq!(answers, vec![Bytes::from("6")]);
    assert_eq!(trailers["grpc-status"], "0");
    let copy = fx
        .mirror()
        .call_where("the client-streaming copy", |c| {
            c.path == grpc::COLLECT && ended(c)
        })
        .await;
    assert_eq!(copy.message_bytes(), sent);
    assert!(copy.messages[0].1 < last_sent.expect("sent"));
    fx.gateway.all_completed(MIRROR, 2).await;
}

#[tokio::test]
async fn fast_mirror_receives_each_message_before_the_next_is_sent() {
    let fx = Fixture::start(Behaviour::Answer).await;
    let client = fx.client().await;
    let sent = grpc::messages(5, 64);
    let mut call = client.open(grpc::ECHO, &[]).await;
    for (i, message) in sent.iter().enumerate() {
        call.send(message);
        let answer = within("an answer", CALL, call.next_message()).await;
        assert_eq!(answer.as_ref(), Some(message));
        // The copy is streamed: message i is at the mirror while the client still holds i + 1.
        fx.mirror()
            .call_where("the message at the mirror", |c| c.messages.len() > i)
            .await;
    }
    call.finish();
    let (_, trailers) = within("call end", CALL, call.rest()).await;
    assert_eq!(trailers["grpc-status"], "0");
    let copy = fx.mirror().call_where("the copy's end", ended).await;
    assert_eq!(copy.message_bytes(), sent);

    // Server streaming and a unary call are copied the same way.
    let mut repeat = client.open(grpc::REPEAT, &[]).await;
    repeat.send(b"once");
    repeat.finish();
    let (answers, _) = within("server-streaming call", CALL, repeat.rest()).await;
    assert_eq!(answers, vec![Bytes::from("once"); 3]);
    let mut unary = client.open(grpc::ECHO, &[]).await;
    unary.send(b"unary");
    unary.finish();
    let (answers, _) = within("unary call", CALL, unary.rest()).await;
    assert_eq!(answers, vec![Bytes::from("unary")]);
    fx.gateway.all_completed(MIRROR, 3).await;
    let copies = fx.mirror().calls();
    assert_eq!(copies[1].path, grpc::REPEAT);
    assert_eq!(copies[1].message_bytes(), vec![Bytes::from("once")]);
    assert_eq!(copies[2].message_bytes(), vec![Bytes::from("unary")]);
}

#[tokio::test]
async fn slow_mirror_does_not_delay_primary_stream() {
    // Messages of 16 KiB: the stalled mirror's HTTP/2 window (64 KiB) is full after four.
    let sent = grpc::messages(10, 16 * 1024);
    let fx = Fixture::with(Behaviour::Stall, impatient()).await;
    let baseline = Gateway::start_grpc(fx.primary.addr, Vec::new(), MirrorOptions::default()).await;
    let baseline_client = Client::connect(baseline.addr).await;
    let mut call = baseline_client.open(grpc::ECHO, &[]).await;
    let (unmirrored, _) = within(
        "baseline call",
        CALL,
        grpc::round_trips(&mut call, &sent, PAUSE),
    )
    .await;
    call.finish();
    within("baseline end", CALL, call.rest()).await;

    let (_, mirrored) = fx.bidi(&sent).await;
    // The whole call is over while the mirror has not read a byte.
    let copy = fx.mirror().call_where("the copy's head", |_| true).await;
    assert!(copy.messages.is_empty() && copy.ended.is_none(), "{copy:?}");
    primary_got_all(&fx, &sent);
    let slowest = |rtts: &[Duration]| rtts.iter().max().copied().unwrap_or_default();
    let bound = slowest(&unmirrored) * 5 + Duration::from_millis(250);
    assert!(
        slowest(&mirrored) <= bound,
        "round trips with a stalled mirror {mirrored:?}, without a mirror {unmirrored:?}"
    );
    // The copy then gives up on its own: its answer never came.
    fx.gateway.settled(MIRROR, 1).await;
    assert_eq!(fx.gateway.count(MIRROR, Outcome::Timeout), 1);
}

#[tokio::test]
async fn dead_mirror_leaves_primary_stream_intact() {
    let sent = grpc::messages(6, 200);

    let refused = Fixture::mirroring_to(servers::down().await, MirrorSettings::default()).await;
    assert_eq!(
        refused.only_copy_outcome(&sent).await,
        Outcome::ConnectError
    );

    let resetting = Fixture::start(Behaviour::ResetAfter(2)).await;
    let outcome = resetting.only_copy_outcome(&sent).await;
    assert_eq!(outcome, Outcome::UpstreamError);
    let copy = resetting.mirror().call_where("the reset copy", ended).await;
    assert_eq!(copy.message_bytes(), sent[..2]);

    // Accepts the connection and never speaks, not even HTTP/2's preface.
    let silent = servers::blackhole().await;
    let unanswered = Fixture::mirroring_to(silent.addr, impatient()).await;
    assert_ne!(
        unanswered.only_copy_outcome(&sent).await,
        Outcome::Completed
    );
}

#[tokio::test]
async fn cancelled_call_aborts_its_copy_before_the_end_of_stream() {
    let fx = Fixture::start(Behaviour::Answer).await;
    let client = fx.client().await;
    let sent = grpc::messages(2, 100);
    let mut call = client.open(grpc::ECHO, &[]).await;
    within(
        "two round trips",
        CALL,
        grpc::round_trips(&mut call, &sent, PAUSE),
    )
    .await;
    fx.mirror()
        .call_where("both messages at the mirror", |c| c.messages.len() == 2)
        .await;
    call.cancel();
    fx.gateway.settled(MIRROR, 1).await;
    assert_eq!(fx.gateway.count(MIRROR, Outcome::AbortedClient), 1);
    let copy = fx.mirror().call_where("the copy's end", ended).await;
    assert_eq!(
        copy.ended,
        Some(false),
        "the mirror sees a cut stream, not a complete one"
    );
    let primary = fx.primary.call_where("the call's end", ended).await;
    assert_eq!(primary.ended, Some(false));
}

#[tokio::test]
async fn cancelled_call_leaves_other_copies_intact() {
    let fx = Fixture::start(Behaviour::Answer).await;
    let client = fx.client().await;
    let sent = grpc::messages(4, 100);
    let (first, second) = (&sent[..2], &sent[2..]);
    let mut cancelled = client.open(grpc::ECHO, &[]).await;
    let mut kept = client.open(grpc::ECHO, &[]).await;
    within("first halves", CALL, async {
        grpc::round_trips(&mut cancelled, first, PAUSE).await;
        grpc::round_trips(&mut kept, first, PAUSE).await;
    })
    .await;
    fx.mirror()
        .call_where("two copies under way", |_| fx.mirror().calls().len() == 2)
        .await;
    cancelled.cancel();
    until("the cancelled copy aborted", CALL, || {
        (fx.gateway.count(MIRROR, Outcome::AbortedClient) == 1).then_some(())
    })
    .await;
    // The other call and its copy go on.
    within(
        "second half",
        CALL,
        grpc::round_trips(&mut kept, second, PAUSE),
    )
    .await;
    kept.finish();
    let (_, trailers) = within("kept call end", CALL, kept.rest()).await;
    assert_eq!(trailers["grpc-status"], "0");
    fx.gateway.settled(MIRROR, 2).await;
    assert_eq!(fx.gateway.count(MIRROR, Outcome::AbortedClient), 1);
    assert_eq!(fx.gateway.count(MIRROR, Outcome::Completed), 1);
    let copies = fx.mirror().calls();
    let whole: Vec<_> = copies.iter().filter(|c| c.ended == Some(true)).collect();
    assert_eq!(whole.len(), 1, "{copies:?}");
    assert_eq!(whole[0].message_bytes(), sent);
}

#[tokio::test]
async fn trailers_reach_the_client() {
    let fx = Fixture::start(Behaviour::Answer).await;
    let client = fx.client().await;

    let mut ok = client.open(grpc::ECHO, &[]).await;
    ok.send(b"fine");
    ok.finish();
    let (_, trailers) = within("ok call", CALL, ok.rest()).await;
    assert_eq!(trailers["grpc-status"], "0");
    assert!(!trailers.contains_key("grpc-message"));
    assert_eq!(trailers[grpc::MESSAGES_TRAILER], "1");

    let failing = [
        (grpc::WANT_STATUS, "9"),
        (grpc::WANT_MESSAGE, "precondition%20failed"),
    ];
    let mut failed = client.open(grpc::COLLECT, &failing).await;
    failed.send(b"one");
    failed.send(b"two");
    failed.finish();
    let head_status = failed.head().await.status;
    assert_eq!(head_status, 200, "gRPC errors travel in trailers");
    let (_, trailers) = within("failing call", CALL, failed.rest()).await;
    assert_eq!(trailers["grpc-status"], "9");
    assert_eq!(trailers["grpc-message"], "precondition%20failed");
    assert_eq!(trailers[grpc::MESSAGES_TRAILER], "2");

    // Trailers-only: the status travels in the response head, which ends the stream.
    let mut missing = client.open(grpc::UNIMPLEMENTED, &[]).await;
    missing.send(b"anyone?");
    missing.finish();
    let head = within("trailers-only call", CALL, missing.head()).await;
    assert_eq!(head.headers["grpc-status"], "12");
    assert_eq!(head.headers["grpc-message"], "unknown method");
    let (answers, trailers) = within("trailers-only end", CALL, missing.rest()).await;
    assert!(answers.is_empty() && trailers.is_empty());
    fx.gateway.all_completed(MIRROR, 3).await;
}

#[tokio::test]
async fn te_trailers_reaches_backend_and_mirror() {
    let fx = Fixture::start(Behaviour::Answer).await;
    fx.bidi(&grpc::messages(1, 10)).await;
    let at_primary = fx.primary.call_where("the call", ended).await;
    let at_mirror = fx.mirror().call_where("the copy", ended).await;
    for (who, call) in [("primary", at_primary), ("mirror", at_mirror)] {
        let te: Vec<_> = call.headers.get_all("te").iter().collect();
        assert_eq!(te, ["trailers"], "{who}");
        assert_eq!(call.headers["content-type"], "application/grpc", "{who}");
    }
}

#[tokio::test]
async fn copy_exceeding_its_budget_is_aborted_and_primary_completes() {
    // The stalled mirror takes 64 KiB (its HTTP/2 window); the copy may queue 64 KiB more.
    let settings = MirrorSettings {
        request_buffer_bytes: 64 * 1024,
        ..impatient()
    };
    let fx = Fixture::with(Behaviour::Stall, settings).await;
    let sent = grpc::messages(24, 16 * 1024);
    let outcome = fx.only_copy_outcome(&sent).await;
    assert_eq!(outcome, Outcome::DroppedOverflow);
}

#[tokio::test]
async fn bidi_stream_over_tls_is_full_duplex_and_mirrored() {
    const NAME: &str = "grpc.test";
    let primary = grpc::Backend::start(Behaviour::Answer).await;
    let shadow = grpc::Backend::start(Behaviour::Answer).await;
    let (key, trusted) = tls::certified_key(NAME);
    let filters = vec![mirror::mirror_h2c(MIRROR, shadow.addr)];
    let options = MirrorOptions::default();
    let gateway = Gateway::start_grpc_tls(primary.addr, filters, options, key).await;
    let client = Client::connect_tls(gateway.addr, NAME, &trusted).await;
    let sent = grpc::messages(4, 500);
    let mut call = client.open(grpc::ECHO, &[]).await;
    within(
        "bidi over TLS",
        CALL,
        grpc::round_trips(&mut call, &sent, PAUSE),
    )
    .await;
    call.finish();
    let (_, trailers) = within("call end", CALL, call.rest()).await;
    assert_eq!(trailers["grpc-status"], "0");
    let copy = shadow.call_where("the copy", ended).await;
    assert_eq!(copy.message_bytes(), sent);
    gateway.all_completed(MIRROR, 1).await;
}

#[tokio::test]
async fn long_stream_to_a_healthy_mirror_is_copied_whole_beyond_its_buffer() {
    // The budget bounds how far a copy may lag, not how long a stream may be. The mirror echoes
    // every message within its HTTP/2 window and reads no further while an echo waits: the copy
    // only gets through because it reads and discards the mirror's answers as they come.
    let settings = MirrorSettings {
        request_buffer_bytes: 64 * 1024,
        ..MirrorSettings::default()
    };
    let fx = Fixture::with(Behaviour::Answer, settings).await;
    let sent = grpc::messages(64, 16 * 1024);
    let client = fx.client().await;
    let mut call = client.open(grpc::ECHO, &[]).await;
    within(
        "long call",
        CALL,
        grpc::round_trips(&mut call, &sent, Duration::ZERO),
    )
    .await;
    call.finish();
    within("long call end", CALL, call.rest()).await;
    fx.gateway.all_completed(MIRROR, 1).await;
    let copy = fx.mirror().call_where("the copy", ended).await;
    assert_eq!(
        copy.message_bytes(),
        sent,
        "1 MiB copied whole through a 64 KiB buffer"
    );
}
