//! The admin listener: object statuses, reload outcome, health, readiness, the listener report
//! the controller reads through the pod proxy, Prometheus metrics and the shadow diff's mismatch
//! samples.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use sluice_controller::provision::probe::LISTENERS_PATH;
use sluice_controller::publish::{ReloadOutcome, Store};
use sluice_controller::status::unbound::with_unbound;
use sluice_controller::translate::Timestamp;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::listeners::ListenerStatus;
use crate::metrics::Metrics;

const YAML: &str = "application/yaml";
const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot listen on admin address {address}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// What the admin endpoints report on.
#[derive(Clone)]
pub struct AdminState {
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
    pub listeners: watch::Receiver<ListenerStatus>,
}

/// The running admin listener.
pub struct AdminServer {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl AdminServer {
    /// Binds `address` (port 0 picks a free port; see [`AdminServer::local_addr`]) and serves.
    pub async fn start(address: SocketAddr, state: AdminState) -> Result<AdminServer, AdminError> {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| AdminError::Bind { address, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| AdminError::Bind { address, source })?;
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(serve(listener, Arc::new(state), stop_rx));
        tracing::info!(address = %local_addr, "admin listening");
        Ok(AdminServer {
            local_addr,
            stop,
            task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting and drops open admin connections; waits at most `grace`.
    pub async fn shutdown(self, grace: Duration) {
        self.stop.send_replace(true);
        let abort = self.task.abort_handle();
        if tokio::time::timeout(grace, self.task).await.is_err() {
            abort.abort();
        }
    }
}

async fn serve(listener: TcpListener, state: Arc<AdminState>, mut stop: watch::Receiver<bool>) {
    // Dropping the set at the end aborts connections still open: admin requests are short.
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let (tcp, peer) = tokio::select! {
            _ = stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let state = state.clone();
        connections.spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let response = config_dump::intercept(&state, &req)
                    .unwrap_or_else(|| respond(&state, req.method(), req.uri().path()));
                async move { Ok::<_, Infallible>(response) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "admin connection ended with an error");
            }
        });
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    // A dropped sender also means stop.
    let _ = stop.wait_for(|s| *s).await;
}

/// The response for one admin request; pure apart from reading the state.
pub fn respond(state: &AdminState, method: &Method, path: &str) -> Response<Full<Bytes>> {
    let known = matches!(
        path,
        "/status" | "/config" | "/healthz" | "/readyz" | "/metrics" | "/shadow" | LISTENERS_PATH
    );
    if !known {
        return reply(StatusCode::NOT_FOUND, TEXT, "not found\n".into());
    }
    if method != Method::GET {
        let mut response = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            "method not allowed\n".into(),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET"));
        return response;
    }
    match path {
        "/status" => statuses(state),
        "/config" => config_dump::respond(state, None, None),
        "/healthz" => reply(StatusCode::OK, TEXT, "ok\n".into()),
        "/shadow" => json(&state.metrics.shadow.samples.report()),
        // In cluster mode the controller learns from this why a pod is not ready (the data plane
        // may not write statuses itself); the controller's `ListenerReport` reads it.
        LISTENERS_PATH => match serde_json::to_string(&*state.listeners.borrow()) {
            Ok(text) => reply(StatusCode::OK, JSON, text),
            Err(e) => internal_error(&e),
        },
        "/readyz" if state.listeners.borrow().draining => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            TEXT,
            "not ready: shutting down\n".into(),
        ),
        "/readyz" => match state.listeners.borrow().failed.iter().next() {
            // A Gateway promised a port nothing listens on: not ready until the retry binds it.
            Some((address, error)) if state.store.is_ready() => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                TEXT,
                format!("not ready: cannot listen on {address}: {error} (retrying)\n"),
            ),
            _ => readiness(&state.store),
        },
        _ => match state.metrics.encode_text() {
            Ok(text) => reply(StatusCode::OK, PROMETHEUS, text),
            Err(e) => internal_error(&e),
        },
    }
}

/// The statuses being served, corrected for listener addresses that could not be bound.
fn statuses(state: &AdminState) -> Response<Full<Bytes>> {
    let snapshot = state.store.load();
    let failed = state.listeners.borrow().failed.clone();
    if failed.is_empty() {
        return yaml(&*snapshot.statuses);
    }
    let now = Timestamp::try_from(SystemTime::now()).unwrap_or(Timestamp::UNIX_EPOCH);
    yaml(&with_unbound(&snapshot, &failed, now))
}

fn readiness(store: &Store) -> Response<Full<Bytes>> {
    if store.is_ready() {
        return reply(StatusCode::OK, TEXT, "ready\n".into());
    }
    let reason = match store.last_outcome() {
        ReloadOutcome::Rejected { error, .. } => {
            format!("not ready: the configuration was rejected: {error}\n")
        }
        ReloadOutcome::Pending | ReloadOutcome::Published { .. } => {
            "not ready: no configuration has been loaded yet\n".to_string()
        }
    };
    reply(StatusCode::SERVICE_UNAVAILABLE, TEXT, reason)
}

/// The reload section of the `/config` document.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ConfigReport {
    /// Generation of the snapshot being served (0: none yet).
    generation: u64,
    ready: bool,
    last_reload: LastReload,
    reloads: ReloadCounts,
    listeners: ListenerStatus,
}

#[derive(Debug, Serialize)]
#[serde(tag = "result", rename_all = "camelCase")]
enum LastReload {
    Pending,
    Published {
        generation: u64,
        at: String,
    },
    /// One entry per error of the load (`FILE:LINE: KIND NS/NAME: field.path: message`).
    Rejected {
        errors: Vec<String>,
        at: String,
    },
}

#[derive(Debug, Serialize)]
struct ReloadCounts {
    published: u64,
    rejected: u64,
}

impl ConfigReport {
    fn new(state: &AdminState) -> ConfigReport {
        let (published, rejected) = state.store.reload_counts();
        ConfigReport {
            generation: state.store.load().generation,
            ready: state.store.is_ready(),
            last_reload: match state.store.last_outcome() {
                ReloadOutcome::Pending => LastReload::Pending,
                ReloadOutcome::Published { generation, at } => LastReload::Published {
                    generation,
                    at: rfc3339(at),
                },
                ReloadOutcome::Rejected { error, at } => LastReload::Rejected {
                    errors: error.lines().map(str::to_string).collect(),
                    at: rfc3339(at),
                },
            },
            reloads: ReloadCounts {
                published,
                rejected,
            },
            listeners: state.listeners.borrow().clone(),
        }
    }
}

fn rfc3339(at: SystemTime) -> String {
    match jiff::Timestamp::try_from(at) {
        Ok(ts) => ts.to_string(),
        Err(_) => "unrepresentable time".to_string(),
    }
}

fn json<T: Serialize + ?Sized>(value: &T) -> Response<Full<Bytes>> {
    match serde_json::to_string(value) {
        Ok(text) => reply(StatusCode::OK, JSON, text),
        Err(e) => internal_error(&e),
    }
}

fn yaml<T: Serialize + ?Sized>(value: &T) -> Response<Full<Bytes>> {
    match serde_yaml_ng::to_string(value) {
        Ok(text) => reply(StatusCode::OK, YAML, text),
        Err(e) => internal_error(&e),
    }
}

fn internal_error(e: &dyn std::error::Error) -> Response<Full<Bytes>> {
    tracing::error!(error = %e, "admin response failed");
    reply(
        StatusCode::INTERNAL_SERVER_ERROR,
        TEXT,
        format!("internal error: {e}\n"),
    )
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

mod config_dump;

#[cfg(test)]
mod tests;
