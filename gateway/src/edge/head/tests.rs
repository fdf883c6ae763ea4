use super::*;

fn verdict(head: &str) -> Result<HeadInfo, Violation> {
    check(head.as_bytes(), &EdgeLimits::default())
}

fn refused(head: &str) -> Violation {
    match verdict(head) {
        Err(v) => v,
        Ok(info) => panic!("accepted {head:?} as {info:?}"),
    }
}

#[test]
fn ordinary_requests_pass_with_their_body_framing() {
    let get = verdict("GET /a?b=c HTTP/1.1\r\nHost: example.com\r\n\r\n").expect("passes");
    assert_eq!(get.body, BodyFraming::None);
    let post =
        verdict("POST / HTTP/1.1\r\nHost: a:8080\r\nContent-Length: 5\r\n\r\n").expect("passes");
    assert_eq!(post.body, BodyFraming::Length(5));
    let chunked =
        verdict("PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n").expect("passes");
    assert_eq!(chunked.body, BodyFraming::Chunked);
    let http10 = verdict("GET / HTTP/1.0\r\n\r\n").expect("HTTP/1.0 needs no Host");
    assert_eq!(http10.body, BodyFraming::None);
    let ws =
        verdict("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            .expect("passes");
    assert!(ws.upgrade);
    verdict("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").expect("asterisk form for OPTIONS");
    verdict("GET http://a/x HTTP/1.1\r\nHost: a\r\n\r\n").expect("absolute form");
    verdict("GET / HTTP/1.1\r\nHost: [::1]:80\r\nX-Empty:\r\n\r\n")
        .expect("IPv6 literal, empty value");
    verdict("GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n")
        .expect("100-continue");
}

#[test]
fn ambiguous_body_framing_is_refused() {
    let cases = [
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", Violation::ContentLengthWithTransferEncoding),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", Violation::ContentLengthWithTransferEncoding),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", Violation::BadContentLength),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", Violation::BadContentLength),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", Violation::BadContentLength),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", Violation::BadContentLength),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", Violation::BadContentLength),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", Violation::BadContentLength),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", Violation::BadContentLength),
        ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", Violation::TransferEncodingOnHttp10),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", Violation::UnsupportedTransferEncoding),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", Violation::BadTransferEncoding),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", Violation::BadTransferEncoding),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", Violation::BadTransferEncoding),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", Violation::BadTransferEncoding),
    ];
    for (head, want) in cases {
        assert_eq!(refused(head), want, "{head:?}");
    }
}

#[test]
fn malformed_lines_are_refused() {
    let cases = [
        (
            "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
            Violation::BadRequestLine,
        ),
        (
            "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
            Violation::BadRequestLine,
        ),
        (
            "GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n",
            Violation::BadRequestLine,
        ),
        (
            "GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n",
            Violation::BadRequestLine,
        ),
        (
            "GET /\tx HTTP/1.1\r\nHost: a\r\n\r\n",
            Violation::BadRequestLine,
        ),
        (
            "GET a HTTP/1.1\r\nHost: a\r\n\r\n",
            Violation::BadRequestLine,
        ),
        (
            "GET * HTTP/1.1\r\nHost: a\r\n\r\n",
            Violation::BadRequestLine,
        ),
        (
            "G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
            Violation::BadRequestLine,
        ),
        ("GET /\r\n\r\n", Violation::BadRequestLine),
        ("GET / HTTP/2.0\r\nHost: a\r\n\r\n", Violation::BadVersion),
        ("GET / HTTP/1.2\r\nHost: a\r\n\r\n", Violation::BadVersion),
        (
            "GET / http/1.1\r\nHost: a\r\n\r\n",
            Violation::BadRequestLine,
        ),
        ("GET / HTTP/1.1\r\nHost : a\r\n\r\n", Violation::BadHeader),
        ("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", Violation::BadHeader),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n",
            Violation::BadHeader,
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n",
            Violation::BadHeader,
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",
            Violation::BareCrLf,
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n",
            Violation::BadHeader,
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nX: a\nY: b\r\n\r\n",
            Violation::BareCrLf,
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nX: a\rY: b\r\n\r\n",
            Violation::BareCrLf,
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n  folded\r\n\r\n",
            Violation::ObsFold,
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tfolded\r\n\r\n",
            Violation::ObsFold,
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n",
            Violation::UnsupportedExpect,
        ),
    ];
    for (head, want) in cases {
        assert_eq!(refused(head), want, "{head:?}");
    }
}

#[test]
fn host_must_be_one_uri_host_with_an_optional_port() {
    let cases = [
        ("GET / HTTP/1.1\r\n\r\n", Violation::MissingHost),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
            Violation::DuplicateHost,
        ),
        ("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", Violation::BadHost),
        ("GET / HTTP/1.1\r\nHost: a@b\r\n\r\n", Violation::BadHost),
        ("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", Violation::BadHost),
        ("GET / HTTP/1.1\r\nHost:\r\n\r\n", Violation::BadHost),
        ("GET / HTTP/1.1\r\nHost: a:b\r\n\r\n", Violation::BadHost),
        (
            "GET / HTTP/1.1\r\nHost: a:123456\r\n\r\n",
            Violation::BadHost,
        ),
        ("GET / HTTP/1.1\r\nHost: [zz]\r\n\r\n", Violation::BadHost),
        ("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", Violation::BadHost),
        ("GET / HTTP/1.1\r\nHost: a?b\r\n\r\n", Violation::BadHost),
        (
            "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n",
            Violation::BadRequestLine,
        ),
        (
            "GET http://a@b/ HTTP/1.1\r\nHost: a\r\n\r\n",
            Violation::BadRequestLine,
        ),
    ];
    for (head, want) in cases {
        assert_eq!(refused(head), want, "{head:?}");
    }
}

#[test]
fn limits_answer_414_and_431() {
    let limits = EdgeLimits {
        max_request_line: 64,
        max_header_bytes: 128,
        max_header_fields: 3,
        ..EdgeLimits::default()
    };
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(64));
    assert_eq!(
        check(long_uri.as_bytes(), &limits),
        Err(Violation::UriTooLong)
    );
    let big = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
        "b".repeat(128)
    );
    assert_eq!(
        check(big.as_bytes(), &limits),
        Err(Violation::HeaderTooLarge)
    );
    let many = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    assert_eq!(
        check(many.as_bytes(), &limits),
        Err(Violation::TooManyHeaders)
    );
    let three = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
    assert!(check(three.as_bytes(), &limits).is_ok());
}

mod fuzz {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Whatever the bytes, the check answers (never panics), and what it passes has one
        /// framing: never both lengths, never a control byte in a line.
        #[test]
        fn any_bytes_get_a_verdict(head in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut bytes = head;
            bytes.extend_from_slice(b"\r\n\r\n");
            if check(&bytes, &EdgeLimits::default()).is_ok() {
                let text = &bytes[..bytes.len() - 4];
                prop_assert!(!text.contains(&0));
                let lower = text.to_ascii_lowercase();
                let has = |needle: &[u8]| lower.windows(needle.len()).any(|w| w == needle);
                prop_assert!(!(has(b"\r\ncontent-length:") && has(b"\r\ntransfer-encoding:")));
            }
        }

        /// Heads built from plausible pieces: the verdict never panics and a passing head keeps
        /// exactly one Host on HTTP/1.1.
        #[test]
        fn structured_heads_get_a_verdict(
            method in "(GET|POST|PUT|OPTIONS|CONNECT|G T)",
            target in "(/[a-z%?=&]{0,8}|\\*|http://[a-z]{1,4}/|[a-z]{1,4}:80| /)",
            version in "(HTTP/1\\.1|HTTP/1\\.0|HTTP/2\\.0|HTTP/1)",
            fields in proptest::collection::vec("(Host|Content-Length|Transfer-Encoding|X-A|Host )(:| :)( ?)(a|5|chunked|gzip|a/b|-1|5, 5|\t)", 0..6),
        ) {
            let mut head = format!("{method} {target} {version}\r\n");
            for f in &fields {
                head.push_str(f);
                head.push_str("\r\n");
            }
            head.push_str("\r\n");
            if check(head.as_bytes(), &EdgeLimits::default()).is_ok() && version == "HTTP/1.1" {
                let hosts = fields.iter().filter(|f| f.starts_with("Host:")).count();
                prop_assert_eq!(hosts, 1);
            }
        }
    }
}
