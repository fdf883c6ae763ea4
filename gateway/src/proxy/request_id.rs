//! The request id: the client's `x-request-id` when it is a sane one, else a fresh one; set on
//! the request head before routing, so the backend and every mirror copy get the same id.

use http::HeaderValue;
use pingora_http::RequestHeader;

use crate::access_log::REQUEST_ID;

/// Longer incoming ids are replaced: a log field and a header the backend gets should stay small.
pub(super) const MAX_LEN: usize = 128;

/// Whether an incoming id is kept: 1 to [`MAX_LEN`] bytes of visible ASCII (no spaces, no
/// control characters, nothing a log line or a backend could misread).
pub(super) fn is_valid(value: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&value.len()) && value.iter().all(|b| b.is_ascii_graphic())
}

/// 128 random bits as 32 lowercase hex digits: unique without coordination, and cheap (the
/// thread-local generator, no system call, and no `fmt`: it was 0.8 k instructions a request).
pub(super) fn generate() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bits = rand::random::<u128>();
    let mut id = [0u8; 32];
    for (i, digit) in id.iter_mut().enumerate() {
        let nibble = (bits >> (124 - 4 * i)) & 0xf;
        *digit = HEX[nibble as usize];
    }
    // Hex digits are always a valid header value.
    HeaderValue::from_bytes(&id).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// Keeps a valid `x-request-id` (the first, when several were sent) or replaces it with a
/// generated one; returns the id now on the head.
pub(super) fn ensure(head: &mut RequestHeader) -> HeaderValue {
    let mut sent = head.headers.get_all(&REQUEST_ID).iter();
    let kept = match (sent.next(), sent.next()) {
        (Some(v), None) if is_valid(v.as_bytes()) => return v.clone(),
        (Some(v), Some(_)) if is_valid(v.as_bytes()) => v.clone(),
        _ => generate(),
    };
    // A static wire spelling: from a `HeaderName` Pingora would copy the name to title-case it.
    let wire = bytes::Bytes::from_static(b"x-request-id");
    if let Err(e) = head.insert_header(wire, kept.clone()) {
        tracing::debug!(error = %e, "cannot set x-request-id");
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head_with(ids: &[&[u8]]) -> RequestHeader {
        let mut head = RequestHeader::build("GET", b"/", None).expect("head");
        for id in ids {
            let value = HeaderValue::from_bytes(id).expect("header value");
            head.append_header(REQUEST_ID, value).expect("append");
        }
        head
    }

    #[test]
    fn a_visible_ascii_id_is_kept() {
        let mut head = head_with(&[b"abc-123_XYZ.{}"]);
        assert_eq!(ensure(&mut head), "abc-123_XYZ.{}");
        assert_eq!(head.headers.get_all(&REQUEST_ID).iter().count(), 1);
    }

    #[test]
    fn a_missing_id_is_generated_as_32_hex_digits() {
        let mut head = head_with(&[]);
        let id = ensure(&mut head);
        assert_eq!(id.len(), 32);
        assert!(id.as_bytes().iter().all(u8::is_ascii_hexdigit));
        assert_eq!(head.headers.get(&REQUEST_ID), Some(&id));
        assert_ne!(ensure(&mut head_with(&[])), id, "ids differ");
    }

    #[test]
    fn empty_long_spaced_or_non_ascii_ids_are_replaced() {
        let long = vec![b'a'; MAX_LEN + 1];
        for bad in [&b""[..], &long, b"a b", b"caf\xc3\xa9", b"tab\there"] {
            let mut head = head_with(&[bad]);
            let id = ensure(&mut head);
            assert_eq!(id.len(), 32, "{bad:?} replaced");
            assert_eq!(head.headers.get_all(&REQUEST_ID).iter().count(), 1);
        }
        assert!(is_valid(&[b'a'; MAX_LEN]));
    }

    #[test]
    fn of_several_ids_the_first_valid_one_is_kept_alone() {
        let mut head = head_with(&[b"first", b"second"]);
        assert_eq!(ensure(&mut head), "first");
        assert_eq!(head.headers.get_all(&REQUEST_ID).iter().count(), 1);
    }
}
