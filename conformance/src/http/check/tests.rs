#![allow(clippy::unwrap_used)]

use super::*;
use crate::case::{BackendRef, ExpectRedirect, ExpectRequest, StatusSet};

fn echo(pod: &str, path: &str) -> Received {
    Received {
        status: 200,
        version: "HTTP/1.1".into(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: format!(
            r#"{{"path":"{path}","host":"h","method":"GET","headers":{{"X-A":["1","2"]}},"namespace":"ns","pod":"{pod}"}}"#
        ),
    }
}

fn expect_backend(service: &str) -> Expect {
    Expect {
        status: Some(StatusSet::One(200)),
        backend: Some(ExpectBackend::Some(BackendRef {
            namespace: Some("ns".into()),
            service: Some(service.into()),
        })),
        request: Some(ExpectRequest {
            method: Some("GET".into()),
            path: Some("/p".into()),
            headers: [("x-a".to_owned(), "1,2".to_owned())].into(),
            ..ExpectRequest::default()
        }),
        ..Expect::default()
    }
}

#[test]
fn echo_from_the_right_backend_passes() {
    let (verdict, captured) = check_response(
        &expect_backend("b1"),
        &Ok(echo("b1-abc-def", "/p")),
        "/p",
        "GET",
        &[],
    );
    assert_eq!(verdict, Verdict::Pass);
    assert_eq!(captured.echo.pod, "b1-abc-def");
}

#[test]
fn wrong_backend_path_or_status_is_not_yet() {
    let expect = expect_backend("b1");
    let wrong_pod = check_response(&expect, &Ok(echo("b2-abc-def", "/p")), "/p", "GET", &[]).0;
    assert!(matches!(wrong_pod, Verdict::NotYet(ref why) if why.contains("b2-abc-def")));
    let wrong_path = check_response(&expect, &Ok(echo("b1-abc-def", "/q")), "/p", "GET", &[]).0;
    assert!(matches!(wrong_path, Verdict::NotYet(ref why) if why.contains("/q")));
    let mut not_found = echo("b1-abc-def", "/p");
    not_found.status = 404;
    assert!(matches!(
        check_response(&expect, &Ok(not_found), "/p", "GET", &[]).0,
        Verdict::NotYet(_)
    ));
    assert!(matches!(
        check_response(&expect, &Err("reset".into()), "/p", "GET", &[]).0,
        Verdict::NotYet(_)
    ));
}

#[test]
fn not_status_fails_fast_and_transport_error_wants_no_response() {
    let never_200 = Expect {
        not_status: Some(200),
        ..Expect::default()
    };
    assert!(matches!(
        check_response(&never_200, &Ok(echo("p", "/")), "/", "GET", &[]).0,
        Verdict::Fatal(_)
    ));
    let transport = Expect {
        transport_error: true,
        ..Expect::default()
    };
    assert_eq!(
        check_response(&transport, &Err("reset".into()), "/", "GET", &[]).0,
        Verdict::Pass
    );
    assert!(matches!(
        check_response(&transport, &Ok(echo("p", "/")), "/", "GET", &[]).0,
        Verdict::NotYet(_)
    ));
}

#[test]
fn redirects_compare_scheme_host_port_and_path() {
    let expect = Expect {
        status: Some(StatusSet::One(302)),
        redirect: Some(ExpectRedirect {
            scheme: Some("http".into()),
            host: Some("example.org".into()),
            port: None,
            path: Some("/new".into()),
        }),
        ..Expect::default()
    };
    let redirect = |location: &str| Received {
        status: 302,
        version: "HTTP/1.1".into(),
        headers: vec![("location".into(), location.into())],
        body: String::new(),
    };
    let check = |l: &str| check_response(&expect, &Ok(redirect(l)), "/", "GET", &[]).0;
    assert_eq!(check("http://example.org/new"), Verdict::Pass);
    assert_eq!(check("http://example.org:80/new"), Verdict::Pass);
    assert!(matches!(
        check("http://example.org:8080/new"),
        Verdict::NotYet(_)
    ));
    assert!(matches!(
        check("https://example.org/new"),
        Verdict::NotYet(_)
    ));
}

#[test]
fn response_protocol_is_compared_when_expected() {
    let mut expect = expect_backend("b1");
    expect.protocol = Some("HTTP/2.0".into());
    let h1 = check_response(&expect, &Ok(echo("b1-abc-def", "/p")), "/p", "GET", &[]).0;
    assert!(matches!(h1, Verdict::NotYet(ref why) if why.contains("HTTP/1.1")));
    let mut h2 = echo("b1-abc-def", "/p");
    h2.version = "HTTP/2.0".into();
    assert_eq!(
        check_response(&expect, &Ok(h2), "/p", "GET", &[]).0,
        Verdict::Pass
    );
}

#[test]
fn either_timeout_status_answers_an_expected_timeout() {
    let expect = Expect {
        status: Some(StatusSet::One(504)),
        protocol: Some("HTTP/2.0".into()),
        ..Expect::default()
    };
    let timeout = |status| Received {
        status,
        version: "HTTP/1.1".into(),
        headers: Vec::new(),
        body: String::new(),
    };
    for status in [408, 504] {
        assert_eq!(
            check_response(&expect, &Ok(timeout(status)), "/", "GET", &[]).0,
            Verdict::Pass,
            "{status} passes without further checks"
        );
    }
    assert!(matches!(
        check_response(&expect, &Ok(timeout(503)), "/", "GET", &[]).0,
        Verdict::NotYet(_)
    ));
}
