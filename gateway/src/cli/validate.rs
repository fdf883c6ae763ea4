//! `sluice validate`: admits a configuration as standalone mode would, without serving it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use sluice_controller::resources::{LoadedConfig, Resources};
use sluice_controller::translate::findings::{endpoint_findings, standalone_findings};
use sluice_controller::translate::{translate, Timestamp, TranslateOptions};

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// A YAML file or a directory of `*.yaml` files, checked as a Gateway API v1.6.1 API server
    /// would check them (schemas, CEL rules, unknown fields).
    #[arg(long, env = "SLUICE_CONFIG")]
    pub config: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error("{}: {count} error(s); nothing would be served from it", path.display())]
    Invalid { path: PathBuf, count: usize },
}

/// Prints every error (stdout, one per line) and fails, or prints one summary line. Warnings
/// (ignored kinds, what translation would report) go to stderr either way.
pub fn run(args: &ValidateArgs) -> Result<(), ValidateError> {
    match Resources::load_path(&args.config) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("warning: {w}");
            }
            let translation = translate(
                &loaded.resources,
                &TranslateOptions::default(),
                Timestamp::UNIX_EPOCH,
            );
            let mut findings = standalone_findings(&loaded.resources, &translation.snapshot);
            findings.extend(endpoint_findings(&translation.snapshot));
            for w in translation.warnings.iter().chain(&findings) {
                eprintln!("warning: {w}");
            }
            let warnings = loaded.warnings.len() + translation.warnings.len() + findings.len();
            println!("{}", summary(&args.config, &loaded, warnings));
            Ok(())
        }
        Err(errors) => {
            for e in &errors.0 {
                println!("{e}");
            }
            Err(ValidateError::Invalid {
                path: args.config.clone(),
                count: errors.0.len(),
            })
        }
    }
}

/// `gw.yaml: valid: 1 Gateway, 2 HTTPRoutes, 1 Service (0 warnings)`.
fn summary(path: &std::path::Path, loaded: &LoadedConfig, warnings: usize) -> String {
    let r = &loaded.resources;
    let counts: BTreeMap<&str, usize> = [
        ("GatewayClass", r.gateway_classes.len()),
        ("Gateway", r.gateways.len()),
        ("HTTPRoute", r.http_routes.len()),
        ("GRPCRoute", r.grpc_routes.len()),
        ("TLSRoute", r.tls_routes.len()),
        ("ReferenceGrant", r.reference_grants.len()),
        ("Service", r.services.len()),
        ("EndpointSlice", r.endpoint_slices.len()),
        ("Secret", r.secrets.len()),
        ("Namespace", r.namespaces.len()),
        ("ConfigMap", r.config_maps.len()),
        ("ListenerSet", r.listener_sets.len()),
        ("BackendTLSPolicy", r.backend_tls_policies.len()),
        ("MirrorPolicy", r.mirror_policies.len()),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .collect();
    let objects: Vec<String> = counts
        .iter()
        .map(|(kind, n)| match *n {
            1 => format!("1 {kind}"),
            n => match kind.strip_suffix('y') {
                Some(stem) => format!("{n} {stem}ies"),
                None if kind.ends_with('s') => format!("{n} {kind}es"),
                None => format!("{n} {kind}s"),
            },
        })
        .collect();
    let objects = if objects.is_empty() {
        "no objects".to_string()
    } else {
        objects.join(", ")
    };
    format!(
        "{}: valid: {objects} ({warnings} warning{})",
        path.display(),
        if warnings == 1 { "" } else { "s" }
    )
}

#[cfg(test)]
mod tests {
    use sluice_controller::resources::Resources;

    use super::summary;

    #[test]
    fn the_summary_counts_every_kind_served_with_its_plural() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/shadow-diff");
        let loaded = Resources::load_path(&dir).expect("the walkthrough's YAML loads");
        let line = summary(&dir, &loaded, 0);
        assert!(line.contains(" 1 MirrorPolicy,"), "{line}");
        assert!(
            line.contains(" 2 Services,") || line.contains(" 2 Services ("),
            "{line}"
        );
        assert!(!line.contains("Policyes"), "{line}");
    }
}
