//! The `sluice` command line: the standalone gateway (the default, `--config PATH`), `validate`,
//! `demo`, the `echo` backend, and the cluster processes `proxy` and `controller`. Flags live in
//! the `*_args` modules and turn into the options each mode takes.

pub mod access_log_args;
pub mod demo;
pub mod edge_args;
pub mod kube_args;
pub mod listener_args;
pub mod mirror_args;
pub mod retry_args;
pub mod tls_route_args;
pub mod upstream_args;
pub mod validate;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use ipnet::IpNet;

use crate::echo::EchoError;
use crate::kube_mode::{self, KubeModeError};
use crate::log_format::LogFormat;

use crate::standalone::{self, StandaloneOptions, StartError};
use crate::upstream::UpstreamSettings;
pub use kube_args::{ControllerArgs, ProxyArgs};

pub use demo::DemoError;

#[derive(Debug, Parser)]
#[command(
    name = "sluice",
    version,
    about = "A Kubernetes Gateway API gateway on Pingora"
)]
#[command(subcommand_negates_reqs = true, arg_required_else_help = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// Worker threads of the runtime (default: one per core); 1 runs everything on the main thread.
    #[arg(long, global = true, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// Log filter, e.g. `info` or `sluice=debug,warn` (default: `RUST_LOG`, else `info`).
    #[arg(long, global = true, env = "SLUICE_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Log lines as `text` or `json` (one object per line; docs/logging.md).
    #[arg(
        long,
        global = true,
        env = "SLUICE_LOG_FORMAT",
        value_enum,
        default_value_t
    )]
    pub log_format: LogFormat,
}

/// Standalone mode: serve the Gateway API objects in a YAML file or directory.
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// A YAML file or a directory of `*.yaml` files; reloaded on change.
    #[arg(long, required = true, env = "SLUICE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where `/status`, `/config`, `/healthz`, `/readyz` and `/metrics` are served.
    #[arg(long, default_value_t = SocketAddr::from((Ipv4Addr::LOCALHOST, 9901)))]
    pub admin_address: SocketAddr,
    /// Give each Gateway its own address from this CIDR (e.g. 127.0.0.0/24).
    #[arg(long)]
    pub address_pool: Option<IpNet>,
    /// Where Gateways listen when there is no pool and no `spec.addresses`.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    pub listen_address: IpAddr,
    #[command(flatten)]
    pub mirror: mirror_args::MirrorArgs,
    #[command(flatten)]
    pub edge: edge_args::EdgeArgs,
    #[command(flatten)]
    pub listeners: listener_args::ListenerArgs,
    #[command(flatten)]
    pub retry: retry_args::RetryArgs,
    #[command(flatten)]
    pub upstream: upstream_args::UpstreamArgs,
    #[command(flatten)]
    pub tls_routes: tls_route_args::TlsRouteArgs,
    #[command(flatten)]
    pub access_log: access_log_args::AccessLogArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The conformance echo backend: prints each request and answers JSON (or echoes the body);
    /// `--grpc` and `--tcp` run echo-basic's gRPC and TCP modes instead.
    Echo {
        /// Where to listen, e.g. `127.0.0.1:9001`.
        #[arg(long)]
        listen: SocketAddr,
        /// Serve gRPC (plaintext HTTP/2): GrpcEcho's Echo, EchoTwo, EchoThree and Sluice's StreamEcho.
        #[arg(long, conflicts_with = "tcp")]
        grpc: bool,
        /// Serve echo-basic's TCP line protocol: PING, IS_TLS, TEST.
        #[arg(long)]
        tcp: bool,
        /// Also serve the same mode over TLS here (HTTP: h2/http1.1, gRPC: h2, TCP: any ALPN offered).
        #[arg(long, requires_all = ["tls_cert", "tls_key"])]
        tls_listen: Option<SocketAddr>,
        /// PEM certificate chain of the TLS listener.
        #[arg(long, requires = "tls_listen")]
        tls_cert: Option<PathBuf>,
        /// PEM private key of the TLS listener.
        #[arg(long, requires = "tls_listen")]
        tls_key: Option<PathBuf>,
        /// `PATH=CODE`, repeatable: answer CODE (with the usual echo JSON) to every request whose
        /// path starts with PATH, e.g. `--status /orders=503`; the first match wins.
        #[arg(long = "status", value_name = "PATH=CODE")]
        statuses: Vec<crate::echo::StatusOverride>,
    },
    /// Two echo backends and a Gateway mirroring one to the other, on 127.0.0.1.
    Demo {
        /// The Gateway's port.
        #[arg(long, default_value_t = 8000)]
        port: u16,
        /// Where `/status`, `/config`, `/healthz`, `/readyz` and `/metrics` are served.
        #[arg(long, default_value_t = SocketAddr::from((Ipv4Addr::LOCALHOST, 9901)))]
        admin_address: SocketAddr,
    },
    /// The data plane of one Gateway in a cluster, configured from the Kubernetes API.
    Proxy(Box<ProxyArgs>),
    /// The cluster controller: statuses and data-plane provisioning, one leader at a time.
    Controller(ControllerArgs),
    /// Checks a configuration as the API server would, without serving it: exit 0 or 1.
    Validate(validate::ValidateArgs),
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Echo(#[from] EchoError),
    #[error(transparent)]
    Demo(#[from] DemoError),
    #[error(transparent)]
    Kube(#[from] KubeModeError),
    #[error(transparent)]
    Validate(#[from] validate::ValidateError),
    #[error("cannot wait for the shutdown signal")]
    Signal(#[source] std::io::Error),
}

/// Runs the chosen command until it fails or a shutdown signal arrives.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Some(Command::Echo {
            listen,
            grpc,
            tcp,
            tls_listen,
            tls_cert,
            tls_key,
            statuses,
        }) => {
            let mode = match (grpc, tcp) {
                (true, _) => crate::echo::EchoMode::Grpc,
                (_, true) => crate::echo::EchoMode::Tcp,
                _ => crate::echo::EchoMode::Http,
            };
            let tls = match (tls_listen, tls_cert, tls_key) {
                (Some(listen), Some(cert), Some(key)) => {
                    Some(crate::echo::EchoTls { listen, cert, key })
                }
                _ => None,
            };
            Ok(crate::echo::run_cli(listen, mode, tls, statuses, cli.log_format).await?)
        }
        Some(Command::Demo {
            port,
            admin_address,
        }) => Ok(demo::run(port, admin_address).await?),
        Some(Command::Proxy(args)) => {
            serve_kube(kube_mode::run_proxy(args.into_options()).await?).await
        }
        Some(Command::Controller(args)) => {
            serve_kube(kube_mode::run_controller(args.into_options()).await?).await
        }
        Some(Command::Validate(args)) => Ok(validate::run(&args)?),
        None => {
            let GatewayArgs {
                config,
                admin_address,
                address_pool,
                listen_address,
                mirror,
                edge,
                listeners,
                retry,
                upstream,
                tls_routes,
                access_log,
            } = cli.gateway;
            // clap enforces --config without a subcommand; an empty path fails to load visibly.
            let mut opts = StandaloneOptions::new(config.unwrap_or_default());
            opts.admin_address = admin_address;
            opts.address_pool = address_pool;
            opts.listen_address = listen_address;
            opts.mirror = mirror.into_options();
            opts.bind_retry = listeners.bind_retry();
            opts.proxy.downstream_h2c = !listeners.no_h2c;
            let drain = edge.drain();
            opts.proxy.edge = edge.into_limits(crate::edge::limits::raise_fd_limit());
            let base = UpstreamSettings {
                retry: retry.into_settings(),
                ..opts.proxy.upstream
            };
            opts.proxy.upstream = upstream.into_settings(base);
            opts.proxy.tls_routes = tls_routes.into_settings();
            opts.proxy.access_log = access_log.into_settings();
            opts.drain_delay = drain.delay;
            opts.shutdown_grace = drain.grace;
            let running = standalone::start(opts).await?;
            tracing::info!(admin = %running.admin_addr(), "sluice running; Ctrl-C to stop");
            let signal = shutdown_signal().await;
            running.shutdown().await;
            signal.map_err(CliError::Signal)
        }
    }
}

/// Serves until SIGINT or SIGTERM, then lets in-flight connections finish.
async fn serve_kube(running: kube_mode::KubeRunning) -> Result<(), CliError> {
    tracing::info!(admin = %running.admin_addr(), "sluice running; Ctrl-C to stop");
    let signal = shutdown_signal().await;
    running.shutdown().await;
    signal.map_err(CliError::Signal)
}

/// Resolves on SIGINT or SIGTERM (what Kubernetes sends).
pub async fn shutdown_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    tracing::info!("shutdown signal received");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_mode_requires_config_but_subcommands_do_not() {
        let bare = Cli::try_parse_from(["sluice"]).expect_err("bare sluice");
        assert_eq!(
            bare.kind(),
            clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        );
        for command in ["demo", "validate", "echo", "controller", "proxy"] {
            assert!(bare.to_string().contains(command), "help names {command}");
        }
        let cli =
            Cli::try_parse_from(["sluice", "validate", "--config", "gw.yaml"]).expect("parses");
        assert!(matches!(cli.command, Some(Command::Validate(_))));
        let cli = Cli::try_parse_from(["sluice", "--config", "gw.yaml", "--threads", "2"])
            .expect("parses");
        assert_eq!(cli.gateway.config, Some(PathBuf::from("gw.yaml")));
        assert_eq!(cli.threads, Some(2));
        assert_eq!(cli.gateway.admin_address.port(), 9901);
        let cli = Cli::try_parse_from(["sluice", "demo", "--port", "8081"]).expect("parses");
        assert!(matches!(
            cli.command,
            Some(Command::Demo { port: 8081, .. })
        ));
        assert!(Cli::try_parse_from(["sluice", "echo", "--listen", "127.0.0.1:0"]).is_ok());
        let cli = Cli::try_parse_from(["sluice", "echo", "--listen", "127.0.0.1:0", "--grpc"])
            .expect("parses");
        assert!(matches!(
            cli.command,
            Some(Command::Echo {
                grpc: true,
                tcp: false,
                ..
            })
        ));
        let both = [
            "sluice",
            "echo",
            "--listen",
            "127.0.0.1:0",
            "--grpc",
            "--tcp",
        ];
        assert!(Cli::try_parse_from(both).is_err());
        let echo_tls = ["sluice", "echo", "--listen", "127.0.0.1:0", "--tcp"];
        let tls = [
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
        ];
        assert!(Cli::try_parse_from(echo_tls.iter().chain(&tls)).is_ok());
        let statuses = [
            "sluice",
            "echo",
            "--listen",
            "127.0.0.1:0",
            "--status",
            "/a=503",
            "--status",
            "/b=404",
        ];
        let cli = Cli::try_parse_from(statuses).expect("parses");
        assert!(
            matches!(cli.command, Some(Command::Echo { ref statuses, .. }) if statuses.len() == 2)
        );
        let bad = [
            "sluice",
            "echo",
            "--listen",
            "127.0.0.1:0",
            "--status",
            "/a",
        ];
        assert!(
            Cli::try_parse_from(bad).is_err(),
            "PATH=CODE needs the code"
        );
        assert!(
            Cli::try_parse_from(echo_tls.iter().chain(&tls[..4])).is_err(),
            "a TLS listener needs its key"
        );
    }

    #[test]
    fn every_command_takes_log_format() {
        let commands: [&[&str]; 5] = [
            &["--config", "gw.yaml"],
            &["proxy", "--gateway", "demo/web"],
            &["controller", "--dataplane-image", "img"],
            &["echo", "--listen", "127.0.0.1:0"],
            &["demo"],
        ];
        for args in commands {
            let line = ["sluice"]
                .iter()
                .chain(args)
                .chain(&["--log-format", "json"]);
            let cli = Cli::try_parse_from(line).expect("parses");
            assert_eq!(cli.log_format, LogFormat::Json, "{args:?}");
            let cli = Cli::try_parse_from(["sluice"].iter().chain(args)).expect("parses");
            assert_eq!(cli.log_format, LogFormat::Text, "{args:?}: text by default");
        }
        let yaml = ["sluice", "--config", "gw.yaml", "--log-format", "yaml"];
        assert!(Cli::try_parse_from(yaml).is_err());
        let omit = ["sluice", "--config", "gw.yaml", "--access-log-omit-query"];
        let cli = Cli::try_parse_from(omit).expect("parses");
        assert!(cli.gateway.access_log.into_settings().omit_query);
    }

    #[test]
    fn bad_values_are_rejected_by_the_parser() {
        for args in [
            &["sluice", "--config", "x", "--address-pool", "10.0.0.0/33"][..],
            &["sluice", "--config", "x", "--threads", "0"],
            &["sluice", "--config", "x", "--admin-address", "nope"],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn every_flag_of_every_command_says_what_it_does() {
        use clap::CommandFactory;
        fn check(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if arg.get_help().is_none() && !builtin {
                    missing.push(format!("{path} --{}", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                check(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        check(&Cli::command(), "sluice", &mut missing);
        assert!(
            missing.is_empty(),
            "flags without a description: {missing:?}"
        );
    }

    #[test]
    fn command_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
