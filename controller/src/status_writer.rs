//! The single status writer: while this controller holds the Lease, it server-side-applies the
//! statuses `translate` computed (field manager `sluice`), and only those that really changed.
//!
//! Some of it is known only to the provisioner (see [`crate::provision`]), which reads what
//! translation cannot: a GatewayClass's `parametersRef` ConfigMap and each Gateway's data plane.
//! Its [`Provisioning`] view is overlaid before writing ([`overlay`]). A condition whose status
//! did not change keeps the `lastTransitionTime` it has on the API server, so a new leader does
//! not rewrite every object after a failover; one whose status changed gets the time of the
//! write ([`merge`]).

mod merge;
mod overlay;

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use gateway_api::apis::experimental::gatewayclasses::GatewayClass;
use gateway_api::apis::experimental::gateways::Gateway;
use gateway_api::apis::experimental::grpcroutes::GrpcRoute;
use gateway_api::apis::experimental::httproutes::HttpRoute;
use gateway_api::apis::experimental::tlsroutes::TlsRoute;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::watch;

use self::merge::{carry_transition_times, merge_policy_ancestors, merge_route_parents, now};
use self::overlay::{overlay_listener_set, overlay_provisioning, unbound_in_data_plane};
use crate::backoff::Backoff;
use crate::provision::Provisioning;
use crate::publish::Store;
use crate::resources::backend_tls_policy::BackendTLSPolicy;
use crate::resources::mirror_policy::MirrorPolicy;
use crate::resources::ListenerSet;
use crate::sources::kube::ClaimedRoutes;
use crate::status::{Kind, StatusKey};
use crate::FIELD_MANAGER;

/// Rewrite everything now and then, in case someone else changed a status behind our back.
const RESYNC: Duration = Duration::from_secs(60);
/// The first wait before a failed status write is tried again; it doubles up to 30 s.
const RETRY: Duration = Duration::from_millis(500);

/// Bounds one write, client retries included, so a deposed leader does not keep retrying.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads and applies of one status when the object keeps changing in between (409 Conflict).
const CONFLICT_ATTEMPTS: u32 = 3;

/// Why one status write failed; the writer logs it and retries on the next wake-up.
#[derive(Debug, thiserror::Error)]
pub enum StatusWriteError {
    /// A Gateway, HTTPRoute or ListenerSet key without a namespace.
    #[error("status key {0} names no object")]
    Key(StatusKey),
    /// The API server refused the patch or could not be reached.
    #[error("writing the status of {key}")]
    Api {
        /// The object whose status was being written.
        key: StatusKey,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The write, retries included, outlasted its timeout (5 s).
    #[error("writing the status of {0} timed out")]
    Timeout(StatusKey),
    /// A status did not serialize to JSON.
    #[error("encoding a status")]
    Encode(#[source] serde_json::Error),
}

/// While this replica leads, writes the statuses of the published snapshot (see the module docs).
pub struct StatusWriter {
    client: Client,
    store: Arc<Store>,
    leader: watch::Receiver<bool>,
    provisioning: watch::Receiver<Arc<Provisioning>>,
    claimed: watch::Receiver<Arc<ClaimedRoutes>>,
    /// Per object: the status translate wanted, and what we wrote (or found) for it.
    written: HashMap<StatusKey, (Value, Value)>,
}

impl StatusWriter {
    /// `claimed` comes from the kube source ([`KubeSource::claimed_routes`]).
    ///
    /// [`KubeSource::claimed_routes`]: crate::sources::kube::KubeSource::claimed_routes
    pub fn new(
        client: Client,
        store: Arc<Store>,
        leader: watch::Receiver<bool>,
        provisioning: watch::Receiver<Arc<Provisioning>>,
        claimed: watch::Receiver<Arc<ClaimedRoutes>>,
    ) -> StatusWriter {
        StatusWriter {
            client,
            store,
            leader,
            provisioning,
            claimed,
            written: HashMap::new(),
        }
    }

    /// Runs the writer on the runtime until the store or leader channel closes.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run())
    }

    async fn run(mut self) {
        let mut generations = self.store.subscribe();
        // Without a provisioner (its sender dropped) its view simply never changes.
        let mut provisioning_open = true;
        let mut claimed_open = true;
        // A failed write is retried on its own pace, not only at the next change or resync.
        let mut backoff = Backoff::new(RETRY);
        loop {
            let mut retry_in = None;
            if *self.leader.borrow_and_update() && self.store.is_ready() {
                match self.sync().await {
                    Ok(_) => {
                        backoff.reset();
                    }
                    Err(e) => {
                        let wait = backoff.next();
                        tracing::warn!(retry_in = ?wait, "status write failed: {e}");
                        retry_in = Some(wait);
                    }
                }
            } else {
                // A future term starts from what the API server holds, not from our memory.
                self.written.clear();
            }
            tokio::select! {
                _ = tokio::time::sleep(retry_in.unwrap_or_default()), if retry_in.is_some() => {}
                r = generations.changed() => if r.is_err() { return },
                r = self.leader.changed() => if r.is_err() { return },
                r = self.provisioning.changed(), if provisioning_open => provisioning_open = r.is_ok(),
                r = self.claimed.changed(), if claimed_open => claimed_open = r.is_ok(),
                _ = tokio::time::sleep(RESYNC) => self.written.clear(),
            }
        }
    }

    /// Writes every status that differs from what we last wrote or found.
    pub async fn sync(&mut self) -> Result<usize, StatusWriteError> {
        let snapshot = self.store.load();
        let provisioning = self.provisioning.borrow().clone();
        let mut wanted = Vec::new();
        for (key, status) in &snapshot.statuses.objects {
            let provisioned_kind = matches!(
                key.kind,
                Kind::GatewayClass | Kind::Gateway | Kind::ListenerSet
            );
            if provisioned_kind && !provisioning.reconciled {
                continue;
            }
            let unbound = unbound_in_data_plane(&snapshot, key, status, &provisioning);
            let status = unbound.as_ref().unwrap_or(status);
            let mut desired = serde_json::to_value(status).map_err(StatusWriteError::Encode)?;
            overlay_provisioning(&mut desired, key, &provisioning);
            overlay_listener_set(&mut desired, key, &snapshot, &provisioning);
            wanted.push((key.clone(), desired));
        }
        // A route that no longer names any of our Gateways (parentRef removed, Gateway deleted
        // or moved to another class) has no status from translation, but may still carry ours.
        let claimed = self.claimed.borrow().clone();
        for key in claimed.iter() {
            if !snapshot.statuses.objects.contains_key(key) {
                wanted.push((key.clone(), json!({ "parents": [] })));
            }
        }
        let mut writes = 0;
        let mut first_error = None;
        for (key, desired) in wanted {
            if self.written.get(&key).is_some_and(|(d, _)| *d == desired) {
                continue;
            }
            let result = match (key.kind, key.namespace.as_deref()) {
                (Kind::GatewayClass, _) => {
                    self.write(
                        Api::<GatewayClass>::all(self.client.clone()),
                        &key,
                        &desired,
                    )
                    .await
                }
                (Kind::Gateway, Some(ns)) => {
                    self.write(
                        Api::<Gateway>::namespaced(self.client.clone(), ns),
                        &key,
                        &desired,
                    )
                    .await
                }
                (Kind::HttpRoute, Some(ns)) => {
                    self.write(
                        Api::<HttpRoute>::namespaced(self.client.clone(), ns),
                        &key,
                        &desired,
                    )
                    .await
                }
                (Kind::GrpcRoute, Some(ns)) => {
                    self.write(
                        Api::<GrpcRoute>::namespaced(self.client.clone(), ns),
                        &key,
                        &desired,
                    )
                    .await
                }
                (Kind::TlsRoute, Some(ns)) => {
                    self.write(
                        Api::<TlsRoute>::namespaced(self.client.clone(), ns),
                        &key,
                        &desired,
                    )
                    .await
                }
                (Kind::ListenerSet, Some(ns)) => {
                    self.write(
                        Api::<ListenerSet>::namespaced(self.client.clone(), ns),
                        &key,
                        &desired,
                    )
                    .await
                }
                (Kind::BackendTlsPolicy, Some(ns)) => {
                    self.write(
                        Api::<BackendTLSPolicy>::namespaced(self.client.clone(), ns),
                        &key,
                        &desired,
                    )
                    .await
                }
                (Kind::MirrorPolicy, Some(ns)) => {
                    self.write(
                        Api::<MirrorPolicy>::namespaced(self.client.clone(), ns),
                        &key,
                        &desired,
                    )
                    .await
                }
                _ => Err(StatusWriteError::Key(key.clone())),
            };
            match result {
                Ok(Some((sent, wrote))) => {
                    writes += usize::from(wrote);
                    self.written.insert(key, (desired, sent));
                }
                // Gone, or leadership lost mid-way: nothing to remember.
                Ok(None) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(writes),
        }
    }

    /// Applies `desired` as the status of the object `key` names unless it already is; `None` when the object is
    /// gone or this controller is no longer the leader. The apply carries the resourceVersion it
    /// compared against, so a status someone changed in between (another controller's route
    /// parent entry) is read again rather than overwritten.
    async fn write<K>(
        &self,
        api: Api<K>,
        key: &StatusKey,
        desired: &Value,
    ) -> Result<Option<(Value, bool)>, StatusWriteError>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug,
    {
        let name = key.name.as_str();
        let api_err = |source| StatusWriteError::Api {
            key: key.clone(),
            source,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Some(live) = api.get_opt(name).await.map_err(api_err)? else {
                return Ok(None);
            };
            let live = serde_json::to_value(&live).map_err(StatusWriteError::Encode)?;
            let live_status = live.get("status").cloned().unwrap_or(Value::Null);
            let mut desired = desired.clone();
            match key.kind {
                Kind::HttpRoute | Kind::GrpcRoute | Kind::TlsRoute => {
                    merge_route_parents(&mut desired, &live_status)
                }
                Kind::BackendTlsPolicy | Kind::MirrorPolicy => {
                    merge_policy_ancestors(&mut desired, &live_status)
                }
                Kind::GatewayClass | Kind::Gateway | Kind::ListenerSet => {}
            }
            carry_transition_times(&mut desired, &live_status, &now());
            if live_status == desired {
                return Ok(Some((desired, false)));
            }
            // Checked as late as possible: a controller that lost the Lease must not write.
            if !*self.leader.borrow() {
                return Ok(None);
            }
            let body = json!({
                "apiVersion": K::api_version(&()),
                "kind": K::kind(&()),
                "metadata": {
                    "name": name,
                    "resourceVersion": live.pointer("/metadata/resourceVersion"),
                },
                "status": desired,
            });
            let params = PatchParams::apply(FIELD_MANAGER).force();
            let body = Patch::Apply(&body);
            let patch = api.patch_status(name, &params, &body);
            match tokio::time::timeout(WRITE_TIMEOUT, patch).await {
                Err(_) => return Err(StatusWriteError::Timeout(key.clone())),
                Ok(Ok(_)) => return Ok(Some((desired, true))),
                Ok(Err(kube::Error::Api(s))) if s.code == 404 => return Ok(None),
                Ok(Err(kube::Error::Api(s))) if s.code == 409 && attempt < CONFLICT_ATTEMPTS => {}
                Ok(Err(e)) => return Err(api_err(e)),
            }
        }
    }
}
