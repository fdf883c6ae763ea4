//! Standalone mode's "API server": YAML files, watched, translated and published on change.
//!
//! Like the API server, it stamps `uid`, `metadata.generation` (bumped when anything but metadata
//! and status changes) and `creationTimestamp` (first time seen) on objects that lack them, and it
//! keeps each Gateway's pool address and unchanged conditions' `lastTransitionTime` across reloads.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::publish::{ReloadOutcome, Store};
use crate::resources::{Fingerprint, LoadErrors, Resources};
use crate::status::StatusReport;
use crate::translate::findings::standalone_findings;
use crate::translate::{translate, Timestamp, TranslateOptions};

/// Events closer together than this are one reload (editors write, rename and chmod in a burst).
const DEBOUNCE: Duration = Duration::from_millis(20);
/// A steady stream of events (a file rewritten in a loop) still reloads this often.
const MAX_DEBOUNCE: Duration = Duration::from_millis(250);

/// Standalone mode's source: loads YAML from a file or directory, acting as the API server would.
pub struct FileSource {
    path: PathBuf,
    options: TranslateOptions,
    store: Arc<Store>,
    tracked: BTreeMap<String, Tracked>,
    next_uid: u64,
    /// The digest of what the last published snapshot was built from, to skip reloads that
    /// change nothing.
    last_published: Option<Fingerprint>,
    last_status: Option<Arc<StatusReport>>,
    clock: fn() -> Timestamp,
}

/// What the "API server" remembers about an object between reloads.
struct Tracked {
    uid: String,
    generation: i64,
    fingerprint: Fingerprint,
    created: Time,
}

impl FileSource {
    /// `path` is a YAML file or a directory of `*.yaml` / `*.yml` files.
    pub fn new(
        path: impl Into<PathBuf>,
        options: TranslateOptions,
        store: Arc<Store>,
    ) -> FileSource {
        FileSource {
            path: path.into(),
            options,
            store,
            tracked: BTreeMap::new(),
            next_uid: 1,
            last_published: None,
            last_status: None,
            clock: now,
        }
    }

    /// Replaces the wall clock used for creationTimestamp and condition times (tests).
    pub fn with_clock(mut self, clock: fn() -> Timestamp) -> FileSource {
        self.clock = clock;
        self
    }

    /// The file or directory the configuration is loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads, translates and publishes; on a load error, rejects (the live snapshot keeps
    /// serving) and returns the error. Returns the live generation, unchanged when the files
    /// hold exactly what was last published.
    pub fn load_once(&mut self) -> Result<u64, LoadErrors> {
        let loaded = match Resources::load_path(&self.path) {
            Ok(loaded) => loaded,
            Err(e) => {
                let keeping = if self.last_published.is_some() {
                    "keeping the last good snapshot"
                } else {
                    "nothing to serve until it is fixed"
                };
                tracing::error!(path = %self.path.display(), errors = e.0.len(), "configuration rejected ({keeping}):\n{e}");
                self.store.reject(e.to_string());
                return Err(e);
            }
        };
        for w in &loaded.warnings {
            tracing::warn!("{w}");
        }
        let digest = loaded.resources.digest();
        let unchanged = self.last_published == Some(digest)
            && matches!(self.store.last_outcome(), ReloadOutcome::Published { .. });
        if unchanged {
            return Ok(self.store.load().generation);
        }

        let now = Time((self.clock)());
        let mut resources = loaded.resources;
        self.stamp(&mut resources, &now);

        let mut translation = translate(&resources, &self.options, now.0);
        for w in &translation.warnings {
            tracing::warn!("{w}");
        }
        for w in standalone_findings(&resources, &translation.snapshot) {
            tracing::warn!("{w}");
        }
        self.options.assigned_addresses = translation.assigned_addresses;
        if let Some(previous) = &self.last_status {
            Arc::make_mut(&mut translation.snapshot.statuses).carry_transition_times(previous);
        }
        self.last_status = Some(translation.snapshot.statuses.clone());
        let generation = self.store.publish(translation.snapshot);
        self.last_published = Some(digest);
        tracing::info!(path = %self.path.display(), generation, "configuration published");
        Ok(generation)
    }

    /// Watches the path and reloads after every burst of changes, until the task is aborted.
    pub fn spawn(mut self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let (tx, mut rx) = mpsc::unbounded_channel();
            let mut watcher = match notify::recommended_watcher(move |event| {
                // The receiver only goes away when the task ends; nothing to do then.
                let _ = tx.send(event);
            }) {
                Ok(w) => w,
                Err(e) => {
                    tracing::error!(error = %e, "cannot create a file watcher; configuration will not reload");
                    return;
                }
            };
            // Watch the directory holding a file: editors replace files by renaming, which
            // would end a watch on the file itself.
            let watched = if self.path.is_dir() {
                self.path.clone()
            } else {
                match self.path.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                    _ => PathBuf::from("."),
                }
            };
            if let Err(e) = watcher.watch(&watched, RecursiveMode::NonRecursive) {
                tracing::error!(path = %watched.display(), error = %e, "cannot watch; configuration will not reload");
                return;
            }
            // Changes made between the caller's load_once and the watch starting would be lost.
            let _ = self.load_once();
            while let Some(first) = rx.recv().await {
                let mut relevant = self.concerns(&first);
                let deadline = tokio::time::Instant::now() + MAX_DEBOUNCE;
                while tokio::time::Instant::now() < deadline {
                    match tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                        Ok(Some(event)) => relevant |= self.concerns(&event),
                        Ok(None) => return,
                        Err(_) => break,
                    }
                }
                if relevant {
                    // File I/O and translation block; keep them off the async workers. Errors
                    // are recorded in the store and logged by load_once.
                    let reloaded = tokio::task::spawn_blocking(move || {
                        let _ = self.load_once();
                        self
                    })
                    .await;
                    self = match reloaded {
                        Ok(source) => source,
                        Err(e) => {
                            tracing::error!(error = %e, "configuration reload task failed; no more reloads");
                            return;
                        }
                    };
                }
            }
        })
    }

    /// Does this event touch what we load?
    fn concerns(&self, event: &notify::Result<notify::Event>) -> bool {
        match event {
            Err(_) => true,
            // Our own reads (open/close) are reported too; reacting to them reloads forever.
            Ok(e) if e.kind.is_access() => false,
            Ok(e) if self.path.is_dir() => e.paths.is_empty() || e.paths.iter().any(|p| is_yaml(p)),
            Ok(e) => {
                e.paths.is_empty()
                    || e.paths
                        .iter()
                        .any(|p| p.file_name() == self.path.file_name())
            }
        }
    }

    /// Stamps uid / generation / creationTimestamp as the API server would.
    fn stamp(&mut self, resources: &mut Resources, now: &Time) {
        let mut seen = BTreeSet::new();
        let tracked = &mut self.tracked;
        let next_uid = &mut self.next_uid;
        resources.for_each_meta_mut(|kind, meta, fingerprint| {
            let key = format!(
                "{kind} {}/{}",
                meta.namespace.as_deref().unwrap_or(""),
                meta.name.as_deref().unwrap_or("")
            );
            seen.insert(key.clone());
            let t = tracked.entry(key).or_insert_with(|| {
                let uid = format!("00000000-0000-4000-8000-{:012x}", *next_uid);
                *next_uid += 1;
                Tracked {
                    uid,
                    generation: 1,
                    fingerprint: *fingerprint,
                    created: now.clone(),
                }
            });
            if t.fingerprint != *fingerprint {
                t.generation += 1;
                t.fingerprint = *fingerprint;
            }
            meta.uid.get_or_insert_with(|| t.uid.clone());
            meta.generation.get_or_insert(t.generation);
            meta.creation_timestamp
                .get_or_insert_with(|| t.created.clone());
        });
        // Deleted objects are forgotten: recreated, they are new objects.
        tracked.retain(|k, _| seen.contains(k));
    }
}

fn is_yaml(p: &Path) -> bool {
    matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
}

/// Whole seconds: Kubernetes timestamps have no sub-second part.
fn now() -> Timestamp {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    i64::try_from(secs)
        .ok()
        .and_then(|s| Timestamp::from_second(s).ok())
        .unwrap_or(Timestamp::UNIX_EPOCH)
}
