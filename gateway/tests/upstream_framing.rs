//! Raw-socket upstreams that frame their answers badly or answer early: what the client gets,
//! whether the upstream connection is reused, and what reaches the upstream afterwards.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sluice_controller::snapshot::BackendProtocol;
use sluice_test_support::proxy::*;
use sluice_test_support::raw::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};

/// Large enough that the socket buffers between proxy and upstream cannot hold it all.
const LARGE_BODY: usize = 16 << 20;

/// A raw upstream that hands each accepted connection, with its 0-based accept number, to
/// `answer`; the counter says how many connections the proxy opened.
async fn upstream<F, Fut>(answer: F) -> (SocketAddr, Arc<AtomicUsize>)
where
    F: Fn(usize, TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let accepts = Arc::new(AtomicUsize::new(0));
    let counter = accepts.clone();
    let addr = raw_backend(move |tcp| answer(counter.fetch_add(1, Ordering::SeqCst), tcp)).await;
    (addr, accepts)
}

/// Answers every request on the connection with `200` and `body`, after reading the request's
/// `Content-Length` body (echoed back when `body` is empty).
async fn keep_alive(mut tcp: TcpStream, body: &'static str) {
    loop {
        let head = read_head(&mut tcp).await;
        if head.is_empty() {
            return;
        }
        let mut request_body = vec![0u8; content_length(&head)];
        if tcp.read_exact(&mut request_body).await.is_err() {
            return;
        }
        let out = if body.is_empty() {
            request_body
        } else {
            body.as_bytes().to_vec()
        };
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", out.len());
        if tcp.write_all(head.as_bytes()).await.is_err() || tcp.write_all(&out).await.is_err() {
            return;
        }
    }
}

fn content_length(head: &str) -> usize {
    head.split("\r\n")
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0)
}

async fn gateway_to(addr: SocketAddr) -> Gateway {
    Gateway::start(|gw| {
        let backends = vec![service_at("default/raw:80", addr, BackendProtocol::Http1)];
        snapshot(
            gw,
            any(vec![entry("r", prefix("/"), action(vec![], backends))]),
        )
    })
    .await
}

/// A gateway in front of a keep-alive upstream that echoes request bodies, and its accepts.
async fn to_echoing_upstream() -> (Gateway, Arc<AtomicUsize>) {
    let (addr, accepts) = upstream(|_, tcp| keep_alive(tcp, "")).await;
    (gateway_to(addr).await, accepts)
}

/// The next request on `client` is answered `fresh`: by the upstream's second connection.
async fn answered_by_a_new_connection(client: &mut Client, accepts: &AtomicUsize) {
    client.send(b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n").await;
    let resp = client.response().await.expect("a response");
    assert_eq!((resp.status, resp.body_text().as_str()), (200, "fresh"));
    assert_eq!(
        accepts.load(Ordering::SeqCst),
        2,
        "a new upstream connection"
    );
}

/// Reads from `tcp` until `needle` has arrived; returns everything read.
async fn read_through(tcp: &mut (impl AsyncReadExt + Unpin), needle: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while !got.windows(needle.len()).any(|w| w == needle) {
        match tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    }
    got
}

/// What an upstream read after it answered: bytes, and whether the proxy then ended the stream
/// (as opposed to going quiet and leaving it open).
async fn drain(tcp: &mut TcpStream) -> (usize, bool) {
    let mut count = 0;
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        match tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (count, true),
            Ok(Ok(n)) => count += n,
            Err(_) => return (count, false),
        }
    }
}

#[tokio::test]
async fn an_upstream_answering_before_the_body_gets_no_more_of_it_and_is_not_reused() {
    bounded(async {
        let (after_tx, mut after_rx) = mpsc::unbounded_channel();
        let client_answered = Arc::new(Notify::new());
        let answered = client_answered.clone();
        let (addr, accepts) = upstream(move |n, mut tcp| {
            let (after_tx, answered) = (after_tx.clone(), answered.clone());
            async move {
                if n > 0 {
                    return keep_alive(tcp, "fresh").await;
                }
                read_head(&mut tcp).await;
                let answer = b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\n\r\nbig!";
                if tcp.write_all(answer).await.is_ok() {
                    // Reads none of the body until the client has the answer, as an upstream
                    // that refuses a body does; then counts what the proxy still sent.
                    answered.notified().await;
                    let _ = after_tx.send(drain(&mut tcp).await);
                }
            }
        })
        .await;
        let gw = gateway_to(addr).await;

        let tcp = TcpStream::connect(gw.addr).await.expect("connect");
        let (mut reader, mut writer) = tcp.into_split();
        let head =
            format!("POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: {LARGE_BODY}\r\n\r\n");
        writer.write_all(head.as_bytes()).await.expect("head");
        // The client goes on sending its body; the proxy may stop reading it.
        tokio::spawn(async move {
            let chunk = vec![b'x'; 64 << 10];
            for _ in 0..LARGE_BODY / chunk.len() {
                if writer.write_all(&chunk).await.is_err() {
                    return;
                }
            }
        });
        let got = read_through(&mut reader, b"big!").await;
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 413"), "{text}");
        assert!(text.ends_with("big!"), "{text}");
        client_answered.notify_one();

        let (after, ended) = after_rx.recv().await.expect("the upstream's count");
        assert!(
            ended,
            "the proxy left the upstream connection open ({after} bytes after)"
        );
        assert!(
            after < LARGE_BODY / 2,
            "the proxy kept sending the body: {after} of {LARGE_BODY} bytes after the answer"
        );

        let mut next = Client::connect(gw.addr).await;
        answered_by_a_new_connection(&mut next, &accepts).await;
    })
    .await;
}

#[tokio::test]
async fn an_upstream_answering_2xx_during_an_upload_gets_all_of_it_and_is_not_reused() {
    const UPLOAD: usize = 1 << 20;
    bounded(async {
        let (got_tx, mut got_rx) = mpsc::unbounded_channel();
        let (addr, accepts) = upstream(move |n, mut tcp| {
            let got_tx = got_tx.clone();
            async move {
                if n > 0 {
                    return keep_alive(tcp, "fresh").await;
                }
                let head = read_head(&mut tcp).await;
                // Full duplex: the answer goes out first, then the upload is read whole.
                let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\naccepted";
                if tcp.write_all(answer).await.is_ok() {
                    let mut body = vec![0u8; content_length(&head)];
                    let read = tcp.read_exact(&mut body).await.map(|_| body.len());
                    let _ = got_tx.send(read.unwrap_or(0));
                }
            }
        })
        .await;
        let gw = gateway_to(addr).await;

        let mut client = Client::connect(gw.addr).await;
        let head = format!("POST /stream HTTP/1.1\r\nHost: h\r\nContent-Length: {UPLOAD}\r\n\r\n");
        client.send(head.as_bytes()).await;
        client.send(&vec![b'x'; 64 << 10]).await;
        let answered = read_through(&mut client.tcp, b"accepted").await;
        let answered = String::from_utf8_lossy(&answered);
        assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
        client.send(&vec![b'y'; UPLOAD - (64 << 10)]).await;
        assert_eq!(
            got_rx.recv().await.expect("the upstream's count"),
            UPLOAD,
            "the whole upload reached the upstream after its early 2xx"
        );

        let mut next = Client::connect(gw.addr).await;
        answered_by_a_new_connection(&mut next, &accepts).await;
    })
    .await;
}

#[tokio::test]
async fn a_response_with_both_framings_is_read_as_chunked_and_what_follows_is_never_relayed() {
    bounded(async {
        let (addr, accepts) = upstream(|n, mut tcp| async move {
            if n > 0 {
                return keep_alive(tcp, "fresh").await;
            }
            // Every request on this connection gets the ambiguous answer and a second,
            // smuggled response right behind its chunked end.
            while !read_head(&mut tcp).await.is_empty() {
                let answer = "HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\
                    Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n\
                    HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled";
                if tcp.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
            }
        })
        .await;
        let gw = gateway_to(addr).await;
        let mut client = Client::connect(gw.addr).await;

        client.send(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n").await;
        let first = read_through(&mut client.tcp, b"0\r\n\r\n").await;
        let first = String::from_utf8_lossy(&first).to_ascii_lowercase();
        assert!(first.starts_with("http/1.1 200"), "{first}");
        assert!(first.contains("transfer-encoding: chunked"), "{first}");
        assert!(!first.contains("content-length"), "{first}");
        assert!(first.ends_with("\r\n2\r\nok\r\n0\r\n\r\n"), "{first}");

        answered_by_a_new_connection(&mut client, &accepts).await;
    })
    .await;
}

#[tokio::test]
async fn a_keep_alive_upstream_connection_is_reused_after_complete_exchanges() {
    bounded(async {
        let (gw, accepts) = to_echoing_upstream().await;
        let mut client = Client::connect(gw.addr).await;
        for body in ["first", "second"] {
            let request = format!(
                "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            client.send(request.as_bytes()).await;
            let resp = client.response().await.expect("a response");
            assert_eq!((resp.status, resp.body_text().as_str()), (200, body));
        }
        client.send(b"GET /get HTTP/1.1\r\nHost: h\r\n\r\n").await;
        let resp = client.response().await.expect("a response");
        assert_eq!((resp.status, resp.body_text().as_str()), (200, ""));
        assert_eq!(accepts.load(Ordering::SeqCst), 1, "one upstream connection");
    })
    .await;
}

#[tokio::test]
async fn expect_100_continue_still_brings_the_body_to_the_upstream() {
    bounded(async {
        let (gw, accepts) = to_echoing_upstream().await;
        let mut client = Client::connect(gw.addr).await;
        client
            .send(b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
            .await;
        let interim = client.response().await.expect("an interim response");
        assert_eq!(interim.status, 100);
        client.send(b"hello").await;
        let resp = client.response().await.expect("a response");
        assert_eq!((resp.status, resp.body_text().as_str()), (200, "hello"));
        // Pingora closes the client connection after an exchange it answered 100 for; the
        // upstream connection stays pooled all the same.
        let mut again = Client::connect(gw.addr).await;
        again.send(b"GET /again HTTP/1.1\r\nHost: h\r\n\r\n").await;
        assert_eq!(again.response().await.expect("a response").status, 200);
        assert_eq!(accepts.load(Ordering::SeqCst), 1, "one upstream connection");
    })
    .await;
}
