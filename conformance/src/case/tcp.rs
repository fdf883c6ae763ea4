//! `tcp`, `tcpConnect` and `tlsConnect` request entries and their `expect` (FORMAT.md §4.9).

use serde::Deserialize;

use super::expect::BackendRef;
use super::request::TrustRef;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum TcpMode {
    /// Welcome, `PING`, `IS_TLS`, `TEST`.
    #[default]
    #[serde(rename = "full")]
    Full,
    /// Welcome and `TEST` only.
    #[serde(rename = "testOnly")]
    TestOnly,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpRequest {
    #[serde(default)]
    pub tls: bool,
    /// SNI and the name the certificate is verified against.
    pub server_name: Option<String>,
    /// The CA the gateway's certificate must chain to (default key `ca.crt`).
    pub trust: Option<TrustRef>,
    #[serde(default)]
    pub mode: TcpMode,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsConnectRequest {
    pub server_name: Option<String>,
}

/// What a `tcp`, `tcpConnect` or `tlsConnect` entry expects; each kind reads its own keys.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpExpect {
    /// `tcp`: whether the backend's connection was TLS (`IS_TLS`).
    #[serde(rename = "backendIsTLS")]
    pub backend_is_tls: Option<bool>,
    /// `tcp`: the answering pod's namespace and name prefix.
    pub backend: Option<BackendRef>,
    /// `tcp`: the SNI the backend saw.
    pub sni: Option<String>,
    /// `tcp`: the answer names some pod.
    #[serde(default)]
    pub any_pod: bool,
    /// `tcpConnect`: a connection can be established.
    #[serde(default)]
    pub connected: bool,
    /// `tlsConnect`: the handshake fails with EOF or a reset.
    #[serde(default)]
    pub rejected: bool,
}
