//! `sluice demo` end to end: the README's first command answers and mirrors.

#![allow(clippy::unwrap_used)]

use sluice_test_support::standalone as harness;

use std::time::Duration;

use harness::*;
use sluice_gateway::cli::demo::{Demo, DemoOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_echoes_the_body_and_mirrors_the_request() {
    let demo = tokio::time::timeout(
        WAIT,
        Demo::start(DemoOptions {
            port: free_port(),
            admin_address: "127.0.0.1:0".parse().unwrap(),
            print: false,
        }),
    )
    .await
    .unwrap()
    .unwrap();

    // curl http://127.0.0.1:8000/ -d 'Hello world'
    let response = client()
        .post(url(demo.gateway_addr(), "/"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("Hello world")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "Hello world");
    assert_eq!(demo.pipy_log().len(), 1);

    // The mirror is fire-and-forget: wait for it rather than assume it arrived first.
    tokio::time::timeout(WAIT, async {
        while demo.mirror_log().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("pipy-mirror receives a copy of the request");
    demo.shutdown().await;
}
