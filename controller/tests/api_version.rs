//! One Gateway API version, stated once: the embedded CRDs, the generated types and the install
//! notes people follow all name `GATEWAY_API_VERSION`.

use std::path::Path;

use sluice_controller::validation::GATEWAY_API_VERSION;

fn repo_file(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// Every `vMAJOR.MINOR.PATCH` in `text`.
fn versions(text: &str) -> Vec<String> {
    let re = regex::Regex::new(r"\bv1\.\d+\.\d+\b").expect("valid regex");
    re.find_iter(text).map(|m| m.as_str().to_string()).collect()
}

#[test]
fn the_install_notes_name_the_version_sluice_targets() {
    for doc in [
        "deploy/README.md",
        "deploy/base/kustomization.yaml",
        "docs/kubernetes.md",
        "docs/standalone.md",
    ] {
        let found = versions(&repo_file(doc));
        assert!(!found.is_empty(), "{doc} names no Gateway API version");
        for v in found {
            assert_eq!(v, GATEWAY_API_VERSION, "{doc}");
        }
    }
}

#[test]
fn the_types_are_generated_from_the_embedded_crds() {
    for kind in [
        "gatewayclasses",
        "gateways",
        "httproutes",
        "referencegrants",
    ] {
        let source = repo_file(&format!(
            "controller/gateway-api/src/apis/experimental/{kind}.rs"
        ));
        let header = source.lines().nth(1).unwrap_or("");
        assert!(
            header.contains(&format!(
                "-f controller/crds/gateway.networking.k8s.io_{kind}.yaml"
            )),
            "{kind}.rs was not generated from controller/crds: {header}"
        );
        let crd = repo_file(&format!(
            "controller/crds/gateway.networking.k8s.io_{kind}.yaml"
        ));
        assert!(
            crd.contains(&format!(
                "gateway.networking.k8s.io/bundle-version: {GATEWAY_API_VERSION}"
            )),
            "{kind}: CRD of another version"
        );
    }
}
