//! Reads a connection's ClientHello before anything is decided about it, keeping the exact
//! bytes: the SNI selects the listener, whose kind says whether Sluice terminates the TLS (the
//! bytes are replayed into the handshake) or passes it through (the bytes go to the backend).

use rustls::server::Acceptor as HelloParser;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::normalize_sni;

/// Most bytes read while waiting for a complete ClientHello. rustls refuses a handshake
/// message over 64 KiB itself; this bounds what is kept even for input rustls would still
/// buffer (record headers, a message split over many records).
pub const MAX_CLIENT_HELLO: usize = 80 * 1024;

/// What one read from the socket may add.
const READ_CHUNK: usize = 4096;

/// The ClientHello of a connection: the bytes read to get it, and its SNI.
#[derive(Debug)]
pub struct ClientHello {
    /// Every byte read from the client so far, the hello and whatever followed it in the same
    /// reads (a client may pipeline early data).
    pub bytes: Vec<u8>,
    /// The SNI, normalized as listener hostnames are matched; `None` when the client sent none.
    pub sni: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum HelloError {
    #[error("cannot read the ClientHello")]
    Io(#[source] std::io::Error),
    #[error("the client closed the connection before a complete ClientHello")]
    Closed,
    #[error("not a TLS ClientHello")]
    Invalid(#[source] rustls::Error),
    #[error("the ClientHello exceeds {MAX_CLIENT_HELLO} bytes")]
    TooLarge,
}

/// Reads until a whole ClientHello has arrived. The caller bounds the wait.
pub async fn read(tcp: &mut TcpStream) -> Result<ClientHello, HelloError> {
    let mut parser = HelloParser::default();
    let mut bytes = Vec::with_capacity(READ_CHUNK);
    let mut chunk = [0u8; READ_CHUNK];
    loop {
        let n = tcp.read(&mut chunk).await.map_err(HelloError::Io)?;
        if n == 0 {
            return Err(HelloError::Closed);
        }
        if bytes.len() + n > MAX_CLIENT_HELLO {
            return Err(HelloError::TooLarge);
        }
        let mut fresh = &chunk[..n];
        bytes.extend_from_slice(fresh);
        while !fresh.is_empty() {
            // rustls takes what fits its buffer; a full buffer is an error, never a zero read.
            if !matches!(parser.read_tls(&mut fresh), Ok(n) if n > 0) {
                return Err(HelloError::TooLarge);
            }
        }
        match parser.accept() {
            Ok(Some(accepted)) => {
                let sni = accepted.client_hello().server_name().map(normalize_sni);
                return Ok(ClientHello { bytes, sni });
            }
            Ok(None) => {}
            Err((e, _alert)) => return Err(HelloError::Invalid(e)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use rustls::pki_types::ServerName;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    use super::*;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        (client.unwrap(), accepted.unwrap().0)
    }

    #[tokio::test]
    async fn the_hello_is_kept_byte_for_byte_with_its_sni() {
        let (client, mut server) = pair().await;
        let mut roots = rustls::RootCertStore::empty();
        let ca = rcgen::generate_simple_self_signed(vec!["x".into()]).unwrap();
        roots.add(ca.cert.der().clone()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let name = ServerName::try_from("Foo.Example.com.").unwrap();
        let handshake = tokio::spawn(async move { connector.connect(name, client).await });
        let hello = read(&mut server).await.unwrap();
        assert_eq!(hello.sni.as_deref(), Some("foo.example.com"));
        assert_eq!(hello.bytes.first(), Some(&0x16), "a handshake record");
        drop(server);
        assert!(handshake.await.unwrap().is_err());
    }

    #[tokio::test]
    async fn a_hello_split_over_many_writes_is_reassembled() {
        let (mut client, mut server) = pair().await;
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        let name = ServerName::try_from("split.example.com").unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut hello = Vec::new();
        conn.write_tls(&mut hello).unwrap();
        let writer = tokio::spawn(async move {
            for piece in hello.chunks(7) {
                client.write_all(piece).await.unwrap();
                client.flush().await.unwrap();
                tokio::task::yield_now().await;
            }
            (client, hello)
        });
        let read = read(&mut server).await.unwrap();
        let (_client, sent) = writer.await.unwrap();
        assert_eq!(read.sni.as_deref(), Some("split.example.com"));
        assert_eq!(read.bytes, sent);
    }

    #[tokio::test]
    async fn plain_http_is_not_a_hello() {
        let (mut client, mut server) = pair().await;
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        assert!(matches!(
            read(&mut server).await,
            Err(HelloError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn an_endless_hello_is_refused_within_the_cap() {
        let (mut client, mut server) = pair().await;
        // A handshake record announcing a ClientHello of 16 MiB, then filler records.
        let writer = tokio::spawn(async move {
            let mut first = vec![0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0xff, 0xff, 0xff];
            first.resize(5 + 0x4000, 0);
            let _ = client.write_all(&first).await;
            let mut record = vec![0x16, 0x03, 0x01, 0x40, 0x00];
            record.resize(5 + 0x4000, 0);
            for _ in 0..(2 * MAX_CLIENT_HELLO / record.len()) {
                if client.write_all(&record).await.is_err() {
                    break;
                }
            }
        });
        let err = read(&mut server).await.unwrap_err();
        assert!(matches!(err, HelloError::TooLarge), "{err:?}");
        drop(server);
        writer.await.unwrap();
    }
}
