//! Client-certificate validation of an HTTPS listener (Gateway `spec.tls.frontend`), built once
//! per translation so a handshake only picks it.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use serde::Serialize;

/// What a listener asks of clients in its TLS handshake.
#[derive(Debug, Serialize)]
pub struct ClientValidation {
    /// The `mode` of the validation settings that apply to the listener's port.
    pub mode: ClientValidationMode,
    /// `namespace/name` of the ConfigMaps whose `ca.crt` are the trust anchors.
    pub ca_config_maps: Vec<String>,
    /// Requests a client certificate and checks it against the anchors; in
    /// [`ClientValidationMode::AllowInsecureFallback`] a missing or failing one is let through.
    #[serde(skip)]
    pub verifier: Arc<dyn ClientCertVerifier>,
}

/// The spec's `FrontendValidationMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ClientValidationMode {
    /// The handshake fails without a certificate that chains to an anchor.
    AllowValidOnly,
    /// The certificate is requested and checked, but the connection is accepted either way.
    AllowInsecureFallback,
}

/// Wraps a strict verifier for `AllowInsecureFallback`: still asks for a certificate (so clients
/// that have one present it), never refuses the connection over it.
#[derive(Debug)]
pub struct InsecureFallback(pub Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for InsecureFallback {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if let Err(e) = self.0.verify_client_cert(end_entity, intermediates, now) {
            tracing::debug!(error = %e, "client certificate did not verify; AllowInsecureFallback lets the connection through");
        }
        Ok(ClientCertVerified::assertion())
    }

    // The client still has to prove it holds the key of the certificate it sent.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
