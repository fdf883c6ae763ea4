//! Certificate choice by SNI, without sockets.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use sluice_controller::snapshot::{Bind, BindProtocol, Hostname, Listener, RouteTable};

use super::certificate_for;

fn key(name: &str) -> Arc<CertifiedKey> {
    let generated = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(generated.key_pair.serialize_der()));
    let signer = rustls::crypto::ring::sign::any_supported_type(&key).unwrap();
    Arc::new(CertifiedKey::new(
        vec![generated.cert.der().clone()],
        signer,
    ))
}

fn bind(listeners: Vec<(Option<&str>, Option<Arc<CertifiedKey>>)>) -> Bind {
    Bind {
        address: "127.0.0.1:443".parse().unwrap(),
        protocol: BindProtocol::Https,
        listeners: listeners
            .into_iter()
            .enumerate()
            .map(|(i, (hostname, tls))| Listener {
                hostname: hostname.and_then(Hostname::parse),
                tls,
                ..Listener::http("default/gw", &format!("l{i}"), RouteTable::default())
            })
            .collect(),
    }
}

#[test]
fn sni_is_matched_case_insensitively_and_without_the_trailing_dot() {
    let (exact, wildcard) = (key("a.example.com"), key("*.example.com"));
    let b = bind(vec![
        (Some("a.example.com"), Some(exact.clone())),
        (Some("*.example.com"), Some(wildcard.clone())),
    ]);
    let chosen = certificate_for(&b, Some("A.Example.COM.")).unwrap();
    assert!(Arc::ptr_eq(&chosen, &exact));
    let chosen = certificate_for(&b, Some("b.example.com")).unwrap();
    assert!(Arc::ptr_eq(&chosen, &wildcard));
    assert!(certificate_for(&b, Some("example.org")).is_none());
}

#[test]
fn no_sni_needs_a_listener_without_hostname() {
    let named = bind(vec![(Some("a.example.com"), Some(key("a.example.com")))]);
    assert!(
        certificate_for(&named, None).is_none(),
        "no hostname-less listener: fail"
    );

    let default = key("default");
    let mixed = bind(vec![
        (Some("a.example.com"), Some(key("a.example.com"))),
        (None, None),
        (None, Some(default.clone())),
    ]);
    let chosen = certificate_for(&mixed, None).unwrap();
    assert!(
        Arc::ptr_eq(&chosen, &default),
        "the first hostname-less listener with a cert"
    );
}

#[test]
fn a_listener_without_a_usable_certificate_fails_the_handshake() {
    // E.g. its certificateRef did not resolve: SNI still selects it, and there is nothing to serve.
    let b = bind(vec![
        (Some("a.example.com"), None),
        (None, Some(key("default"))),
    ]);
    assert!(certificate_for(&b, Some("a.example.com")).is_none());
}
