//! The harness end to end: case files in, an in-process Sluice with echo pods, verdicts out.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use sluice_conformance::runner::{Outcome, Settings};
use sluice_conformance::suite::{run_suite, SuiteOptions};

const LIMIT: Duration = Duration::from_secs(120);

const BASE: &str = "
apiVersion: v1
kind: Namespace
metadata: {name: gateway-conformance-infra}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: same-namespace, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: '{GATEWAY_CLASS_NAME}'
  listeners: [{name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: Same}}}]
---
apiVersion: v1
kind: Service
metadata: {name: infra-backend-v1, namespace: gateway-conformance-infra}
spec:
  selector: {app: infra-backend-v1}
  ports: [{protocol: TCP, port: 8080, targetPort: 3000}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: infra-backend-v1, namespace: gateway-conformance-infra, labels: {app: infra-backend-v1}}
spec:
  replicas: 2
  selector: {matchLabels: {app: infra-backend-v1}}
  template:
    metadata: {labels: {app: infra-backend-v1}}
    spec:
      containers:
      - name: infra-backend-v1
        image: registry.k8s.io/gateway-api/conformance/echo-basic:v0.1.0
        env:
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: NAMESPACE, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
";

const CASE_HEAD: &str = "
features: [Gateway, HTTPRoute]
base: gateway
gateway: {namespace: gateway-conformance-infra, name: same-namespace}
manifests: |
  apiVersion: gateway.networking.k8s.io/v1
  kind: HTTPRoute
  metadata: {name: route, namespace: gateway-conformance-infra}
  spec:
    parentRefs: [{name: same-namespace}]
    rules: [{backendRefs: [{name: infra-backend-v1, port: 8080}]}]
";

fn write_cases(dir: &Path, cases: &[(&str, &str)]) -> PathBuf {
    std::fs::write(dir.join("base.yaml"), BASE).unwrap();
    let cases_dir = dir.join("cases");
    std::fs::create_dir(&cases_dir).unwrap();
    for (name, body) in cases {
        std::fs::write(
            cases_dir.join(format!("{name}.yaml")),
            format!("name: {name}\n{CASE_HEAD}{body}"),
        )
        .unwrap();
    }
    cases_dir
}

fn options(cases_dir: PathBuf) -> SuiteOptions {
    let mut settings = Settings::claimed();
    settings.status_timeout_cap = Some(Duration::from_secs(2));
    SuiteOptions {
        case_dirs: vec![cases_dir],
        only: None,
        base: None,
        concurrency: 2,
        settings,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cases_pass_fail_and_skip_against_an_in_process_sluice() {
    let dir = tempfile::tempdir().unwrap();
    let cases_dir = write_cases(
        dir.path(),
        &[
            (
                "RoutesToTheBackend",
                "steps:
  - status:
      - {kind: HTTPRoute, namespace: gateway-conformance-infra, name: route,
         parent: {name: same-namespace, namespace: gateway-conformance-infra}, conditions: {Accepted: 'True'}}
  - requests:
      - request: {method: GET, path: /hello?x=1}
        expect:
          status: 200
          backend: {namespace: gateway-conformance-infra, service: infra-backend-v1}
          request: {method: GET, path: /hello?x=1}
",
            ),
            (
                "ForbidsTheAnswerItGets",
                "steps:
  - requests:
      - request: {method: GET, path: /}
        expect: {notStatus: 200}
",
            ),
            (
                "WaitsForAConditionThatNeverComes",
                "steps:
  - status:
      - {kind: HTTPRoute, namespace: gateway-conformance-infra, name: route,
         parent: {name: same-namespace, namespace: gateway-conformance-infra}, conditions: {Accepted: False/NotAllowedByListeners}}
",
            ),
            ("DuplicatesAKey", "features: [Gateway]\nsteps: []\n"),
        ],
    );
    // DuplicatesAKey repeats `features`: a malformed file is a failed case, not an aborted run.
    let results = tokio::time::timeout(LIMIT, run_suite(&options(cases_dir)))
        .await
        .unwrap()
        .unwrap();
    let outcome = |name: &str| {
        results
            .iter()
            .find(|r| r.name == name)
            .unwrap()
            .outcome
            .clone()
    };

    assert_eq!(outcome("RoutesToTheBackend"), Outcome::Passed);
    let Outcome::Failed { reason, .. } = outcome("ForbidsTheAnswerItGets") else {
        panic!("must fail")
    };
    assert!(reason.contains("got HTTP 200"), "{reason}");
    assert!(
        reason.contains("GET /"),
        "the failure names the request: {reason}"
    );
    assert!(
        reason.contains("infra-backend-v1-"),
        "the failure names the answering pod: {reason}"
    );
    let Outcome::Failed { reason, .. } = outcome("WaitsForAConditionThatNeverComes") else {
        panic!("must fail")
    };
    assert!(
        reason.contains("missing Accepted=False/NotAllowedByListeners"),
        "{reason}"
    );
    assert!(
        matches!(outcome("DuplicatesAKey"), Outcome::Failed { ref step, .. } if step == "parse")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unclaimed_features_skip_the_case() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("base.yaml"), BASE).unwrap();
    let cases_dir = dir.path().join("cases");
    std::fs::create_dir(&cases_dir).unwrap();
    std::fs::write(
        cases_dir.join("Tcp.yaml"),
        "name: Tcp\nfeatures: [Gateway, TCPRoute]\nsteps:\n  - requests:\n      - tcp: {tls: false}\n        expect: {}\n",
    )
    .unwrap();
    let results = tokio::time::timeout(LIMIT, run_suite(&options(cases_dir)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        results[0].outcome,
        Outcome::Skipped("unsupported features: TCPRoute".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_simple_same_namespace_case_passes() {
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/cases");
    if !cases.join("HTTPRouteSimpleSameNamespace.yaml").exists() {
        // The shared cases live beside the repository (as in CI); nothing to run without them.
        return;
    }
    let mut options = options(cases);
    options.only = Some("HTTPRouteSimpleSameNamespace".to_owned());
    options.settings.status_timeout_cap = Some(Duration::from_secs(20));
    let results = tokio::time::timeout(LIMIT, run_suite(&options))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(
        results[0].outcome,
        Outcome::Passed,
        "{:?}",
        results[0].outcome
    );
}

/// Runs one of Sluice's own cases (`tests/cases/NAME.yaml`) on the small base; it must pass.
async fn own_case_passes(name: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("base.yaml"), BASE).unwrap();
    let cases_dir = dir.path().join("cases");
    std::fs::create_dir(&cases_dir).unwrap();
    let file = format!("{name}.yaml");
    let case = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/cases")
        .join(&file);
    std::fs::copy(&case, cases_dir.join(&file)).unwrap();
    let results = tokio::time::timeout(LIMIT, run_suite(&options(cases_dir)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].outcome, Outcome::Passed, "{:?}", results[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fill_endpoint_slices_wires_selector_less_and_headless_services_to_the_pods() {
    own_case_passes("HTTPRouteServiceTypes").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_entries_reach_grpc_echo_pods_through_sluice() {
    own_case_passes("GrpcOverHTTPRoute").await;
}
