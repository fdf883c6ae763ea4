//! Which rendering of `/config` a request's `Accept` header asks for.

/// A rendering of the dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Yaml,
    Json,
}

/// The `Accept` header names no type the dump can be rendered as.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct NotAcceptable;

/// YAML unless asked otherwise: `/config` was YAML before it held the snapshot, and YAML is what
/// a person reading `curl` output wants; scripts send `Accept: application/json`.
pub(crate) const DEFAULT: Format = Format::Yaml;

/// The preferred format among the media ranges of `accept` (RFC 9110 §12.5.1): the highest
/// `q` wins, the earlier range on a tie; `q=0` refuses a type. No header, or one that is not
/// visible ASCII, means no preference.
pub(crate) fn negotiate(accept: Option<&[u8]>) -> Result<Format, NotAcceptable> {
    let Some(text) = accept.and_then(|a| std::str::from_utf8(a).ok()) else {
        return Ok(DEFAULT);
    };
    if text.trim().is_empty() {
        return Ok(DEFAULT);
    }
    let mut best: Option<(u16, Format)> = None;
    for range in text.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(quality)
            .unwrap_or(1000);
        let Some(format) = format_of(&media) else {
            continue;
        };
        if q > 0 && best.is_none_or(|(b, _)| q > b) {
            best = Some((q, format));
        }
    }
    best.map(|(_, f)| f).ok_or(NotAcceptable)
}

fn format_of(media: &str) -> Option<Format> {
    match media {
        "application/json" => Some(Format::Json),
        "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml" => {
            Some(Format::Yaml)
        }
        "*/*" | "application/*" => Some(DEFAULT),
        _ => None,
    }
}

/// `q` in thousandths; `None` when it is not a valid qvalue.
fn quality(q: &str) -> Option<u16> {
    let value: f32 = q.trim().parse().ok()?;
    if !(0.0..=1.0).contains(&value) {
        return None;
    }
    // In 0..=1000 by the check above, so the cast cannot wrap.
    Some((value * 1000.0).round() as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(accept: &str) -> Result<Format, NotAcceptable> {
        negotiate(Some(accept.as_bytes()))
    }

    #[test]
    fn json_and_yaml_are_chosen_by_name_and_quality() {
        assert_eq!(of("application/json"), Ok(Format::Json));
        assert_eq!(of("application/yaml"), Ok(Format::Yaml));
        assert_eq!(of("text/yaml, application/json"), Ok(Format::Yaml));
        assert_eq!(
            of("application/yaml;q=0.5, application/json"),
            Ok(Format::Json)
        );
        assert_eq!(of("Application/JSON; charset=utf-8"), Ok(Format::Json));
    }

    #[test]
    fn no_preference_gets_yaml() {
        assert_eq!(negotiate(None), Ok(Format::Yaml));
        assert_eq!(of("*/*"), Ok(Format::Yaml));
        assert_eq!(
            of("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
            Ok(Format::Yaml),
            "a browser"
        );
    }

    #[test]
    fn only_other_types_or_refusals_are_not_acceptable() {
        assert_eq!(of("text/html"), Err(NotAcceptable));
        assert_eq!(of("application/json;q=0"), Err(NotAcceptable));
        assert_eq!(of("text/plain, application/xml"), Err(NotAcceptable));
    }
}
