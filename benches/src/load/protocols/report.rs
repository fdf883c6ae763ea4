//! The gRPC and TLS passthrough figures as one markdown table: medians over the repeats, with
//! Sluice's CPU per call (or connection) as a ratio to Envoy's.

use std::fmt::Write as _;

use super::{Protocol, Results, Settings};
use crate::load::proxies::Kind;
use crate::load::report::median;

/// Medians of one row (errors summed).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Row {
    per_second: f64,
    cpu_us_each: Option<f64>,
    errors: u64,
}

fn row(results: &Results, protocol: Protocol, kind: Option<Kind>) -> Option<Row> {
    let samples = results.samples.get(&(protocol, kind))?;
    Some(Row {
        per_second: median(samples.iter().map(|s| s.per_second))?,
        cpu_us_each: median(samples.iter().filter_map(|s| s.cpu_us_each)),
        errors: samples.iter().map(|s| s.errors).sum(),
    })
}

fn unit(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Grpc => "call",
        Protocol::Tls => "connection",
    }
}

fn describe(protocol: Protocol, settings: &Settings) -> String {
    match protocol {
        Protocol::Grpc => format!(
            "gRPC unary, {} calls in flight over {} HTTP/2 connections",
            settings.grpc_streams, settings.grpc_connections
        ),
        Protocol::Tls => format!(
            "TLS passthrough, {} connections at a time, one exchange each",
            settings.tls_concurrency
        ),
    }
}

/// The table, then one line per workload with the ratio (or why there is none).
pub fn table(results: &Results, settings: &Settings) -> String {
    let mut out = String::from(
        "| Workload | Through | Per second | Proxy CPU µs each | Errors |\n|---|---|---:|---:|---:|\n",
    );
    let mut ratios = String::new();
    for &protocol in &settings.protocols {
        let name = describe(protocol, settings);
        let mut through = vec![None];
        through.extend(settings.kinds.iter().copied().map(Some));
        for kind in through {
            let label = kind.map_or_else(|| "direct (floor)".to_string(), |k| k.to_string());
            match (row(results, protocol, kind), kind) {
                (Some(r), _) => {
                    let cpu = r
                        .cpu_us_each
                        .map_or_else(|| "–".to_string(), |c| format!("{c:.1}"));
                    let _ = writeln!(
                        out,
                        "| {name} | {label} | {:.0} {}s/s | {cpu} | {} |",
                        r.per_second,
                        unit(protocol),
                        r.errors
                    );
                }
                (None, Some(k)) => {
                    let why = results
                        .failed
                        .get(&(protocol, k))
                        .map_or("no figures", String::as_str);
                    let _ = writeln!(out, "| {name} | {label} | {} | – | – |", cell_text(why));
                }
                (None, None) => {
                    let _ = writeln!(out, "| {name} | {label} | no figures | – | – |");
                }
            }
        }
        let _ = writeln!(ratios, "- {}", ratio_line(results, protocol));
    }
    out.push('\n');
    out.push_str(&ratios);
    out
}

/// `gRPC unary: Sluice / Envoy CPU per call 1.23×`, or why there is no ratio.
fn ratio_line(results: &Results, protocol: Protocol) -> String {
    let cpu = |k| row(results, protocol, Some(k)).and_then(|r| r.cpu_us_each);
    match (cpu(Kind::Sluice), cpu(Kind::Envoy)) {
        (Some(s), Some(e)) if e > 0.0 => format!(
            "{protocol}: Sluice / Envoy CPU per {} **{:.2}×**",
            unit(protocol),
            s / e
        ),
        (None, _) => no_ratio(results, protocol, Kind::Sluice),
        _ => no_ratio(results, protocol, Kind::Envoy),
    }
}

/// Why there is no ratio: what stopped `missing`, if anything did.
fn no_ratio(results: &Results, protocol: Protocol, missing: Kind) -> String {
    let why = results
        .failed
        .get(&(protocol, missing))
        .cloned()
        .unwrap_or_else(|| format!("{missing} was not measured"));
    format!("{protocol}: no Sluice / Envoy ratio: {why}")
}

/// A reason fit for one table cell: one line, no pipes, not too long.
fn cell_text(text: &str) -> String {
    let one_line: String = text
        .replace('|', "/")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    match one_line.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

#[cfg(test)]
mod tests {
    use super::super::Sample;
    use super::*;
    use std::time::Duration;

    fn settings() -> Settings {
        Settings {
            duration: Duration::from_secs(1),
            warmup: Duration::ZERO,
            repeats: 1,
            protocols: vec![Protocol::Grpc, Protocol::Tls],
            kinds: vec![Kind::Sluice, Kind::Envoy],
            grpc_streams: 50,
            grpc_connections: 4,
            tls_concurrency: 20,
            workdir: "/tmp".into(),
        }
    }

    fn sample(per_second: f64, cpu: Option<f64>) -> Sample {
        Sample {
            per_second,
            cpu_us_each: cpu,
            errors: 0,
        }
    }

    #[test]
    fn ratio_is_sluice_cpu_over_envoy_cpu() {
        let mut results = Results::default();
        results
            .samples
            .insert((Protocol::Grpc, None), vec![sample(9000.0, None)]);
        results.samples.insert(
            (Protocol::Grpc, Some(Kind::Sluice)),
            vec![sample(5000.0, Some(30.0))],
        );
        results.samples.insert(
            (Protocol::Grpc, Some(Kind::Envoy)),
            vec![sample(4000.0, Some(20.0))],
        );
        let text = table(&results, &settings());
        assert!(
            text.contains("| direct (floor) | 9000 calls/s | – | 0 |"),
            "{text}"
        );
        assert!(
            text.contains("| Sluice | 5000 calls/s | 30.0 | 0 |"),
            "{text}"
        );
        assert!(
            text.contains("Sluice / Envoy CPU per call **1.50×**"),
            "{text}"
        );
    }

    #[test]
    fn a_rejected_config_is_shown_instead_of_figures() {
        let mut results = Results::default();
        results.samples.insert(
            (Protocol::Tls, Some(Kind::Envoy)),
            vec![sample(800.0, Some(50.0))],
        );
        results.failed.insert(
            (Protocol::Tls, Kind::Sluice),
            "Sluice: config rejected: a.yaml:9: TLSRoute | not served\n; ignored".into(),
        );
        let text = table(&results, &settings());
        assert!(
            text.contains("| Sluice | Sluice: config rejected: a.yaml:9: TLSRoute / not served ; ignored | – | – |"),
            "{text}"
        );
        assert!(
            text.contains("TLS passthrough: no Sluice / Envoy ratio: Sluice: config rejected"),
            "{text}"
        );
        assert!(
            text.contains("| Envoy | 800 connections/s | 50.0 | 0 |"),
            "{text}"
        );
    }
}
