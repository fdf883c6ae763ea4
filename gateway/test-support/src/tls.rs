//! HTTPS for the in-process gateway: a self-signed certificate, and the accept path the HTTPS
//! listeners run (TLS handshake with ALPN `h2` first, then the guarded connection).

use std::sync::Arc;

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use sluice_controller::publish::Store;
use sluice_gateway::metrics::Metrics;
use sluice_gateway::proxy::{self, ProxySettings};
use sluice_gateway::{tls, transport};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A self-signed certificate for `name`, as the listener's key and as the DER a client trusts.
pub fn certified_key(name: &str) -> (Arc<CertifiedKey>, Vec<u8>) {
    let generated = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(generated.key_pair.serialize_der()));
    let signer = rustls::crypto::ring::sign::any_supported_type(&key).unwrap();
    let der = generated.cert.der().to_vec();
    let certified = CertifiedKey::new(vec![generated.cert.der().clone()], signer);
    (Arc::new(certified), der)
}

/// [`crate::proxy::serve`] for an HTTPS bind: each connection's TLS handshake (ALPN `h2` first)
/// as the listeners run it, then the same guarded connection path.
pub fn serve_tls(
    listener: TcpListener,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    settings: ProxySettings,
) -> watch::Sender<bool> {
    let addr = listener.local_addr().unwrap();
    let acceptor = tls::acceptor(store.clone(), addr).unwrap();
    let (limits, h2c) = (settings.edge, settings.downstream_h2c);
    let app = proxy::new_app(store, metrics, settings);
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        while let Ok((tcp, peer)) = listener.accept().await {
            let (app, rx, acceptor) = (app.clone(), rx.clone(), acceptor.clone());
            tokio::spawn(async move {
                let socket = transport::socket_digest(&tcp, peer);
                if let Ok(conn) = tls::accept(&acceptor, tcp, socket).await {
                    let stream = transport::guarded(Box::new(conn), limits, h2c);
                    transport::serve(&app, stream, &rx).await;
                }
            });
        }
    });
    tx
}
