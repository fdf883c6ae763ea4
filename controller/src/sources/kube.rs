//! The Kubernetes source: kube-runtime reflectors for every kind `translate` reads, feeding it.
//!
//! Each kind has a watcher (with kube-runtime's default backoff) feeding a reflector store. The
//! reflector swaps a relist in atomically at `InitDone`, so a `410 Gone` never shows translation a
//! half-listed kind. The first snapshot is published only once every kind has listed; after that
//! each change (debounced) rebuilds [`Resources`] from the stores and publishes a new snapshot.
//! When the API server is unreachable the watchers back off and nothing is published, so the
//! last snapshot keeps serving.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use gateway_api::apis::experimental::gatewayclasses::GatewayClass;
use gateway_api::apis::experimental::gateways::Gateway;
use gateway_api::apis::experimental::grpcroutes::GrpcRoute;
use gateway_api::apis::experimental::httproutes::HttpRoute;
use gateway_api::apis::experimental::referencegrants::ReferenceGrant;
use gateway_api::apis::experimental::tlsroutes::TlsRoute;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};

use crate::resources::backend_tls_policy::BackendTLSPolicy;
use crate::resources::mirror_policy::MirrorPolicy;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::ListParams;
use kube::runtime::reflector::{self, Store as Reader};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use crate::backoff::Backoff;
use crate::publish::Store;
use crate::resources::{ListenerSet, Resources};
use crate::status::StatusKey;
use crate::translate::secret_refs;
use crate::translate::{translate, Timestamp, TranslateOptions};
use crate::CONTROLLER_NAME;

mod named_secrets;
use named_secrets::NamedSecrets;

/// How long to wait for more changes before translating: a burst (a relist, `kubectl apply` of
/// many objects) becomes one snapshot.
const DEBOUNCE: Duration = Duration::from_millis(20);

/// Whose snapshot this source builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The controller: every Gateway, for statuses; nothing binds its listeners.
    Controller,
    /// A data plane pod (`sluice proxy --gateway NS/NAME`, with `only_gateway` set in the
    /// options): the Gateway's `spec.addresses` are realised by its Service, so the pod ignores
    /// them and listens on `listen_address`.
    DataPlane,
}

/// Watches every kind `translate` reads and publishes a new snapshot to the store on each change.
pub struct KubeSource {
    client: Client,
    options: TranslateOptions,
    store: Arc<Store>,
    mode: Mode,
    resources_tx: watch::Sender<Option<Arc<Resources>>>,
    claimed_tx: watch::Sender<Arc<ClaimedRoutes>>,
}

/// Status keys of the HTTPRoutes whose live status has a parent
/// entry written by Sluice: the status writer removes the entries translation no longer wants.
pub type ClaimedRoutes = BTreeSet<StatusKey>;

/// The reflector stores of every watched kind.
#[derive(Clone)]
struct Readers {
    gateway_classes: Reader<GatewayClass>,
    gateways: Reader<Gateway>,
    http_routes: Reader<HttpRoute>,
    grpc_routes: Reader<GrpcRoute>,
    tls_routes: Reader<TlsRoute>,
    reference_grants: Reader<ReferenceGrant>,
    services: Reader<Service>,
    endpoint_slices: Reader<EndpointSlice>,
    /// Every TLS Secret, for the controller only: a data plane reads its own by name
    /// ([`NamedSecrets`]).
    secrets: Option<Reader<Secret>>,
    namespaces: Reader<Namespace>,
    config_maps: Reader<ConfigMap>,
    listener_sets: Reader<ListenerSet>,
    backend_tls_policies: Reader<BackendTLSPolicy>,
    mirror_policies: Reader<MirrorPolicy>,
}

impl KubeSource {
    /// A source for `client` that publishes to `store`; nothing runs until [`KubeSource::spawn`].
    pub fn new(
        client: Client,
        options: TranslateOptions,
        store: Arc<Store>,
        mode: Mode,
    ) -> KubeSource {
        KubeSource {
            client,
            options,
            store,
            mode,
            resources_tx: watch::channel(None).0,
            claimed_tx: watch::channel(Arc::new(ClaimedRoutes::new())).0,
        }
    }

    /// The controller's source: every Gateway, translated with the default options.
    pub fn controller(client: Client, store: Arc<Store>) -> KubeSource {
        KubeSource::new(client, TranslateOptions::default(), store, Mode::Controller)
    }

    /// HTTPRoutes whose live status has an entry of ours (controller mode only; always empty
    /// for a data plane, which never writes status).
    pub fn claimed_routes(&self) -> watch::Receiver<Arc<ClaimedRoutes>> {
        self.claimed_tx.subscribe()
    }

    /// The objects behind the latest published snapshot (`None` until the first one).
    pub fn resources(&self) -> watch::Receiver<Option<Arc<Resources>>> {
        self.resources_tx.subscribe()
    }

    /// Runs the watchers and the translate loop until the task is aborted.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run())
    }

    async fn run(mut self) {
        let changed = Arc::new(Notify::new());
        let mut watchers = JoinSet::new();
        let all = watcher::Config::default;
        let (secrets, mut named_secrets) = match self.mode {
            Mode::Controller => {
                let tls = watcher::Config::default().fields("type=kubernetes.io/tls");
                (
                    Some(reflect(&mut watchers, &self.client, tls, &changed)),
                    None,
                )
            }
            Mode::DataPlane => (
                None,
                Some(NamedSecrets::new(self.client.clone(), changed.clone())),
            ),
        };
        let readers = Readers {
            gateway_classes: reflect(&mut watchers, &self.client, all(), &changed),
            gateways: reflect(&mut watchers, &self.client, all(), &changed),
            http_routes: reflect(&mut watchers, &self.client, all(), &changed),
            // Both are standard in v1.6.1, but a cluster with an older Gateway API install may
            // lack their CRDs; HTTPRoutes must not stop being served for it.
            grpc_routes: reflect_optional(&mut watchers, &self.client, all(), &changed),
            tls_routes: reflect_optional(&mut watchers, &self.client, all(), &changed),
            reference_grants: reflect(&mut watchers, &self.client, all(), &changed),
            services: reflect(&mut watchers, &self.client, all(), &changed),
            endpoint_slices: reflect(&mut watchers, &self.client, all(), &changed),
            secrets,
            namespaces: reflect(&mut watchers, &self.client, all(), &changed),
            config_maps: reflect(&mut watchers, &self.client, all(), &changed),
            listener_sets: reflect_optional(&mut watchers, &self.client, all(), &changed),
            backend_tls_policies: reflect_optional(&mut watchers, &self.client, all(), &changed),
            // Sluice's own CRD: a cluster installed without deploy/base/crd-mirrorpolicy.yaml
            // still serves every route, only without policies.
            mirror_policies: reflect_optional(&mut watchers, &self.client, all(), &changed),
        };
        if readers.wait_until_ready().await.is_err() {
            tracing::error!("a watcher stopped before its first list; the kube source ends");
            return;
        }
        if let Some(named) = &mut named_secrets {
            named.watch_only(&self.wanted_secrets(&readers.resources(self.mode)));
            if named.wait_until_ready().await.is_err() {
                tracing::error!(
                    "a Secret watcher stopped before its first list; the kube source ends"
                );
                return;
            }
        }
        tracing::info!("every watched kind has listed; publishing the first snapshot");
        // A digest, not a copy: the reflectors' stores are the one copy of the objects.
        let mut previous = None;
        loop {
            let mut resources = readers.resources(self.mode);
            // A listener's new reference is watched from now on. Until it has listed (or been
            // refused) nothing is published, so a changed certificate never shows as missing;
            // its first list wakes this loop.
            let mut settled = true;
            if let Some(named) = &mut named_secrets {
                named.watch_only(&self.wanted_secrets(&resources));
                resources.secrets = named.secrets();
                settled = named.all_ready();
            }
            let digest = resources.digest();
            if settled && previous != Some(digest) {
                self.publish(&resources);
                previous = Some(digest);
            }
            drop(resources);
            if self.mode == Mode::Controller {
                let claimed = readers.claimed_routes();
                self.claimed_tx.send_if_modified(|current| {
                    let changed = **current != claimed;
                    if changed {
                        *current = Arc::new(claimed);
                    }
                    changed
                });
            }
            changed.notified().await;
            // Coalesce the rest of a burst into the same translation.
            tokio::time::sleep(DEBOUNCE).await;
        }
    }

    /// A data plane's Secrets: those its Gateway (and the ListenerSets naming it) reference.
    fn wanted_secrets(&self, resources: &Resources) -> BTreeSet<secret_refs::SecretKey> {
        let Some((ns, name)) = &self.options.only_gateway else {
            return BTreeSet::new();
        };
        resources
            .gateways
            .iter()
            .find(|g| g.namespace().as_deref() == Some(ns) && g.name_any() == *name)
            .map(|g| secret_refs::gateway_secrets(resources, g, None))
            .unwrap_or_default()
    }

    fn publish(&mut self, resources: &Resources) {
        let mut translation = translate(resources, &self.options, now());
        for w in &translation.warnings {
            tracing::warn!("{w}");
        }
        self.options.assigned_addresses = std::mem::take(&mut translation.assigned_addresses);
        let previous = self.store.load();
        Arc::make_mut(&mut translation.snapshot.statuses)
            .carry_transition_times(&previous.statuses);
        let generation = self.store.publish(translation.snapshot);
        tracing::debug!(
            generation,
            "published a snapshot from the API server's objects"
        );
        self.resources_tx
            .send_replace(Some(Arc::new(resources.clone())));
    }
}

/// Starts a watcher + reflector for `K` across all namespaces; every event wakes `changed`.
fn reflect<K>(
    watchers: &mut JoinSet<()>,
    client: &Client,
    config: watcher::Config,
    changed: &Arc<Notify>,
) -> Reader<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store::<K>();
    let api: Api<K> = Api::all(client.clone());
    watchers.spawn(watch_into(api, config, writer, changed.clone()));
    reader
}

/// Watches `K` into `writer` until the task is aborted; every change wakes `changed`.
async fn watch_into<K>(
    api: Api<K>,
    config: watcher::Config,
    writer: reflector::store::Writer<K>,
    changed: Arc<Notify>,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let stream = watcher(api, config).default_backoff().reflect(writer);
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
            Ok(_) => changed.notify_one(),
            Err(e) => {
                tracing::warn!(kind = %K::kind(&K::DynamicType::default()), "watch failed, backing off: {e}")
            }
        }
    }
}

/// How often a kind whose CRD is not installed is looked for again.
const MISSING_CRD_RECHECK: Duration = Duration::from_secs(30);

/// [`reflect`] for a kind whose CRD a cluster may lack (ListenerSet came with Gateway API v1.5):
/// while the API server answers 404 for it, the store is ready and empty, so the other kinds are
/// still served, and it is looked for again every [`MISSING_CRD_RECHECK`]; once the CRD is
/// installed the watcher starts on the same store.
fn reflect_optional<K>(
    watchers: &mut JoinSet<()>,
    client: &Client,
    config: watcher::Config,
    changed: &Arc<Notify>,
) -> Reader<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let (reader, mut writer) = reflector::store::<K>();
    let api: Api<K> = Api::all(client.clone());
    let changed = changed.clone();
    watchers.spawn(async move {
        let kind = K::kind(&K::DynamicType::default()).into_owned();
        let mut reported_missing = false;
        let mut backoff = Backoff::new(Duration::from_millis(500));
        loop {
            let wait = match api.list_metadata(&ListParams::default().limit(1)).await {
                Ok(_) => break,
                Err(kube::Error::Api(status)) if status.is_not_found() => {
                    if !reported_missing {
                        tracing::warn!(%kind, "the API server does not serve this kind (CRD not installed): none is read until it is");
                        writer.apply_watcher_event(&watcher::Event::InitDone);
                        changed.notify_one();
                        reported_missing = true;
                    }
                    MISSING_CRD_RECHECK
                }
                Err(e) => {
                    tracing::warn!(%kind, "cannot list, retrying: {e}");
                    backoff.next()
                }
            };
            tokio::time::sleep(wait).await;
        }
        if reported_missing {
            tracing::info!(%kind, "the API server now serves this kind; watching it");
        }
        watch_into(api, config, writer, changed).await;
    });
    reader
}

impl Readers {
    async fn wait_until_ready(&self) -> Result<(), reflector::store::WriterDropped> {
        self.gateway_classes.wait_until_ready().await?;
        self.gateways.wait_until_ready().await?;
        self.http_routes.wait_until_ready().await?;
        self.grpc_routes.wait_until_ready().await?;
        self.tls_routes.wait_until_ready().await?;
        self.reference_grants.wait_until_ready().await?;
        self.services.wait_until_ready().await?;
        self.endpoint_slices.wait_until_ready().await?;
        if let Some(secrets) = &self.secrets {
            secrets.wait_until_ready().await?;
        }
        self.namespaces.wait_until_ready().await?;
        self.config_maps.wait_until_ready().await?;
        self.listener_sets.wait_until_ready().await?;
        self.backend_tls_policies.wait_until_ready().await?;
        self.mirror_policies.wait_until_ready().await
    }

    /// Read before statuses are stripped: the one place live route statuses are looked at.
    fn claimed_routes(&self) -> ClaimedRoutes {
        // The three route kinds' statuses have one shape in three generated types.
        macro_rules! claimed {
            ($reader:expr, $key:path) => {
                $reader
                    .state()
                    .iter()
                    .filter(|r| {
                        r.status
                            .iter()
                            .flat_map(|s| &s.parents)
                            .any(|p| p.controller_name == CONTROLLER_NAME)
                    })
                    .map(|r| $key(&r.namespace().unwrap_or_default(), &r.name_any()))
                    .collect::<Vec<_>>()
            };
        }
        let mut claimed: ClaimedRoutes = claimed!(self.http_routes, StatusKey::http_route)
            .into_iter()
            .collect();
        claimed.extend(claimed!(self.grpc_routes, StatusKey::grpc_route));
        claimed.extend(claimed!(self.tls_routes, StatusKey::tls_route));
        claimed
    }

    fn resources(&self, mode: Mode) -> Resources {
        let mut gateways = snapshot_of(&self.gateways);
        if mode == Mode::DataPlane {
            for gw in &mut gateways {
                gw.spec.addresses = None;
            }
        }
        Resources {
            gateway_classes: snapshot_of(&self.gateway_classes),
            gateways,
            http_routes: snapshot_of(&self.http_routes),
            grpc_routes: snapshot_of(&self.grpc_routes),
            tls_routes: snapshot_of(&self.tls_routes),
            reference_grants: snapshot_of(&self.reference_grants),
            services: snapshot_of(&self.services),
            endpoint_slices: snapshot_of(&self.endpoint_slices),
            secrets: self.secrets.as_ref().map(snapshot_of).unwrap_or_default(),
            namespaces: snapshot_of(&self.namespaces),
            config_maps: snapshot_of(&self.config_maps),
            listener_sets: snapshot_of(&self.listener_sets),
            backend_tls_policies: snapshot_of(&self.backend_tls_policies),
            mirror_policies: snapshot_of(&self.mirror_policies),
        }
    }
}

/// The objects of one kind sorted by namespace/name, without what translation never reads and
/// what changes on every write (resourceVersion, managedFields, status), so that the controller's
/// own status writes do not cause a new snapshot.
fn snapshot_of<K>(reader: &Reader<K>) -> Vec<K>
where
    K: Resource + Clone + StripStatus + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let mut objects: Vec<K> = reader
        .state()
        .iter()
        .map(|o| {
            let mut o = K::clone(o);
            o.meta_mut().resource_version = None;
            o.meta_mut().managed_fields = None;
            o.strip_status();
            o
        })
        .collect();
    objects.sort_by_key(|o| (o.namespace(), o.name_any()));
    objects
}

/// Clears the status of the kinds whose status Sluice writes itself.
trait StripStatus {
    fn strip_status(&mut self) {}
}

impl StripStatus for GatewayClass {
    fn strip_status(&mut self) {
        self.status = None;
    }
}
impl StripStatus for Gateway {
    fn strip_status(&mut self) {
        self.status = None;
    }
}
impl StripStatus for HttpRoute {
    fn strip_status(&mut self) {
        self.status = None;
    }
}
impl StripStatus for GrpcRoute {
    fn strip_status(&mut self) {
        self.status = None;
    }
}
impl StripStatus for TlsRoute {
    fn strip_status(&mut self) {
        self.status = None;
    }
}
impl StripStatus for ListenerSet {
    fn strip_status(&mut self) {
        self.status = None;
    }
}
impl StripStatus for ReferenceGrant {}
impl StripStatus for Service {}
impl StripStatus for EndpointSlice {}
impl StripStatus for Secret {}
impl StripStatus for Namespace {}
impl StripStatus for ConfigMap {}
impl StripStatus for BackendTLSPolicy {
    fn strip_status(&mut self) {
        self.status = None;
    }
}
impl StripStatus for MirrorPolicy {
    fn strip_status(&mut self) {
        self.status = None;
    }
}

fn now() -> Timestamp {
    Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .unwrap_or(Timestamp::UNIX_EPOCH)
}
