//! Standalone mode end to end: HTTPS listeners (a Gateway's and a ListenerSet's), certificates chosen by
//! SNI, HTTP/2 by ALPN.

#![allow(clippy::unwrap_used)]

use sluice_test_support::standalone as harness;

use std::net::SocketAddr;

use harness::*;

struct Cert {
    pem: String,
    key_pem: String,
    der: Vec<u8>,
}

fn cert(host: &str) -> Cert {
    cert_for(&[host])
}

/// One self-signed certificate naming every host in `hosts`.
fn cert_for(hosts: &[&str]) -> Cert {
    let names = hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>();
    let generated = rcgen::generate_simple_self_signed(names).unwrap();
    Cert {
        pem: generated.cert.pem(),
        key_pem: generated.key_pair.serialize_pem(),
        der: generated.cert.der().to_vec(),
    }
}

/// `text` as the body of a YAML block scalar under a key indented by two.
fn block(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}

fn secret(name: &str, cert: &Cert) -> String {
    format!(
        "apiVersion: v1
kind: Secret
metadata: {{name: {name}, namespace: default}}
type: kubernetes.io/tls
stringData:
  tls.crt: |
{crt}  tls.key: |
{key}---
",
        crt = block(&cert.pem),
        key = block(&cert.key_pem),
    )
}

/// One Gateway with an HTTPS listener per `(hostname, secret)`, all on `port`.
fn https_gateway(port: u16, listeners: &[(&str, &str)]) -> String {
    let mut out = String::from(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: sluice
  listeners:
",
    );
    for (i, (hostname, secret)) in listeners.iter().enumerate() {
        out.push_str(&format!(
            "  - name: https-{i}
    protocol: HTTPS
    port: {port}
    hostname: {hostname}
    tls:
      mode: Terminate
      certificateRefs:
      - {{kind: Secret, name: {secret}}}
"
        ));
    }
    out.push_str("---\n");
    out
}

fn client_for(host: &str, address: SocketAddr, trusted: &Cert) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_der(&trusted.der).unwrap())
        .resolve(host, address)
        .timeout(WAIT)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_chooses_between_two_certificates_and_alpn_serves_h2() {
    let backend = Backend::start("app").await;
    let port = free_port();
    let (a, b) = (cert("a.example.com"), cert("b.example.com"));
    let yaml = format!(
        "{CLASS}{}{}{}{}{}",
        secret("cert-a", &a),
        secret("cert-b", &b),
        service("app", &backend),
        https_gateway(
            port,
            &[("a.example.com", "cert-a"), ("b.example.com", "cert-b")]
        ),
        route("app", "gw", "app"),
    );
    let config = ConfigDir::new(&yaml);
    let running = start(&config).await;
    assert_eq!(
        running.listener_status().serving,
        vec![local(port)],
        "{:?}",
        running.listener_status()
    );

    for (host, right, wrong) in [("a.example.com", &a, &b), ("b.example.com", &b, &a)] {
        let url = format!("https://{host}:{port}/tls");
        let response = client_for(host, local(port), right)
            .get(&url)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.version(),
            reqwest::Version::HTTP_2,
            "h2 negotiated by ALPN"
        );
        assert_eq!(response.status(), 200);
        let echo: serde_json::Value =
            serde_json::from_str(&response.text().await.unwrap()).unwrap();
        assert_eq!(echo["pod"], "app-pod");
        assert_eq!(echo["headers"]["X-Forwarded-Proto"][0], "https", "{echo}");
        assert!(
            client_for(host, local(port), wrong)
                .get(&url)
                .send()
                .await
                .is_err(),
            "{host} is served its own certificate, not the other listener's"
        );
    }
    running.shutdown().await;
}

/// ListenerSet `team` for Gateway `gw`: one HTTPS listener `{hostname}` on `port`.
fn https_listener_set(port: u16, hostname: &str, secret: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {{name: team, namespace: default}}
spec:
  parentRef: {{name: gw}}
  listeners:
  - name: https
    protocol: HTTPS
    port: {port}
    hostname: {hostname}
    tls:
      certificateRefs:
      - {{kind: Secret, name: {secret}}}
---
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_set_serves_its_own_certificate_on_the_gateways_https_port() {
    let backend = Backend::start("app").await;
    let port = free_port();
    let (a, b) = (cert("a.example.com"), cert("b.example.com"));
    let gateway = https_gateway(port, &[("a.example.com", "cert-a")]).replace(
        "  listeners:\n",
        "  allowedListeners: {namespaces: {from: Same}}\n  listeners:\n",
    );
    let route = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: app, namespace: default}
spec:
  parentRefs:
  - {name: gw}
  - {kind: ListenerSet, name: team}
  rules:
  - backendRefs:
    - {name: app, port: 8080}
---
";
    let yaml = format!(
        "{CLASS}{}{}{}{gateway}{}{route}",
        secret("cert-a", &a),
        secret("cert-b", &b),
        service("app", &backend),
        https_listener_set(port, "b.example.com", "cert-b"),
    );
    let config = ConfigDir::new(&yaml);
    let running = start(&config).await;
    assert_eq!(running.listener_status().serving, vec![local(port)]);

    for (host, right, wrong) in [("a.example.com", &a, &b), ("b.example.com", &b, &a)] {
        let url = format!("https://{host}:{port}/tls");
        let response = client_for(host, local(port), right)
            .get(&url)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{host}");
        assert!(
            client_for(host, local(port), wrong)
                .get(&url)
                .send()
                .await
                .is_err(),
            "{host} is served its own listener's certificate"
        );
    }
}

/// An HTTP/2 connection over TLS with SNI `sni`, trusting `trusted`; ALPN `h2` only.
async fn h2_connection(
    address: SocketAddr,
    sni: &str,
    trusted: &Cert,
) -> h2::client::SendRequest<bytes::Bytes> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.der.clone().into()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    let (sender, connection) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(connection);
    sender
}

/// The status of `GET /` with `:authority` `authority` on an open HTTP/2 connection.
async fn status_on(sender: &mut h2::client::SendRequest<bytes::Bytes>, authority: &str) -> u16 {
    let request = http::Request::get(format!("https://{authority}/"))
        .body(())
        .unwrap();
    let (response, _) = sender.send_request(request, true).unwrap();
    response.await.unwrap().status().as_u16()
}

/// A client may reuse an HTTP/2 connection for any host its certificate covers (RFC 9113
/// §9.1.1). When that host belongs to another listener than the one SNI selected, the request is
/// answered 421 so the client opens a connection of its own; the connection stays usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coalesced_request_for_another_listener_is_misdirected() {
    let backend = Backend::start("app").await;
    let port = free_port();
    // One certificate for both listeners: exactly what lets a browser coalesce.
    let shared = cert_for(&["*.a.example.com", "b.example.com"]);
    let yaml = format!(
        "{CLASS}{}{}{}{}",
        secret("shared", &shared),
        service("app", &backend),
        https_gateway(
            port,
            &[("'*.a.example.com'", "shared"), ("b.example.com", "shared")]
        ),
        route("app", "gw", "app"),
    );
    let config = ConfigDir::new(&yaml);
    let running = start(&config).await;

    let mut on_a = h2_connection(local(port), "x.a.example.com", &shared).await;
    assert_eq!(status_on(&mut on_a, "x.a.example.com").await, 200);
    assert_eq!(
        status_on(&mut on_a, "y.a.example.com").await,
        200,
        "another host of the same listener is served on the connection"
    );
    assert_eq!(status_on(&mut on_a, "b.example.com").await, 421);
    assert_eq!(
        status_on(&mut on_a, "x.a.example.com").await,
        200,
        "still usable"
    );

    let mut on_b = h2_connection(local(port), "b.example.com", &shared).await;
    assert_eq!(status_on(&mut on_b, "b.example.com").await, 200);
    assert_eq!(status_on(&mut on_b, "x.a.example.com").await, 421);
    assert_eq!(
        status_on(&mut on_b, "unknown.example.com").await,
        404,
        "a host no listener serves is unknown, not misdirected"
    );
    running.shutdown().await;
}
