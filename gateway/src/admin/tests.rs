//! Admin endpoints against a real store and metrics registry.

#![allow(clippy::unwrap_used)]

use http_body_util::BodyExt;
use sluice_controller::snapshot::Snapshot;

use super::*;

fn state() -> AdminState {
    let store = Store::new();
    let metrics = Metrics::new().unwrap();
    metrics.track_store(store.clone()).unwrap();
    let (_, listeners) = watch::channel(ListenerStatus::default());
    AdminState {
        store,
        metrics: Arc::new(metrics),
        listeners,
    }
}

/// A state whose store has published one (empty) snapshot.
fn published() -> AdminState {
    let state = state();
    state.store.publish(Snapshot::default());
    state
}

/// The body of `GET path`, which must answer 200.
async fn get_ok(state: &AdminState, path: &str) -> String {
    let (code, body) = get(state, path).await;
    assert_eq!(code, StatusCode::OK, "{path}");
    body
}

async fn get(state: &AdminState, path: &str) -> (StatusCode, String) {
    let response = respond(state, &Method::GET, path);
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn readyz_turns_ready_with_the_first_snapshot() {
    let state = state();
    let (code, body) = get(&state, "/readyz").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("no configuration has been loaded"), "{body}");

    state
        .store
        .reject("bad.yaml: line 3: mapping values are not allowed".into());
    let (code, body) = get(&state, "/readyz").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body.contains("line 3"),
        "the reason names the error: {body}"
    );

    state.store.publish(Snapshot::default());
    assert_eq!(get(&state, "/readyz").await.0, StatusCode::OK);
    assert_eq!(
        get(&state, "/healthz").await,
        (StatusCode::OK, "ok\n".into())
    );
}

#[tokio::test]
async fn listeners_reports_the_unbound_addresses_in_the_controllers_format() {
    let (tx, listeners) = watch::channel(ListenerStatus::default());
    let state = AdminState {
        listeners,
        ..state()
    };
    let address: SocketAddr = "0.0.0.0:80".parse().unwrap();
    tx.send_modify(|s| {
        s.failed
            .insert(address, "Address already in use (os error 98)".into());
    });
    let (code, body) = get(&state, "/listeners").await;
    assert_eq!(code, StatusCode::OK);
    let report: sluice_controller::provision::probe::ListenerReport =
        serde_json::from_str(&body).unwrap();
    assert_eq!(
        report.failed.get(&address).map(String::as_str),
        Some("Address already in use (os error 98)")
    );
}

#[tokio::test]
async fn config_reports_the_generation_and_the_last_rejection() {
    let state = published();
    let body = get_ok(&state, "/config").await;
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&body).unwrap();
    assert_eq!(doc["reload"]["generation"], 1);
    assert_eq!(doc["reload"]["lastReload"]["result"], "published");

    state.store.reject(
        "gw.yaml:4: Gateway default/gw: spec.listeners[0].hostnam: unknown field \"hostnam\"\n\
         gw.yaml:9: HTTPRoute default/r: spec.parentRef: unknown field \"parentRef\""
            .into(),
    );
    let (_, body) = get(&state, "/config").await;
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&body).unwrap();
    assert_eq!(
        doc["reload"]["generation"], 1,
        "the last good snapshot keeps serving"
    );
    assert_eq!(doc["reload"]["lastReload"]["result"], "rejected");
    assert_eq!(
        doc["reload"]["lastReload"]["errors"][0],
        "gw.yaml:4: Gateway default/gw: spec.listeners[0].hostnam: unknown field \"hostnam\""
    );
    assert_eq!(
        doc["reload"]["lastReload"]["errors"][1],
        "gw.yaml:9: HTTPRoute default/r: spec.parentRef: unknown field \"parentRef\""
    );
    assert_eq!(doc["reload"]["reloads"]["rejected"], 1);
    assert!(
        doc["reload"]["lastReload"]["at"]
            .as_str()
            .unwrap()
            .ends_with('Z'),
        "{body}"
    );
}

#[tokio::test]
async fn metrics_exports_the_store_generation() {
    let state = published();
    state.store.publish(Snapshot::default());
    let body = get_ok(&state, "/metrics").await;
    assert!(body.contains("sluice_snapshot_generation 2"), "{body}");
}

#[tokio::test]
async fn status_serves_yaml_of_the_live_snapshot() {
    let state = published();
    let body = get_ok(&state, "/status").await;
    assert!(
        serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&body).is_ok(),
        "{body}"
    );
}

#[tokio::test]
async fn unknown_paths_are_404_and_other_methods_405() {
    let state = state();
    assert_eq!(get(&state, "/nope").await.0, StatusCode::NOT_FOUND);
    let response = respond(&state, &Method::POST, "/readyz");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()[header::ALLOW], "GET");
}

#[tokio::test]
async fn server_answers_on_its_reported_port_and_stops_on_shutdown() {
    let server = AdminServer::start("127.0.0.1:0".parse().unwrap(), state())
        .await
        .unwrap();
    let address = server.local_addr();
    assert_ne!(address.port(), 0);
    let url = format!("http://{address}/healthz");
    let body = tokio::time::timeout(Duration::from_secs(10), async {
        reqwest::get(&url).await.unwrap().text().await.unwrap()
    })
    .await
    .unwrap();
    assert_eq!(body, "ok\n");
    server.shutdown(Duration::from_secs(1)).await;
    assert!(tokio::net::TcpStream::connect(address).await.is_err());
}

#[tokio::test]
async fn shadow_is_an_empty_json_report_before_any_mismatch() {
    let state = state();
    let body = get_ok(&state, "/shadow").await;
    assert_eq!(body, r#"{"samples":[],"dropped":0}"#);
    let response = respond(&state, &Method::POST, "/shadow");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
}
