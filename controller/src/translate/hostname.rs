//! Listener/route hostname intersection, as the HTTPRoute `hostnames` field documents it.

use crate::snapshot::Hostname;

/// A listener, route or filter hostname: DNS labels (RFC 1123), optionally with a leading `*.`
/// (when `wildcard_ok`), never an IP address.
pub(super) fn parse(s: &str, wildcard_ok: bool) -> Option<Hostname> {
    let h = Hostname::parse(s)?;
    let name = match &h {
        Hostname::Exact(name) => name.as_str(),
        Hostname::Wildcard(suffix) if wildcard_ok => suffix.get(1..)?,
        Hostname::Wildcard(_) => return None,
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    let ok = name.len() <= 253
        && name.parse::<std::net::IpAddr>().is_err()
        && name.split('.').all(label_ok);
    ok.then_some(h)
}

/// The hostnames a route serves on a listener. `Some(vec![None])` means "any host" (neither side
/// restricts); `None` means the route does not match the listener at all.
pub(super) fn intersect(
    listener: Option<&Hostname>,
    route: &[Hostname],
) -> Option<Vec<Option<Hostname>>> {
    let Some(listener) = listener else {
        if route.is_empty() {
            return Some(vec![None]);
        }
        return Some(route.iter().cloned().map(Some).collect());
    };
    if route.is_empty() {
        return Some(vec![Some(listener.clone())]);
    }
    let mut out: Vec<Option<Hostname>> = Vec::new();
    for h in route {
        if let Some(i) = pair(listener, h) {
            if !out.contains(&Some(i.clone())) {
                out.push(Some(i));
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The more specific of two hostnames when one contains the other.
fn pair(listener: &Hostname, route: &Hostname) -> Option<Hostname> {
    match (listener, route) {
        (Hostname::Exact(l), Hostname::Exact(r)) => (l == r).then(|| route.clone()),
        (Hostname::Wildcard(_), Hostname::Exact(r)) => listener.matches(r).then(|| route.clone()),
        (Hostname::Exact(l), Hostname::Wildcard(_)) => route.matches(l).then(|| listener.clone()),
        (Hostname::Wildcard(l), Hostname::Wildcard(r)) => {
            if l == r || (l.len() > r.len() && l.ends_with(r.as_str())) {
                Some(listener.clone())
            } else if r.len() > l.len() && r.ends_with(l.as_str()) {
                Some(route.clone())
            } else {
                None
            }
        }
    }
}

/// Sort key putting the most specific listener hostname first: exact, longer wildcard, none.
pub(super) fn specificity(h: Option<&Hostname>) -> (u8, usize) {
    match h {
        Some(Hostname::Exact(_)) => (0, 0),
        Some(Hostname::Wildcard(s)) => (1, usize::MAX - s.len()),
        None => (2, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Hostname {
        Hostname::parse(s).expect("valid hostname")
    }

    fn hs(list: &[&str]) -> Vec<Hostname> {
        list.iter().map(|s| h(s)).collect()
    }

    #[test]
    fn strict_parse_accepts_dns_names_and_rejects_the_rest() {
        assert!(parse("Foo.Example.com", false).is_some());
        assert!(parse("*.example.com", true).is_some());
        assert!(parse("*.example.com", false).is_none());
        for bad in ["foo bar.com", "1.2.3.4", "-a.com", "a..com", "", "*", "a/b"] {
            assert!(parse(bad, true).is_none(), "{bad}");
        }
    }

    #[test]
    fn no_hostnames_on_either_side_means_any() {
        assert_eq!(intersect(None, &[]), Some(vec![None]));
    }

    /// What a route with `routes` hostnames attaches as on a listener for `listener`.
    fn attached(listener: &str, routes: &[&str]) -> Option<Vec<Option<Hostname>>> {
        intersect(Some(&h(listener)), &hs(routes))
    }

    /// Attached under exactly one hostname.
    fn only(hostname: &str) -> Option<Vec<Option<Hostname>>> {
        Some(vec![Some(h(hostname))])
    }

    #[test]
    fn listener_wildcard_keeps_matching_route_hostnames() {
        let routes = ["foo.example.com", "example.com", "bar.other.org"];
        assert_eq!(attached("*.example.com", &routes), only("foo.example.com"));
    }

    #[test]
    fn route_wildcard_narrows_to_the_exact_listener() {
        let narrowed = attached("foo.example.com", &["*.example.com"]);
        assert_eq!(narrowed, only("foo.example.com"));
    }

    #[test]
    fn nested_wildcards_take_the_more_specific() {
        let narrower_route = attached("*.example.com", &["*.foo.example.com"]);
        assert_eq!(narrower_route, only("*.foo.example.com"));
        let narrower_listener = attached("*.foo.example.com", &["*.example.com"]);
        assert_eq!(narrower_listener, only("*.foo.example.com"));
    }

    #[test]
    fn disjoint_hostnames_do_not_intersect() {
        let routes = ["bar.example.com", "*.other.com"];
        assert_eq!(attached("foo.example.com", &routes), None);
    }

    #[test]
    fn specificity_orders_exact_then_longer_wildcard_then_none() {
        let exact = h("a.b.c");
        let long = h("*.b.c");
        let short = h("*.c");
        let mut v = [None, Some(&short), Some(&exact), Some(&long)];
        v.sort_by_key(|x| specificity(*x));
        assert_eq!(v, [Some(&exact), Some(&long), Some(&short), None]);
    }
}
