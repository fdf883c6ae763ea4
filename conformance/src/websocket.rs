//! WebSocket entries (FORMAT.md §4.11): dial `ws://<gateway>/<path>`, send each frame, expect it back.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use crate::case::{Frame, WebSocketRequest};

const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
const WINDOW: Duration = Duration::from_secs(30);
const CONSECUTIVE: usize = 3;

/// Converges like HTTP entries: three successful exchanges in a row within 30 s.
pub async fn run(
    request: &WebSocketRequest,
    frames: &[Frame],
    target: SocketAddr,
) -> Result<(), String> {
    let deadline = Instant::now() + WINDOW;
    let mut streak = 0;
    loop {
        let attempt = tokio::time::timeout(ATTEMPT_TIMEOUT, exchange(request, frames, target))
            .await
            .unwrap_or_else(|_| Err("timed out after 10s".to_owned()));
        match attempt {
            Ok(()) => {
                streak += 1;
                if streak >= CONSECUTIVE {
                    return Ok(());
                }
            }
            Err(why) => {
                streak = 0;
                if Instant::now() >= deadline {
                    return Err(format!(
                        "not converged within 30s: {why}; request: websocket {target}{}",
                        request.path
                    ));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn exchange(
    request: &WebSocketRequest,
    frames: &[Frame],
    target: SocketAddr,
) -> Result<(), String> {
    let mut handshake = format!("ws://{target}{}", request.path)
        .into_client_request()
        .map_err(|e| format!("bad websocket request: {e}"))?;
    if let Some(origin) = &request.origin {
        let origin = HeaderValue::from_str(origin).map_err(|e| format!("bad origin: {e}"))?;
        handshake.headers_mut().insert("origin", origin);
    }
    if !request.subprotocol.is_empty() {
        let protocol = HeaderValue::from_str(&request.subprotocol)
            .map_err(|e| format!("bad subprotocol: {e}"))?;
        handshake
            .headers_mut()
            .insert("sec-websocket-protocol", protocol);
    }
    let stream = TcpStream::connect(target)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut ws, _) = tokio_tungstenite::client_async(handshake, stream)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    for frame in frames {
        let message = match frame {
            Frame::Text { text } => Message::text(text.clone()),
            Frame::Binary { binary } => Message::binary(binary.clone()),
        };
        ws.send(message.clone())
            .await
            .map_err(|e| format!("send: {e}"))?;
        let back = loop {
            match ws.next().await {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(back)) => break back,
                Some(Err(e)) => return Err(format!("receive: {e}")),
                None => return Err("connection closed before the echo".to_owned()),
            }
        };
        if back != message {
            return Err(format!("sent {message:?}, got back {back:?}"));
        }
    }
    let _ = ws.close(None).await;
    Ok(())
}
