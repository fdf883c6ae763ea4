//! The access log in JSON: one schema for primary and mirror lines, every field present and
//! typed; the request id kept, generated or replaced, and the same at the backend and the mirror.

use sluice_test_support::logs::{self, Captured};
use sluice_test_support::mirror::{self as gateway, mirror, Gateway};
use sluice_test_support::proxy::{self as harness, bounded, exact_hosts, forward, prefix};
use sluice_test_support::servers::{self, Received};
use sluice_test_support::within;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use sluice_controller::snapshot::{Fraction, RouteGroup, RouteTable};
use sluice_gateway::access_log::AccessLogSettings;
use sluice_gateway::mirror::MirrorOptions;
use sluice_gateway::proxy::ProxySettings;
use tokio::sync::mpsc::UnboundedReceiver;

/// The access-log schema (docs/logging.md): every line has these, with these JSON types.
const STRINGS: &[&str] = &[
    "client_address",
    "method",
    "host",
    "path",
    "query",
    "protocol",
    "route",
    "rule",
    "backend",
    "upstream_address",
    "user_agent",
    "request_id",
    "timestamp",
    "level",
    "target",
    "message",
];
const NUMBERS: &[&str] = &[
    "status",
    "bytes_in",
    "bytes_out",
    "duration_us",
    "upstream_duration_us",
];

fn captured() -> &'static Captured {
    logs::global_json("warn,sluice::access=info")
}

fn is_access(line: &Value) -> bool {
    line["target"] == "sluice::access"
}

/// Asserts the schema on `line` and returns its field names.
fn assert_schema(line: &Value) -> Vec<String> {
    for name in STRINGS {
        assert!(line[name].is_string(), "{name} is a string in {line}");
    }
    for name in NUMBERS {
        assert!(line[name].is_u64(), "{name} is a number in {line}");
    }
    assert!(line["mirror"].is_boolean(), "mirror is a boolean in {line}");
    assert_eq!(line["level"], "INFO");
    let time = line["timestamp"].as_str().unwrap_or_default();
    assert!(
        time.len() > 20 && time.as_bytes()[10] == b'T' && time.ends_with('Z'),
        "RFC 3339 UTC: {time}"
    );
    let client = line["client_address"].as_str().unwrap_or_default();
    assert!(
        client.parse::<SocketAddr>().is_ok(),
        "client address {client}"
    );
    line.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

async fn received(what: &str, reports: &mut UnboundedReceiver<Received>) -> Received {
    within(what, Duration::from_secs(20), reports.recv())
        .await
        .unwrap_or_else(|| panic!("{what}: the server stopped reporting"))
}

fn header(r: &Received, name: &str) -> String {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn logging_mirrors() -> MirrorOptions {
    let mut options = MirrorOptions::default();
    options.settings.access_log = true;
    options
}

/// A primary and a mirror that record what they get, behind a gateway copying every request.
struct Mirrored {
    gw: Gateway,
    primary: SocketAddr,
    shadow: SocketAddr,
    at_primary: UnboundedReceiver<Received>,
    at_mirror: UnboundedReceiver<Received>,
    _servers: (servers::Server, servers::Server),
}

async fn mirrored(access_log: AccessLogSettings) -> Mirrored {
    // Installed before the gateway logs anything.
    let _ = captured();
    let (primary, at_primary) = servers::recording(200).await;
    let (shadow, at_mirror) = servers::recording(200).await;
    let settings = ProxySettings {
        access_log,
        ..ProxySettings::default()
    };
    let filters = vec![mirror("shadow", shadow.addr, Fraction::ALL)];
    let gw = Gateway::start_with_settings(primary.addr, filters, logging_mirrors(), settings).await;
    Mirrored {
        gw,
        primary: primary.addr,
        shadow: shadow.addr,
        at_primary,
        at_mirror,
        _servers: (primary, shadow),
    }
}

impl Mirrored {
    /// `GET path` with these headers; the answer must be 200.
    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = gateway::client().get(self.gw.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let resp = request.send().await.expect("response");
        assert_eq!(resp.status(), 200);
        resp
    }
}

/// The primary and mirror access lines of the request whose path is `path`.
async fn both_lines(path: &str) -> (Value, Value) {
    let lines = captured()
        .wait_json(2, |l| is_access(l) && l["path"] == path)
        .await;
    let primary = lines.iter().find(|l| l["mirror"] == false);
    let copy = lines.iter().find(|l| l["mirror"] == true);
    match (primary, copy) {
        (Some(p), Some(m)) => (p.clone(), m.clone()),
        _ => panic!("a primary and a mirror line for {path}: {lines:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_and_mirror_lines_share_one_typed_schema() {
    let mut m = mirrored(AccessLogSettings::default()).await;
    let resp = gateway::client()
        .post(m.gw.url("/schema/primary?a=1&b=two"))
        .header("user-agent", "schema-test/1")
        .header("x-request-id", "client-chosen-id")
        .body("hello")
        .send()
        .await
        .expect("response");
    assert_eq!(resp.status(), 200);
    let (primary, copy) = both_lines("/schema/primary").await;
    let (primary_fields, copy_fields) = (assert_schema(&primary), assert_schema(&copy));
    for name in STRINGS.iter().chain(NUMBERS) {
        assert!(
            primary_fields.contains(&name.to_string()) && copy_fields.contains(&name.to_string())
        );
    }
    let host = m.gw.addr.to_string();
    for line in [&primary, &copy] {
        assert_eq!(line["method"], "POST");
        assert_eq!(line["query"], "a=1&b=two");
        assert_eq!(line["status"], 200);
        assert_eq!(line["route"], "default/web");
        assert_eq!(line["rule"], "0");
        assert_eq!(line["bytes_in"], 5);
        assert_eq!(line["user_agent"], "schema-test/1");
        assert_eq!(line["request_id"], "client-chosen-id");
        assert_eq!(line["host"], host.as_str());
        assert_eq!(line["protocol"], "HTTP/1.1");
        assert_eq!(line["client_address"], primary["client_address"]);
    }
    assert_eq!(primary["backend"], "default/pipy:8080");
    assert_eq!(primary["upstream_address"], m.primary.to_string().as_str());
    assert_eq!(primary["gateway"], "default/gw");
    assert_eq!(primary["kind"], "HTTPRoute");
    assert!(primary["bytes_out"].as_u64() > Some(0), "the answer's body");
    assert_eq!(copy["backend"], "default/shadow:8080");
    assert_eq!(copy["upstream_address"], m.shadow.to_string().as_str());
    assert_eq!(copy["outcome"], "completed");
    // The id travelled with both requests: that is what joins a copy to its primary.
    let at_primary = received("primary", &mut m.at_primary).await;
    let at_mirror = received("mirror", &mut m.at_mirror).await;
    assert_eq!(header(&at_primary, "x-request-id"), "client-chosen-id");
    assert_eq!(header(&at_mirror, "x-request-id"), "client-chosen-id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_an_id_gets_one_the_backend_and_the_mirror_share() {
    let mut m = mirrored(AccessLogSettings::default()).await;
    let resp = m.get("/generated", &[]).await;
    assert!(
        resp.headers().get("x-request-id").is_none(),
        "the id is not echoed to the client"
    );
    let at_primary = header(
        &received("primary", &mut m.at_primary).await,
        "x-request-id",
    );
    let at_mirror = header(&received("mirror", &mut m.at_mirror).await, "x-request-id");
    assert_eq!(at_primary.len(), 32, "{at_primary}");
    assert!(at_primary.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(at_mirror, at_primary);
    let (primary, copy) = both_lines("/generated").await;
    assert_eq!(primary["request_id"], at_primary.as_str());
    assert_eq!(copy["request_id"], at_primary.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_incoming_id_is_replaced() {
    let mut m = mirrored(AccessLogSettings::default()).await;
    let too_long = "x".repeat(129);
    for (path, sent) in [
        ("/invalid/spaces", "has spaces"),
        ("/invalid/long", &*too_long),
    ] {
        m.get(path, &[("x-request-id", sent)]).await;
        let at_primary = header(
            &received("primary", &mut m.at_primary).await,
            "x-request-id",
        );
        assert_eq!(at_primary.len(), 32, "{sent:?} replaced by {at_primary}");
        let (primary, _) = both_lines(path).await;
        assert_eq!(primary["request_id"], at_primary.as_str());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_is_left_out_with_omit_query() {
    let m = mirrored(AccessLogSettings { omit_query: true }).await;
    m.get("/omitted?token=secret", &[]).await;
    let (primary, copy) = both_lines("/omitted").await;
    assert_eq!(primary["query"], "");
    assert_eq!(copy["query"], "");
    assert!(!captured().text().contains("token=secret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrouted_requests_are_logged_with_the_host_the_client_sent() {
    let _ = captured();
    bounded(async {
        let backend = harness::EchoBackend::start("known").await;
        let gw = harness::Gateway::start(|addr| {
            let routes = RouteTable {
                exact: exact_hosts(vec![(
                    "known.example",
                    vec![forward("k", prefix("/"), &backend)],
                )]),
                any: RouteGroup::new(vec![]),
                ..RouteTable::default()
            };
            harness::snapshot(addr, routes)
        })
        .await;
        // HTTP/1.1: the Host header.
        let resp = gw
            .get_with("/nowhere/h1", &[("host", "unknown.example")])
            .await;
        assert_eq!(resp.status(), 404);
        // HTTP/2: :authority.
        let resp = harness::h2c_client()
            .get(gw.url("/nowhere/h2"))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 404);
        let h1 = captured()
            .wait_json(1, |l| is_access(l) && l["path"] == "/nowhere/h1")
            .await;
        assert_schema(&h1[0]);
        assert_eq!(h1[0]["host"], "unknown.example");
        assert_eq!(h1[0]["status"], 404);
        assert_eq!(h1[0]["protocol"], "HTTP/1.1");
        assert_eq!(
            (&h1[0]["route"], &h1[0]["backend"]),
            (&"".into(), &"".into())
        );
        assert_eq!(h1[0]["upstream_address"], "");
        assert_eq!(h1[0]["upstream_duration_us"], 0);
        assert_eq!(h1[0]["request_id"].as_str().map(str::len), Some(32));
        let h2 = captured()
            .wait_json(1, |l| is_access(l) && l["path"] == "/nowhere/h2")
            .await;
        assert_schema(&h2[0]);
        assert_eq!(h2[0]["host"], gw.addr.to_string().as_str());
        assert_eq!(h2[0]["protocol"], "HTTP/2");
    })
    .await;
}
