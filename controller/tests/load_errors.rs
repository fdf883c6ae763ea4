//! Malformed input: every error names file, object and field; nothing panics.

use std::path::Path;

use sluice_controller::resources::{LoadErrors, Resources};
use sluice_controller::translate::{translate, Timestamp, TranslateOptions};

fn load(text: &str) -> Result<(), LoadErrors> {
    Resources::from_yaml_documents(Path::new("routes.yaml"), text).map(|_| ())
}

#[test]
fn wrong_types_name_the_field_path() {
    let cases = [
        (
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: web}\n\
             spec: {gatewayClassName: c, listeners: [{name: http, port: 80, protocol: HTTP, hostname: [a]}]}\n",
            "Gateway web/gw",
            "spec.listeners[0].hostname",
        ),
        (
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n\
             spec: {rules: [{matches: [{method: FETCH}]}]}\n",
            "HTTPRoute default/r",
            "spec.rules[0].matches[0].method",
        ),
        (
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n\
             spec: {rules: [{filters: [{type: Teleport}]}]}\n",
            "HTTPRoute default/r",
            "spec.rules[0].filters[0].type",
        ),
        (
            "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: app}\nspec: {ports: [{port: http}]}\n",
            "Service app/s",
            "spec.ports[0].port",
        ),
        (
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspec: {listeners: []}\n",
            "Gateway default/gw",
            "spec",
        ),
    ];
    for (text, object, field) in cases {
        let err = load(text).expect_err(field);
        let msg = err.to_string();
        assert!(msg.contains("routes.yaml"), "{msg}");
        assert!(msg.contains(object), "{msg}");
        assert!(msg.contains(field), "{msg}");
    }
}

#[test]
fn second_document_error_names_its_object_not_the_first() {
    let text = "apiVersion: v1\nkind: Service\nmetadata: {name: ok}\n---\n\
                apiVersion: v1\nkind: Service\nmetadata: {name: bad}\nspec: {ports: 7}\n";
    let msg = load(text).expect_err("bad ports").to_string();
    assert!(
        msg.contains("Service default/bad") && msg.contains("spec.ports"),
        "{msg}"
    );
}

#[test]
fn duplicates_across_files_name_both_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n";
    std::fs::write(dir.path().join("a.yaml"), svc).expect("write");
    std::fs::write(dir.path().join("b.yaml"), svc).expect("write");
    let msg = Resources::load_path(dir.path())
        .expect_err("duplicate")
        .to_string();
    assert!(msg.contains("a.yaml") && msg.contains("b.yaml"), "{msg}");
    assert!(msg.contains("Service default/s"), "{msg}");
}

/// Every prefix of a realistic config either loads (and then translates) or is an error.
#[test]
fn truncated_configs_never_panic() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/basic-route.in.yaml"),
    )
    .expect("golden input");
    let now = Timestamp::UNIX_EPOCH;
    let mut loaded = 0;
    for end in (0..text.len())
        .step_by(5)
        .filter(|i| text.is_char_boundary(*i))
    {
        if let Ok(cfg) = Resources::from_yaml_documents(Path::new("cut.yaml"), &text[..end]) {
            loaded += 1;
            let _ = translate(&cfg.resources, &TranslateOptions::default(), now);
        }
    }
    assert!(loaded > 0, "some prefixes are valid configurations");
}

#[test]
fn grpc_and_tls_routes_are_loaded_in_every_served_version() {
    let text = "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: g}\n\
                spec: {rules: [{matches: [{method: {service: pkg.Svc}}]}]}\n---\n\
                apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TLSRoute\nmetadata: {name: t}\n\
                spec: {hostnames: [a.example.com], rules: [{backendRefs: [{name: s, port: 443}]}]}\n";
    let loaded =
        Resources::from_yaml_documents(Path::new("routes.yaml"), text).expect("both admitted");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(loaded.resources.grpc_routes.len(), 1);
    assert_eq!(loaded.resources.tls_routes.len(), 1);
}

#[test]
fn invalid_grpc_and_tls_routes_name_file_line_and_field() {
    let text = "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: g}\n\
                spec:\n  rules:\n  - matches:\n    - method: {type: Prefix, service: pkg.Svc}\n---\n\
                apiVersion: gateway.networking.k8s.io/v1\nkind: TLSRoute\nmetadata: {name: t}\n\
                spec: {rules: [{backendRefs: [{name: s, port: 443}]}]}\n";
    let msg = load(text).expect_err("both invalid").to_string();
    assert!(
        msg.contains("routes.yaml:7: GRPCRoute default/g: spec.rules[0].matches[0].method.type"),
        "{msg}"
    );
    assert!(
        msg.contains("routes.yaml:") && msg.contains("TLSRoute default/t: spec"),
        "{msg}"
    );
}
