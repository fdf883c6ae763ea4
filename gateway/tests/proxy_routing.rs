//! End to end through `ProxyApp`: which backend a request reaches, and the 404/500/503 answers.

use std::collections::BTreeMap;

use http::Method;
use sluice_controller::snapshot::{
    Backend, BackendProtocol, BackendTarget, PathMatch, RouteGroup, RouteTable,
};
use std::sync::Arc;

use sluice_test_support::proxy::*;
use sluice_test_support::servers;

#[tokio::test]
async fn most_specific_match_wins_across_hostname_groups_and_paths() {
    bounded(async {
        let [exact, wild, api, post, root] =
            EchoBackend::start_each(["exact", "wild", "api", "post", "root"]).await;
        let gw = Gateway::start(|addr| {
            let exact_group = exact_hosts(vec![(
                "foo.example.com",
                vec![forward("exact", prefix("/"), &exact)],
            )]);
            let routes = RouteTable {
                exact: exact_group,
                wildcard: vec![(
                    wildcard("*.example.com"),
                    RouteGroup::new(vec![forward("wild", prefix("/"), &wild)]),
                )],
                any: RouteGroup::new(vec![
                    forward("post", with_method(prefix("/api"), Method::POST), &post),
                    forward("api", path(PathMatch::Prefix("/api".into())), &api),
                    forward("root", prefix("/"), &root),
                ]),
            };
            snapshot(addr, routes)
        })
        .await;
        let c = client();
        let reached = |host: &'static str, method: Method, path: &'static str| {
            let req = c.request(method, gw.url(path)).header("host", host).send();
            async move {
                Echoed::from(req.await.expect("request"))
                    .await
                    .backend()
                    .to_string()
            }
        };
        assert_eq!(
            reached("foo.example.com:80", Method::GET, "/api").await,
            "exact"
        );
        assert_eq!(reached("FOO.example.com", Method::GET, "/").await, "exact");
        assert_eq!(
            reached("bar.example.com", Method::GET, "/api").await,
            "wild"
        );
        assert_eq!(reached("other.test", Method::POST, "/api/x").await, "post");
        assert_eq!(reached("other.test", Method::GET, "/api/x").await, "api");
        assert_eq!(reached("other.test", Method::GET, "/apix").await, "root");
    })
    .await;
}

#[tokio::test]
async fn unmatched_request_gets_404() {
    bounded(async {
        let api = EchoBackend::start("api").await;
        let gw =
            Gateway::start(|addr| snapshot(addr, any(vec![forward("api", prefix("/api"), &api)])))
                .await;
        let resp = gw.get("/other").await;
        assert_eq!(resp.status(), 404);
        let text = gw.metrics.encode_text().expect("metrics");
        assert!(
            text.contains(
                r#"sluice_requests_total{backend="",code="404",gateway="default/gw",kind="",route=""} 1"#
            ),
            "{text}"
        );
    })
    .await;
}

#[tokio::test]
async fn invalid_or_missing_backends_get_500_and_no_endpoints_503() {
    bounded(async {
        let gw = Gateway::start(|addr| {
            let invalid = BackendTarget::Invalid {
                reason: "BackendNotFound".into(),
            };
            let empty = BackendTarget::Service(Arc::new(Backend::new(
                "default/empty:80".into(),
                vec![],
                BackendProtocol::Http1,
            )));
            snapshot(
                addr,
                any(vec![
                    entry(
                        "invalid",
                        prefix("/invalid"),
                        action(vec![], vec![weighted(1, invalid)]),
                    ),
                    entry("none", prefix("/none"), action(vec![], vec![])),
                    entry(
                        "empty",
                        prefix("/empty"),
                        action(vec![], vec![weighted(1, empty)]),
                    ),
                ]),
            )
        })
        .await;
        let c = client();
        for (path, want) in [("/invalid", 500), ("/none", 500), ("/empty", 503)] {
            let resp = c.get(gw.url(path)).send().await.expect("request");
            assert_eq!(resp.status(), want, "{path}");
        }
        // The 503 names the Service whose endpoints are missing.
        let resp = c.get(gw.url("/empty")).send().await.expect("request");
        assert_eq!(
            resp.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("text/plain")
        );
        assert_eq!(
            resp.text().await.expect("body"),
            "backend default/empty:80 has no ready endpoints\n"
        );
    })
    .await;
}

#[tokio::test]
async fn weights_split_traffic_in_proportion() {
    bounded(async {
        let [a, b, never] = EchoBackend::start_each(["a", "b", "never"]).await;
        let gw = Gateway::start(|addr| {
            let backends = vec![
                weighted(3, BackendTarget::Service(a.backend())),
                weighted(1, BackendTarget::Service(b.backend())),
                weighted(0, BackendTarget::Service(never.backend())),
            ];
            snapshot(
                addr,
                any(vec![entry("split", prefix("/"), action(vec![], backends))]),
            )
        })
        .await;
        let c = client();
        let mut counts: BTreeMap<String, u32> = BTreeMap::new();
        for _ in 0..1_000 {
            let resp = c.get(gw.url("/")).send().await.expect("request");
            *counts
                .entry(Echoed::from(resp).await.backend().to_string())
                .or_default() += 1;
        }
        let a_share = counts.get("a").copied().unwrap_or(0);
        // 750 expected; 5 standard deviations (~14 each) either side.
        assert!((680..=820).contains(&a_share), "{counts:?}");
        assert_eq!(counts.get("never"), None, "weight 0 is never chosen");
    })
    .await;
}

#[tokio::test]
async fn a_refused_endpoint_is_retried_once_on_the_next_endpoint() {
    bounded(async {
        let up = EchoBackend::start("up").await;
        // A port nobody listens on: bind, note the address, close.
        let dead = servers::down().await;
        let backend = service_of(
            "default/mixed:80",
            vec![dead, up.addr],
            BackendProtocol::Http1,
        );
        let gw = Gateway::one_rule(action(vec![], vec![backend])).await;
        let c = client();
        for _ in 0..4 {
            let resp = c
                .post(gw.url("/"))
                .body("payload")
                .send()
                .await
                .expect("request");
            assert_eq!(resp.status(), 200);
        }
    })
    .await;
}

#[tokio::test]
async fn a_dead_backend_gets_502() {
    bounded(async {
        let dead = servers::down().await;
        let backend = service_of("default/dead:80", vec![dead], BackendProtocol::Http1);
        let gw = Gateway::one_rule(action(vec![], vec![backend])).await;
        let resp = gw.get("/").await;
        assert_eq!(resp.status(), 502);
        let text = gw.metrics.encode_text().expect("metrics");
        assert!(text.contains(r#"code="502""#), "{text}");
    })
    .await;
}
