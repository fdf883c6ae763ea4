//! Golden translation tests: every `golden/<case>.in.yaml` -> `golden/<case>.out.yaml`.
//!
//! The output holds only what translation produced: warnings, statuses and the rendered snapshot
//! (or the load error). An input a cluster would refuse (a CRD rule, a pattern) shows the
//! admission errors of standalone mode, then what translation makes of the objects anyway: the
//! translator stays defensive for API servers with older or laxer CRDs. Re-bless with `SLUICE_BLESS=1 cargo test -p sluice-controller --test golden`.
//! A line `# golden: address_pool=<cidr>` in the input translates with that address pool; without
//! it, Gateways listen on 192.0.2.1.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sluice_controller::resources::Resources;
use sluice_controller::snapshot::Snapshot;
use sluice_controller::status::StatusReport;
use sluice_controller::translate::{translate, Timestamp, TranslateOptions};

#[derive(Serialize)]
struct Rendered<'a> {
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    admission_errors: &'a [String],
    warnings: &'a [String],
    statuses: &'a StatusReport,
    snapshot: &'a Snapshot,
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn options_for(text: &str) -> TranslateOptions {
    let mut options = TranslateOptions {
        listen_address: "192.0.2.1".parse().expect("valid address"),
        ..Default::default()
    };
    for line in text.lines() {
        if let Some(pool) = line.strip_prefix("# golden: address_pool=") {
            options.address_pool = Some(pool.trim().parse().expect("valid golden address pool"));
        }
    }
    options
}

/// The objects as their types decode them, unvalidated: what a lax API server would hand over.
fn decode_unchecked(text: &str) -> Result<Resources, String> {
    fn push<K: serde::de::DeserializeOwned + kube::Resource>(
        list: &mut Vec<K>,
        value: serde_yaml_ng::Value,
    ) -> Result<(), String> {
        let mut obj: K = serde_yaml_ng::from_value(value).map_err(|e| e.to_string())?;
        if obj.meta().namespace.is_none() {
            obj.meta_mut().namespace = Some("default".into());
        }
        list.push(obj);
        Ok(())
    }
    let mut r = Resources::default();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let value = serde_yaml_ng::Value::deserialize(doc).map_err(|e| e.to_string())?;
        match value.get("kind").and_then(|k| k.as_str()) {
            Some("Gateway") => push(&mut r.gateways, value)?,
            Some("HTTPRoute") => push(&mut r.http_routes, value)?,
            Some("GatewayClass") => r
                .gateway_classes
                .push(serde_yaml_ng::from_value(value).map_err(|e| e.to_string())?),
            Some("ReferenceGrant") => push(&mut r.reference_grants, value)?,
            Some("Service") => push(&mut r.services, value)?,
            Some("EndpointSlice") => push(&mut r.endpoint_slices, value)?,
            Some("Secret") => push(&mut r.secrets, value)?,
            _ => {}
        }
    }
    r.sort();
    Ok(r)
}

fn render(name: &str, text: &str) -> String {
    let (resources, warnings, admission_errors) =
        match Resources::from_yaml_documents(Path::new(name), text) {
            Ok(loaded) => (loaded.resources, loaded.warnings, Vec::new()),
            Err(errors) => {
                let errors: Vec<String> = errors.0.iter().map(|e| e.to_string()).collect();
                match decode_unchecked(text) {
                    Ok(resources) => (resources, Vec::new(), errors),
                    Err(_) => return format!("error: {:?}\n", errors.join("\n")),
                }
            }
        };
    let now = Timestamp::from_second(1_767_225_600).expect("valid timestamp");
    let t = translate(&resources, &options_for(text), now);
    let mut warnings = warnings;
    warnings.extend(t.warnings);
    let rendered = Rendered {
        admission_errors: &admission_errors,
        warnings: &warnings,
        statuses: &t.snapshot.statuses,
        snapshot: &t.snapshot,
    };
    serde_yaml_ng::to_string(&rendered).expect("snapshot renders")
}

#[test]
fn golden_translations_match() {
    let bless = std::env::var_os("SLUICE_BLESS").is_some_and(|v| v == "1");
    let dir = golden_dir();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("golden dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();

    let mut failures = Vec::new();
    let mut cases = 0;
    for name in &names {
        if let Some(case) = name.strip_suffix(".out.yaml") {
            if !names.contains(&format!("{case}.in.yaml")) {
                if bless {
                    std::fs::remove_file(dir.join(name)).expect("remove orphan");
                } else {
                    failures.push(format!("{name}: orphan output without {case}.in.yaml"));
                }
            }
            continue;
        }
        let Some(case) = name.strip_suffix(".in.yaml") else {
            continue;
        };
        cases += 1;
        let input = std::fs::read_to_string(dir.join(name)).expect("read input");
        let actual = render(name, &input);
        let out_path = dir.join(format!("{case}.out.yaml"));
        if bless {
            std::fs::write(&out_path, &actual).expect("write output");
            continue;
        }
        match std::fs::read_to_string(&out_path) {
            Err(_) => failures.push(format!(
                "{case}: missing {case}.out.yaml (run with SLUICE_BLESS=1)"
            )),
            Ok(expected) if expected != actual => {
                let line = expected
                    .lines()
                    .zip(actual.lines())
                    .position(|(e, a)| e != a)
                    .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
                failures.push(format!(
                    "{case}: output differs from line {}:\n  expected: {:?}\n  actual:   {:?}",
                    line + 1,
                    expected.lines().nth(line).unwrap_or("<end>"),
                    actual.lines().nth(line).unwrap_or("<end>"),
                ));
            }
            Ok(_) => {}
        }
    }
    assert!(
        cases >= 10,
        "expected at least 10 golden cases, found {cases}"
    );
    assert!(
        failures.is_empty(),
        "golden failures:\n{}",
        failures.join("\n")
    );
}

#[test]
fn translation_is_byte_stable() {
    let dir = golden_dir();
    for entry in std::fs::read_dir(&dir).expect("golden dir") {
        let path = entry.expect("dir entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if !name.ends_with(".in.yaml") {
            continue;
        }
        let input = std::fs::read_to_string(&path).expect("read input");
        assert_eq!(render(&name, &input), render(&name, &input), "{name}");
    }
}
