//! Every YAML the repository ships for people to apply is one a Gateway API v1.6.1 cluster would
//! accept: the demo, deploy/examples, the docs' snippets and the golden inputs.

use std::path::{Path, PathBuf};

use sluice_controller::resources::Resources;
use sluice_testing::files::files_under;

/// Golden inputs that are refused on purpose: they test the translator's defences.
const INVALID_ON_PURPOSE: &[&str] = &[
    "invalid-rules.in.yaml",
    "listener-validation.in.yaml",
    "malformed-field.in.yaml",
    "mirrorpolicy-cel-rejected.in.yaml",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    files_under(dir, &|path| {
        path.extension().is_some_and(|e| e == "yaml")
            // Kustomize's own file is read by kubectl, never applied as an object.
            && path.file_name().is_some_and(|n| n != "kustomization.yaml")
    })
}

/// The ```yaml blocks of a Markdown file that hold whole objects (not fragments of one).
fn markdown_objects(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).expect("read markdown");
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        match &mut current {
            None if line.trim_start().starts_with("```yaml") => {
                current = Some((i + 1, String::new()))
            }
            Some((start, block)) if line.trim_start().starts_with("```") => {
                if block.contains("apiVersion:") && block.contains("kind:") {
                    blocks.push((format!("{}:{}", path.display(), start), block.clone()));
                }
                current = None;
            }
            Some((_, block)) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

#[test]
fn every_shipped_yaml_is_one_a_cluster_accepts() {
    let root = repo();
    let mut files = yaml_files(&root.join("gateway/demo"));
    files.extend(yaml_files(&root.join("deploy/examples")));
    let golden = yaml_files(&root.join("controller/tests/golden"));
    files.extend(golden.into_iter().filter(|p| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        name.ends_with(".in.yaml") && !INVALID_ON_PURPOSE.contains(&name)
    }));
    let mut sources: Vec<(String, String)> = files
        .iter()
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read_to_string(p).expect("read yaml"),
            )
        })
        .collect();
    let mut docs = vec![root.join("README.md")];
    let mut doc_dir: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    doc_dir.sort();
    docs.extend(doc_dir);
    for doc in &docs {
        sources.extend(markdown_objects(doc));
    }

    let mut failures = Vec::new();
    for (name, text) in &sources {
        if let Err(errors) = Resources::from_yaml_documents(Path::new(name), text) {
            failures.push(errors.to_string());
        }
    }
    assert!(
        sources.len() >= 15,
        "found only {} shipped YAML sources",
        sources.len()
    );
    assert!(
        failures.is_empty(),
        "shipped YAML a cluster would refuse:\n{}",
        failures.join("\n")
    );
}

/// The shadow-diff walkthrough's directory loads as `sluice --config deploy/examples/shadow-diff`
/// would read it, with the comparison the walkthrough relies on: the policy targets the route that
/// mirrors, and ignores the two echo JSON fields that always differ between v1 and v2.
#[test]
fn shadow_diff_example_loads_with_its_comparing_policy() {
    let dir = repo().join("deploy/examples/shadow-diff");
    let loaded = Resources::load_path(&dir).expect("the walkthrough's YAML loads");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let resources = loaded.resources;
    assert_eq!(resources.endpoint_slices.len(), 2);
    let [policy] = resources.mirror_policies.as_slice() else {
        panic!("one MirrorPolicy, got {}", resources.mirror_policies.len());
    };
    let target = &policy.spec.target_refs[0].name;
    assert!(
        resources
            .http_routes
            .iter()
            .any(|r| r.metadata.name.as_ref() == Some(target)),
        "the policy targets the walkthrough's route {target}"
    );
    let compare = policy.spec.compare.as_ref().expect("compare is on");
    assert_eq!(compare.body, Some(true));
    assert_eq!(
        compare.ignore_json_fields.as_deref(),
        Some(&["/pod".to_owned(), "/httpPort".to_owned()][..])
    );
}
