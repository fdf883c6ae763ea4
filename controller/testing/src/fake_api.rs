//! An in-process Kubernetes API server for tests: the real kube client talks to it over HTTP.
//!
//! It serves list and watch (resourceVersions, bookmarks, `410 Gone` after [`FakeApiServer::compact`]),
//! get, create, update, patch (JSON merge, JSON patch and server-side apply, also on `/status`)
//! and delete with owner-reference garbage collection, for the kinds in [`kinds::KINDS`]; reads
//! asking for `PartialObjectMetadata` get metadata only.
//! [`FakeApiServer::outage`] closes the port and every open connection until
//! [`FakeApiServer::restore`], so clients see a real outage. Each client made with
//! [`FakeApiServer::client_as`] is logged under its own user name, so a test can tell who wrote.
//! [`FakeApiServer::forbid`] refuses a user's requests with 403, as a missing RBAC grant does.
//! `GET pods/NAME:PORT/proxy/PATH` is forwarded to the pod's `status.podIP` ([`pod_proxy`]), so a
//! test can stand a local server in for a pod.

pub mod kinds;
mod pod_proxy;
pub mod store;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};
use tokio::task::{JoinHandle, JoinSet};

use self::kinds::Target;
pub use self::store::ApiError;
use self::store::{Change, ObjectStore, Patch, PatchKind, Selector};

type Body = BoxBody<Bytes, Infallible>;

/// The header that names the user a client was made for (see [`FakeApiServer::client_as`]).
const USER_HEADER: &str = "x-fake-user";

/// One mutating request, as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub user: String,
    pub method: String,
    pub path: String,
    pub field_manager: Option<String>,
    pub status: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum FakeApiError {
    #[error("binding the fake API server")]
    Bind(#[source] std::io::Error),
    #[error("building a kube client for the fake API server")]
    Client(#[source] kube::Error),
    #[error("the fake API server's URL")]
    Uri(#[source] http::uri::InvalidUri),
    #[error("a user name that is not a valid header value")]
    User(#[source] http::header::InvalidHeaderValue),
    #[error("the fake API server refused the object: {0:?}")]
    Api(ApiError),
    #[error("an object for the fake API server has no apiVersion/kind it serves")]
    UnknownKind,
}

/// How the server refuses one user's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// 503, as if partitioned from the server.
    Partitioned,
    /// 403, as RBAC refuses a missing grant.
    Forbidden,
}

#[derive(Debug)]
struct Shared {
    store: Mutex<ObjectStore>,
    /// Users whose requests are refused, and how.
    refused: Mutex<std::collections::HashMap<String, Refusal>>,
    /// How many requests each user had refused so far.
    refusals: Mutex<std::collections::HashMap<String, usize>>,
    /// Plurals answered 404 as if their CRD were not installed.
    uninstalled: Mutex<std::collections::HashSet<&'static str>>,
    /// Users who may read only these Secrets `(namespace, name)`, as a Role with `resourceNames`
    /// allows (see [`FakeApiServer::restrict_secrets`]).
    secret_grants:
        Mutex<std::collections::HashMap<String, std::collections::HashSet<(String, String)>>>,
    writes: Mutex<Vec<Write>>,
    bookmark_interval: Duration,
}

impl Shared {
    fn store(&self) -> MutexGuard<'_, ObjectStore> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Debug)]
pub struct FakeApiServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    serving: Mutex<Option<JoinHandle<()>>>,
}

impl FakeApiServer {
    /// Starts on 127.0.0.1 with an ephemeral port, sending watch bookmarks every 200 ms.
    pub async fn start() -> Result<FakeApiServer, FakeApiError> {
        FakeApiServer::start_with_bookmarks(Duration::from_millis(200)).await
    }

    pub async fn start_with_bookmarks(
        bookmark_interval: Duration,
    ) -> Result<FakeApiServer, FakeApiError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(FakeApiError::Bind)?;
        let addr = listener.local_addr().map_err(FakeApiError::Bind)?;
        let shared = Arc::new(Shared {
            store: Mutex::new(ObjectStore::new()),
            refused: Mutex::new(Default::default()),
            refusals: Mutex::new(Default::default()),
            uninstalled: Mutex::new(Default::default()),
            secret_grants: Mutex::new(Default::default()),
            writes: Mutex::new(Vec::new()),
            bookmark_interval,
        });
        let serving = tokio::spawn(serve(listener, shared.clone()));
        Ok(FakeApiServer {
            addr,
            shared,
            serving: Mutex::new(Some(serving)),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kube client for this server whose requests are logged as `user`.
    pub fn client_as(&self, user: &str) -> Result<kube::Client, FakeApiError> {
        let config = self.config_as(user)?;
        kube::Client::try_from(config).map_err(FakeApiError::Client)
    }

    pub fn config_as(&self, user: &str) -> Result<kube::Config, FakeApiError> {
        let uri: http::Uri = self.url().parse().map_err(FakeApiError::Uri)?;
        let mut config = kube::Config::new(uri);
        config.default_namespace = "default".into();
        config.connect_timeout = Some(Duration::from_secs(2));
        config.read_timeout = Some(Duration::from_secs(2));
        let value = http::HeaderValue::from_str(user).map_err(FakeApiError::User)?;
        config
            .headers
            .push((http::HeaderName::from_static(USER_HEADER), value));
        Ok(config)
    }

    /// Creates `object` (which carries apiVersion and kind) as an administrator would.
    pub fn create(&self, object: Value) -> Result<Value, FakeApiError> {
        let (kind, ns) = kind_of(&object)?;
        self.shared
            .store()
            .create(kind, ns.as_deref(), object)
            .map_err(FakeApiError::Api)
    }

    /// Creates `object`, or replaces everything but its status if it exists.
    pub fn apply(&self, object: Value) -> Result<Value, FakeApiError> {
        let (kind, ns) = kind_of(&object)?;
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut store = self.shared.store();
        match store.get(kind, ns.as_deref(), &name) {
            Ok(_) => store.replace(kind, ns.as_deref(), &name, false, object),
            Err(_) => store.create(kind, ns.as_deref(), object),
        }
        .map_err(FakeApiError::Api)
    }

    /// Replaces the status of an object, as a built-in controller (e.g. the Deployment
    /// controller, or a cloud load-balancer controller) would.
    pub fn set_status(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        status: Value,
    ) -> Result<Value, FakeApiError> {
        let kind = kinds::by_kind(api_version, kind).ok_or(FakeApiError::UnknownKind)?;
        self.shared
            .store()
            .replace(kind, namespace, name, true, json!({ "status": status }))
            .map_err(FakeApiError::Api)
    }

    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let kind = kinds::by_kind(api_version, kind)?;
        self.shared.store().get(kind, namespace, name).ok()
    }

    pub fn list(&self, api_version: &str, kind: &str) -> Vec<Value> {
        match kinds::by_kind(api_version, kind) {
            Some(kind) => {
                self.shared
                    .store()
                    .list(kind, None, &Selector::default(), &Selector::default())
            }
            None => Vec::new(),
        }
    }

    pub fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, FakeApiError> {
        let kind = kinds::by_kind(api_version, kind).ok_or(FakeApiError::UnknownKind)?;
        self.shared
            .store()
            .delete(kind, namespace, name)
            .map_err(FakeApiError::Api)
    }

    /// Drops the watch history, as etcd compaction does: resuming a watch now needs a relist.
    pub fn compact(&self) {
        self.shared.store().compact();
    }

    pub fn resource_version(&self) -> u64 {
        self.shared.store().resource_version()
    }

    /// Every mutating request so far.
    pub fn writes(&self) -> Vec<Write> {
        self.shared
            .writes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Refuses every new request from `user` with 503 until [`FakeApiServer::unblock`]: a
    /// network partition between one client and the server.
    pub fn block(&self, user: &str) {
        self.refuse(user, Some(Refusal::Partitioned));
    }

    pub fn unblock(&self, user: &str) {
        self.refuse(user, None);
    }

    /// Refuses every new request from `user` with 403 Forbidden until [`FakeApiServer::permit`]:
    /// a service account without the RBAC grant it needs.
    pub fn forbid(&self, user: &str) {
        self.refuse(user, Some(Refusal::Forbidden));
    }

    pub fn permit(&self, user: &str) {
        self.refuse(user, None);
    }

    /// From now on `user` may read only the Secrets `readable` (`(namespace, name)`), as RBAC
    /// with `resourceNames` allows: a get by name, or a list or watch in the Secret's namespace
    /// with the field selector `metadata.name=NAME`. Any other Secret request (a namespace or
    /// cluster-wide list, another name) is refused with 403. A later call replaces the set.
    pub fn restrict_secrets(&self, user: &str, readable: &[(&str, &str)]) {
        let readable = readable
            .iter()
            .map(|(ns, name)| (ns.to_string(), name.to_string()))
            .collect();
        self.shared
            .secret_grants
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(user.to_string(), readable);
    }

    /// How many requests from `user` were refused (blocked or forbidden) so far: a test waits for
    /// a refused attempt instead of sleeping.
    pub fn refused_requests(&self, user: &str) -> usize {
        self.shared
            .refusals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(user)
            .copied()
            .unwrap_or(0)
    }

    /// Answers every request for `plural` (`listenersets`, ...) with 404 until
    /// [`FakeApiServer::install`], as an API server without that CRD does.
    pub fn uninstall(&self, plural: &'static str) {
        self.uninstalled().insert(plural);
    }

    pub fn install(&self, plural: &'static str) {
        self.uninstalled().remove(plural);
    }

    fn uninstalled(&self) -> MutexGuard<'_, std::collections::HashSet<&'static str>> {
        self.shared
            .uninstalled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn refuse(&self, user: &str, how: Option<Refusal>) {
        let mut refused = self
            .shared
            .refused
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match how {
            Some(how) => refused.insert(user.to_string(), how),
            None => refused.remove(user),
        };
    }

    /// Closes the port and every open connection (watches included): clients get connection
    /// refused until [`FakeApiServer::restore`].
    pub fn outage(&self) {
        if let Some(task) = self
            .serving
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }

    /// Listens again on the same address, with every object as it was.
    pub async fn restore(&self) -> Result<(), FakeApiError> {
        // The aborted task releases the port once it has been dropped; retry briefly.
        let mut last = None;
        for _ in 0..50 {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => {
                    let task = tokio::spawn(serve(listener, self.shared.clone()));
                    *self.serving.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(FakeApiError::Bind(
            last.unwrap_or_else(|| std::io::Error::other("bind failed")),
        ))
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.outage();
    }
}

fn kind_of(object: &Value) -> Result<(&'static kinds::Kind, Option<String>), FakeApiError> {
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = kinds::by_kind(api_version, kind).ok_or(FakeApiError::UnknownKind)?;
    let ns = if kind.namespaced {
        Some(
            object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_string(),
        )
    } else {
        None
    };
    Ok((kind, ns))
}

/// Accepts connections until aborted; aborting drops the listener and every connection task.
async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = shared.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(handle(shared, req).await) }
                    });
                    // A client hanging up mid-request is not the server's problem.
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

fn full(status: StatusCode, body: &Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn error(e: &ApiError) -> Response<Body> {
    full(
        StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &e.to_status(),
    )
}

fn query_params(req: &Request<Incoming>) -> Vec<(String, String)> {
    req.uri()
        .query()
        .map(|q| {
            q.split('&')
                .filter_map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    Some((decode(k)?, decode(v)?))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn decode(s: &str) -> Option<String> {
    let s = s.replace('+', " ");
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// [`Refusal::Forbidden`] for a Secret request [`FakeApiServer::restrict_secrets`] does not
/// allow `user`.
fn secret_refusal(
    shared: &Shared,
    user: &str,
    target: &Target,
    field_selector: Option<String>,
) -> Option<Refusal> {
    if target.kind.plural != "secrets" {
        return None;
    }
    let grants = shared
        .secret_grants
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let readable = grants.get(user)?;
    let by_selector = field_selector.and_then(|f| {
        f.split(',')
            .find_map(|t| t.strip_prefix("metadata.name=").map(String::from))
    });
    let allowed = match (&target.namespace, target.name.clone().or(by_selector)) {
        (Some(ns), Some(name)) => readable.contains(&(ns.clone(), name)),
        _ => false,
    };
    (!allowed).then_some(Refusal::Forbidden)
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let params = query_params(&req);
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let Some(target) = kinds::parse_path(req.uri().path()) else {
        return error(&ApiError::new(
            404,
            "NotFound",
            format!(
                "the server could not find the requested resource ({})",
                req.uri().path()
            ),
        ));
    };
    let not_installed = shared
        .uninstalled
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .contains(target.kind.plural);
    if not_installed {
        return error(&ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let user = req
        .headers()
        .get(USER_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("anonymous")
        .to_string();
    let refusal = shared
        .refused
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&user)
        .copied()
        .or_else(|| secret_refusal(&shared, &user, &target, param("fieldSelector")));
    if refusal.is_some() {
        *shared
            .refusals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(user.clone())
            .or_default() += 1;
    }
    match refusal {
        Some(Refusal::Partitioned) => {
            return error(&ApiError::new(
                503,
                "ServiceUnavailable",
                "partitioned by the test",
            ))
        }
        Some(Refusal::Forbidden) => {
            return error(&ApiError::new(
                403,
                "Forbidden",
                format!(
                    "{} is forbidden: User \"{user}\" cannot {} {path}",
                    target.kind.plural,
                    method.as_str().to_ascii_lowercase(),
                ),
            ))
        }
        None => {}
    }
    if let (Some(path), Some(name)) = (&target.proxy, &target.name) {
        if method != Method::GET {
            return error(&ApiError::new(
                405,
                "MethodNotAllowed",
                "the fake pod proxy forwards GET only",
            ));
        }
        let pod = shared.store().get(
            target.kind,
            target.namespace.as_deref(),
            pod_proxy::pod_name(name),
        );
        return match pod {
            Ok(pod) => pod_proxy::forward(&pod, name, path).await,
            Err(e) => error(&e),
        };
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let field_manager = param("fieldManager");

    if method == Method::GET {
        // `Accept: application/json;as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1`, what
        // kube-rs sends for `Api<PartialObjectMeta<K>>`: answer with metadata only.
        let shape = if req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("as=PartialObjectMetadata"))
        {
            Shape::MetadataOnly
        } else {
            Shape::Full
        };
        return match (&target.name, param("watch").as_deref()) {
            (None, Some("true" | "1")) => watch(&shared, &target, &param, shape),
            (None, _) => list(&shared, &target, &param, shape),
            (Some(name), _) => {
                match shared
                    .store()
                    .get(target.kind, target.namespace.as_deref(), name)
                {
                    Ok(v) => full(StatusCode::OK, &shape.of(v)),
                    Err(e) => error(&e),
                }
            }
        };
    }

    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return error(&ApiError::new(400, "BadRequest", e.to_string())),
    };
    let parsed: Result<Value, ApiError> = if body.is_empty() {
        Ok(Value::Null)
    } else if content_type.starts_with("application/apply-patch") {
        serde_yaml_ng::from_slice(&body)
            .map_err(|e| ApiError::new(400, "BadRequest", e.to_string()))
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::new(400, "BadRequest", e.to_string()))
    };
    let result = parsed.and_then(|body| {
        let ns = target.namespace.as_deref();
        let mut store = shared.store();
        match (&method, &target.name) {
            (&Method::POST, None) => store
                .create(target.kind, ns, body)
                .map(|v| (StatusCode::CREATED, v)),
            (&Method::PUT, Some(name)) => store
                .replace(target.kind, ns, name, target.status, body)
                .map(|v| (StatusCode::OK, v)),
            (&Method::PATCH, Some(name)) => {
                let kind = match content_type.split(';').next().unwrap_or_default() {
                    "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                        PatchKind::Merge
                    }
                    "application/json-patch+json" => PatchKind::Json,
                    "application/apply-patch+yaml" | "application/apply-patch+json" => {
                        PatchKind::Apply
                    }
                    other => {
                        return Err(ApiError::new(
                            415,
                            "UnsupportedMediaType",
                            format!("unsupported patch type {other:?}"),
                        ))
                    }
                };
                store
                    .patch(
                        target.kind,
                        ns,
                        name,
                        target.status,
                        Patch {
                            kind,
                            body,
                            field_manager: field_manager.as_deref(),
                        },
                    )
                    .map(|v| (StatusCode::OK, v))
            }
            (&Method::DELETE, Some(name)) => store
                .delete(target.kind, ns, name)
                .map(|v| (StatusCode::OK, v)),
            _ => Err(ApiError::new(
                405,
                "MethodNotAllowed",
                format!("{method} is not supported on {path}"),
            )),
        }
    });
    let response = match &result {
        Ok((status, v)) => full(*status, v),
        Err(e) => error(e),
    };
    shared
        .writes
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Write {
            user,
            method: method.to_string(),
            path,
            field_manager,
            status: response.status().as_u16(),
        });
    response
}

/// Whole objects, or their metadata only (a `PartialObjectMetadata` request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Full,
    MetadataOnly,
}

impl Shape {
    fn of(self, object: Value) -> Value {
        match self {
            Shape::Full => object,
            Shape::MetadataOnly => json!({
                "apiVersion": "meta.k8s.io/v1",
                "kind": "PartialObjectMetadata",
                "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
            }),
        }
    }

    fn list_header(self, kind: &kinds::Kind) -> (String, String) {
        match self {
            Shape::Full => (kind.api_version(), format!("{}List", kind.kind)),
            Shape::MetadataOnly => ("meta.k8s.io/v1".into(), "PartialObjectMetadataList".into()),
        }
    }
}

fn list(
    shared: &Shared,
    target: &Target,
    param: &dyn Fn(&str) -> Option<String>,
    shape: Shape,
) -> Response<Body> {
    let selectors = Selector::parse(param("labelSelector").as_deref())
        .and_then(|l| Ok((l, Selector::parse(param("fieldSelector").as_deref())?)));
    let (labels, fields) = match selectors {
        Ok(s) => s,
        Err(e) => return error(&e),
    };
    let store = shared.store();
    let items: Vec<Value> = store
        .list(target.kind, target.namespace.as_deref(), &labels, &fields)
        .into_iter()
        .map(|o| shape.of(o))
        .collect();
    let (api_version, kind) = shape.list_header(target.kind);
    full(
        StatusCode::OK,
        &json!({
            "apiVersion": api_version,
            "kind": kind,
            "metadata": { "resourceVersion": store.resource_version().to_string() },
            "items": items,
        }),
    )
}

fn watch(
    shared: &Arc<Shared>,
    target: &Target,
    param: &dyn Fn(&str) -> Option<String>,
    shape: Shape,
) -> Response<Body> {
    let selectors = Selector::parse(param("labelSelector").as_deref())
        .and_then(|l| Ok((l, Selector::parse(param("fieldSelector").as_deref())?)));
    let (labels, fields) = match selectors {
        Ok(s) => s,
        Err(e) => return error(&e),
    };
    let bookmarks = param("allowWatchBookmarks").as_deref() == Some("true");
    let timeout = param("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(1800);
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let since = param("resourceVersion").unwrap_or_default();
    let opened = {
        let store = shared.store();
        match since.as_str() {
            // "Start at most recent": every current object as ADDED, then changes.
            "" | "0" => store.watch_from(store.resource_version()).map(|(_, live)| {
                let current =
                    store.list(target.kind, target.namespace.as_deref(), &labels, &fields);
                let lines: Vec<Bytes> = current
                    .into_iter()
                    .map(|o| line(&json!({"type": "ADDED", "object": shape.of(o)})))
                    .collect();
                (lines, live, store.resource_version())
            }),
            v => match v.parse::<u64>() {
                Ok(rv) => store.watch_from(rv).map(|(past, live)| {
                    let lines = past
                        .iter()
                        .filter(|c| matches(c, target, &labels, &fields))
                        .map(|c| event_line(c, shape))
                        .collect();
                    (lines, live, store.resource_version())
                }),
                Err(_) => Err(ApiError::new(
                    400,
                    "BadRequest",
                    format!("invalid resourceVersion {v:?}"),
                )),
            },
        }
    };
    let kind = target.kind;
    let namespace = target.namespace.clone();
    let interval = shared.bookmark_interval;
    match opened {
        Err(e) if e.code == 410 => {
            // A stale watch is answered 200 with one ERROR event, as the API server does.
            let _ = tx.try_send(line(&json!({"type": "ERROR", "object": e.to_status()})));
        }
        Err(e) => return error(&e),
        Ok((initial, mut live, mut seen)) => {
            tokio::spawn(async move {
                for l in initial {
                    if tx.send(l).await.is_err() {
                        return;
                    }
                }
                let target = Target {
                    kind,
                    namespace,
                    name: None,
                    status: false,
                    proxy: None,
                };
                let deadline = tokio::time::sleep(Duration::from_secs(timeout));
                tokio::pin!(deadline);
                let mut tick = tokio::time::interval(interval);
                loop {
                    let out = tokio::select! {
                        change = live.recv() => match change {
                            Ok(c) => {
                                if c.resource_version <= seen { continue; }
                                seen = c.resource_version;
                                if !matches(&c, &target, &labels, &fields) { continue; }
                                event_line(&c, shape)
                            }
                            Err(broadcast::error::RecvError::Lagged(_)) => {
                                let gone = ApiError::gone("the watch fell behind");
                                let _ = tx.send(line(&json!({"type": "ERROR", "object": gone.to_status()}))).await;
                                return;
                            }
                            Err(broadcast::error::RecvError::Closed) => return,
                        },
                        _ = tick.tick(), if bookmarks => line(&json!({
                            "type": "BOOKMARK",
                            "object": {
                                "apiVersion": kind.api_version(),
                                "kind": kind.kind,
                                "metadata": { "resourceVersion": seen.to_string() },
                            },
                        })),
                        _ = &mut deadline => return,
                    };
                    if tx.send(out).await.is_err() {
                        return;
                    }
                }
            });
        }
    }
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    let mut response = Response::new(StreamBody::new(stream).boxed());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn matches(change: &Change, target: &Target, labels: &Selector, fields: &Selector) -> bool {
    std::ptr::eq(change.kind, target.kind)
        && target
            .namespace
            .as_ref()
            .is_none_or(|ns| *ns == change.namespace)
        && labels.matches_labels(&change.object)
        && fields.matches_fields(&change.object)
}

fn event_line(change: &Change, shape: Shape) -> Bytes {
    line(&json!({"type": change.event, "object": shape.of(change.object.clone())}))
}

fn line(v: &Value) -> Bytes {
    let mut s = v.to_string();
    s.push('\n');
    Bytes::from(s)
}
