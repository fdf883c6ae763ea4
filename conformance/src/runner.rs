//! Runs one case end to end: decide whether it runs, build its environment, execute its steps in order.

mod requests;
mod status;

use std::time::{Duration, Instant};

use crate::case::{Action, Base, Case, Step};
use crate::env::{timestamp, Env};
use crate::objects::ObjectKey;

/// Harness-wide settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Features the implementation claims (`sluice_controller::features::SUPPORTED_FEATURES`).
    pub supported: Vec<String>,
    /// Caps every status check's timeout (FORMAT.md uses 60 s and 180 s); `None` keeps them.
    pub status_timeout_cap: Option<Duration>,
}

impl Settings {
    pub fn claimed() -> Self {
        Settings {
            supported: sluice_controller::features::SUPPORTED_FEATURES
                .iter()
                .map(|f| (*f).to_owned())
                .collect(),
            status_timeout_cap: None,
        }
    }

    fn supports(&self, feature: &str) -> bool {
        self.supported.iter().any(|f| f == feature)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    /// Passed without asserting anything (`skipIfSupported` / `skipUnlessSupported`).
    PassedVacuously(String),
    Failed {
        step: String,
        reason: String,
    },
    Skipped(String),
}

#[derive(Debug, Clone)]
pub struct CaseResult {
    pub name: String,
    pub features: Vec<String>,
    pub provisional: bool,
    pub outcome: Outcome,
    pub elapsed: Duration,
}

/// Runs `case` in a fresh environment on its own `127.N.0.0/16`.
pub async fn run_case(case: &Case, base_yaml: &str, settings: &Settings) -> CaseResult {
    let started = Instant::now();
    let outcome = decide_and_run(case, base_yaml, settings).await;
    CaseResult {
        name: case.name.clone(),
        features: case.features.clone(),
        provisional: case.provisional,
        outcome,
        elapsed: started.elapsed(),
    }
}

async fn decide_and_run(case: &Case, base_yaml: &str, settings: &Settings) -> Outcome {
    let missing: Vec<&str> = case
        .features
        .iter()
        .filter(|f| !settings.supports(f))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Outcome::Skipped(format!("unsupported features: {}", missing.join(", ")));
    }
    if case.base == Base::Mesh {
        return Outcome::Skipped("mesh cases are not run".to_owned());
    }
    if let Some(f) = case.skip_if_supported.iter().find(|f| settings.supports(f)) {
        return Outcome::PassedVacuously(format!("asserts nothing because {f} is supported"));
    }
    if let Some(f) = case
        .skip_unless_supported
        .iter()
        .find(|f| !settings.supports(f))
    {
        return Outcome::PassedVacuously(format!("asserts nothing because {f} is not supported"));
    }
    let steps = match case.steps() {
        Ok(steps) => steps,
        Err(error) => {
            return Outcome::Failed {
                step: "parse".to_owned(),
                reason: crate::error_chain(&error),
            }
        }
    };
    let mut attempts = 0;
    let mut env = loop {
        attempts += 1;
        match Env::new(crate::env::next_octet(), base_yaml).await {
            Ok(env) => break env,
            // Someone else holds this 127.N prefix: take the next one.
            Err(error) if error.is_address_clash() && attempts < 10 => continue,
            Err(error) => {
                return Outcome::Failed {
                    step: "environment".to_owned(),
                    reason: crate::error_chain(&error),
                }
            }
        }
    };
    let outcome = run_steps(case, &steps, &mut env, settings).await;
    env.shutdown().await;
    outcome
}

async fn run_steps(case: &Case, steps: &[Step], env: &mut Env, settings: &Settings) -> Outcome {
    let setup = async {
        if let Some(manifests) = &case.manifests {
            env.apply(manifests, true, &timestamp(0))
                .map_err(|e| crate::error_chain(&e))?;
        }
        env.publish().await.map_err(|e| crate::error_chain(&e))
    };
    if let Err(reason) = setup.await {
        return Outcome::Failed {
            step: "apply manifests".to_owned(),
            reason,
        };
    }
    for (index, step) in steps.iter().enumerate() {
        let label = match &step.title {
            Some(title) => format!("step {} ({title})", index + 1),
            None => format!("step {} ({})", index + 1, action_name(&step.action)),
        };
        if let Err(reason) = run_step(case, step, env, settings).await {
            return Outcome::Failed {
                step: label,
                reason,
            };
        }
    }
    Outcome::Passed
}

fn action_name(action: &Action) -> &'static str {
    match action {
        Action::Status(_) => "status",
        Action::Requests(_) => "requests",
        Action::Apply(_) => "apply",
        Action::Patch(_) => "patch",
        Action::Delete(_) => "delete",
        Action::Sleep(_) => "sleep",
        Action::FillEndpointSlices(_) => "fillEndpointSlices",
    }
}

async fn run_step(
    case: &Case,
    step: &Step,
    env: &mut Env,
    settings: &Settings,
) -> Result<(), String> {
    let chain = |e: &dyn std::error::Error| crate::error_chain(e);
    match &step.action {
        Action::Status(checks) => status::run(checks, env, settings).await,
        Action::Requests(entries) => {
            let gateway = step
                .gateway
                .as_ref()
                .or(case.gateway.as_ref())
                .ok_or("a requests step needs a gateway (case or step `gateway`)")?;
            requests::run(entries, gateway, env).await
        }
        Action::Apply(yaml) => {
            env.apply(yaml, true, &timestamp(0))
                .map_err(|e| chain(&e))?;
            env.publish().await.map_err(|e| chain(&e))
        }
        Action::Patch(patches) => {
            for patch in patches {
                let key = ObjectKey::new(&patch.kind, patch.namespace.as_deref(), &patch.name);
                let substituted = |value: &serde_json::Value| {
                    let mut value = value.clone();
                    crate::objects::substitute_strings(&mut value, &|s| env.substitute(s));
                    value
                };
                let result = match (&patch.json_patch, &patch.merge_patch) {
                    (Some(ops), _) => {
                        let ops = substituted(ops);
                        env.objects.json_patch(&key, &ops)
                    }
                    (None, Some(merge)) => {
                        let merge = substituted(merge);
                        env.objects.merge_patch(&key, &merge)
                    }
                    (None, None) => return Err(format!("patch of {key} has no patch body")),
                };
                result.map_err(|e| chain(&e))?;
            }
            env.publish().await.map_err(|e| chain(&e))
        }
        Action::Delete(objects) => {
            for object in objects {
                let key = ObjectKey::new(&object.kind, object.namespace.as_deref(), &object.name);
                env.objects.delete(&key).map_err(|e| chain(&e))?;
            }
            env.publish().await.map_err(|e| chain(&e))
        }
        Action::Sleep(duration) => {
            let duration =
                sluice_gateway::echo::parse_go_duration(duration).map_err(|e| chain(&e))?;
            tokio::time::sleep(duration).await;
            Ok(())
        }
        Action::FillEndpointSlices(step) => {
            let pods = env
                .backends
                .pod_addresses(&step.from_pods_of.namespace, &step.from_pods_of.deployment);
            if pods.is_empty() {
                return Err(format!(
                    "fillEndpointSlices: Deployment {}/{} has no pods",
                    step.from_pods_of.namespace, step.from_pods_of.deployment
                ));
            }
            crate::fill_slices::fill(&mut env.objects, step, &pods)?;
            env.publish().await.map_err(|e| chain(&e))
        }
    }
}
