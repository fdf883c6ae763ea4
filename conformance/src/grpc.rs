//! gRPC traffic of a case (FORMAT.md §4.8): a minimal gRPC client on `h2` and the `grpc` entry driver.
//!
//! The client speaks to echo-basic's GrpcEcho (messages from `sluice_gateway::echo::grpc`): plaintext
//! prior-knowledge HTTP/2 as upstream's harness dials, or TLS with ALPN h2 for tests of the echo's TLS port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request};
use prost::Message;
use rustls::pki_types::ServerName;
use sluice_gateway::echo::grpc::{code, frame, proto, SERVICE};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::case::{code_name, code_number, GrpcExpect, GrpcRequest, RequestEntry};
use crate::drive::{drive, Outcome};
use crate::error_chain;
use crate::http::Verdict;

/// Every attempt's own deadline (§4.2).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
const CONSECUTIVE: usize = 3;
/// grpc-go reports a call that never got an answer (refused, reset, timed out) as `Unavailable`.
const UNAVAILABLE: u32 = 14;

/// Where a call goes and how the connection is secured.
#[derive(Clone)]
pub struct GrpcTarget {
    pub addr: SocketAddr,
    /// TLS client config (ALPN h2) and the SNI; `None` for plaintext HTTP/2.
    pub tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
}

/// One call: which method, with what `:authority`, metadata and request messages.
#[derive(Debug, Clone)]
pub struct GrpcCall {
    /// The method of GrpcEcho, e.g. `Echo`.
    pub method: String,
    /// `:authority`; empty for the dialled `address:port`.
    pub authority: String,
    pub metadata: Vec<(String, String)>,
    pub requests: Vec<proto::EchoRequest>,
}

/// What came back: the status and every response message in order.
#[derive(Debug, Clone, Default)]
pub struct GrpcReply {
    pub code: u32,
    pub message: String,
    pub responses: Vec<proto::EchoResponse>,
}

impl GrpcCall {
    pub fn unary(method: &str) -> Self {
        GrpcCall {
            method: method.to_owned(),
            authority: String::new(),
            metadata: Vec::new(),
            requests: vec![proto::EchoRequest::default()],
        }
    }

    /// `/gateway_api_conformance.echo_basic.grpcecho.GrpcEcho/<method>`.
    pub fn path(&self) -> String {
        format!("/{SERVICE}/{}", self.method)
    }
}

/// Dials a fresh connection and makes one call; `Err` when no gRPC status came back at all.
pub async fn call(target: &GrpcTarget, call: &GrpcCall) -> Result<GrpcReply, String> {
    let exchange = async {
        let tcp = TcpStream::connect(target.addr)
            .await
            .map_err(|e| format!("connect {}: {e}", target.addr))?;
        match &target.tls {
            None => over(tcp, target.addr, call).await,
            Some((config, server_name)) => {
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(server_name.clone(), tcp)
                    .await
                    .map_err(|e| format!("TLS handshake: {}", error_chain(&e)))?;
                over(tls, target.addr, call).await
            }
        }
    };
    tokio::time::timeout(ATTEMPT_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no answer within {ATTEMPT_TIMEOUT:?}"))?
}

async fn over<T>(io: T, addr: SocketAddr, call: &GrpcCall) -> Result<GrpcReply, String>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = h2::client::handshake(io)
        .await
        .map_err(|e| format!("h2 handshake: {}", error_chain(&e)))?;
    let driver = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "gRPC client connection ended");
        }
    });
    let result = exchange(&mut sender, addr, call).await;
    driver.abort();
    result
}

async fn exchange(
    sender: &mut h2::client::SendRequest<Bytes>,
    addr: SocketAddr,
    call: &GrpcCall,
) -> Result<GrpcReply, String> {
    let authority = match call.authority.as_str() {
        "" => addr.to_string(),
        given => given.to_owned(),
    };
    let uri = format!("http://{authority}{}", call.path());
    let mut request = Request::builder()
        .method("POST")
        .uri(&uri)
        .body(())
        .map_err(|e| format!("request {uri}: {e}"))?;
    let headers = request.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/grpc"));
    headers.insert("te", HeaderValue::from_static("trailers"));
    for (key, value) in &call.metadata {
        let name = HeaderName::from_bytes(key.to_ascii_lowercase().as_bytes())
            .map_err(|e| format!("metadata key {key:?}: {e}"))?;
        let value =
            HeaderValue::from_str(value).map_err(|e| format!("metadata {key:?} value: {e}"))?;
        headers.append(name, value);
    }
    let mut sender = sender
        .clone()
        .ready()
        .await
        .map_err(|e| format!("h2 not ready: {}", error_chain(&e)))?;
    let (response, mut stream) = sender
        .send_request(request, call.requests.is_empty())
        .map_err(|e| format!("send: {}", error_chain(&e)))?;
    let last = call.requests.len().saturating_sub(1);
    for (i, message) in call.requests.iter().enumerate() {
        stream
            .send_data(frame::encode(message), i == last)
            .map_err(|e| format!("send message: {}", error_chain(&e)))?;
    }
    let response = response
        .await
        .map_err(|e| format!("response: {}", error_chain(&e)))?;
    if response.status() != http::StatusCode::OK {
        return Err(format!("HTTP status {} instead of 200", response.status()));
    }
    // Trailers-Only: the status is in the response headers.
    if let Some(reply) = status_of(response.headers()) {
        return Ok(reply);
    }
    let mut body = response.into_body();
    let mut decoder = frame::Decoder::default();
    let mut responses = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| format!("response body: {}", error_chain(&e)))?;
        let _ = body.flow_control().release_capacity(chunk.len());
        decoder.push(&chunk);
        while let Some(message) = decoder.next_message().map_err(|e| e.to_string())? {
            let response = proto::EchoResponse::decode(message)
                .map_err(|e| format!("invalid EchoResponse: {e}"))?;
            responses.push(response);
        }
    }
    decoder.finish().map_err(|e| e.to_string())?;
    let trailers = body
        .trailers()
        .await
        .map_err(|e| format!("trailers: {}", error_chain(&e)))?
        .unwrap_or_default();
    let mut reply = status_of(&trailers).ok_or("the answer carried no grpc-status")?;
    reply.responses = responses;
    Ok(reply)
}

fn status_of(headers: &HeaderMap) -> Option<GrpcReply> {
    let code = headers.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    let message = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .map(percent_decode)
        .unwrap_or_default();
    Some(GrpcReply {
        code,
        message,
        responses: Vec::new(),
    })
}

/// `grpc-message` is percent-encoded (`%XX`); malformed escapes stay as they are.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 3)
            .filter(|_| bytes[i] == b'%')
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs a `grpc` entry against `addr` (plaintext, as upstream dials the Gateway).
pub(crate) async fn run(
    entry: &RequestEntry,
    request: &GrpcRequest,
    expect: &GrpcExpect,
    addr: SocketAddr,
) -> Result<(), String> {
    let want = match (&expect.code, &expect.not_code) {
        (Some(name), None) => Want::Code(known_code(name)?),
        (None, Some(name)) => Want::NotCode(known_code(name)?),
        _ => return Err("a grpc entry's expect needs exactly one of `code` and `notCode`".into()),
    };
    let target = GrpcTarget { addr, tls: None };
    drive(entry, CONSECUTIVE, || {
        attempt(&target, request, expect, want)
    })
    .await
}

#[derive(Debug, Clone, Copy)]
enum Want {
    Code(u32),
    NotCode(u32),
}

fn known_code(name: &str) -> Result<u32, String> {
    code_number(name).ok_or_else(|| format!("unknown gRPC status name {name:?}"))
}

async fn attempt(
    target: &GrpcTarget,
    request: &GrpcRequest,
    expect: &GrpcExpect,
    want: Want,
) -> Outcome {
    let mut call = GrpcCall::unary(&request.method);
    call.authority = request.authority.clone().unwrap_or_default();
    call.metadata = request
        .metadata
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    if request.jitter && rand::random::<bool>() {
        let jitter = rand::random_range(0..10_000).to_string();
        call.metadata.push(("x-jitter".to_owned(), jitter));
    }
    let reply = call_and_report(target, &call).await;
    let pod = reply
        .responses
        .first()
        .and_then(|r| r.assertions.as_ref())
        .and_then(|a| a.context.as_ref())
        .map(|c| c.pod.clone())
        .unwrap_or_default();
    let verdict = judge(&call, expect, want, &reply);
    let detail = match &verdict {
        Verdict::Pass => String::new(),
        Verdict::NotYet(reason) | Verdict::Fatal(reason) => format!(
            "{reason}; call: {} :authority {:?} metadata {:?} -> {} {:?} from pod {pod:?}",
            call.path(),
            call.authority,
            call.metadata,
            code_name(reply.code),
            reply.message
        ),
    };
    Outcome {
        verdict,
        detail,
        pod,
    }
}

/// A call whose transport failed counts as `Unavailable`, as grpc-go reports it.
async fn call_and_report(target: &GrpcTarget, grpc: &GrpcCall) -> GrpcReply {
    call(target, grpc).await.unwrap_or_else(|error| GrpcReply {
        code: UNAVAILABLE,
        message: error,
        responses: Vec::new(),
    })
}

fn judge(call: &GrpcCall, expect: &GrpcExpect, want: Want, reply: &GrpcReply) -> Verdict {
    match want {
        Want::NotCode(bad) if reply.code == bad => Verdict::Fatal(format!(
            "status {} where anything else was expected",
            code_name(bad)
        )),
        Want::NotCode(_) => Verdict::Pass,
        Want::Code(wanted) if reply.code != wanted => Verdict::NotYet(format!(
            "status {} instead of {}",
            code_name(reply.code),
            code_name(wanted)
        )),
        Want::Code(code::OK) => judge_answer(call, expect, reply),
        Want::Code(_) => Verdict::Pass,
    }
}

fn judge_answer(call: &GrpcCall, expect: &GrpcExpect, reply: &GrpcReply) -> Verdict {
    let Some(assertions) = reply.responses.first().and_then(|r| r.assertions.as_ref()) else {
        return Verdict::NotYet("OK without an EchoResponse carrying assertions".to_owned());
    };
    if assertions.fully_qualified_method != call.path() {
        return Verdict::NotYet(format!(
            "the backend saw method {:?}",
            assertions.fully_qualified_method
        ));
    }
    let context = assertions.context.clone().unwrap_or_default();
    if let Some(backend) = &expect.backend {
        if let Some(namespace) = &backend.namespace {
            if *namespace != context.namespace {
                return Verdict::NotYet(format!("answered from namespace {:?}", context.namespace));
            }
        }
        if let Some(service) = &backend.service {
            if !context.pod.starts_with(service.as_str()) {
                return Verdict::NotYet(format!("pod {:?} is not of {service}", context.pod));
            }
        }
    }
    Verdict::Pass
}

#[cfg(test)]
mod tests;
