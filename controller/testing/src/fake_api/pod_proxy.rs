//! The `pods/NAME:PORT/proxy/PATH` subresource: a GET forwarded to `status.podIP:PORT`, as the API
//! server forwards it to the pod, answered with the pod's status code, content type and body.

use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

use super::{error, ApiError, Body};

/// A pod that does not answer within this gets 503, so a test never hangs on one.
const DEADLINE: Duration = Duration::from_secs(5);

/// `NAME` of `NAME:PORT`.
pub(super) fn pod_name(name_and_port: &str) -> &str {
    name_and_port
        .split_once(':')
        .map_or(name_and_port, |(name, _)| name)
}

/// Forwards `GET path` to `pod` at the port `name_and_port` names (80 without one).
pub(super) async fn forward(pod: &Value, name_and_port: &str, path: &str) -> Response<Body> {
    let port = match name_and_port.split_once(':') {
        None => Ok(80),
        Some((_, port)) => port.parse::<u16>().map_err(|_| {
            ApiError::new(
                400,
                "BadRequest",
                format!("bad pod port in {name_and_port}"),
            )
        }),
    };
    let ip = pod
        .pointer("/status/podIP")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::new(503, "ServiceUnavailable", "the pod has no IP yet"));
    let (port, ip) = match (port, ip) {
        (Ok(port), Ok(ip)) => (port, ip.to_string()),
        (Err(e), _) | (_, Err(e)) => return error(&e),
    };
    match tokio::time::timeout(DEADLINE, get(&ip, port, path)).await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => error(&ApiError::new(
            503,
            "ServiceUnavailable",
            format!("error trying to reach pod {ip}:{port}: {e}"),
        )),
        Err(_) => error(&ApiError::new(
            503,
            "ServiceUnavailable",
            format!("pod {ip}:{port} did not answer within {DEADLINE:?}"),
        )),
    }
}

async fn get(
    ip: &str,
    port: u16,
    path: &str,
) -> Result<Response<Body>, Box<dyn std::error::Error>> {
    let tcp = TcpStream::connect((ip, port)).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(connection);
    let request = Request::get(path)
        .header(header::HOST, format!("{ip}:{port}"))
        .body(Empty::<Bytes>::new())?;
    let answer = sender.send_request(request).await?;
    let status = answer.status();
    let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
    let body = answer.into_body().collect().await?.to_bytes();
    let mut response = Response::new(Full::new(body).boxed());
    *response.status_mut() = StatusCode::from_u16(status.as_u16())?;
    if let Some(content_type) = content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    }
    Ok(response)
}
