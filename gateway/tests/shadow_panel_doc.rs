//! The Grafana panels in docs/shadow-diff.md are valid JSON and query only metric series that
//! Sluice's shadow diff registers: a renamed metric or label breaks this test, not a dashboard.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;

use prometheus::Registry;
use serde_json::Value;
use sluice_gateway::shadow::ShadowMetrics;

/// Every series name `/metrics` shows for shadow diff, histograms as their three series.
fn shadow_series() -> BTreeSet<String> {
    let registry = Registry::new();
    let metrics = ShadowMetrics::register(&registry).unwrap();
    // Vec families only appear in a gather once a label set has a value.
    metrics
        .comparisons
        .with_label_values(&["r", "m", "match"])
        .inc();
    metrics
        .latency_delta
        .with_label_values(&["r", "m"])
        .observe(0.0);
    let mut names = BTreeSet::new();
    for family in registry.gather() {
        let name = family.name().to_owned();
        if family.get_field_type() == prometheus::proto::MetricType::HISTOGRAM {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        } else {
            names.insert(name);
        }
    }
    names
}

/// The ```json blocks of the doc that are Grafana panels (they have `targets`).
fn panels(doc: &str) -> Vec<Value> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        match &mut current {
            None if line.trim_start().starts_with("```json") => current = Some(String::new()),
            Some(block) if line.trim_start().starts_with("```") => {
                if block.contains("\"targets\"") {
                    blocks.push(serde_json::from_str::<Value>(block).unwrap());
                }
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

fn exprs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match value {
                    Value::String(expr) if key == "expr" => out.push(expr.clone()),
                    other => exprs(other, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

fn metric_names(expr: &str) -> Vec<&str> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("sluice_"))
        .collect()
}

#[test]
fn shadow_diff_doc_panels_query_only_registered_shadow_series() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/shadow-diff.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let panels = panels(&doc);
    assert!(!panels.is_empty(), "the doc has Grafana panels");
    let mut all = Vec::new();
    for panel in &panels {
        exprs(panel, &mut all);
    }
    assert!(all.len() >= 2, "mismatch ratio and latency delta: {all:?}");
    let known = shadow_series();
    for expr in &all {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "queries a Sluice metric: {expr}");
        for name in names {
            assert!(known.contains(name), "{name} is not served: {known:?}");
        }
    }
}
