//! JSON bodies compared as values, with some fields left out (RFC 6901 JSON Pointers).

use serde_json::Value;

/// Parses a whole body; `None` when it is not JSON.
pub(super) fn parse(chunks: &[bytes::Bytes]) -> Option<Value> {
    let whole: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
    serde_json::from_slice(&whole).ok()
}

/// Removes what `pointer` designates from `value`, if it is there. `""` (the whole document)
/// removes nothing: ignoring everything is not a comparison.
pub(super) fn remove(value: &mut Value, pointer: &str) {
    let Some(rest) = pointer.strip_prefix('/') else {
        return;
    };
    let tokens: Vec<String> = rest.split('/').map(unescape).collect();
    let Some((last, parents)) = tokens.split_last() else {
        return;
    };
    let mut target = value;
    for token in parents {
        let next = match target {
            Value::Object(map) => map.get_mut(token.as_str()),
            Value::Array(items) => index(token).and_then(|i| items.get_mut(i)),
            _ => None,
        };
        let Some(next) = next else { return };
        target = next;
    }
    match target {
        Value::Object(map) => {
            map.remove(last.as_str());
        }
        Value::Array(items) => {
            if let Some(i) = index(last).filter(|i| *i < items.len()) {
                items.remove(i);
            }
        }
        _ => {}
    }
}

/// `~1` is `/` and `~0` is `~`, in that order (RFC 6901 §4).
fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// An array index as RFC 6901 writes it: digits, no leading zero.
fn index(token: &str) -> Option<usize> {
    if token.is_empty() || (token.len() > 1 && token.starts_with('0')) {
        return None;
    }
    if !token.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    token.parse().ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn without(mut value: Value, pointer: &str) -> Value {
        remove(&mut value, pointer);
        value
    }

    #[test]
    fn a_pointer_removes_a_nested_field() {
        let v = json!({"a": {"b": 1, "c": 2}});
        assert_eq!(without(v, "/a/b"), json!({"a": {"c": 2}}));
    }

    #[test]
    fn a_pointer_indexes_arrays() {
        let v = json!({"a": [{"ts": 1, "x": 2}, {"ts": 3}]});
        assert_eq!(without(v, "/a/0/ts"), json!({"a": [{"x": 2}, {"ts": 3}]}));
    }

    #[test]
    fn escaped_tokens_name_keys_with_slash_and_tilde() {
        let v = json!({"a/b": 1, "m~n": 2, "k": 3});
        let v = without(without(v, "/a~1b"), "/m~0n");
        assert_eq!(v, json!({"k": 3}));
    }

    #[test]
    fn a_missing_path_or_the_whole_document_removes_nothing() {
        let v = json!({"a": [1]});
        assert_eq!(without(v.clone(), "/a/5"), v);
        assert_eq!(without(v.clone(), "/x/y"), v);
        assert_eq!(without(v.clone(), "/a/01"), v);
        assert_eq!(without(v.clone(), ""), v);
    }
}
