//! `/config` against a snapshot translated from a standalone fixture, and a hand-built one for
//! what translation does not produce yet (a MirrorPolicy on a mirror).

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use serde_json::{json, Value};
use sluice_controller::publish::Store;
use sluice_controller::resources::Resources;
use sluice_controller::snapshot::{
    Backend, BackendProtocol, Comparison, CopyHost, CopyShape, Filter, Fraction, HeaderModifier,
    Mirror, MirrorPolicy, PathMatch, RequestMatch, RouteId, RouteKind, RouteTable, RuleAction,
    Timeouts,
};
use sluice_controller::translate::{translate, Timestamp, TranslateOptions};
use tokio::sync::watch;

use super::*;
use crate::admin::YAML;
use crate::listeners::ListenerStatus;
use crate::metrics::Metrics;

const FIXTURE: &str = include_str!("tests/served.yaml");

fn state_serving(snapshot: Snapshot) -> AdminState {
    let store = Store::new();
    store.publish(snapshot);
    let (_, listeners) = watch::channel(ListenerStatus::default());
    AdminState {
        store,
        metrics: Arc::new(Metrics::new().unwrap()),
        listeners,
    }
}

fn fixture() -> AdminState {
    let loaded = Resources::from_yaml_documents(Path::new("served.yaml"), FIXTURE).unwrap();
    let translation = translate(
        &loaded.resources,
        &TranslateOptions::default(),
        Timestamp::UNIX_EPOCH,
    );
    state_serving(translation.snapshot)
}

/// `GET /config?query` with `accept`: status, content type and body.
async fn get(
    state: &AdminState,
    query: &str,
    accept: Option<&str>,
) -> (StatusCode, String, String) {
    let mut request = Request::get(format!("/config{query}"));
    if let Some(accept) = accept {
        request = request.header(header::ACCEPT, accept);
    }
    let response = intercept(state, &request.body(()).unwrap()).unwrap();
    let status = response.status();
    let content_type = response.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_string();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

async fn json_dump(state: &AdminState, query: &str) -> Value {
    let (status, content_type, body) = get(state, query, Some("application/json")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(content_type, JSON);
    serde_json::from_str(&body).unwrap()
}

/// The served listener named `name`.
fn listener<'v>(dump: &'v Value, name: &str) -> &'v Value {
    dump["served"]["binds"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["listeners"].as_array().unwrap())
        .find(|l| l["name"] == name)
        .unwrap_or_else(|| panic!("no listener {name} in {dump:#}"))
}

#[tokio::test]
async fn routes_are_listed_by_hostname_group_in_precedence_order() {
    let dump = json_dump(&fixture(), "").await;
    let routes = &listener(&dump, "http")["routes"];
    assert_eq!(routes[0]["hostname"], "app.example.com");
    let entries = &routes[0]["entries"];
    assert_eq!(
        entries[0]["matcher"]["path"],
        json!({"Exact": "/login"}),
        "rule 1's exact match goes before rule 0's prefix: {routes:#}"
    );
    assert_eq!(entries[0]["route"]["rule_index"], 1);
    assert_eq!(entries[0]["action"]["timeouts"]["request"], "5000ms");
    assert_eq!(entries[1]["matcher"]["path"], json!({"Prefix": "/"}));
    assert_eq!(
        routes[1]["hostname"],
        Value::Null,
        "routes without hostnames come last"
    );
    assert_eq!(routes[1]["entries"][0]["route"]["label"], "default/api");
    assert_eq!(routes.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn backends_show_their_weights_and_ready_endpoints_and_mirrors_their_share() {
    let dump = json_dump(&fixture(), "").await;
    let action = &listener(&dump, "http")["routes"][0]["entries"][1]["action"];
    let backends = &action["backends"];
    assert_eq!(backends[0]["weight"], 3);
    assert_eq!(
        backends[0]["target"]["Service"],
        json!({
            "name": "default/v1:80",
            "endpoints": ["10.0.0.1:80", "10.0.0.2:80"],
            "protocol": "Http1",
        }),
        "ready endpoints only, sorted"
    );
    assert_eq!(backends[1]["weight"], 1);
    assert_eq!(
        backends[1]["target"]["Service"]["endpoints"],
        json!(["10.0.1.1:80"])
    );
    let mirror = &action["filters"][0]["Mirror"];
    assert_eq!(mirror["backend"]["name"], "default/shadow:80");
    assert_eq!(mirror["backend"]["endpoints"], json!([]));
    assert_eq!(
        mirror["fraction"],
        json!({"numerator": 1, "denominator": 4})
    );
}

#[tokio::test]
async fn listeners_show_address_protocol_hostname_and_certificate() {
    let dump = json_dump(&fixture(), "").await;
    let https_bind = dump["served"]["binds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["protocol"] == "HTTPS")
        .unwrap();
    assert_eq!(https_bind["address"], "0.0.0.0:443");
    let https = listener(&dump, "https");
    assert_eq!(https["gateway"], "default/gw");
    assert_eq!(https["hostname"], "example.com");
    assert_eq!(https["kind"], "Http");
    assert_eq!(
        https["certificate"],
        json!({
            "subject": "CN=example.com",
            "issuer": "CN=example.com",
            "subjectAltNames": ["example.com", "*.example.com"],
            "notBefore": "2026-11-24T00:00:43Z",
            "notAfter": "2126-10-31T00:00:43Z",
            "chainLength": 1,
        })
    );
    assert_eq!(listener(&dump, "http").get("certificate"), None);
    assert_eq!(
        dump["served"]["backendClientCertificates"]["default/gw"], https["certificate"],
        "the Gateway's client certificate to TLS backends, the same Secret"
    );
}

#[tokio::test]
async fn tls_routes_show_the_sni_they_serve_and_their_backends() {
    let dump = json_dump(&fixture(), "?route=default/pass").await;
    let binds = dump["served"]["binds"].as_array().unwrap();
    assert_eq!(
        binds.len(),
        1,
        "only the listener the route is on: {dump:#}"
    );
    let passthrough = &binds[0]["listeners"][0];
    assert_eq!(passthrough["name"], "passthrough");
    assert_eq!(passthrough["kind"], "TlsPassthrough");
    assert_eq!(passthrough.get("certificate"), None, "the client's TLS");
    let route = &passthrough["tlsRoutes"][0];
    assert_eq!(route["hostname"], "pass.example.com");
    assert_eq!(route["route"]["kind"], "TLSRoute");
    assert_eq!(
        route["action"]["backends"][0]["target"]["Service"]["endpoints"],
        json!(["10.0.3.1:443"])
    );
}

#[tokio::test]
async fn no_private_key_material_is_ever_printed() {
    let key_lines: Vec<&str> = FIXTURE
        .split("BEGIN PRIVATE KEY-----")
        .nth(1)
        .unwrap()
        .split("-----END")
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(key_lines.len(), 3, "the fixture's key body");
    let state = fixture();
    for accept in ["application/json", "application/yaml"] {
        let (status, _, body) = get(&state, "", Some(accept)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("example.com"), "the HTTPS listener is dumped");
        assert!(!body.contains("PRIVATE KEY"), "{body}");
        for line in &key_lines {
            assert!(!body.contains(line), "{accept} dump holds key line {line}");
        }
    }
}

#[tokio::test]
async fn yaml_is_the_default_and_json_is_served_when_asked() {
    let state = fixture();
    let (status, content_type, body) = get(&state, "", None).await;
    assert_eq!((status, content_type.as_str()), (StatusCode::OK, YAML));
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&body).unwrap();
    assert_eq!(yaml["served"]["generation"], 1);
    assert_eq!(yaml["reload"]["lastReload"]["result"], "published");

    let (_, content_type, _) = get(&state, "", Some("application/yaml")).await;
    assert_eq!(content_type, YAML);
    let json = json_dump(&state, "").await;
    assert_eq!(json["reload"]["generation"], 1);
    assert_eq!(json["reload"]["ready"], true);
}

#[tokio::test]
async fn other_media_types_are_refused_with_406() {
    let (status, content_type, body) = get(&fixture(), "", Some("text/html")).await;
    assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
    assert_eq!(content_type, TEXT);
    assert!(body.contains("application/json"), "{body}");
}

#[tokio::test]
async fn a_listener_or_route_query_narrows_the_dump() {
    let state = fixture();
    let dump = json_dump(&state, "?listener=https").await;
    let binds = dump["served"]["binds"].as_array().unwrap();
    assert_eq!(binds.len(), 1, "{dump:#}");
    assert_eq!(binds[0]["listeners"][0]["name"], "https");
    let dump = json_dump(&state, "?listener=default/gw/http").await;
    assert_eq!(dump["served"]["binds"][0]["listeners"][0]["name"], "http");

    let dump = json_dump(&state, "?route=default/app").await;
    let routes = &listener(&dump, "http")["routes"];
    assert_eq!(routes.as_array().unwrap().len(), 1, "{routes:#}");
    assert_eq!(routes[0]["entries"].as_array().unwrap().len(), 2);
    assert!(
        routes[0]["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["route"]["label"] == "default/app"),
        "{routes:#}"
    );

    let (status, _, body) = get(&state, "?gateway=x", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("listener=NAME"), "{body}");
}

#[tokio::test]
async fn a_mirror_shows_the_mirror_policy_shaping_its_copies() {
    let policy = MirrorPolicy {
        name: "default/shadow-policy".into(),
        request: CopyShape {
            host: Some(CopyHost::Suffix("-shadow".into())),
            strip_credentials: true,
            ..CopyShape::default()
        },
        compare: Some(Comparison {
            fraction: Fraction::ALL,
            status: true,
            headers: Vec::new(),
            body: true,
            ignore_json_fields: vec!["/id".into()],
            samples: 5,
        }),
    };
    let mirror = Filter::Mirror(Mirror {
        backend: Arc::new(Backend::new(
            "default/shadow:80".into(),
            vec!["10.0.2.1:80".parse().unwrap()],
            BackendProtocol::Http1,
        )),
        fraction: Fraction {
            numerator: 1,
            denominator: 10,
        },
        policy: Some(Arc::new(policy)),
    });
    let dump = json_dump(&serving_filters(vec![mirror]), "").await;
    let mirror =
        &listener(&dump, "http")["routes"][0]["entries"][0]["action"]["filters"][0]["Mirror"];
    assert_eq!(
        mirror["fraction"],
        json!({"numerator": 1, "denominator": 10})
    );
    assert_eq!(mirror["backend"]["endpoints"], json!(["10.0.2.1:80"]));
    let policy = &mirror["policy"];
    assert_eq!(policy["name"], "default/shadow-policy");
    assert_eq!(policy["request"]["host"], json!({"Suffix": "-shadow"}));
    assert_eq!(policy["request"]["strip_credentials"], true);
    assert_eq!(policy["compare"]["ignore_json_fields"], json!(["/id"]));
    assert_eq!(policy["compare"]["samples"], 5);
}

#[tokio::test]
async fn the_admin_listener_serves_the_dump_with_its_accept_header() {
    let server = crate::admin::AdminServer::start("127.0.0.1:0".parse().unwrap(), fixture())
        .await
        .unwrap();
    let url = format!("http://{}/config?listener=https", server.local_addr());
    let (content_type, body) = tokio::time::timeout(Duration::from_secs(10), async {
        let response = reqwest::Client::new()
            .get(&url)
            .header(header::ACCEPT, "application/json")
            .send()
            .await
            .unwrap();
        let content_type = response.headers()[header::CONTENT_TYPE].clone();
        (content_type, response.text().await.unwrap())
    })
    .await
    .unwrap();
    assert_eq!(content_type, JSON);
    let dump: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(dump["served"]["binds"][0]["listeners"][0]["name"], "https");
    server.shutdown(Duration::from_secs(1)).await;
}

/// Serving one route `default/app` on `127.0.0.1:8080` whose one rule has `filters`.
fn serving_filters(filters: Vec<Filter>) -> AdminState {
    let entry = RouteEntry {
        route: Arc::new(RouteId {
            kind: RouteKind::Http,
            namespace: "default".into(),
            name: "app".into(),
            rule_index: 0,
            rule_name: None,
            label: "default/app".into(),
        }),
        matcher: RequestMatch {
            path: PathMatch::Prefix("/".into()),
            method: None,
            headers: Vec::new(),
            query: Vec::new(),
        },
        action: Arc::new(RuleAction::new(filters, Vec::new(), Timeouts::default())),
    };
    let table = RouteTable {
        any: RouteGroup::new(vec![entry]),
        ..RouteTable::default()
    };
    let snapshot = Snapshot {
        binds: vec![Bind {
            address: "127.0.0.1:8080".parse().unwrap(),
            protocol: BindProtocol::Http,
            listeners: vec![Listener::http("default/gw", "http", table)],
        }],
        ..Snapshot::default()
    };

    state_serving(snapshot)
}

#[tokio::test]
async fn credential_header_values_are_redacted_in_filters_and_mirror_policies() {
    let pair = |name: &'static str, value: &'static str| {
        (
            http::HeaderName::from_static(name),
            http::HeaderValue::from_static(value),
        )
    };
    let modifier = HeaderModifier {
        set: vec![
            pair("authorization", "Bearer s3cret"),
            pair("x-team", "blue"),
        ],
        add: vec![pair("x-api-key", "k1")],
        remove: Vec::new(),
    };
    let policy = MirrorPolicy {
        name: "default/shadow-policy".into(),
        request: CopyShape {
            headers: Some(HeaderModifier {
                set: vec![pair("cookie", "session=abc")],
                add: vec![pair("x-shadow", "1")],
                remove: Vec::new(),
            }),
            ..CopyShape::default()
        },
        compare: None,
    };
    let mirror = Filter::Mirror(Mirror {
        backend: Arc::new(Backend::new(
            "default/shadow:80".into(),
            Vec::new(),
            BackendProtocol::Http1,
        )),
        fraction: Fraction::ALL,
        policy: Some(Arc::new(policy)),
    });
    let state = serving_filters(vec![Filter::RequestHeaders(modifier), mirror]);

    let dump = json_dump(&state, "").await;
    let filters = &listener(&dump, "http")["routes"][0]["entries"][0]["action"]["filters"];
    assert_eq!(
        filters[0]["RequestHeaders"]["set"],
        json!({"authorization": "<redacted>", "x-team": "blue"})
    );
    assert_eq!(
        filters[0]["RequestHeaders"]["add"],
        json!({"x-api-key": "<redacted>"})
    );
    assert_eq!(
        filters[1]["Mirror"]["policy"]["request"]["headers"]["set"],
        json!({"cookie": "<redacted>"})
    );
    assert_eq!(
        filters[1]["Mirror"]["policy"]["request"]["headers"]["add"],
        json!({"x-shadow": "1"})
    );
    let (_, _, yaml) = get(&state, "", None).await;
    for secret in ["s3cret", "k1", "session=abc"] {
        assert!(!yaml.contains(secret), "{secret} in {yaml}");
    }
    assert!(yaml.contains("x-team: blue"), "{yaml}");
}
