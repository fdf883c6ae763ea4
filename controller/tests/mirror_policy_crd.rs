//! `deploy/base/crd-mirrorpolicy.yaml` is what the MirrorPolicy types generate, byte for byte.
//!
//! Re-bless after changing the types with
//! `SLUICE_BLESS=1 cargo test -p sluice-controller --test mirror_policy_crd` (docs/kubernetes.md).

use std::path::Path;

use sluice_controller::resources::mirror_policy::crd_yaml;

#[test]
fn committed_crd_is_what_the_types_generate() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/base/crd-mirrorpolicy.yaml");
    let generated = crd_yaml().expect("the CRD serializes");
    if std::env::var_os("SLUICE_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write the CRD");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} differs from what the types generate; re-bless with \
         SLUICE_BLESS=1 cargo test -p sluice-controller --test mirror_policy_crd",
        path.display()
    );
}
