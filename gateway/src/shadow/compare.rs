//! The comparison itself, pure: the first difference in the order status, headers, body decides.

use http::HeaderName;
use sluice_controller::snapshot::Comparison;

use super::observe::{JsonBody, Observation};
use super::{json, ShadowResult};

/// What comparing two complete answers found.
#[derive(Debug)]
pub struct Verdict {
    pub result: ShadowResult,
    /// The compared headers whose values differ (names only: values may be credentials).
    pub headers: Vec<HeaderName>,
}

pub(super) fn compare(
    comparison: &Comparison,
    primary: &Observation,
    mirror: &Observation,
) -> Verdict {
    let headers: Vec<HeaderName> = comparison
        .headers
        .iter()
        .enumerate()
        .filter(|(i, _)| primary.headers.get(*i) != mirror.headers.get(*i))
        .map(|(_, name)| name.clone())
        .collect();
    let result = if comparison.status && primary.status != mirror.status {
        ShadowResult::StatusMismatch
    } else if !headers.is_empty() {
        ShadowResult::HeaderMismatch
    } else {
        bodies(comparison, primary, mirror)
    };
    Verdict { result, headers }
}

fn bodies(comparison: &Comparison, primary: &Observation, mirror: &Observation) -> ShadowResult {
    if !comparison.body {
        return ShadowResult::Match;
    }
    if let (Some(p), Some(m)) = (&primary.json, &mirror.json) {
        if p.over_cap || m.over_cap {
            return ShadowResult::NotCompared;
        }
        if let Some(equal) = json_equal(&comparison.ignore_json_fields, p, m) {
            return verdict(equal);
        }
    }
    // Not both JSON: the digests decide.
    verdict(primary.digest() == mirror.digest())
}

/// `None` when either body is not JSON.
fn json_equal(ignored: &[String], primary: &JsonBody, mirror: &JsonBody) -> Option<bool> {
    let mut p = json::parse(&primary.chunks)?;
    let mut m = json::parse(&mirror.chunks)?;
    for pointer in ignored {
        json::remove(&mut p, pointer);
        json::remove(&mut m, pointer);
    }
    Some(p == m)
}

fn verdict(equal: bool) -> ShadowResult {
    if equal {
        ShadowResult::Match
    } else {
        ShadowResult::BodyMismatch
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use bytes::Bytes;
    use http::HeaderMap;
    use sluice_controller::snapshot::{CopyShape, Fraction, MirrorPolicy};

    use super::*;

    fn comparison(ignore: &[&str]) -> Arc<MirrorPolicy> {
        comparing(ignore, true)
    }

    fn comparing(ignore: &[&str], body: bool) -> Arc<MirrorPolicy> {
        let compare = Comparison {
            fraction: Fraction::ALL,
            status: true,
            headers: vec![HeaderName::from_static("content-type")],
            body,
            ignore_json_fields: ignore.iter().map(|s| s.to_string()).collect(),
            samples: 10,
        };
        Arc::new(MirrorPolicy {
            name: "default/compare".to_string(),
            request: CopyShape::default(),
            compare: Some(compare),
        })
    }

    fn answer(
        c: &Arc<MirrorPolicy>,
        status: u16,
        content_type: &str,
        body: &[&str],
    ) -> Observation {
        let mut o = Observation::new(c, Instant::now()).expect("a comparison");
        let mut headers = HeaderMap::new();
        headers.insert("content-type", content_type.parse().expect("value"));
        o.on_head(status, &headers);
        for chunk in body {
            o.on_chunk(&Bytes::copy_from_slice(chunk.as_bytes()));
        }
        o.finish();
        o
    }

    fn check(c: &Arc<MirrorPolicy>, p: &Observation, m: &Observation) -> Verdict {
        compare(c.compare.as_ref().expect("a comparison"), p, m)
    }

    #[test]
    fn the_same_body_in_other_chunks_matches() {
        let c = comparison(&[]);
        let p = answer(&c, 200, "text/plain", &["hello ", "world"]);
        let m = answer(&c, 200, "text/plain", &["hel", "lo world"]);
        assert_eq!(check(&c, &p, &m).result, ShadowResult::Match);
    }

    #[test]
    fn status_decides_before_headers_and_body() {
        let c = comparison(&[]);
        let p = answer(&c, 200, "text/plain", &["a"]);
        let m = answer(&c, 500, "text/html", &["b"]);
        let verdict = check(&c, &p, &m);
        assert_eq!(verdict.result, ShadowResult::StatusMismatch);
        assert_eq!(
            verdict.headers,
            vec![HeaderName::from_static("content-type")]
        );
    }

    #[test]
    fn headers_decide_before_body() {
        let c = comparison(&[]);
        let p = answer(&c, 200, "text/plain", &["a"]);
        let m = answer(&c, 200, "text/html", &["b"]);
        assert_eq!(check(&c, &p, &m).result, ShadowResult::HeaderMismatch);
    }

    #[test]
    fn ignored_json_fields_do_not_count() {
        let c = comparison(&["/ts"]);
        let p = answer(&c, 200, "application/json", &[r#"{"ts": 1, "v": [1, 2]}"#]);
        let m = answer(&c, 200, "application/json", &[r#"{"v":[1,2],"ts":2}"#]);
        assert_eq!(check(&c, &p, &m).result, ShadowResult::Match);
        let other = answer(&c, 200, "application/json", &[r#"{"v":[1,3],"ts":2}"#]);
        assert_eq!(check(&c, &p, &other).result, ShadowResult::BodyMismatch);
    }

    #[test]
    fn bodies_that_are_not_json_fall_back_to_the_digest() {
        let c = comparison(&["/ts"]);
        let p = answer(&c, 200, "text/plain", &["not json"]);
        let m = answer(&c, 200, "text/plain", &["not json"]);
        assert_eq!(check(&c, &p, &m).result, ShadowResult::Match);
    }

    #[test]
    fn a_json_body_over_the_cap_is_not_compared() {
        let c = comparison(&["/ts"]);
        let big = "x".repeat(super::super::JSON_CAP_BYTES + 1);
        let p = answer(&c, 200, "application/json", &[&big]);
        let m = answer(&c, 200, "application/json", &["{}"]);
        assert_eq!(check(&c, &p, &m).result, ShadowResult::NotCompared);
    }

    #[test]
    fn json_bodies_are_not_compared_when_body_is_off() {
        let c = comparing(&["/ts"], false);
        let p = answer(&c, 200, "application/json", &[r#"{"ts": 1, "v": 1}"#]);
        let m = answer(&c, 200, "application/json", &[r#"{"ts": 2, "v": 2}"#]);
        assert_eq!(check(&c, &p, &m).result, ShadowResult::Match);
    }
}
