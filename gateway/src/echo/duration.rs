//! Go `time.ParseDuration` syntax (`300ms`, `1.5s`, `1h2m`), used by echo-basic's `delay` and `delayRetry`.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("invalid duration {0:?}")]
    Invalid(String),
    #[error("missing unit in duration {0:?}")]
    MissingUnit(String),
    #[error("unknown unit {unit:?} in duration {input:?}")]
    UnknownUnit { unit: String, input: String },
    #[error("duration {0:?} is out of range")]
    Overflow(String),
}

/// Negative durations clamp to zero: every caller sleeps for them.
pub fn parse_go_duration(input: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError::Invalid(input.to_owned());
    let (negative, mut rest) = match input.as_bytes().first() {
        Some(b'-') => (true, &input[1..]),
        Some(b'+') => (false, &input[1..]),
        _ => (false, input),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total_nanos: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(invalid());
        }
        let value: f64 = number.parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale = match unit {
            "" => return Err(DurationError::MissingUnit(input.to_owned())),
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            other => {
                return Err(DurationError::UnknownUnit {
                    unit: other.to_owned(),
                    input: input.to_owned(),
                })
            }
        };
        total_nanos += value * scale;
    }
    // Go's limit is i64 nanoseconds (about 292 years).
    if !total_nanos.is_finite() || total_nanos > i64::MAX as f64 {
        return Err(DurationError::Overflow(input.to_owned()));
    }
    if negative {
        return Ok(Duration::ZERO);
    }
    Ok(Duration::from_nanos(total_nanos.round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_duration_forms() {
        for (input, want) in [
            ("0", Duration::ZERO),
            ("300ms", Duration::from_millis(300)),
            ("1.5s", Duration::from_millis(1500)),
            ("1h2m3s", Duration::from_secs(3723)),
            ("10us", Duration::from_micros(10)),
            ("-1s", Duration::ZERO),
        ] {
            assert_eq!(parse_go_duration(input), Ok(want), "{input}");
        }
    }

    #[test]
    fn rejects_malformed_durations() {
        // Only the kind of error is checked; the placeholders' fields are not compared.
        let none = String::new;
        for (input, want) in [
            ("", DurationError::Invalid(none())),
            ("5", DurationError::MissingUnit(none())),
            (
                "5d",
                DurationError::UnknownUnit {
                    unit: none(),
                    input: none(),
                },
            ),
            ("1..2s", DurationError::Invalid(none())),
            ("s", DurationError::Invalid(none())),
            ("99999999999h", DurationError::Overflow(none())),
        ] {
            let got = parse_go_duration(input);
            assert!(
                matches!(&got, Err(e) if std::mem::discriminant(e) == std::mem::discriminant(&want)),
                "{input}: {got:?}, want {want:?}"
            );
        }
    }
}
