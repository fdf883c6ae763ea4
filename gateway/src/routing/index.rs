//! A per-snapshot index that finds candidate route entries by the path's first segment.
//!
//! Within one hostname group, an `Exact` or non-root `PathPrefix` entry can only match paths
//! whose first segment equals its own (prefixes are segment-aware), so entries are bucketed by
//! that segment. Everything else (root prefix, regex) stays in `rest`. A lookup walks the bucket
//! and `rest` merged by position, so the first match is the same entry a linear scan finds:
//! precedence order is untouched.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use sluice_controller::snapshot::{PathMatch, RouteEntry, RouteTable, Snapshot};

use super::{request_matches, RequestView};

/// Built once per snapshot; holds positions, not references, so it can be cached beside the
/// `Arc<Snapshot>` it was built from.
#[derive(Debug, Default)]
pub struct RouteIndex {
    /// `[bind][listener]`, parallel to `Snapshot::binds[*].listeners`.
    tables: Vec<Vec<TableIndex>>,
}

#[derive(Debug, Default)]
pub(super) struct TableIndex {
    exact: HashMap<String, GroupIndex>,
    /// Parallel to `RouteTable::wildcard`.
    wildcard: Vec<GroupIndex>,
    any: GroupIndex,
}

#[derive(Debug, Default)]
struct GroupIndex {
    by_segment: HashMap<String, Vec<usize>>,
    rest: Vec<usize>,
}

/// A snapshot with its index, so the two can never come from different configurations.
#[derive(Debug)]
pub struct Indexed {
    pub snapshot: Arc<Snapshot>,
    pub index: RouteIndex,
}

/// Remembers the index of the most recent snapshot; a request whose snapshot differs (a reload
/// happened) builds the new one and leaves it for the next request.
#[derive(Debug, Default)]
pub struct IndexCache {
    current: ArcSwapOption<Indexed>,
}

impl IndexCache {
    pub fn get(&self, snapshot: Arc<Snapshot>) -> Arc<Indexed> {
        if let Some(cached) = self.current.load_full() {
            if Arc::ptr_eq(&cached.snapshot, &snapshot) {
                return cached;
            }
        }
        let built = Arc::new(Indexed {
            index: RouteIndex::build(&snapshot),
            snapshot,
        });
        self.current.store(Some(built.clone()));
        built
    }
}

// === impl RouteIndex ===

impl RouteIndex {
    pub fn build(snapshot: &Snapshot) -> RouteIndex {
        let tables = snapshot
            .binds
            .iter()
            .map(|b| {
                b.listeners
                    .iter()
                    .map(|l| TableIndex::build(&l.routes))
                    .collect()
            })
            .collect();
        RouteIndex { tables }
    }

    /// The index of the listener at `(bind, listener)` positions, when it has one.
    pub(super) fn table(&self, bind: usize, listener: usize) -> Option<&TableIndex> {
        self.tables.get(bind)?.get(listener)
    }
}

// === impl TableIndex ===

impl TableIndex {
    fn build(table: &RouteTable) -> TableIndex {
        TableIndex {
            exact: table
                .exact
                .iter()
                .map(|(host, entries)| (host.clone(), GroupIndex::build(entries)))
                .collect(),
            wildcard: table
                .wildcard
                .iter()
                .map(|(_, entries)| GroupIndex::build(entries))
                .collect(),
            any: GroupIndex::build(&table.any),
        }
    }

    /// Same answer as [`super::find_entry`], through the index.
    pub(super) fn find<'s>(
        &self,
        table: &'s RouteTable,
        req: &RequestView<'_>,
    ) -> Option<&'s RouteEntry> {
        let segment = first_segment(req.path);
        let exact = table
            .exact
            .get(req.host)
            .zip(self.exact.get(req.host))
            .and_then(|(entries, index)| index.find(entries, segment, req));
        exact
            .or_else(|| {
                table
                    .wildcard
                    .iter()
                    .zip(&self.wildcard)
                    .filter(|((h, _), _)| h.matches(req.host))
                    .find_map(|((_, entries), index)| index.find(entries, segment, req))
            })
            .or_else(|| self.any.find(&table.any, segment, req))
    }
}

// === impl GroupIndex ===

impl GroupIndex {
    fn build(entries: &[RouteEntry]) -> GroupIndex {
        let mut group = GroupIndex::default();
        for (i, e) in entries.iter().enumerate() {
            match indexed_segment(&e.matcher.path) {
                Some(seg) => group.by_segment.entry(seg.to_string()).or_default().push(i),
                None => group.rest.push(i),
            }
        }
        group
    }

    fn find<'s>(
        &self,
        entries: &'s [RouteEntry],
        segment: &str,
        req: &RequestView<'_>,
    ) -> Option<&'s RouteEntry> {
        let bucket = self.by_segment.get(segment).map_or(&[][..], Vec::as_slice);
        let (mut a, mut b) = (bucket.iter().peekable(), self.rest.iter().peekable());
        // Both lists ascend; merging them visits candidates in precedence order.
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(&&x), Some(&&y)) if x < y => a.next(),
                (Some(_), Some(_)) | (None, Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, None) => return None,
            };
            let entry = next.and_then(|&i| entries.get(i))?;
            if request_matches(&entry.matcher, req) {
                return Some(entry);
            }
        }
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
