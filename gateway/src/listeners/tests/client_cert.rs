//! Client-certificate validation (Gateway `spec.tls.frontend`) at the handshake: the listener SNI
//! selects decides whether a certificate is asked for and whether a bad one ends the handshake.

use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls::server::WebPkiClientVerifier;
use sluice_controller::snapshot::{ClientValidation, ClientValidationMode, InsecureFallback};

use super::*;

/// A CA that signs client certificates.
struct ClientCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn client_ca() -> ClientCa {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    ClientCa { cert, key }
}

/// A client identity signed by `ca`, as the PEM reqwest takes (key then certificate).
fn client_identity(ca: &ClientCa) -> reqwest::Identity {
    let mut params = CertificateParams::new(vec!["client.example".to_string()]).unwrap();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
    let pem = format!("{}{}", key.serialize_pem(), cert.pem());
    reqwest::Identity::from_pem(pem.as_bytes()).unwrap()
}

fn validation(ca: &ClientCa, mode: ClientValidationMode) -> Arc<ClientValidation> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let strict = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .unwrap();
    let verifier = match mode {
        ClientValidationMode::AllowValidOnly => strict,
        ClientValidationMode::AllowInsecureFallback => Arc::new(InsecureFallback(strict)),
    };
    Arc::new(ClientValidation {
        mode,
        ca_config_maps: vec!["default/ca".into()],
        verifier,
    })
}

fn validating_listener(
    name: &str,
    hostname: &str,
    cert: &TestCert,
    validation: Arc<ClientValidation>,
) -> Listener {
    Listener {
        client_validation: Some(validation),
        ..tls_listener(name, Some(hostname), cert)
    }
}

/// `GET https://{host}/` presenting `identity` (or nothing); the body on success.
async fn mtls_get(
    server: &TestCert,
    identity: Option<reqwest::Identity>,
    host: &str,
    address: SocketAddr,
) -> reqwest::Result<String> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_der(&server.der).unwrap())
        .resolve(host, address)
        .timeout(WAIT);
    if let Some(identity) = identity {
        builder = builder.identity(identity);
    }
    let url = format!("https://{host}:{}/", address.port());
    let response = builder.build().unwrap().get(url).send().await?;
    response.error_for_status()?.text().await
}

#[tokio::test]
async fn allow_valid_only_admits_a_certificate_of_the_ca_and_refuses_none_or_another() {
    let (server, ca, stranger) = (cert("a.example.com"), client_ca(), client_ca());
    let (gw, address) = Harness::serving_https(vec![validating_listener(
        "a",
        "a.example.com",
        &server,
        validation(&ca, ClientValidationMode::AllowValidOnly),
    )])
    .await;

    let good = mtls_get(
        &server,
        Some(client_identity(&ca)),
        "a.example.com",
        address,
    )
    .await;
    assert!(good.unwrap().starts_with("tls=true"));
    let none = mtls_get(&server, None, "a.example.com", address).await;
    assert!(
        none.is_err(),
        "no client certificate must fail the handshake"
    );
    let foreign = mtls_get(
        &server,
        Some(client_identity(&stranger)),
        "a.example.com",
        address,
    )
    .await;
    assert!(
        foreign.is_err(),
        "a certificate of another CA must fail the handshake"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn allow_insecure_fallback_admits_clients_without_or_with_a_bad_certificate() {
    let (server, ca, stranger) = (cert("a.example.com"), client_ca(), client_ca());
    let (gw, address) = Harness::serving_https(vec![validating_listener(
        "a",
        "a.example.com",
        &server,
        validation(&ca, ClientValidationMode::AllowInsecureFallback),
    )])
    .await;

    for identity in [
        None,
        Some(client_identity(&ca)),
        Some(client_identity(&stranger)),
    ] {
        let body = mtls_get(&server, identity, "a.example.com", address).await;
        assert!(body.unwrap().starts_with("tls=true"));
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn only_the_listener_sni_selects_asks_for_a_client_certificate() {
    let (a, b, ca) = (cert("a.example.com"), cert("b.example.com"), client_ca());
    let (gw, address) = Harness::serving_https(vec![
        validating_listener(
            "a",
            "a.example.com",
            &a,
            validation(&ca, ClientValidationMode::AllowValidOnly),
        ),
        tls_listener("b", Some("b.example.com"), &b),
    ])
    .await;

    assert!(mtls_get(&a, None, "a.example.com", address).await.is_err());
    let body = mtls_get(&b, None, "b.example.com", address).await;
    assert!(body.unwrap().starts_with("tls=true"));
    gw.shutdown().await;
}
