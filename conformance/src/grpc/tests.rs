#![allow(clippy::unwrap_used)]

use sluice_gateway::echo::grpc_tls_server_config;
use sluice_gateway::echo::EchoPort;

use super::*;
use crate::case::RequestEntry;
use crate::test_pods::{ca_and_leaf, start, NAMESPACE};

const POD: &str = "grpc-infra-backend-v1-7d9f8c6b5-x2x4q";

fn plain(addr: SocketAddr) -> GrpcTarget {
    GrpcTarget { addr, tls: None }
}

#[tokio::test]
async fn unary_echo_returns_method_authority_metadata_and_pod() {
    let pod = start(POD, EchoPort::Grpc).await;
    let mut echo = GrpcCall::unary("Echo");
    echo.authority = "abc.example.com".to_owned();
    echo.metadata = vec![("x-version".to_owned(), "one".to_owned())];
    let reply = call(&plain(pod.addr), &echo).await.unwrap();
    assert_eq!(reply.code, code::OK, "{}", reply.message);
    let assertions = reply.responses[0].assertions.clone().unwrap();
    assert_eq!(
        assertions.fully_qualified_method,
        "/gateway_api_conformance.echo_basic.grpcecho.GrpcEcho/Echo"
    );
    assert_eq!(assertions.authority, "abc.example.com");
    let header = |key: &str| {
        assertions
            .headers
            .iter()
            .find(|h| h.key == key)
            .map(|h| h.value.clone())
    };
    assert_eq!(header(":authority").as_deref(), Some("abc.example.com"));
    assert_eq!(header("x-version").as_deref(), Some("one"));
    let context = assertions.context.unwrap();
    assert_eq!(
        (context.namespace.as_str(), context.pod.as_str()),
        (NAMESPACE, POD)
    );
    assert!(assertions.tls_assertions.is_none(), "plaintext port");
    let logged = pod.echo.log().entries();
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].uri, echo.path());
    assert_eq!(logged[0].host, "abc.example.com");
    assert_eq!(
        logged[0].header_values("x-version").collect::<Vec<_>>(),
        ["one"]
    );
}

#[tokio::test]
async fn echo_three_and_unknown_methods_are_unimplemented() {
    let pod = start(POD, EchoPort::Grpc).await;
    for method in ["EchoThree", "NoSuchMethod"] {
        let reply = call(&plain(pod.addr), &GrpcCall::unary(method))
            .await
            .unwrap();
        assert_eq!(reply.code, code::UNIMPLEMENTED, "{method}");
        assert!(reply.responses.is_empty());
    }
    let two = call(&plain(pod.addr), &GrpcCall::unary("EchoTwo"))
        .await
        .unwrap();
    assert_eq!(two.code, code::OK);
}

#[tokio::test]
async fn the_tls_port_reports_tls_assertions() {
    let (ca, cert, key) = ca_and_leaf("abc.example.com");
    let config = grpc_tls_server_config(&cert, &key).unwrap();
    let pod = start(POD, EchoPort::GrpcTls(config)).await;
    let client = crate::tcp::tls_client_config(Some(&ca), &[b"h2"]).unwrap();
    let target = GrpcTarget {
        addr: pod.addr,
        tls: Some((client, ServerName::try_from("abc.example.com").unwrap())),
    };
    let reply = call(&target, &GrpcCall::unary("Echo")).await.unwrap();
    assert_eq!(reply.code, code::OK, "{}", reply.message);
    let tls = reply.responses[0]
        .assertions
        .clone()
        .and_then(|a| a.tls_assertions)
        .unwrap();
    assert_eq!(tls.server_name, "abc.example.com");
    assert_eq!(tls.negotiated_protocol, "h2");
    assert_eq!(tls.version, "TLSv1.3");
    assert!(tls.cipher_suite.starts_with("TLS_"), "{}", tls.cipher_suite);
}

#[tokio::test]
async fn stream_echo_answers_each_message_in_order_and_logs_it() {
    let pod = start(POD, EchoPort::Grpc).await;
    let payloads: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 100 * usize::from(i)]).collect();
    let stream = GrpcCall {
        requests: payloads
            .iter()
            .map(|payload| proto::EchoRequest {
                payload: payload.clone(),
            })
            .collect(),
        ..GrpcCall::unary("StreamEcho")
    };
    let reply = call(&plain(pod.addr), &stream).await.unwrap();
    assert_eq!(reply.code, code::OK, "{}", reply.message);
    let echoed: Vec<Vec<u8>> = reply
        .responses
        .iter()
        .map(|r| r.request.clone().unwrap_or_default().payload)
        .collect();
    assert_eq!(echoed, payloads);
    let logged = pod.echo.log().entries();
    let lengths: Vec<usize> = logged.iter().map(|r| r.body_len).collect();
    let expected: Vec<usize> = stream.requests.iter().map(|r| r.encoded_len()).collect();
    assert_eq!(lengths, expected, "one log entry per message, in order");
    assert!(logged.iter().all(|r| r.uri.ends_with("/StreamEcho")));
}

fn entry(yaml: &str) -> (RequestEntry, GrpcRequest, GrpcExpect) {
    let entry: RequestEntry = serde_yaml_ng::from_str(yaml).unwrap();
    let crate::case::RequestKind::Grpc(request, expect) = entry.kind.clone() else {
        panic!("a grpc entry")
    };
    (entry, request, expect)
}

#[tokio::test]
async fn grpc_entries_check_code_and_backend() {
    let pod = start(POD, EchoPort::Grpc).await;
    let (ok, request, expect) = entry(
        "{grpc: {method: Echo, authority: gateway_api_conformance.echo_basic.grpcecho.GrpcEcho, metadata: {Version: one}},
          expect: {code: OK, backend: {namespace: gateway-conformance-infra, service: grpc-infra-backend-v1}}}",
    );
    run(&ok, &request, &expect, pod.addr).await.unwrap();
    let (unimplemented, request, expect) =
        entry("{grpc: {method: EchoThree}, expect: {code: Unimplemented}}");
    run(&unimplemented, &request, &expect, pod.addr)
        .await
        .unwrap();
    // An OK where `notCode: OK` is expected fails at once, without waiting out the window.
    let (not_ok, request, expect) = entry("{grpc: {method: Echo}, expect: {notCode: OK}}");
    let started = std::time::Instant::now();
    let error = run(&not_ok, &request, &expect, pod.addr).await.unwrap_err();
    assert!(error.contains("status OK"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let (bad, request, expect) = entry("{grpc: {method: Echo}, expect: {code: Nope}}");
    assert!(run(&bad, &request, &expect, pod.addr)
        .await
        .unwrap_err()
        .contains("Nope"));
}

#[test]
fn grpc_messages_are_percent_decoded() {
    assert_eq!(
        percent_decode("unknown%20method %25 %zz%"),
        "unknown method % %zz%"
    );
}

#[tokio::test]
async fn the_status_message_of_an_unknown_method_names_it() {
    let pod = start(POD, EchoPort::Grpc).await;
    let reply = call(&plain(pod.addr), &GrpcCall::unary("Nope"))
        .await
        .unwrap();
    assert_eq!(reply.code, code::UNIMPLEMENTED);
    assert_eq!(
        reply.message,
        "unknown method /gateway_api_conformance.echo_basic.grpcecho.GrpcEcho/Nope"
    );
}
