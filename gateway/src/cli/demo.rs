//! `sluice demo`: two echo backends (pipy, pipy-mirror) and a Gateway mirroring one to the other.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::echo::{self, BodyMode, EchoIdentity, EchoPod, EchoPort, RequestLog};
use crate::standalone::{self, Running, StandaloneOptions, StartError};

const GATEWAY_YAML: &str = include_str!("../../demo/gateway.yaml");
const BACKENDS_YAML: &str = include_str!("../../demo/backends.yaml");
/// The Gateway listener's port as written in `demo/gateway.yaml`, replaced by `--port`.
const DEFAULT_PORT_LINE: &str = "    port: 8000\n";
/// The EndpointSlice ports written in `demo/backends.yaml`, replaced by the backends' real ports.
const PIPY_PORT_LINE: &str = "  port: 18080\n";
const PIPY_MIRROR_PORT_LINE: &str = "  port: 18081\n";

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot start the {backend} echo backend")]
    Backend {
        backend: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the demo configuration to {}", path.display())]
    WriteConfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("the demo Gateway is not serving on {address}: {reason}")]
    NotServing { address: SocketAddr, reason: String },
    #[error("cannot wait for the shutdown signal")]
    Signal(#[source] std::io::Error),
}

/// Options of one demo run.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub port: u16,
    pub admin_address: SocketAddr,
    /// Print each backend's requests to stdout (the CLI does; tests do not).
    pub print: bool,
}

/// A running demo: Sluice plus its two backends.
pub struct Demo {
    running: Running,
    dir: PathBuf,
    gateway: SocketAddr,
    pipy: Backend,
    mirror: Backend,
}

struct Backend {
    pod: Arc<EchoPod>,
    task: JoinHandle<Result<(), echo::EchoError>>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Demo {
    pub async fn start(opts: DemoOptions) -> Result<Demo, DemoError> {
        let (pipy, pipy_port) = backend("pipy", opts.print).await?;
        let (mirror, mirror_port) = backend("pipy-mirror", opts.print).await?;
        let dir =
            std::env::temp_dir().join(format!("sluice-demo-{}-{}", std::process::id(), opts.port));
        write_config(&dir, opts.port, pipy_port, mirror_port)?;

        let mut standalone = StandaloneOptions::new(dir.clone());
        standalone.admin_address = opts.admin_address;
        standalone.listen_address = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let running = match standalone::start(standalone).await {
            Ok(running) => running,
            Err(e) => {
                remove_config(&dir);
                return Err(e.into());
            }
        };
        let gateway = SocketAddr::from((Ipv4Addr::LOCALHOST, opts.port));
        let status = running.listener_status();
        if !status.serving.contains(&gateway) {
            let reason = status.failed.get(&gateway).cloned().unwrap_or_else(|| {
                "the configuration did not load; see the log and /config".to_string()
            });
            running.shutdown().await;
            remove_config(&dir);
            return Err(DemoError::NotServing {
                address: gateway,
                reason,
            });
        }
        Ok(Demo {
            running,
            dir,
            gateway,
            pipy,
            mirror,
        })
    }

    pub fn gateway_addr(&self) -> SocketAddr {
        self.gateway
    }

    pub fn running(&self) -> &Running {
        &self.running
    }

    /// What the primary backend received.
    pub fn pipy_log(&self) -> &RequestLog {
        self.pipy.pod.log()
    }

    /// What the mirror backend received.
    pub fn mirror_log(&self) -> &RequestLog {
        self.mirror.pod.log()
    }

    /// Stops Sluice, then the backends (dropped with the demo), and removes the configuration.
    pub async fn shutdown(self) {
        self.running.shutdown().await;
        remove_config(&self.dir);
    }
}

/// `sluice demo`: runs until Ctrl-C or SIGTERM.
pub async fn run(port: u16, admin_address: SocketAddr) -> Result<(), DemoError> {
    let demo = Demo::start(DemoOptions {
        port,
        admin_address,
        print: true,
    })
    .await?;
    let gateway = demo.gateway_addr();
    let admin = demo.running().admin_addr();
    println!(
        "\nSluice demo: Gateway on http://{gateway}/ -> pipy, mirrored to pipy-mirror.\n\
         Try:\n  \
         curl http://{gateway}/ -d 'Hello world'\n  \
         curl -i http://{gateway}/anything?x=1\n  \
         curl http://{admin}/status\n  \
         curl http://{admin}/metrics\n\
         The configuration is in {dir}; edit it and Sluice reloads it. Ctrl-C to stop.\n",
        dir = demo.dir.display(),
    );
    let signal = super::shutdown_signal().await;
    demo.shutdown().await;
    signal.map_err(DemoError::Signal)
}

async fn backend(name: &'static str, print: bool) -> Result<(Backend, u16), DemoError> {
    let io = |source| DemoError::Backend {
        backend: name,
        source,
    };
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .map_err(io)?;
    let port = listener.local_addr().map_err(io)?.port();
    let identity = EchoIdentity {
        pod: name.to_string(),
        namespace: "default".to_string(),
        service: name.to_string(),
        ingress: String::new(),
        http_port: port.to_string(),
    };
    let pod = Arc::new(
        EchoPod::new(identity)
            .with_printing(print)
            .with_body_mode(BodyMode::EchoBody),
    );
    let task = tokio::spawn(echo::serve_port(listener, pod.clone(), EchoPort::Http));
    Ok((Backend { pod, task }, port))
}

fn remove_config(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        tracing::debug!(dir = %dir.display(), error = %e, "cannot remove the demo configuration");
    }
}

/// The embedded configuration with the real ports filled in.
fn render(port: u16, pipy_port: u16, mirror_port: u16) -> [(&'static str, String); 2] {
    let gateway = GATEWAY_YAML.replace(DEFAULT_PORT_LINE, &format!("    port: {port}\n"));
    let backends = BACKENDS_YAML
        .replace(PIPY_MIRROR_PORT_LINE, &format!("  port: {mirror_port}\n"))
        .replace(PIPY_PORT_LINE, &format!("  port: {pipy_port}\n"));
    [("gateway.yaml", gateway), ("backends.yaml", backends)]
}

fn write_config(dir: &Path, port: u16, pipy_port: u16, mirror_port: u16) -> Result<(), DemoError> {
    std::fs::create_dir_all(dir).map_err(|source| DemoError::WriteConfig {
        path: dir.to_path_buf(),
        source,
    })?;
    for (name, text) in render(port, pipy_port, mirror_port) {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|source| DemoError::WriteConfig { path, source })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_is_filled_exactly_once() {
        assert_eq!(GATEWAY_YAML.matches(DEFAULT_PORT_LINE).count(), 1);
        assert_eq!(BACKENDS_YAML.matches(PIPY_MIRROR_PORT_LINE).count(), 1);
        assert_eq!(BACKENDS_YAML.matches(PIPY_PORT_LINE).count(), 1);
        let [(_, gateway), (_, backends)] = render(8123, 40001, 40002);
        assert!(gateway.contains("port: 8123\n"), "{gateway}");
        assert!(backends.contains("port: 40001\n"), "{backends}");
        assert!(backends.contains("port: 40002\n"), "{backends}");
        assert!(!backends.contains(PIPY_PORT_LINE) && !backends.contains(PIPY_MIRROR_PORT_LINE));
    }
}
