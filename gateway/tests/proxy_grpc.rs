//! gRPC through the proxy app: Sluice's own answers to a gRPC call are Trailers-Only responses
//! with a meaningful `grpc-status`, other requests keep their HTTP answers, `te: trailers`
//! reaches an HTTP/2 backend, and metrics and the access log carry the route kind.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::{HeaderMap, Request};
use sluice_controller::snapshot::{
    Allowed, BackendProtocol, BackendTarget, Cors, Filter, OriginPattern, RouteEntry, RouteId,
    RouteKind, WeightedBackend,
};
use sluice_gateway::proxy::ProxySettings;
use sluice_test_support::logs::Captured;
use sluice_test_support::proxy::{
    self, action, any, bounded, entry, prefix, service_at, service_of, snapshot, EchoBackend,
    Gateway,
};
use tokio::net::{TcpListener, TcpStream};

const METHOD: &str = "/grpc.test.Echo/Call";
/// An empty message: no compression, length 0.
const EMPTY_MESSAGE: &[u8] = &[0, 0, 0, 0, 0];

/// What a gRPC client saw of one call.
struct Call {
    status: u16,
    headers: HeaderMap,
    /// The response head ended the stream (Trailers-Only).
    head_ended_stream: bool,
    body: Vec<u8>,
    trailers: Option<HeaderMap>,
}

impl Call {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map_or("", |v| v.to_str().unwrap_or(""))
    }

    /// `grpc-status` from the head (Trailers-Only) or else the trailers.
    fn grpc_status(&self) -> Option<String> {
        let from = |h: &HeaderMap| {
            h.get("grpc-status")
                .map(|v| v.to_str().unwrap().to_string())
        };
        from(&self.headers).or_else(|| self.trailers.as_ref().and_then(from))
    }

    /// A Trailers-Only answer with gRPC status `code`.
    fn assert_trailers_only(&self, code: &str) {
        assert_eq!(self.status, 200);
        assert_eq!(self.header("content-type"), "application/grpc");
        assert_eq!(self.header("grpc-status"), code, "{:?}", self.headers);
        assert!(self.head_ended_stream, "the head must end the stream");
        assert!(self.body.is_empty());
        assert!(self.trailers.is_none());
    }
}

/// One call over h2c with prior knowledge, `content_type` and `extra` request headers.
async fn call_with(
    addr: SocketAddr,
    path: &str,
    content_type: &str,
    extra: &[(&str, &str)],
) -> Call {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    let mut client = client.ready().await.unwrap();
    let mut req = Request::builder()
        .method("POST")
        .uri(format!("http://{addr}{path}"))
        .header("content-type", content_type)
        .header("te", "trailers");
    for (name, value) in extra {
        req = req.header(*name, *value);
    }
    let (resp, mut send) = client.send_request(req.body(()).unwrap(), false).unwrap();
    // An early answer may already have reset the stream; the answer is what matters.
    let _ = send.send_data(Bytes::from_static(EMPTY_MESSAGE), true);
    let (parts, mut body) = resp.await.unwrap().into_parts();
    let head_ended_stream = body.is_end_stream();
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        data.extend_from_slice(&chunk.unwrap());
    }
    let trailers = body.trailers().await.unwrap();
    Call {
        status: parts.status.as_u16(),
        headers: parts.headers,
        head_ended_stream,
        body: data,
        trailers,
    }
}

async fn call(addr: SocketAddr, path: &str) -> Call {
    call_with(addr, path, "application/grpc", &[]).await
}

/// `entry` as the GRPCRoute translation writes it: kind `GRPCRoute`.
fn grpc_entry(name: &str, path: &str, backends: Vec<WeightedBackend>) -> RouteEntry {
    let mut e = entry(name, prefix(path), action(vec![], backends));
    e.route = Arc::new(RouteId {
        kind: RouteKind::Grpc,
        ..(*e.route).clone()
    });
    e
}

/// A gateway whose only route is a GRPCRoute for `/grpc.test.Echo/` to `backends`.
async fn grpc_gateway(backends: Vec<WeightedBackend>) -> Gateway {
    Gateway::start(|addr| {
        snapshot(
            addr,
            any(vec![grpc_entry("grpc", "/grpc.test.Echo/", backends)]),
        )
    })
    .await
}

/// [`grpc_gateway`] to one h2c endpoint.
async fn grpc_gateway_to(addr: SocketAddr) -> Gateway {
    grpc_gateway(vec![h2c_service(addr)]).await
}

fn h2c_service(addr: SocketAddr) -> WeightedBackend {
    service_at("default/grpc:50051", addr, BackendProtocol::H2c)
}

/// [`grpc_gateway`] to a Service with no ready endpoint.
async fn grpc_gateway_without_endpoints() -> Gateway {
    grpc_gateway(vec![service_of(
        "default/grpc:50051",
        vec![],
        BackendProtocol::H2c,
    )])
    .await
}

/// An address nothing listens on.
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test]
async fn grpc_request_without_route_gets_unimplemented() {
    bounded(async {
        let backend = EchoBackend::start_h2c("grpc").await;
        let gw = grpc_gateway_to(backend.addr).await;
        let answer = call(gw.addr, "/other.Service/Call").await;
        answer.assert_trailers_only("12");
        assert_eq!(answer.header("grpc-message"), "404 Not Found");
    })
    .await;
}

#[tokio::test]
async fn grpc_request_to_backend_without_endpoints_gets_unavailable() {
    bounded(async {
        let gw = grpc_gateway_without_endpoints().await;
        let answer = call(gw.addr, METHOD).await;
        answer.assert_trailers_only("14");
        assert!(
            answer.header("grpc-message").contains("no ready endpoints"),
            "{:?}",
            answer.headers
        );
    })
    .await;
}

#[tokio::test]
async fn grpc_request_to_unreachable_backend_gets_unavailable() {
    bounded(async {
        let gone = closed_port().await;
        let gw = grpc_gateway_to(gone).await;
        call(gw.addr, METHOD).await.assert_trailers_only("14");
    })
    .await;
}

#[tokio::test]
async fn grpc_request_to_invalid_backend_gets_internal() {
    bounded(async {
        let invalid = proxy::weighted(
            1,
            BackendTarget::Invalid {
                reason: "Service default/missing not found".into(),
            },
        );
        let gw = grpc_gateway(vec![invalid]).await;
        call(gw.addr, METHOD).await.assert_trailers_only("13");
    })
    .await;
}

#[tokio::test]
async fn non_grpc_requests_keep_their_http_error_answers() {
    bounded(async {
        let gw = grpc_gateway_without_endpoints().await;
        // HTTP/2 without a gRPC content type, and gRPC-Web.
        for content_type in ["application/json", "application/grpc-web+proto"] {
            let answer = call_with(gw.addr, "/nowhere", content_type, &[]).await;
            assert_eq!(answer.status, 404, "{content_type}");
            assert_eq!(answer.grpc_status(), None);
            let answer = call_with(gw.addr, METHOD, content_type, &[]).await;
            assert_eq!(answer.status, 503, "{content_type}");
            assert!(String::from_utf8_lossy(&answer.body).contains("no ready endpoints"));
        }
        // gRPC needs HTTP/2: the same content type over HTTP/1.1 is an HTTP request.
        let resp = proxy::client()
            .post(gw.url("/nowhere"))
            .header("content-type", "application/grpc")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404);
        assert!(resp.headers().get("grpc-status").is_none());
    })
    .await;
}

#[tokio::test]
async fn te_trailers_reaches_h2_backend() {
    bounded(async {
        let backend = EchoBackend::start_h2c("grpc").await;
        let gw = grpc_gateway_to(backend.addr).await;
        let answer = call(gw.addr, METHOD).await;
        assert_eq!(answer.status, 200);
        let seen = backend.wait_seen(1).await;
        assert_eq!(seen[0].version(), "HTTP/2.0");
        assert_eq!(seen[0].path(), METHOD);
        assert_eq!(seen[0].header("te"), vec!["trailers".to_string()]);
        assert_eq!(
            seen[0].header("content-type"),
            vec!["application/grpc".to_string()]
        );
    })
    .await;
}

/// An h2c gRPC backend whose every call ends with trailers `grpc-status: 5` (NOT_FOUND).
async fn grpc_backend_answering_not_found() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(tcp).await else {
                    return;
                };
                while let Some(Ok((_req, mut respond))) = conn.accept().await {
                    let head = http::Response::builder()
                        .status(200)
                        .header("content-type", "application/grpc")
                        .body(())
                        .unwrap();
                    let Ok(mut send) = respond.send_response(head, false) else {
                        continue;
                    };
                    let mut trailers = HeaderMap::new();
                    trailers.insert("grpc-status", "5".parse().unwrap());
                    trailers.insert("grpc-message", "no such thing".parse().unwrap());
                    let _ = send.send_data(Bytes::from_static(EMPTY_MESSAGE), false);
                    let _ = send.send_trailers(trailers);
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn backend_trailers_reach_the_grpc_client() {
    bounded(async {
        let backend = grpc_backend_answering_not_found().await;
        let gw = grpc_gateway_to(backend).await;
        let answer = call(gw.addr, METHOD).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, EMPTY_MESSAGE);
        assert_eq!(answer.grpc_status().as_deref(), Some("5"));
    })
    .await;
}

#[tokio::test]
async fn metrics_carry_the_route_kind() {
    bounded(async {
        let backend = EchoBackend::start_h2c("grpc").await;
        let to = || vec![h2c_service(backend.addr)];
        let http = entry("web", prefix("/web"), action(vec![], to()));
        let gw = Gateway::start(|addr| {
            snapshot(addr, any(vec![grpc_entry("grpc", "/grpc.test.Echo/", to()), http]))
        })
        .await;
        assert_eq!(call(gw.addr, METHOD).await.status, 200);
        let resp = proxy::h2c_client().get(gw.url("/web")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(call(gw.addr, "/nowhere.Service/Call").await.grpc_status().as_deref(), Some("12"));
        let text = gw.metrics.encode_text().unwrap();
        for series in [
            r#"sluice_requests_total{backend="default/grpc:50051",code="200",gateway="default/gw",kind="GRPCRoute",route="default/grpc"} 1"#,
            r#"sluice_requests_total{backend="default/grpc:50051",code="200",gateway="default/gw",kind="HTTPRoute",route="default/web"} 1"#,
            r#"sluice_requests_total{backend="",code="200",gateway="default/gw",kind="",route=""} 1"#,
            r#"sluice_request_duration_seconds_count{gateway="default/gw",kind="GRPCRoute",route="default/grpc"} 1"#,
            r#"sluice_grpc_responses_total{gateway="default/gw",grpc_status="12",route=""} 1"#,
        ] {
            assert!(text.contains(series), "{series} missing from\n{text}");
        }
    })
    .await;
}

/// Everything this test binary logs: one global subscriber, as a per-thread default can miss
/// events while other tests run (tracing caches each call site's interest process-wide).
fn captured_logs() -> &'static Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        captured
    })
}

/// The access lines that mention `needle`, once there are `n`.
async fn wait_access_lines(captured: &Captured, needle: &str, n: usize) -> Vec<String> {
    loop {
        let lines: Vec<String> = captured
            .text()
            .lines()
            .filter(|l| l.contains("sluice::access") && l.contains(needle))
            .map(str::to_string)
            .collect();
        if lines.len() >= n {
            return lines;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn access_log_has_kind_and_grpc_status() {
    let captured = captured_logs();
    bounded(async {
        let backend = grpc_backend_answering_not_found().await;
        let gw = Gateway::start(|addr| {
            let backends = vec![service_at(
                "default/logged:50051",
                backend,
                BackendProtocol::H2c,
            )];
            snapshot(
                addr,
                any(vec![grpc_entry("logged", "/logged.Echo/", backends)]),
            )
        })
        .await;
        let answer = call(gw.addr, "/logged.Echo/Call").await;
        assert_eq!(answer.grpc_status().as_deref(), Some("5"));
        let answer = call(gw.addr, "/logged.Nowhere/Call").await;
        assert_eq!(answer.grpc_status().as_deref(), Some("12"));
        // The access line is written in the logging phase, after the answer went out.
        let routed = wait_access_lines(captured, "/logged.Echo/Call", 1).await;
        assert!(
            routed[0].contains(r#"route="default/logged""#)
                && routed[0].contains(r#"kind="GRPCRoute""#)
                && routed[0].contains("grpc_status=5"),
            "{routed:?}"
        );
        let unrouted = wait_access_lines(captured, "/logged.Nowhere/Call", 1).await;
        assert!(
            unrouted[0].contains(r#"route="""#)
                && unrouted[0].contains(r#"kind="""#)
                && unrouted[0].contains("grpc_status=12"),
            "{unrouted:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn grpc_timeout_shorter_than_the_route_ends_the_call_with_deadline_exceeded() {
    bounded(async {
        let backend = EchoBackend::start_h2c("slow").await;
        let gw = grpc_gateway_to(backend.addr).await;
        let started = std::time::Instant::now();
        let slow = [("x-delay-ms", "5000"), ("grpc-timeout", "100m")];
        let answer = call_with(gw.addr, METHOD, "application/grpc", &slow).await;
        answer.assert_trailers_only("4");
        assert!(started.elapsed() < std::time::Duration::from_secs(4));
        // The deadline is the call's: one without grpc-timeout is answered.
        let quick = call_with(gw.addr, METHOD, "application/grpc", &[("x-delay-ms", "1")]).await;
        assert_eq!(quick.status, 200);
        assert_eq!(quick.grpc_status(), None);
        let text = gw.metrics.encode_text().unwrap();
        assert!(
            text.contains(r#"sluice_grpc_responses_total{gateway="default/gw",grpc_status="4",route="default/grpc"} 1"#),
            "{text}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_long_grpc_timeout_does_not_lift_the_upstream_read_timeout() {
    bounded(async {
        let backend = EchoBackend::start_h2c("hung").await;
        let mut settings = ProxySettings::default();
        settings.upstream.read_timeout = std::time::Duration::from_millis(300);
        let gw = Gateway::start_with(settings, |addr| {
            snapshot(
                addr,
                any(vec![grpc_entry(
                    "grpc",
                    "/grpc.test.Echo/",
                    vec![h2c_service(backend.addr)],
                )]),
            )
        })
        .await;
        let started = std::time::Instant::now();
        // The client asks for an hour; the operator allows 300 ms of silence on one read.
        let hung = [("x-delay-ms", "5000"), ("grpc-timeout", "1H")];
        let answer = call_with(gw.addr, METHOD, "application/grpc", &hung).await;
        assert_ne!(
            answer.grpc_status(),
            None,
            "answered by Sluice, not the backend"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(4),
            "cut at the read timeout, not after the backend's 5 s"
        );
    })
    .await;
}

#[tokio::test]
async fn own_answers_to_an_allowed_origin_keep_the_cors_fields() {
    bounded(async {
        let cors = Cors {
            allow_origins: vec![OriginPattern::parse("https://app.example.com").unwrap()],
            allow_credentials: false,
            allow_methods: Allowed::Only(vec![http::Method::POST]),
            allow_headers: Allowed::Only(vec![]),
            expose_headers: Allowed::Only(vec![http::HeaderName::from_static("grpc-status")]),
            max_age: 0,
        };
        let no_endpoints = service_of("default/grpc:50051", vec![], BackendProtocol::H2c);
        let gw = Gateway::start(|addr| {
            let rule = action(vec![Filter::Cors(cors)], vec![no_endpoints]);
            snapshot(addr, any(vec![entry("r", prefix("/"), rule)]))
        })
        .await;
        let origin = [("origin", "https://app.example.com")];
        let grpc = call_with(gw.addr, METHOD, "application/grpc", &origin).await;
        grpc.assert_trailers_only("14");
        assert_eq!(
            grpc.header("access-control-allow-origin"),
            "https://app.example.com"
        );
        // The same 503 as plain HTTP (its text answer) carries them too.
        let http = call_with(gw.addr, METHOD, "application/json", &origin).await;
        assert_eq!(http.status, 503);
        assert_eq!(
            http.header("access-control-allow-origin"),
            "https://app.example.com"
        );
    })
    .await;
}
