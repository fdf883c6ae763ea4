//! End to end through `ProxyApp`: HTTP/2 on either side of the proxy.

use sluice_controller::snapshot::{BackendProtocol, RouteGroup, RouteTable};
use sluice_gateway::proxy::ProxySettings;

use sluice_test_support::proxy::*;

#[tokio::test]
async fn h2c_clients_are_routed_by_authority() {
    bounded(async {
        let [by_host, fallback] = EchoBackend::start_each(["by-host", "fallback"]).await;
        let gw = Gateway::start_with(ProxySettings::default(), |addr| {
            let exact = exact_hosts(vec![(
                "127.0.0.1",
                vec![forward("host", prefix("/"), &by_host)],
            )]);
            let routes = RouteTable {
                exact,
                any: RouteGroup::new(vec![forward("any", prefix("/"), &fallback)]),
                ..RouteTable::default()
            };
            snapshot(addr, routes)
        })
        .await;
        let h2 = h2c_client();
        let resp = h2.get(gw.url("/x")).send().await.expect("request");
        assert_eq!(resp.version(), http::Version::HTTP_2);
        let echoed = Echoed::from(resp).await;
        assert_eq!(echoed.backend(), "by-host");
        assert_eq!(
            echoed.version(),
            "HTTP/1.1",
            "an HTTP/1 backend is spoken to in HTTP/1.1"
        );
    })
    .await;
}

#[tokio::test]
async fn plaintext_h2_is_refused_when_h2c_is_off() {
    bounded(async {
        let b = EchoBackend::start("b").await;
        let settings = ProxySettings {
            downstream_h2c: false,
            ..ProxySettings::default()
        };
        let gw = Gateway::start_with(settings, |addr| {
            one_rule(addr, action(vec![], vec![to(&b)]))
        })
        .await;
        let h2 = h2c_client();
        assert!(h2.get(gw.url("/")).send().await.is_err());
        let h1 = gw.get("/").await;
        assert_eq!(h1.status(), 200);
    })
    .await;
}

#[tokio::test]
async fn h2c_backends_are_spoken_to_in_http2() {
    bounded(async {
        let b = EchoBackend::start_h2c("grpcish").await;
        let backends = vec![service_at("default/h2c:80", b.addr, BackendProtocol::H2c)];
        let gw = Gateway::one_rule(action(vec![], backends)).await;
        let c = client();
        for _ in 0..5 {
            let resp = c.get(gw.url("/h2")).send().await.expect("request");
            assert_eq!(resp.status(), 200);
            let echoed = Echoed::from(resp).await;
            assert_eq!(echoed.version(), "HTTP/2.0");
            assert_eq!(echoed.path(), "/h2");
        }
        assert_eq!(b.connections.load(std::sync::atomic::Ordering::SeqCst), 1);
    })
    .await;
}

/// A raw h2 client (prior knowledge, no ALPN, no Upgrade) through to an h2c backend: HTTP/2 on
/// both legs, the body intact.
#[tokio::test]
async fn raw_h2c_clients_reach_h2c_backends() {
    bounded(async {
        let b = EchoBackend::start_h2c("grpcish").await;
        let backends = vec![service_at("default/h2c:80", b.addr, BackendProtocol::H2c)];
        let gw = Gateway::one_rule(action(vec![], backends)).await;
        let tcp = tokio::net::TcpStream::connect(gw.addr)
            .await
            .expect("connect");
        let (mut sender, conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
        tokio::spawn(conn);
        let req = http::Request::post(gw.url("/prior"))
            .body(())
            .expect("request");
        let (resp, mut body) = sender.send_request(req, false).expect("send");
        body.send_data(bytes::Bytes::from_static(b"ping"), true)
            .expect("body");
        let resp = resp.await.expect("response");
        assert_eq!(resp.status(), 200);
        let mut data = resp.into_body();
        let mut got = Vec::new();
        while let Some(chunk) = data.data().await {
            let chunk = chunk.expect("chunk");
            let _ = data.flow_control().release_capacity(chunk.len());
            got.extend_from_slice(&chunk);
        }
        let echoed = Echoed(serde_json::from_slice(&got).expect("echo json"));
        assert_eq!(echoed.path(), "/prior");
        assert_eq!(echoed.version(), "HTTP/2.0", "the backend leg is h2c too");
    })
    .await;
}
