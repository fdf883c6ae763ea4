//! Golden translation tests: every `golden/<case>.in.yaml` -> `golden/<case>.out.yaml`.
//!
//! The output holds only what translation produced: warnings, statuses and the rendered snapshot
//! (or the load error). Re-bless with `SLUICE_BLESS=1 cargo test -p sluice-controller --test golden`.
//! A line `# golden: address_pool=<cidr>` in the input translates with that address pool; without
//! it, Gateways listen on 192.0.2.1.

use std::path::{Path, PathBuf};

use serde::Serialize;
use sluice_controller::resources::Resources;
use sluice_controller::snapshot::Snapshot;
use sluice_controller::status::StatusReport;
use sluice_controller::translate::{translate, Timestamp, TranslateOptions};

#[derive(Serialize)]
struct Rendered<'a> {
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

fn render(name: &str, text: &str) -> String {
    let loaded = match Resources::from_yaml_documents(Path::new(name), text) {
        Ok(l) => l,
        Err(e) => return format!("error: {:?}\n", e.to_string()),
    };
    let now = Timestamp::from_second(1_767_225_600).expect("valid timestamp");
    let t = translate(&loaded.resources, &options_for(text), now);
    let mut warnings = loaded.warnings;
    warnings.extend(t.warnings);
    let rendered = Rendered {
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
