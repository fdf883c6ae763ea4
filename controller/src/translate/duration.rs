//! The Gateway API duration format: `^([0-9]{1,5}(h|m|s|ms)){1,4}$`, e.g. `1h30m`, `500ms`.

use std::time::Duration;

/// `None` when `s` is not a valid Gateway API duration.
pub fn parse(s: &str) -> Option<Duration> {
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut parts = 0;
    let mut total = Duration::ZERO;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let digits = s.get(start..i)?;
        if digits.is_empty() || digits.len() > 5 {
            return None;
        }
        let n: u64 = digits.parse().ok()?;
        let rest = s.get(i..)?;
        let (unit, len) = if rest.starts_with("ms") {
            (Duration::from_millis(n), 2)
        } else if rest.starts_with('h') {
            (Duration::from_secs(n * 3600), 1)
        } else if rest.starts_with('m') {
            (Duration::from_secs(n * 60), 1)
        } else if rest.starts_with('s') {
            (Duration::from_secs(n), 1)
        } else {
            return None;
        };
        i += len;
        total += unit;
        parts += 1;
    }
    (1..=4).contains(&parts).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_gateway_api_durations() {
        assert_eq!(parse("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse("1h1m1s1ms"), Some(Duration::from_millis(3_661_001)));
        assert_eq!(parse("0s"), Some(Duration::ZERO));
    }

    #[test]
    fn rejects_other_formats() {
        for bad in [
            "",
            "10",
            "1.5s",
            "s",
            "123456s",
            "1h1m1s1ms1h",
            "10us",
            "-1s",
            "1d",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
