//! SIGTERM through the real binary: not ready first, accepting through the drain delay, requests
//! in flight finished within the grace, a clean exit, and no request of a well-behaved client
//! (one that stops sending when `/readyz` turns 503) fails.

#![allow(clippy::unwrap_used)]

use sluice_test_support::standalone as harness;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::{free_port, local, url, ConfigDir};

/// Polls `url` every `poll` until it answers `status`; an error if that takes over `deadline`.
async fn answers(
    client: &reqwest::Client,
    url: &str,
    status: u16,
    deadline: Duration,
    poll: Duration,
) -> Result<(), tokio::time::error::Elapsed> {
    tokio::time::timeout(deadline, async {
        loop {
            if let Ok(r) = client.get(url).send().await {
                if r.status() == status {
                    return;
                }
            }
            tokio::time::sleep(poll).await;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_without_failing_a_request() {
    let (_backend, port, yaml) = harness::one_app_on_a_free_port().await;
    let admin = local(free_port());
    let config = ConfigDir::new(&yaml);
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("--config")
        .arg(config.path())
        .args(["--admin-address", &admin.to_string()])
        .args(["--listen-address", "127.0.0.1"])
        .args(["--drain-delay", "2s", "--shutdown-grace", "5s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = harness::client();
    let ready = url(admin, "/readyz");
    answers(
        &client,
        &ready,
        200,
        harness::WAIT,
        Duration::from_millis(20),
    )
    .await
    .expect("sluice becomes ready");

    // Keep-alive load from four clients until the readiness probe says not ready.
    let gateway = local(port);
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (stop, served, failed, client) = (
            stop.clone(),
            served.clone(),
            failed.clone(),
            harness::client(),
        );
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Acquire) {
                let sent = client.get(url(gateway, "/?delay=50ms")).send().await;
                match sent {
                    Ok(r) if r.status() == 200 => match r.text().await {
                        Ok(_) => {
                            served.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            eprintln!("failed body: {e}");
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    },
                    Ok(r) => {
                        eprintln!("failed: {}", r.status());
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        eprintln!("failed: {e}");
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    // A long request in flight across the whole drain. Its client connects first and sends it
    // on that kept-alive connection: on a loaded machine a fresh connect could land after
    // accepting stops, which is the drain working, not a request failing.
    let long_client = harness::client();
    let warm = long_client
        .get(url(gateway, "/"))
        .send()
        .await
        .expect("warm-up");
    assert_eq!(warm.status(), 200);
    warm.bytes().await.expect("warm-up body");
    let long = tokio::spawn({
        let client = long_client;
        async move {
            client
                .get(url(gateway, "/?delay=2s"))
                .send()
                .await
                .map(|r| r.status())
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let signalled = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    // Not ready at once, while the gateway port still answers.
    answers(
        &client,
        &ready,
        503,
        Duration::from_millis(500),
        Duration::from_millis(10),
    )
    .await
    .expect("/readyz turns 503 right after SIGTERM");
    let fresh = harness::client()
        .get(url(gateway, "/"))
        .send()
        .await
        .expect("still accepting during the drain delay");
    assert_eq!(fresh.status(), 200);
    // The load balancer takes the endpoint out; the clients stop.
    stop.store(true, Ordering::Release);
    for task in load {
        task.await.unwrap();
    }

    assert_eq!(
        long.await.unwrap().unwrap(),
        200,
        "the long request finished"
    );
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    let took = signalled.elapsed();
    assert!(exit.success(), "{exit:?}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(7),
        "exited after {took:?}"
    );
    assert_eq!(failed.load(Ordering::Relaxed), 0, "failed requests");
    assert!(served.load(Ordering::Relaxed) > 10);
    // And it no longer accepts.
    assert!(tokio::net::TcpStream::connect(gateway).await.is_err());
}
