//! CORS answers, against the cases the Gateway API spec describes for each field.

use sluice_controller::snapshot::OriginPattern;

use super::*;

fn cors(origins: &[&str], credentials: bool) -> Cors {
    Cors {
        allow_origins: origins
            .iter()
            .filter_map(|o| OriginPattern::parse(o))
            .collect(),
        allow_credentials: credentials,
        allow_methods: Allowed::Only(vec![Method::GET, Method::OPTIONS]),
        allow_headers: Allowed::Only(vec![HeaderName::from_static("x-header-1")]),
        expose_headers: Allowed::Only(vec![HeaderName::from_static("x-header-3")]),
        max_age: 3600,
    }
}

fn request(method: &str, fields: &[(&str, &str)]) -> RequestHeader {
    let mut req = RequestHeader::build(method.as_bytes(), b"/", None).expect("request head");
    for (name, value) in fields {
        req.append_header(name.to_string(), *value).expect("field");
    }
    req
}

fn field<'a>(resp: &'a ResponseHeader, name: &str) -> Option<&'a str> {
    resp.headers.get(name).and_then(|v| v.to_str().ok())
}

fn preflight_of(c: &Cors, fields: &[(&str, &str)]) -> Box<ResponseHeader> {
    match classify(c, &request("OPTIONS", fields)).expect("classify") {
        CorsRequest::Preflight(resp) => resp,
        other => panic!("not a preflight: {other:?}"),
    }
}

#[test]
fn an_allowed_preflight_gets_every_configured_field() {
    let c = cors(&["https://*.bar.com"], true);
    let resp = preflight_of(
        &c,
        &[
            ("origin", "https://www.bar.com"),
            ("access-control-request-method", "GET"),
        ],
    );
    assert_eq!(resp.status, 200);
    assert_eq!(
        field(&resp, "access-control-allow-origin"),
        Some("https://www.bar.com")
    );
    assert_eq!(
        field(&resp, "access-control-allow-methods"),
        Some("GET, OPTIONS")
    );
    assert_eq!(
        field(&resp, "access-control-allow-headers"),
        Some("x-header-1")
    );
    assert_eq!(
        field(&resp, "access-control-expose-headers"),
        Some("x-header-3")
    );
    assert_eq!(field(&resp, "access-control-max-age"), Some("3600"));
    assert_eq!(
        field(&resp, "access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(field(&resp, "content-length"), Some("0"));
}

#[test]
fn a_refused_origin_gets_a_preflight_answer_without_cors_fields() {
    let c = cors(&["https://www.foo.com"], true);
    let resp = preflight_of(
        &c,
        &[
            ("origin", "https://foobar.com"),
            ("access-control-request-method", "GET"),
        ],
    );
    assert_eq!(resp.status, 200);
    let cors_fields = resp
        .headers
        .keys()
        .filter(|k| k.as_str().starts_with("access-control-"))
        .count();
    assert_eq!(cors_fields, 0);
}

#[test]
fn wildcards_echo_what_the_preflight_asks_for() {
    let mut c = cors(&["*"], true);
    c.allow_methods = Allowed::Any;
    c.allow_headers = Allowed::Any;
    let resp = preflight_of(
        &c,
        &[
            ("origin", "https://other.foo.com"),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "x-a, x-b"),
        ],
    );
    assert_eq!(
        field(&resp, "access-control-allow-origin"),
        Some("https://other.foo.com")
    );
    assert_eq!(field(&resp, "access-control-allow-methods"), Some("PUT"));
    assert_eq!(
        field(&resp, "access-control-allow-headers"),
        Some("x-a, x-b")
    );
    let without_headers = preflight_of(
        &c,
        &[
            ("origin", "https://other.foo.com"),
            ("access-control-request-method", "PUT"),
        ],
    );
    assert_eq!(
        field(&without_headers, "access-control-allow-headers"),
        None
    );
}

#[test]
fn requests_without_origin_or_from_refused_origins_are_plain() {
    let c = cors(&["https://www.foo.com"], false);
    let sort = |fields: &[(&str, &str)], method: &str| {
        classify(&c, &request(method, fields)).expect("classify")
    };
    assert!(matches!(sort(&[], "GET"), CorsRequest::Plain));
    assert!(matches!(
        sort(&[("origin", "https://foobar.com")], "GET"),
        CorsRequest::Plain
    ));
    // OPTIONS without Access-Control-Request-Method is an ordinary request.
    assert!(matches!(
        sort(&[("origin", "https://www.foo.com")], "OPTIONS"),
        CorsRequest::Allowed(o) if o == "https://www.foo.com"
    ));
}

#[test]
fn actual_responses_get_origin_credentials_and_exposed_fields() {
    let c = cors(&["https://www.foo.com"], true);
    let mut resp = ResponseHeader::build(200, None).expect("response head");
    resp.insert_header("access-control-allow-origin", "*")
        .expect("field");
    resp.insert_header("vary", "Accept-Encoding")
        .expect("field");
    let origin = HeaderValue::from_static("https://www.foo.com");
    add_response_fields(&c, &origin, &mut resp).expect("fields");
    let origins: Vec<_> = resp
        .headers
        .get_all("access-control-allow-origin")
        .iter()
        .collect();
    assert_eq!(
        origins,
        vec!["https://www.foo.com"],
        "the backend's own answer is replaced"
    );
    assert_eq!(
        field(&resp, "access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(
        field(&resp, "access-control-expose-headers"),
        Some("x-header-3")
    );
    let vary: Vec<_> = resp.headers.get_all("vary").iter().collect();
    assert_eq!(vary, vec!["Accept-Encoding", "Origin"]);
}

#[test]
fn exposing_everything_with_credentials_lists_the_response_fields() {
    let mut c = cors(&["*"], true);
    c.expose_headers = Allowed::Any;
    let mut resp = ResponseHeader::build(200, None).expect("response head");
    resp.insert_header("x-trace", "1").expect("field");
    add_response_fields(&c, &HeaderValue::from_static("https://a.b"), &mut resp).expect("fields");
    let exposed = field(&resp, "access-control-expose-headers").unwrap_or_default();
    assert!(
        exposed.contains("x-trace") && !exposed.contains('*'),
        "{exposed}"
    );
    c.allow_credentials = false;
    let mut resp = ResponseHeader::build(200, None).expect("response head");
    add_response_fields(&c, &HeaderValue::from_static("https://a.b"), &mut resp).expect("fields");
    assert_eq!(field(&resp, "access-control-expose-headers"), Some("*"));
}
