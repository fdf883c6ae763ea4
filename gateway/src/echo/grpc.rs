//! echo-basic's gRPC mode (`GRPC_ECHO_SERVER`, shared FORMAT.md §2.2) on HTTP/2 with the `h2` crate.
//!
//! Service `gateway_api_conformance.echo_basic.grpcecho.GrpcEcho`: `Echo` and `EchoTwo` answer the caller's
//! assertions, `EchoThree` and anything else get `UNIMPLEMENTED`. `StreamEcho` is a Sluice test extension
//! (not in echo-basic): a bidirectional call answering each request message in turn, so mirroring tests can
//! see streamed messages arrive intact. Every received message is recorded in the pod's [`RequestLog`]
//! (one entry per message: the method path as `uri`, the call's metadata, the message's length and SHA-256).
//!
//! [`RequestLog`]: super::RequestLog

pub mod frame;
pub mod proto;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use http::{HeaderMap, HeaderValue, Request, Response};
use prost::Message;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::{EchoPod, ReceivedRequest, TlsInfo};

/// The fully qualified service name; method paths are `/<SERVICE>/<Method>`.
pub const SERVICE: &str = "gateway_api_conformance.echo_basic.grpcecho.GrpcEcho";

/// gRPC status codes this server and the conformance client name.
pub mod code {
    pub const OK: u32 = 0;
    pub const INVALID_ARGUMENT: u32 = 3;
    pub const UNIMPLEMENTED: u32 = 12;
    pub const INTERNAL: u32 = 13;
}

/// One gRPC connection, plaintext (h2c prior knowledge) or after a TLS handshake.
pub(super) async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    pod: Arc<EchoPod>,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    match tls {
        None => serve_h2(stream, remote, pod, None).await,
        Some(config) => match tokio_rustls::TlsAcceptor::from(config).accept(stream).await {
            Ok(tls) => {
                let info = Arc::new(TlsInfo::from_connection(tls.get_ref().1));
                serve_h2(tls, remote, pod, Some(info)).await;
            }
            Err(error) => tracing::debug!(%error, %remote, "gRPC echo TLS handshake failed"),
        },
    }
}

async fn serve_h2<T>(io: T, remote: SocketAddr, pod: Arc<EchoPod>, tls: Option<Arc<TlsInfo>>)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut connection = match h2::server::handshake(io).await {
        Ok(connection) => connection,
        Err(error) => {
            tracing::debug!(%error, %remote, "gRPC echo HTTP/2 handshake failed");
            return;
        }
    };
    // Accepting also drives the connection; calls run beside it and end with it.
    let mut calls = tokio::task::JoinSet::new();
    while let Some(next) = connection.accept().await {
        match next {
            Ok((request, respond)) => {
                let call = Call {
                    pod: pod.clone(),
                    remote,
                    tls: tls.clone(),
                };
                calls.spawn(call.handle(request, respond));
            }
            Err(error) => {
                tracing::debug!(%error, %remote, "gRPC echo connection ended with an error");
                break;
            }
        }
        while calls.try_join_next().is_some() {}
    }
}

struct Call {
    pod: Arc<EchoPod>,
    remote: SocketAddr,
    tls: Option<Arc<TlsInfo>>,
}

/// What a call's request head said, for the assertions and the log.
struct Head {
    path: String,
    authority: String,
    /// Metadata pairs in arrival order, `:authority` first.
    metadata: Vec<(String, String)>,
}

impl Call {
    async fn handle(self, request: Request<RecvStream>, mut respond: SendResponse<Bytes>) {
        let (parts, body) = request.into_parts();
        let authority = parts
            .uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_default();
        let mut metadata = vec![(":authority".to_owned(), authority.clone())];
        metadata.extend(parts.headers.iter().map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        }));
        let head = Head {
            path: parts.uri.path().to_owned(),
            authority,
            metadata,
        };
        let method = head
            .path
            .strip_prefix('/')
            .and_then(|p| p.strip_prefix(SERVICE))
            .and_then(|p| p.strip_prefix('/'));
        let result = match method {
            Some("Echo" | "EchoTwo") => self.unary(&head, body, &mut respond).await,
            Some("StreamEcho") => self.stream(&head, body, &mut respond).await,
            _ => {
                let message = format!("unknown method {}", head.path);
                respond
                    .send_response(trailers_only(code::UNIMPLEMENTED, &message), true)
                    .map(drop)
            }
        };
        if let Err(error) = result {
            tracing::debug!(%error, remote = %self.remote, path = %head.path, "gRPC echo call failed");
        }
    }

    /// `Echo`/`EchoTwo`: read the whole request, answer once.
    async fn unary(
        &self,
        head: &Head,
        mut body: RecvStream,
        respond: &mut SendResponse<Bytes>,
    ) -> Result<(), h2::Error> {
        let mut decoder = frame::Decoder::default();
        let mut messages = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk?;
            let _ = body.flow_control().release_capacity(chunk.len());
            decoder.push(&chunk);
            loop {
                match decoder.next_message() {
                    Ok(Some(message)) => messages.push(message),
                    Ok(None) => break,
                    Err(error) => return self.fail(respond, code::INTERNAL, &error.to_string()),
                }
            }
        }
        if let Err(error) = decoder.finish() {
            return self.fail(respond, code::INTERNAL, &error.to_string());
        }
        let [message] = messages.as_slice() else {
            let text = format!("expected one request message, got {}", messages.len());
            return self.fail(respond, code::INTERNAL, &text);
        };
        self.record(head, message);
        let Ok(request) = proto::EchoRequest::decode(message.clone()) else {
            return self.fail(respond, code::INVALID_ARGUMENT, "invalid EchoRequest");
        };
        let mut stream = respond.send_response(grpc_response(), false)?;
        stream.send_data(frame::encode(&self.response(head, request)), false)?;
        stream.send_trailers(status_trailers(code::OK, ""))
    }

    /// `StreamEcho`: one answer per request message, in order, as they arrive.
    async fn stream(
        &self,
        head: &Head,
        mut body: RecvStream,
        respond: &mut SendResponse<Bytes>,
    ) -> Result<(), h2::Error> {
        let mut stream = respond.send_response(grpc_response(), false)?;
        let mut decoder = frame::Decoder::default();
        let mut status = (code::OK, String::new());
        'read: while let Some(chunk) = body.data().await {
            let chunk = chunk?;
            let _ = body.flow_control().release_capacity(chunk.len());
            decoder.push(&chunk);
            loop {
                let message = match decoder.next_message() {
                    Ok(Some(message)) => message,
                    Ok(None) => break,
                    Err(error) => {
                        status = (code::INTERNAL, error.to_string());
                        break 'read;
                    }
                };
                self.record(head, &message);
                let Ok(request) = proto::EchoRequest::decode(message) else {
                    status = (code::INVALID_ARGUMENT, "invalid EchoRequest".to_owned());
                    break 'read;
                };
                stream.send_data(frame::encode(&self.response(head, request)), false)?;
            }
        }
        if status.0 == code::OK {
            if let Err(error) = decoder.finish() {
                status = (code::INTERNAL, error.to_string());
            }
        }
        stream.send_trailers(status_trailers(status.0, &status.1))
    }

    fn fail(
        &self,
        respond: &mut SendResponse<Bytes>,
        status: u32,
        message: &str,
    ) -> Result<(), h2::Error> {
        respond
            .send_response(trailers_only(status, message), true)
            .map(drop)
    }

    fn response(&self, head: &Head, request: proto::EchoRequest) -> proto::EchoResponse {
        let identity = self.pod.identity();
        let tls_assertions = self.tls.as_deref().map(|tls| proto::TlsAssertions {
            version: tls.version.clone(),
            negotiated_protocol: tls.negotiated_protocol.clone(),
            server_name: tls.server_name.clone(),
            cipher_suite: tls.cipher_suite.clone(),
            peer_certificates: tls.peer_certificates.clone(),
        });
        proto::EchoResponse {
            assertions: Some(proto::Assertions {
                fully_qualified_method: head.path.clone(),
                headers: head
                    .metadata
                    .iter()
                    .map(|(key, value)| proto::Header {
                        key: key.clone(),
                        value: value.clone(),
                    })
                    .collect(),
                authority: head.authority.clone(),
                context: Some(proto::Context {
                    namespace: identity.namespace.clone(),
                    ingress: identity.ingress.clone(),
                    service_name: identity.service.clone(),
                    pod: identity.pod.clone(),
                }),
                tls_assertions,
            }),
            request: Some(request),
        }
    }

    fn record(&self, head: &Head, message: &[u8]) {
        if self.pod.print {
            self.pod.say(&format!(
                "gRPC {} from {} ({} byte message)",
                head.path,
                self.remote,
                message.len()
            ));
        }
        self.pod.log.record(ReceivedRequest {
            at: Instant::now(),
            remote: self.remote,
            method: "POST".to_owned(),
            uri: head.path.clone(),
            host: head.authority.clone(),
            proto: "HTTP/2.0".to_owned(),
            headers: head.metadata.clone(),
            body_len: message.len(),
            body_sha256: hex(&Sha256::digest(message)),
            echoed: true,
        });
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn grpc_response() -> Response<()> {
    let mut response = Response::new(());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    response
}

/// An error answer without a body: status in the response headers, as gRPC's "Trailers-Only".
fn trailers_only(status: u32, message: &str) -> Response<()> {
    let mut response = grpc_response();
    response
        .headers_mut()
        .extend(status_trailers(status, message));
    response
}

fn status_trailers(status: u32, message: &str) -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from(status));
    if !message.is_empty() {
        // grpc-message percent-encodes only `%` and non-printable bytes; ours are printable ASCII.
        if let Ok(value) = HeaderValue::from_str(&message.replace('%', "%25")) {
            trailers.insert("grpc-message", value);
        }
    }
    trailers
}
