//! Bounded waiting, once for every suite: each wait has a deadline and panics naming what it
//! waited for.

use std::future::Future;
use std::time::Duration;

/// How often [`until`] probes.
const POLL: Duration = Duration::from_millis(20);

/// Probes every 20 ms until `probe` gives a value; panics naming `what` after `deadline`.
pub async fn until<T>(what: &str, deadline: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    within(what, deadline, async {
        loop {
            if let Some(v) = probe() {
                return v;
            }
            tokio::time::sleep(POLL).await;
        }
    })
    .await
}

/// Runs `f` to completion; panics naming `what` if it takes longer than `deadline`.
pub async fn within<T>(what: &str, deadline: Duration, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(deadline, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}
