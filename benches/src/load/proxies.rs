//! The proxies under test, each configured for the same route (`/` -> primary, optionally mirrored),
//! started pinned to the proxy core(s) with `--workers` workers (one by default), and stopped after each measurement.

use std::fmt;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::paced::{request_bytes, Client};
use super::procfs;
use super::BenchError;
use crate::fixtures::{Shape, Topology};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Sluice,
    Nginx,
    Envoy,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Sluice => "Sluice",
            Kind::Nginx => "nginx",
            Kind::Envoy => "Envoy",
        })
    }
}

/// Where the binaries are; a peer whose binary is missing is skipped.
#[derive(Debug, Clone)]
pub struct Tools {
    pub sluice: PathBuf,
    /// Extra arguments for `sluice` after `--config FILE --threads N`.
    pub sluice_args: Vec<String>,
    pub nginx: Option<PathBuf>,
    pub envoy: Option<PathBuf>,
    /// The first core the proxy is pinned to ...
    pub proxy_core: u32,
    /// ... and its workers: Sluice `--threads`, nginx `worker_processes`, Envoy `--concurrency`,
    /// pinned to this many consecutive cores from `proxy_core` on.
    pub workers: u32,
}

impl Tools {
    /// The `taskset -c` list: `workers` cores from `proxy_core` on. Not wrapped around: the
    /// harness itself runs pinned to the load core, so it cannot see how many cores the machine
    /// has; a core that does not exist fails the proxy's start with taskset's message.
    pub fn proxy_cpus(&self) -> String {
        (0..self.workers.max(1))
            .map(|i| (self.proxy_core + i).to_string())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A started proxy.
#[derive(Debug)]
pub struct Running {
    pub kind: Kind,
    pub addr: SocketAddr,
    child: Child,
    log: PathBuf,
}

/// A free loopback port (bound, then released: the proxy binds it right after).
pub fn free_port() -> Result<SocketAddr, BenchError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(BenchError::io("finding a free port"))
}

/// Writes `kind`'s configuration into `dir` and starts it on `tools.proxy_core`.
pub fn start(
    kind: Kind,
    tools: &Tools,
    primary: SocketAddr,
    mirror: Option<SocketAddr>,
    dir: &Path,
) -> Result<Running, BenchError> {
    let addr = free_port()?;
    if kind == Kind::Sluice {
        let topology = Topology {
            listen: addr,
            primary,
            mirror,
            extra_routes: 0,
            shape: Shape::Hosts,
            revision: 0,
            main_host: None,
        };
        return start_sluice(tools, &topology, dir);
    }
    std::fs::create_dir_all(dir).map_err(BenchError::io(format!("creating {}", dir.display())))?;
    let mut cmd = pinned(tools);
    match kind {
        Kind::Sluice => {}
        Kind::Nginx => {
            let nginx = tools.nginx.as_ref().ok_or_else(|| not_installed("nginx"))?;
            let conf = dir.join("nginx.conf");
            write(
                &conf,
                &nginx_conf(addr, primary, mirror, dir, tools.workers),
            )?;
            cmd.arg(nginx).arg("-p").arg(dir).arg("-c").arg(&conf);
        }
        Kind::Envoy => {
            let conf = dir.join("envoy.yaml");
            write(&conf, &envoy_conf(addr, primary, mirror))?;
            cmd = envoy_command(tools, &conf, addr)?;
        }
    }
    launch(kind, cmd, addr, dir, &http_ready)
}

/// Envoy on `conf` with `tools.workers` workers, pinned; `addr`'s port doubles as its shared-memory base id,
/// so two instances never collide.
pub(super) fn envoy_command(
    tools: &Tools,
    conf: &Path,
    addr: SocketAddr,
) -> Result<Command, BenchError> {
    let envoy = tools.envoy.as_ref().ok_or_else(|| not_installed("envoy"))?;
    let mut cmd = pinned(tools);
    cmd.arg(envoy)
        .arg("-c")
        .arg(conf)
        .arg("--concurrency")
        .arg(tools.workers.max(1).to_string())
        .args(["--disable-hot-restart", "-l", "error"])
        .arg("--base-id")
        .arg(addr.port().to_string());
    Ok(cmd)
}

/// Ready once `bench.test/` answers 200 over HTTP/1.1.
pub(super) fn http_ready(addr: SocketAddr) -> bool {
    let request = request_bytes("GET", "bench.test", "/", 0);
    matches!(
        Client::new(addr, Duration::from_secs(2)).send(&request),
        Ok(200)
    )
}

/// Sluice in standalone mode on `topology` (written to `dir/sluice.yaml`), listening on
/// `topology.listen`; ready once `bench.test/` answers 200.
pub fn start_sluice(tools: &Tools, topology: &Topology, dir: &Path) -> Result<Running, BenchError> {
    std::fs::create_dir_all(dir).map_err(BenchError::io(format!("creating {}", dir.display())))?;
    let config = dir.join("sluice.yaml");
    write(&config, &topology.yaml()?)?;
    launch(
        Kind::Sluice,
        sluice_command(tools, &config)?,
        topology.listen,
        dir,
        &http_ready,
    )
}

/// Sluice in standalone mode on `config`, `tools.workers` worker threads, pinned, access logs off.
pub(super) fn sluice_command(tools: &Tools, config: &Path) -> Result<Command, BenchError> {
    let mut cmd = pinned(tools);
    // Access logs off, as for nginx (`access_log off`) and Envoy (none configured).
    cmd.env("RUST_LOG", "warn");
    cmd.arg(&tools.sluice)
        .arg("--config")
        .arg(config)
        .arg("--threads")
        .arg(tools.workers.max(1).to_string())
        // Its own admin port, so a previous instance still closing never collides.
        .arg("--admin-address")
        .arg(free_port()?.to_string())
        .args(&tools.sluice_args);
    Ok(cmd)
}

fn pinned(tools: &Tools) -> Command {
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", &tools.proxy_cpus()]);
    cmd
}

/// Starts `cmd` (logging to `dir`) and waits until `ready(addr)` holds; a proxy that exits or
/// never gets ready is stopped and reported with its log.
pub(super) fn launch(
    kind: Kind,
    mut cmd: Command,
    addr: SocketAddr,
    dir: &Path,
    ready: &dyn Fn(SocketAddr) -> bool,
) -> Result<Running, BenchError> {
    let log = dir.join(format!("{}.log", kind.to_string().to_lowercase()));
    let log_file = std::fs::File::create(&log).map_err(BenchError::io("creating the proxy log"))?;
    let err_file = log_file
        .try_clone()
        .map_err(BenchError::io("sharing the proxy log"))?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(err_file)
        .spawn()
        .map_err(BenchError::io(format!("starting {kind}")))?;
    let mut running = Running {
        kind,
        addr,
        child,
        log,
    };
    if let Err(e) = running.wait_ready(Duration::from_secs(20), ready) {
        running.stop();
        return Err(e);
    }
    Ok(running)
}

fn not_installed(what: &str) -> BenchError {
    BenchError::Io {
        what: format!("{what} is not installed"),
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    }
}

pub(super) fn write(path: &Path, text: &str) -> Result<(), BenchError> {
    std::fs::write(path, text).map_err(BenchError::io(format!("writing {}", path.display())))
}

impl Running {
    /// The proxy's process id (`taskset` execs it, so this is the proxy itself).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The proxy and its child processes (nginx's worker).
    pub fn pids(&self) -> Vec<u32> {
        procfs::tree(self.pid())
    }

    fn wait_ready(
        &mut self,
        timeout: Duration,
        ready: &dyn Fn(SocketAddr) -> bool,
    ) -> Result<(), BenchError> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if ready(self.addr) {
                return Ok(());
            }
            // A proxy that refused its configuration exits: say so now rather than at the timeout.
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(BenchError::Exited {
                    proxy: self.kind.to_string(),
                    status,
                    log: self.log_head(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(BenchError::NotReady {
            proxy: self.kind.to_string(),
            addr: self.addr,
            timeout,
            log: self.log_head(),
        })
    }

    /// The start of the proxy's log, for error messages.
    fn log_head(&self) -> String {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .chars()
            .take(2000)
            .collect()
    }

    /// SIGTERM (so nginx's master takes its worker down), then SIGKILL after a grace period.
    pub fn stop(mut self) {
        let pids = self.pids();
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in pids.iter().skip(1) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// nginx as its own docs advise for a proxy: upstream keep-alive, HTTP/1.1 to upstreams, body
/// kept in memory; the mirror as an internal location with the request body.
pub fn nginx_conf(
    listen: SocketAddr,
    primary: SocketAddr,
    mirror: Option<SocketAddr>,
    dir: &Path,
    workers: u32,
) -> String {
    let d = dir.display();
    let workers = workers.max(1);
    let (mirror_directives, mirror_parts) = match mirror {
        Some(m) => (
            "            mirror /__mirror;\n            mirror_request_body on;\n".to_string(),
            format!("    upstream mirror {{ server {m}; keepalive 256; }}\n"),
        ),
        None => (String::new(), String::new()),
    };
    let mirror_location = if mirror.is_some() {
        "        location = /__mirror {\n            internal;\n            proxy_pass http://mirror$request_uri;\n            \
         proxy_http_version 1.1;\n            proxy_set_header Connection \"\";\n        }\n"
    } else {
        ""
    };
    format!(
        "daemon off;\nmaster_process on;\nworker_processes {workers};\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log error;\n\
         events {{ worker_connections 8192; }}\n\
         http {{\n    access_log off;\n    client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n    \
         fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n    \
         client_body_buffer_size 128k;\n    client_max_body_size 0;\n    keepalive_requests 1000000;\n    \
         upstream primary {{ server {primary}; keepalive 256; keepalive_requests 1000000; }}\n{mirror_parts}    \
         server {{\n        listen {listen} backlog=4096;\n        location / {{\n{mirror_directives}            \
         proxy_pass http://primary;\n            proxy_http_version 1.1;\n            proxy_set_header Connection \"\";\n        }}\n\
         {mirror_location}    }}\n}}\n"
    )
}

/// Envoy with one route to the primary cluster and, for the mirror case, a request mirror policy.
pub fn envoy_conf(listen: SocketAddr, primary: SocketAddr, mirror: Option<SocketAddr>) -> String {
    let mirror_policy = if mirror.is_some() {
        "                  request_mirror_policies:\n                  - cluster: mirror\n"
    } else {
        ""
    };
    let mut clusters = envoy_cluster("primary", primary, "");
    if let Some(m) = mirror {
        clusters.push_str(&envoy_cluster("mirror", m, ""));
    }
    format!(
        "static_resources:\n  listeners:\n  - name: bench\n    address:\n      socket_address: {{ address: {}, port_value: {} }}\n    \
         filter_chains:\n    - filters:\n      - name: envoy.filters.network.http_connection_manager\n        typed_config:\n          \
         \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n          \
         stat_prefix: bench\n          codec_type: HTTP1\n          route_config:\n            virtual_hosts:\n            \
         - name: all\n              domains: [\"*\"]\n              routes:\n              - match: {{ prefix: \"/\" }}\n                \
         route:\n                  cluster: primary\n{mirror_policy}          http_filters:\n          \
         - name: envoy.filters.http.router\n            typed_config:\n              \
         \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n  clusters:\n{clusters}",
        listen.ip(),
        listen.port()
    )
}

/// One static Envoy cluster of one endpoint; `options` (already indented by four spaces) go
/// between its type and its endpoints.
pub(super) fn envoy_cluster(name: &str, addr: SocketAddr, options: &str) -> String {
    format!(
        "  - name: {name}\n    connect_timeout: 1s\n    type: STATIC\n{options}    load_assignment:\n      \
         cluster_name: {name}\n      endpoints:\n      - lb_endpoints:\n        - endpoint:\n            \
         address:\n              socket_address: {{ address: {}, port_value: {} }}\n",
        addr.ip(),
        addr.port()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools(proxy_core: u32, workers: u32) -> Tools {
        Tools {
            sluice: PathBuf::from("sluice"),
            sluice_args: Vec::new(),
            nginx: None,
            envoy: None,
            proxy_core,
            workers,
        }
    }

    #[test]
    fn one_worker_is_pinned_to_the_proxy_core_alone() {
        assert_eq!(tools(0, 1).proxy_cpus(), "0");
    }

    #[test]
    fn workers_get_consecutive_cores_from_the_proxy_core() {
        assert_eq!(tools(0, 2).proxy_cpus(), "0,1");
        assert_eq!(tools(2, 3).proxy_cpus(), "2,3,4");
    }

    #[test]
    fn nginx_runs_as_many_workers_as_asked() {
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap_or_else(|_| unreachable!());
        let conf = nginx_conf(addr, addr, None, Path::new("/tmp/x"), 2);
        assert!(conf.contains("worker_processes 2;"), "{conf}");
    }
}
