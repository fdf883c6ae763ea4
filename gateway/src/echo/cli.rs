//! `sluice echo`: one echo pod on the command line, in any of echo-basic's modes, plain and optionally TLS.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::log_format::LogFormat;

use super::{
    grpc_tls_server_config, serve_port, tcp_tls_server_config, tls_server_config, BodyMode,
    EchoError, EchoIdentity, EchoPod, EchoPort, StatusOverride, TcpPorts,
};

/// Which of echo-basic's servers `sluice echo` runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EchoMode {
    #[default]
    Http,
    Grpc,
    Tcp,
}

/// A second, TLS listener: where, and the PEM files of its certificate chain and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoTls {
    pub listen: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `sluice echo --listen ADDR [--grpc|--tcp] [--tls-listen ADDR --tls-cert PEM --tls-key PEM]`: identity
/// from the echo-basic environment variables, each request (gRPC message, TCP answer) on stdout, non-empty
/// HTTP request bodies echoed back; `statuses` (`--status PATH=CODE`) override the status by path prefix.
pub async fn run_cli(
    listen: SocketAddr,
    mode: EchoMode,
    tls: Option<EchoTls>,
    statuses: Vec<StatusOverride>,
    format: LogFormat,
) -> Result<(), EchoError> {
    let listener = bind(listen).await?;
    let local = listener.local_addr().map_err(EchoError::LocalAddr)?;
    let tls = match tls {
        None => None,
        Some(tls) => {
            let read = |path: &PathBuf| {
                std::fs::read_to_string(path).map_err(|source| EchoError::ReadFile {
                    path: path.clone(),
                    source,
                })
            };
            let (cert, key) = (read(&tls.cert)?, read(&tls.key)?);
            let listener = bind(tls.listen).await?;
            let local = listener.local_addr().map_err(EchoError::LocalAddr)?;
            Some((listener, local, cert, key))
        }
    };
    let env = |name: &str| std::env::var(name).unwrap_or_default();
    let pod = match env("POD_NAME") {
        name if name.is_empty() => format!("sluice-echo-{}", local.port()),
        name => name,
    };
    let identity = EchoIdentity {
        pod,
        namespace: env("NAMESPACE"),
        service: env("SERVICE_NAME"),
        ingress: env("INGRESS_NAME"),
        http_port: local.port().to_string(),
    };
    let pod = Arc::new(
        EchoPod::new(identity)
            .with_printing(true)
            .with_log_format(format)
            .with_body_mode(BodyMode::EchoBody)
            .with_status_overrides(statuses),
    );
    pod.say(&format!(
        "sluice echo ({mode:?}) listening on {local} as pod {}",
        pod.identity().pod
    ));
    let tcp_ports = Arc::new(TcpPorts {
        tcp: local.port().to_string(),
        tls: tls
            .as_ref()
            .map(|(_, addr, _, _)| addr.port().to_string())
            .unwrap_or_default(),
    });
    let plain = match mode {
        EchoMode::Http => EchoPort::Http,
        EchoMode::Grpc => EchoPort::Grpc,
        EchoMode::Tcp => EchoPort::Tcp(tcp_ports.clone()),
    };
    let Some((tls_listener, tls_local, cert, key)) = tls else {
        return serve_port(listener, pod, plain).await;
    };
    let secure = match mode {
        EchoMode::Http => EchoPort::Https(tls_server_config(&cert, &key, None)?),
        EchoMode::Grpc => EchoPort::GrpcTls(grpc_tls_server_config(&cert, &key)?),
        EchoMode::Tcp => EchoPort::TcpTls(tcp_ports, tcp_tls_server_config(&cert, &key)?),
    };
    pod.say(&format!(
        "sluice echo ({mode:?}) listening with TLS on {tls_local}"
    ));
    tokio::try_join!(
        serve_port(listener, pod.clone(), plain),
        serve_port(tls_listener, pod, secure)
    )
    .map(drop)
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, EchoError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| EchoError::Bind { addr, source })
}
