//! How often an HTTP entry is sent and what makes it pass: convergence (§4.2), `repeat`, weighted
//! distribution (§4.6), mirrors (§4.5) and percentage mirroring (§4.7).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use serde::Deserialize;
use sluice_gateway::echo::RequestLog;

use crate::case::{BackendRef, HttpRequest, RequestEntry};
use crate::drive;

use super::{check_response, with_request_id, Sender, Verdict};

const CONSECUTIVE: usize = 3;
const MIRROR_WINDOW: Duration = Duration::from_secs(10);

/// One echo pod's log, labelled the way mirror checks select pods (`app=<service>`).
#[derive(Clone)]
pub struct PodLog {
    pub namespace: String,
    pub app: String,
    pub pod: String,
    pub log: RequestLog,
}

/// What an entry needs beyond its sender.
#[derive(Clone)]
pub struct EntryContext {
    pub pods: Arc<Vec<PodLog>>,
    /// PEMs a `request.clientCert` expectation accepts.
    pub client_cert_pems: Vec<String>,
}

/// Runs one entry to a verdict; `Err` carries the first failed expectation, the request and the answer.
pub async fn run_entry(
    ctx: &EntryContext,
    entry: &RequestEntry,
    sender: &Sender,
) -> Result<(), String> {
    if let Some(mirror) = &entry.mirror_distribution {
        return mirror_distribution(ctx, entry, sender, mirror).await;
    }
    run_modes(ctx, entry, sender).await?;
    // §4.4: checked over the whole entry, since a handshake that failed still asked.
    if entry.expect.client_cert_requested && !sender.client_cert_requested() {
        return Err(
            "the gateway never asked for a client certificate (clientCertRequested)".to_owned(),
        );
    }
    Ok(())
}

/// The entry's mode: `repeat`, `distribution`, or convergence with its mirror check.
async fn run_modes(
    ctx: &EntryContext,
    entry: &RequestEntry,
    sender: &Sender,
) -> Result<(), String> {
    let request_id = sender.request.request_id.then(crate::uuid);
    let request_id = request_id.as_deref();
    if let Some(distribution) = &entry.distribution {
        return drive::weighted(distribution, || async {
            let (verdict, detail, pod) = attempt_with_pod(ctx, entry, sender, request_id).await;
            drive::Outcome {
                verdict,
                detail,
                pod,
            }
        })
        .await;
    }
    if let Some(times) = entry.repeat {
        return drive::repeat(times, || attempt(ctx, entry, sender, request_id)).await;
    }
    let watch_from = Instant::now();
    drive::converge(CONSECUTIVE, || attempt(ctx, entry, sender, request_id)).await?;
    if !entry.expect.mirrored_to.is_empty() {
        let path = expected_path(&sender.request, request_id, None);
        check_mirrors(
            ctx,
            &entry.expect.mirrored_to,
            &path,
            watch_from,
            MIRROR_WINDOW,
        )
        .await?;
    }
    Ok(())
}

/// The path as sent: request id merged in, `{uuid}` replaced (fresh per send when `uuid` is given).
fn expected_path(request: &HttpRequest, request_id: Option<&str>, uuid: Option<&str>) -> String {
    with_ids(&request.path, request_id, uuid)
}

/// `path` with `{uuid}` replaced and the request id merged into its query.
fn with_ids(path: &str, request_id: Option<&str>, uuid: Option<&str>) -> String {
    let mut path = path.to_owned();
    if let Some(uuid) = uuid {
        path = path.replace("{uuid}", uuid);
    }
    match request_id {
        Some(id) => with_request_id(&path, id),
        None => path,
    }
}

/// One send and its verdict; the detail names the request and what came back.
async fn attempt(
    ctx: &EntryContext,
    entry: &RequestEntry,
    sender: &Sender,
    request_id: Option<&str>,
) -> (Verdict, String) {
    let (verdict, detail, _) = attempt_with_pod(ctx, entry, sender, request_id).await;
    (verdict, detail)
}

async fn attempt_with_pod(
    ctx: &EntryContext,
    entry: &RequestEntry,
    sender: &Sender,
    request_id: Option<&str>,
) -> (Verdict, String, String) {
    let uuid = sender.request.path.contains("{uuid}").then(crate::uuid);
    let path = expected_path(&sender.request, request_id, uuid.as_deref());
    // What the backend must see: the expectation's path (a rewrite may change it), with the same ids.
    let backend_path = match entry
        .expect
        .request
        .as_ref()
        .and_then(|r| r.path.as_deref())
    {
        Some(expected) => with_ids(expected, request_id, uuid.as_deref()),
        None => path.clone(),
    };
    let (sent, result) = sender.send(&path).await;
    let (verdict, captured) = check_response(
        &entry.expect,
        &result,
        &backend_path,
        &sender.request.method,
        &ctx.client_cert_pems,
    );
    let answer = match &result {
        Ok(r) => format!(
            "HTTP {} ({}) from pod {:?}",
            r.status, r.version, captured.echo.pod
        ),
        Err(_) => "no HTTP response".to_owned(),
    };
    let detail = match &verdict {
        Verdict::Pass => String::new(),
        Verdict::NotYet(reason) | Verdict::Fatal(reason) => {
            format!("{reason}; request: {sent} -> {answer}")
        }
    };
    (verdict, detail, captured.echo.pod)
}

/// Some pod of each mirror backend logged the echo line for `path` (watching from 30 s before `since`).
async fn check_mirrors(
    ctx: &EntryContext,
    mirrors: &[BackendRef],
    path: &str,
    since: Instant,
    window: Duration,
) -> Result<(), String> {
    let from = since.checked_sub(Duration::from_secs(30)).unwrap_or(since);
    for mirror in mirrors {
        let namespace = mirror.namespace.clone().unwrap_or_default();
        let service = mirror.service.clone().unwrap_or_default();
        let deadline = Instant::now() + window;
        loop {
            let seen = ctx
                .pods
                .iter()
                .filter(|p| p.namespace == namespace && p.app == service)
                .any(|p| p.log.since(from).iter().any(|r| r.echoed && r.uri == path));
            if seen {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "mirror {namespace}/{service} never logged `Echoing back request made to {path}` within {window:?}"
                ));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MirrorDistribution {
    requests: usize,
    concurrency: Option<usize>,
    attempts: usize,
    tolerance_std_devs: f64,
    consecutive: Option<usize>,
    mirrors: Vec<MirrorShare>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MirrorShare {
    namespace: String,
    service: String,
    percent: f64,
}

/// §4.7: per attempt a fresh request id; the mirrors' log counts must be within the binomial tolerance.
async fn mirror_distribution(
    ctx: &EntryContext,
    entry: &RequestEntry,
    sender: &Sender,
    raw: &serde_yaml_ng::Value,
) -> Result<(), String> {
    let spec: MirrorDistribution = serde_yaml_ng::from_value(raw.clone())
        .map_err(|e| format!("malformed mirrorDistribution: {e}"))?;
    let mut last = String::new();
    for round in 1..=spec.attempts.max(1) {
        let id = crate::uuid();
        let started = Instant::now();
        let path = expected_path(&sender.request, Some(&id), None);
        let needed = spec.consecutive.unwrap_or(1).max(1);
        let sends: Vec<Result<(), String>> = stream::iter(0..spec.requests)
            .map(|_| drive::converge(needed, || attempt(ctx, entry, sender, Some(&id))))
            .buffer_unordered(spec.concurrency.unwrap_or(10).max(1))
            .collect()
            .await;
        if let Some(Err(detail)) = sends.into_iter().find(Result::is_err) {
            return Err(format!(
                "round {round}: a request never succeeded: {detail}"
            ));
        }
        // Mirrors are fire-and-forget: give the last ones a moment to land.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut failures = Vec::new();
        for mirror in &spec.mirrors {
            let count: usize = ctx
                .pods
                .iter()
                .filter(|p| p.namespace == mirror.namespace && p.app == mirror.service)
                .map(|p| {
                    p.log
                        .since(started)
                        .iter()
                        .filter(|r| r.echoed && r.uri == path)
                        .count()
                })
                .sum();
            let n = spec.requests as f64;
            let p = mirror.percent / 100.0;
            let mean = n * p;
            let slack = spec.tolerance_std_devs * (n * p * (1.0 - p)).sqrt();
            if (count as f64 - mean).abs() > slack {
                failures.push(format!(
                    "{}/{} logged {count} mirrored requests, expected {mean:.0} ± {slack:.1}",
                    mirror.namespace, mirror.service
                ));
            }
        }
        if failures.is_empty() {
            return Ok(());
        }
        last = format!("round {round}: {}", failures.join("; "));
    }
    Err(format!("percentage mirroring never matched: {last}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logged(uri: &str) -> sluice_gateway::echo::ReceivedRequest {
        sluice_gateway::echo::ReceivedRequest {
            at: Instant::now(),
            remote: std::net::SocketAddr::from(([127, 0, 0, 1], 1)),
            method: "GET".into(),
            uri: uri.into(),
            host: "h".into(),
            proto: "HTTP/1.1".into(),
            headers: Vec::new(),
            body_len: 0,
            body_sha256: String::new(),
            echoed: true,
        }
    }

    #[tokio::test]
    async fn mirror_check_needs_the_echo_line_on_a_pod_of_the_mirror() {
        let log = RequestLog::default();
        let ctx = EntryContext {
            pods: Arc::new(vec![PodLog {
                namespace: "ns".into(),
                app: "v2".into(),
                pod: "v2-abc-def".into(),
                log: log.clone(),
            }]),
            client_cert_pems: Vec::new(),
        };
        let mirror = [BackendRef {
            namespace: Some("ns".into()),
            service: Some("v2".into()),
        }];
        let since = Instant::now();
        let missing = check_mirrors(&ctx, &mirror, "/m?id=1", since, Duration::ZERO).await;
        assert!(missing
            .expect_err("no echo line yet")
            .contains("never logged"));
        log.record(logged("/m?id=2"));
        assert!(
            check_mirrors(&ctx, &mirror, "/m?id=1", since, Duration::ZERO)
                .await
                .is_err()
        );
        log.record(logged("/m?id=1"));
        assert_eq!(
            check_mirrors(&ctx, &mirror, "/m?id=1", since, Duration::ZERO).await,
            Ok(())
        );
    }
}
