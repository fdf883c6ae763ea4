//! TLSRoute end to end from YAML: a `TLS` listener in Passthrough mode, routed on SNI, started the
//! way the binary starts standalone mode. The client verifies the backend's own certificate, so a
//! handshake that succeeds proves Sluice did not terminate it.

use sluice_test_support::standalone::{self, local, service_at, ConfigDir, CLASS};
use sluice_test_support::tls_route::{greeting_and_echo, Pki, Seen, StreamBackend};

/// Gateway `gw` with a Passthrough listener on `port` for `*.example.com`, and TLSRoute `a`
/// sending `a.example.com` to Service `a`.
fn config(port: u16, backend: u16) -> String {
    format!(
        "{CLASS}{}\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: default}}
spec:
  gatewayClassName: sluice
  listeners:
  - name: tls
    protocol: TLS
    port: {port}
    hostname: '*.example.com'
    tls: {{mode: Passthrough}}
    allowedRoutes:
      kinds: [{{kind: TLSRoute}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {{name: a, namespace: default}}
spec:
  parentRefs:
  - name: gw
  hostnames: [a.example.com]
  rules:
  - backendRefs:
    - {{name: a, port: 8080}}
",
        service_at("a", backend),
    )
}

#[tokio::test]
async fn tls_route_passthrough_from_yaml_keeps_the_clients_sni_and_alpn() {
    let pki = Pki::new("backend-ca");
    let backend = StreamBackend::tls("a", pki.issue(&["a.example.com"])).await;
    let port = standalone::free_port();
    let dir = ConfigDir::new(&config(port, backend.addr.port()));
    let _sluice = standalone::start(&dir).await;

    let tcp = tokio::net::TcpStream::connect(local(port)).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("a.example.com").unwrap();
    let mut tls = pki
        .client(&["h2", "http/1.1"])
        .connect(name, tcp)
        .await
        .expect("the backend's handshake, through Sluice");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    assert_eq!(greeting_and_echo(&mut tls).await, "a a.example.com h2");
    assert_eq!(
        backend.seen(),
        vec![Seen {
            sni: Some("a.example.com".into()),
            alpn: Some("h2".into())
        }]
    );

    // A name the listener takes but no route serves: closed, and the backend sees nothing more.
    let tcp = tokio::net::TcpStream::connect(local(port)).await.unwrap();
    let other = rustls::pki_types::ServerName::try_from("b.example.com").unwrap();
    assert!(pki.client(&[]).connect(other, tcp).await.is_err());
    assert_eq!(backend.seen().len(), 1);
}
