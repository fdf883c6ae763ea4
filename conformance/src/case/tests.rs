#![allow(clippy::unwrap_used)]

use std::path::Path;

use super::*;

const SIMPLE: &str = r#"
name: Demo
features: [Gateway, HTTPRoute]
gateway: {namespace: ns, name: gw}
steps:
  - status:
      - kind: HTTPRoute
        namespace: ns
        name: r
        parent: {name: gw, namespace: ns}
        conditions: {Accepted: True/Accepted, ResolvedRefs: 'True', Odd: '*'}
  - title: traffic
    requests:
      - request: {method: GET, path: /, requestId: true}
        expect:
          status: [200, 204]
          backend: {namespace: ns, service: b}
          request: {method: GET, path: /}
      - request: {method: GET, path: /x}
        expect: {status: 404, backend: none}
      - grpc: {method: Echo}
        expect: {code: OK}
  - patch:
      - {apiVersion: v1, kind: Gateway, namespace: ns, name: gw, mergePatch: {spec: {}}}
  - sleep: 1s
"#;

#[test]
fn parses_a_well_formed_case() {
    let case = Case::parse(Path::new("demo.yaml"), SIMPLE).unwrap();
    assert_eq!(case.name, "Demo");
    assert_eq!(case.features, ["Gateway", "HTTPRoute"]);
    let steps = case.steps().unwrap();
    assert_eq!(steps.len(), 4);
    let Action::Status(checks) = &steps[0].action else {
        panic!("status step")
    };
    let conditions = &checks[0].conditions.as_ref().unwrap().0;
    assert!(conditions.contains(&ConditionSpec {
        kind: "Accepted".into(),
        status: Some("True".into()),
        reason: Some("Accepted".into())
    }));
    assert!(conditions.contains(&ConditionSpec {
        kind: "Odd".into(),
        status: None,
        reason: None
    }));
    let Action::Requests(entries) = &steps[1].action else {
        panic!("requests step")
    };
    assert_eq!(steps[1].title.as_deref(), Some("traffic"));
    assert!(matches!(&entries[0].kind, RequestKind::Http(r) if r.request_id));
    assert_eq!(
        entries[0].expect.status,
        Some(StatusSet::Any(vec![200, 204]))
    );
    assert_eq!(entries[1].expect.backend, Some(ExpectBackend::None));
    assert!(
        matches!(&entries[2].kind, RequestKind::Grpc(r, e) if r.method == "Echo" && e.code.as_deref() == Some("OK"))
    );
}

#[test]
fn malformed_files_are_clear_errors() {
    let not_yaml = Case::parse(Path::new("x.yaml"), "name: [unclosed");
    assert!(matches!(not_yaml, Err(CaseError::Parse { .. })));
    let no_name = Case::parse(Path::new("x.yaml"), "features: []\n");
    assert!(matches!(no_name, Err(CaseError::Parse { .. })));
    let empty_name = Case::parse(Path::new("x.yaml"), "name: ''\n");
    assert!(matches!(empty_name, Err(CaseError::Invalid { .. })));
}

/// The steps of a case file holding `yaml`, which must parse as a case.
fn steps_of(yaml: &str) -> Result<Vec<Step>, CaseError> {
    Case::parse(Path::new("x.yaml"), yaml).unwrap().steps()
}

#[test]
fn malformed_steps_name_the_step() {
    let two_actions = "name: X\nsteps:\n  - sleep: 1s\n    apply: 'a: b'\n";
    let err = steps_of(two_actions).unwrap_err();
    assert!(err.to_string().contains("step 1"), "{err}");
    assert!(err.to_string().contains("exactly one action"), "{err}");

    let unknown_key = "name: X\nsteps:\n  - title: t\n    requests:\n      - request: {method: GET, path: /, bogus: 1}\n";
    let err = steps_of(unknown_key).unwrap_err();
    assert!(err.to_string().contains("step 1 (t)"), "{err}");
    assert!(
        crate::error_chain(&err).contains("bogus"),
        "{}",
        crate::error_chain(&err)
    );

    let bad_status =
        "name: X\nsteps:\n  - status: [{kind: Gateway, conditions: {Accepted: [1]}}]\n";
    assert!(steps_of(bad_status).is_err());

    let both_patches = "name: X\nsteps:\n  - patch: [{apiVersion: v1, kind: K, name: n, jsonPatch: [], mergePatch: {}}]\n";
    let err = steps_of(both_patches).unwrap_err();
    assert!(
        err.to_string()
            .contains("exactly one of jsonPatch, mergePatch"),
        "{err}"
    );
}

#[test]
fn every_shared_case_file_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/cases");
    // The shared cases live beside the repository; without them there is nothing to check.
    if dir.is_dir() {
        assert_every_case_parses(&dir);
    }
}

/// Our own cases run only when their features are claimed; a typo in one must not wait for that.
#[test]
fn every_case_file_of_ours_parses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert_every_case_parses(&root.join("cases"));
    assert_every_case_parses(&root.join("tests/cases"));
}

fn assert_every_case_parses(dir: &Path) {
    let files = case_files(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    assert!(!files.is_empty(), "no case files in {}", dir.display());
    for file in files {
        let case = Case::load(&file).unwrap_or_else(|e| panic!("{}", crate::error_chain(&e)));
        if case.base == Base::Gateway {
            case.steps()
                .unwrap_or_else(|e| panic!("{}: {}", file.display(), crate::error_chain(&e)));
        }
    }
}

#[test]
fn websocket_entries_parse_with_their_frames() {
    let text = "name: W\nsteps:\n  - requests:\n      - websocket: {path: /ws, subprotocol: '', origin: 'ws://gateway/x'}\n        expect:\n          echo:\n            - {text: hi}\n            - binary: [1, 2]\n";
    let steps = steps_of(text).unwrap();
    let Action::Requests(entries) = &steps[0].action else {
        panic!("requests step")
    };
    assert!(matches!(&entries[0].kind, RequestKind::WebSocket(w) if w.path == "/ws"));
    assert_eq!(
        entries[0].expect.echo,
        [
            Frame::Text { text: "hi".into() },
            Frame::Binary { binary: vec![1, 2] }
        ]
    );
}

#[test]
fn tcp_entries_parse_with_their_own_expectations() {
    let text = "name: T\nsteps:
  - requests:
      - tcp: {tls: true, serverName: abc.example.com, trust: {configMap: ns/ca, key: ca.crt}}
        expect: {backendIsTLS: true, backend: {namespace: ns, service: tcp-backend}, sni: abc.example.com}
      - tcp: {tls: false, mode: testOnly}
        repeat: 3
        expect: {anyPod: true}
      - tcpConnect: {}
        expect: {connected: true}
      - tlsConnect: {serverName: example.com}
        expect: {rejected: true}
";
    let steps = steps_of(text).unwrap();
    let Action::Requests(entries) = &steps[0].action else {
        panic!("requests step")
    };
    let RequestKind::Tcp(tls, expect) = &entries[0].kind else {
        panic!("tcp entry")
    };
    assert!(tls.tls && tls.mode == TcpMode::Full);
    assert_eq!(
        tls.trust.as_ref().unwrap().config_map.as_deref(),
        Some("ns/ca")
    );
    assert_eq!(expect.backend_is_tls, Some(true));
    assert_eq!(expect.sni.as_deref(), Some("abc.example.com"));
    assert!(
        matches!(&entries[1].kind, RequestKind::Tcp(r, e) if r.mode == TcpMode::TestOnly && e.any_pod)
    );
    assert_eq!(entries[1].repeat, Some(3));
    assert!(matches!(&entries[2].kind, RequestKind::TcpConnect(e) if e.connected));
    assert!(matches!(&entries[3].kind, RequestKind::TlsConnect(r, e)
        if r.server_name.as_deref() == Some("example.com") && e.rejected));
    let typo = "name: T\nsteps:\n  - requests:\n      - tcp: {tls: false}\n        expect: {backendIsTls: true}\n";
    assert!(steps_of(typo).is_err(), "unknown expect keys are errors");
}
