//! Echo pods on 127.0.0.1:0 and a throwaway CA for the gRPC and TCP client tests.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use sluice_gateway::echo::{serve_port, EchoIdentity, EchoPod, EchoPort};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub(crate) const NAMESPACE: &str = "gateway-conformance-infra";

/// A running pod; dropping it stops the server.
pub(crate) struct TestPod {
    pub echo: Arc<EchoPod>,
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for TestPod {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) async fn start(pod: &str, port: EchoPort) -> TestPod {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let echo = Arc::new(EchoPod::new(EchoIdentity {
        pod: pod.to_owned(),
        namespace: NAMESPACE.to_owned(),
        service: String::new(),
        ingress: String::new(),
        http_port: addr.port().to_string(),
    }));
    let serving = echo.clone();
    let task = tokio::spawn(async move {
        let _ = serve_port(listener, serving, port).await;
    });
    TestPod { echo, addr, task }
}

/// A CA and a leaf for `host` it signed: (CA PEM, leaf certificate PEM, leaf key PEM).
pub(crate) fn ca_and_leaf(host: &str) -> (String, String, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec![host.to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    (ca.pem(), leaf.pem(), leaf_key.serialize_pem())
}
