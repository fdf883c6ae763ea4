//! Golden translation tests: every `golden/<case>.in.yaml` -> `golden/<case>.out.yaml`, one test
//! per case (listed in `golden_cases!` below), so a failure names its case.
//!
//! The output holds only what translation produced: warnings, statuses and the rendered snapshot
//! (or the load error). An input a cluster would refuse (a CRD rule, a pattern) shows the
//! admission errors of standalone mode, then what translation makes of the objects anyway: the
//! translator stays defensive for API servers with older or laxer CRDs. Every snapshot must pass
//! `Snapshot::validate`, and translating twice must give the same bytes.
//!
//! Re-bless with `SLUICE_BLESS=1 cargo test -p sluice-controller --test golden` (docs/testing.md);
//! blessing also deletes outputs whose input is gone.
//! A line `# golden: address_pool=<cidr>` in the input translates with that address pool; without
//! it, Gateways listen on 192.0.2.1.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sluice_controller::resources::Resources;
use sluice_controller::snapshot::Snapshot;
use sluice_controller::status::StatusReport;
use sluice_controller::translate::{translate, Timestamp, TranslateOptions};

/// One `#[test]` per case, and `CASES`, which `case_files_and_tests_agree` compares with the
/// directory: a new input without a line here fails that test rather than going unchecked.
macro_rules! golden_cases {
    ($($test:ident => $case:literal,)*) => {
        $(
            #[test]
            fn $test() {
                check($case);
            }
        )*
        const CASES: &[&str] = &[$($case),*];
    };
}

golden_cases! {
    address_pool => "address-pool",
    allowed_routes_selector => "allowed-routes-selector",
    backend_protocols => "backend-protocols",
    backend_tls_policies => "backend-tls-policies",
    basic_route => "basic-route",
    cors_filter => "cors-filter",
    cross_namespace_reference_grant => "cross-namespace-reference-grant",
    frontend_client_validation => "frontend-client-validation",
    grpcroute_http_conflict => "grpcroute-http-conflict",
    grpcroute_matching => "grpcroute-matching",
    grpcroute_statuses => "grpcroute-statuses",
    hostname_intersection => "hostname-intersection",
    https_listener => "https-listener",
    infrastructure_parameters => "infrastructure-parameters",
    invalid_backends => "invalid-backends",
    invalid_rules => "invalid-rules",
    listener_set_attachment => "listener-set-attachment",
    listener_set_conflicts => "listener-set-conflicts",
    listener_set_not_allowed => "listener-set-not-allowed",
    listener_validation => "listener-validation",
    malformed_field => "malformed-field",
    mirror_filters => "mirror-filters",
    mirrorpolicy_cel_rejected => "mirrorpolicy-cel-rejected",
    mirrorpolicy_conflict => "mirrorpolicy-conflict",
    mirrorpolicy_grpcroute => "mirrorpolicy-grpcroute",
    mirrorpolicy_one_rule => "mirrorpolicy-one-rule",
    mirrorpolicy_target_not_found => "mirrorpolicy-target-not-found",
    mirrorpolicy_whole_route => "mirrorpolicy-whole-route",
    precedence_across_routes => "precedence-across-routes",
    retry_timeouts => "retry-timeouts",
    service_types => "service-types",
    tlsroute_invalid_refs => "tlsroute-invalid-refs",
    tlsroute_modes => "tlsroute-modes",
    weights => "weights",
}

#[derive(Serialize)]
struct Rendered<'a> {
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    admission_errors: &'a [String],
    warnings: &'a [String],
    statuses: &'a StatusReport,
    snapshot: &'a Snapshot,
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn options_for(text: &str) -> TranslateOptions {
    let mut options = TranslateOptions {
        listen_address: "192.0.2.1".parse().expect("valid address"),
        ..Default::default()
    };
    for line in text.lines() {
        if let Some(pool) = line.strip_prefix("# golden: address_pool=") {
            options.address_pool = Some(pool.trim().parse().expect("valid golden address pool"));
        }
    }
    options
}

/// The objects as their types decode them, unvalidated: what a lax API server would hand over.
fn decode_unchecked(text: &str) -> Result<Resources, String> {
    fn push<K: serde::de::DeserializeOwned + kube::Resource>(
        list: &mut Vec<K>,
        value: serde_yaml_ng::Value,
    ) -> Result<(), String> {
        let mut obj: K = serde_yaml_ng::from_value(value).map_err(|e| e.to_string())?;
        if obj.meta().namespace.is_none() {
            obj.meta_mut().namespace = Some("default".into());
        }
        list.push(obj);
        Ok(())
    }
    let mut r = Resources::default();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let value = serde_yaml_ng::Value::deserialize(doc).map_err(|e| e.to_string())?;
        match value.get("kind").and_then(|k| k.as_str()) {
            Some("Gateway") => push(&mut r.gateways, value)?,
            Some("HTTPRoute") => push(&mut r.http_routes, value)?,
            Some("GatewayClass") => r
                .gateway_classes
                .push(serde_yaml_ng::from_value(value).map_err(|e| e.to_string())?),
            Some("ReferenceGrant") => push(&mut r.reference_grants, value)?,
            Some("Service") => push(&mut r.services, value)?,
            Some("EndpointSlice") => push(&mut r.endpoint_slices, value)?,
            Some("Secret") => push(&mut r.secrets, value)?,
            Some("MirrorPolicy") => push(&mut r.mirror_policies, value)?,
            _ => {}
        }
    }
    r.sort();
    Ok(r)
}

fn render(name: &str, text: &str) -> String {
    let (resources, warnings, admission_errors) =
        match Resources::from_yaml_documents(Path::new(name), text) {
            Ok(loaded) => (loaded.resources, loaded.warnings, Vec::new()),
            Err(errors) => {
                let errors: Vec<String> = errors.0.iter().map(|e| e.to_string()).collect();
                match decode_unchecked(text) {
                    Ok(resources) => (resources, Vec::new(), errors),
                    Err(_) => return format!("error: {:?}\n", errors.join("\n")),
                }
            }
        };
    let now = Timestamp::from_second(1_767_225_600).expect("valid timestamp");
    let t = translate(&resources, &options_for(text), now);
    if let Err(e) = t.snapshot.validate() {
        panic!("{name}: the snapshot breaks an invariant: {e}");
    }
    let mut warnings = warnings;
    warnings.extend(t.warnings);
    let rendered = Rendered {
        admission_errors: &admission_errors,
        warnings: &warnings,
        statuses: &t.snapshot.statuses,
        snapshot: &t.snapshot,
    };
    serde_yaml_ng::to_string(&rendered).expect("snapshot renders")
}

fn blessing() -> bool {
    std::env::var_os("SLUICE_BLESS").is_some_and(|v| v == "1")
}

/// Renders `case` (twice: the bytes must not change), and compares with or blesses its output.
fn check(case: &str) {
    let dir = golden_dir();
    let name = format!("{case}.in.yaml");
    let input = std::fs::read_to_string(dir.join(&name))
        .unwrap_or_else(|e| panic!("{case}: cannot read {name}: {e}"));
    let actual = render(&name, &input);
    assert_eq!(
        actual,
        render(&name, &input),
        "{case}: translating twice gave different bytes"
    );
    let out_path = dir.join(format!("{case}.out.yaml"));
    if blessing() {
        std::fs::write(&out_path, &actual).expect("write output");
        return;
    }
    let Ok(expected) = std::fs::read_to_string(&out_path) else {
        panic!("{case}: missing {case}.out.yaml (run with SLUICE_BLESS=1)");
    };
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(e, a)| e != a)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "{case}: output differs from line {}:\n  expected: {:?}\n  actual:   {:?}",
            line + 1,
            expected.lines().nth(line).unwrap_or("<end>"),
            actual.lines().nth(line).unwrap_or("<end>"),
        );
    }
}

/// Every input has a test, and every output an input (blessing deletes such orphans).
#[test]
fn case_files_and_tests_agree() {
    let dir = golden_dir();
    let mut problems = Vec::new();
    let mut inputs = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("golden dir") {
        let name = entry.expect("dir entry").file_name();
        let name = name.to_string_lossy();
        if let Some(case) = name.strip_suffix(".in.yaml") {
            if !CASES.contains(&case) {
                problems.push(format!("{name}: no test; add it to golden_cases!"));
            }
            inputs.push(case.to_string());
        } else if let Some(case) = name.strip_suffix(".out.yaml") {
            if !dir.join(format!("{case}.in.yaml")).exists() {
                if blessing() {
                    std::fs::remove_file(dir.join(name.as_ref())).expect("remove orphan");
                } else {
                    problems.push(format!("{name}: orphan output without {case}.in.yaml"));
                }
            }
        }
    }
    for case in CASES {
        if !inputs.iter().any(|i| i == case) {
            problems.push(format!(
                "{case}: listed in golden_cases! without {case}.in.yaml"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
