//! The shadow-diff workload (issue 14): Sluice mirroring every request to the fast mirror, with
//! mirroring alone and with a MirrorPolicy comparing status and body digest, interleaved in one
//! run (order rotated per repeat); the figure is each one's CPU per mirrored request and their
//! ratio, against the target of at most 10 % more.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::path::PathBuf;
use std::time::Duration;

use super::backend::Backend;
use super::procfs;
use super::proxies::{self, Tools};
use super::report::median;
use super::wrk::{self, WrkLoad};
use super::BenchError;
use crate::fixtures::shadow as fixtures;

/// The most CPU per mirrored request comparison may add (issue 14).
pub const TARGET_RATIO: f64 = 1.10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Variant {
    /// RequestMirror alone.
    MirrorOnly,
    /// RequestMirror with a MirrorPolicy comparing status and body.
    Compare,
}

impl Variant {
    pub const ALL: [Variant; 2] = [Variant::MirrorOnly, Variant::Compare];

    fn slug(self) -> &'static str {
        match self {
            Variant::MirrorOnly => "mirror",
            Variant::Compare => "compare",
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Variant::MirrorOnly => "mirroring alone",
            Variant::Compare => "with comparison",
        })
    }
}

/// What to run and for how long.
#[derive(Debug, Clone)]
pub struct Settings {
    pub duration: Duration,
    pub warmup: Duration,
    pub repeats: usize,
    pub load_core: u32,
    pub workdir: PathBuf,
}

/// The closed-loop loads each variant runs: GET, and POST 1 KiB (the request body is copied and
/// the answers compared all the same).
pub const LOADS: [WrkLoad; 2] = [
    WrkLoad {
        connections: 50,
        body: 0,
    },
    WrkLoad {
        connections: 50,
        body: 1024,
    },
];

/// One measurement.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    pub rps: f64,
    pub cpu_us_per_request: f64,
    /// Requests the mirror received / requests the primary received, in %.
    pub mirrored_pct: f64,
    pub errors: u64,
}

#[derive(Debug, Default)]
pub struct Results {
    /// Keyed by the index in [`LOADS`].
    pub samples: BTreeMap<(usize, Variant), Vec<Sample>>,
    /// Why a variant has no figures (its configuration refused, or Sluice did not start).
    pub failed: BTreeMap<Variant, String>,
}

/// Runs both variants `repeats` times against `primary` mirrored to `mirror` (a fast backend).
/// A variant that fails once is not retried: the reason is reported instead.
pub fn run(settings: &Settings, tools: &Tools, primary: &Backend, mirror: &Backend) -> Results {
    let mut results = Results::default();
    let ticks = procfs::clock_ticks() as f64;
    for repeat in 0..settings.repeats {
        eprintln!("== shadow diff repeat {}/{}", repeat + 1, settings.repeats);
        let mut variants = Variant::ALL;
        variants.rotate_left(repeat % Variant::ALL.len());
        for variant in variants {
            if results.failed.contains_key(&variant) {
                continue;
            }
            let measured = measure(variant, settings, tools, primary, mirror, repeat, ticks);
            match measured {
                Ok(samples) => {
                    for (i, sample) in samples {
                        log(variant, &LOADS[i], &sample);
                        results
                            .samples
                            .entry((i, variant))
                            .or_default()
                            .push(sample);
                    }
                }
                Err(e) => {
                    eprintln!("   shadow diff {variant}: {e}");
                    results.failed.insert(variant, e.to_string());
                }
            }
        }
    }
    results
}

fn log(variant: Variant, load: &WrkLoad, s: &Sample) {
    eprintln!(
        "   {variant:16} {:22} {:>9.0} req/s {:>6.1} µs/req mirrored {:.1} % errors {}",
        describe(load),
        s.rps,
        s.cpu_us_per_request,
        s.mirrored_pct,
        s.errors
    );
}

/// Starts Sluice fresh on `variant`'s configuration, warms it up and runs every load once.
fn measure(
    variant: Variant,
    settings: &Settings,
    tools: &Tools,
    primary: &Backend,
    mirror: &Backend,
    repeat: usize,
    ticks: f64,
) -> Result<Vec<(usize, Sample)>, BenchError> {
    let dir = settings
        .workdir
        .join(format!("sluice-shadow-{}-{repeat}", variant.slug()));
    std::fs::create_dir_all(&dir).map_err(BenchError::io(format!("creating {}", dir.display())))?;
    let listen = proxies::free_port()?;
    let objects = fixtures::objects(
        listen,
        primary.addr,
        mirror.addr,
        variant == Variant::Compare,
    );
    let config = dir.join("sluice.yaml");
    proxies::write(&config, &crate::fixtures::yaml(&objects)?)?;
    let proxy = super::protocols::start_sluice(tools, &config, listen, &dir, &proxies::http_ready)?;
    let pids = proxy.pids();
    let warm = WrkLoad {
        connections: 50,
        body: 0,
    };
    let _ = wrk::run(proxy.addr, warm, settings.warmup, settings.load_core, &dir);
    let mut samples = Vec::new();
    for (i, load) in LOADS.iter().enumerate() {
        let cpu0 = procfs::cpu_ticks(&pids);
        let (primary0, mirror0) = (primary.requests(), mirror.requests());
        let out = wrk::run(
            proxy.addr,
            *load,
            settings.duration,
            settings.load_core,
            &dir,
        );
        let cpu = procfs::cpu_ticks(&pids).saturating_sub(cpu0) as f64 / ticks;
        let out = match out {
            Ok(out) => out,
            Err(e) => {
                proxy.stop();
                return Err(e);
            }
        };
        let primary = primary.requests().saturating_sub(primary0);
        let mirrored = mirror.requests().saturating_sub(mirror0);
        samples.push((
            i,
            Sample {
                rps: out.rps,
                cpu_us_per_request: cpu * 1e6 / out.requests.max(1) as f64,
                mirrored_pct: 100.0 * mirrored as f64 / primary.max(1) as f64,
                errors: out.errors,
            },
        ));
    }
    proxy.stop();
    Ok(samples)
}

fn describe(load: &WrkLoad) -> String {
    match load.body {
        0 => format!("GET, {} conns", load.connections),
        body => format!("POST {} KiB, {} conns", body / 1024, load.connections),
    }
}

/// The medians of one load and variant (errors summed).
fn summary(results: &Results, load: usize, variant: Variant) -> Option<Sample> {
    let samples = results.samples.get(&(load, variant))?;
    let m = |f: fn(&Sample) -> f64| median(samples.iter().map(f));
    Some(Sample {
        rps: m(|s| s.rps)?,
        cpu_us_per_request: m(|s| s.cpu_us_per_request)?,
        mirrored_pct: m(|s| s.mirrored_pct)?,
        errors: samples.iter().map(|s| s.errors).sum(),
    })
}

/// One row per load: both variants' medians and the CPU ratio against [`TARGET_RATIO`]; then
/// why a variant has no figures, if one has none.
pub fn table(results: &Results) -> String {
    let mut out = String::from(
        "| Load | Mirroring alone: req/s | CPU µs/req | With comparison: req/s | CPU µs/req | Mirrored % | Errors | CPU ratio | Target ≤ 1.10 |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for (i, load) in LOADS.iter().enumerate() {
        let alone = summary(results, i, Variant::MirrorOnly);
        let compared = summary(results, i, Variant::Compare);
        let cell = |s: Option<Sample>, f: fn(&Sample) -> String| {
            s.as_ref().map_or_else(|| "–".to_string(), f)
        };
        let (ratio, verdict) = match (alone, compared) {
            (Some(a), Some(c)) if a.cpu_us_per_request > 0.0 => {
                let r = c.cpu_us_per_request / a.cpu_us_per_request;
                let verdict = if r <= TARGET_RATIO {
                    "met"
                } else {
                    "**missed**"
                };
                (format!("{r:.2}×"), verdict)
            }
            _ => ("–".to_string(), "not measured"),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {ratio} | {verdict} |",
            describe(load),
            cell(alone, |s| format!("{:.0}", s.rps)),
            cell(alone, |s| format!("{:.1}", s.cpu_us_per_request)),
            cell(compared, |s| format!("{:.0}", s.rps)),
            cell(compared, |s| format!("{:.1}", s.cpu_us_per_request)),
            cell(compared.or(alone), |s| format!("{:.1}", s.mirrored_pct)),
            alone.map_or(0, |s| s.errors) + compared.map_or(0, |s| s.errors),
        );
    }
    for (variant, why) in &results.failed {
        let _ = writeln!(out, "\n{variant}: no figures: {}", why.replace('\n', " "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(cpu: f64) -> Sample {
        Sample {
            rps: 1000.0,
            cpu_us_per_request: cpu,
            mirrored_pct: 100.0,
            errors: 0,
        }
    }

    #[test]
    fn the_ratio_is_compared_cpu_over_mirroring_alone_checked_against_the_target() {
        let mut results = Results::default();
        results
            .samples
            .insert((0, Variant::MirrorOnly), vec![sample(40.0)]);
        results.samples.insert(
            (0, Variant::Compare),
            vec![sample(42.0), sample(43.0), sample(41.0)],
        );
        results
            .samples
            .insert((1, Variant::MirrorOnly), vec![sample(50.0)]);
        results
            .samples
            .insert((1, Variant::Compare), vec![sample(60.0)]);
        let text = table(&results);
        let rows: Vec<&str> = text.lines().skip(2).collect();
        assert!(rows[0].contains("| 1.05× | met |"), "{}", rows[0]);
        assert!(rows[1].contains("| 1.20× | **missed** |"), "{}", rows[1]);
    }

    #[test]
    fn a_refused_variant_is_reported_with_its_reason() {
        let mut results = Results::default();
        results
            .samples
            .insert((0, Variant::MirrorOnly), vec![sample(40.0)]);
        results.failed.insert(
            Variant::Compare,
            "Sluice: config rejected: unknown kind".into(),
        );
        let text = table(&results);
        assert!(text.contains("| – | not measured |"));
        assert!(text.contains("with comparison: no figures: Sluice: config rejected"));
    }
}
