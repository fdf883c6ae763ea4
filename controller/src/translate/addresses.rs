//! Gateway addresses: `spec.addresses`, else one pool address per Gateway (stable), else the
//! listen address.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::gateway::GatewayState;
use super::verdict::Verdict;
use super::TranslateOptions;
use crate::status::conditions::reasons;

const IP_ADDRESS: &str = "IPAddress";

/// Fills `addresses` (or a rejection) on every Gateway; returns the pool assignment made.
pub(super) fn assign(
    gateways: &mut [GatewayState<'_>],
    options: &TranslateOptions,
) -> BTreeMap<String, IpAddr> {
    if options.behind_service {
        for gw in gateways.iter_mut() {
            match requested(gw, options) {
                Requested::Unsupported(v) => gw.rejection = gw.rejection.take().or(Some(v)),
                _ => gw.addresses = vec![options.listen_address],
            }
        }
        return BTreeMap::new();
    }
    let mut taken: BTreeSet<IpAddr> = BTreeSet::new();
    let mut wants_pool = Vec::new();

    for (i, gw) in gateways.iter_mut().enumerate() {
        match requested(gw, options) {
            Requested::Static(addrs) => {
                taken.extend(addrs.iter().copied());
                gw.addresses = addrs;
            }
            Requested::Pool => wants_pool.push(i),
            Requested::Unsupported(v) => gw.rejection = gw.rejection.take().or(Some(v)),
            Requested::NotUsable(usable, v) => {
                gw.addresses = usable;
                gw.unprogrammable = Some(v);
            }
        }
    }

    let mut assigned = BTreeMap::new();
    let Some(pool) = options.address_pool else {
        for i in wants_pool {
            if let Some(gw) = gateways.get_mut(i) {
                gw.addresses = vec![options.listen_address];
            }
        }
        return assigned;
    };

    // Previous assignments first, so a Gateway keeps its address when others come and go.
    let mut pending = Vec::new();
    for i in wants_pool {
        let Some(gw) = gateways.get_mut(i) else {
            continue;
        };
        let key = gw.label();
        match options.assigned_addresses.get(&key) {
            Some(prev) if pool.contains(prev) && !taken.contains(prev) => {
                taken.insert(*prev);
                gw.addresses = vec![*prev];
                assigned.insert(key, *prev);
            }
            _ => pending.push(i),
        }
    }
    let mut free = pool.hosts().filter(|a| !taken.contains(a));
    for i in pending {
        let Some(gw) = gateways.get_mut(i) else {
            continue;
        };
        match free.next() {
            Some(addr) => {
                gw.addresses = vec![addr];
                assigned.insert(gw.label(), addr);
            }
            None => {
                gw.unprogrammable = Some(Verdict::no(
                    reasons::ADDRESS_NOT_ASSIGNED,
                    format!("the address pool {pool} is exhausted"),
                ));
            }
        }
    }
    assigned
}

enum Requested {
    Static(Vec<IpAddr>),
    Pool,
    Unsupported(Verdict),
    NotUsable(Vec<IpAddr>, Verdict),
}

fn requested(gw: &GatewayState<'_>, options: &TranslateOptions) -> Requested {
    let specs = gw.gw.spec.addresses.as_deref().unwrap_or(&[]);
    let mut usable = Vec::new();
    let mut unusable = Vec::new();
    let mut wants_pool = specs.is_empty();
    for a in specs {
        let ty = a.r#type.as_deref().unwrap_or(IP_ADDRESS);
        if ty != IP_ADDRESS {
            return Requested::Unsupported(Verdict::no(
                reasons::UNSUPPORTED_ADDRESS,
                format!("address type {ty} is not supported; use IPAddress"),
            ));
        }
        let Some(value) = a.value.as_deref().filter(|v| !v.is_empty()) else {
            // An IPAddress entry without a value asks for any address.
            wants_pool = true;
            continue;
        };
        let Ok(ip) = value.parse::<IpAddr>() else {
            return Requested::Unsupported(Verdict::no(
                reasons::UNSUPPORTED_ADDRESS,
                format!("{value} is not an IP address"),
            ));
        };
        if usable_address(ip, options) {
            usable.push(ip);
        } else {
            unusable.push(ip);
        }
    }
    if !unusable.is_empty() {
        let list: Vec<String> = unusable.iter().map(ToString::to_string).collect();
        return Requested::NotUsable(
            usable,
            Verdict::no(
                reasons::ADDRESS_NOT_USABLE,
                format!("cannot listen on {}", list.join(", ")),
            ),
        );
    }
    if usable.is_empty() && wants_pool {
        return Requested::Pool;
    }
    Requested::Static(usable)
}

/// Addresses Sluice can listen on: the pool, the listen address, or anything when listening on
/// the unspecified address without a pool.
fn usable_address(ip: IpAddr, options: &TranslateOptions) -> bool {
    match options.address_pool {
        Some(pool) => pool.contains(&ip) || ip == options.listen_address,
        None => ip == options.listen_address || options.listen_address.is_unspecified(),
    }
}
