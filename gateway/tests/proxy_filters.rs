//! End to end through `ProxyApp`: header modifiers, redirects and URL rewrites, in filter order.

use sluice_controller::snapshot::{
    BackendTarget, Filter, Fraction, HeaderModifier, Mirror, PathModifier, Redirect, UrlRewrite,
    WeightedBackend,
};
use sluice_gateway::mirror::{MirrorEngine, MirrorMetrics, MirrorOptions};
use sluice_gateway::proxy::ProxySettings;

use sluice_test_support::proxy::*;

/// Sets `x-set`, adds to `x-add` and removes `x-remove`: the modifier both directions test.
fn set_add_remove() -> HeaderModifier {
    headers(
        &[("x-set", "set-value")],
        &[("x-add", "added")],
        &["x-remove"],
    )
}

#[tokio::test]
async fn request_headers_are_set_added_and_removed_before_the_backend() {
    bounded(async {
        let b = EchoBackend::start("b").await;
        let f = Filter::RequestHeaders(set_add_remove());
        let gw = Gateway::one_rule(action(vec![f], vec![to(&b)])).await;
        let resp = gw
            .get_with(
                "/",
                &[
                    ("x-set", "original"),
                    ("x-add", "existing"),
                    ("x-remove", "gone"),
                ],
            )
            .await;
        let echoed = Echoed::from(resp).await;
        assert_eq!(echoed.header("x-set"), ["set-value"]);
        assert_eq!(echoed.header("x-add"), ["existing", "added"]);
        assert!(echoed.header("x-remove").is_empty());
    })
    .await;
}

#[tokio::test]
async fn backend_filters_run_after_rule_filters() {
    bounded(async {
        let b = EchoBackend::start("b").await;
        let rule = Filter::RequestHeaders(headers(&[("x-order", "rule")], &[], &[]));
        let backend = WeightedBackend {
            weight: 1,
            target: BackendTarget::Service(b.backend()),
            filters: vec![
                Filter::RequestHeaders(headers(&[("x-order", "backend")], &[], &[])),
                Filter::ResponseHeaders(headers(&[("x-resp", "backend")], &[], &[])),
            ],
        };
        let rule_resp =
            Filter::ResponseHeaders(headers(&[("x-resp", "rule")], &[("x-rule", "1")], &[]));
        let gw = Gateway::one_rule(action(vec![rule, rule_resp], vec![backend])).await;
        let resp = gw.get("/").await;
        assert_eq!(resp.headers()["x-resp"], "backend");
        assert_eq!(resp.headers()["x-rule"], "1");
        assert_eq!(Echoed::from(resp).await.header("x-order"), ["backend"]);
    })
    .await;
}

#[tokio::test]
async fn response_headers_are_modified_on_the_way_back() {
    bounded(async {
        let b = EchoBackend::start("b").await;
        let f = Filter::ResponseHeaders(set_add_remove());
        let gw = Gateway::one_rule(action(vec![f], vec![to(&b)])).await;
        let resp = gw
            .get_with(
                "/",
                &[
                    ("x-respond-header", "x-set=from-backend"),
                    ("x-respond-header", "x-add=from-backend"),
                    ("x-respond-header", "x-remove=from-backend"),
                ],
            )
            .await;
        let values = |n: &str| header_values(resp.headers(), n);
        assert_eq!(values("x-set"), ["set-value"]);
        assert_eq!(values("x-add"), ["from-backend", "added"]);
        assert!(values("x-remove").is_empty());
    })
    .await;
}

#[tokio::test]
async fn redirect_answers_without_touching_a_backend() {
    bounded(async {
        let gw = Gateway::start(|addr| {
            let to_https = Filter::Redirect(Redirect {
                scheme: Some("https".into()),
                hostname: Some("secure.example.com".into()),
                path: Some(PathModifier::ReplacePrefixMatch("/new".into())),
                port: None,
                status_code: 301,
            });
            let same = Filter::Redirect(Redirect {
                scheme: None,
                hostname: None,
                path: Some(PathModifier::ReplaceFullPath("/elsewhere".into())),
                port: None,
                status_code: 302,
            });
            snapshot(
                addr,
                any(vec![
                    entry("https", prefix("/old"), action(vec![to_https], vec![])),
                    entry("same", prefix("/same"), action(vec![same], vec![])),
                ]),
            )
        })
        .await;
        let resp = gw
            .get_with("/old/page?q=1", &[("host", "www.example.com")])
            .await;
        assert_eq!(resp.status(), 301);
        assert_eq!(
            resp.headers()["location"],
            "https://secure.example.com/new/page?q=1"
        );
        let resp = gw.get_with("/same/x", &[("host", "www.example.com")]).await;
        assert_eq!(resp.status(), 302);
        let want = format!("http://www.example.com:{}/elsewhere", gw.addr.port());
        assert_eq!(
            resp.headers()["location"],
            want.as_str(),
            "the listener port is kept"
        );
    })
    .await;
}

#[tokio::test]
async fn url_rewrite_changes_host_and_prefix_and_keeps_the_query() {
    bounded(async {
        let b = EchoBackend::start("b").await;
        let gw = Gateway::start(|addr| {
            let rewrite = Filter::UrlRewrite(UrlRewrite {
                hostname: Some("internal.example.com".into()),
                path: Some(PathModifier::ReplacePrefixMatch("/v2".into())),
            });
            let strip = Filter::UrlRewrite(UrlRewrite {
                hostname: None,
                path: Some(PathModifier::ReplacePrefixMatch("".into())),
            });
            snapshot(
                addr,
                any(vec![
                    entry(
                        "rewrite",
                        prefix("/v1"),
                        action(vec![rewrite], vec![to(&b)]),
                    ),
                    entry("strip", prefix("/strip"), action(vec![strip], vec![to(&b)])),
                ]),
            )
        })
        .await;
        let resp = gw
            .get_with("/v1/users?id=7", &[("host", "public.example.com")])
            .await;
        let echoed = Echoed::from(resp).await;
        assert_eq!(echoed.path(), "/v2/users?id=7");
        assert_eq!(echoed.header("host"), ["internal.example.com"]);
        assert_eq!(echoed.header("x-forwarded-host"), ["public.example.com"]);
        let resp = gw.get("/strip").await;
        assert_eq!(Echoed::from(resp).await.path(), "/");
    })
    .await;
}

#[tokio::test]
async fn mirror_receives_the_head_as_modified_by_earlier_filters_only() {
    bounded(async {
        let [primary, shadow] = EchoBackend::start_each(["primary", "shadow"]).await;
        let registry = prometheus::Registry::new();
        let engine = MirrorEngine::new(
            MirrorOptions::default(),
            MirrorMetrics::register(&registry).expect("mirror metrics"),
        );
        let settings = ProxySettings {
            mirror: Some(engine),
            ..ProxySettings::default()
        };
        let filters = vec![
            Filter::RequestHeaders(headers(&[("x-before", "1")], &[], &[])),
            Filter::Mirror(Mirror {
                backend: shadow.backend(),
                fraction: Fraction::ALL,
                policy: None,
            }),
            Filter::RequestHeaders(headers(&[("x-after", "1")], &[], &[])),
        ];
        let gw = Gateway::start_with(settings, |addr| {
            one_rule(addr, action(filters, vec![to(&primary)]))
        })
        .await;
        let resp = gw.get("/m").await;
        let seen_by_primary = Echoed::from(resp).await;
        assert_eq!(seen_by_primary.header("x-before"), ["1"]);
        assert_eq!(seen_by_primary.header("x-after"), ["1"]);
        let copies = shadow.wait_seen(1).await;
        assert_eq!(copies[0].path(), "/m");
        assert_eq!(copies[0].header("x-before"), ["1"]);
        assert!(copies[0].header("x-after").is_empty(), "{:?}", copies[0].0);
    })
    .await;
}
