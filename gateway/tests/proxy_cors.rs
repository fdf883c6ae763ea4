//! End to end through `ProxyApp`: the `CORS` filter answers preflights itself and marks the
//! responses of allowed cross-origin requests, and only those.

use http::{HeaderName, Method};
use sluice_controller::snapshot::{Allowed, Cors, Filter, OriginPattern};

use sluice_test_support::proxy::*;

fn cors(origins: &[&str], credentials: bool) -> Cors {
    Cors {
        allow_origins: origins
            .iter()
            .map(|o| OriginPattern::parse(o).expect("origin pattern"))
            .collect(),
        allow_credentials: credentials,
        allow_methods: Allowed::Only(vec![Method::GET, Method::PUT]),
        allow_headers: Allowed::Only(vec![HeaderName::from_static("x-token")]),
        expose_headers: Allowed::Only(vec![HeaderName::from_static("x-trace")]),
        max_age: 600,
    }
}

async fn gateway_with(c: Cors, backend: &EchoBackend) -> Gateway {
    Gateway::one_rule(action(vec![Filter::Cors(c)], vec![to(backend)])).await
}

async fn preflight(gw: &Gateway, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    let mut req = client().request(Method::OPTIONS, gw.url(path));
    for (name, value) in fields {
        req = req.header(*name, *value);
    }
    req.send().await.expect("preflight")
}

fn cors_fields(resp: &reqwest::Response) -> Vec<String> {
    resp.headers()
        .keys()
        .map(|k| k.as_str().to_string())
        .filter(|k| k.starts_with("access-control-"))
        .collect()
}

fn field(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[tokio::test]
async fn a_preflight_is_answered_by_sluice_and_never_reaches_the_backend() {
    bounded(async {
        let b = EchoBackend::start("b").await;
        let gw = gateway_with(cors(&["https://*.example.com"], false), &b).await;
        let allowed = preflight(
            &gw,
            "/api",
            &[
                ("origin", "https://app.eu.example.com"),
                ("access-control-request-method", "PUT"),
                ("access-control-request-headers", "x-token"),
            ],
        )
        .await;
        assert_eq!(allowed.status(), 200);
        assert_eq!(
            field(&allowed, "access-control-allow-origin").as_deref(),
            Some("https://app.eu.example.com")
        );
        assert_eq!(
            field(&allowed, "access-control-allow-methods").as_deref(),
            Some("GET, PUT")
        );
        assert_eq!(
            field(&allowed, "access-control-max-age").as_deref(),
            Some("600")
        );
        assert_eq!(field(&allowed, "access-control-allow-credentials"), None);
        let refused = preflight(
            &gw,
            "/api",
            &[
                ("origin", "https://example.com.evil.net"),
                ("access-control-request-method", "PUT"),
            ],
        )
        .await;
        assert_eq!(refused.status(), 200);
        assert!(
            cors_fields(&refused).is_empty(),
            "{:?}",
            cors_fields(&refused)
        );
        // An OPTIONS that is not a preflight is proxied; it is the first request the backend sees.
        let plain = preflight(&gw, "/plain", &[("origin", "https://a.example.com")]).await;
        assert_eq!(plain.status(), 200);
        let seen = b.wait_seen(1).await;
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].path(), "/plain");
    })
    .await;
}

#[tokio::test]
async fn only_allowed_origins_get_cors_fields_on_actual_responses() {
    bounded(async {
        let b = EchoBackend::start("b").await;
        let gw = gateway_with(cors(&["https://www.foo.com"], false), &b).await;
        let allowed = gw.get_with("/", &[("origin", "https://www.foo.com")]).await;
        assert_eq!(allowed.status(), 200);
        assert_eq!(
            field(&allowed, "access-control-allow-origin").as_deref(),
            Some("https://www.foo.com")
        );
        assert_eq!(
            field(&allowed, "access-control-expose-headers").as_deref(),
            Some("x-trace")
        );
        assert_eq!(field(&allowed, "vary").as_deref(), Some("Origin"));
        for origin in ["https://foobar.com", "http://www.foo.com", "null"] {
            let refused = gw.get_with("/", &[("origin", origin)]).await;
            assert_eq!(refused.status(), 200, "the request itself is served");
            assert!(cors_fields(&refused).is_empty(), "{origin}");
        }
        let no_origin = gw.get("/").await;
        assert!(cors_fields(&no_origin).is_empty());
    })
    .await;
}

/// With credentials the spec forbids `*` in the answer: a wildcard rule echoes the origin, the
/// requested method and the requested headers instead.
#[tokio::test]
async fn credentials_with_wildcard_rules_echo_instead_of_star() {
    bounded(async {
        let b = EchoBackend::start("b").await;
        let mut c = cors(&["*"], true);
        c.allow_methods = Allowed::Any;
        c.allow_headers = Allowed::Any;
        c.expose_headers = Allowed::Any;
        let gw = gateway_with(c, &b).await;
        let resp = preflight(
            &gw,
            "/",
            &[
                ("origin", "https://anywhere.test:8443"),
                ("access-control-request-method", "DELETE"),
                ("access-control-request-headers", "x-a, x-b"),
            ],
        )
        .await;
        assert_eq!(
            field(&resp, "access-control-allow-origin").as_deref(),
            Some("https://anywhere.test:8443")
        );
        assert_eq!(
            field(&resp, "access-control-allow-methods").as_deref(),
            Some("DELETE")
        );
        assert_eq!(
            field(&resp, "access-control-allow-headers").as_deref(),
            Some("x-a, x-b")
        );
        assert_eq!(
            field(&resp, "access-control-allow-credentials").as_deref(),
            Some("true")
        );
        let actual = gw
            .get_with("/", &[("origin", "https://anywhere.test:8443")])
            .await;
        assert_eq!(
            field(&actual, "access-control-allow-credentials").as_deref(),
            Some("true")
        );
        let exposed = field(&actual, "access-control-expose-headers").unwrap_or_default();
        assert!(
            !exposed.contains('*') && exposed.contains("content-type"),
            "the response's own fields are listed: {exposed}"
        );
    })
    .await;
}

#[tokio::test]
async fn sluices_own_error_answer_to_an_allowed_origin_carries_the_cors_fields() {
    bounded(async {
        // Nothing listens there: the connection is refused, Sluice answers 502 itself.
        let dead = std::net::SocketAddr::from(([127, 0, 0, 1], sluice_test_support::free_port()));
        let gw = Gateway::one_rule(action(
            vec![Filter::Cors(cors(&["https://app.example.com"], true))],
            vec![service_at(
                "default/dead:80",
                dead,
                sluice_controller::snapshot::BackendProtocol::Http1,
            )],
        ))
        .await;
        let allowed = gw
            .get_with("/api", &[("origin", "https://app.example.com")])
            .await;
        assert_eq!(allowed.status(), 502);
        assert_eq!(
            field(&allowed, "access-control-allow-origin").as_deref(),
            Some("https://app.example.com"),
            "a browser must be able to read the 502"
        );
        assert_eq!(
            field(&allowed, "access-control-allow-credentials").as_deref(),
            Some("true")
        );
        let refused = gw
            .get_with("/api", &[("origin", "https://evil.example.net")])
            .await;
        assert_eq!(refused.status(), 502);
        assert!(
            cors_fields(&refused).is_empty(),
            "{:?}",
            cors_fields(&refused)
        );
    })
    .await;
}
