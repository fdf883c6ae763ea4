//! TLS to backends under a BackendTLSPolicy, through the real proxy app: the primary and the
//! mirror leg verify the backend alike, a backend that fails verification gets no plaintext,
//! and the Gateway's client certificate is presented.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::SanType;
use rustls::pki_types::CertificateDer;
use serde_json::Value;
use sluice_controller::snapshot::{
    Backend, BackendProtocol, BackendTarget, BackendTls, BackendTlsMode, Filter, Fraction, Mirror,
    SanName, Trust,
};
use sluice_gateway::echo::{serve_port, tls_server_config, EchoIdentity, EchoPod, EchoPort};
use sluice_gateway::mirror::{MirrorOptions, Outcome};
use sluice_test_support::mirror::{self as mirror_gw, Gateway as MirrorGateway};
use sluice_test_support::proxy::{self, Gateway};
use sluice_test_support::tls_route::Pki;
use sluice_test_support::within;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

const LIMIT: Duration = Duration::from_secs(30);
const HOST: &str = "backend.example.com";

fn dns(name: &str) -> SanType {
    SanType::DnsName(name.try_into().unwrap())
}

/// An echo pod serving TLS with `cert` on 127.0.0.1:0; with `client_ca`, it checks client
/// certificates and reports them (`tls.peerCertificates`).
async fn tls_echo(cert: &(String, String), client_ca: Option<&str>) -> (Arc<EchoPod>, SocketAddr) {
    serve_tls_echo(tls_server_config(&cert.0, &cert.1, client_ca).unwrap()).await
}

async fn serve_tls_echo(config: Arc<rustls::ServerConfig>) -> (Arc<EchoPod>, SocketAddr) {
    let pod = Arc::new(EchoPod::new(EchoIdentity {
        pod: "tls-backend".into(),
        namespace: "default".into(),
        service: String::new(),
        ingress: String::new(),
        http_port: "8443".into(),
    }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_port(listener, pod.clone(), EchoPort::Https(config)));
    (pod, addr)
}

/// The backend at `addr` behind a policy trusting `ca`, sending SNI [`HOST`].
fn tls_backend(name: &str, addr: SocketAddr, ca: &Pki, sans: Vec<SanName>) -> Arc<Backend> {
    tls_backend_speaking(name, addr, ca, sans, BackendProtocol::Http1)
}

fn tls_backend_speaking(
    name: &str,
    addr: SocketAddr,
    ca: &Pki,
    sans: Vec<SanName>,
    protocol: BackendProtocol,
) -> Arc<Backend> {
    let tls = BackendTls::new(
        format!("default/{name}-policy"),
        HOST,
        sans,
        Trust::ConfigMaps(vec!["default/ca".into()]),
        &[ca.der()],
    )
    .unwrap();
    Arc::new(
        Backend::new(format!("default/{name}:8080"), vec![addr], protocol)
            .with_tls(Some(BackendTlsMode::Verify(Arc::new(tls)))),
    )
}

async fn gateway_to(backend: Arc<Backend>) -> Gateway {
    Gateway::one_rule(proxy::action(
        vec![],
        vec![proxy::weighted(1, BackendTarget::Service(backend))],
    ))
    .await
}

/// Reads one request head (through the blank line) byte by byte.
async fn read_head(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

async fn json(resp: reqwest::Response) -> Value {
    serde_json::from_str(&resp.text().await.unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_backend_is_reached_over_tls_with_the_policy_hostname_as_sni() {
    let ca = Pki::new("ca");
    let (pod, addr) = tls_echo(&ca.issue_pem(vec![dns(HOST)]), None).await;
    let gw = gateway_to(tls_backend("tls", addr, &ca, vec![])).await;
    let resp = within("the TLS backend", LIMIT, gw.get("/hello")).await;
    assert_eq!(resp.status(), 200);
    let body = json(resp).await;
    assert_eq!(body["tls"]["serverName"], HOST);
    assert_eq!(body["path"], "/hello");
    assert_eq!(pod.log().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subject_alt_names_replace_the_hostname_check() {
    let ca = Pki::new("ca");
    let spiffe = "spiffe://example.com/backend";
    // The certificate does not carry HOST (the SNI), only a URI SAN and another DNS name.
    let cert = ca.issue_pem(vec![
        SanType::URI(spiffe.try_into().unwrap()),
        dns("other.example.com"),
    ]);
    let (_pod, addr) = tls_echo(&cert, None).await;
    let cases = [
        ("URI SAN present", vec![SanName::Uri(spiffe.into())], true),
        (
            "DNS SAN present",
            vec![SanName::Hostname("other.example.com".into())],
            true,
        ),
        (
            "only absent SANs",
            vec![
                SanName::Uri("spiffe://example.com/other".into()),
                SanName::Hostname(HOST.into()),
            ],
            false,
        ),
        ("no SANs: the hostname must match", vec![], false),
    ];
    for (case, sans, ok) in cases {
        let gw = gateway_to(tls_backend("san", addr, &ca, sans)).await;
        let resp = within(case, LIMIT, gw.get("/")).await;
        assert_eq!(resp.status() == 200, ok, "{case}: {}", resp.status());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_with_an_untrusted_certificate_gets_a_5xx_and_no_plaintext() {
    let trusted = Pki::new("trusted");
    let other = Pki::new("other");
    let (cert, key) = other.issue_pem(vec![dns(HOST)]);
    let config = tls_server_config(&cert, &key, None).unwrap();
    // A TLS server that also records the first bytes of every connection.
    let first_bytes = Arc::new(Mutex::new(Vec::<u8>::new()));
    let seen = first_bytes.clone();
    let addr = proxy::raw_backend(move |tcp| {
        let seen = seen.clone();
        let config = config.clone();
        async move {
            let mut peeked = [0u8; 16];
            if let Ok(n) = tcp.peek(&mut peeked).await {
                seen.lock().unwrap().extend_from_slice(&peeked[..n]);
            }
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            if let Ok(mut tls) = acceptor.accept(tcp).await {
                let mut buf = [0u8; 64];
                let _ = tls.read(&mut buf).await;
            }
        }
    })
    .await;
    let gw = gateway_to(tls_backend("untrusted", addr, &trusted, vec![])).await;
    let resp = within("the untrusted backend", LIMIT, gw.get("/secret")).await;
    assert!(resp.status().is_server_error(), "{}", resp.status());
    let bytes = first_bytes.lock().unwrap().clone();
    assert_eq!(
        bytes.first(),
        Some(&0x16),
        "a TLS handshake record, not HTTP"
    );
    assert!(!String::from_utf8_lossy(&bytes).contains("GET"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_policy_answers_500_without_connecting() {
    let (_pod, addr) = tls_echo(&Pki::new("ca").issue_pem(vec![dns(HOST)]), None).await;
    let refused = Arc::new(
        Backend::new(
            "default/refused:8080".into(),
            vec![addr],
            BackendProtocol::Http1,
        )
        .with_tls(Some(BackendTlsMode::Refuse {
            policy: "default/no-ca".into(),
        })),
    );
    let gw = gateway_to(refused).await;
    let resp = within("the refused backend", LIMIT, gw.get("/")).await;
    assert_eq!(resp.status(), 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_presents_its_client_certificate_to_tls_backends() {
    let ca = Pki::new("ca");
    let (client_pem, client_key) = ca.issue_pem(vec![dns("gateway.example.com")]);
    let (_pod, addr) = tls_echo(&ca.issue_pem(vec![dns(HOST)]), Some(&ca.pem())).await;
    let backend = tls_backend("mtls", addr, &ca, vec![]);
    let certified = {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::PrivateKeyDer;
        let certs = CertificateDer::pem_slice_iter(client_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(client_key.as_bytes()).unwrap();
        let signing = rustls::crypto::ring::sign::any_supported_type(&key).unwrap();
        Arc::new(rustls::sign::CertifiedKey::new(certs, signing))
    };
    let gw = Gateway::start(move |listen| {
        let mut snapshot = proxy::one_rule(
            listen,
            proxy::action(
                vec![],
                vec![proxy::weighted(1, BackendTarget::Service(backend))],
            ),
        );
        snapshot
            .backend_client_certificates
            .insert("default/gw".into(), certified);
        snapshot
    })
    .await;
    let resp = within("the mTLS backend", LIMIT, gw.get("/")).await;
    assert_eq!(resp.status(), 200);
    let body = json(resp).await;
    let presented = body["tls"]["peerCertificates"][0].as_str().unwrap();
    assert_eq!(presented.trim(), client_pem.trim());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_over_tls_honours_backend_tls_policy() {
    let ca = Pki::new("ca");
    let (primary, mut at_primary) = sluice_test_support::servers::recording(200).await;
    // Two TLS mirrors with the same certificate: the policy of one matches it, the other's
    // hostname does not, so that one must get no copy while the primary is unaffected.
    let cert = ca.issue_pem(vec![dns(HOST)]);
    let (good_pod, good_addr) = tls_echo(&cert, None).await;
    let (bad_pod, bad_addr) = tls_echo(&cert, None).await;
    let good = tls_backend("good-mirror", good_addr, &ca, vec![]);
    let bad = tls_backend(
        "bad-mirror",
        bad_addr,
        &ca,
        vec![SanName::Hostname("elsewhere.example.com".into())],
    );
    let filters = vec![
        Filter::Mirror(Mirror {
            backend: good,
            fraction: Fraction::ALL,
            policy: None,
        }),
        Filter::Mirror(Mirror {
            backend: bad,
            fraction: Fraction::ALL,
            policy: None,
        }),
    ];
    let gw = MirrorGateway::start(primary.addr, filters, MirrorOptions::default()).await;
    // A small body goes out on the pooled path; a 2 MiB one on the split, full-duplex path.
    let big = vec![b'x'; 2 * 1024 * 1024];
    for body in [b"payload".to_vec(), big.clone()] {
        let resp = within(
            "the primary",
            LIMIT,
            mirror_gw::client().post(gw.url("/copy")).body(body).send(),
        )
        .await
        .unwrap();
        assert_eq!(resp.status(), 200);
        within("primary record", LIMIT, at_primary.recv())
            .await
            .unwrap();
    }
    gw.all_completed("good-mirror", 2).await;
    gw.settled("bad-mirror", 2).await;
    assert_eq!(gw.count("bad-mirror", Outcome::Completed), 0);
    let mut lengths: Vec<usize> = good_pod
        .log()
        .entries()
        .iter()
        .map(|c| c.body_len)
        .collect();
    lengths.sort();
    assert_eq!(lengths, ["payload".len(), big.len()]);
    assert!(
        bad_pod.log().is_empty(),
        "the unverified mirror got a request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_connection_to_a_tls_backend_resumes_the_session() {
    use tokio::io::AsyncWriteExt;

    let ca = Pki::new("ca");
    let (cert, key) = ca.issue_pem(vec![dns(HOST)]);
    let config = tls_server_config(&cert, &key, None).unwrap();
    let kinds = Arc::new(Mutex::new(Vec::new()));
    let seen = kinds.clone();
    let addr = proxy::raw_backend(move |tcp| {
        let (config, seen) = (config.clone(), seen.clone());
        async move {
            let Ok(mut tls) = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await else {
                return;
            };
            seen.lock().unwrap().push(tls.get_ref().1.handshake_kind());
            let head = read_head(&mut tls).await;
            if head.is_empty() {
                return;
            }
            let answer = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
            let _ = tls.write_all(answer.as_bytes()).await;
            let _ = tls.shutdown().await;
        }
    })
    .await;
    let gw = gateway_to(tls_backend("resumed", addr, &ca, vec![])).await;
    for i in 0..2 {
        let resp = within("the TLS backend", LIMIT, gw.get(&format!("/{i}"))).await;
        assert_eq!(resp.status(), 200);
    }
    let kinds = kinds.lock().unwrap().clone();
    assert_eq!(
        kinds,
        [
            Some(rustls::HandshakeKind::Full),
            Some(rustls::HandshakeKind::Resumed)
        ]
    );
}

/// A TLS backend that answers every request on a connection (keep-alive) and counts the TLS
/// connections it accepted.
async fn counting_tls_backend(ca: &Pki) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::AsyncWriteExt;

    let (cert, key) = ca.issue_pem(vec![dns(HOST)]);
    let config = tls_server_config(&cert, &key, None).unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let addr = proxy::raw_backend(move |tcp| {
        let (config, count) = (config.clone(), count.clone());
        async move {
            let Ok(mut tls) = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            while !read_head(&mut tls).await.is_empty() {
                let answer = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                // rustls may hold written bytes until flushed.
                if tls.write_all(answer.as_bytes()).await.is_err() || tls.flush().await.is_err() {
                    return;
                }
            }
        }
    })
    .await;
    (addr, accepted)
}

// One thread: Pingora 0.9 hands a pooled connection back by unlocking it before it drops
// its own handle, so on two threads a reuse can lose that race and open a new one.
#[tokio::test]
async fn tls_backend_connections_are_reused() {
    use std::sync::atomic::Ordering;

    let ca = Pki::new("ca");
    let (addr, accepted) = counting_tls_backend(&ca).await;
    let gw = gateway_to(tls_backend("pooled", addr, &ca, vec![])).await;
    for i in 0..3 {
        let resp = within("the TLS backend", LIMIT, gw.get(&format!("/{i}"))).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.unwrap(), "ok");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "TLS connections opened");
}

// One thread: Pingora 0.9 hands a pooled connection back by unlocking it before it drops
// its own handle, so on two threads a reuse can lose that race and open a new one.
#[tokio::test]
async fn tls_mirror_connections_are_reused() {
    use std::sync::atomic::Ordering;

    let ca = Pki::new("ca");
    let (primary, mut at_primary) = sluice_test_support::servers::recording(200).await;
    let (addr, accepted) = counting_tls_backend(&ca).await;
    let filters = vec![Filter::Mirror(Mirror {
        backend: tls_backend("pooled-mirror", addr, &ca, vec![]),
        fraction: Fraction::ALL,
        policy: None,
    })];
    let gw = MirrorGateway::start(primary.addr, filters, MirrorOptions::default()).await;
    for i in 1..=3 {
        let send = mirror_gw::client().get(gw.url(&format!("/{i}"))).send();
        let resp = within("the primary", LIMIT, send).await.unwrap();
        assert_eq!(resp.status(), 200);
        within("primary record", LIMIT, at_primary.recv())
            .await
            .unwrap();
        // Each copy ends (and its connection is back in the pool) before the next starts.
        gw.all_completed("pooled-mirror", i).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "TLS connections opened");
}

/// The early-answer handling (docs/hardening.md) needs the upstream socket's fd: through the
/// relay Pingora holds a real one, so a TLS backend that refuses an upload gets a TLS close
/// instead of the rest of the body, and its connection is not reused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_backend_answering_before_the_body_gets_no_more_of_it_and_is_not_reused() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpStream;
    use tokio::sync::{mpsc, Notify};

    // Large enough that the socket buffers between proxy and backend cannot hold it all.
    const LARGE_BODY: usize = 16 << 20;
    let ca = Pki::new("ca");
    let (cert, key) = ca.issue_pem(vec![dns(HOST)]);
    let config = tls_server_config(&cert, &key, None).unwrap();
    let (after_tx, mut after_rx) = mpsc::unbounded_channel();
    let client_answered = Arc::new(Notify::new());
    let answered = client_answered.clone();
    let accepts = Arc::new(AtomicUsize::new(0));
    let counter = accepts.clone();
    let addr = proxy::raw_backend(move |tcp| {
        let (config, after_tx, answered) = (config.clone(), after_tx.clone(), answered.clone());
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            let Ok(mut tls) = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await else {
                return;
            };
            read_head(&mut tls).await;
            if n > 0 {
                let answer = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfresh";
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.flush().await;
                return;
            }
            let answer = b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\n\r\nbig!";
            if tls.write_all(answer).await.is_ok() && tls.flush().await.is_ok() {
                // Reads none of the body until the client has the answer, then counts what
                // still arrives and whether the stream ends.
                answered.notified().await;
                let mut count = 0;
                let mut chunk = vec![0u8; 64 << 10];
                let ended = loop {
                    match tokio::time::timeout(Duration::from_secs(2), tls.read(&mut chunk)).await {
                        Ok(Ok(0)) | Ok(Err(_)) => break true,
                        Ok(Ok(n)) => count += n,
                        Err(_) => break false,
                    }
                };
                let _ = after_tx.send((count, ended));
            }
        }
    })
    .await;
    let gw = gateway_to(tls_backend("early", addr, &ca, vec![])).await;

    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let (mut reader, mut writer) = tcp.into_split();
    let head = format!("POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: {LARGE_BODY}\r\n\r\n");
    writer.write_all(head.as_bytes()).await.unwrap();
    tokio::spawn(async move {
        let chunk = vec![b'x'; 64 << 10];
        for _ in 0..LARGE_BODY / chunk.len() {
            if writer.write_all(&chunk).await.is_err() {
                return;
            }
        }
    });
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while !got.ends_with(b"big!") {
        match tokio::time::timeout(LIMIT, reader.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&chunk[..n]),
            Err(_) => panic!("no 413 yet: {:?}", String::from_utf8_lossy(&got)),
        }
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    client_answered.notify_one();

    let (after, ended) = within("the backend's count", LIMIT, after_rx.recv())
        .await
        .unwrap();
    assert!(
        ended,
        "the TLS connection was left open ({after} bytes after)"
    );
    assert!(
        after < LARGE_BODY / 2,
        "the body kept coming: {after} of {LARGE_BODY} bytes after the answer"
    );
    let resp = within("the next request", LIMIT, gw.get("/next")).await;
    assert_eq!(resp.text().await.unwrap(), "fresh");
    assert_eq!(accepts.load(Ordering::SeqCst), 2, "a new TLS connection");
}

/// An echo pod serving TLS with `cert` and exactly these ALPN protocols.
async fn tls_echo_with_alpn(cert: &(String, String), alpn: &[&[u8]]) -> (Arc<EchoPod>, SocketAddr) {
    let mut config = (*tls_server_config(&cert.0, &cert.1, None).unwrap()).clone();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    serve_tls_echo(Arc::new(config)).await
}

/// A gRPC-shaped call (HTTP/2, `application/grpc`) through `gw`.
async fn grpc_post(gw: &Gateway) -> reqwest::Response {
    let call = proxy::h2c_client()
        .post(gw.url("/grpc.test.Echo/Call"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(vec![0u8; 5])
        .send();
    within("the gRPC call", LIMIT, call).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_over_tls_to_grpc_backend() {
    let ca = Pki::new("ca");
    let (_, addr) = tls_echo_with_alpn(&ca.issue_pem(vec![dns(HOST)]), &[b"h2"]).await;
    let backend = tls_backend_speaking("grpc", addr, &ca, vec![], BackendProtocol::H2c);
    let gw = gateway_to(backend).await;
    for _ in 0..2 {
        let resp = grpc_post(&gw).await;
        assert_eq!(resp.status(), 200);
        let body = json(resp).await;
        assert_eq!(body["proto"], "HTTP/2.0");
        assert_eq!(body["tls"]["negotiatedProtocol"], "h2");
        assert_eq!(body["tls"]["serverName"], HOST);
        assert_eq!(body["headers"]["Te"][0], "trailers", "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_backend_that_does_not_select_h2_fails_the_grpc_call_cleanly() {
    let ca = Pki::new("ca");
    // No ALPN at all: the handshake completes, but nothing says the backend speaks h2.
    let (_, addr) = tls_echo_with_alpn(&ca.issue_pem(vec![dns(HOST)]), &[]).await;
    let backend = tls_backend_speaking("grpc", addr, &ca, vec![], BackendProtocol::H2c);
    let gw = gateway_to(backend).await;
    let resp = grpc_post(&gw).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["grpc-status"], "14");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2c_mirror_behind_a_policy_gets_its_copy_over_h2_in_tls() {
    let ca = Pki::new("ca");
    let (primary, mut at_primary) = sluice_test_support::servers::recording(200).await;
    let (pod, addr) = tls_echo_with_alpn(&ca.issue_pem(vec![dns(HOST)]), &[b"h2"]).await;
    let mirror = tls_backend_speaking("grpc-mirror", addr, &ca, vec![], BackendProtocol::H2c);
    let filters = vec![Filter::Mirror(Mirror {
        backend: mirror,
        fraction: Fraction::ALL,
        policy: None,
    })];
    let gw = MirrorGateway::start(primary.addr, filters, MirrorOptions::default()).await;
    let call = mirror_gw::client()
        .post(gw.url("/grpc.test.Echo/Call"))
        .body("payload")
        .send();
    assert_eq!(
        within("the primary", LIMIT, call).await.unwrap().status(),
        200
    );
    within("primary record", LIMIT, at_primary.recv())
        .await
        .unwrap();
    gw.all_completed("grpc-mirror", 1).await;
    let copies = pod.log().entries();
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0].proto, "HTTP/2.0");
    assert_eq!(copies[0].body_len, "payload".len());
}
