//! A `status:` step: poll Sluice's `/status` until every check holds or its timeout passes (FORMAT.md §5).

use std::time::{Duration, Instant};

use crate::case::StatusCheck;
use crate::env::Env;
use crate::status_check::{evaluate, View};

use super::Settings;

const POLL: Duration = Duration::from_millis(100);
const ROUTE_TIMEOUT: Duration = Duration::from_secs(60);
const GATEWAY_TIMEOUT: Duration = Duration::from_secs(180);
/// `noAcceptedParents` must hold across polls at least this far apart.
const STABLE_FOR: Duration = Duration::from_secs(1);

struct Pending<'a> {
    check: &'a StatusCheck,
    deadline: Instant,
    holding_since: Option<Instant>,
    last: String,
}

pub(super) async fn run(
    checks: &[StatusCheck],
    env: &Env,
    settings: &Settings,
) -> Result<(), String> {
    let checks: Vec<StatusCheck> = checks.iter().map(|c| substituted(c, env)).collect();
    let started = Instant::now();
    let mut pending: Vec<Pending<'_>> = checks
        .iter()
        .map(|check| {
            let mut timeout = if check.immediate {
                Duration::ZERO
            } else if check.kind == "Gateway" && (check.conditions.is_some() || check.address) {
                GATEWAY_TIMEOUT
            } else {
                ROUTE_TIMEOUT
            };
            if let Some(cap) = settings.status_timeout_cap {
                timeout = timeout.min(cap);
            }
            Pending {
                check,
                deadline: started + timeout,
                holding_since: None,
                last: "never evaluated".to_owned(),
            }
        })
        .collect();
    let namespaces_with_pods = env.namespaces_with_pods();
    loop {
        let statuses = env.statuses().await.map_err(|e| crate::error_chain(&e))?;
        let view = View {
            statuses: &statuses,
            objects: &env.objects,
            controller_name: sluice_controller::CONTROLLER_NAME,
            namespaces_with_pods: &namespaces_with_pods,
        };
        let now = Instant::now();
        let mut failed = None;
        pending.retain_mut(|p| match evaluate(p.check, &view) {
            Ok(()) if !p.check.no_accepted_parents => false,
            Ok(()) => {
                let since = *p.holding_since.get_or_insert(now);
                now.duration_since(since) < STABLE_FOR
            }
            Err(why) => {
                p.holding_since = None;
                p.last = why;
                if now >= p.deadline && failed.is_none() {
                    failed = Some(format!("{} not satisfied: {}", describe(p.check), p.last));
                }
                true
            }
        });
        if let Some(failure) = failed {
            return Err(match env.last_rejection() {
                Some(rejected) => {
                    format!("{failure} (Sluice rejected the last configuration: {rejected})")
                }
                None => failure,
            });
        }
        if pending.is_empty() {
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `statusAddresses` may name the harness's configured addresses through §6 placeholders.
fn substituted(check: &StatusCheck, env: &Env) -> StatusCheck {
    let mut check = check.clone();
    if let Some(sa) = &mut check.status_addresses {
        let sub = |values: &mut Vec<String>| values.iter_mut().for_each(|v| *v = env.substitute(v));
        sub(&mut sa.contains);
        sub(&mut sa.not_contains);
        sa.type_of = sa
            .type_of
            .iter()
            .map(|(k, v)| (env.substitute(k), env.substitute(v)))
            .collect();
    }
    check
}

fn describe(check: &StatusCheck) -> String {
    let mut what: Vec<&str> = Vec::new();
    let flags = [
        (check.parent.is_some(), "parent conditions"),
        (check.parents.is_some(), "parents"),
        (check.no_accepted_parents, "noAcceptedParents"),
        (check.latest_observed_generation, "latestObservedGeneration"),
        (
            check.conditions.is_some() && check.parent.is_none(),
            "conditions",
        ),
        (check.address, "address"),
        (check.listener_conditions.is_some(), "listenerConditions"),
        (check.listeners.is_some(), "listeners"),
        (check.zero_routes, "zeroRoutes"),
        (check.status_addresses.is_some(), "statusAddresses"),
    ];
    for (present, name) in flags {
        if present {
            what.push(name);
        }
    }
    if check.kind == "NamespaceReadiness" {
        return format!(
            "NamespaceReadiness {:?}",
            check.namespaces.clone().unwrap_or_default()
        );
    }
    format!("{} check [{}]", check.object_key(), what.join(", "))
}
