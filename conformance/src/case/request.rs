//! Request entries of a `requests:` step (FORMAT.md §4): what to send, to which port, how often.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_yaml_ng::Value;

use super::expect::Expect;
use super::grpc::{GrpcExpect, GrpcRequest};
use super::tcp::{TcpExpect, TcpRequest, TlsConnectRequest};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum Protocol {
    #[default]
    #[serde(rename = "HTTP", alias = "http")]
    Http,
    #[serde(rename = "HTTPS", alias = "https")]
    Https,
    H2,
    #[serde(rename = "H2C_PRIOR_KNOWLEDGE")]
    H2cPriorKnowledge,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustRef {
    pub secret: Option<String>,
    #[serde(rename = "configMap")]
    pub config_map: Option<String>,
    pub key: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsSettings {
    pub server_name: Option<String>,
    pub trust: Option<TrustRef>,
    pub client_certificate: Option<TrustRef>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRequest {
    pub host: Option<String>,
    pub method: String,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub body: Option<String>,
    #[serde(default)]
    pub protocol: Protocol,
    pub tls: Option<TlsSettings>,
    #[serde(default)]
    pub backend_set_response_headers: BTreeMap<String, String>,
    #[serde(default)]
    pub request_id: bool,
    #[serde(default)]
    pub jitter: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Distribution {
    pub requests: usize,
    pub concurrency: Option<usize>,
    pub tolerance: f64,
    pub attempts: usize,
    pub weights: BTreeMap<String, f64>,
    pub backend_from: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSocketRequest {
    pub path: String,
    #[serde(default)]
    pub subprotocol: String,
    pub origin: Option<String>,
}

/// What kind of traffic an entry sends. `Unsupported` kinds (UDP, DNS, mesh) are kept so a case that needs
/// them (for features Sluice does not claim) is reported precisely. Kinds other than HTTP carry their own
/// `expect`.
#[derive(Debug, Clone)]
pub enum RequestKind {
    Http(Box<HttpRequest>),
    WebSocket(WebSocketRequest),
    Grpc(GrpcRequest, GrpcExpect),
    Tcp(TcpRequest, TcpExpect),
    TcpConnect(TcpExpect),
    TlsConnect(TlsConnectRequest, TcpExpect),
    Unsupported(&'static str),
}

#[derive(Debug, Clone)]
pub struct RequestEntry {
    pub name: Option<String>,
    pub listener: Option<String>,
    pub port: Option<u16>,
    pub kind: RequestKind,
    /// Parsed only for `Http` entries.
    pub expect: Expect,
    pub repeat: Option<usize>,
    pub distribution: Option<Distribution>,
    pub mirror_distribution: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawEntry {
    name: Option<String>,
    listener: Option<String>,
    port: Option<u16>,
    #[serde(default)]
    expect: Value,
    repeat: Option<usize>,
    distribution: Option<Distribution>,
    mirror_distribution: Option<Value>,
    informational: Option<Value>,
    timeout: Option<Value>,
    interval: Option<Value>,
    batch: Option<Value>,
    request: Option<Value>,
    from: Option<Value>,
    grpc: Option<Value>,
    tcp: Option<Value>,
    tcp_connect: Option<Value>,
    tls_connect: Option<Value>,
    udp: Option<Value>,
    dns: Option<Value>,
    websocket: Option<Value>,
}

impl<'de> Deserialize<'de> for RequestEntry {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;

        let raw = RawEntry::deserialize(deserializer)?;
        let _ = (&raw.informational, &raw.timeout, &raw.interval, &raw.batch);
        let mut kinds = Vec::new();
        let others = [("udp", raw.udp.is_some()), ("dns", raw.dns.is_some())];
        for (name, present) in others {
            if present {
                kinds.push(RequestKind::Unsupported(name));
            }
        }
        let expect = &raw.expect;
        if let Some(grpc) = raw.grpc {
            kinds.push(RequestKind::Grpc(
                required("grpc", grpc)?,
                or_default("expect", expect.clone())?,
            ));
        }
        if let Some(tcp) = raw.tcp {
            kinds.push(RequestKind::Tcp(
                required("tcp", tcp)?,
                or_default("expect", expect.clone())?,
            ));
        }
        if let Some(connect) = raw.tcp_connect {
            let _: serde_yaml_ng::Mapping = or_default("tcpConnect", connect)?;
            kinds.push(RequestKind::TcpConnect(or_default(
                "expect",
                expect.clone(),
            )?));
        }
        if let Some(connect) = raw.tls_connect {
            kinds.push(RequestKind::TlsConnect(
                or_default("tlsConnect", connect)?,
                or_default("expect", expect.clone())?,
            ));
        }
        if let Some(websocket) = raw.websocket {
            let websocket: WebSocketRequest = serde_yaml_ng::from_value(websocket)
                .map_err(|e| D::Error::custom(format!("websocket: {e}")))?;
            kinds.push(RequestKind::WebSocket(websocket));
        }
        if let Some(request) = raw.request {
            if raw.from.is_some() {
                kinds.push(RequestKind::Unsupported("mesh request (from)"));
            } else {
                let request: HttpRequest = serde_yaml_ng::from_value(request)
                    .map_err(|e| D::Error::custom(format!("request: {e}")))?;
                kinds.push(RequestKind::Http(Box::new(request)));
            }
        }
        let count = kinds.len();
        let (Some(kind), 1) = (kinds.pop(), count) else {
            return Err(D::Error::custom(format!(
                "a request entry needs exactly one request kind key, found {count}"
            )));
        };
        let expect = match (&kind, raw.expect) {
            (RequestKind::Http(_) | RequestKind::WebSocket(_), Value::Null) => Expect::default(),
            (RequestKind::Http(_) | RequestKind::WebSocket(_), value) => {
                serde_yaml_ng::from_value(value)
                    .map_err(|e| D::Error::custom(format!("expect: {e}")))?
            }
            _ => Expect::default(),
        };
        Ok(RequestEntry {
            name: raw.name,
            listener: raw.listener,
            port: raw.port,
            kind,
            expect,
            repeat: raw.repeat,
            distribution: raw.distribution,
            mirror_distribution: raw.mirror_distribution,
        })
    }
}

/// A kind's value or `expect`; absent (null) is the type's default.
fn or_default<T: serde::de::DeserializeOwned + Default, E: serde::de::Error>(
    what: &str,
    value: Value,
) -> Result<T, E> {
    match value {
        Value::Null => Ok(T::default()),
        value => required(what, value),
    }
}

fn required<T: serde::de::DeserializeOwned, E: serde::de::Error>(
    what: &str,
    value: Value,
) -> Result<T, E> {
    serde_yaml_ng::from_value(value).map_err(|e| E::custom(format!("{what}: {e}")))
}
