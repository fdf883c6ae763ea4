//! A `requests:` step: resolve each entry's target and TLS material, then run the entries (FORMAT.md §4).
//!
//! Plain entries run concurrently, as upstream runs most of them; an entry with `repeat`, `distribution` or
//! `mirrorDistribution` starts only after every entry before it succeeded.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::Value;

use crate::case::{NsName, RequestEntry, RequestKind, TrustRef};
use crate::env::Env;
use crate::http::{run_entry, EntryContext, Sender, TlsMaterial};
use crate::objects::ObjectKey;

const ADDRESS_WAIT: Duration = Duration::from_secs(30);

/// An entry running beside others of the same batch.
type Pending<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + 'a>>;

pub(super) async fn run(
    entries: &[RequestEntry],
    gateway: &NsName,
    env: &Env,
) -> Result<(), String> {
    let ip = gateway_address(gateway, env).await?;
    let pods = env.pod_logs();
    // Entries of different kinds wait in one batch, so each is a boxed future.
    let mut batch: Vec<Pending<'_>> = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let sequential = entry.repeat.is_some()
            || entry.distribution.is_some()
            || entry.mirror_distribution.is_some();
        if sequential {
            finish(std::mem::take(&mut batch)).await?;
        }
        let label = match &entry.name {
            Some(name) => format!("request {} ({name})", index + 1),
            None => format!("request {}", index + 1),
        };
        if let RequestKind::WebSocket(request) = &entry.kind {
            finish(std::mem::take(&mut batch)).await?;
            let port = target_port(entry, gateway, env).map_err(|e| format!("{label}: {e}"))?;
            crate::websocket::run(request, &entry.expect.echo, SocketAddr::new(ip, port))
                .await
                .map_err(|e| format!("{label}: {e}"))?;
            continue;
        }
        let run: Pending<'_> = if is_stream_kind(&entry.kind) {
            let port = target_port(entry, gateway, env).map_err(|e| format!("{label}: {e}"))?;
            let trust_pem = match &entry.kind {
                RequestKind::Tcp(request, _) => match &request.trust {
                    Some(trust) => {
                        Some(lookup(env, trust, "ca.crt").map_err(|e| format!("{label}: {e}"))?)
                    }
                    None => None,
                },
                _ => None,
            };
            Box::pin(async move {
                run_stream_kind(entry, SocketAddr::new(ip, port), trust_pem.as_deref())
                    .await
                    .map_err(|e| format!("{label}: {e}"))
            })
        } else {
            let prepared = prepare(entry, gateway, ip, env).map_err(|e| format!("{label}: {e}"))?;
            let ctx = EntryContext {
                pods: pods.clone(),
                client_cert_pems: prepared.client_cert_pems.clone(),
            };
            Box::pin(async move {
                run_entry(&ctx, entry, &prepared.sender)
                    .await
                    .map_err(|e| format!("{label}: {e}"))
            })
        };
        if sequential {
            run.await?;
        } else {
            batch.push(run);
        }
    }
    finish(batch).await
}

fn is_stream_kind(kind: &RequestKind) -> bool {
    matches!(
        kind,
        RequestKind::Grpc(..)
            | RequestKind::Tcp(..)
            | RequestKind::TcpConnect(_)
            | RequestKind::TlsConnect(..)
    )
}

/// gRPC and TCP entries (§4.8, §4.9), each with its own driver and `expect`.
async fn run_stream_kind(
    entry: &RequestEntry,
    target: SocketAddr,
    trust_pem: Option<&str>,
) -> Result<(), String> {
    match &entry.kind {
        RequestKind::Grpc(request, expect) => {
            crate::grpc::run(entry, request, expect, target).await
        }
        RequestKind::Tcp(request, expect) => {
            crate::tcp::run(entry, request, expect, target, trust_pem).await
        }
        RequestKind::TcpConnect(expect) => crate::tcp::run_connect(entry, expect, target).await,
        RequestKind::TlsConnect(request, expect) => {
            crate::tcp::run_tls_connect(entry, request, expect, target).await
        }
        _ => Err("not a gRPC or TCP entry".to_owned()),
    }
}

async fn finish<F: std::future::Future<Output = Result<(), String>>>(
    batch: Vec<F>,
) -> Result<(), String> {
    join_all(batch).await.into_iter().collect()
}

struct Prepared {
    sender: Sender,
    client_cert_pems: Vec<String>,
}

fn prepare(
    entry: &RequestEntry,
    gateway: &NsName,
    ip: IpAddr,
    env: &Env,
) -> Result<Prepared, String> {
    let request = match &entry.kind {
        RequestKind::Http(request) => request,
        RequestKind::WebSocket(_)
        | RequestKind::Grpc(..)
        | RequestKind::Tcp(..)
        | RequestKind::TcpConnect(_)
        | RequestKind::TlsConnect(..) => {
            return Err("only HTTP entries have an HTTP sender".to_owned())
        }
        RequestKind::Unsupported(kind) => {
            return Err(format!(
                "request kind `{kind}` is not driven by this harness"
            ))
        }
    };
    let port = target_port(entry, gateway, env)?;
    let mut tls = TlsMaterial::default();
    if let Some(settings) = &request.tls {
        tls.server_name = settings.server_name.clone();
        if let Some(trust) = &settings.trust {
            tls.trust_pem = Some(lookup(env, trust, "tls.crt")?);
        }
        if let Some(client) = &settings.client_certificate {
            let cert = lookup(env, client, "tls.crt")?;
            let key = lookup(
                env,
                &TrustRef {
                    key: Some("tls.key".to_owned()),
                    ..client.clone()
                },
                "tls.key",
            )?;
            tls.client_identity = Some((cert, key));
        }
    }
    let mut client_cert_pems = Vec::new();
    if let Some(want) = entry
        .expect
        .request
        .as_ref()
        .and_then(|r| r.client_cert.as_ref())
    {
        let reference = TrustRef {
            secret: Some(want.secret.clone()),
            config_map: None,
            key: Some(want.key.clone()),
        };
        client_cert_pems.push(lookup(env, &reference, "tls.crt")?);
    }
    let sender = Sender::new(request, SocketAddr::new(ip, port), &tls)
        .map_err(|e| crate::error_chain(&e))?;
    Ok(Prepared {
        sender,
        client_cert_pems,
    })
}

/// §4.1: the entry's `port`, else its `listener`'s port, else the Gateway's first listener's port.
fn target_port(entry: &RequestEntry, gateway: &NsName, env: &Env) -> Result<u16, String> {
    if let Some(port) = entry.port {
        return Ok(port);
    }
    let key = ObjectKey::new("Gateway", Some(&gateway.namespace), &gateway.name);
    let object = env
        .objects
        .get(&key)
        .ok_or_else(|| format!("{key} is not among the applied objects"))?;
    let listeners = object
        .pointer("/spec/listeners")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let listener = match &entry.listener {
        Some(name) => listeners
            .iter()
            .find(|l| l.get("name").and_then(Value::as_str) == Some(name.as_str()))
            .ok_or_else(|| format!("{key} has no listener {name}"))?,
        None => listeners
            .first()
            .ok_or_else(|| format!("{key} has no listeners"))?,
    };
    listener
        .get("port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| format!("{key}: listener without a valid port"))
}

fn lookup(env: &Env, reference: &TrustRef, default_key: &str) -> Result<String, String> {
    let (kind, object) = match (&reference.secret, &reference.config_map) {
        (Some(secret), _) => ("Secret", secret),
        (None, Some(config_map)) => ("ConfigMap", config_map),
        (None, None) => return Err("a trust reference needs `secret` or `configMap`".to_owned()),
    };
    let (namespace, name) = object
        .split_once('/')
        .ok_or_else(|| format!("{kind} reference {object:?} is not namespace/name"))?;
    let key = reference.key.as_deref().unwrap_or(default_key);
    crate::backends::data_value(&env.objects, kind, namespace, name, key)
        .ok_or_else(|| format!("{kind} {namespace}/{name} has no key {key}"))
}

/// The Gateway's first status address, waiting for it to appear.
async fn gateway_address(gateway: &NsName, env: &Env) -> Result<IpAddr, String> {
    let key = ObjectKey::new("Gateway", Some(&gateway.namespace), &gateway.name).to_string();
    let deadline = Instant::now() + ADDRESS_WAIT;
    loop {
        let statuses = env.statuses().await.map_err(|e| crate::error_chain(&e))?;
        let address = statuses
            .get(&key)
            .and_then(|s| s.pointer("/addresses/0/value"))
            .and_then(Value::as_str)
            .and_then(|v| v.parse::<IpAddr>().ok());
        if let Some(address) = address {
            return Ok(address);
        }
        if Instant::now() >= deadline {
            return Err(format!("{key} has no status address after 30s"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
