use super::*;

fn final_answer(raw: &str, head_request: bool) -> Answer {
    match parse_head(raw.as_bytes(), head_request) {
        Ok(Some(AnswerHead::Final(answer))) => answer,
        other => panic!("expected a final answer head, got {other:?}"),
    }
}

fn framing_of(raw: &str) -> Framing {
    final_answer(raw, false).framing
}

#[test]
fn a_declared_length_frames_the_body() {
    let raw = "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n";
    let answer = final_answer(raw, false);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.head_len, raw.len());
    assert_eq!(answer.framing, Framing::Length(12));
    assert!(answer.keep_alive);
}

#[test]
fn identical_repeated_lengths_are_one_length() {
    let raw = "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\ncontent-length: 5\r\n\r\n";
    assert_eq!(framing_of(raw), Framing::Length(5));
}

#[test]
fn conflicting_or_malformed_lengths_are_errors() {
    for value in ["5, 6", "+5", "-1", "1e3", "", "18446744073709551616"] {
        let raw = format!("HTTP/1.1 200 OK\r\nContent-Length: {value}\r\n\r\n");
        assert!(
            parse_head(raw.as_bytes(), false).is_err(),
            "Content-Length {value:?} accepted"
        );
    }
    let twice = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n";
    assert!(parse_head(twice.as_bytes(), false).is_err());
}

#[test]
fn the_last_transfer_coding_decides_chunked_framing() {
    let raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n";
    assert_eq!(framing_of(raw), Framing::Chunked);
    let raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n";
    assert_eq!(framing_of(raw), Framing::UntilClose);
}

#[test]
fn an_answer_with_both_framings_is_chunked_and_ends_its_connection() {
    let raw = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
    let answer = final_answer(raw, false);
    assert_eq!(answer.framing, Framing::Chunked);
    assert!(!answer.keep_alive);
}

#[test]
fn an_unframed_answer_runs_until_the_connection_closes() {
    assert_eq!(framing_of("HTTP/1.1 200 OK\r\n\r\n"), Framing::UntilClose);
}

#[test]
fn answers_without_a_body_ignore_their_declared_length() {
    let head = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
    assert_eq!(final_answer(head, true).framing, Framing::Empty);
    for status in ["204 No Content", "304 Not Modified"] {
        let raw = format!("HTTP/1.1 {status}\r\nContent-Length: 10\r\n\r\n");
        assert_eq!(framing_of(&raw), Framing::Empty);
    }
}

#[test]
fn informational_answers_are_skipped_but_switching_protocols_is_final() {
    let raw = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n";
    assert_eq!(
        parse_head(raw.as_bytes(), false).ok().flatten(),
        Some(AnswerHead::Informational(25))
    );
    let switched = final_answer("HTTP/1.1 101 Switching Protocols\r\n\r\n", false);
    assert_eq!(switched.framing, Framing::Empty);
    assert!(!switched.keep_alive);
}

#[test]
fn keep_alive_follows_the_version_and_the_connection_field() {
    let cases = [
        ("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true),
        (
            "HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n",
            false,
        ),
        (
            "HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n",
            false,
        ),
        ("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false),
        (
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
            true,
        ),
        (
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
        ),
    ];
    for (raw, keep) in cases {
        assert_eq!(final_answer(raw, false).keep_alive, keep, "{raw:?}");
    }
}

#[test]
fn a_partial_head_asks_for_more() {
    let partial = b"HTTP/1.1 200 OK\r\nContent-Le";
    assert_eq!(parse_head(partial, false).ok(), Some(None));
}

#[test]
fn malformed_heads_and_too_many_fields_are_errors() {
    assert!(parse_head(b"HTTP/1.1 2x0 OK\r\n\r\n", false).is_err());
    let mut many = String::from("HTTP/1.1 200 OK\r\n");
    for i in 0..=MAX_HEADERS {
        many.push_str(&format!("x-{i}: y\r\n"));
    }
    many.push_str("\r\n");
    assert!(parse_head(many.as_bytes(), false).is_err());
}

#[test]
fn a_copy_head_asking_to_close_is_not_pooled() {
    let mut head = RequestHeader::build("GET", b"/", None).expect("head");
    assert!(!request_closes(&head));
    head.insert_header("connection", "keep-alive, Close")
        .expect("header");
    assert!(request_closes(&head));
}

const CHUNKED: &[u8] = b"4;ext=1\r\nRust\r\n10\r\n0123456789abcdef\r\n0\r\nx-trailer: y\r\n\r\n";

#[test]
fn a_chunked_body_with_extensions_and_trailers_is_skipped_whole() {
    let mut buf = BytesMut::from(CHUNKED);
    buf.extend_from_slice(b"HTTP/1.1");
    assert!(Chunked::default().skip(&mut buf).expect("skip"));
    assert_eq!(&buf[..], b"HTTP/1.1", "what follows the body is left");
}

#[test]
fn a_chunked_body_arriving_byte_by_byte_ends_at_the_same_place() {
    let mut chunked = Chunked::default();
    let mut buf = BytesMut::new();
    for (i, byte) in CHUNKED.iter().enumerate() {
        buf.extend_from_slice(&[*byte]);
        let done = chunked.skip(&mut buf).expect("skip");
        assert_eq!(done, i == CHUNKED.len() - 1, "at byte {i}");
    }
    assert!(buf.is_empty());
}

#[test]
fn a_last_chunk_without_trailers_ends_at_its_empty_line() {
    let mut buf = BytesMut::from(&b"0\r\n\r\n"[..]);
    assert!(Chunked::default().skip(&mut buf).expect("skip"));
    assert!(buf.is_empty());
}

#[test]
fn chunk_data_longer_than_its_size_and_bad_sizes_are_errors() {
    let mut long = BytesMut::from(&b"2\r\nabc\r\n0\r\n\r\n"[..]);
    assert!(Chunked::default().skip(&mut long).is_err());
    let mut bad = BytesMut::from(&b"zz\r\n"[..]);
    assert!(Chunked::default().skip(&mut bad).is_err());
}
