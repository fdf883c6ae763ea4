//! The `tls` object of the echo JSON: what the TLS handshake of the connection negotiated.

use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsInfo {
    /// `TLSv1.2` / `TLSv1.3`.
    pub version: String,
    /// The client's chain as PEM blocks.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub peer_certificates: Vec<String>,
    /// SNI received (empty without SNI).
    pub server_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub negotiated_protocol: String,
    /// IANA name as Go spells it, e.g. `TLS_AES_128_GCM_SHA256`.
    pub cipher_suite: String,
}

impl TlsInfo {
    pub fn from_connection(conn: &rustls::ServerConnection) -> Self {
        let version = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_owned(),
            Some(rustls::ProtocolVersion::TLSv1_1) => "TLSv1.1".to_owned(),
            Some(rustls::ProtocolVersion::TLSv1_0) => "TLSv1.0".to_owned(),
            Some(other) => format!("{other:?}"),
            None => String::new(),
        };
        let peer_certificates = conn
            .peer_certificates()
            .unwrap_or_default()
            .iter()
            .map(|der| {
                let block = pem::Pem::new("CERTIFICATE", der.as_ref().to_vec());
                pem::encode_config(
                    &block,
                    pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
                )
            })
            .collect();
        let cipher_suite = conn
            .negotiated_cipher_suite()
            .and_then(|suite| suite.suite().as_str())
            // rustls marks TLS 1.3 suites with `TLS13_`; Go (and IANA) write `TLS_`.
            .map(|name| name.replacen("TLS13_", "TLS_", 1))
            .unwrap_or_default();
        Self {
            version,
            peer_certificates,
            server_name: conn.server_name().unwrap_or_default().to_owned(),
            negotiated_protocol: conn
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .unwrap_or_default(),
            cipher_suite,
        }
    }
}
