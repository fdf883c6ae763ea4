//! echo-basic's `/ws`: a WebSocket endpoint that sends every text and binary frame back unchanged.

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::header::{CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Answers the handshake with 101 and echoes frames on the upgraded connection; anything that is not a
/// WebSocket handshake gets 400.
pub(super) fn accept(mut req: Request<Incoming>) -> Response<Full<Bytes>> {
    let has_token = |name, token: &str| {
        req.headers().get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    let is_handshake = has_token(UPGRADE, "websocket") && has_token(CONNECTION, "upgrade");
    let key = req.headers().get(SEC_WEBSOCKET_KEY).cloned();
    let (true, Some(key)) = (is_handshake, key) else {
        let mut reply = Response::new(Full::new(Bytes::from_static(b"Bad Request")));
        *reply.status_mut() = StatusCode::BAD_REQUEST;
        return reply;
    };
    let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) else {
        let mut reply = Response::new(Full::new(Bytes::new()));
        *reply.status_mut() = StatusCode::BAD_REQUEST;
        return reply;
    };
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => {
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                echo_frames(ws).await;
            }
            Err(error) => tracing::debug!(%error, "echo websocket upgrade failed"),
        }
    });
    let mut reply = Response::new(Full::new(Bytes::new()));
    *reply.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = reply.headers_mut();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    reply
}

async fn echo_frames<S>(mut ws: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(frame) = ws.next().await {
        match frame {
            Ok(message @ (Message::Text(_) | Message::Binary(_))) => {
                if ws.send(message).await.is_err() {
                    return;
                }
            }
            // Pings are answered by tungstenite itself.
            Ok(Message::Close(_)) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
