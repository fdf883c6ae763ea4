//! Medians of the samples as one markdown table (each figure with its ratio to nginx in the same
//! run), the targets checked against them, and the route propagation and memory figures.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use super::propagation::{Memory, Propagation};
use super::proxies::Kind;
use super::run::{Key, Latency, MirrorMode, Sample, Workload, WrkLoadKey};

/// Medians over the repeats (errors are summed: one error in any run is worth seeing).
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    pub runs: usize,
    pub rps: f64,
    pub cpu_us: f64,
    pub idle_rss_mib: f64,
    pub rss_mib: f64,
    pub mirrored_pct: Option<f64>,
    pub errors: u64,
    pub missed: u64,
    pub latency: Latency,
}

pub fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.into_iter().collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

pub fn summarize(samples: &[Sample]) -> Summary {
    let m = |f: fn(&Sample) -> f64| median(samples.iter().map(f)).unwrap_or(0.0);
    let mo = |f: fn(&Sample) -> Option<f64>| median(samples.iter().filter_map(f));
    Summary {
        runs: samples.len(),
        rps: m(|s| s.rps),
        cpu_us: m(|s| s.cpu_us_per_request),
        idle_rss_mib: m(|s| s.idle_rss_kib as f64 / 1024.0),
        rss_mib: m(|s| s.rss_kib as f64 / 1024.0),
        mirrored_pct: mo(|s| s.mirrored_pct),
        errors: samples.iter().map(|s| s.errors).sum(),
        missed: samples.iter().map(|s| s.missed).sum(),
        latency: Latency {
            p50_ms: mo(|s| s.latency.p50_ms),
            p99_ms: mo(|s| s.latency.p99_ms),
            p999_ms: mo(|s| s.latency.p999_ms),
        },
    }
}

/// Everything the report shows.
#[derive(Debug, Default)]
pub struct Inputs<'a> {
    pub results: BTreeMap<Key, Summary>,
    pub propagation: Option<&'a Propagation>,
    pub memory: Vec<Memory>,
    /// Criterion's mean for the 10,000-route lookups, ns, by shape name.
    pub lookup_10k_ns: Vec<(String, f64)>,
    pub skipped: Vec<String>,
}

fn cell(value: Option<f64>, nginx: Option<f64>, precision: usize) -> String {
    match (value, nginx) {
        (None, _) => "–".into(),
        (Some(v), Some(n)) if n > 0.0 && v / n < 0.01 => format!("{v:.precision$} (<0.01×)"),
        (Some(v), Some(n)) if n > 0.0 => format!("{v:.precision$} ({:.2}×)", v / n),
        (Some(v), _) => format!("{v:.precision$}"),
    }
}

/// The one table: rows by workload, mirror mode and proxy.
pub fn table(inputs: &Inputs<'_>) -> String {
    let mut out = String::from(
        "| Workload | Mirror | Proxy | req/s | CPU µs/req | p50 ms | p99 ms | p99 added ms | RSS MiB idle / loaded | mirrored % | errors |\n\
         |---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let direct_p99 = inputs
        .results
        .get(&(Workload::Paced, MirrorMode::None, None))
        .and_then(|s| s.latency.p99_ms);
    for (&(workload, mode, kind), s) in &inputs.results {
        let nginx = inputs.results.get(&(workload, mode, Some(Kind::Nginx)));
        // nginx is the reference; the direct baseline is compared with nothing.
        let is_nginx = kind == Some(Kind::Nginx) || kind.is_none();
        let base = |f: &dyn Fn(&Summary) -> Option<f64>| {
            if is_nginx {
                None
            } else {
                nginx.and_then(f)
            }
        };
        let paced = workload == Workload::Paced;
        let proxy = kind.map_or("direct (no proxy)".to_string(), |k| k.to_string());
        let added = |x: &Summary| Some(x.latency.p99_ms? - direct_p99?);
        let _ = writeln!(
            out,
            "| {workload} | {mode} | {proxy} | {} | {} | {} | {} | {} | {} | {} | {} |",
            if kind.is_none() {
                "–".into()
            } else {
                cell(Some(s.rps), base(&|n| Some(n.rps)), 0)
            },
            if kind.is_none() {
                "–".into()
            } else {
                cell(Some(s.cpu_us), base(&|n| Some(n.cpu_us)), 1)
            },
            if paced {
                cell(s.latency.p50_ms, base(&|n| n.latency.p50_ms), 2)
            } else {
                "–".into()
            },
            if paced {
                cell(s.latency.p99_ms, base(&|n| n.latency.p99_ms), 2)
            } else {
                "–".into()
            },
            if paced && kind.is_some() {
                cell(added(s), base(&added), 2)
            } else {
                "–".into()
            },
            if kind.is_none() {
                "–".into()
            } else {
                format!(
                    "{:.1} / {}",
                    s.idle_rss_mib,
                    cell(Some(s.rss_mib), base(&|n| Some(n.rss_mib)), 1)
                )
            },
            s.mirrored_pct.map_or("–".into(), |p| format!("{p:.1}")),
            if s.missed > 0 {
                format!("{} (+{} due, not sent)", s.errors, s.missed)
            } else {
                s.errors.to_string()
            },
        );
    }
    out
}

/// `a`'s throughput over `b`'s, and how a target row shows it.
fn throughput_ratio(a: &Summary, b: &Summary) -> (f64, String) {
    let r = a.rps / b.rps.max(1e-9);
    (r, format!("{:.0} vs {:.0} req/s = {r:.2}×", a.rps, b.rps))
}

/// One row per target of the issue: what it asks, what was measured, met or missed by how much.
pub fn targets(inputs: &Inputs<'_>) -> String {
    let get = |mode, kind| {
        inputs.results.get(&(
            Workload::Closed(WrkLoadKey {
                body: 0,
                connections: 50,
            }),
            mode,
            Some(kind),
        ))
    };
    let paced = |mode, kind| inputs.results.get(&(Workload::Paced, mode, kind));
    let direct_p99 = paced(MirrorMode::None, None).and_then(|s| s.latency.p99_ms);
    let mut rows: Vec<(String, String, String)> = Vec::new();
    let mut check = |target: &str,
                     measured: Option<(f64, String)>,
                     limit: Option<f64>,
                     higher_is_better: bool| {
        let verdict = match (measured.as_ref(), limit) {
            (Some((v, _)), Some(l)) => {
                let met = if higher_is_better { *v >= l } else { *v <= l };
                if met {
                    "met".to_string()
                } else if l != 0.0 {
                    format!("missed by {:.0} %", ((v - l) / l).abs() * 100.0)
                } else {
                    "missed".to_string()
                }
            }
            _ => "not measured".to_string(),
        };
        rows.push((
            target.to_string(),
            measured.map_or("–".into(), |(_, text)| text),
            verdict,
        ));
    };

    let s_plain = get(MirrorMode::None, Kind::Sluice);
    let n_plain = get(MirrorMode::None, Kind::Nginx);
    check(
        "plain: CPU per request ≤ nginx's",
        s_plain.zip(n_plain).map(|(s, n)| {
            (
                s.cpu_us,
                format!("{:.1} µs vs nginx {:.1} µs", s.cpu_us, n.cpu_us),
            )
        }),
        n_plain.map(|n| n.cpu_us),
        false,
    );
    let added = |s: Option<&Summary>| Some(s?.latency.p99_ms? - direct_p99?);
    let s_added = added(paced(MirrorMode::None, Some(Kind::Sluice)));
    let n_added = added(paced(MirrorMode::None, Some(Kind::Nginx)));
    check(
        "plain: added p99 at fixed load ≤ nginx's",
        s_added
            .zip(n_added)
            .map(|(s, n)| (s, format!("+{s:.2} ms vs nginx +{n:.2} ms"))),
        n_added,
        false,
    );
    check(
        "plain: idle RSS ≤ 20 MiB",
        s_plain.map(|s| (s.idle_rss_mib, format!("{:.1} MiB", s.idle_rss_mib))),
        Some(20.0),
        false,
    );
    let s_fast = get(MirrorMode::Fast, Kind::Sluice);
    let n_fast = get(MirrorMode::Fast, Kind::Nginx);
    let e_fast = get(MirrorMode::Fast, Kind::Envoy);
    check(
        "mirror: throughput ≥ 2.5× nginx + mirror",
        s_fast.zip(n_fast).map(|(s, n)| throughput_ratio(s, n)),
        Some(2.5),
        true,
    );
    check(
        "mirror: throughput ≥ 1.5× Envoy + mirror",
        s_fast.zip(e_fast).map(|(s, e)| throughput_ratio(s, e)),
        Some(1.5),
        true,
    );
    check(
        "mirror: a mirrored request costs ≤ 1.6× a plain one",
        s_fast.zip(s_plain).map(|(f, p)| {
            let r = f.cpu_us / p.cpu_us.max(1e-9);
            (
                r,
                format!("{:.1} vs {:.1} µs = {r:.2}×", f.cpu_us, p.cpu_us),
            )
        }),
        Some(1.6),
        false,
    );
    for (mode, name) in [
        (MirrorMode::Slow, "1 s"),
        (MirrorMode::Blackhole, "blackhole"),
    ] {
        let s = get(mode, Kind::Sluice);
        check(
            &format!("{name} mirror: throughput ≥ 0.95× the fast-mirror run"),
            s.zip(s_fast).map(|(s, f)| {
                let (r, text) = throughput_ratio(s, f);
                let mirrored = s
                    .mirrored_pct
                    .map_or(String::new(), |p| format!(", {p:.1} % mirrored"));
                (r, format!("{text}{mirrored}"))
            }),
            Some(0.95),
            true,
        );
        let p = paced(mode, Some(Kind::Sluice)).and_then(|s| s.latency.p99_ms);
        let f = paced(MirrorMode::Fast, Some(Kind::Sluice)).and_then(|s| s.latency.p99_ms);
        // "Unchanged": within 10 % or 0.2 ms of the fast-mirror p99, whichever is larger, since
        // p99 at 2,000 req/s moves by about that between identical runs on this machine.
        check(
            &format!("{name} mirror: p99 unchanged (≤ fast-mirror p99 + max(10 %, 0.2 ms))"),
            p.zip(f)
                .map(|(p, f)| (p, format!("{p:.2} ms vs {f:.2} ms"))),
            f.map(|f| f + (f * 0.1).max(0.2)),
            false,
        );
    }
    if let Some(p) = inputs.propagation {
        check(
            "route propagation p99 ≤ 100 ms (standalone)",
            p.percentile_ms(0.99).map(|v| {
                (
                    v,
                    format!(
                        "p50 {:.1} ms, p99 {v:.1} ms over {} of {} changes",
                        p.percentile_ms(0.5).unwrap_or(0.0),
                        p.delays_ms.len(),
                        p.changes
                    ),
                )
            }),
            Some(100.0),
            false,
        );
        let bad = p.existing.non_2xx + p.existing.errors;
        check(
            "zero non-2xx on an existing route while others change",
            Some((
                bad as f64,
                format!("{bad} of {} requests", p.existing.ok + bad),
            )),
            Some(0.0),
            false,
        );
    }
    for (shape, ns) in &inputs.lookup_10k_ns {
        check(
            &format!("10,000-route lookup ≤ 1 µs ({shape})"),
            Some((*ns, format!("{ns:.0} ns"))),
            Some(1000.0),
            false,
        );
    }
    if let Some(m) = inputs.memory.iter().find(|m| m.routes == 5_000) {
        // Judged on the settled reading: what a serving data plane holds, not memory the
        // allocator has freed and not yet returned (both readings are in the table below).
        let mib = m.settled_kib as f64 / 1024.0;
        let burst = m.after_kib as f64 / 1024.0;
        check(
            "5,000 routes in ≤ 40 MiB of data-plane memory",
            Some((
                mib,
                format!("{mib:.1} MiB settled ({burst:.1} MiB right after the request burst)"),
            )),
            Some(40.0),
            false,
        );
    }
    let mut out = String::from("| Target | Measured | Verdict |\n|---|---|---|\n");
    for (t, m, v) in rows {
        let _ = writeln!(out, "| {t} | {m} | {v} |");
    }
    out
}

pub fn extras(inputs: &Inputs<'_>) -> String {
    let mut out = String::new();
    if let Some(p) = inputs.propagation {
        let _ = writeln!(
            out,
            "Route propagation (file rename → first 200 on the new route), {} changes: p50 {:.1} ms, \
             p99 {:.1} ms, max {:.1} ms; {} not served within 5 s. Existing route under constant load \
             meanwhile: {} ok, {} non-2xx, {} errors, p99 {:.2} ms.\n",
            p.changes,
            p.percentile_ms(0.5).unwrap_or(f64::NAN),
            p.percentile_ms(0.99).unwrap_or(f64::NAN),
            p.percentile_ms(1.0).unwrap_or(f64::NAN),
            p.changes - p.delays_ms.len(),
            p.existing.ok,
            p.existing.non_2xx,
            p.existing.errors,
            p.existing.percentile_ms(0.99),
        );
    }
    if !inputs.memory.is_empty() {
        out.push_str(
            "| Routes | Sluice RSS idle MiB | after requests to 2,000 of them MiB | settled: 2 s more at 100 req/s, new connections MiB |\n\
             |---:|---:|---:|---:|\n",
        );
        for m in &inputs.memory {
            let _ = writeln!(
                out,
                "| {} | {:.1} | {:.1} | {:.1} |",
                m.routes,
                m.idle_kib as f64 / 1024.0,
                m.after_kib as f64 / 1024.0,
                m.settled_kib as f64 / 1024.0
            );
        }
        out.push('\n');
    }
    if !inputs.lookup_10k_ns.is_empty() {
        out.push_str("Route lookup with 10,000 routes (criterion mean, `cargo bench -p sluice-benches --bench routing`): ");
        let parts: Vec<String> = inputs
            .lookup_10k_ns
            .iter()
            .map(|(s, ns)| format!("{s} {ns:.0} ns"))
            .collect();
        out.push_str(&parts.join(", "));
        out.push_str(".\n\n");
    }
    for s in &inputs.skipped {
        let _ = writeln!(out, "- skipped: {s}");
    }
    out
}

/// Criterion's mean estimate for `group/function/parameter`, in ns, if that bench has been run.
pub fn criterion_mean_ns(target_dir: &Path, id: &str) -> Option<f64> {
    let path = target_dir
        .join("criterion")
        .join(id)
        .join("new/estimates.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    json["mean"]["point_estimate"].as_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median([3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median([4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median([]), None);
    }

    #[test]
    fn cells_show_the_ratio_to_nginx() {
        assert_eq!(cell(Some(30.0), Some(20.0), 1), "30.0 (1.50×)");
        assert_eq!(cell(Some(30.0), None, 0), "30");
        assert_eq!(cell(None, Some(1.0), 0), "–");
    }

    #[test]
    fn targets_say_met_or_by_how_much_missed() {
        let key = |mode, kind| {
            (
                Workload::Closed(WrkLoadKey {
                    body: 0,
                    connections: 50,
                }),
                mode,
                Some(kind),
            )
        };
        let mut inputs = Inputs::default();
        inputs.results.insert(
            key(MirrorMode::None, Kind::Sluice),
            Summary {
                cpu_us: 30.0,
                idle_rss_mib: 10.0,
                ..Summary::default()
            },
        );
        inputs.results.insert(
            key(MirrorMode::None, Kind::Nginx),
            Summary {
                cpu_us: 20.0,
                ..Summary::default()
            },
        );
        let t = targets(&inputs);
        assert!(
            t.contains(
                "| plain: CPU per request ≤ nginx's | 30.0 µs vs nginx 20.0 µs | missed by 50 % |"
            ),
            "{t}"
        );
        assert!(
            t.contains("| plain: idle RSS ≤ 20 MiB | 10.0 MiB | met |"),
            "{t}"
        );
    }
}
