//! Standalone mode end to end: listeners follow the YAML without a restart.

#![allow(clippy::unwrap_used)]

use sluice_test_support::standalone as harness;

use harness::*;
use sluice_gateway::standalone::StandaloneOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_a_listener_port_serves_it_and_removing_it_stops_it() {
    let backend = Backend::start("app").await;
    let (first, second) = (free_port(), free_port());
    let base = format!(
        "{CLASS}{}{}",
        service("app", &backend),
        route("app", "gw", "app")
    );
    let config = ConfigDir::new(&format!("{base}{}", gateway("gw", &[first])));
    let running = start(&config).await;
    let client = client();
    assert_eq!(pod_behind(&client, local(first)).await.unwrap(), "app-pod");
    assert!(pod_behind(&client, local(second)).await.is_err());

    let generation = reload(
        &running,
        &config,
        &format!("{base}{}", gateway("gw", &[first, second])),
    )
    .await;
    assert!(generation >= 2);
    assert_eq!(pod_behind(&client, local(second)).await.unwrap(), "app-pod");
    assert_eq!(pod_behind(&client, local(first)).await.unwrap(), "app-pod");

    reload(
        &running,
        &config,
        &format!("{base}{}", gateway("gw", &[second])),
    )
    .await;
    assert!(
        tokio::net::TcpStream::connect(local(first)).await.is_err(),
        "the removed listener's port no longer accepts"
    );
    assert_eq!(pod_behind(&client, local(second)).await.unwrap(), "app-pod");
    assert_eq!(running.listener_status().serving, vec![local(second)]);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_from_the_address_pool_share_a_port() {
    let (blue, green) = (Backend::start("blue").await, Backend::start("green").await);
    let port = free_port();
    let yaml = format!(
        "{CLASS}{}{}{}{}{}{}",
        service("blue", &blue),
        service("green", &green),
        gateway("gw-blue", &[port]),
        gateway("gw-green", &[port]),
        route("blue", "gw-blue", "blue"),
        route("green", "gw-green", "green"),
    );
    let config = ConfigDir::new(&yaml);
    let mut opts = StandaloneOptions::for_tests(config.path());
    // Loopback addresses 127.0.0.x all reach this host on Linux.
    opts.address_pool = Some("127.77.0.0/24".parse().unwrap());
    let running = start_with(opts).await;

    let status = running.listener_status();
    assert_eq!(status.serving.len(), 2, "{status:?}");
    assert!(status.serving.iter().all(|a| a.port() == port));
    let client = client();
    let mut pods: Vec<String> = Vec::new();
    for address in &status.serving {
        assert!(
            address.ip().to_string().starts_with("127.77.0."),
            "{address}"
        );
        pods.push(pod_behind(&client, *address).await.unwrap());
    }
    pods.sort();
    assert_eq!(
        pods,
        ["blue-pod", "green-pod"],
        "each address serves its own Gateway"
    );

    let (_, status) = admin_get(&running, "/status").await;
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&status).unwrap();
    for gw in ["Gateway/default/gw-blue", "Gateway/default/gw-green"] {
        let address = &doc[gw]["addresses"][0]["value"];
        assert!(
            address.as_str().is_some_and(|a| a.starts_with("127.77.0.")),
            "{gw} reports its pool address: {status}"
        );
    }
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_idle_keep_alive_connections_without_waiting_out_the_grace() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (_backend, port, yaml) = one_app_on_a_free_port().await;
    let config = ConfigDir::new(&yaml);
    let mut opts = StandaloneOptions::for_tests(config.path());
    opts.shutdown_grace = Duration::from_secs(30);
    let running = start_with(opts).await;

    let mut tcp = tokio::net::TcpStream::connect(local(port)).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let response = tokio::time::timeout(WAIT, read_response(&mut tcp))
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let mut buf = [0u8; 64];

    // The connection now idles in keep-alive.
    let started = Instant::now();
    tokio::time::timeout(WAIT, running.shutdown())
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let closed = tokio::time::timeout(WAIT, tcp.read(&mut buf))
        .await
        .unwrap();
    assert!(
        matches!(closed, Ok(0) | Err(_)),
        "the idle connection was closed"
    );
}

/// Reads one HTTP/1.1 response framed by Content-Length, leaving the connection open.
async fn read_response(tcp: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&data).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .expect("a Content-Length response");
            if data.len() >= end + 4 + length {
                return text;
            }
        }
        let n = tcp.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed mid-response: {text}");
        data.extend_from_slice(&chunk[..n]);
    }
}
