//! Filter tests, using the Gateway API spec's own examples.

use sluice_test_support::proxy::{header_values, headers};

use super::*;

fn prefix(p: &str) -> PathMatch {
    PathMatch::Prefix(p.into())
}

fn replace_prefix(path: &str, matched: &str, replacement: &str) -> String {
    rewrite_path(
        &PathModifier::ReplacePrefixMatch(replacement.into()),
        path,
        &prefix(matched),
    )
    .expect("prefix match")
}

/// `modifier` applied to `path`, which the route matched exactly.
fn rewrite_exact_match(modifier: PathModifier, path: &str) -> Result<String, FilterError> {
    rewrite_path(&modifier, path, &PathMatch::Exact(path.into()))
}

#[test]
fn replace_prefix_match_follows_the_spec_table() {
    // (request path, prefix match, replacement, modified path) from HTTPPathModifier's docs.
    let table = [
        ("/foo/bar", "/foo", "/xyz", "/xyz/bar"),
        ("/foo/bar", "/foo", "/xyz/", "/xyz/bar"),
        ("/foo/bar", "/foo/", "/xyz", "/xyz/bar"),
        ("/foo/bar", "/foo/", "/xyz/", "/xyz/bar"),
        ("/foo", "/foo", "/xyz", "/xyz"),
        ("/foo/", "/foo", "/xyz", "/xyz/"),
        ("/foo/bar", "/foo", "", "/bar"),
        ("/foo/", "/foo", "", "/"),
        ("/foo", "/foo", "", "/"),
        ("/foo/", "/foo", "/", "/"),
        ("/foo", "/foo", "/", "/"),
    ];
    for (path, matched, replacement, want) in table {
        assert_eq!(
            replace_prefix(path, matched, replacement),
            want,
            "{path} with prefix {matched} -> {replacement:?}"
        );
    }
}

#[test]
fn replace_prefix_under_the_root_prefix_prepends() {
    assert_eq!(replace_prefix("/foo", "/", "/xyz"), "/xyz/foo");
    assert_eq!(replace_prefix("/", "/", "/xyz"), "/xyz/");
}

#[test]
fn replace_prefix_without_a_prefix_match_is_an_error() {
    let r = rewrite_exact_match(PathModifier::ReplacePrefixMatch("/x".into()), "/foo");
    assert!(matches!(r, Err(FilterError::PrefixWithoutPrefixMatch)));
}

#[test]
fn replace_full_path_ignores_the_match() {
    let r = rewrite_exact_match(PathModifier::ReplaceFullPath("/new".into()), "/old/path");
    assert_eq!(r.expect("full path").as_str(), "/new");
}

// === redirect ===

fn redirect() -> Redirect {
    Redirect {
        scheme: None,
        hostname: None,
        path: None,
        port: None,
        status_code: 302,
    }
}

fn url(scheme: &'static str, port: u16) -> RequestUrl<'static> {
    RequestUrl {
        scheme,
        host: "example.com",
        listener_port: port,
        path: "/a/b",
        query: Some("x=1"),
    }
}

fn location(r: &Redirect, req: &RequestUrl<'_>) -> String {
    redirect_location(r, req, &prefix("/a")).expect("location")
}

/// Checks each case: a redirect, the request's scheme and listener port, the Location wanted.
fn assert_locations(cases: &[(Redirect, &'static str, u16, &str)]) {
    for (r, scheme, port, want) in cases {
        let got = location(r, &url(scheme, *port));
        assert_eq!(got, *want, "{r:?} for {scheme} on port {port}");
    }
}

#[test]
fn redirect_defaults_to_the_request_url_without_default_port() {
    assert_locations(&[
        (redirect(), "http", 80, "http://example.com/a/b?x=1"),
        // With no scheme change the listener port is kept.
        (redirect(), "http", 8080, "http://example.com:8080/a/b?x=1"),
    ]);
}

#[test]
fn redirect_scheme_change_uses_the_schemes_well_known_port() {
    let to = |scheme: &str| Redirect {
        scheme: Some(scheme.into()),
        ..redirect()
    };
    assert_locations(&[
        (to("https"), "http", 8080, "https://example.com/a/b?x=1"),
        (to("http"), "https", 8443, "http://example.com/a/b?x=1"),
    ]);
}

#[test]
fn redirect_explicit_port_is_kept_unless_default_for_scheme() {
    let to = |scheme: Option<&str>, port| Redirect {
        scheme: scheme.map(Into::into),
        port: Some(port),
        ..redirect()
    };
    assert_locations(&[
        (
            to(Some("https"), 8443),
            "http",
            80,
            "https://example.com:8443/a/b?x=1",
        ),
        (
            to(Some("https"), 443),
            "http",
            80,
            "https://example.com/a/b?x=1",
        ),
        (to(None, 80), "https", 443, "https://example.com:80/a/b?x=1"),
    ]);
}

#[test]
fn redirect_hostname_and_paths() {
    let full = Redirect {
        hostname: Some("other.example.org".into()),
        path: Some(PathModifier::ReplaceFullPath("/full".into())),
        ..redirect()
    };
    let prefix = Redirect {
        path: Some(PathModifier::ReplacePrefixMatch("/z".into())),
        ..redirect()
    };
    assert_locations(&[
        (full, "http", 80, "http://other.example.org/full?x=1"),
        (prefix, "http", 80, "http://example.com/z/b?x=1"),
    ]);
}

// === header modifiers ===

fn modifier() -> HeaderModifier {
    headers(&[("x-set", "new")], &[("x-add", "more")], &["x-remove"])
}

#[test]
fn request_header_modifier_sets_adds_and_removes() {
    let mut req = RequestHeader::build("GET", b"/", None).expect("request");
    req.append_header("X-Set", "old").expect("header");
    req.append_header("X-Set", "older").expect("header");
    req.append_header("X-Add", "first").expect("header");
    req.append_header("X-Remove", "gone").expect("header");
    req.append_header("X-Keep", "kept").expect("header");
    apply_header_modifier(&modifier(), &mut req).expect("modify");
    let values = |name| header_values(&req.headers, name);
    assert_eq!(values("x-set"), ["new"]);
    assert_eq!(values("x-add"), ["first", "more"]);
    assert!(values("x-remove").is_empty());
    assert_eq!(values("x-keep"), ["kept"]);
}

#[test]
fn response_header_modifier_applies_to_responses() {
    let mut resp = ResponseHeader::build(200, None).expect("response");
    resp.append_header("x-remove", "gone").expect("header");
    apply_header_modifier(&modifier(), &mut resp).expect("modify");
    assert_eq!(
        resp.headers.get("x-set").map(|v| v.as_bytes()),
        Some(&b"new"[..])
    );
    assert_eq!(
        resp.headers.get("x-add").map(|v| v.as_bytes()),
        Some(&b"more"[..])
    );
    assert!(resp.headers.get("x-remove").is_none());
}

#[test]
fn set_request_path_keeps_the_query() {
    let mut req = RequestHeader::build("GET", b"/old/path?a=1&b=2", None).expect("request");
    set_request_path(&mut req, "/new").expect("path");
    assert_eq!(req.raw_path(), b"/new?a=1&b=2");
    assert_eq!(req.uri.path(), "/new");
}

#[test]
fn a_rewritten_hostname_moves_the_uri_authority_with_the_host_header() {
    // An HTTP/2 request: its target carries the `:authority`.
    let uri: http::Uri = "http://old.example:8080/a?b=1".parse().expect("uri");
    let mut req = RequestHeader::build("GET", b"/", None).expect("head");
    req.set_uri(uri);
    set_request_host(&mut req, "new.example").expect("rewrite");
    assert_eq!(req.headers.get("host").expect("host"), "new.example");
    assert_eq!(req.uri.authority().map(|a| a.as_str()), Some("new.example"));
    assert_eq!(req.uri.scheme_str(), Some("http"));
    assert_eq!(req.raw_path(), b"/a?b=1");

    // An origin-form HTTP/1.1 target has no authority to move.
    let mut req = RequestHeader::build("GET", b"/a?b=1", None).expect("head");
    set_request_host(&mut req, "new.example").expect("rewrite");
    assert_eq!(req.headers.get("host").expect("host"), "new.example");
    assert_eq!(req.raw_path(), b"/a?b=1");
}
