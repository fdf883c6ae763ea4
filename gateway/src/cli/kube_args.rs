//! Flags of `sluice proxy` (a provisioned data plane) and `sluice controller`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::Args;
use sluice_controller::leader::LeaseConfig;
use sluice_controller::provision::probe::PodProbeConfig;

use super::edge_args::{parse_duration, EdgeArgs};
use super::listener_args::ListenerArgs;
use super::mirror_args::MirrorArgs;
use crate::edge::limits::raise_fd_limit;
use crate::kube_mode::{ControllerOptions, ProxyOptions};
use crate::proxy::ProxySettings;
use crate::upstream::UpstreamSettings;

/// The data plane of one Gateway, configured from the Kubernetes API.
#[derive(Debug, Clone, Args)]
pub struct ProxyArgs {
    /// The Gateway to serve, as NAMESPACE/NAME.
    #[arg(long, value_parser = parse_gateway)]
    pub gateway: (String, String),
    /// Where `/status`, `/config`, `/healthz`, `/readyz` and `/metrics` are served.
    #[arg(long, default_value_t = SocketAddr::from((Ipv4Addr::LOCALHOST, 9901)))]
    pub admin_address: SocketAddr,
    /// Where the Gateway's listeners bind inside the pod.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    pub listen_address: IpAddr,
    /// The same flags as standalone mode; the provisioner sets them from the GatewayClass
    /// parameters' `mirror*` keys.
    #[command(flatten)]
    pub mirror: MirrorArgs,
    /// The same flags as standalone mode; the provisioner sets them from the GatewayClass
    /// parameters' edge keys (see docs/hardening.md).
    #[command(flatten)]
    pub edge: EdgeArgs,
    /// The same flags as standalone mode.
    #[command(flatten)]
    pub listeners: ListenerArgs,
    /// The same flags as standalone mode.
    #[command(flatten)]
    pub retry: super::retry_args::RetryArgs,
    /// The same flags as standalone mode.
    #[command(flatten)]
    pub upstream: super::upstream_args::UpstreamArgs,
    /// The same flags as standalone mode.
    #[command(flatten)]
    pub tls_routes: super::tls_route_args::TlsRouteArgs,
    /// The same flags as standalone mode; the provisioner sets them from the GatewayClass
    /// parameters' `accessLogOmitQuery` key.
    #[command(flatten)]
    pub access_log: super::access_log_args::AccessLogArgs,
}

/// The controller: statuses and data-plane provisioning, one leader at a time.
#[derive(Debug, Clone, Args)]
pub struct ControllerArgs {
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    #[arg(long, default_value_t = SocketAddr::from((Ipv4Addr::LOCALHOST, 9901)))]
    pub admin_address: SocketAddr,
    /// Where the leader-election Lease lives (the controller's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "sluice-system")]
    pub lease_namespace: String,
    /// The leader-election Lease's name; replicas sharing it elect one leader. Needs get,
    /// create and update on Leases in the Lease namespace (deploy/base's RBAC grants them).
    #[arg(long, default_value = "sluice-controller")]
    pub lease_name: String,
    /// This replica's identity in the Lease: unique per replica (default: the host name, which
    /// in a pod is the pod name).
    #[arg(long, env = "POD_NAME", default_value_t = host_name())]
    pub identity: String,
    /// Required: the image provisioned data planes run (the controller's own image).
    #[arg(long, env = "SLUICE_DATAPLANE_IMAGE")]
    pub dataplane_image: String,
    /// How often unready data-plane pods are asked which listener ports they could not bind,
    /// while a Gateway's data plane is short of available pods [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub pod_probe_interval: Option<Duration>,
    /// Deadline for one pod's answer through the API server's pod proxy, and for listing the
    /// pods [default: 2s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub pod_probe_timeout: Option<Duration>,
    /// Unready pods asked per Gateway and pass [default: 3].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub pod_probe_max_pods: Option<u16>,
}

/// The kernel's host name; `sluice-controller` where it cannot be read (not Linux).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "sluice-controller".into())
}

fn parse_gateway(s: &str) -> Result<(String, String), String> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_string(), name.to_string()))
        }
        _ => Err(format!("expected NAMESPACE/NAME, got {s:?}")),
    }
}

impl ProxyArgs {
    /// What the flags ask for; raises the file-descriptor limit to size the connection cap.
    pub fn into_options(self) -> ProxyOptions {
        let drain = self.edge.drain();
        ProxyOptions {
            gateway: self.gateway,
            admin_address: self.admin_address,
            listen_address: self.listen_address,
            proxy: ProxySettings {
                edge: self.edge.into_limits(raise_fd_limit()),
                upstream: self.upstream.into_settings(UpstreamSettings {
                    retry: self.retry.into_settings(),
                    ..UpstreamSettings::default()
                }),
                downstream_h2c: !self.listeners.no_h2c,
                tls_routes: self.tls_routes.into_settings(),
                access_log: self.access_log.into_settings(),
                ..ProxySettings::default()
            },
            mirror: self.mirror.into_options(),
            bind_retry: self.listeners.bind_retry(),
            drain,
        }
    }
}

impl ControllerArgs {
    pub fn into_options(self) -> ControllerOptions {
        let defaults = PodProbeConfig::default();
        ControllerOptions {
            admin_address: self.admin_address,
            lease: LeaseConfig::new(&self.lease_namespace, &self.lease_name, &self.identity),
            dataplane_image: self.dataplane_image,
            pod_probe: PodProbeConfig {
                interval: self.pod_probe_interval.unwrap_or(defaults.interval),
                deadline: self.pod_probe_timeout.unwrap_or(defaults.deadline),
                max_pods: self
                    .pod_probe_max_pods
                    .map_or(defaults.max_pods, usize::from),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use std::time::Duration;

    use super::*;
    use crate::cli::{Cli, Command};
    use crate::listeners::Drain;

    #[test]
    fn the_binary_has_proxy_and_controller_subcommands() {
        let cli = Cli::try_parse_from(["sluice", "proxy", "--gateway", "demo/web"]).expect("proxy");
        assert!(
            matches!(cli.command, Some(Command::Proxy(a)) if a.gateway == ("demo".into(), "web".into()))
        );
        let cli = Cli::try_parse_from([
            "sluice",
            "controller",
            "--identity=pod-a",
            "--dataplane-image=example.test/sluice:1",
        ])
        .expect("controller");
        assert!(matches!(cli.command, Some(Command::Controller(a)) if a.identity == "pod-a"));
        assert!(Cli::try_parse_from(["sluice", "proxy", "--gateway", "web"]).is_err());
    }

    fn controller_options(flags: &[&str]) -> Result<ControllerOptions, clap::Error> {
        let args = [
            "sluice",
            "controller",
            "--dataplane-image=example.test/sluice:1",
        ];
        let cli = Cli::try_parse_from(args.iter().chain(flags))?;
        match cli.command {
            Some(Command::Controller(a)) => Ok(a.into_options()),
            _ => panic!("not the controller subcommand"),
        }
    }

    #[test]
    fn the_pod_probe_bounds_have_defaults_and_flags() {
        let defaults = controller_options(&[]).expect("defaults");
        assert_eq!(defaults.pod_probe, PodProbeConfig::default());
        let set = controller_options(&[
            "--pod-probe-interval=30s",
            "--pod-probe-timeout=500ms",
            "--pod-probe-max-pods=5",
        ])
        .expect("flags");
        assert_eq!(
            set.pod_probe,
            PodProbeConfig {
                interval: Duration::from_secs(30),
                deadline: Duration::from_millis(500),
                max_pods: 5,
            }
        );
        for bad in [
            "--pod-probe-interval=0s",
            "--pod-probe-timeout=soon",
            "--pod-probe-max-pods=0",
        ] {
            assert!(controller_options(&[bad]).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn the_provisioned_mirror_edge_and_log_flags_parse_as_proxy_flags() {
        use sluice_controller::provision::{manifests, params::DataPlaneParams};

        // The type comes from `from_config_map`: the gateway crate needs no k8s-openapi for it.
        let config_map = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "knobs", "namespace": "sluice-system"},
            "data": {
                "mirrorHostSuffix": "-shadow",
                "mirrorSetHeaders": "{x-mirror: \"1\"}",
                "mirrorAddHeaders": "{x-tag: a=b}",
                "mirrorRemoveHeaders": "[authorization]",
                "mirrorBufferBytes": "1024",
                "mirrorMaxBufferedBytes": "4096",
                "mirrorMaxInflight": "7",
                "mirrorTimeoutMs": "250",
                "mirrorAccessLog": "true",
                "maxHeaderFields": "50",
                "clientHeaderTimeout": "3s",
                "keepaliveTimeout": "90s",
                "drainDelay": "7s",
                "shutdownGrace": "20s",
                "logFormat": "json",
                "accessLogOmitQuery": "true",
            },
        }))
        .expect("a ConfigMap");
        let params = DataPlaneParams::from_config_map(&config_map).expect("valid parameters");
        let gateway = serde_json::from_value(serde_json::json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "web", "namespace": "demo", "uid": "u"},
            "spec": {"gatewayClassName": "sluice",
                "listeners": [{"name": "http", "port": 8000, "protocol": "HTTP"}]},
        }))
        .expect("a Gateway");
        let objects = manifests::build(&gateway, &[], &params, "img");
        let manifests::Workload::Deployment(deployment) = objects.workload else {
            panic!("a Deployment by default");
        };
        let pod = deployment
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref());
        assert_eq!(
            pod.and_then(|p| p.termination_grace_period_seconds),
            Some(32),
            "drain delay + grace + slack"
        );
        let args = deployment
            .spec
            .and_then(|s| s.template.spec)
            .and_then(|s| s.containers.into_iter().next())
            .and_then(|c| c.args)
            .expect("container args");

        let cli = Cli::try_parse_from(std::iter::once("sluice".to_string()).chain(args))
            .expect("the data plane accepts its flags");
        assert_eq!(cli.log_format, crate::log_format::LogFormat::Json);
        let Some(Command::Proxy(proxy)) = cli.command else {
            panic!("sluice proxy");
        };
        assert!(proxy.access_log.clone().into_settings().omit_query);
        let mirror = proxy.mirror.into_settings();
        // The flags parse back into exactly what the class parameters said.
        assert_eq!(mirror, params.mirror);
        assert_eq!(mirror.host_suffix.as_deref(), Some("-shadow"));
        assert_eq!(mirror.headers.set[0].0.as_str(), "x-mirror");
        assert_eq!(mirror.headers.add[0].1.as_bytes(), b"a=b");
        assert_eq!(mirror.headers.remove[0].as_str(), "authorization");
        assert_eq!(
            (
                mirror.request_buffer_bytes,
                mirror.max_buffered_bytes,
                mirror.max_inflight
            ),
            (1024, 4096, 7)
        );
        assert_eq!(mirror.timeout, Duration::from_millis(250));
        assert!(mirror.access_log);
        assert_eq!(
            proxy.edge.drain(),
            Drain {
                delay: Duration::from_secs(7),
                grace: Duration::from_secs(20)
            }
        );
        let limits = proxy.edge.into_limits(None);
        assert_eq!(limits.max_header_fields, 50);
        assert_eq!(limits.client_header_timeout, Duration::from_secs(3));
        assert_eq!(limits.keepalive_timeout, Duration::from_secs(90));
    }

    #[test]
    fn gateway_is_namespace_slash_name() {
        assert_eq!(
            parse_gateway("demo/web"),
            Ok(("demo".to_string(), "web".to_string()))
        );
        for bad in ["web", "/web", "demo/", "a/b/c"] {
            assert!(parse_gateway(bad).is_err(), "{bad}");
        }
    }
}
