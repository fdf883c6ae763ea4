//! Mirror fidelity (issue #17): the copy a mirror receives against what the primary received,
//! both recorded, over client protocol × body framing × mirror protocol, and the cases the
//! differential review found broken.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sluice_controller::mirror_settings::MirrorSettings;
use sluice_controller::publish::Store;
use sluice_controller::snapshot::{
    Backend, BackendProtocol, BackendTarget, BindProtocol, Filter, Fraction, Mirror, UrlRewrite,
};
use sluice_gateway::metrics::Metrics;
use sluice_gateway::mirror::{MirrorEngine, MirrorMetrics, MirrorOptions, Outcome};
use sluice_gateway::proxy::ProxySettings;
use sluice_test_support::mirror::{self, label, ROUTE};
use sluice_test_support::proxy;
use sluice_test_support::raw::{self, RawBackend};
use sluice_test_support::servers::{self, Received, Server};
use sluice_test_support::tls;
use sluice_test_support::within;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;

const LIMIT: Duration = Duration::from_secs(30);
/// The name clients resolve to the gateway (and the TLS certificate is for), so that `Host` is
/// a name the host suffix applies to.
const NAME: &str = "app.test";
const MIRROR: &str = "shadow";

#[derive(Debug, Clone, Copy, PartialEq)]
enum ClientProtocol {
    Http1,
    H2OverTls,
    H2cPriorKnowledge,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Framing {
    NoBody,
    ContentLength,
    UnknownLength,
}

/// A gateway with one route `default/web` (`PathPrefix /`) to a recording HTTP/1.1 primary,
/// copying every request to a recording mirror of the given protocol.
struct Fixture {
    addr: SocketAddr,
    engine: Arc<MirrorEngine>,
    cert: Option<Vec<u8>>,
    _primary: Server,
    _mirror: Server,
    at_primary: UnboundedReceiver<Received>,
    at_mirror: UnboundedReceiver<Received>,
    _shutdown: watch::Sender<bool>,
}

impl Fixture {
    async fn start(
        client: ClientProtocol,
        mirror: BackendProtocol,
        settings: MirrorSettings,
    ) -> Fixture {
        Fixture::start_with(client, mirror, settings, Vec::new()).await
    }

    /// HTTP/1.1 client and mirror, the raw-socket cases.
    async fn http1(settings: MirrorSettings) -> Fixture {
        Fixture::start(ClientProtocol::Http1, BackendProtocol::Http1, settings).await
    }

    /// [`Fixture::start`] with `before` applied ahead of the mirror filter.
    async fn start_with(
        client: ClientProtocol,
        mirror: BackendProtocol,
        settings: MirrorSettings,
        mut before: Vec<Filter>,
    ) -> Fixture {
        let (primary, at_primary) = servers::recording(200).await;
        let (shadow, at_mirror) = match mirror {
            BackendProtocol::H2c => servers::recording_h2c().await,
            _ => servers::recording(200).await,
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let to_primary = proxy::weighted(
            1,
            BackendTarget::Service(Arc::new(Backend::new(
                "default/pipy:8080".into(),
                vec![primary.addr],
                BackendProtocol::Http1,
            ))),
        );
        let copy = Filter::Mirror(Mirror {
            backend: Arc::new(Backend::new(label(MIRROR), vec![shadow.addr], mirror)),
            fraction: Fraction::ALL,
            policy: None,
        });
        before.push(copy);
        let action = proxy::action(before, vec![to_primary]);
        let mut snapshot = proxy::snapshot(
            addr,
            proxy::any(vec![proxy::entry("web", proxy::prefix("/"), action)]),
        );
        let mut cert = None;
        if client == ClientProtocol::H2OverTls {
            let (key, der) = tls::certified_key(NAME);
            snapshot.binds[0].protocol = BindProtocol::Https;
            snapshot.binds[0].listeners[0].tls = Some(key);
            cert = Some(der);
        }
        let store = Store::new();
        store.publish(snapshot);
        let metrics = Arc::new(Metrics::new().unwrap());
        let mirror_metrics = MirrorMetrics::register(&metrics.registry).unwrap();
        let options = MirrorOptions {
            settings,
            ..MirrorOptions::default()
        };
        let engine = MirrorEngine::new(options, mirror_metrics);
        let proxy_settings = ProxySettings {
            mirror: Some(engine.clone()),
            downstream_h2c: true,
            ..ProxySettings::default()
        };
        let shutdown = if cert.is_some() {
            tls::serve_tls(listener, store, metrics, proxy_settings)
        } else {
            proxy::serve(listener, store, metrics, proxy_settings)
        };
        Fixture {
            addr,
            engine,
            cert,
            _primary: primary,
            _mirror: shadow,
            at_primary,
            at_mirror,
            _shutdown: shutdown,
        }
    }

    fn client(&self, protocol: ClientProtocol) -> reqwest::Client {
        let builder = reqwest::Client::builder()
            .no_proxy()
            .timeout(LIMIT)
            .resolve(NAME, self.addr);
        let builder = match protocol {
            ClientProtocol::Http1 => builder.http1_only(),
            ClientProtocol::H2cPriorKnowledge => builder.http2_prior_knowledge(),
            ClientProtocol::H2OverTls => builder
                .use_rustls_tls()
                .tls_built_in_root_certs(false)
                .add_root_certificate(
                    reqwest::Certificate::from_der(self.cert.as_ref().unwrap()).unwrap(),
                ),
        };
        builder.build().unwrap()
    }

    fn url(&self, protocol: ClientProtocol, path: &str) -> String {
        let scheme = match protocol {
            ClientProtocol::H2OverTls => "https",
            _ => "http",
        };
        format!("{scheme}://{NAME}:{}{path}", self.addr.port())
    }

    /// What the primary and the mirror received for the one request sent.
    async fn both(&mut self) -> (Received, Received) {
        let p = within("the primary's record", LIMIT, self.at_primary.recv())
            .await
            .unwrap();
        let m = within("the mirror's record", LIMIT, self.at_mirror.recv())
            .await
            .unwrap();
        (p, m)
    }

    fn count(&self, outcome: Outcome) -> u64 {
        self.engine.metrics().count(ROUTE, &label(MIRROR), outcome)
    }

    /// Waits (bounded) until the one copy has an outcome, and returns it.
    async fn outcome(&self) -> Outcome {
        within("the copy's outcome", LIMIT, async {
            loop {
                if self.engine.inflight() == 0 {
                    if let Some(o) = Outcome::ALL.into_iter().find(|o| self.count(*o) > 0) {
                        return o;
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
    }

    /// Waits (bounded) until `n` copies completed and none is in flight.
    async fn completed(&self, n: u64) {
        within("the copies counted completed", LIMIT, async {
            while self.count(Outcome::Completed) < n || self.engine.inflight() != 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }

    /// Writes `request` on a new connection and reads until the answer's head is complete.
    async fn raw(&self, request: &str) -> String {
        let mut tcp = TcpStream::connect(self.addr).await.unwrap();
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        within("the raw answer", LIMIT, async {
            let mut buf = [0u8; 4096];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = tcp.read(&mut buf).await.unwrap();
                assert!(n > 0, "connection closed before the answer");
                got.extend_from_slice(&buf[..n]);
            }
        })
        .await;
        String::from_utf8_lossy(&got).into_owned()
    }
}

fn body(len: usize) -> Bytes {
    Bytes::from((0..len).map(|i| (i * 7 % 253) as u8).collect::<Vec<u8>>())
}

/// Sends the matrix's request: a path with an escaped segment and a query, two end-to-end
/// headers, and a 200 KiB body framed as `framing` asks.
async fn send(fx: &Fixture, client: ClientProtocol, framing: Framing) -> Bytes {
    let data = body(200 * 1024 + 3);
    let url = fx.url(client, "/matrix/a%20b?x=1&y=%2F");
    let request = match framing {
        Framing::NoBody => fx.client(client).get(url),
        Framing::ContentLength => fx.client(client).post(url).body(data.clone()),
        Framing::UnknownLength => {
            let chunks: Vec<Result<Bytes, std::io::Error>> = data
                .chunks(16 * 1024)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            fx.client(client)
                .post(url)
                .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        }
    };
    let resp = within(
        "the primary's answer",
        LIMIT,
        request
            .header("user-agent", "fidelity/1")
            .header("x-end-to-end", "kept")
            .header("content-type", "application/octet-stream")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    let expected = match client {
        ClientProtocol::Http1 => reqwest::Version::HTTP_11,
        _ => reqwest::Version::HTTP_2,
    };
    assert_eq!(resp.version(), expected, "the client spoke {client:?}");
    match framing {
        Framing::NoBody => Bytes::new(),
        _ => data,
    }
}

/// Framing and connection fields: each hop sets its own (compared separately where documented).
const PER_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "upgrade",
    "http2-settings",
    "content-length",
];

fn host(r: &Received) -> Option<String> {
    r.headers
        .get("host")
        .map(|h| h.to_str().unwrap().to_string())
}

/// The end-to-end fields of a record minus `Host` and the per-hop ones, by name; values of one
/// name keep their order (the only order HTTP gives meaning to).
fn end_to_end(r: &Received) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = r
        .headers
        .iter()
        .filter(|(n, _)| n.as_str() != "host" && !PER_HOP.contains(&n.as_str()))
        .map(|(n, v)| {
            (
                n.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    fields
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirror_receives_what_the_primary_receives_for_every_protocol_and_framing() {
    for client in [
        ClientProtocol::Http1,
        ClientProtocol::H2OverTls,
        ClientProtocol::H2cPriorKnowledge,
    ] {
        for mirror in [BackendProtocol::Http1, BackendProtocol::H2c] {
            for framing in [
                Framing::NoBody,
                Framing::ContentLength,
                Framing::UnknownLength,
            ] {
                let case = format!("{client:?} client, {framing:?}, {mirror:?} mirror");
                let mut fx = Fixture::start(client, mirror, differential()).await;
                let data = send(&fx, client, framing).await;
                let (p, m) = fx.both().await;
                assert_eq!(fx.outcome().await, Outcome::Completed, "{case}");
                assert_eq!(m.method, p.method, "{case}");
                assert_eq!(m.path, "/matrix/a%20b?x=1&y=%2F", "{case}");
                assert_eq!(m.path, p.path, "{case}");
                assert!(m.complete && p.complete, "{case}");
                assert_eq!(m.sha256, servers::sha256(&data), "{case}");
                assert_eq!(m.sha256, p.sha256, "{case}");
                // Apart from the documented host suffix and mirror-only header, the same head.
                let suffixed = format!("{NAME}-shadow:{}", fx.addr.port());
                assert_eq!(
                    host(&p).unwrap(),
                    format!("{NAME}:{}", fx.addr.port()),
                    "{case}"
                );
                assert_eq!(host(&m).unwrap(), suffixed, "{case}");
                assert_eq!(m.headers.get("x-mirror").unwrap(), "1", "{case}");
                let mut expected = end_to_end(&p);
                expected.push(("x-mirror".into(), "1".into()));
                expected.sort_by(|a, b| a.0.cmp(&b.0));
                assert_eq!(end_to_end(&m), expected, "{case}");
                // Framing: the length when the client announced one, chunked only to HTTP/1.1.
                let length = (framing == Framing::ContentLength).then(|| data.len().to_string());
                let cl = |r: &Received| {
                    r.headers
                        .get("content-length")
                        .map(|v| v.to_str().unwrap().to_string())
                };
                assert_eq!(cl(&m).filter(|v| v != "0"), length, "{case}");
                let chunked = framing == Framing::UnknownLength && mirror == BackendProtocol::Http1;
                assert_eq!(
                    m.headers.contains_key("transfer-encoding"),
                    chunked,
                    "{case}"
                );
            }
        }
    }
}

/// The matrix's mirror settings: a host suffix and one mirror-only header, the two documented
/// differences between a copy and its primary.
fn differential() -> MirrorSettings {
    MirrorSettings {
        headers: proxy::headers(&[("x-mirror", "1")], &[], &[]),
        ..suffixing("-shadow")
    }
}

fn suffixing(suffix: &str) -> MirrorSettings {
    MirrorSettings {
        host_suffix: Some(suffix.into()),
        ..MirrorSettings::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_of_unknown_length_reaches_an_h2c_mirror_without_transfer_encoding() {
    let client = ClientProtocol::Http1;
    let mut fx = Fixture::start(client, BackendProtocol::H2c, MirrorSettings::default()).await;
    let data = send(&fx, client, Framing::UnknownLength).await;
    let (p, m) = fx.both().await;
    assert_eq!(p.headers.get("transfer-encoding").unwrap(), "chunked");
    assert_eq!(fx.outcome().await, Outcome::Completed);
    assert!(m.complete);
    assert_eq!(m.sha256, servers::sha256(&data));
    assert!(!m.headers.contains_key("transfer-encoding"));
    assert!(!m.headers.contains_key("content-length"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suffixed_host_reaches_an_h2c_mirror_when_the_client_speaks_http2() {
    let client = ClientProtocol::H2cPriorKnowledge;
    let mut fx = Fixture::start(client, BackendProtocol::H2c, suffixing("-shadow")).await;
    send(&fx, client, Framing::NoBody).await;
    let (p, m) = fx.both().await;
    assert_eq!(fx.outcome().await, Outcome::Completed);
    assert_eq!(host(&p).unwrap(), format!("{NAME}:{}", fx.addr.port()));
    assert_eq!(
        host(&m).unwrap(),
        format!("{NAME}-shadow:{}", fx.addr.port())
    );
    assert_eq!(m.path, p.path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2c_upgrade_offer_is_mirrored_as_an_ordinary_request_without_the_offer() {
    let mut fx = Fixture::http1(MirrorSettings::default()).await;
    // What `curl --http2` sends over cleartext.
    let answer = fx
        .raw(
            "POST /offer HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade, HTTP2-Settings\r\n\
             Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\nContent-Length: 5\r\n\r\nhello",
        )
        .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (p, m) = fx.both().await;
    assert_eq!(fx.outcome().await, Outcome::Completed);
    assert_eq!(fx.count(Outcome::SkippedUpgrade), 0);
    assert_eq!((m.method.as_str(), m.path.as_str()), ("POST", "/offer"));
    assert_eq!(m.sha256, servers::sha256(b"hello"));
    assert_eq!(m.sha256, p.sha256);
    assert_eq!(m.headers.get("content-length").unwrap(), "5");
    for gone in ["upgrade", "http2-settings", "connection"] {
        assert!(!m.headers.contains_key(gone), "{gone} is not on the copy");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_post_keeps_content_length_zero_on_the_copy() {
    let mut fx = Fixture::http1(MirrorSettings::default()).await;
    for method in ["POST", "PUT"] {
        let answer = fx
            .raw(&format!(
                "{method} /empty HTTP/1.1\r\nHost: app.test\r\nContent-Length: 0\r\n\r\n"
            ))
            .await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let (p, m) = fx.both().await;
        assert_eq!(m.method, method);
        assert_eq!(p.headers.get("content-length").unwrap(), "0");
        assert_eq!(m.headers.get("content-length").unwrap(), "0", "{method}");
        assert_eq!(m.body_len, 0);
    }
    fx.completed(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_suffix_leaves_ip_literal_hosts_unchanged() {
    let mut fx = Fixture::http1(suffixing("-shadow")).await;
    for host_field in ["[::1]:8080", "[::1]", "127.0.0.1:8080", "app.test:8080"] {
        let answer = fx
            .raw(&format!("GET /ip HTTP/1.1\r\nHost: {host_field}\r\n\r\n"))
            .await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{host_field}: {answer}");
        let (_, m) = fx.both().await;
        let expected = match host_field {
            "app.test:8080" => "app.test-shadow:8080",
            literal => literal,
        };
        assert_eq!(host(&m).unwrap(), expected);
    }
    fx.completed(4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewritten_hostname_reaches_an_h2c_mirror_when_the_client_speaks_http2() {
    let client = ClientProtocol::H2cPriorKnowledge;
    let rewrite = Filter::UrlRewrite(UrlRewrite {
        hostname: Some("rewritten.test".into()),
        path: None,
    });
    let settings = MirrorSettings::default();
    let mut fx = Fixture::start_with(client, BackendProtocol::H2c, settings, vec![rewrite]).await;
    send(&fx, client, Framing::ContentLength).await;
    // The primary's Host is issue #17 item 7 (the h2 to h1 conversion), not asserted here.
    let (_, m) = fx.both().await;
    assert_eq!(fx.outcome().await, Outcome::Completed);
    assert_eq!(host(&m).unwrap(), "rewritten.test");
    assert!(m.complete);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suffixed_host_reaches_an_http1_mirror_of_an_absolute_form_request() {
    let (primary, _at_primary) = servers::recording(200).await;
    let shadow = RawBackend::start().await;
    let options = MirrorOptions {
        settings: suffixing("-shadow"),
        ..MirrorOptions::default()
    };
    let at = SocketAddr::from(([127, 0, 0, 1], shadow.port));
    let gw = mirror::Gateway::mirroring_all_with(primary.addr, MIRROR, at, options).await;
    let mut client = raw::Client::connect(gw.addr).await;
    client
        .send(b"GET http://app.test/abs?q=%2F HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .await;
    let answer = within("the primary's answer", LIMIT, client.response()).await;
    assert_eq!(answer.map(|r| r.status), Some(200));
    gw.all_completed(MIRROR, 1).await;
    let seen = shadow.seen();
    // In absolute form the target's authority would override Host at the mirror (RFC 9112
    // §3.2.2) and the suffix would be lost: the copy goes in origin form.
    assert_eq!(seen[0].path(), "/abs?q=%2F");
    assert_eq!(seen[0].header("host").as_deref(), Some("app.test-shadow"));
}
