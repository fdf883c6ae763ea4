//! TLS terminate listeners through the real accept path: Sluice handshakes with the listener's
//! certificate and streams the plaintext, over TLS verified under a BackendTLSPolicy when the
//! backend has one; HTTPS, terminate and passthrough listeners share one port.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use sluice_controller::snapshot::{
    Backend, BackendProtocol, BackendTarget, BackendTls, BackendTlsMode, ClientValidation,
    ClientValidationMode, Listener, ListenerKind, Trust,
};
use sluice_test_support::proxy::bounded;
use sluice_test_support::tls_route::{
    greeting_and_echo, listener, route, snapshot, Gateway, Pki, Seen, StreamBackend,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BACKEND_HOST: &str = "backend.example.com";

/// `backend`'s Service reached over TLS under a policy trusting `ca` for [`BACKEND_HOST`].
fn verified(backend: &StreamBackend, ca: &Pki) -> BackendTarget {
    let tls = BackendTls::new(
        "default/policy".into(),
        BACKEND_HOST,
        vec![],
        Trust::ConfigMaps(vec!["default/ca".into()]),
        &[ca.der()],
    )
    .unwrap();
    let service = Backend::new(
        format!("default/{}:443", backend.name),
        vec![backend.addr],
        BackendProtocol::Http1,
    )
    .with_tls(Some(BackendTlsMode::Verify(Arc::new(tls))));
    BackendTarget::Service(Arc::new(service))
}

/// A terminate listener `name` for t.example.com, with a certificate from `ca`, routing to
/// `backend`.
fn terminate(name: &str, ca: &Pki, backend: &StreamBackend) -> Listener {
    let entry = route("t", vec![(1, backend.target())]);
    listener(
        name,
        ListenerKind::TlsTerminate,
        Some("t.example.com"),
        Some(ca.issue(&["t.example.com"])),
        vec![("t.example.com", entry)],
    )
}

#[tokio::test]
async fn terminate_serves_listener_certificate_and_streams_plaintext() {
    bounded(async {
        let gateway_ca = Pki::new("gateway-ca");
        let plain = StreamBackend::tcp("plain").await;
        let gw = Gateway::start(|addr| snapshot(addr, vec![terminate("tls", &gateway_ca, &plain)]))
            .await;
        let mut tls = gw
            .connect(&gateway_ca, "t.example.com", &["h2"])
            .await
            .unwrap();
        assert_eq!(
            tls.get_ref().1.alpn_protocol(),
            None,
            "a terminated stream is not HTTP"
        );
        assert_eq!(greeting_and_echo(&mut tls).await, "plain - -");
        tls.shutdown().await.unwrap();
        let mut rest = Vec::new();
        tls.read_to_end(&mut rest).await.unwrap();
        gw.counted("default/t", "default/plain:443", "terminate", "closed")
            .await;
    })
    .await;
}

#[tokio::test]
async fn terminate_to_tls_backend_verifies_backend() {
    bounded(async {
        let gateway_ca = Pki::new("gateway-ca");
        let backend_ca = Pki::new("backend-ca");
        let rogue_ca = Pki::new("rogue-ca");
        let good = StreamBackend::tls("good", backend_ca.issue(&[BACKEND_HOST])).await;
        let rogue = StreamBackend::tls("rogue", rogue_ca.issue(&[BACKEND_HOST])).await;
        let gw = Gateway::start(|addr| {
            let l = listener(
                "tls",
                ListenerKind::TlsTerminate,
                None,
                Some(gateway_ca.issue(&["good.example.com", "rogue.example.com"])),
                vec![
                    (
                        "good.example.com",
                        route("good", vec![(1, verified(&good, &backend_ca))]),
                    ),
                    (
                        "rogue.example.com",
                        route("rogue", vec![(1, verified(&rogue, &backend_ca))]),
                    ),
                ],
            );
            snapshot(addr, vec![l])
        })
        .await;
        let mut tls = gw
            .connect(&gateway_ca, "good.example.com", &[])
            .await
            .unwrap();
        // The backend saw Sluice's handshake: the policy's hostname, no ALPN.
        assert_eq!(
            greeting_and_echo(&mut tls).await,
            format!("good {BACKEND_HOST} -")
        );
        assert_eq!(
            good.seen(),
            vec![Seen {
                sni: Some(BACKEND_HOST.into()),
                alpn: None
            }]
        );
        // A backend whose certificate the policy does not trust gets nothing; the client's
        // stream is closed.
        let mut refused = gw
            .connect(&gateway_ca, "rogue.example.com", &[])
            .await
            .unwrap();
        let mut rest = Vec::new();
        let _ = refused.read_to_end(&mut rest).await;
        assert!(rest.is_empty());
        gw.counted(
            "default/rogue",
            "default/rogue:443",
            "terminate",
            "backend_tls",
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn mixed_passthrough_terminate_and_https_on_one_port() {
    bounded(async {
        let gateway_ca = Pki::new("gateway-ca");
        let backend_ca = Pki::new("backend-ca");
        let passed = StreamBackend::tls("passed", backend_ca.issue(&["p.example.com"])).await;
        let plain = StreamBackend::tcp("plain").await;
        let gw = Gateway::start(|addr| {
            let https = listener(
                "https",
                ListenerKind::Http,
                Some("h.example.com"),
                Some(gateway_ca.issue(&["h.example.com"])),
                vec![],
            );
            let pass = listener(
                "pass",
                ListenerKind::TlsPassthrough,
                Some("p.example.com"),
                None,
                vec![("p.example.com", route("p", vec![(1, passed.target())]))],
            );
            let term = terminate("term", &gateway_ca, &plain);
            snapshot(addr, vec![https, pass, term])
        })
        .await;
        let mut p = gw
            .connect(&backend_ca, "p.example.com", &["http/1.1"])
            .await
            .unwrap();
        assert_eq!(
            greeting_and_echo(&mut p).await,
            "passed p.example.com http/1.1"
        );
        let mut t = gw.connect(&gateway_ca, "t.example.com", &[]).await.unwrap();
        assert_eq!(greeting_and_echo(&mut t).await, "plain - -");
        // The HTTPS listener is still HTTP: ALPN, and the proxy answering (no route: 404).
        let mut h = gw
            .connect(&gateway_ca, "h.example.com", &["http/1.1"])
            .await
            .unwrap();
        assert_eq!(h.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        h.write_all(b"GET / HTTP/1.1\r\nHost: h.example.com\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = Vec::new();
        let _ = h.read_to_end(&mut response).await;
        let response = String::from_utf8_lossy(&response);
        assert!(response.starts_with("HTTP/1.1 404"), "{response}");
        // A name no listener has fails the handshake as before.
        assert!(gw.connect(&gateway_ca, "x.example.com", &[]).await.is_err());
    })
    .await;
}

#[tokio::test]
async fn a_stream_open_at_shutdown_gets_the_grace_period_then_is_closed() {
    bounded(async {
        let gateway_ca = Pki::new("gateway-ca");
        let plain = StreamBackend::tcp("plain").await;
        let gw = Gateway::start(|addr| snapshot(addr, vec![terminate("tls", &gateway_ca, &plain)]))
            .await;
        let mut tls = gw.connect(&gateway_ca, "t.example.com", &[]).await.unwrap();
        greeting_and_echo(&mut tls).await;
        let metrics = gw.metrics.clone();
        gw.shutdown(Duration::from_millis(200)).await;
        let mut rest = Vec::new();
        let _ = tls.read_to_end(&mut rest).await;
        assert!(rest.is_empty());
        let aborted = metrics
            .tls_routes
            .connections
            .with_label_values(&[
                "default/gw",
                "default/t",
                "default/plain:443",
                "terminate",
                "aborted",
            ])
            .get();
        assert_eq!(aborted, 1);
    })
    .await;
}

#[tokio::test]
async fn a_terminate_listener_validates_client_certificates_when_asked() {
    bounded(async {
        let gateway_ca = Pki::new("gateway-ca");
        let client_ca = Pki::new("client-ca");
        let plain = StreamBackend::tcp("plain").await;
        let gw = Gateway::start(|addr| {
            let mut l = terminate("tls", &gateway_ca, &plain);
            l.client_validation = Some(Arc::new(ClientValidation {
                mode: ClientValidationMode::AllowValidOnly,
                ca_config_maps: vec!["default/client-ca".into()],
                verifier: client_ca.client_verifier(),
            }));
            snapshot(addr, vec![l])
        })
        .await;
        let with_cert = gateway_ca.client_with(&["h2"], Some(client_ca.issue(&["client"])));
        let mut tls = gw.connect_with(&with_cert, "t.example.com").await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), None);
        assert_eq!(greeting_and_echo(&mut tls).await, "plain - -");
        // Without a certificate the handshake fails (under TLS 1.3 the client learns it at its
        // first read) and nothing reaches the backend.
        let refused = async {
            let mut tls = gw.connect(&gateway_ca, "t.example.com", &[]).await?;
            let mut buf = [0u8; 1];
            tls.read_exact(&mut buf).await
        };
        assert!(refused.await.is_err());
        gw.counted("default/t", "", "terminate", "tls_handshake")
            .await;
        assert_eq!(plain.seen().len(), 1);
    })
    .await;
}
