//! One hostname group of a route table, indexed by the first path segment when it is built.
//!
//! Within a group, an `Exact` or non-root `PathPrefix` entry can only match paths whose first
//! segment equals its own (prefixes are segment-aware), so entries are bucketed by that segment.
//! Everything else (root prefix, regex) stays in `rest`. [`RouteGroup::candidates`] walks the
//! bucket and `rest` merged by position, so the first match among the candidates is the entry a
//! linear scan finds: precedence order is untouched.
//!
//! The index lives inside the group and the entries are only reachable through it, so it is built
//! once, with the snapshot, before the one atomic swap, and can never describe other entries.

use std::collections::HashMap;

use serde::{Serialize, Serializer};

use super::{PathMatch, RouteEntry};

/// Entries in precedence order, with the segment index built from them.
#[derive(Debug, Default)]
pub struct RouteGroup {
    entries: Vec<RouteEntry>,
    by_segment: HashMap<String, Vec<usize>>,
    /// Positions of entries that pin no first segment, ascending.
    rest: Vec<usize>,
}

impl RouteGroup {
    /// `entries` must already be in precedence order.
    pub fn new(entries: Vec<RouteEntry>) -> RouteGroup {
        let mut by_segment: HashMap<String, Vec<usize>> = HashMap::new();
        let mut rest = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            match indexed_segment(&e.matcher.path) {
                Some(seg) => by_segment.entry(seg.to_string()).or_default().push(i),
                None => rest.push(i),
            }
        }
        RouteGroup {
            entries,
            by_segment,
            rest,
        }
    }

    /// Every entry, in precedence order.
    pub fn entries(&self) -> &[RouteEntry] {
        &self.entries
    }

    /// The entries that could match `path`, in precedence order; entries whose path match pins
    /// another first segment are skipped without being looked at.
    pub fn candidates<'g>(&'g self, path: &str) -> Candidates<'g> {
        let bucket = self
            .by_segment
            .get(first_segment(path))
            .map_or(&[][..], Vec::as_slice);
        Candidates {
            entries: &self.entries,
            bucket,
            rest: &self.rest,
        }
    }
}

/// Serialized as its entries: the index is derived data, not configuration.
impl Serialize for RouteGroup {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.entries.serialize(s)
    }
}

/// Two ascending position lists merged, so candidates come in precedence order.
#[derive(Debug)]
pub struct Candidates<'g> {
    entries: &'g [RouteEntry],
    bucket: &'g [usize],
    rest: &'g [usize],
}

impl<'g> Iterator for Candidates<'g> {
    type Item = &'g RouteEntry;

    fn next(&mut self) -> Option<&'g RouteEntry> {
        let next = match (self.bucket.split_first(), self.rest.split_first()) {
            (Some((&x, tail)), Some((&y, _))) if x < y => {
                self.bucket = tail;
                x
            }
            (_, Some((&y, tail))) => {
                self.rest = tail;
                y
            }
            (Some((&x, tail)), None) => {
                self.bucket = tail;
                x
            }
            (None, None) => return None,
        };
        self.entries.get(next)
    }
}

/// The first segment an entry's path match pins down, if it pins one.
fn indexed_segment(m: &PathMatch) -> Option<&str> {
    let p = match m {
        PathMatch::Exact(p) => p.as_str(),
        PathMatch::Prefix(p) => p.trim_end_matches('/'),
        PathMatch::RegularExpression(_) => return None,
    };
    let seg = first_segment(p);
    // The root prefix (and an exact `/`) match many first segments, or the empty one.
    (!seg.is_empty() && p.starts_with('/')).then_some(seg)
}

/// `/a/b` → `a`; `/` → ``.
fn first_segment(path: &str) -> &str {
    let rest = path.strip_prefix('/').unwrap_or(path);
    rest.split('/').next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::snapshot::{test_entries, RuleAction, Timeouts};

    fn entry(name: &str, path: PathMatch) -> RouteEntry {
        let action = RuleAction::new(Vec::new(), Vec::new(), Timeouts::default());
        test_entries::entry(name, path, Arc::new(action))
    }

    fn labels(group: &RouteGroup, path: &str) -> Vec<String> {
        group
            .candidates(path)
            .map(|e| e.route.name.clone())
            .collect()
    }

    #[test]
    fn candidates_keep_precedence_order_across_bucket_and_rest() {
        let group = RouteGroup::new(vec![
            entry("exact-a", PathMatch::Exact("/a/x".into())),
            entry(
                "regex",
                PathMatch::RegularExpression(regex::Regex::new("^/.*$").expect("regex")),
            ),
            entry("prefix-a", PathMatch::Prefix("/a".into())),
            entry("prefix-b", PathMatch::Prefix("/b".into())),
            entry("root", PathMatch::Prefix("/".into())),
        ]);
        assert_eq!(
            labels(&group, "/a/x"),
            ["exact-a", "regex", "prefix-a", "root"]
        );
        assert_eq!(labels(&group, "/b"), ["regex", "prefix-b", "root"]);
        assert_eq!(labels(&group, "/c"), ["regex", "root"]);
    }

    #[test]
    fn a_group_serializes_as_its_entries_alone() {
        let group = RouteGroup::new(vec![entry("a", PathMatch::Prefix("/a".into()))]);
        let as_group = serde_json::to_value(&group).expect("json");
        let as_entries = serde_json::to_value(group.entries()).expect("json");
        assert_eq!(as_group, as_entries);
    }
}
