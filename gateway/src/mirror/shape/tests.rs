#![allow(clippy::unwrap_used)]

use super::*;
use http::Uri;
use sluice_controller::snapshot::CopyShape;
use sluice_test_support::proxy::headers;

use crate::mirror::head::mirror_head;
use sluice_controller::snapshot::BackendProtocol;

fn policy(request: CopyShape) -> MirrorPolicy {
    MirrorPolicy {
        name: "default/shape".into(),
        request,
        compare: None,
    }
}

fn primary(headers: &[(&str, &str)]) -> RequestHeader {
    let mut h = RequestHeader::build("GET", b"/", None).unwrap();
    for (k, v) in headers {
        h.append_header(k.to_string(), *v).unwrap();
    }
    h
}

/// The copy of `p` to an HTTP/1.1 mirror, shaped by `policy` over `settings`.
fn copy(
    p: RequestHeader,
    settings: &MirrorSettings,
    policy: Option<&MirrorPolicy>,
) -> RequestHeader {
    mirror_head(
        p,
        false,
        BackendProtocol::Http1,
        Shape::of(settings, policy),
    )
}

fn host(m: &RequestHeader) -> &str {
    m.headers.get("host").unwrap().to_str().unwrap()
}

fn flags_suffix() -> MirrorSettings {
    MirrorSettings {
        host_suffix: Some("-flag".into()),
        headers: headers(&[("x-flag", "1")], &[], &[]),
        ..MirrorSettings::default()
    }
}

#[test]
fn host_suffix_goes_before_the_port() {
    assert_eq!(suffixed_host("a.com", "-shadow"), "a.com-shadow");
    assert_eq!(suffixed_host("a.com:8080", "-shadow"), "a.com-shadow:8080");
}

#[test]
fn host_suffix_leaves_ip_literals_unchanged() {
    for ip in ["[::1]:80", "[::1]", "10.0.0.1", "10.0.0.1:8080", "::1"] {
        assert_eq!(suffixed_host(ip, "-s"), ip);
    }
    // A name that merely starts with digits is still a name.
    assert_eq!(
        suffixed_host("10.0.0.1.nip.io:80", "-s"),
        "10.0.0.1.nip.io-s:80"
    );
}

#[test]
fn host_rewrite_keeps_the_port_of_every_host_form() {
    for (from, to) in [
        ("a.com", "shadow.test"),
        ("a.com:8080", "shadow.test:8080"),
        ("10.0.0.1:81", "shadow.test:81"),
        ("[::1]:82", "shadow.test:82"),
        ("[::1]", "shadow.test"),
        ("::1", "shadow.test"),
        ("a.com:", "shadow.test"),
        ("a.com:x1", "shadow.test"),
    ] {
        assert_eq!(rewritten_host(from, "shadow.test"), to, "{from}");
    }
}

#[test]
fn without_a_policy_the_flags_shape_the_copy() {
    let m = copy(primary(&[("host", "a.com:80")]), &flags_suffix(), None);
    assert_eq!(host(&m), "a.com-flag:80");
    assert_eq!(m.headers.get("x-flag").unwrap(), "1");
}

#[test]
fn a_policy_field_replaces_its_flag_and_leaves_the_others() {
    let suffix = policy(CopyShape {
        host: Some(CopyHost::Suffix("-policy".into())),
        ..CopyShape::default()
    });
    let m = copy(
        primary(&[("host", "a.com:80")]),
        &flags_suffix(),
        Some(&suffix),
    );
    assert_eq!(host(&m), "a.com-policy:80");
    assert_eq!(
        m.headers.get("x-flag").unwrap(),
        "1",
        "headers still the flags'"
    );

    let headers_only = policy(CopyShape {
        headers: Some(headers(&[("x-policy", "1")], &[], &[])),
        ..CopyShape::default()
    });
    let m = copy(
        primary(&[("host", "a.com")]),
        &flags_suffix(),
        Some(&headers_only),
    );
    assert_eq!(host(&m), "a.com-flag", "host still the flag's");
    assert_eq!(m.headers.get("x-policy").unwrap(), "1");
    assert!(
        !m.headers.contains_key("x-flag"),
        "the policy's headers replace the flag's, not add to them"
    );
}

#[test]
fn host_rewrite_fills_a_missing_host_and_suffix_leaves_it_missing() {
    let rewrite = policy(CopyShape {
        host: Some(CopyHost::Rewrite("shadow.test".into())),
        ..CopyShape::default()
    });
    let m = copy(primary(&[]), &MirrorSettings::default(), Some(&rewrite));
    assert_eq!(host(&m), "shadow.test");
    let m = copy(primary(&[]), &flags_suffix(), None);
    assert!(!m.headers.contains_key("host"));
}

#[test]
fn an_h2c_copy_carries_the_rewritten_host_as_its_authority() {
    let rewrite = policy(CopyShape {
        host: Some(CopyHost::Rewrite("shadow.test".into())),
        ..CopyShape::default()
    });
    let mut p = primary(&[]);
    p.set_uri(Uri::from_static("http://a.com:8443/x?y=1"));
    let settings = MirrorSettings::default();
    let m = mirror_head(
        p,
        false,
        BackendProtocol::H2c,
        Shape::of(&settings, Some(&rewrite)),
    );
    assert_eq!(host(&m), "shadow.test:8443");
    assert_eq!(m.uri.authority().unwrap().as_str(), "shadow.test:8443");
    assert_eq!(m.raw_path(), b"/x?y=1");
}

#[test]
fn strip_credentials_removes_every_value_before_the_policy_headers() {
    let strip = policy(CopyShape {
        strip_credentials: true,
        headers: Some(headers(&[("authorization", "Bearer shadow")], &[], &[])),
        ..CopyShape::default()
    });
    let p = primary(&[
        ("host", "a.com"),
        ("authorization", "Bearer live"),
        ("cookie", "a=1"),
        ("cookie", "b=2"),
        ("x-keep", "1"),
    ]);
    let m = copy(p.clone(), &MirrorSettings::default(), Some(&strip));
    assert!(!m.headers.contains_key("cookie"));
    let auth: Vec<_> = m.headers.get_all("authorization").iter().collect();
    assert_eq!(auth, ["Bearer shadow"], "only the policy's own credential");
    assert_eq!(m.headers.get("x-keep").unwrap(), "1");
    // The primary's head is its own.
    assert_eq!(p.headers.get_all("cookie").iter().count(), 2);
    // Without the field the credentials are copied, as before.
    let m = copy(p, &MirrorSettings::default(), None);
    assert_eq!(m.headers.get_all("cookie").iter().count(), 2);
    assert_eq!(m.headers.get("authorization").unwrap(), "Bearer live");
}
