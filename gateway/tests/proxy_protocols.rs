//! End to end through `ProxyApp`: HTTP/2 on either side of the proxy.

use sluice_controller::snapshot::{BackendProtocol, RouteGroup, RouteTable};
use sluice_gateway::proxy::ProxySettings;

use sluice_test_support::proxy::*;

#[tokio::test]
async fn h2c_clients_are_routed_by_authority_when_enabled() {
    bounded(async {
        let [by_host, fallback] = EchoBackend::start_each(["by-host", "fallback"]).await;
        let settings = ProxySettings {
            downstream_h2c: true,
            ..ProxySettings::default()
        };
        let gw = Gateway::start_with(settings, |addr| {
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
async fn plaintext_h2_is_refused_by_default() {
    bounded(async {
        let b = EchoBackend::start("b").await;
        let gw = Gateway::forwarding_to(&b).await;
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
