//! Field-value syntax of RFC 9110 that several parts of the proxy read the same way: the
//! client-side guard, the proxy's own header handling, and the mirror's discarding reader.

/// The elements of a comma-separated list value (RFC 9110 §5.6.1), whitespace trimmed and empty
/// elements skipped: `Connection`, `Transfer-Encoding` and the like.
pub fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|element| !element.is_empty())
}

/// A `Content-Length` value (RFC 9110 §8.6): `1*DIGIT` and nothing else, no sign, no list, no
/// whitespace inside. At most 19 digits, which always fit a u64 (no body is 10 EB long).
pub fn content_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        value
            .iter()
            .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_elements_are_trimmed_and_empty_ones_skipped() {
        let elements: Vec<&[u8]> = list_elements(b" close ,, Keep-Alive\t,").collect();
        assert_eq!(elements, [&b"close"[..], &b"Keep-Alive"[..]]);
    }

    #[test]
    fn a_content_length_is_up_to_nineteen_digits() {
        assert_eq!(content_length(b"0"), Some(0));
        assert_eq!(
            content_length(b"9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        for bad in [
            &b""[..],
            b"10000000000000000000",
            b"+5",
            b"-1",
            b"1e3",
            b"5 ",
            b"5,5",
        ] {
            assert_eq!(content_length(bad), None, "{bad:?}");
        }
    }
}
