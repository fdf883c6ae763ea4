//! Client aborts are routine at the edge: counted, never an ERROR or WARN line.

#![allow(clippy::unwrap_used)]

use sluice_test_support::standalone as harness;

use std::time::Duration;

use harness::{local, ConfigDir};
use sluice_gateway::standalone::StandaloneOptions;
use sluice_test_support::logs::Captured;
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_aborts_are_counted_and_not_logged_as_errors() {
    // Everything logged at WARN or above, from tracing and from Pingora's `log` records.
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_writer(move || writer.clone())
        .try_init()
        .unwrap();

    let (_backend, port, yaml) = harness::one_app_on_a_free_port().await;
    let config = ConfigDir::new(&yaml);
    let running = harness::start_with(StandaloneOptions::for_tests(config.path())).await;
    let aborts = &running.metrics().edge.client_aborts;
    for _ in 0..5 {
        let mut tcp = tokio::net::TcpStream::connect(local(port)).await.unwrap();
        tcp.write_all(b"GET /?delay=2s HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The client gives up before the backend answers.
        drop(tcp);
    }
    tokio::time::timeout(harness::WAIT, async {
        while aborts.get() < 5 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("every abort is counted");
    let logged = captured.text();
    assert!(
        !logged.contains("ERROR") && !logged.contains("WARN"),
        "aborts were logged loudly:\n{logged}"
    );
}
