//! A data plane's Secrets, each watched by name: a data plane may read only the Secrets its
//! Gateway serves (a per-Gateway Role with `resourceNames`, written by the provisioner), so it
//! cannot list Secrets across a namespace, let alone the cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ListParams;
use kube::runtime::reflector::{self, Store as Reader};
use kube::runtime::watcher;
use kube::{Api, Client};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::{snapshot_of, watch_into};
use crate::backoff::Backoff;
use crate::translate::secret_refs::SecretKey;

/// The longest wait before a Secret the data plane may not read yet is asked for again: its
/// Role is written by the provisioner, which may run a moment behind a listener's new reference.
const FORBIDDEN_RECHECK: Duration = Duration::from_secs(5);

/// One reflector per wanted Secret, each listing and watching with the field selector
/// `metadata.name=NAME` in the Secret's namespace (which the API server authorizes against a
/// Role's `resourceNames`, unlike a plain list).
pub(super) struct NamedSecrets {
    client: Client,
    changed: Arc<Notify>,
    watches: BTreeMap<SecretKey, Watch>,
}

/// One Secret's store and the task feeding it, aborted when dropped.
struct Watch {
    reader: Reader<Secret>,
    task: JoinHandle<()>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl NamedSecrets {
    /// Watches nothing until [`NamedSecrets::watch_only`]; every change wakes `changed`.
    pub(super) fn new(client: Client, changed: Arc<Notify>) -> NamedSecrets {
        NamedSecrets {
            client,
            changed,
            watches: BTreeMap::new(),
        }
    }

    /// Starts watching the Secrets of `wanted` not yet watched and stops watching the others.
    pub(super) fn watch_only(&mut self, wanted: &BTreeSet<SecretKey>) {
        self.watches.retain(|key, _| wanted.contains(key));
        for key in wanted {
            if self.watches.contains_key(key) {
                continue;
            }
            let (reader, writer) = reflector::store::<Secret>();
            let api: Api<Secret> = Api::namespaced(self.client.clone(), &key.0);
            let task = tokio::spawn(watch_one(api, key.1.clone(), writer, self.changed.clone()));
            self.watches.insert(key.clone(), Watch { reader, task });
        }
    }

    /// Until every watched Secret has listed once (or turned out not to be readable yet).
    pub(super) async fn wait_until_ready(&self) -> Result<(), reflector::store::WriterDropped> {
        for watch in self.watches.values() {
            watch.reader.wait_until_ready().await?;
        }
        Ok(())
    }

    /// Whether every watched Secret has listed once (or turned out not to be readable yet).
    pub(super) fn all_ready(&self) -> bool {
        self.watches
            .values()
            .all(|w| w.reader.wait_until_ready().now_or_never().is_some())
    }

    /// The watched Secrets that exist and may be read, sorted by namespace and name.
    pub(super) fn secrets(&self) -> Vec<Secret> {
        // Keys are sorted and each store holds at most the one Secret of its key.
        self.watches
            .values()
            .flat_map(|w| snapshot_of(&w.reader))
            .collect()
    }
}

/// Feeds `writer` the Secret `name` of `api`'s namespace. While the API server refuses it (403:
/// no Role grants it yet), the store is ready and empty, so the rest of the Gateway is served and
/// the listeners using it are refused as for a missing Secret; it is asked for again.
async fn watch_one(
    api: Api<Secret>,
    name: String,
    mut writer: reflector::store::Writer<Secret>,
    changed: Arc<Notify>,
) {
    let selector = format!("metadata.name={name}");
    let mut backoff = Backoff::new(Duration::from_millis(250));
    let mut reported = false;
    loop {
        match api.list(&ListParams::default().fields(&selector)).await {
            Ok(_) => break,
            Err(kube::Error::Api(status)) if status.code == 403 => {
                if !reported {
                    tracing::warn!(secret = %name, "not allowed to read this Secret (yet): its listeners are not served until the data plane's Role grants it");
                    writer.apply_watcher_event(&watcher::Event::InitDone);
                    changed.notify_one();
                    reported = true;
                }
            }
            Err(e) => tracing::warn!(secret = %name, "cannot list, retrying: {e}"),
        }
        tokio::time::sleep(backoff.next().min(FORBIDDEN_RECHECK)).await;
    }
    if reported {
        tracing::info!(secret = %name, "allowed to read this Secret now; watching it");
    }
    let config = watcher::Config::default().fields(&selector);
    watch_into(api, config, writer, changed).await;
}
