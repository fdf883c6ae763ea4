//! Mirror fidelity on the wire (issue #17 items 3, 5, 7, 8): a request Pingora refuses is not
//! copied, a copy keeps the gateway's own `X-Forwarded-*`, a mirror that answers while reading
//! gets a large upload whole (even one answering far more than it reads), an early answer does not poison the pooled connection, and a
//! URLRewrite hostname reaches the primary of an HTTP/2 client.

use sluice_test_support::mirror as gateway;
use sluice_test_support::raw;
use sluice_test_support::servers::{self, Received};
use sluice_test_support::within;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gateway::{mirror, Gateway};
use pingora_http::RequestHeader;
use sluice_controller::mirror_settings::MirrorSettings;
use sluice_controller::snapshot::{Backend, BackendProtocol, Filter, Fraction, Mirror, UrlRewrite};
use sluice_gateway::mirror::{MirrorEngine, MirrorMetrics, MirrorOptions, MirrorSet, Outcome};
use tokio::sync::mpsc::UnboundedReceiver;

const LIMIT: Duration = Duration::from_secs(60);

/// The next request a recording server reports, waited for within [`LIMIT`].
async fn received(what: &str, reports: &mut UnboundedReceiver<Received>) -> Received {
    within(what, LIMIT, reports.recv())
        .await
        .unwrap_or_else(|| panic!("{what}: the server stopped reporting"))
}

fn header<'a>(r: &'a Received, name: &str) -> Option<&'a str> {
    r.headers.get(name).and_then(|v| v.to_str().ok())
}

fn body(len: usize) -> Bytes {
    Bytes::from((0..len).map(|i| (i * 7 % 253) as u8).collect::<Vec<u8>>())
}

/// Mirror options whose per-copy budget holds `mib` MiB: only a stalled exchange can fail a copy
/// of a body that size.
fn budget_of_mib(mib: usize) -> MirrorOptions {
    MirrorOptions {
        settings: MirrorSettings {
            request_buffer_bytes: mib * 1024 * 1024,
            ..MirrorSettings::default()
        },
        ..MirrorOptions::default()
    }
}

/// POSTs `data` to `path` through `gw`; the primary must answer 200 within [`LIMIT`].
async fn upload(gw: &Gateway, path: &str, data: Bytes) {
    let resp = within(
        "the upload",
        LIMIT,
        gateway::client().post(gw.url(path)).body(data).send(),
    )
    .await
    .expect("response");
    assert_eq!(resp.status(), 200);
}

// === item 3: only requests that reach the backend are copied ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_pingora_refuses_with_400_are_not_mirrored() {
    let (primary, mut at_primary) = servers::recording(200).await;
    let (shadow, mut at_mirror) = servers::recording(200).await;
    let gw = Gateway::mirroring_all(primary.addr, "refused", shadow.addr).await;
    for connection in ["host", "x-forwarded-for, keep-alive", "x-forwarded-host"] {
        let mut client = raw::Client::connect(gw.addr).await;
        let request = format!(
            "GET /refused HTTP/1.1\r\nhost: example.com\r\nconnection: {connection}\r\n\r\n"
        );
        client.send(request.as_bytes()).await;
        let resp = client.response().await.expect("an answer");
        assert_eq!(resp.status, 400, "Connection: {connection}");
    }
    // A request that is proxied, after the refused ones: by the time its copy is counted, any
    // copy of the refused ones would have been too.
    let resp = gateway::client()
        .get(gw.url("/after"))
        .send()
        .await
        .expect("response");
    assert_eq!(resp.status(), 200);
    assert_eq!(received("primary", &mut at_primary).await.path, "/after");
    assert_eq!(received("mirror", &mut at_mirror).await.path, "/after");
    gw.all_completed("refused", 1).await;
    assert_eq!(
        gw.total("refused"),
        1,
        "only the proxied request was copied"
    );
    assert_eq!(shadow.accepted(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_keeps_the_forwarded_headers_its_connection_header_names() {
    let (shadow, mut at_mirror) = servers::recording(200).await;
    let registry = prometheus::Registry::new();
    let engine = MirrorEngine::new(
        MirrorOptions::default(),
        MirrorMetrics::register(&registry).expect("register"),
    );
    let mirror = Mirror {
        backend: Arc::new(Backend::new(
            "default/shadow:80".into(),
            vec![shadow.addr],
            BackendProtocol::Http1,
        )),
        fraction: Fraction::ALL,
        policy: None,
    };
    let mut head = RequestHeader::build("GET", b"/fwd", None).expect("head");
    for (name, value) in [
        ("host", "example.com"),
        ("connection", "x-forwarded-for, x-private"),
        ("x-forwarded-for", "6.6.6.6"),
        ("x-private", "hop"),
    ] {
        head.append_header(name, value).expect("header");
    }
    let mut set = MirrorSet::new(engine.clone());
    set.start(&mirror, &head, "default/web", false);
    // What the proxy's X-Forwarded-* pass does to the copy.
    set.launch(|h| {
        h.insert_header("x-forwarded-for", "192.0.2.7")
            .expect("header");
    });
    let m = received("mirror", &mut at_mirror).await;
    assert_eq!(m.path, "/fwd");
    assert_eq!(header(&m, "x-forwarded-for"), Some("192.0.2.7"));
    assert_eq!(header(&m, "x-private"), None, "nominated fields still go");
    assert_eq!(header(&m, "connection"), None);
}

// === item 5: full duplex ===

// A mirror whose answer keeps pace with the body (this echo) makes a copy move twice the bytes;
// reading the answer only between writes left it trailing the primary until it overflowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_that_answers_while_reading_gets_a_large_upload_whole() {
    let (primary, mut at_primary) = servers::recording(200).await;
    let (shadow, mut at_mirror) = servers::echoing().await;
    // A budget well under the body, yet not so small that a copy keeping pace still overflows
    // on scheduling noise of a busy machine. (On loopback the socket buffers are large enough
    // that the old between-writes reading did not deadlock, only lagged: with this budget it
    // passes too. The duplex writer is what keeps a copy going when buffers are small.)
    let options = budget_of_mib(16);
    let gw = Gateway::mirroring_all_with(primary.addr, "duplex", shadow.addr, options).await;
    let data = body(40 * 1024 * 1024 + 3);
    let sha = servers::sha256(&data);
    upload(&gw, "/duplex", data).await;
    assert_eq!(received("primary", &mut at_primary).await.sha256, sha);
    let m = received("mirror", &mut at_mirror).await;
    assert!(m.complete, "the mirror got the whole body");
    assert_eq!(m.sha256, sha);
    gw.all_completed("duplex", 1).await;
}

/// Answer bytes the amplifying mirror sends for every body byte it reads.
const AMPLIFY: usize = 64;

// A mirror that answers far more than it reads, and reads nothing more while its answer is not
// taken: a copy that reads only between writes blocks in a write with both directions full,
// and stays there until the mirror timeout. A full-duplex copy keeps draining the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_answering_more_than_it_reads_is_drained_while_the_body_is_written() {
    let (primary, mut at_primary) = servers::recording(200).await;
    let (shadow, mut at_mirror) = amplifying_mirror().await;
    // The budget holds the whole body: only a stalled exchange can fail the copy.
    let options = budget_of_mib(16);
    let gw = Gateway::mirroring_all_with(primary.addr, "amplified", shadow, options).await;
    let data = body(4 * 1024 * 1024 + 5);
    let len = data.len() as u64;
    upload(&gw, "/amplified", data).await;
    assert_eq!(received("primary", &mut at_primary).await.body_len, len);
    let read = within("the mirror", LIMIT, at_mirror.recv())
        .await
        .expect("the mirror reports");
    assert_eq!(read, len, "the mirror read the whole body");
    gw.all_completed("amplified", 1).await;
}

// An h2c mirror that answers as it reads (a gRPC bidirectional stream), 64 bytes per body byte:
// while a copy blocks in one body write, the answer to that write alone overfills Pingora's
// 8 MiB HTTP/2 receive window, the mirror stops reading, and a copy that reads the answer only
// between writes waits on flow control until the mirror timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2c_mirror_answering_as_it_reads_gets_a_large_upload_whole() {
    let (primary, mut at_primary) = servers::recording(200).await;
    let (shadow, mut at_mirror) = servers::echoing_h2c(64).await;
    let h2c_mirror = Filter::Mirror(Mirror {
        backend: Arc::new(Backend::new(
            gateway::label("echoing"),
            vec![shadow.addr],
            BackendProtocol::H2c,
        )),
        fraction: Fraction::ALL,
        policy: None,
    });
    // The budget holds the whole body: only a stalled exchange can fail the copy.
    let options = budget_of_mib(32);
    let gw = Gateway::start(primary.addr, vec![h2c_mirror], options).await;
    let data = body(2 * 1024 * 1024 + 5);
    let len = data.len() as u64;
    upload(&gw, "/echoing", data).await;
    assert_eq!(received("primary", &mut at_primary).await.body_len, len);
    let got = received("mirror", &mut at_mirror).await;
    assert!(got.complete, "the mirror's body ended early");
    assert_eq!(got.body_len, len, "the mirror read the whole body");
    gw.all_completed("echoing", 1).await;
}

/// An HTTP/1.1 mirror answering each body byte with [`AMPLIFY`] bytes as it reads it; reports
/// how many body bytes each request got before it ended or the connection did.
async fn amplifying_mirror() -> (std::net::SocketAddr, UnboundedReceiver<u64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(serve_amplified(&mut conn).await);
            });
        }
    });
    (addr, rx)
}

async fn serve_amplified(conn: &mut tokio::net::TcpStream) -> u64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    let mut head = Vec::new();
    let body_start = loop {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return 0,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let text = String::from_utf8_lossy(&head[..body_start]).to_ascii_lowercase();
    let len = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
        len * AMPLIFY
    );
    let zeros = vec![0u8; buf.len() * AMPLIFY];
    if conn.write_all(answer.as_bytes()).await.is_err() {
        return 0;
    }
    let mut got = 0;
    let mut fresh = (head.len() - body_start).min(len);
    loop {
        got += fresh;
        let mut owed = fresh * AMPLIFY;
        while owed > 0 {
            let n = owed.min(zeros.len());
            if conn.write_all(&zeros[..n]).await.is_err() {
                return got as u64;
            }
            owed -= n;
        }
        if got >= len {
            break;
        }
        fresh = match conn.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n.min(len - got),
        };
    }
    got as u64
}

// === item 8: an early answer closes the connection ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_answer_to_an_unread_body_does_not_poison_the_next_copy() {
    let (primary, mut at_primary) = servers::recording(200).await;
    let (shadow, mut at_mirror) = servers::answering_early().await;
    let gw = Gateway::mirroring_all(primary.addr, "early", shadow.addr).await;
    // The body has no CRLF in it, so a mirror reading it as a head runs on into the next one.
    let half = vec![b'a'; 16 * 1024];
    let mut client = raw::Client::connect(gw.addr).await;
    let head = format!(
        "POST /early HTTP/1.1\r\nhost: example.com\r\ncontent-length: {}\r\n\r\n",
        2 * half.len()
    );
    client.send(head.as_bytes()).await;
    client.send(&half).await;
    // The mirror has answered before the second half of the body exists, and the copy ended
    // when Sluice read that answer. Waiting for that, not only for the mirror to have written
    // it, keeps the second half from crossing the answer on the wire: had Sluice written the
    // whole body before it read the answer, the exchange would look complete, as it does to
    // nginx (RFC 9112 §9.3 makes draining the body the server's duty).
    let early = received("the early answer", &mut at_mirror).await;
    assert_eq!(early.path, "/early");
    gw.settled("early", 1).await;
    client.send(&half).await;
    let resp = client.response().await.expect("the primary's answer");
    assert_eq!(resp.status, 200);
    assert_eq!(
        received("primary", &mut at_primary).await.body_len,
        32 * 1024
    );
    assert_eq!(gw.count("early", Outcome::Completed), 1);

    let resp = gateway::client()
        .get(gw.url("/next"))
        .send()
        .await
        .expect("response");
    assert_eq!(resp.status(), 200);
    let next = received("the next copy", &mut at_mirror).await;
    assert_eq!(
        next.method, "GET",
        "the next copy starts on a clean connection"
    );
    assert_eq!(next.path, "/next");
    gw.all_completed("early", 2).await;
    assert_eq!(
        shadow.accepted(),
        2,
        "the answered-early connection was not pooled"
    );
}

// === item 7: URLRewrite hostname for an HTTP/2 client ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_rewrite_hostname_reaches_the_primary_of_an_http2_client() {
    let (primary, mut at_primary) = servers::recording(200).await;
    let (shadow, mut at_mirror) = servers::recording(200).await;
    let rewrite = Filter::UrlRewrite(UrlRewrite {
        hostname: Some("rewritten.example".into()),
        path: None,
    });
    let gw = Gateway::start_h2c(
        primary.addr,
        vec![rewrite, mirror("renamed", shadow.addr, Fraction::ALL)],
        MirrorOptions::default(),
    )
    .await;
    let resp = within(
        "an h2c request",
        LIMIT,
        sluice_test_support::proxy::h2c_client()
            .get(gw.url("/host?x=1"))
            .send(),
    )
    .await
    .expect("response");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let p = received("primary", &mut at_primary).await;
    assert_eq!(p.path, "/host?x=1");
    assert_eq!(header(&p, "host"), Some("rewritten.example"));
    let m = received("mirror", &mut at_mirror).await;
    assert_eq!(header(&m, "host"), Some("rewritten.example"));
    gw.all_completed("renamed", 1).await;
}
