//! Translate under hostile input: whatever strings an HTTPRoute carries, no CR, LF or NUL ever
//! reaches the snapshot the data plane serves from (a header value with CRLF would be response
//! splitting; a path with NUL a smuggling vector). Bounded: a fixed number of cases per run.

use std::path::Path;

use proptest::prelude::*;
use serde_json::{json, Value};
use sluice_controller::resources::Resources;
use sluice_controller::translate::{translate, Timestamp, TranslateOptions};

fn route(s: &[String]) -> String {
    let docs = [
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
            "metadata": {"name": "sluice"},
            "spec": {"controllerName": "sluice.dev/gateway-controller"}}),
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "gw", "namespace": "default"},
            "spec": {"gatewayClassName": "sluice", "listeners": [
                {"name": "http", "port": 80, "protocol": "HTTP", "hostname": s[0]}]}}),
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "app", "namespace": "default"},
            "spec": {"ports": [{"name": "http", "port": 8080}]}}),
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "r", "namespace": "default"},
        "spec": {
            "parentRefs": [{"name": "gw"}],
            "hostnames": [s[1]],
            "rules": [{
                "matches": [{
                    "path": {"type": "PathPrefix", "value": s[2]},
                    "headers": [{"name": s[3], "value": s[4]}],
                    "queryParams": [{"name": s[5], "value": s[6]}],
                }],
                "filters": [
                    {"type": "RequestHeaderModifier", "requestHeaderModifier": {
                        "set": [{"name": s[7], "value": s[8]}],
                        "add": [{"name": "x-a", "value": s[9]}]}},
                    {"type": "ResponseHeaderModifier", "responseHeaderModifier": {
                        "set": [{"name": "x-b", "value": s[10]}]}},
                    {"type": "URLRewrite", "urlRewrite": {"hostname": s[11],
                        "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": s[12]}}},
                ],
                "backendRefs": [{"name": "app", "port": 8080}],
            }],
        }}),
    ];
    docs.iter()
        .map(|d| serde_json::to_string(d).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n---\n")
}

fn control_free(value: &Value, path: &str) -> Result<(), String> {
    match value {
        Value::String(s) if s.contains(['\r', '\n', '\0']) => Err(format!("{path}: {s:?}")),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| control_free(v, &format!("{path}[{i}]"))),
        Value::Object(map) => map
            .iter()
            .try_for_each(|(k, v)| control_free(v, &format!("{path}.{k}"))),
        _ => Ok(()),
    }
}

/// Mostly plausible strings, with CR, LF, NUL and friends mixed in.
fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9./*-]{0,12}",
        "[a-z/]{0,4}[\r\n\0\t ][a-z:/]{0,6}",
        "/[a-z]{0,3}\r\n[A-Za-z-]{1,6}: [a-z]{0,4}",
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn no_control_byte_reaches_the_snapshot(strings in proptest::collection::vec(hostile(), 13)) {
        let text = route(&strings);
        if let Ok(loaded) = Resources::from_yaml_documents(Path::new("fuzz.yaml"), &text) {
            let now = Timestamp::from_second(1_767_225_600).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let out = translate(&loaded.resources, &TranslateOptions::default(), now);
            out.snapshot.validate().map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut snapshot = serde_json::to_value(&out.snapshot)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            // Statuses may quote the bad input in a message; only what is served is checked.
            if let Value::Object(map) = &mut snapshot {
                map.remove("statuses");
            }
            control_free(&snapshot, "snapshot").map_err(TestCaseError::fail)?;
        }
    }
}

/// The property is not vacuous: a plausible route does reach the snapshot, with every string
/// the fuzzer varies, and the check does catch a control byte.
#[test]
fn a_plausible_route_reaches_the_snapshot_and_the_check_bites() {
    let strings: Vec<String> = [
        "*.example.com",
        "a.example.com",
        "/p",
        "x-h",
        "v",
        "q",
        "w",
        "x-set",
        "s",
        "added",
        "resp",
        "rewritten.example.com",
        "/new",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let loaded =
        Resources::from_yaml_documents(Path::new("fuzz.yaml"), &route(&strings)).expect("loads");
    let now = Timestamp::from_second(1_767_225_600).expect("timestamp");
    let out = translate(&loaded.resources, &TranslateOptions::default(), now);
    let snapshot = serde_json::to_string(&out.snapshot).expect("renders");
    for s in [
        "x-set",
        "added",
        "resp",
        "rewritten.example.com",
        "/new",
        "x-h",
    ] {
        assert!(snapshot.contains(s), "{s} missing from {snapshot}");
    }
    assert!(control_free(&json!({"a": ["ok", "x\r\ny"]}), "t").is_err());
}
