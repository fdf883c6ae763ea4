//! What operators watch: every metric Sluice exports is documented (and every documented one is
//! registered), and the Grafana dashboard and alert rules in deploy/ use only metrics Sluice
//! registers, in expressions that parse as PromQL.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use prometheus::{IntGauge, Registry};
use promql_parser::parser::{self, Expr};
use promql_parser::util::{walk_expr, ExprVisitor};
use sluice_gateway::standalone::Running;
use sluice_test_support::standalone as harness;

use harness::*;

fn repo_file(path: &str) -> String {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// Whether `registry` has a family called `name`. The prometheus crate lists no descriptors, but
/// it refuses a second registration of a name with other labels or help: a probe gauge with a
/// help no metric of ours has is accepted only where the name is free. `registry` is a throwaway
/// for this test; probe each name once.
fn registered(registry: &Registry, name: &str) -> bool {
    let probe = IntGauge::new(name, "monitoring.rs probe").unwrap();
    registry.register(Box::new(probe)).is_err()
}

/// `name -> type` for every metric row of docs/metrics.md's tables.
fn documented() -> BTreeMap<String, String> {
    repo_file("docs/metrics.md")
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            let kind = cells.get(2)?;
            Some((name.to_string(), kind.to_string()))
        })
        .collect()
}

/// The families a Prometheus scrape of `text` finds (its `# TYPE` lines).
fn exported(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Polls `/metrics` until a line satisfies `want`; returns that text.
async fn scrape_until(running: &Running, what: &str, want: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, text) = admin_get(running, "/metrics").await;
        if text.lines().any(&want) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {what} in:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_exported_metric_is_documented_and_every_documented_one_is_registered() {
    let backend = Backend::start("app").await;
    // `dead` has an endpoint nothing listens on: every connection to it is refused.
    let (port, dead_route_port, nothing_there) = (free_port(), free_port(), free_port());
    let config = ConfigDir::new(&format!(
        "{CLASS}{}{}{}{}{}{}",
        service("app", &backend),
        service_at("dead", nothing_there),
        gateway("gw", &[port]),
        gateway("gw2", &[dead_route_port]),
        route("app", "gw", "app"),
        route("dead", "gw2", "dead"),
    ));
    let running = start(&config).await;
    let client = client();
    assert_eq!(pod_behind(&client, local(port)).await.unwrap(), "app-pod");
    let refused = client
        .get(url(local(dead_route_port), "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 502);
    // A client connection held open shows on its listener's gauge.
    let _held = tokio::net::TcpStream::connect(local(port)).await.unwrap();
    let open_here = format!(":{port}\"}}");
    let text = scrape_until(&running, "open connection on the listener", |l| {
        l.starts_with("sluice_downstream_connections{listener=")
            && l.contains(&open_here)
            && !l.ends_with(" 0")
    })
    .await;
    assert!(
        text.lines().any(|l| l.starts_with(
            r#"sluice_upstream_connect_errors_total{backend="default/dead:8080",reason="refused"}"#
        )),
        "{text}"
    );
    assert!(text.contains("sluice_build_info{revision="), "{text}");

    let docs = documented();
    let undocumented: Vec<_> = exported(&text)
        .into_iter()
        .filter(|name| !docs.contains_key(name))
        .collect();
    assert!(
        undocumented.is_empty(),
        "not in docs/metrics.md: {undocumented:?}"
    );
    let registry = &running.metrics().registry;
    let unregistered: Vec<_> = docs
        .keys()
        .filter(|name| !registered(registry, name))
        .collect();
    assert!(
        unregistered.is_empty(),
        "in docs/metrics.md but not registered: {unregistered:?}"
    );
    running.shutdown().await;
}

/// Every metric name a PromQL expression selects.
fn selected_metrics(expr: &str) -> Result<Vec<String>, String> {
    struct Names(Vec<String>);
    impl ExprVisitor for Names {
        type Error = String;
        fn pre_visit(&mut self, expr: &Expr) -> Result<bool, String> {
            let selector = match expr {
                Expr::VectorSelector(vs) => vs,
                Expr::MatrixSelector(ms) => &ms.vs,
                _ => return Ok(true),
            };
            match &selector.name {
                Some(name) => self.0.push(name.clone()),
                None => return Err("a selector without a metric name".into()),
            }
            Ok(true)
        }
    }
    let ast = parser::parse(expr)?;
    let mut names = Names(Vec::new());
    walk_expr(&mut names, &ast)?;
    Ok(names.0)
}

/// Grafana's interval variables, as a duration PromQL parses (`$job`-style variables only
/// appear inside label matcher strings, where any text parses).
fn without_grafana_variables(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
}

/// The queries of the dashboard: every `expr` (panels, annotations) and the metric selector of
/// every `label_values(SELECTOR, label)` variable.
fn dashboard_queries(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr", serde_json::Value::String(e)) => {
                        out.push(without_grafana_variables(e))
                    }
                    ("query" | "definition", serde_json::Value::String(q)) => {
                        if let Some(args) = q
                            .strip_prefix("label_values(")
                            .and_then(|a| a.strip_suffix(')'))
                        {
                            let selector = args.rsplit_once(',').map_or(args, |(s, _)| s);
                            out.push(selector.trim().to_string());
                        }
                    }
                    _ => dashboard_queries(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| dashboard_queries(v, out)),
        _ => {}
    }
}

/// Every alert's `expr` in a rules file's `groups`.
fn rule_exprs(groups: &serde_yaml_ng::Value) -> Vec<String> {
    let groups = groups.as_sequence().expect("groups is a list");
    let mut out = Vec::new();
    for group in groups {
        for rule in group["rules"].as_sequence().expect("rules is a list") {
            assert!(rule["alert"].as_str().is_some(), "an alert name: {rule:?}");
            out.push(rule["expr"].as_str().expect("expr").to_string());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_alert_rules_use_only_metrics_sluice_registers() {
    let plain: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&repo_file("deploy/prometheus/sluice-rules.yaml")).unwrap();
    let operator: serde_yaml_ng::Value = serde_yaml_ng::from_str(&repo_file(
        "deploy/overlays/prometheus-operator/prometheusrule.yaml",
    ))
    .unwrap();
    assert_eq!(operator["kind"].as_str(), Some("PrometheusRule"));
    assert_eq!(
        operator["spec"]["groups"], plain["groups"],
        "the PrometheusRule carries the plain rules file's groups"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&repo_file("deploy/grafana/sluice-dashboard.json")).unwrap();
    let datasource = &dashboard["templating"]["list"][0];
    assert_eq!(
        datasource["type"], "datasource",
        "the data source is a variable"
    );
    let mut queries = rule_exprs(&plain["groups"]);
    let rules = queries.len();
    dashboard_queries(&dashboard, &mut queries);
    assert!(rules >= 5 && queries.len() > rules + 20, "{queries:?}");

    // The registry every serving mode builds (standalone, as the binary starts it).
    let config = ConfigDir::new(&one_app_on_a_free_port().await.2);
    let running = start(&config).await;
    let registry = &running.metrics().registry;
    let histograms: BTreeSet<String> = documented()
        .into_iter()
        .filter(|(_, kind)| kind == "histogram")
        .map(|(name, _)| name)
        .collect();
    let mut names = BTreeSet::new();
    for query in &queries {
        let selected = selected_metrics(query).unwrap_or_else(|e| panic!("{query}: {e}"));
        assert!(!selected.is_empty(), "{query} selects no metric");
        names.extend(selected);
    }
    // A histogram's series are `_bucket`, `_sum` and `_count` of its family.
    let families: BTreeSet<&str> = names
        .iter()
        .map(|name| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .filter(|base| histograms.contains(*base))
                .unwrap_or(name)
        })
        .collect();
    let unknown: Vec<&str> = families
        .into_iter()
        .filter(|family| !registered(registry, family))
        .collect();
    assert!(unknown.is_empty(), "not registered by Sluice: {unknown:?}");
    running.shutdown().await;
}
