//! How reads through the guard are cut: what Pingora gets from each read of a body.

use std::time::Duration;

use pingora_core::protocols::l4::stream::Stream as TcpConnection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

/// A guarded connection whose client already sent `bytes`, every one of them readable.
async fn guarded_with(bytes: &[u8]) -> (EdgeStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut client = TcpStream::connect(addr).await.expect("connect");
    let (server, _) = listener.accept().await.expect("accept");
    client.write_all(bytes).await.expect("client write");
    // Reads must find everything there: wait until the socket holds all of it.
    let mut peeked = vec![0; bytes.len() + 1];
    tokio::time::timeout(Duration::from_secs(5), async {
        while server.peek(&mut peeked).await.expect("peek") < bytes.len() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the client's bytes arrive");
    let guarded = EdgeStream::new(
        Box::new(TcpConnection::from(server)),
        EdgeLimits::default(),
        false,
    );
    (guarded, client)
}

/// One read into a buffer of `capacity` bytes, as Pingora reads.
async fn read_once(stream: &mut EdgeStream, capacity: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0; capacity];
    let n = stream.read(&mut buf).await?;
    buf.truncate(n);
    Ok(buf)
}

fn post_head(length: usize) -> Vec<u8> {
    format!("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: {length}\r\n\r\n").into_bytes()
}

#[tokio::test]
async fn a_body_sent_with_its_head_is_read_whole_in_one_chunk() {
    let head = post_head(65_536);
    let body = vec![b'x'; 65_536];
    let (mut guarded, _client) = guarded_with(&[head.clone(), body.clone()].concat()).await;
    // Pingora's first read takes 4 KiB: the head, with the start of the body kept back.
    assert_eq!(read_once(&mut guarded, 4096).await.expect("head"), head);
    // Its first body read gets the kept-back start and the rest together, not two chunks.
    let chunk = read_once(&mut guarded, 65_536).await.expect("body");
    assert_eq!(chunk.len(), body.len());
    assert_eq!(chunk, body);
}

#[tokio::test]
async fn a_topped_up_body_read_stops_at_the_end_of_its_message() {
    let head = post_head(8_000);
    let body = vec![b'y'; 8_000];
    let next = b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n".to_vec();
    let (mut guarded, _client) =
        guarded_with(&[head.clone(), body.clone(), next.clone()].concat()).await;
    assert_eq!(read_once(&mut guarded, 4096).await.expect("head"), head);
    assert_eq!(read_once(&mut guarded, 65_536).await.expect("body"), body);
    // The pipelined request behind the body is kept for the next head read.
    assert_eq!(
        read_once(&mut guarded, 4096).await.expect("next head"),
        next
    );
}

#[tokio::test]
async fn a_refusal_met_while_topping_up_is_the_next_reads_answer() {
    let head = b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let good = b"10\r\n0123456789abcdef\r\n".to_vec();
    let bad = b"zz\r\n".to_vec();
    let (mut guarded, _client) = guarded_with(&[head.clone(), good.clone(), bad].concat()).await;
    // A head read that ends after the first chunk: the bad chunk is left in the socket, to be
    // met by the top-up of the next read.
    let first = read_once(&mut guarded, head.len() + good.len())
        .await
        .expect("head");
    assert_eq!(first, head);
    assert_eq!(
        read_once(&mut guarded, 65_536).await.expect("good chunk"),
        good
    );
    let refused = read_once(&mut guarded, 65_536)
        .await
        .expect_err("the bad chunk is refused");
    assert_eq!(refused.kind(), std::io::ErrorKind::InvalidData);
}
