#![allow(clippy::unwrap_used)]

use sluice_gateway::echo::{tcp_tls_server_config, EchoPort, TcpPorts};
use tokio::net::TcpListener;

use super::*;
use crate::test_pods::{ca_and_leaf, start, NAMESPACE};

const POD: &str = "tcp-backend-7d9f8c6b5-x2x4q";

fn ports() -> Arc<TcpPorts> {
    Arc::new(TcpPorts {
        tcp: "3000".to_owned(),
        tls: "8443".to_owned(),
    })
}

#[tokio::test]
async fn plain_tcp_echo_answers_ping_is_tls_and_test() {
    let pod = start(POD, EchoPort::Tcp(ports())).await;
    let target = TcpTarget {
        addr: pod.addr,
        tls: None,
    };
    let answer = exchange(&target, TcpMode::Full).await.unwrap();
    assert_eq!(answer.welcome, "Gateway API Test TCP Server\n");
    assert_eq!(answer.pong.as_deref(), Some("PONG\n"));
    assert_eq!(answer.is_tls.as_deref(), Some("false\n"));
    assert_eq!(answer.test.pod, POD);
    assert_eq!(answer.test.namespace, NAMESPACE);
    assert!(!answer.test.is_tls);
    assert!(answer.test.tls.is_none());
    let only_test = exchange(&target, TcpMode::TestOnly).await.unwrap();
    assert_eq!((only_test.pong, only_test.is_tls), (None, None));
}

#[tokio::test]
async fn tls_tcp_echo_reports_the_sni_and_alpn_it_received() {
    let (ca, cert, key) = ca_and_leaf("abc.example.com");
    let config = tcp_tls_server_config(&cert, &key).unwrap();
    let pod = start(POD, EchoPort::TcpTls(ports(), config)).await;
    let client = tls_client_config(Some(&ca), &[b"x-test", b"h2"]).unwrap();
    let target = TcpTarget {
        addr: pod.addr,
        tls: Some((client, ServerName::try_from("abc.example.com").unwrap())),
    };
    let answer = exchange(&target, TcpMode::Full).await.unwrap();
    assert_eq!(answer.is_tls.as_deref(), Some("true\n"));
    let tls = answer.test.tls.clone().unwrap();
    assert_eq!(tls.server_name, "abc.example.com");
    assert_eq!(
        tls.negotiated_protocol, "x-test",
        "the client's first offer"
    );
    assert_eq!(tls.version, "TLS 1.3");
    assert!(tls.cipher_suite.starts_with("TLS_"), "{}", tls.cipher_suite);
    let expect = TcpExpect {
        backend_is_tls: Some(true),
        backend: Some(crate::case::BackendRef {
            namespace: Some(NAMESPACE.to_owned()),
            service: Some("tcp-backend".to_owned()),
        }),
        sni: Some("abc.example.com".to_owned()),
        ..TcpExpect::default()
    };
    check_answer(&answer, TcpMode::Full, &expect, Some("abc.example.com")).unwrap();
    let wrong_sni = TcpExpect {
        sni: Some("other.example.com".to_owned()),
        ..expect.clone()
    };
    assert!(check_answer(&answer, TcpMode::Full, &wrong_sni, None).is_err());
    let wrong_backend = TcpExpect {
        backend: Some(crate::case::BackendRef {
            namespace: None,
            service: Some("tcp-backend-v2".to_owned()),
        }),
        ..expect
    };
    assert!(
        check_answer(&answer, TcpMode::TestOnly, &wrong_backend, None).is_err(),
        "the pod must start with `tcp-backend-v2-`"
    );
}

#[tokio::test]
async fn an_over_long_line_ends_the_connection() {
    let pod = start(POD, EchoPort::Tcp(ports())).await;
    let mut stream = TcpStream::connect(pod.addr).await.unwrap();
    let mut welcome = vec![0; WELCOME.len()];
    stream.read_exact(&mut welcome).await.unwrap();
    stream.write_all(&[b'A'; 5000]).await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "closed: {read:?}");
}

#[tokio::test]
async fn a_completed_or_certificate_failed_handshake_is_not_a_rejection() {
    let (_, cert, key) = ca_and_leaf("abc.example.com");
    let config = tcp_tls_server_config(&cert, &key).unwrap();
    let pod = start(POD, EchoPort::TcpTls(ports(), config)).await;
    let handshake = tls_connect(pod.addr, "abc.example.com").await;
    assert!(matches!(handshake, Handshake::Other(_)), "{handshake:?}");
}

#[tokio::test]
async fn a_socket_that_closes_during_the_handshake_is_a_rejection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let closer = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            // Read the ClientHello, then close: what a gateway without a matching route does.
            let mut hello = [0u8; 512];
            let _ = stream.read(&mut hello).await;
        }
    });
    let handshake = tls_connect(addr, "example.com").await;
    assert!(matches!(handshake, Handshake::Refused(_)), "{handshake:?}");
    let entry: RequestEntry = serde_yaml_ng::from_str(
        "{tlsConnect: {serverName: example.com}, expect: {rejected: true}}",
    )
    .unwrap();
    let crate::case::RequestKind::TlsConnect(request, expect) = entry.kind.clone() else {
        panic!("a tlsConnect entry")
    };
    run_tls_connect(&entry, &request, &expect, addr)
        .await
        .unwrap();
    closer.abort();
}

#[tokio::test]
async fn tcp_entries_retry_io_errors_but_judge_the_first_exchange() {
    let pod = start(POD, EchoPort::Tcp(ports())).await;
    let parse = |yaml: &str| {
        let entry: RequestEntry = serde_yaml_ng::from_str(yaml).unwrap();
        let crate::case::RequestKind::Tcp(request, expect) = entry.kind.clone() else {
            panic!("a tcp entry")
        };
        (entry, request, expect)
    };
    let (entry, request, expect) = parse(
        "{tcp: {tls: false}, expect: {backendIsTLS: false,
          backend: {namespace: gateway-conformance-infra, service: tcp-backend}}}",
    );
    run(&entry, &request, &expect, pod.addr, None)
        .await
        .unwrap();
    let (entry, request, expect) =
        parse("{tcp: {tls: false, mode: testOnly}, repeat: 3, expect: {anyPod: true}}");
    run(&entry, &request, &expect, pod.addr, None)
        .await
        .unwrap();
    let (entry, request, expect) = parse("{tcp: {tls: false}, expect: {backendIsTLS: true}}");
    let started = std::time::Instant::now();
    let error = run(&entry, &request, &expect, pod.addr, None)
        .await
        .unwrap_err();
    assert!(error.contains("IS_TLS"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "mismatches are not retried"
    );
    let connect: RequestEntry =
        serde_yaml_ng::from_str("{tcpConnect: {}, expect: {connected: true}}").unwrap();
    let crate::case::RequestKind::TcpConnect(expect) = connect.kind.clone() else {
        panic!("a tcpConnect entry")
    };
    run_connect(&connect, &expect, pod.addr).await.unwrap();
}
