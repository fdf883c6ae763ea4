//! Leader election when the Lease cannot be taken: a namespace that does not exist, a missing
//! RBAC grant. Each is said at WARN with the API server's reason, retried with a doubling wait,
//! and the candidate leads once the cause is fixed.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sluice_controller::leader::{self, LeaseConfig};
use sluice_testing::{objects, FakeApiServer};
use tokio::sync::watch;

const LIMIT: Duration = Duration::from_secs(20);
const RETRY: Duration = Duration::from_millis(20);

/// Every log line, for the test to read back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn lease_warnings(&self) -> Vec<String> {
        let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|l| l.contains("WARN") && l.contains("leader Lease"))
            .map(str::to_string)
            .collect()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Routes this thread's logs into the returned buffer. The tests run on a current-thread
/// runtime, so the election task logs on this thread too.
fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

fn candidate(
    server: &FakeApiServer,
    identity: &str,
) -> (tokio::task::JoinHandle<()>, watch::Receiver<bool>) {
    let client = server.client_as(identity).expect("client");
    let mut lease = LeaseConfig::new("sluice-system", "sluice-controller", identity);
    lease.lease_duration = Duration::from_secs(3);
    lease.renew_deadline = Duration::from_secs(2);
    lease.retry_period = RETRY;
    leader::spawn(client, lease)
}

async fn until_warnings(captured: &Captured, count: usize) -> Vec<String> {
    let wait = async {
        loop {
            let lines = captured.lease_warnings();
            if lines.len() >= count {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(LIMIT, wait).await.unwrap_or_else(|_| {
        panic!(
            "fewer than {count} Lease warnings: {:?}",
            captured.lease_warnings()
        )
    })
}

/// The `retry_in` field of each warning, as logged (`20ms`, `40ms`, ...).
fn retry_in(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("retry_in="))
                .unwrap_or("?")
                .to_string()
        })
        .collect()
}

async fn until_leader(leader: &mut watch::Receiver<bool>) {
    tokio::time::timeout(LIMIT, leader.wait_for(|l| *l))
        .await
        .expect("leads once the cause is fixed")
        .expect("election running");
}

#[tokio::test]
async fn a_lease_namespace_that_does_not_exist_is_warned_about_with_backoff_until_created() {
    let (captured, _guard) = capture();
    let server = FakeApiServer::start().await.expect("fake API server");
    let (task, mut leader) = candidate(&server, "replica-a");

    let lines = until_warnings(&captured, 3).await;
    assert!(!*leader.borrow(), "no leader without a Lease");
    assert!(
        lines[0].contains(r#"namespaces "sluice-system" not found"#),
        "the API server's reason is in the log: {}",
        lines[0]
    );
    assert!(lines[0].contains("namespace=sluice-system"), "{}", lines[0]);
    assert_eq!(retry_in(&lines[..3]), ["20ms", "40ms", "80ms"]);

    server
        .create(objects::namespace("sluice-system"))
        .expect("namespace");
    until_leader(&mut leader).await;
    task.abort();
}

#[tokio::test]
async fn a_forbidden_lease_is_warned_about_with_backoff_until_permitted() {
    let (captured, _guard) = capture();
    let server = FakeApiServer::start().await.expect("fake API server");
    server
        .create(objects::namespace("sluice-system"))
        .expect("namespace");
    server.forbid("replica-b");
    let (task, mut leader) = candidate(&server, "replica-b");

    let lines = until_warnings(&captured, 2).await;
    assert!(!*leader.borrow());
    assert!(
        lines[0].contains(r#"leases is forbidden: User "replica-b" cannot get"#),
        "the API server's reason is in the log: {}",
        lines[0]
    );
    assert_eq!(retry_in(&lines[..2]), ["20ms", "40ms"]);

    server.permit("replica-b");
    until_leader(&mut leader).await;
    task.abort();
}
