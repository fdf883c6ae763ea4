//! A data plane's kube source reads only the Secrets its Gateway references, each watched by name,
//! and still serves their certificates (docs/kubernetes.md, "Permissions").

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sluice_controller::publish::Store;
use sluice_controller::resources::Resources;
use sluice_controller::snapshot::Snapshot;
use sluice_controller::sources::kube::{KubeSource, Mode};
use sluice_controller::translate::TranslateOptions;
use sluice_testing::{cluster, objects, within, AbortOnDrop, FakeApiServer};
use tokio::sync::watch;

const LIMIT: Duration = Duration::from_secs(15);

/// A `kubernetes.io/tls` Secret `demo/name` holding a fresh self-signed certificate for `host`.
fn tls_secret(name: &str, host: &str) -> Value {
    let generated = rcgen::generate_simple_self_signed(vec![host.to_string()]).expect("rcgen");
    let key = generated.key_pair.serialize_pem();
    objects::tls_secret("demo", name, &generated.cert.pem(), &key)
}

/// Gateway `demo/web` with one HTTPS listener for `secure.example` using Secret `cert`.
fn https_gateway(cert: &str) -> Value {
    objects::https_gateway("demo", "web", 8443, "secure.example", &[cert])
}

/// Waits until the published objects satisfy `ok`.
async fn until_resources(
    rx: &mut watch::Receiver<Option<Arc<Resources>>>,
    what: &str,
    ok: impl Fn(&Resources) -> bool,
) -> Arc<Resources> {
    within(what, LIMIT, async {
        loop {
            if let Some(r) = rx.borrow_and_update().clone().filter(|r| ok(r)) {
                return r;
            }
            if rx.changed().await.is_err() {
                panic!("the source stopped while waiting for {what}");
            }
        }
    })
    .await
}

fn secret_names(r: &Resources) -> Vec<String> {
    r.secrets
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .collect()
}

fn serves_a_certificate(s: &Snapshot) -> bool {
    s.binds
        .iter()
        .flat_map(|b| &b.listeners)
        .any(|l| l.tls.is_some())
}

#[tokio::test]
async fn a_data_plane_reads_only_the_secrets_its_listeners_reference_and_serves_them() {
    let server: FakeApiServer = cluster::seeded([
        objects::namespace("demo"),
        objects::gateway_class(),
        tls_secret("web-cert", "secure.example"),
        tls_secret("web-cert-2", "secure.example"),
        tls_secret("someone-elses", "other.example"),
        https_gateway("web-cert"),
    ])
    .await;
    // As the provisioner's Role allows: this one Secret, by name. A namespace-wide or
    // cluster-wide Secret list would be refused, and the source would never publish.
    server.restrict_secrets("proxy", &[("demo", "web-cert")]);
    let store = Store::new();
    let options = TranslateOptions {
        only_gateway: Some(("demo".into(), "web".into())),
        ..TranslateOptions::default()
    };
    let source = KubeSource::new(
        server.client_as("proxy").expect("client"),
        options,
        store.clone(),
        Mode::DataPlane,
    );
    let mut resources = source.resources();
    let _source = AbortOnDrop(vec![source.spawn()]);

    let first = until_resources(&mut resources, "the first objects", |_| true).await;
    assert_eq!(
        secret_names(&first),
        ["web-cert"],
        "the first snapshot already has the certificate, and no other Secret"
    );
    assert!(serves_a_certificate(&store.load()));

    // The listener moves to another Secret before the Role does: refused, it reads as absent
    // (the listener is not served) and the old one is no longer held...
    server
        .apply(https_gateway("web-cert-2"))
        .expect("gateway update");
    until_resources(&mut resources, "the old certificate dropped", |r| {
        r.secrets.is_empty()
    })
    .await;
    assert!(server.refused_requests("proxy") > 0);
    assert!(!serves_a_certificate(&store.load()));

    // ...until the Role follows, when it is watched and served.
    server.restrict_secrets("proxy", &[("demo", "web-cert-2")]);
    let next = until_resources(&mut resources, "the new certificate", |r| {
        secret_names(r) == ["web-cert-2"]
    })
    .await;
    assert!(!secret_names(&next).contains(&"someone-elses".to_string()));
    let served = within("the new certificate served", LIMIT, async {
        loop {
            let snapshot = store.load();
            if serves_a_certificate(&snapshot) {
                return snapshot;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(serves_a_certificate(&served));
}
