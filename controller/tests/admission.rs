//! The admission corpus: objects a Gateway API v1.6.1 cluster refuses, each with the exact errors
//! standalone mode gives (`tests/admission/*.yaml`, one `# case:` per object).
//!
//! A case's text, without its `# expect:` lines, is loaded as a file named `CASE.yaml`; its line
//! 1 is the `# case:` line. Re-bless with `SLUICE_BLESS=1 cargo test -p sluice-controller --test
//! admission` and review the diff: a case that loads without error fails even then.

use std::path::{Path, PathBuf};

use sluice_controller::resources::Resources;

struct Case {
    name: String,
    text: String,
    expected: Vec<String>,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/admission")
}

/// Splits a corpus file into its preamble and cases.
fn parse(file: &str) -> (String, Vec<Case>) {
    let mut preamble = String::new();
    let mut cases: Vec<Case> = Vec::new();
    for line in file.lines() {
        if let Some(name) = line.strip_prefix("# case: ") {
            cases.push(Case {
                name: name.trim().to_string(),
                text: format!("{line}\n"),
                expected: Vec::new(),
            });
        } else if let Some(case) = cases.last_mut() {
            match line.strip_prefix("# expect: ") {
                Some(expect) => case.expected.push(expect.to_string()),
                None => {
                    case.text.push_str(line);
                    case.text.push('\n');
                }
            }
        } else {
            preamble.push_str(line);
            preamble.push('\n');
        }
    }
    (preamble, cases)
}

fn actual_errors(case: &Case) -> Vec<String> {
    match Resources::from_yaml_documents(Path::new(&format!("{}.yaml", case.name)), &case.text) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.0.iter().map(|e| e.to_string()).collect(),
    }
}

fn render(preamble: &str, cases: &[Case], actual: &[Vec<String>]) -> String {
    let mut out = preamble.to_string();
    for (case, errors) in cases.iter().zip(actual) {
        let mut lines = case.text.lines();
        if let Some(first) = lines.next() {
            out.push_str(first);
            out.push('\n');
        }
        for e in errors {
            out.push_str(&format!("# expect: {e}\n"));
        }
        for line in lines {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[test]
fn every_invalid_object_gets_exactly_the_expected_errors() {
    let bless = std::env::var_os("SLUICE_BLESS").is_some_and(|v| v == "1");
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("corpus dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut failures = Vec::new();
    let mut total = 0;
    let mut names = std::collections::BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read corpus file");
        let (preamble, cases) = parse(&text);
        let actual: Vec<Vec<String>> = cases.iter().map(actual_errors).collect();
        for (case, errors) in cases.iter().zip(&actual) {
            total += 1;
            if !names.insert(case.name.clone()) {
                failures.push(format!("{}: case name used twice", case.name));
            }
            if errors.is_empty() {
                failures.push(format!(
                    "{}: loads without error; a corpus case must be invalid",
                    case.name
                ));
            } else if !bless && *errors != case.expected {
                failures.push(format!(
                    "{}:\n  expected: {:#?}\n  actual:   {:#?}",
                    case.name, case.expected, errors
                ));
            }
        }
        if bless {
            std::fs::write(&file, render(&preamble, &cases, &actual)).expect("write corpus file");
        }
    }
    assert!(total >= 40, "the corpus holds {total} cases, fewer than 40");
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
