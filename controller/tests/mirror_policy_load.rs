//! MirrorPolicy objects in standalone YAML are admitted as the API server would admit them
//! (schema and CEL of the generated CRD): bad ones get a clear error naming the field, never a
//! panic, and typos are rejected.

use std::path::Path;

use sluice_controller::resources::mirror_policy::ByteQuantity;
use sluice_controller::resources::{LoadErrors, LoadedConfig, Resources};

fn load(spec: &str) -> Result<LoadedConfig, LoadErrors> {
    let text = format!(
        "apiVersion: sluice.dev/v1alpha1\nkind: MirrorPolicy\nmetadata: {{name: p, namespace: app}}\n\
         spec:\n{spec}"
    );
    Resources::from_yaml_documents(Path::new("policy.yaml"), &text)
}

const TARGET: &str =
    "  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: r}]\n";

#[test]
fn a_full_policy_loads_into_its_type() {
    let spec = format!(
        "{TARGET}  request:\n    hostSuffix: -shadow\n    headers: {{set: [{{name: X-Shadow, value: '1'}}], \
         remove: [X-Debug]}}\n    stripCredentials: true\n    timeout: 5s\n    maxBodyBytes: 8Mi\n\
         \x20 compare: {{percent: 50, status: true, headers: [content-type], body: true, \
         ignoreJSONFields: [/ts, /a~1b], samples: 100}}\n"
    );
    let cfg = load(&spec).expect("loads");
    let policies = &cfg.resources.mirror_policies;
    assert_eq!(policies.len(), 1);
    let request = policies[0].spec.request.as_ref().expect("request");
    assert_eq!(request.host_suffix.as_deref(), Some("-shadow"));
    assert_eq!(
        request.max_body_bytes,
        Some(ByteQuantity::String("8Mi".into()))
    );
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
}

#[test]
fn what_the_api_server_refuses_is_an_error_naming_the_field() {
    // (case, spec, the field and message the error names)
    let cases = [
        (
            "hostSuffix and hostRewrite together",
            format!("{TARGET}  request: {{hostSuffix: -s, hostRewrite: shadow.example}}\n"),
            "spec.request: hostSuffix and hostRewrite are mutually exclusive",
        ),
        (
            "no targetRefs",
            "  targetRefs: []\n".to_string(),
            "spec.targetRefs: Invalid value: 0: should have at least 1 items",
        ),
        (
            "a target of another kind",
            "  targetRefs: [{group: gateway.networking.k8s.io, kind: Service, name: s}]\n".into(),
            "spec.targetRefs[0].kind: Unsupported value: \"Service\"",
        ),
        (
            "a target in another group",
            "  targetRefs: [{group: example.com, kind: HTTPRoute, name: r}]\n".into(),
            "spec.targetRefs[0]: group must be gateway.networking.k8s.io",
        ),
        (
            "the same target twice",
            "  targetRefs:\n  - {group: gateway.networking.k8s.io, kind: HTTPRoute, name: r}\n  \
             - {group: gateway.networking.k8s.io, kind: HTTPRoute, name: r}\n"
                .into(),
            "spec.targetRefs: targetRefs must be unique",
        ),
        (
            "percent over 100",
            format!("{TARGET}  compare: {{percent: 101}}\n"),
            "spec.compare.percent",
        ),
        (
            "too many samples",
            format!("{TARGET}  compare: {{samples: 1001}}\n"),
            "spec.compare.samples",
        ),
        (
            "a timeout not in the Gateway API format",
            format!("{TARGET}  request: {{timeout: 1.5s}}\n"),
            "spec.request.timeout: Invalid value: \"1.5s\"",
        ),
        (
            "a fractional body budget",
            format!("{TARGET}  request: {{maxBodyBytes: 1.5Mi}}\n"),
            "spec.request.maxBodyBytes",
        ),
        (
            "a negative body budget",
            format!("{TARGET}  request: {{maxBodyBytes: -1}}\n"),
            "spec.request.maxBodyBytes",
        ),
        (
            "a zero timeout",
            format!("{TARGET}  request: {{timeout: 0s}}\n"),
            "spec.request.timeout: timeout must be more than 0s and at most 1h",
        ),
        (
            "a timeout over an hour",
            format!("{TARGET}  request: {{timeout: 99999h}}\n"),
            "spec.request.timeout: timeout must be more than 0s and at most 1h",
        ),
        (
            "a zero body budget",
            format!("{TARGET}  request: {{maxBodyBytes: 0}}\n"),
            "spec.request.maxBodyBytes",
        ),
        (
            "a zero body budget as a quantity",
            format!("{TARGET}  request: {{maxBodyBytes: 0Mi}}\n"),
            "spec.request.maxBodyBytes",
        ),
        (
            "JSON fields ignored without comparing bodies",
            format!("{TARGET}  compare: {{ignoreJSONFields: [/ts]}}\n"),
            "spec.compare: ignoreJSONFields requires body: true",
        ),
        (
            "nothing compared",
            format!("{TARGET}  compare: {{status: false}}\n"),
            "spec.compare: at least one of status, headers or body must be compared",
        ),
        (
            "a header name with a space",
            format!("{TARGET}  request: {{headers: {{remove: [X Debug]}}}}\n"),
            "spec.request.headers.remove[0]",
        ),
        (
            "a JSON Pointer without its slash",
            format!("{TARGET}  compare: {{ignoreJSONFields: [ts]}}\n"),
            "spec.compare.ignoreJSONFields[0]",
        ),
        (
            "a typo",
            format!("{TARGET}  request: {{stripCredential: true}}\n"),
            "spec.request.stripCredential: unknown field \"stripCredential\" (did you mean \"stripCredentials\"?)",
        ),
    ];
    for (case, spec, expected) in cases {
        let err = load(&spec).expect_err(case);
        let msg = err.to_string();
        assert!(msg.contains("policy.yaml:"), "{case}: {msg}");
        assert!(msg.contains("MirrorPolicy app/p"), "{case}: {msg}");
        assert!(msg.contains(expected), "{case}: {msg}");
    }
}

#[test]
fn an_unserved_version_names_the_served_one() {
    let text = "apiVersion: sluice.dev/v1\nkind: MirrorPolicy\nmetadata: {name: p}\nspec: {}\n";
    let err = Resources::from_yaml_documents(Path::new("policy.yaml"), text)
        .expect_err("v1 is not served");
    assert!(err.to_string().contains("v1alpha1"), "{err}");
}
