//! Lease-based leader election (coordination.k8s.io/v1), as client-go's leaderelection does it.
//!
//! The holder renews the Lease every `retry_period`. Every update carries the resourceVersion it
//! read, so two candidates racing for an expired Lease cannot both win. A holder that has not
//! renewed within `renew_deadline` (shorter than the lease duration) steps down on its own, before
//! any other candidate may take the expired Lease: at most one leader at a time.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use kube::Client;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::error_chain;

/// Where the Lease lives and its timings; [`LeaseConfig::new`] gives client-go's defaults.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// Namespace of the Lease object.
    pub namespace: String,
    /// Name of the Lease object, shared by every candidate of one deployment.
    pub name: String,
    /// This candidate's identity (the pod name in a cluster).
    pub identity: String,
    /// How long a Lease stays valid without renewal: others may take it after that (default 15 s).
    pub lease_duration: Duration,
    /// A leader that could not renew for this long steps down. Must be below `lease_duration`.
    pub renew_deadline: Duration,
    /// How often the holder renews and a candidate retries (default 2 s).
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// client-go's defaults: 15 s lease, 10 s renew deadline, 2 s retry.
    pub fn new(namespace: &str, name: &str, identity: &str) -> LeaseConfig {
        LeaseConfig {
            namespace: namespace.to_string(),
            name: name.to_string(),
            identity: identity.to_string(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum LeaseError {
    #[error("the Lease is held by {0}")]
    HeldByOther(String),
    #[error("the Lease request did not finish before the renew deadline")]
    Timeout,
    #[error("Lease request failed")]
    Api(#[source] kube::Error),
}

/// Runs the election until aborted; the receiver says whether this candidate leads right now.
pub fn spawn(
    client: Client,
    config: LeaseConfig,
) -> (tokio::task::JoinHandle<()>, watch::Receiver<bool>) {
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        let api: Api<Lease> = Api::namespaced(client, &config.namespace);
        let mut last_renewed: Option<Instant> = None;
        let mut backoff = Backoff::new(config.retry_period);
        loop {
            // Measured from before the request, so stepping down never comes later than the
            // Lease's own expiry as other candidates compute it from renewTime.
            let attempt = Instant::now();
            // The client retries 503s and timeouts on its own; a leader's attempt must not outlast
            // its renew deadline, or it would still think it leads after the Lease expired.
            let budget = match last_renewed {
                Some(t) if *tx.borrow() => config.renew_deadline.saturating_sub(t.elapsed()),
                _ => config.renew_deadline,
            };
            let result = tokio::time::timeout(budget, try_acquire_or_renew(&api, &config))
                .await
                .unwrap_or(Err(LeaseError::Timeout));
            let wait = match &result {
                // A missing namespace or a forbidden verb does not fix itself in two seconds;
                // say why at WARN, and ask less often while it lasts.
                Err(e @ (LeaseError::Api(_) | LeaseError::Timeout)) => {
                    // A leader keeps its pace: it must renew (or step down) before the deadline.
                    let wait = if *tx.borrow() {
                        config.retry_period
                    } else {
                        backoff.next()
                    };
                    tracing::warn!(
                        namespace = %config.namespace,
                        lease = %config.name,
                        identity = %config.identity,
                        retry_in = ?wait,
                        "cannot take or renew the leader Lease: {}",
                        error_chain(e)
                    );
                    wait
                }
                _ => backoff.reset(),
            };
            match result {
                Ok(()) => {
                    last_renewed = Some(attempt);
                    if !*tx.borrow() {
                        tracing::info!(identity = %config.identity, "became leader");
                    }
                    // Only a change wakes the provisioner and the status writer, not every
                    // renewal (every retry period).
                    tx.send_if_modified(|leading| !std::mem::replace(leading, true));
                }
                Err(e) => {
                    let expired = last_renewed.is_none_or(|t| t.elapsed() >= config.renew_deadline);
                    if *tx.borrow() && (expired || matches!(e, LeaseError::HeldByOther(_))) {
                        tracing::warn!(identity = %config.identity, "stepping down: {e}");
                        tx.send_if_modified(|leading| std::mem::replace(leading, false));
                        last_renewed = None;
                    } else if !*tx.borrow() && matches!(e, LeaseError::HeldByOther(_)) {
                        tracing::debug!("not leader: {e}");
                    }
                }
            }
            tokio::time::sleep(wait).await;
        }
    });
    (task, rx)
}

async fn try_acquire_or_renew(api: &Api<Lease>, config: &LeaseConfig) -> Result<(), LeaseError> {
    let now = Timestamp::now();
    let existing = api.get_opt(&config.name).await.map_err(LeaseError::Api)?;
    let Some(mut lease) = existing else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(config.name.clone()),
                namespace: Some(config.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(held_spec(config, now, 0)),
        };
        api.create(&PostParams::default(), &lease)
            .await
            .map_err(LeaseError::Api)?;
        return Ok(());
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let spec = if holder == config.identity {
        LeaseSpec {
            renew_time: Some(MicroTime(now)),
            ..spec
        }
    } else {
        let expires = spec
            .renew_time
            .as_ref()
            .map(|t| t.0)
            .unwrap_or(Timestamp::UNIX_EPOCH)
            .checked_add(SignedDuration::from_secs(i64::from(
                spec.lease_duration_seconds.unwrap_or(0),
            )))
            .unwrap_or(Timestamp::UNIX_EPOCH);
        if !holder.is_empty() && expires > now {
            return Err(LeaseError::HeldByOther(holder));
        }
        held_spec(config, now, spec.lease_transitions.unwrap_or(0) + 1)
    };
    lease.spec = Some(spec);
    // The resourceVersion read above is the precondition: a concurrent winner makes this 409.
    api.replace(&config.name, &PostParams::default(), &lease)
        .await
        .map_err(LeaseError::Api)?;
    Ok(())
}

fn held_spec(config: &LeaseConfig, now: Timestamp, transitions: i32) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(config.identity.clone()),
        lease_duration_seconds: Some(
            i32::try_from(config.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX),
        ),
        acquire_time: Some(MicroTime(now)),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_resets_to_the_retry_period() {
        let mut b = Backoff::new(Duration::from_secs(2));
        let waits: Vec<u64> = (0..6).map(|_| b.next().as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 16, 30, 30]);
        assert_eq!(b.reset(), Duration::from_secs(2));
        assert_eq!(b.next(), Duration::from_secs(2));
    }

    #[test]
    fn a_lease_error_is_logged_with_its_cause() {
        let e = LeaseError::Api(kube::Error::Service("namespaces \"nope\" not found".into()));
        assert_eq!(
            error_chain(&e),
            "Lease request failed: ServiceError: namespaces \"nope\" not found"
        );
    }
}
