//! The echo backend over real sockets: JSON echo, set-header, status, retry simulator, h2c and TLS ports.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sluice_gateway::echo::{
    serve_port, tls_server_config, EchoIdentity, EchoPod, EchoPort, StatusOverride,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const LIMIT: Duration = Duration::from_secs(10);

fn identity() -> EchoIdentity {
    EchoIdentity {
        pod: "infra-backend-v1-6b7d8c9f5-x2x4q".into(),
        namespace: "gateway-conformance-infra".into(),
        service: String::new(),
        ingress: String::new(),
        http_port: "3000".into(),
    }
}

async fn start(pod: Arc<EchoPod>, port: EchoPort) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_port(listener, pod, port));
    addr
}

/// A pod of [`identity`] serving `port` on 127.0.0.1:0.
async fn start_pod(port: EchoPort) -> (Arc<EchoPod>, SocketAddr) {
    let pod = Arc::new(EchoPod::new(identity()));
    let addr = start(pod.clone(), port).await;
    (pod, addr)
}

/// Sends `request`, which must be answered within [`LIMIT`].
async fn send(request: reqwest::RequestBuilder) -> reqwest::Response {
    tokio::time::timeout(LIMIT, request.send())
        .await
        .unwrap()
        .unwrap()
}

/// `GET url` with a fresh default client, answered within [`LIMIT`].
async fn get(url: String) -> reqwest::Response {
    tokio::time::timeout(LIMIT, reqwest::get(url))
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn echo_answers_json_describing_the_request() {
    let (pod, addr) = start_pod(EchoPort::Http).await;
    let client = reqwest::Client::new();
    let response = send(
        client
            .get(format!("http://{addr}/v2/example?x=1&y=%20"))
            .header("host", "example.com:8080")
            .header("x-echo-set-header", "X-Foo: bar, X-Foo: baz")
            .header("x-multi", "a"),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert_eq!(response.headers()["x-foo"], "bar,baz");
    let text = response.text().await.unwrap();
    assert!(text.starts_with("{\n \"path\""), "one-space indent: {text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["path"], "/v2/example?x=1&y=%20");
    assert_eq!(body["host"], "example.com:8080");
    assert_eq!(body["method"], "GET");
    assert_eq!(body["proto"], "HTTP/1.1");
    assert_eq!(body["headers"]["X-Multi"], serde_json::json!(["a"]));
    assert!(body["headers"].get("Host").is_none());
    assert_eq!(body["namespace"], "gateway-conformance-infra");
    assert_eq!(body["pod"], "infra-backend-v1-6b7d8c9f5-x2x4q");
    assert_eq!(body["httpPort"], "3000");
    assert!(body.get("tls").is_none());

    let logged = pod.log().entries();
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].uri, "/v2/example?x=1&y=%20");
    assert!(logged[0].echoed);
}

#[tokio::test]
async fn status_path_and_health_answer_without_echo() {
    let (pod, addr) = start_pod(EchoPort::Http).await;
    let client = reqwest::Client::new();
    let get = |path: &'static str| {
        let client = client.clone();
        async move {
            let r = send(client.get(format!("http://{addr}{path}"))).await;
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    assert_eq!(get("/status/503").await, (503, String::new()));
    assert_eq!(get("/status/20").await.0, 400);
    assert_eq!(get("/health").await, (200, "OK".to_owned()));
    assert!(pod.log().entries().iter().all(|r| !r.echoed));
}

#[tokio::test]
async fn status_override_answers_its_code_with_the_echo_json_for_its_prefix_only() {
    let overrides = vec!["/orders=503".parse::<StatusOverride>().unwrap()];
    let pod = Arc::new(EchoPod::new(identity()).with_status_overrides(overrides));
    let addr = start(pod.clone(), EchoPort::Http).await;

    let response = get(format!("http://{addr}/orders/7?x=1")).await;
    assert_eq!(response.status(), 503);
    let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(body["path"], "/orders/7?x=1");
    assert_eq!(body["pod"], "infra-backend-v1-6b7d8c9f5-x2x4q");

    assert_eq!(get(format!("http://{addr}/users/1")).await.status(), 200);
    // Overrides win over echo-basic's own routes under their prefix only.
    assert_eq!(get(format!("http://{addr}/health")).await.status(), 200);
    assert_eq!(pod.log().entries().len(), 3);
}

#[tokio::test]
async fn delay_query_holds_the_answer() {
    let (_, addr) = start_pod(EchoPort::Http).await;
    let started = std::time::Instant::now();
    let response = get(format!("http://{addr}/slow?delay=200ms")).await;
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(200));
    let bad = get(format!("http://{addr}/slow?delay=forever")).await;
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn retry_simulator_resets_then_succeeds() {
    let (_, addr) = start_pod(EchoPort::Http).await;
    let request = b"GET /retry/x?uuid=abc&succeedAfter=1 HTTP/1.1\r\nHost: a\r\n\r\n";

    let mut first = TcpStream::connect(addr).await.unwrap();
    first.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(LIMIT, first.read_to_end(&mut buf))
        .await
        .unwrap();
    assert!(
        read.is_err() || buf.is_empty(),
        "no HTTP response on a failed attempt"
    );

    let ok = get(format!("http://{addr}/retry/x?uuid=abc&succeedAfter=1")).await;
    assert_eq!(ok.status(), 200);

    let coded = get(format!(
        "http://{addr}/retry/x?uuid=def&succeedAfter=1&responseCode=503"
    ))
    .await;
    assert_eq!(coded.status(), 503);
    let missing = get(format!("http://{addr}/retry/x?succeedAfter=1")).await;
    assert_eq!(missing.status(), 400);
}

#[tokio::test]
async fn h2c_port_wants_http2_and_serves_prior_knowledge() {
    let (_, addr) = start_pod(EchoPort::H2c).await;
    let h1 = get(format!("http://{addr}/")).await;
    assert_eq!(h1.status(), 400);
    assert_eq!(h1.text().await.unwrap(), "Expected h2c request");

    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let h2 = send(client.get(format!("http://{addr}/h2"))).await;
    assert_eq!(h2.status(), 200);
    let body: Value = serde_json::from_str(&h2.text().await.unwrap()).unwrap();
    assert_eq!(body["proto"], "HTTP/2.0");
    assert_eq!(body["path"], "/h2");
}

#[tokio::test]
async fn https_port_reports_tls_details() {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["abc.example.com".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let config = tls_server_config(&cert.pem(), &key.serialize_pem(), None).unwrap();
    let pod = Arc::new(EchoPod::new(identity()));
    let addr = start(pod, EchoPort::Https(config)).await;

    let root = reqwest::Certificate::from_pem(cert.pem().as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(root)
        .resolve("abc.example.com", addr)
        .build()
        .unwrap();
    let response = send(client.get(format!("https://abc.example.com:{}/tls", addr.port()))).await;
    assert_eq!(response.status(), 200);
    let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(body["tls"]["serverName"], "abc.example.com");
    assert_eq!(body["tls"]["negotiatedProtocol"], "h2");
    assert_eq!(body["tls"]["version"], "TLSv1.3");
    assert!(body["tls"]["cipherSuite"]
        .as_str()
        .unwrap()
        .starts_with("TLS_"));
    assert!(body["tls"].get("peerCertificates").is_none());
}

#[test]
fn tls_config_rejects_garbage_pem() {
    assert!(tls_server_config("not a pem", "nor this", None).is_err());
}

#[tokio::test]
async fn echo_body_mode_returns_a_posted_body() {
    let pod =
        Arc::new(EchoPod::new(identity()).with_body_mode(sluice_gateway::echo::BodyMode::EchoBody));
    let addr = start(pod.clone(), EchoPort::Http).await;
    let client = reqwest::Client::new();
    let response = send(
        client
            .post(format!("http://{addr}/mirror"))
            .header("content-type", "text/plain")
            .body("Hello world"),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/plain");
    assert_eq!(response.text().await.unwrap(), "Hello world");
    let logged = pod.log().entries();
    assert_eq!(logged[0].body_len, 11);
    assert_eq!(
        logged[0].body_sha256,
        "64ec88ca00b268e5ba1a35678a1b5316d212f4f366b2477232534a8aeca37f3c"
    );
}

#[tokio::test]
async fn websocket_endpoint_echoes_text_and_binary_frames() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let (pod, addr) = start_pod(EchoPort::Http).await;
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut ws, response) = tokio::time::timeout(
        LIMIT,
        tokio_tungstenite::client_async(format!("ws://{addr}/ws"), stream),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(response.status(), 101);
    for frame in [
        Message::text("Websocket Support!"),
        Message::binary(vec![1u8, 2, 3, 4, 5, 6, 7]),
    ] {
        ws.send(frame.clone()).await.unwrap();
        let back = tokio::time::timeout(LIMIT, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(back, frame);
    }
    assert_eq!(pod.log().entries()[0].uri, "/ws");

    let plain = get(format!("http://{addr}/ws")).await;
    assert_eq!(plain.status(), 400, "a plain GET is not a handshake");
}
