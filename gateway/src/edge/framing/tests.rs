use super::*;

fn framer() -> Framer {
    Framer::new(EdgeLimits::default())
}

/// Runs the framer over `input` as one read; returns the bytes passed and the last step.
fn run(framer: &mut Framer, input: &[u8]) -> (Vec<u8>, Step) {
    let mut passed = Vec::new();
    let mut at = 0;
    loop {
        match framer.advance(&input[at..]) {
            Step::Pass(n) if n > 0 => {
                passed.extend_from_slice(&input[at..at + n]);
                at += n;
                if at == input.len() {
                    return (passed, Step::NeedMore);
                }
            }
            Step::Discard(n) => at += n,
            step => return (passed, step),
        }
    }
}

#[test]
fn pipelined_requests_are_cut_at_their_boundaries() {
    let mut f = framer();
    let one = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
    let two = b"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n";
    let input = [&one[..], &two[..]].concat();
    assert_eq!(f.advance(&input), Step::Pass(one.len() - 3));
    assert_eq!(
        f.advance(&input[one.len() - 3..]),
        Step::Pass(3),
        "the body, not a byte more"
    );
    assert_eq!(f.advance(&input[one.len()..]), Step::Pass(two.len()));
    assert_eq!(f.heads(), 2);
    assert!(f.at_message_start());
}

#[test]
fn a_head_split_across_reads_passes_once_complete() {
    let mut f = framer();
    let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    for end in 1..head.len() {
        assert_eq!(f.advance(&head[..end]), Step::NeedMore, "{end}");
    }
    assert_eq!(f.advance(head), Step::Pass(head.len()));
}

#[test]
fn empty_lines_before_a_request_are_dropped() {
    let mut f = framer();
    assert_eq!(f.advance(b"\r\n\r\nGET"), Step::Discard(4));
}

#[test]
fn chunked_bodies_pass_whole_with_extensions_and_trailers() {
    let mut f = framer();
    let msg = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;name=v\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\nGET";
    let (passed, step) = run(&mut f, msg);
    assert_eq!(passed, &msg[..msg.len() - 3]);
    assert_eq!(step, Step::NeedMore, "the next head waits for its end");
}

#[test]
fn chunked_framing_byte_by_byte_matches_one_read() {
    let msg = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n0\r\n\r\n";
    let head_len = msg.windows(4).position(|w| w == b"\r\n\r\n").expect("head") + 4;
    let mut f = framer();
    assert_eq!(f.advance(msg), Step::Pass(head_len));
    for i in head_len..msg.len() {
        assert_eq!(f.advance(&msg[i..=i]), Step::Pass(1), "byte {i}");
    }
    assert!(f.at_message_start());
}

#[test]
fn malformed_chunk_framing_is_refused() {
    let head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    let cases = [
        "5\nhello\r\n0\r\n\r\n",
        "5\r\nhello\n0\r\n\r\n",
        "5\r\nhelloXX0\r\n\r\n",
        "x\r\n",
        "\r\n",
        "-5\r\n",
        "5 5\r\n",
        "11111111111111111\r\n",
        "0\r\n\r\r\n",
        "0\r\nbad\ntrailer\r\n\r\n",
        "5;\x01\r\n",
    ];
    for body in cases {
        let mut f = framer();
        let input = format!("{head}{body}");
        let (_, step) = run(&mut f, input.as_bytes());
        assert!(
            matches!(step, Step::Refuse(Violation::BadChunk)),
            "{body:?} gave {step:?}"
        );
    }
}

#[test]
fn bare_line_feeds_are_refused_before_the_head_ends() {
    let mut f = framer();
    assert_eq!(
        f.advance(b"GET / HTTP/1.1\nHost: a\n"),
        Step::Refuse(Violation::BareCrLf)
    );
    assert_eq!(
        f.advance(b"anything"),
        Step::Refuse(Violation::BareCrLf),
        "refusal sticks"
    );
}

#[test]
fn heads_past_the_limits_are_refused_without_waiting_for_their_end() {
    let limits = EdgeLimits {
        max_request_line: 32,
        max_header_bytes: 64,
        ..EdgeLimits::default()
    };
    let mut f = Framer::new(limits);
    let long_line = format!("GET /{}", "a".repeat(40));
    assert_eq!(
        f.advance(long_line.as_bytes()),
        Step::Refuse(Violation::UriTooLong)
    );
    let mut f = Framer::new(limits);
    let big = format!("GET / HTTP/1.1\r\nX: {}", "b".repeat(80));
    assert_eq!(
        f.advance(big.as_bytes()),
        Step::Refuse(Violation::HeaderTooLarge)
    );
}

#[test]
fn an_upgrade_holds_the_bytes_until_its_response() {
    let mut f = framer();
    let head = b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n";
    assert_eq!(f.advance(head), Step::Pass(head.len()));
    assert_eq!(f.advance(b"\x81\x00"), Step::Hold);
    f.upgrade_answered(true);
    assert_eq!(f.advance(b"\x81\x00"), Step::Pass(2));

    let mut refused = framer();
    refused.advance(head);
    refused.upgrade_answered(false);
    // Not switched: the bytes are read as the next request (and NUL is refused).
    assert_eq!(
        refused.advance(b"\x81\x00"),
        Step::Refuse(Violation::BareCrLf)
    );
}

mod fuzz {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

        /// A head checked whole on the quick path gets the verdict the byte-by-byte scan gives
        /// it: the same step (the same violation when refused) and the same state after it.
        #[test]
        fn the_quick_path_agrees_with_the_byte_scan(
            line in "(GET|POST|G T) (/[a-z]{0,6}|http://a/|x) HTTP/1\\.(1|0)",
            fields in proptest::collection::vec(
                "(Host|Content-Length|Transfer-Encoding|Upgrade|X-A)(:| :)( ?)(a|5|chunked|ws|\t)",
                0..4,
            ),
            mutations in proptest::collection::vec(
                (any::<usize>(), prop::sample::select(vec![b'\r', b'\n', 0, b' ', b':', b'a'])),
                0..3,
            ),
            tail in prop::sample::select(vec!["", "next"]),
            keep in prop::option::of(any::<usize>()),
            max_request_line in prop::sample::select(vec![8, 30, 8 * 1024]),
            max_header_bytes in prop::sample::select(vec![10, 64 * 1024]),
        ) {
            let mut input = format!("{line}\r\n").into_bytes();
            for f in &fields {
                input.extend_from_slice(f.as_bytes());
                input.extend_from_slice(b"\r\n");
            }
            input.extend_from_slice(b"\r\n");
            input.extend_from_slice(tail.as_bytes());
            for (at, byte) in mutations {
                input.insert(at % (input.len() + 1), byte);
            }
            if let Some(keep) = keep {
                input.truncate(keep % (input.len() + 1));
            }
            let limits = EdgeLimits { max_request_line, max_header_bytes, ..EdgeLimits::default() };
            let mut quick = Framer::new(limits);
            let mut scan = Framer::new(limits);
            let step = quick.advance(&input);
            if !matches!(step, Step::Discard(_)) {
                let mut expected = scan.scan_head(&input, 0, None);
                if let Step::Refuse(v) = expected {
                    scan.state = State::Refused(v);
                    expected = Step::Refuse(v);
                }
                prop_assert_eq!(step, expected);
                prop_assert_eq!(quick.state, scan.state);
                prop_assert_eq!(quick.heads(), scan.heads());
            }
        }

        /// However a byte stream is cut into reads, the framer passes the same bytes and
        /// reaches the same verdict; it never passes more than it was given.
        #[test]
        fn the_verdict_does_not_depend_on_how_reads_are_cut(
            stream in proptest::collection::vec(
                prop_oneof![
                    Just(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec()),
                    Just(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi".to_vec()),
                    Just(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n".to_vec()),
                    proptest::collection::vec(any::<u8>(), 0..16),
                ],
                1..6,
            ),
            cuts in proptest::collection::vec(1usize..40, 1..20),
        ) {
            let input: Vec<u8> = stream.concat();
            let mut whole = framer();
            let (expected, verdict) = run(&mut whole, &input);

            let mut f = framer();
            let mut pending: Vec<u8> = Vec::new();
            let mut passed: Vec<u8> = Vec::new();
            let mut offset = 0;
            let mut cut = cuts.iter().cycle();
            let mut last = Step::NeedMore;
            while offset < input.len() {
                let n = (*cut.next().unwrap_or(&1)).min(input.len() - offset);
                pending.extend_from_slice(&input[offset..offset + n]);
                offset += n;
                loop {
                    match f.advance(&pending) {
                        Step::Pass(k) if k > 0 => {
                            prop_assert!(k <= pending.len());
                            passed.extend(pending.drain(..k));
                        }
                        Step::Discard(k) => { pending.drain(..k); }
                        step => { last = step; break; }
                    }
                    if pending.is_empty() { last = Step::NeedMore; break; }
                }
                if matches!(last, Step::Refuse(_) | Step::Hold) { break; }
            }
            prop_assert_eq!(&passed, &expected);
            if let Step::Refuse(_) = verdict {
                prop_assert!(matches!(last, Step::Refuse(_)));
            }
        }
    }
}
