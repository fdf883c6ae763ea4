//! TLS passthrough listeners through the real accept path: the ClientHello's SNI picks the
//! TLSRoute, and the client's own TLS session, SNI and ALPN included, reaches the backend.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use sluice_controller::snapshot::{Backend, BackendTarget, BackendTlsMode, ListenerKind};
use sluice_gateway::listeners::ListenerOptions;
use sluice_test_support::proxy::bounded;
use sluice_test_support::tls_route::{
    greeting_and_echo, listener, route, snapshot, Gateway, Pki, Seen, StreamBackend,
};
use tokio::io::AsyncReadExt;

/// A catch-all passthrough listener with one route per `(hostname, backend)`.
fn passthrough(routes: Vec<(&str, &StreamBackend)>) -> sluice_controller::snapshot::Listener {
    let routes = routes
        .into_iter()
        .map(|(host, b)| (host, route(&b.name, vec![(1, b.target())])))
        .collect();
    listener("tls", ListenerKind::TlsPassthrough, None, None, routes)
}

/// Backend `a` (TLS, certificate for a.example.com) behind a catch-all passthrough listener.
async fn one_route(options: ListenerOptions) -> (Pki, StreamBackend, Gateway) {
    let pki = Pki::new("backend-ca");
    let a = StreamBackend::tls("a", pki.issue(&["a.example.com"])).await;
    let gw = Gateway::start_with(options, |addr| {
        snapshot(addr, vec![passthrough(vec![("a.example.com", &a)])])
    })
    .await;
    (pki, a, gw)
}

#[tokio::test]
async fn passthrough_preserves_client_sni_and_alpn() {
    bounded(async {
        let (pki, backend, gw) = one_route(ListenerOptions::default()).await;
        // The client trusts only the backend's CA: the handshake succeeds only if the backend,
        // not Sluice, answered it.
        let mut tls = gw
            .connect(&pki, "a.example.com", &["h2", "http/1.1"])
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        assert_eq!(greeting_and_echo(&mut tls).await, "a a.example.com h2");
        assert_eq!(
            backend.seen(),
            vec![Seen {
                sni: Some("a.example.com".into()),
                alpn: Some("h2".into())
            }]
        );
        drop(tls);
        gw.counted("default/a", "default/a:443", "passthrough", "closed")
            .await;
        let text = gw.metrics.encode_text().unwrap();
        assert!(
            text.contains(concat!(
                r#"sluice_tls_route_bytes_total{direction="upstream","#,
                r#"gateway="default/gw",route="default/a"}"#
            )),
            "{text}"
        );
    })
    .await;
}

#[tokio::test]
async fn passthrough_routes_by_sni_to_different_backends() {
    bounded(async {
        let pki = Pki::new("backend-ca");
        let a = StreamBackend::tls("a", pki.issue(&["a.example.com"])).await;
        let b = StreamBackend::tls("b", pki.issue(&["b.example.com"])).await;
        let gw = Gateway::start(|addr| {
            snapshot(
                addr,
                vec![passthrough(vec![
                    ("a.example.com", &a),
                    ("b.example.com", &b),
                ])],
            )
        })
        .await;
        for (sni, name) in [
            ("a.example.com", "a"),
            ("b.example.com", "b"),
            ("a.example.com", "a"),
        ] {
            let mut tls = gw.connect(&pki, sni, &[]).await.unwrap();
            assert_eq!(greeting_and_echo(&mut tls).await, format!("{name} {sni} -"));
        }
        assert_eq!((a.seen().len(), b.seen().len()), (2, 1));
    })
    .await;
}

#[tokio::test]
async fn passthrough_unknown_sni_is_closed() {
    bounded(async {
        let (pki, a, gw) = one_route(ListenerOptions::default()).await;
        let refused = gw.connect(&pki, "c.example.com", &[]).await;
        assert!(refused.is_err(), "no route: the connection is closed");
        gw.counted("", "", "passthrough", "no_route").await;
        assert!(a.seen().is_empty());
    })
    .await;
}

/// A passthrough listener (with `hostname`, if any) routing `a.example.com` to `target`.
async fn a_example_com_to(hostname: Option<&str>, target: BackendTarget) -> Gateway {
    Gateway::start(|addr| {
        let l = listener(
            "tls",
            ListenerKind::TlsPassthrough,
            hostname,
            None,
            vec![("a.example.com", route("a", vec![(1, target)]))],
        );
        snapshot(addr, vec![l])
    })
    .await
}

#[tokio::test]
async fn sni_of_no_listener_is_closed_without_an_alert() {
    bounded(async {
        let pki = Pki::new("backend-ca");
        let a = StreamBackend::tls("a", pki.issue(&["a.example.com"])).await;
        let gw = a_example_com_to(Some("a.example.com"), a.target()).await;
        let refused = gw.connect(&pki, "b.example.com", &[]).await;
        let Err(err) = refused else {
            panic!("no listener: the connection must be closed")
        };
        // Upstream's tlsConnect rejection accepts end of stream or a reset, not an alert.
        assert!(!err.to_string().contains("alert"), "{err}");
        let rejected = &gw.metrics.edge.connections_rejected;
        let counted = || rejected.with_label_values(&["tls_unknown_sni"]).get() == 1;
        sluice_test_support::until("the unknown SNI counted", Duration::from_secs(10), || {
            counted().then_some(())
        })
        .await;
        assert!(a.seen().is_empty());
    })
    .await;
}

#[tokio::test]
async fn an_invalid_backend_tls_policy_does_not_refuse_passthrough() {
    bounded(async {
        let pki = Pki::new("backend-ca");
        let a = StreamBackend::tls("a", pki.issue(&["a.example.com"])).await;
        // The Service's BackendTLSPolicy is invalid: HTTP and terminated streams are refused,
        // but a passthrough stream's TLS is the client's own, which the policy cannot govern.
        let BackendTarget::Service(service) = a.target() else {
            unreachable!("a target is a Service")
        };
        let refused = Backend::new(
            service.name.clone(),
            service.endpoints.clone(),
            service.protocol,
        )
        .with_tls(Some(BackendTlsMode::Refuse {
            policy: "default/broken".into(),
        }));
        let target = BackendTarget::Service(Arc::new(refused));
        let gw = a_example_com_to(None, target).await;
        let mut tls = gw.connect(&pki, "a.example.com", &[]).await.unwrap();
        assert_eq!(greeting_and_echo(&mut tls).await, "a a.example.com -");
    })
    .await;
}

#[tokio::test]
async fn weighted_backends_split_connections_and_zero_weight_gets_none() {
    bounded(async {
        let pki = Pki::new("backend-ca");
        let cert = pki.issue(&["w.example.com"]);
        let [a, b, never] = [
            StreamBackend::tls("a", cert.clone()).await,
            StreamBackend::tls("b", cert.clone()).await,
            StreamBackend::tls("never", cert).await,
        ];
        let entry = route(
            "w",
            vec![(1, a.target()), (1, b.target()), (0, never.target())],
        );
        let gw = Gateway::start(|addr| {
            let l = listener(
                "tls",
                ListenerKind::TlsPassthrough,
                None,
                None,
                vec![("w.example.com", entry)],
            );
            snapshot(addr, vec![l])
        })
        .await;
        for _ in 0..30 {
            let mut tls = gw.connect(&pki, "w.example.com", &[]).await.unwrap();
            greeting_and_echo(&mut tls).await;
        }
        let (a, b) = (a.seen().len(), b.seen().len());
        assert_eq!(a + b, 30);
        // Each side of an even split gets none of 30 with probability 2^-30.
        assert!(a > 0 && b > 0, "{a} / {b}");
        assert!(never.seen().is_empty());
    })
    .await;
}

#[tokio::test]
async fn backend_down_closes_client_connection() {
    bounded(async {
        let pki = Pki::new("backend-ca");
        let closed_port =
            std::net::SocketAddr::from(([127, 0, 0, 1], sluice_test_support::free_port()));
        let target = BackendTarget::Service(std::sync::Arc::new(
            sluice_controller::snapshot::Backend::new(
                "default/down:443".into(),
                vec![closed_port],
                sluice_controller::snapshot::BackendProtocol::Http1,
            ),
        ));
        let invalid = BackendTarget::Invalid {
            reason: "Service default/missing not found".into(),
        };
        let gw = Gateway::start(|addr| {
            let routes = vec![
                ("d.example.com", route("d", vec![(1, target)])),
                ("i.example.com", route("i", vec![(1, invalid)])),
            ];
            let l = listener("tls", ListenerKind::TlsPassthrough, None, None, routes);
            snapshot(addr, vec![l])
        })
        .await;
        assert!(gw.connect(&pki, "d.example.com", &[]).await.is_err());
        assert!(gw.connect(&pki, "i.example.com", &[]).await.is_err());
        gw.counted(
            "default/d",
            "default/down:443",
            "passthrough",
            "connect_error",
        )
        .await;
        gw.counted("default/i", "", "passthrough", "no_backend")
            .await;
    })
    .await;
}

#[tokio::test]
async fn idle_stream_is_closed_after_idle_timeout() {
    bounded(async {
        let mut options = ListenerOptions::default();
        options.tls_routes.idle_timeout = Duration::from_millis(300);
        let (pki, _a, gw) = one_route(options).await;
        let mut tls = gw.connect(&pki, "a.example.com", &[]).await.unwrap();
        greeting_and_echo(&mut tls).await;
        // Nothing more is sent either way: Sluice closes both sides.
        let mut rest = Vec::new();
        let _ = tls.read_to_end(&mut rest).await;
        assert!(rest.is_empty(), "{rest:?}");
        gw.counted("default/a", "default/a:443", "passthrough", "idle_timeout")
            .await;
    })
    .await;
}

#[tokio::test]
async fn removing_the_route_keeps_established_streams_and_refuses_new_ones() {
    bounded(async {
        let (pki, a, gw) = one_route(ListenerOptions::default()).await;
        let mut established = gw.connect(&pki, "a.example.com", &[]).await.unwrap();
        greeting_and_echo(&mut established).await;
        gw.publish(|addr| snapshot(addr, vec![passthrough(vec![])]))
            .await;
        assert!(
            gw.connect(&pki, "a.example.com", &[]).await.is_err(),
            "new connections are refused"
        );
        // The stream that was routed before the publish still flows.
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        established.write_all(b"still here\n").await.unwrap();
        let mut line = String::new();
        BufReader::new(&mut established)
            .read_line(&mut line)
            .await
            .unwrap();
        assert_eq!(line, "still here\n");
        assert_eq!(a.seen().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_client_that_sends_no_hello_is_closed_at_the_header_timeout() {
    bounded(async {
        let mut options = ListenerOptions::default();
        options.limits.client_header_timeout = Duration::from_millis(200);
        let (_pki, a, gw) = one_route(options).await;
        let mut silent = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        let mut rest = Vec::new();
        let _ = silent.read_to_end(&mut rest).await;
        assert!(rest.is_empty());
        let timed_out = gw
            .metrics
            .edge
            .connections_rejected
            .with_label_values(&["tls_handshake"])
            .get();
        assert_eq!(timed_out, 1);
        assert!(a.seen().is_empty());
    })
    .await;
}

/// The formatted log lines, for the access-log test.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn every_connection_writes_one_access_line_with_route_kind_sni_and_bytes() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    // This test's runtime has one thread, so every task of the gateway logs here.
    let _default = tracing::subscriber::set_default(subscriber);
    bounded(async {
        let (pki, _a, gw) = one_route(ListenerOptions::default()).await;
        let mut tls = gw.connect(&pki, "a.example.com", &[]).await.unwrap();
        greeting_and_echo(&mut tls).await;
        drop(tls);
        gw.counted("default/a", "default/a:443", "passthrough", "closed")
            .await;
    })
    .await;
    let text = String::from_utf8_lossy(&captured.0.lock().unwrap()).to_string();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("sluice::access"))
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    for field in [
        "kind=\"TLSRoute\"",
        "sni=\"a.example.com\"",
        "mode=\"passthrough\"",
        "route=default/a",
        "backend=default/a:443",
        "result=\"closed\"",
        "bytes_in=",
        "bytes_out=",
    ] {
        assert!(lines[0].contains(field), "{field} in {}", lines[0]);
    }
}

#[tokio::test]
async fn a_hello_without_sni_takes_the_route_attached_without_hostname() {
    bounded(async {
        let pki = Pki::new("backend-ca");
        // A client connecting to an IP address sends no SNI.
        let any = StreamBackend::tls("any", pki.issue(&["127.0.0.1"])).await;
        let gw = Gateway::start(|addr| {
            let mut l = passthrough(vec![]);
            l.tls_routes.any = Some(route("any", vec![(1, any.target())]));
            snapshot(addr, vec![l])
        })
        .await;
        let mut tls = gw.connect(&pki, "127.0.0.1", &[]).await.unwrap();
        assert_eq!(greeting_and_echo(&mut tls).await, "any - -");
        assert_eq!(
            any.seen(),
            vec![Seen {
                sni: None,
                alpn: None
            }]
        );
    })
    .await;
}
