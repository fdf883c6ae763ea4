//! The run's report: a console table and YAML shaped like upstream's `ConformanceReport`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::runner::{CaseResult, Outcome};

const CORE_FEATURES: &[&str] = &[
    "Gateway",
    "HTTPRoute",
    "ReferenceGrant",
    "GRPCRoute",
    "TLSRoute",
    "Mesh",
];

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConformanceReport {
    api_version: &'static str,
    kind: &'static str,
    date: String,
    #[serde(rename = "gatewayAPIVersion")]
    gateway_api_version: &'static str,
    #[serde(rename = "gatewayAPIChannel")]
    gateway_api_channel: &'static str,
    implementation: Implementation,
    mode: &'static str,
    /// Everything the implementation claims (`sluice_controller::features::SUPPORTED_FEATURES`).
    supported_features: Vec<String>,
    profiles: Vec<Profile>,
    succeeded_provisional_tests: Vec<String>,
    /// Harness extension: every case with its outcome.
    cases: Vec<CaseLine>,
    /// Harness extension: outcomes per feature named by the cases.
    features: BTreeMap<String, Statistics>,
}

#[derive(Debug, Serialize)]
struct Implementation {
    organization: &'static str,
    project: &'static str,
    url: &'static str,
    version: &'static str,
    contact: Vec<&'static str>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    name: String,
    core: ProfileResult,
    extended: ProfileResult,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct ProfileResult {
    result: &'static str,
    statistics: Statistics,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    supported_features: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    unsupported_features: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    skipped_tests: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    failed_tests: Vec<String>,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Statistics {
    passed: usize,
    failed: usize,
    skipped: usize,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CaseLine {
    name: String,
    result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    seconds: f64,
}

// === impl ConformanceReport ===

impl ConformanceReport {
    pub fn new(results: &[CaseResult], supported: &[String]) -> Self {
        let mut profiles: BTreeMap<&'static str, (ProfileResult, ProfileResult)> = BTreeMap::new();
        let mut features: BTreeMap<String, Statistics> = BTreeMap::new();
        for result in results {
            let (core, extended) = profiles.entry(profile_of(&result.features)).or_default();
            let is_core = result
                .features
                .iter()
                .all(|f| CORE_FEATURES.contains(&f.as_str()));
            let bucket = if is_core { core } else { extended };
            match &result.outcome {
                Outcome::Passed | Outcome::PassedVacuously(_) => bucket.statistics.passed += 1,
                Outcome::Failed { .. } => {
                    bucket.statistics.failed += 1;
                    bucket.failed_tests.push(result.name.clone());
                }
                Outcome::Skipped(_) => {
                    bucket.statistics.skipped += 1;
                    bucket.skipped_tests.push(result.name.clone());
                }
            }
            for feature in &result.features {
                let stats = features.entry(feature.clone()).or_default();
                match result.outcome {
                    Outcome::Passed | Outcome::PassedVacuously(_) => stats.passed += 1,
                    Outcome::Failed { .. } => stats.failed += 1,
                    Outcome::Skipped(_) => stats.skipped += 1,
                }
            }
        }
        let profiles = profiles
            .into_iter()
            .map(|(name, (mut core, mut extended))| {
                core.result = verdict(&core.statistics);
                extended.result = verdict(&extended.statistics);
                let in_profile: Vec<&String> = results
                    .iter()
                    .filter(|r| profile_of(&r.features) == name)
                    .flat_map(|r| r.features.iter())
                    .filter(|f| !CORE_FEATURES.contains(&f.as_str()))
                    .collect();
                let mut seen: Vec<String> = in_profile.into_iter().cloned().collect();
                seen.sort();
                seen.dedup();
                let (supported_features, unsupported_features) =
                    seen.into_iter().partition(|f| supported.contains(f));
                extended.supported_features = supported_features;
                extended.unsupported_features = unsupported_features;
                Profile {
                    name: name.to_owned(),
                    core,
                    extended,
                }
            })
            .collect();
        let cases = results
            .iter()
            .map(|r| {
                let (result, detail) = match &r.outcome {
                    Outcome::Passed => ("passed", None),
                    Outcome::PassedVacuously(why) => ("passed", Some(why.clone())),
                    Outcome::Failed { step, reason } => {
                        ("failed", Some(format!("{step}: {reason}")))
                    }
                    Outcome::Skipped(why) => ("skipped", Some(why.clone())),
                };
                CaseLine {
                    name: r.name.clone(),
                    result,
                    detail,
                    seconds: (r.elapsed.as_secs_f64() * 10.0).round() / 10.0,
                }
            })
            .collect();
        ConformanceReport {
            api_version: "gateway.networking.k8s.io/v1",
            kind: "ConformanceReport",
            date: crate::env::timestamp(0),
            gateway_api_version: "main@4564255ac2c3",
            gateway_api_channel: "standard",
            implementation: Implementation {
                organization: "sluice",
                project: "sluice",
                url: "https://sluice.dev",
                version: env!("CARGO_PKG_VERSION"),
                contact: Vec::new(),
            },
            mode: "default",
            supported_features: supported.to_vec(),
            profiles,
            succeeded_provisional_tests: results
                .iter()
                .filter(|r| r.provisional && r.outcome == Outcome::Passed)
                .map(|r| r.name.clone())
                .collect(),
            cases,
            features,
        }
    }

    pub fn to_yaml(&self) -> Result<String, serde_yaml_ng::Error> {
        serde_yaml_ng::to_string(self)
    }
}

fn verdict(stats: &Statistics) -> &'static str {
    match (stats.failed, stats.passed) {
        (0, 0) => "skipped",
        (0, _) if stats.skipped == 0 => "success",
        (0, _) => "partial",
        _ => "failure",
    }
}

fn profile_of(features: &[String]) -> &'static str {
    let has = |f: &str| features.iter().any(|x| x == f);
    match () {
        _ if has("Mesh") && has("GRPCRoute") => "MESH-GRPC",
        _ if has("Mesh") => "MESH-HTTP",
        _ if has("GRPCRoute") => "GATEWAY-GRPC",
        _ if has("TLSRoute") => "GATEWAY-TLS",
        _ if has("TCPRoute") => "GATEWAY-TCP",
        _ if has("UDPRoute") => "GATEWAY-UDP",
        _ => "GATEWAY-HTTP",
    }
}

/// One line per case, then totals, for the console.
pub fn console_table(results: &[CaseResult]) -> String {
    let mut out = String::new();
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for r in results {
        let (word, detail) = match &r.outcome {
            Outcome::Passed => {
                passed += 1;
                ("PASS", String::new())
            }
            Outcome::PassedVacuously(why) => {
                passed += 1;
                ("PASS", format!(" ({why})"))
            }
            Outcome::Failed { step, reason } => {
                failed += 1;
                ("FAIL", format!("\n      {step}: {reason}"))
            }
            Outcome::Skipped(why) => {
                skipped += 1;
                ("SKIP", format!(" ({why})"))
            }
        };
        out.push_str(&format!(
            "{word} {:<60} {:>6.1}s{detail}\n",
            r.name,
            r.elapsed.as_secs_f64()
        ));
    }
    out.push_str(&format!(
        "\n{passed} passed, {failed} failed, {skipped} skipped\n"
    ));
    out
}
