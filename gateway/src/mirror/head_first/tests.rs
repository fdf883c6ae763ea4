//! The held head: when it goes out, with what, and that a pooled connection is wrapped once.

use std::time::Duration;

use pingora_core::protocols::l4::stream::Stream as TcpConnection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

/// A wrapped, armed client connection and the server's end of it.
async fn armed_pair() -> (HeadFirst, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let client = TcpStream::connect(addr).await.expect("connect");
    let (server, _) = listener.accept().await.expect("accept");
    let mut wrapped = HeadFirst {
        inner: Box::new(TcpConnection::from(client)),
        hold: Hold::Off,
        head: BytesMut::new(),
    };
    wrapped.arm();
    (wrapped, server)
}

/// Reads exactly `n` bytes on `server`, within a deadline.
async fn read_exactly(server: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut got = vec![0; n];
    tokio::time::timeout(Duration::from_secs(5), server.read_exact(&mut got))
        .await
        .expect("the bytes arrive")
        .expect("read");
    got
}

/// Nothing is readable on `server` now (loopback delivers a write before `write` returns).
fn nothing_sent(server: &TcpStream) -> bool {
    let mut probe = [0; 1];
    matches!(server.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

const HEAD: &[u8] = b"POST /copy HTTP/1.1\r\nHost: mirror\r\nContent-Length: 5\r\n\r\n";

#[tokio::test]
async fn the_head_waits_for_the_first_body_bytes_and_goes_with_them() {
    let (mut wrapped, mut server) = armed_pair().await;
    wrapped.write_all(HEAD).await.expect("head");
    wrapped.flush().await.expect("the head's flush");
    assert!(nothing_sent(&server), "the head went out alone");
    wrapped.write_all(b"hello").await.expect("body");
    wrapped.flush().await.expect("flush");
    assert_eq!(
        read_exactly(&mut server, HEAD.len() + 5).await,
        [HEAD, b"hello"].concat()
    );
    // Past the first body write, writes pass straight through.
    assert_eq!(wrapped.hold, Hold::Off);
    wrapped.write_all(b"more").await.expect("write");
    assert_eq!(read_exactly(&mut server, 4).await, b"more");
}

#[tokio::test]
async fn a_held_head_goes_out_at_the_next_flush_when_no_body_comes() {
    let (mut wrapped, mut server) = armed_pair().await;
    wrapped.write_all(HEAD).await.expect("head");
    wrapped.flush().await.expect("the head's flush");
    assert!(nothing_sent(&server));
    wrapped.flush().await.expect("the body's end");
    assert_eq!(read_exactly(&mut server, HEAD.len()).await, HEAD);
}

#[tokio::test]
async fn an_unarmed_connection_writes_at_once() {
    let (mut wrapped, mut server) = armed_pair().await;
    wrapped.hold = Hold::Off;
    wrapped.write_all(HEAD).await.expect("head");
    assert_eq!(read_exactly(&mut server, HEAD.len()).await, HEAD);
}

#[tokio::test]
async fn a_pooled_connection_is_re_armed_not_wrapped_again() {
    let (wrapped, _server) = armed_pair().await;
    let peer = HttpPeer::new("127.0.0.1:1", false, String::new());
    let first = arm(Http1Session::new(Box::new(wrapped)), &peer);
    let second = arm(first, &peer);
    let stream = second.into_inner();
    let again = (*stream)
        .as_any()
        .downcast_ref::<HeadFirst>()
        .expect("still a HeadFirst");
    assert_eq!(again.hold, Hold::Collecting);
    assert!(!(*again.inner).as_any().is::<HeadFirst>(), "wrapped twice");
}
