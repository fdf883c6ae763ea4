//! Byte classes of RFC 9110/9112 as one lookup table: the guard looks at every byte of every
//! request head, so each test is a load and a mask, not a chain of comparisons.

/// `tchar` (RFC 9110 §5.6.2): methods, field names, transfer codings.
pub(super) const TCHAR: u8 = 1;
/// A reg-name byte of a host (RFC 3986: unreserved, sub-delims, `%`).
pub(super) const REG_NAME: u8 = 2;
/// CR, LF or NUL: the bytes that frame (or break) a head.
pub(super) const FRAMING: u8 = 4;
/// Not allowed in a field value: every control byte but HTAB, and DEL.
pub(super) const BAD_IN_VALUE: u8 = 8;
/// Not allowed in a request target: whitespace, control bytes, DEL.
pub(super) const BAD_IN_TARGET: u8 = 16;

const fn classify(b: u8) -> u8 {
    let mut class = 0;
    let alnum = b.is_ascii_alphanumeric();
    if alnum
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
    {
        class |= TCHAR;
    }
    if alnum
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b'%'
        )
    {
        class |= REG_NAME;
    }
    if matches!(b, b'\r' | b'\n' | 0) {
        class |= FRAMING;
    }
    if (b < b' ' && b != b'\t') || b == 0x7f {
        class |= BAD_IN_VALUE;
    }
    if b <= b' ' || b == 0x7f {
        class |= BAD_IN_TARGET;
    }
    class
}

const fn table() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = classify(i as u8);
        i += 1;
    }
    t
}

static TABLE: [u8; 256] = table();

/// Whether `b` is in any of the classes in `mask`.
#[inline(always)]
pub(super) fn is(b: u8, mask: u8) -> bool {
    TABLE[usize::from(b)] & mask != 0
}

/// Whether every byte of `bytes` is in `mask`.
#[inline]
pub(super) fn all(bytes: &[u8], mask: u8) -> bool {
    bytes.iter().all(|&b| is(b, mask))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_match_the_rfc_grammar() {
        assert!(all(b"GET", TCHAR) && all(b"x-Forwarded_For", TCHAR));
        assert!(!is(b':', TCHAR) && !is(b' ', TCHAR) && !is(b'"', TCHAR));
        assert!(all(b"example.com", REG_NAME) && !is(b'/', REG_NAME) && !is(b'@', REG_NAME));
        assert!(is(b'\r', FRAMING) && is(b'\n', FRAMING) && is(0, FRAMING) && !is(b'a', FRAMING));
        assert!(!is(b'\t', BAD_IN_VALUE) && is(1, BAD_IN_VALUE) && is(0x7f, BAD_IN_VALUE));
        assert!(!is(0x80, BAD_IN_VALUE) && !is(b' ', BAD_IN_VALUE));
        assert!(is(b' ', BAD_IN_TARGET) && is(b'\t', BAD_IN_TARGET) && !is(b'/', BAD_IN_TARGET));
    }
}
